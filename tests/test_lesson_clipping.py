"""The clipping lesson (issue 7, lesson 5): the gradient cliff and a net that blows up.

References independent of the lesson's code: the one-neuron RNN's loss is recomputed
here in plain Python floats, and its gradient by central finite differences; the plateau
the thrown descents land on is where σ(x₅₀) = 1, loss (1 − 0.7)² = 0.09; clipping by
global norm leaves exactly min(‖g‖, c) (its definition); no clipping increases the norm.
"""

from __future__ import annotations

import math

import pytest
import torch
from lesson_checks import check_report

from initlab.lessons import Env, Lesson, run
from initlab.lessons.clipping import SIZES, Facts, compute


@pytest.fixture(scope="module")
def facts() -> Facts:
    """The quick size's facts, computed without drawing."""
    return compute(SIZES["quick"], Env())


def _loss(w: float, b: float, x0: float, steps: int, target: float) -> float:
    """Pascanu et al.'s one-neuron RNN, in plain Python floats."""
    x = x0
    for _ in range(steps):
        x = w / (1.0 + math.exp(-x)) + b
    return (1.0 / (1.0 + math.exp(-x)) - target) ** 2


def test_the_rnn_loss_and_gradient_match_a_finite_difference(facts: Facts) -> None:
    cliff = facts.cliff
    assert cliff.x0 == 0.5 and cliff.rnn_steps == 50 and cliff.target == 0.7
    args = (cliff.x0, cliff.rnn_steps, cliff.target)
    norms = []
    for point in (cliff.steepest, cliff.flattest, cliff.worst_start):
        w, b = point.w, point.b
        assert point.loss == pytest.approx(_loss(w, b, *args), rel=1e-12, abs=1e-300)
        h = 1e-7  # central differences: error O(h²) against float rounding O(1e-16/h)
        dw = (_loss(w + h, b, *args) - _loss(w - h, b, *args)) / (2 * h)
        db = (_loss(w, b + h, *args) - _loss(w, b - h, *args)) / (2 * h)
        scale = math.hypot(dw, db)
        assert point.grad[0] == pytest.approx(dw, rel=1e-4, abs=1e-6 * scale)
        assert point.grad[1] == pytest.approx(db, rel=1e-4, abs=1e-6 * scale)
        norms.append(scale)
    steepest, flattest = norms[0], norms[1]
    assert steepest == pytest.approx(cliff.grad_norm_max, rel=1e-4)
    assert steepest / flattest > 1e4  # the cliff: at least four orders of magnitude


def test_the_gradient_norm_spans_orders_of_magnitude(facts: Facts) -> None:
    cliff = facts.cliff
    assert cliff.grad_norm_max / cliff.grad_norm_min > 1e5
    assert cliff.grad_norm_max > 1.0  # on the cliff a step of lr 1 moves more than 1


def test_clipping_keeps_gradient_descent_from_being_thrown(facts: Facts) -> None:
    cliff = facts.cliff
    assert len(cliff.thrown) >= 3
    assert cliff.longest_step > 50
    for i in cliff.thrown:
        plain, clipped = float(cliff.plain.loss[i]), float(cliff.clipped.loss[i])
        # thrown onto the plateau where σ(x₅₀) → 1: loss (1 − 0.7)² = 0.09
        assert plain == pytest.approx(0.09, abs=5e-3)
        assert clipped < plain / 10


def test_unclipped_run_diverges_and_clipped_runs_train(facts: Facts) -> None:
    net = facts.net
    assert net.unclipped_status == "diverged"
    assert not math.isfinite(net.unclipped_final_loss)
    assert net.unclipped_stopped_step < 50
    assert net.safe_status == "budget" and net.safe_final_loss < net.initial_loss
    assert set(net.clipped) == {"value", "norm", "agc"}
    for kind, run_facts in net.clipped.items():
        assert run_facts.status == "budget", kind
        final = run_facts.final_loss
        assert math.isfinite(final), kind
        assert final < 0.5 * net.initial_loss, kind  # trained, from ≈ ln 10
        assert final < net.unclipped_max_finite_loss, kind
        assert run_facts.test_accuracy is not None and run_facts.test_accuracy > 0.5, kind
        assert run_facts.clip_rate > 0, kind


def test_clipping_never_grows_the_norm_and_norm_clipping_caps_it(facts: Facts) -> None:
    clipped = facts.net.clipped
    for kind, run_facts in clipped.items():
        before = run_facts.norm_before.double()
        after = run_facts.norm_after.double()
        assert len(before) == len(after) > 0
        # measured from float32 weight steps: a relative error of ~1e-5 at most
        assert bool((after <= before * (1 + 1e-4)).all()), kind
    norm = clipped["norm"]
    before = norm.norm_before.double()
    after = norm.norm_after.double()
    expected = before.clamp(max=norm.threshold)  # the definition of norm clipping
    torch.testing.assert_close(after, expected, rtol=1e-4, atol=0)


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory) -> Lesson:
    return run("clipping", tmp_path_factory.mktemp("clipping"), quick=True)


def test_the_report_embeds_every_figure_and_parses(lesson: Lesson) -> None:
    check_report(lesson, 3)
