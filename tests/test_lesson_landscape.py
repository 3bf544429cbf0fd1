"""The landscape lesson (issue 7, lesson 7): minima, saddles, noise, convergence, a slice.

References independent of the lesson's code: the 1-D function's critical points are the
roots of the derivative the docstring states (found here with NumPy, classified by the
sign of f″); Himmelblau's minima and saddle are the published coordinates. (The slice's
loss against a plain ``nn.Sequential`` is in test_surfaces.py, with ``loss_slice``.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lesson_checks import check_report

from initlab.lessons import Env, Lesson, run
from initlab.lessons.landscape import SIZES, Facts, compute, himmelblau, wells

# f′(x) = (x + 1.8)(x + 1)(x + 0.55)(x − 0.3)(x − 1.7)(x − 0.95)², as the lesson states.
DERIVATIVE = np.poly([-1.8, -1.0, -0.55, 0.3, 1.7, 0.95, 0.95])
# Himmelblau (1972): the four minima, all f = 0, and the saddle between (3, 2) and
# (−2.805, 3.131).
HIMMELBLAU_MINIMA = np.array(
    [[3.0, 2.0], [-2.805118, 3.131312], [-3.779310, -3.283186], [3.584428, -1.848126]]
)
SADDLE = np.array([0.086677, 2.884254])


def _analytic_minima() -> list[float]:
    roots = np.roots(DERIVATIVE)
    real = sorted({round(float(r.real), 6) for r in roots if abs(r.imag) < 1e-6})
    second = np.polyder(DERIVATIVE)
    return [r for r in real if np.polyval(second, r) > 1e-6]


@pytest.fixture(scope="module")
def env() -> Env:
    return Env()


@pytest.fixture(scope="module")
def facts(env: Env) -> Facts:
    """The quick size's facts, computed without drawing."""
    return compute(SIZES["quick"], env)


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory) -> Lesson:
    return run("landscape", tmp_path_factory.mktemp("landscape"), quick=True)


def test_the_1d_function_is_the_stated_formula() -> None:
    x = torch.linspace(-2.2, 2.2, 101, dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(wells(x).sum(), x)
    expected = np.polyval(DERIVATIVE, x.detach().numpy())
    np.testing.assert_allclose(slope.numpy(), expected, rtol=1e-9, atol=1e-9)
    assert wells(torch.zeros(1, dtype=torch.float64)).item() == 0.0
    assert _analytic_minima() == pytest.approx([-1.8, -0.55, 1.7])


def test_compute_says_what_it_does(facts: Facts, env: Env) -> None:
    assert env.stages == [
        "1-D: gradient descent from several starts",
        "1-D: noise against a shallow minimum",
        "2-D: Himmelblau's function from several starts",
        "2-D: a saddle slows gradient descent",
        "a real net: training",
        "a real net: the loss slice",
    ]


def test_1d_starts_reach_different_analytic_minima(facts: Facts) -> None:
    minima = _analytic_minima()
    reached = set()
    for end, place in zip(facts.one_d.ends, facts.one_d.places, strict=True):
        distance = min(abs(end - m) for m in minima)
        if place != "flat saddle":
            assert distance < 1e-3, (end, place)
            reached.add(min(minima, key=lambda m: abs(end - m)))
    assert len(reached) == 3  # every minimum, from a different start
    # f at the minima: −1.8 is the global one
    values = facts.one_d.f_at_minima
    assert values[0] == min(values)


def test_the_convergence_test_is_fooled_by_the_flat_saddle(facts: Facts) -> None:
    one_d, creeper = facts.one_d, facts.one_d.creeper
    assert creeper is not None
    j, stops = creeper.run, one_d.descent.stop
    assert one_d.starts[j] == pytest.approx(0.6)
    assert stops[j] is not None  # the tolerance test stopped it
    assert abs(creeper.x - 0.95) < 0.05  # beside the flat saddle …
    assert min(abs(creeper.x - m) for m in _analytic_minima()) > 0.5  # no minimum
    stopped = [s for i, s in enumerate(stops) if i != j]
    assert stops[j] > max(stopped)  # and it crept far longer than the rest


def test_noise_escapes_the_shallow_minimum_and_gd_does_not(facts: Facts) -> None:
    noise = facts.noise
    minima = _analytic_minima()
    assert noise.gd_end == pytest.approx(-0.55, abs=1e-3)
    assert noise.escaped >= noise.runs // 2
    # With the noise decayed to zero, every noisy run rests at an analytic minimum.
    for end in noise.ends:
        assert min(abs(end - m) for m in minima) < 1e-2
    left = sum(abs(end - (-0.55)) > 0.1 for end in noise.ends)
    assert left == noise.escaped


@pytest.mark.numerics
def test_2d_starts_reach_the_published_minima(facts: Facts) -> None:
    ends = facts.two_d.ends.numpy()
    distance = np.linalg.norm(ends[:, None, :] - HIMMELBLAU_MINIMA[None], axis=-1)
    assert distance.min(axis=1).max() < 1e-4
    assert len(set(distance.argmin(axis=1).tolist())) >= 3  # different minima
    assert himmelblau(torch.tensor(HIMMELBLAU_MINIMA)).abs().max().item() < 1e-9


def test_the_saddle_slows_gradient_descent(facts: Facts) -> None:
    saddle = facts.saddle
    np.testing.assert_allclose(saddle.point.numpy(), SADDLE, atol=1e-5)
    low, high = saddle.eigenvalues
    assert low < 0 < high  # a saddle: downhill one way, uphill the other
    assert saddle.near[0] > saddle.near[1]
    saddle_steps, away_steps = saddle.descent.stop
    assert saddle_steps is not None and away_steps is not None
    assert saddle_steps > away_steps
    # Both starts lie equally far from the saddle.
    d_saddle = np.linalg.norm(saddle.start.numpy() - SADDLE)
    d_away = np.linalg.norm(saddle.away.numpy() - SADDLE)
    assert d_saddle == pytest.approx(d_away, abs=2e-3)


def test_the_trained_point_is_the_slice_minimum(facts: Facts) -> None:
    plane = facts.slice
    spacing = float(plane.axis[1] - plane.axis[0])
    a, b = plane.argmin
    assert abs(a) <= spacing + 1e-6 and abs(b) <= spacing + 1e-6
    assert plane.centre_loss <= plane.min_loss * 1.05 + 1e-6
    assert plane.edge_loss[0] > 10 * plane.centre_loss
    assert plane.losses.shape == (plane.grid, plane.grid)


def test_report_embeds_every_figure_and_parses(lesson: Lesson) -> None:
    check_report(lesson, 6)
    assert "reached 3 different minima" in lesson.findings[0]
