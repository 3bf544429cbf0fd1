"""The batching lesson (issue 7, lesson 3): batch GD, mini-batch GD and SGD, asserted.

The references are independent of the lesson's code: updates per epoch are ⌈n/k⌉ by the
definition of an epoch; the cost at init of a 10-class net with small logits is near
ln 10; the noise and speed orderings are the textbook claims the lesson must reproduce.
"""

from __future__ import annotations

import itertools
import math

import pytest
from lesson_checks import check_report

from initlab.lessons import Env, Lesson, run
from initlab.lessons.batching import SIZES, Facts, VariantRun, compute


@pytest.fixture(scope="module")
def facts() -> Facts:
    """The quick size's facts, computed without drawing."""
    return compute(SIZES["quick"], Env())


def _batch_size(facts: Facts, r: VariantRun) -> int:
    return facts.n_train if r.batch_size == "full" else int(r.batch_size)


def test_an_epoch_is_one_pass_whatever_the_batch_size(facts: Facts) -> None:
    n = facts.n_train
    assert n == 1438  # scikit-learn's digits, 80 % of 1,797
    for r in facts.runs.values():
        k = _batch_size(facts, r)
        assert r.updates_per_epoch == math.ceil(n / k)
        assert r.total_updates == r.epochs_run * math.ceil(n / k)
        assert len(r.update_cost) == r.total_updates  # one batch cost per update
    assert facts.runs["SGD"].updates_per_epoch == n
    assert facts.runs["batch GD"].updates_per_epoch == 1


def test_every_variant_starts_from_the_same_weights(facts: Facts) -> None:
    initial = [r.cost[0] for r in facts.runs.values()]
    assert initial == [initial[0]] * len(initial)
    # Xavier init keeps the logits small: the cost starts near that of a uniform guess.
    assert initial[0] == pytest.approx(math.log(10), abs=0.3)


def test_noise_grows_as_the_batch_shrinks(facts: Facts) -> None:
    by_size = sorted(facts.runs.values(), key=lambda r: _batch_size(facts, r))
    noise = [r.noise for r in by_size]  # SGD first, batch GD last
    assert all(a > b for a, b in itertools.pairwise(noise)), noise
    assert facts.runs["SGD"].noise > 5 * facts.runs["mini-batch 64"].noise


def test_small_batches_reach_the_target_in_fewer_epochs(facts: Facts) -> None:
    epochs = {
        label: (math.inf if r.epochs_to_target is None else r.epochs_to_target)
        for label, r in facts.runs.items()
    }
    assert epochs["mini-batch 64"] < math.inf
    assert epochs["SGD"] < epochs["mini-batch 64"] < epochs["batch GD"]
    # The target was really reached: the full training cost at that checkpoint.
    mini = facts.runs["mini-batch 64"]
    assert mini.updates_to_target is not None
    at = mini.steps.index(mini.updates_to_target)
    assert mini.cost[at] <= facts.target_cost
    assert all(c > facts.target_cost for c in mini.cost[:at])


def test_accuracy_is_better_than_chance(facts: Facts) -> None:
    for label, r in facts.runs.items():
        assert r.test_accuracy > 0.5, label


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory) -> Lesson:
    return run("batching", tmp_path_factory.mktemp("batching"), quick=True)


def test_times_are_each_runs_own_measurement(lesson: Lesson) -> None:
    facts = lesson.facts  # the clock of the run whose time is lesson.seconds
    assert isinstance(facts, Facts)
    for r in facts.runs.values():
        clock = r.seconds_at
        assert clock[0] == 0.0
        assert all(b >= a for a, b in itertools.pairwise(clock))
        assert r.seconds == clock[-1] > 0
        assert r.seconds_per_epoch == pytest.approx(clock[-1] / r.epochs_run)
    # Each variant ran on its own: their times add up to less than the lesson's.
    assert sum(r.seconds for r in facts.runs.values()) < lesson.seconds


def test_findings_quote_the_run(lesson: Lesson) -> None:
    facts = lesson.facts
    assert isinstance(facts, Facts)
    assert f"SGD made {facts.n_train} updates per epoch" in lesson.findings[0]
    ratio = facts.runs["SGD"].noise / facts.runs["mini-batch 64"].noise
    assert f"{ratio:.1f}× noisier than mini-batch 64's" in lesson.findings[3]


def test_report_embeds_every_figure_and_parses(lesson: Lesson) -> None:
    check_report(lesson, 5)
