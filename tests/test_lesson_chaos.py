"""The chaos lesson (issue 7, lesson 8): the edge of chaos for deep tanh nets, asserted.

The references are independent of the lesson's code: for tanh at σ_b² = 0.05 the
published critical weight variance is σ_w² ≈ 1.76 (Poole et al. 2016, Fig. 2;
Schoenholz et al. 2017, Fig. 1); there χ₁ = 1 and the correlation depth ξ_c = −1/ln χ_c
diverges, so it is largest on any grid at the grid point nearest the edge; Schoenholz et
al. (§5) found the trainable depth largest near the edge and limited to about 6ξ_c away
from it. The measured χ₁ (the probe's squared per-layer gradient factor in a random net)
is checked against the closed definition χ₁ = σ_w² E[tanh′(√q* z)²], integrated here by
plain Monte Carlo, not by the library's quadrature.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from lesson_checks import check_report

from initlab.lessons import Env, run
from initlab.lessons.chaos import SIZES, Facts, compute, findings


@pytest.fixture(scope="module")
def facts() -> Facts:
    """The quick size's facts, computed without drawing."""
    return compute(SIZES["quick"], Env())


def _chi1_monte_carlo(sigma_w2: float, q_star: float) -> float:
    """σ_w² E[tanh′(√q* z)²], z ~ N(0, 1), by Monte Carlo (10⁶ draws: ~1e-3 relative)."""
    g = torch.Generator().manual_seed(0)  # a fixed draw: the tolerance below holds for it
    z = torch.randn(1_000_000, generator=g, dtype=torch.float64)
    slope = 1 - torch.tanh(math.sqrt(q_star) * z) ** 2
    return sigma_w2 * float((slope**2).mean())


@pytest.mark.numerics
def test_the_critical_point_is_the_published_one(facts: Facts) -> None:
    assert facts.sigma_b2 == 0.05
    assert facts.critical_sigma_w2 == pytest.approx(1.76, abs=0.01)
    assert facts.chi1_at_critical == pytest.approx(1.0, abs=1e-6)
    critical = facts.critical_index
    assert facts.sigma_w2[critical] == facts.critical_sigma_w2
    # χ₁ < 1 below the edge, > 1 above it.
    for s, chi in zip(facts.sigma_w2, facts.chi1, strict=True):
        if s < facts.critical_sigma_w2 - 1e-9:
            assert chi < 1.0
        elif s > facts.critical_sigma_w2 + 1e-9:
            assert chi > 1.0


def test_chi1_matches_its_definition(facts: Facts) -> None:
    g = torch.Generator().manual_seed(1)  # a fixed draw: the tolerance below holds for it
    z = torch.randn(1_000_000, generator=g, dtype=torch.float64)
    for s, q, chi in zip(facts.sigma_w2, facts.q_star, facts.chi1, strict=True):
        # q* is the q-map's fixed point: σ_w² E[tanh(√q* z)²] + σ_b² = q*.
        q_next = s * float((torch.tanh(math.sqrt(q) * z) ** 2).mean()) + facts.sigma_b2
        assert q_next == pytest.approx(q, rel=5e-3)
        assert chi == pytest.approx(_chi1_monte_carlo(s, q), rel=5e-3)


def test_xi_c_diverges_at_the_edge(facts: Facts) -> None:
    xi = facts.xi_c
    critical = facts.critical_index
    assert max(range(len(xi)), key=lambda i: xi[i]) == critical
    assert xi[critical] > 1e3
    # In the ordered phase c* = 1, so χ_c = χ₁ and ξ_c = −1/ln χ₁: a few layers.
    chi = _chi1_monte_carlo(facts.sigma_w2[0], facts.q_star[0])
    assert facts.sigma_w2[0] < facts.critical_sigma_w2
    assert xi[0] == pytest.approx(-1 / math.log(chi), rel=2e-2)


def test_measured_chi1_follows_the_theory(facts: Facts) -> None:
    for s, measured, theory in zip(facts.sigma_w2, facts.chi1_measured, facts.chi1, strict=True):
        # Width 64 and one draw of the weights: the fitted factor scatters by a few percent.
        assert measured == pytest.approx(theory, rel=0.1), s


def test_trainable_depth_grows_toward_the_critical_point(facts: Facts) -> None:
    deepest = facts.deepest_trainable
    critical = facts.critical_index
    # Deeper at the edge than deep in the ordered phase, and at least as deep as far in
    # the chaotic one.
    assert deepest[critical] > deepest[0]
    assert deepest[critical] >= deepest[-1]
    assert deepest[critical] == max(deepest)
    # The deepest net on the grid at σ_w² = 1 (6ξ_c ≈ 22 < depth) does not train.
    accuracy = facts.accuracy
    assert facts.depths[-1] > 6 * facts.xi_c[0]
    assert accuracy[-1][0] < facts.threshold
    assert accuracy[-1][critical] >= facts.threshold


def test_findings_quote_the_facts(facts: Facts) -> None:
    found = findings(facts)
    assert f"σ_w² = {facts.critical_sigma_w2:.3f}" in found[0]
    deepest = facts.deepest_trainable
    assert f"to {deepest[facts.critical_index]} layers" in found[2]


def test_report_embeds_every_figure_and_parses(tmp_path: Path) -> None:
    lesson = run("chaos", tmp_path, quick=True)
    assert isinstance(lesson.facts, Facts)
    # the findings quote the run's own facts
    assert f"σ_w² = {lesson.facts.critical_sigma_w2:.3f}" in lesson.findings[0]
    check_report(lesson, 4)
