"""The init lesson (issue 7, lesson 1), asserted against independent references.

References: the costs the deeplearning.ai notebook "Initialization" prints (the same
published numbers as ``tests/test_lessons.py``); symmetry checked on the trained weights
themselves, pair by pair; the signal-propagation rule that a tanh layer near 0 scales
the std of its input by σ_w·√fan_in (small random: 0.01·√300; PyTorch's uniform
U(±1/√fan_in): √(1/3)); the tail mass of a Gaussian pre-activation for saturation.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from lesson_checks import check_report

from initlab.lessons import Lesson, run
from initlab.lessons.init import circles

# The notebook's printed costs at iterations 0 and 1000 (He; large random).
HE_PUBLISHED = [0.8830537463419761, 0.6879825919728063]
RANDOM_1000_PUBLISHED = 0.6247924745506072


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory) -> Lesson:
    return run("init", tmp_path_factory.mktemp("init"), quick=True)


def _max_pairwise_difference(rows: list[list[float]]) -> float:
    """The largest |r_i[k] − r_j[k]| over all pairs of units i < j, written out."""
    return max(
        (abs(a - b) for r, s in itertools.combinations(rows, 2) for a, b in zip(r, s, strict=True)),
        default=0.0,
    )


def test_zeros_and_ones_keep_every_hidden_unit_identical(lesson: Lesson) -> None:
    runs = lesson.facts.circles.runs
    # per hidden layer, the rows [W_i, b_i] of the trained weights, as plain numbers
    weights = {label: [w.tolist() for w in run.weights] for label, run in runs.items()}
    for label in ("zeros", "ones"):
        for layer, rows in enumerate(weights[label]):
            size = max(abs(v) for row in rows for v in row)
            # zeros: exactly; ones: to rounding (identical units compute identical sums,
            # but a matrix kernel may add one row in another order)
            assert _max_pairwise_difference(rows) <= 1e-12 * max(size, 1.0), (label, layer)
            assert runs[label].distinct_units[layer] == 1, (label, layer)
    assert weights["zeros"][0][0][0] == 0.0  # zero weights get zero gradients: still 0
    assert weights["ones"][0][0][0] != 1.0  # ones did train, all units alike
    # A random init breaks the symmetry: its units are far apart and all distinct.
    for label in ("he", "xavier", "random"):
        assert _max_pairwise_difference(weights[label][0]) > 0.1, label
        assert runs[label].distinct_units[0] > 1, label
    # Zero weights: the net answers ½ everywhere, its cost is log 2 at every print.
    costs = [c for _, c in runs["zeros"].costs]
    assert costs == pytest.approx([math.log(2)] * len(costs), rel=1e-15)
    assert runs["zeros"].train_accuracy == 0.5


def test_zeros_keep_the_mnist_units_identical(lesson: Lesson) -> None:
    zeros = lesson.facts.mnist.runs["zeros"]
    assert zeros.unit_spread == (0.0, 0.0, 0.0, 0.0)
    assert zeros.distinct_units == (1, 1, 1, 1)
    for name in ("Xavier", "He"):
        assert min(lesson.facts.mnist.runs[name].distinct_units) > 250, name


@pytest.mark.numerics
def test_the_notebook_runs_print_the_notebook_costs(lesson: Lesson) -> None:
    lines = list(lesson.lines)
    assert lines[0] == "initialization = 'zeros'"
    he = lines[lines.index("initialization = 'he'") :]
    printed = [float(line.split(": ")[1]) for line in he if line.startswith("Cost after")]
    assert printed == pytest.approx(HE_PUBLISHED, rel=1e-12)
    random = lines[lines.index("initialization = 'random'") :]
    assert random[1] == "Cost after iteration 0: inf"  # the sigmoid saturates to exactly 1
    # At iteration 1000 large random is chaotic, its cost the CPU's rounding: measured
    # 0.62593 with the AVX-512 kernels, 0.62306 with AVX2 (1 and 2 threads alike), the
    # notebook's 0.62479. So it is not compared; the finding sets it beside the notebook's.
    assert random[2].startswith("Cost after iteration 1000: ")
    here = float(random[2].split(": ")[1])
    assert (
        f"at iteration 1,000 here {here:.3g}, the notebook printed {RANDOM_1000_PUBLISHED:.3g}."
    ) in lesson.findings[3]
    # the further inits are reported apart, not in the notebook's format
    assert "initialization = 'ones'" not in lines
    assert any(line.startswith("initialization = 'xavier': train accuracy") for line in lines)


@pytest.mark.numerics
def test_the_notebook_runs_are_the_same_beside_the_further_inits(lesson: Lesson) -> None:
    # The lesson trains the notebook's three inits in one stack with four more. A member's
    # numbers never depend on its neighbours (the engine's contract), so the three alone
    # print the same, bit for bit, the chaotic large random run included.
    beside = lesson.facts.circles
    alone = circles(beside.steps)
    assert alone.labels == ("zeros", "random", "he") == beside.labels[:3]
    assert alone.lines == beside.lines[: len(alone.lines)]
    assert beside.lines[len(alone.lines)].startswith("Further inits in the same stack")
    for label in alone.labels:
        a, b = alone.runs[label], beside.runs[label]
        assert a.costs == b.costs, label
        assert (a.train_accuracy, a.test_accuracy) == (b.train_accuracy, b.test_accuracy), label


def test_xavier_and_he_train_the_deep_tanh_net(lesson: Lesson) -> None:
    runs = lesson.facts.mnist.runs
    chance = 0.1  # ten digits
    for name in ("Xavier", "He"):
        assert runs[name].test_accuracy > 0.6, name
        train_accuracy = runs[name].train_accuracy
        assert train_accuracy is not None and train_accuracy > 0.6, name
    worst_good = min(runs["Xavier"].test_accuracy, runs["He"].test_accuracy)
    for name in ("zeros", "small ×0.01", "large ×10"):
        assert runs[name].test_accuracy < chance + 0.1, name
        assert runs[name].test_accuracy < worst_good - 0.4, name


def test_small_init_vanishes_layer_by_layer(lesson: Lesson) -> None:
    runs = lesson.facts.mnist.runs
    std = runs["small ×0.01"].std_init
    assert std[-1] < 0.05 * std[0]  # the last hidden layer's signal ≪ the first's
    # near 0 tanh is the identity: each 300-wide layer scales the std by 0.01·√300
    expected = (0.01 * math.sqrt(300)) ** (len(std) - 1)
    assert std[-1] / std[0] == pytest.approx(expected, rel=0.25)
    factor = runs["uniform"].std_factor_init
    assert factor == pytest.approx(math.sqrt(1 / 3), rel=0.1)  # U(±1/√n): Var = 1/(3n)
    xavier = runs["Xavier"].std_init
    assert xavier[-1] > 0.5 * xavier[0]  # Xavier keeps the scale


def test_large_init_saturates(lesson: Lesson) -> None:
    mnist = lesson.facts.mnist
    large = mnist.runs["large ×10"]
    # Hidden layers 2–4 see ±1 inputs: h ~ N(0, 10²·300); |tanh h| ≤ 0.97 needs
    # |h| ≤ atanh(0.97), a Gaussian mass of about 2·atanh(0.97)/(√(2π)·10·√300).
    inside = 2 * math.atanh(mnist.saturation_threshold) / (math.sqrt(2 * math.pi) * 173.2)
    for fraction in large.saturated_init[1:]:
        assert fraction == pytest.approx(1 - inside, abs=0.01)
    assert min(large.saturated_init) > 0.9
    assert max(mnist.runs["Xavier"].saturated_init) < 0.05
    # the cost starts huge and jumps about rather than settling
    assert large.first_loss > 10 * math.log(10)
    assert large.tail_loss_max > 1.2 * large.tail_loss_min
    assert lesson.facts.circles.runs["random"].first_cost == math.inf


def test_findings_are_the_runs_numbers(lesson: Lesson) -> None:
    he = lesson.facts.circles.runs["he"]
    assert f"He reached {he.train_accuracy:.1%} train" in lesson.findings[0]
    assert "hidden units stayed identical" in lesson.findings[0]
    assert len(lesson.findings) == 5


def test_the_report_embeds_every_figure(lesson: Lesson) -> None:
    text = check_report(lesson, 7)
    names = sorted(Path(p).name for p in lesson.figures)
    assert names == sorted(
        f"{n}.png"
        for n in (
            "circles-cost",
            "circles-boundaries",
            "circles-units",
            "circles-activations",
            "mnist-activations",
            "mnist-layers",
            "mnist-training",
        )
    )
    assert "Cost after iteration 1000" in text  # the printed output is in the report
    # and beside it, as the notebook prints it
    assert lesson.report is not None
    output = (lesson.report.parent / "output.txt").read_text()
    assert output == "\n".join(lesson.lines) + "\n"
    assert "Cost after iteration 1000: " in output


def test_bad_input_is_refused() -> None:
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            run("init", None, quick=True, device="cuda")
    with pytest.raises(ValueError, match="notebook's"):
        circles(1, extra={"he": []})
    with pytest.raises(ValueError, match="steps"):
        circles(0)
    with pytest.raises(ValueError, match="Linear layers"):
        circles(1, extra={"ones": [(np.ones((10, 2)), np.zeros(10))]})  # one layer of three


def test_ctrl_c_during_mnist_keeps_the_circles_figures(tmp_path: Path) -> None:
    import os
    import signal

    from initlab.train import Progress

    class CtrlCInMnist:
        def __init__(self) -> None:
            self.stage_now = ""

        def stage(self, text: str, total: int | None = None) -> None:
            self.stage_now = text

        def __call__(self, progress: Progress, /) -> None:
            if self.stage_now.startswith("MNIST"):
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run("init", tmp_path, quick=True, progress=CtrlCInMnist())
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "Interrupted while MNIST" in page
    # the circles part's four figures, none of the MNIST part's three
    kept = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(kept) == 4 and all(name.startswith("circles-") for name in kept), kept
    assert page.count("data:image/png;base64,") == 4
