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

from initlab.lessons import Lesson
from initlab.lessons.clipping import run


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory) -> Lesson:
    return run(tmp_path_factory.mktemp("clipping"), quick=True)


def _loss(w: float, b: float, x0: float, steps: int, target: float) -> float:
    """Pascanu et al.'s one-neuron RNN, in plain Python floats."""
    x = x0
    for _ in range(steps):
        x = w / (1.0 + math.exp(-x)) + b
    return (1.0 / (1.0 + math.exp(-x)) - target) ** 2


def test_the_rnn_loss_and_gradient_match_a_finite_difference(lesson: Lesson) -> None:
    facts = lesson.facts
    assert facts["x0"] == 0.5 and facts["rnn_steps"] == 50 and facts["target"] == 0.7
    args = (facts["x0"], facts["rnn_steps"], facts["target"])
    norms = []
    for point in facts["probe_points"]:
        w, b = point["w"], point["b"]
        assert point["loss"] == pytest.approx(_loss(w, b, *args), rel=1e-12, abs=1e-300)
        h = 1e-7  # central differences: error O(h²) against float rounding O(1e-16/h)
        dw = (_loss(w + h, b, *args) - _loss(w - h, b, *args)) / (2 * h)
        db = (_loss(w, b + h, *args) - _loss(w, b - h, *args)) / (2 * h)
        scale = math.hypot(dw, db)
        assert point["grad"][0] == pytest.approx(dw, rel=1e-4, abs=1e-6 * scale)
        assert point["grad"][1] == pytest.approx(db, rel=1e-4, abs=1e-6 * scale)
        norms.append(scale)
    steepest, flattest = norms[0], norms[1]
    assert steepest == pytest.approx(facts["grad_norm_max"], rel=1e-4)
    assert steepest / flattest > 1e4  # the cliff: at least four orders of magnitude


def test_the_gradient_norm_spans_orders_of_magnitude(lesson: Lesson) -> None:
    facts = lesson.facts
    assert facts["grad_norm_max"] / facts["grad_norm_min"] > 1e5
    assert facts["grad_norm_max"] > 1.0  # on the cliff a step of lr 1 moves more than 1


def test_clipping_keeps_gradient_descent_from_being_thrown(lesson: Lesson) -> None:
    facts = lesson.facts
    assert facts["thrown"] >= 3
    assert facts["longest_step"] > 50
    for plain, clipped in zip(
        facts["thrown_final_loss_plain"], facts["thrown_final_loss_clipped"], strict=True
    ):
        # thrown onto the plateau where σ(x₅₀) → 1: loss (1 − 0.7)² = 0.09
        assert plain == pytest.approx(0.09, abs=5e-3)
        assert clipped < plain / 10


def test_unclipped_run_diverges_and_clipped_runs_train(lesson: Lesson) -> None:
    facts = lesson.facts
    assert facts["unclipped_status"] == "diverged"
    assert not math.isfinite(facts["unclipped_final_loss"])
    assert facts["unclipped_stopped_step"] < 50
    assert facts["safe_status"] == "budget" and facts["safe_final_loss"] < facts["initial_loss"]
    assert set(facts["clipped"]) == {"value", "norm", "agc"}
    for kind, run_facts in facts["clipped"].items():
        assert run_facts["status"] == "budget", kind
        final = run_facts["final_loss"]
        assert math.isfinite(final), kind
        assert final < 0.5 * facts["initial_loss"], kind  # trained, from ≈ ln 10
        assert final < facts["unclipped_max_finite_loss"], kind
        assert run_facts["test_accuracy"] > 0.5, kind
        assert run_facts["clip_rate"] > 0, kind


def test_clipping_never_grows_the_norm_and_norm_clipping_caps_it(lesson: Lesson) -> None:
    clipped = lesson.facts["clipped"]
    for kind, run_facts in clipped.items():
        before = torch.tensor(run_facts["norm_before"], dtype=torch.float64)
        after = torch.tensor(run_facts["norm_after"], dtype=torch.float64)
        assert len(before) == len(after) > 0
        # measured from float32 weight steps: a relative error of ~1e-5 at most
        assert bool((after <= before * (1 + 1e-4)).all()), kind
    norm = clipped["norm"]
    before = torch.tensor(norm["norm_before"], dtype=torch.float64)
    after = torch.tensor(norm["norm_after"], dtype=torch.float64)
    expected = before.clamp(max=norm["threshold"])  # the definition of norm clipping
    torch.testing.assert_close(after, expected, rtol=1e-4, atol=0)


def test_the_report_embeds_every_figure_and_parses(lesson: Lesson) -> None:
    check_report(lesson, 3)
