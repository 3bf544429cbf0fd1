"""The batching lesson (issue 7, lesson 3): batch GD, mini-batch GD and SGD, asserted.

The references are independent of the lesson's code: updates per epoch are ⌈n/k⌉ by the
definition of an epoch; the cost at init of a 10-class net with small logits is near
ln 10; the noise and speed orderings are the textbook claims the lesson must reproduce.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from lesson_checks import check_report

from initlab.lessons import Lesson
from initlab.lessons.batching import run


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory) -> Lesson:
    return run(tmp_path_factory.mktemp("batching"), quick=True)


def _batch_size(facts: dict[str, Any], label: str) -> int:
    size = facts["batch_sizes"][label]
    return int(facts["n_train"]) if size == "full" else int(size)


def test_an_epoch_is_one_pass_whatever_the_batch_size(lesson: Lesson) -> None:
    facts = lesson.facts
    n = facts["n_train"]
    assert n == 1438  # scikit-learn's digits, 80 % of 1,797
    for label in facts["labels"]:
        k = _batch_size(facts, label)
        assert facts["updates_per_epoch"][label] == math.ceil(n / k)
        assert facts["total_updates"][label] == facts["epochs_run"][label] * math.ceil(n / k)
    assert facts["updates_per_epoch"]["SGD"] == n
    assert facts["updates_per_epoch"]["batch GD"] == 1


def test_every_variant_starts_from_the_same_weights(lesson: Lesson) -> None:
    initial = list(lesson.facts["initial_cost"].values())
    assert initial == [initial[0]] * len(initial)
    # Xavier init keeps the logits small: the cost starts near that of a uniform guess.
    assert initial[0] == pytest.approx(math.log(10), abs=0.3)


def test_noise_grows_as_the_batch_shrinks(lesson: Lesson) -> None:
    facts = lesson.facts
    by_size = sorted(facts["labels"], key=lambda label: _batch_size(facts, label))
    noise = [facts["noise"][label] for label in by_size]  # SGD first, batch GD last
    assert all(a > b for a, b in itertools.pairwise(noise)), noise
    assert facts["noise"]["SGD"] > 5 * facts["noise"]["mini-batch 64"]


def test_small_batches_reach_the_target_in_fewer_epochs(lesson: Lesson) -> None:
    facts = lesson.facts
    epochs = {k: (math.inf if v is None else v) for k, v in facts["epochs_to_target"].items()}
    assert epochs["mini-batch 64"] < math.inf
    assert epochs["SGD"] < epochs["mini-batch 64"] < epochs["batch GD"]
    # The target was really reached: the full training cost at that checkpoint.
    label = "mini-batch 64"
    updates = facts["checkpoint_updates"][label]
    at = updates.index(int(facts["updates_to_target"][label]))
    assert facts["checkpoint_cost"][label][at] <= facts["target_cost"]
    assert all(c > facts["target_cost"] for c in facts["checkpoint_cost"][label][:at])


def test_times_are_each_runs_own_measurement(lesson: Lesson) -> None:
    facts = lesson.facts
    for label in facts["labels"]:
        clock = facts["checkpoint_seconds"][label]
        assert clock[0] == 0.0
        assert all(b >= a for a, b in itertools.pairwise(clock))
        assert facts["seconds"][label] == clock[-1] > 0
        per_epoch = facts["seconds_per_epoch"][label]
        assert per_epoch == pytest.approx(clock[-1] / facts["epochs_run"][label])
    # Each variant ran on its own: their times add up to less than the lesson's.
    assert sum(facts["seconds"].values()) < lesson.seconds


def test_accuracy_is_better_than_chance(lesson: Lesson) -> None:
    for label, accuracy in lesson.facts["test_accuracy"].items():
        assert accuracy > 0.5, label


def test_findings_quote_the_run(lesson: Lesson) -> None:
    facts = lesson.facts
    assert f"SGD made {facts['n_train']} updates per epoch" in lesson.findings[0]
    ratio = facts["noise"]["SGD"] / facts["noise"]["mini-batch 64"]
    assert f"{ratio:.1f}× noisier than mini-batch 64's" in lesson.findings[3]


def test_report_embeds_every_figure_and_parses(lesson: Lesson) -> None:
    check_report(lesson, 5)
