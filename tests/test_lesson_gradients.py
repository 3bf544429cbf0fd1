"""The gradients lesson (issue 7, lesson 6): vanishing and exploding gradients, asserted.

The references are independent of the lesson's code: the per-layer factor of the
back-propagated gradient in a wide net with weight variance v between layers of n units is
√(n·v·E[φ′²]) — for ReLU, E[φ′²] = 1/2, so 1/√2 for Xavier (v = 1/n) and 1 for He
(v = 2/n) (He et al. 2015, eq. 14); for tanh with the standard init U[±1/√n] (v = 1/(3n))
it is at most 1/√3. Glorot & Bengio 2010 (§4.2.2, Fig. 7) and He et al. 2015 (Fig. 3)
give the qualitative findings: the standard init's gradient shrinks toward the input more
than the normalized init's; a 30-layer ReLU net trains from He init and stalls from Xavier.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from lesson_checks import check_report

from initlab.lessons import Env, run
from initlab.lessons.gradients import SIZES, Facts, compute, findings


@pytest.fixture(scope="module")
def facts() -> Facts:
    """The quick size's facts, computed without drawing."""
    return compute(SIZES["quick"], Env())


def test_relu_gradient_factor_is_one_over_root_two_for_xavier_and_one_for_he(
    facts: Facts,
) -> None:
    relu = facts.profiles["relu"]
    # 30 layers of 128 units: finite-width scatter of the fitted factor is ~1 %; 5 % is
    # the tolerance.
    assert relu["Xavier"].backward == pytest.approx(1 / math.sqrt(2), rel=0.05)
    assert relu["He"].backward == pytest.approx(1.0, rel=0.05)
    # The standard init's v = 1/(3n): √(n·v/2) = 1/√6.
    assert relu["standard"].backward == pytest.approx(1 / math.sqrt(6), rel=0.05)
    # Leaky ReLU (slope 0.01) is ReLU to within (1 + 0.01²)/2.
    leaky = facts.profiles["leaky_relu"]
    assert leaky["Xavier"].backward == pytest.approx(1 / math.sqrt(2), rel=0.05)


def test_measured_factors_agree_with_the_forecast(facts: Facts) -> None:
    for activation, inits in facts.profiles.items():
        for label, profile in inits.items():
            assert profile.backward == pytest.approx(profile.backward_forecast, rel=0.05), (
                activation,
                label,
            )


def test_sigmoid_vanishes_under_every_init(facts: Facts) -> None:
    # σ′ ≤ 1/4: even He's v = 2/n gives at most √(2·(1/4)²)·... < 1/2 per layer.
    for label, profile in facts.profiles["sigmoid"].items():
        assert profile.backward < 0.5, label
        assert profile.grad_ratio < 1e-6, label


def test_glorot_standard_init_shrinks_the_gradient_more_than_normalized(
    facts: Facts,
) -> None:
    glorot = facts.glorot
    standard, normalized = glorot["standard"], glorot["normalized"]
    assert standard.grad_ratio < normalized.grad_ratio
    # tanh′ ≤ 1 and v = 1/(3n): at most 1/√3 per layer, four layers from last to first.
    assert standard.backward <= 1 / math.sqrt(3) * 1.05
    assert standard.grad_ratio < (1 / math.sqrt(3)) ** 4 * 1.2
    # The normalized init keeps far more: several times the standard init's ratio.
    assert normalized.grad_ratio > 3 * standard.grad_ratio


def test_he_trains_where_xavier_stalls(facts: Facts) -> None:
    he = facts.he_training
    start, end = he.loss_start, he.loss_end
    # Both start near a uniform guess over 10 classes.
    assert start["Xavier"] == pytest.approx(math.log(10), abs=0.1)
    assert start["He"] == pytest.approx(math.log(10), abs=0.3)
    # He's loss falls by a factor; Xavier's stays within 2 % of where it started.
    assert start["He"] / end["He"] > 1.5
    assert end["Xavier"] > 0.98 * start["Xavier"]
    assert he.test_accuracy["He"] > he.test_accuracy["Xavier"] + 0.2


def test_findings_quote_the_facts(facts: Facts) -> None:
    relu = facts.profiles["relu"]
    found = findings(facts)
    assert f"{relu['Xavier'].backward:.3f}×" in found[0]
    assert f"{relu['He'].backward:.3f}×" in found[0]
    assert len(found) == 4


def test_report_embeds_every_figure_and_parses(tmp_path: Path) -> None:
    lesson = run("gradients", tmp_path, quick=True)
    assert isinstance(lesson.facts, Facts)
    relu = lesson.facts.profiles["relu"]
    assert f"{relu['Xavier'].backward:.3f}×" in lesson.findings[0]  # the run's own facts
    check_report(lesson, 4)


def test_knobs_change_the_depth_and_the_trained_activation() -> None:
    from dataclasses import fields, replace

    from initlab.lessons.gradients import KNOBS, Size

    assert set(KNOBS) <= {f.name for f in fields(Size)}
    tiny = Size(probe_batch=16, glorot_width=16, he_train=100, he_steps=2, he_seeds=1)
    facts = compute(replace(tiny, depth=5, activation="gelu"), Env())
    assert facts.depth == 5 and facts.he_training.depth == 5
    assert facts.he_training.activation == "gelu"
    # The knob's activation is probed beside the four, each net 5 hidden layers deep.
    assert facts.activations == ("sigmoid", "tanh", "relu", "leaky_relu", "gelu")
    for inits in facts.profiles.values():
        assert all(len(p.grad) == 5 for p in inits.values())
    assert "5-layer ReLU net" in findings(facts)[0]
    assert "5-layer gelu net" in findings(facts)[2]
    with pytest.raises(ValueError, match="'depth'.*≥ 3"):
        replace(tiny, depth=2)
    with pytest.raises(ValueError, match="'activation'.*tanh"):
        replace(tiny, activation="tanhh")
