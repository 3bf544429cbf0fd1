"""The landscape lesson (issue 7, lesson 7): minima, saddles, noise, convergence, a slice.

References independent of the lesson's code: the 1-D function's critical points are the
roots of the derivative the docstring states (found here with NumPy, classified by the
sign of f″); Himmelblau's minima and saddle are the published coordinates; the slice's
loss at its centre is recomputed with a plain ``nn.Sequential``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lesson_checks import check_report
from torch.nn import functional as F

from initlab import models
from initlab.lessons import Lesson
from initlab.lessons.landscape import (
    filter_normalized_direction,
    himmelblau,
    loss_slice,
    run,
    wells,
)

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
def lesson(tmp_path_factory: pytest.TempPathFactory) -> Lesson:
    return run(tmp_path_factory.mktemp("landscape"), quick=True)


def test_the_1d_function_is_the_stated_formula() -> None:
    x = torch.linspace(-2.2, 2.2, 101, dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(wells(x).sum(), x)
    expected = np.polyval(DERIVATIVE, x.detach().numpy())
    np.testing.assert_allclose(slope.numpy(), expected, rtol=1e-9, atol=1e-9)
    assert wells(torch.zeros(1, dtype=torch.float64)).item() == 0.0
    assert _analytic_minima() == pytest.approx([-1.8, -0.55, 1.7])


def test_1d_starts_reach_different_analytic_minima(lesson: Lesson) -> None:
    minima = _analytic_minima()
    facts = lesson.facts
    reached = set()
    for end, place in zip(facts["ends_1d"], facts["places_1d"], strict=True):
        distance = min(abs(end - m) for m in minima)
        if place != "flat saddle":
            assert distance < 1e-3, (end, place)
            reached.add(min(minima, key=lambda m: abs(end - m)))
    assert len(reached) == 3  # every minimum, from a different start
    # f at the minima: −1.8 is the global one
    values = facts["f_at_minima_1d"]
    assert values[0] == min(values)


def test_the_convergence_test_is_fooled_by_the_flat_saddle(lesson: Lesson) -> None:
    facts = lesson.facts
    j = facts["saddle_1d_run"]
    assert facts["starts_1d"][j] == pytest.approx(0.6)
    assert facts["stops_1d"][j] is not None  # the tolerance test stopped it
    assert abs(facts["saddle_1d_stop"] - 0.95) < 0.05  # beside the flat saddle …
    assert min(abs(facts["saddle_1d_stop"] - m) for m in _analytic_minima()) > 0.5  # no minimum
    stopped = [s for i, s in enumerate(facts["stops_1d"]) if i != j]
    assert facts["stops_1d"][j] > max(stopped)  # and it crept far longer than the rest


def test_noise_escapes_the_shallow_minimum_and_gd_does_not(lesson: Lesson) -> None:
    facts = lesson.facts
    minima = _analytic_minima()
    assert facts["gd_shallow_end"] == pytest.approx(-0.55, abs=1e-3)
    runs = facts["noisy_runs"]
    assert facts["noisy_escaped"] >= runs // 2
    # With the noise decayed to zero, every noisy run rests at an analytic minimum.
    for end in facts["noisy_ends"]:
        assert min(abs(end - m) for m in minima) < 1e-2
    left = sum(abs(end - (-0.55)) > 0.1 for end in facts["noisy_ends"])
    assert left == facts["noisy_escaped"]


@pytest.mark.numerics
def test_2d_starts_reach_the_published_minima(lesson: Lesson) -> None:
    ends = np.array(lesson.facts["ends_2d"])
    distance = np.linalg.norm(ends[:, None, :] - HIMMELBLAU_MINIMA[None], axis=-1)
    assert distance.min(axis=1).max() < 1e-4
    assert len(set(distance.argmin(axis=1).tolist())) >= 3  # different minima
    assert himmelblau(torch.tensor(HIMMELBLAU_MINIMA)).abs().max().item() < 1e-9


def test_the_saddle_slows_gradient_descent(lesson: Lesson) -> None:
    facts = lesson.facts
    np.testing.assert_allclose(facts["saddle"], SADDLE, atol=1e-5)
    low, high = facts["saddle_eigenvalues"]
    assert low < 0 < high  # a saddle: downhill one way, uphill the other
    assert facts["saddle_near_steps"] > facts["away_near_steps"]
    assert facts["saddle_steps"] > facts["away_steps"]
    # Both starts lie equally far from the saddle.
    d_saddle = np.linalg.norm(np.array(facts["saddle_start"]) - SADDLE)
    d_away = np.linalg.norm(np.array(facts["away_start"]) - SADDLE)
    assert d_saddle == pytest.approx(d_away, abs=2e-3)


def test_the_trained_point_is_the_slice_minimum(lesson: Lesson) -> None:
    facts = lesson.facts
    losses = torch.tensor(facts["slice_losses"])
    spacing = facts["slice_axis"][1] - facts["slice_axis"][0]
    a, b = facts["slice_argmin"]
    assert abs(a) <= spacing + 1e-6 and abs(b) <= spacing + 1e-6
    assert facts["slice_centre_loss"] <= facts["slice_min_loss"] * 1.05 + 1e-6
    assert facts["slice_edge_loss"][0] > 10 * facts["slice_centre_loss"]
    assert losses.shape == (facts["slice_grid"], facts["slice_grid"])


def test_filter_normalized_direction_matches_each_row() -> None:
    generator = torch.Generator().manual_seed(3)
    weights = {"w": torch.randn(5, 7), "b": torch.randn(5), "v": torch.randn(3, 5)}
    d = filter_normalized_direction(weights, generator)
    for name in ("w", "v"):
        torch.testing.assert_close(d[name].norm(dim=1), weights[name].norm(dim=1))
    assert torch.count_nonzero(d["b"]) == 0


def test_loss_slice_centre_is_the_plain_network_loss() -> None:
    torch.manual_seed(0)  # the data and the net's torch-default init: any values do
    net = models.mlp([6, 8, 3], "relu", members=1)
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    theta = {n: p.detach()[0] for n, p in net.named_parameters()}
    generator = torch.Generator().manual_seed(0)
    dirs = (filter_normalized_direction(theta, generator),) * 2
    axis = torch.tensor([-0.5, 0.0, 0.5])
    grid = loss_slice(net, x, y, dirs, axis, axis, chunk=4)
    plain = models.to_module(net, 0)
    torch.testing.assert_close(grid[1, 1], F.cross_entropy(plain(x), y))
    # α = β = 0.5 along the same direction twice is α = 1 along it.
    names = [name for name, _ in net.named_parameters()]  # the same order as plain's
    with torch.no_grad():
        for p, name in zip(plain.parameters(), names, strict=True):
            p.copy_(theta[name] + dirs[0][name])
    torch.testing.assert_close(grid[2, 2], F.cross_entropy(plain(x), y))


def test_loss_slice_wants_one_member() -> None:
    net = models.mlp([2, 3, 2], "relu", members=2)
    with pytest.raises(ValueError, match="one member"):
        loss_slice(
            net,
            torch.zeros(4, 2),
            torch.zeros(4, dtype=torch.long),
            ({}, {}),
            torch.zeros(1),
            torch.zeros(1),
        )


def test_report_embeds_every_figure_and_parses(lesson: Lesson) -> None:
    check_report(lesson, 6)
    assert "reached 3 different minima" in lesson.findings[0]
