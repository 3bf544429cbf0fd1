"""The batch-norm lesson (issue 7, lesson 4): Ioffe & Szegedy §4.1, the grid, two modes.

The acceptance claims of the issue are asserted on the quick run's facts: BN has the
higher test accuracy at the same step and the steadier percentile band, and wins more
cells of the init × learning-rate grid. Inference mode is checked against the formula of
Ioffe & Szegedy's Alg. 2 written out here in float64 from the member's own parameters
and running averages (independent of initlab's batch norm), and training mode against
Alg. 1 (the batch's mean and biased variance).
"""

from __future__ import annotations

import math

import pytest
import torch
from lesson_checks import check_report

from initlab.lessons import Env, Lesson, run
from initlab.lessons.batchnorm import SIZES, Facts, compute

HIDDEN = 3  # Linear (no bias) → BatchNorm1d → Sigmoid, three times, then Linear


@pytest.fixture(scope="module")
def facts() -> Facts:
    """The quick size's facts, computed without drawing."""
    return compute(SIZES["quick"], Env())


def _forward(facts: Facts, statistics: str) -> torch.Tensor:
    """The BN member's logits by the paper's formulas, in float64: with the running
    averages (inference) or with the batch's own mean and biased variance (training)."""
    state = {k: v.double() for k, v in facts.modes.member_state.items()}
    eps = facts.modes.eps
    h = facts.modes.batch.double()
    for i in range(HIDDEN):
        a = h @ state[f"{3 * i}.weight"].T
        if statistics == "running":
            mean, var = state[f"{3 * i + 1}.running_mean"], state[f"{3 * i + 1}.running_var"]
        else:
            mean, var = a.mean(dim=0), a.var(dim=0, unbiased=False)
        a = (a - mean) / torch.sqrt(var + eps) * state[f"{3 * i + 1}.weight"]
        h = torch.sigmoid(a + state[f"{3 * i + 1}.bias"])
    return h @ state[f"{3 * HIDDEN}.weight"].T + state[f"{3 * HIDDEN}.bias"]


def test_bn_has_the_higher_test_accuracy_at_the_same_step(facts: Facts) -> None:
    plain, bn = facts.plain.mean_accuracy.tolist(), facts.bn.mean_accuracy.tolist()
    steps = facts.plain.steps
    assert steps[0] == 0 and len(plain) == len(bn) == len(steps) and facts.bn.steps == steps
    # At step 0 both nets are untrained: near a tenth right, like any 10-class guess.
    assert plain[0] == pytest.approx(0.1, abs=0.07) and bn[0] == pytest.approx(0.1, abs=0.07)
    for i in range(1, len(bn)):  # every measurement after training began
        assert bn[i] > plain[i], (steps[i], bn[i], plain[i])
    assert bn[1] > plain[1] + 0.3  # the first measurement: BN far ahead


def test_bn_holds_the_percentile_band_steadier(facts: Facts) -> None:
    plain, bn = facts.plain, facts.bn
    assert bn.drift_unit < plain.drift_unit
    assert bn.drift_all < 0.5 * plain.drift_all
    assert bn.drift_late < plain.drift_late
    for band in plain.band.tolist() + bn.band.tolist():
        assert band[0] <= band[1] <= band[2]  # 15th ≤ 50th ≤ 85th
    # At init γ = 1, β = 0: the input to the sigmoid is the pre-activation standardized over
    # the batch; for a near-normal unit the 15th–85th range is 2·Φ⁻¹(0.85) = 2.073. The
    # tolerance allows for the unit's distribution not being exactly normal.
    first = bn.band[0].tolist()
    assert first[2] - first[0] == pytest.approx(2 * 1.0364334, abs=0.35)


def test_bn_wins_more_cells_of_the_init_and_lr_grid(facts: Facts) -> None:
    grid = facts.grid
    cells = len(grid.gains) * len(grid.lrs)
    assert grid.bn_wins + grid.plain_wins <= cells
    assert grid.bn_wins > grid.plain_wins
    assert grid.trained_bn > grid.trained_plain
    # Recount from the grids themselves (a diverged cell, NaN, is the worse one).
    plain = grid.loss["without BN"].nan_to_num(math.inf)
    bn = grid.loss["with BN"].nan_to_num(math.inf)
    assert int((bn < plain).sum()) == grid.bn_wins
    # The smallest init scale without BN: the sigmoid net stays at chance, ln 10.
    assert float(grid.loss["without BN"][0, 0]) == pytest.approx(math.log(10), abs=0.1)


def test_inference_mode_equals_the_formula_with_running_averages(facts: Facts) -> None:
    expected = _forward(facts, "running")
    # float32 lesson against a float64 reference: logits of size ~10, rounding ~1e-6.
    torch.testing.assert_close(facts.modes.late.eval.double(), expected, atol=1e-4, rtol=0)
    assert facts.modes.hand_error < 1e-4


def test_training_mode_uses_the_batch_statistics(facts: Facts) -> None:
    expected = _forward(facts, "batch")
    torch.testing.assert_close(facts.modes.late.train.double(), expected, atol=1e-4, rtol=0)
    # and the two modes differ less once the running averages have caught up
    assert facts.modes.late.gap < facts.modes.early.gap


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory) -> Lesson:
    return run("batchnorm", tmp_path_factory.mktemp("batchnorm"), quick=True)


def test_the_report_embeds_every_figure_and_parses(lesson: Lesson) -> None:
    check_report(lesson, 4)
