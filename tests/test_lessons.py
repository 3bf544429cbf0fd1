"""The two lessons against the numbers the deeplearning.ai notebooks publish.

Reference: the printed outputs of "Initialization" and "Optimization Methods" (course 2,
weeks 1 and 2, 2021+ versions), identical across independent published copies of the
executed notebooks.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
from lesson_checks import check_report

from initlab.lessons import Env, Lesson, optimizers, run

# Every test here compares a lesson with the notebooks' printed numbers: make test runs
# them again under the AVX2 kernels.
pytestmark = pytest.mark.numerics

HE = [
    0.8830537463419761,
    0.6879825919728063,
    0.6751286264523371,
    0.6526117768893805,
    0.6082958970572938,
    0.5304944491717495,
    0.4138645817071794,
    0.3117803464844441,
    0.23696215330322562,
    0.1859728720920684,
    0.15015556280371808,
    0.12325079292273551,
    0.09917746546525937,
    0.08457055954024283,
    0.07357895962677366,
]
RANDOM = [
    math.inf,
    0.6247924745506072,
    0.5980258056061102,
    0.5637539062842213,
    0.5501256393526495,
    0.5443826306793814,
    0.5373895855049121,
    0.47157999220550006,
    0.39770475516243037,
    0.3934560146692851,
    0.3920227137490125,
    0.38913700035966736,
    0.3861358766546214,
    0.38497629552893475,
    0.38276694641706693,
]

OPTIMIZERS = {
    "gd": ([0.702405, 0.668101, 0.635288, 0.600491, 0.573367], "0.7166666666666667"),
    "momentum": ([0.702413, 0.668167, 0.635388, 0.600591, 0.573444], "0.7166666666666667"),
    "adam": ([0.702166, 0.167845, 0.141316, 0.138788, 0.136066], "0.9433333333333334"),
    "gd, update_lr": ([0.701091, 0.661884, 0.658620, 0.656765, 0.655486], "0.6533333333333333"),
    "gd, schedule_lr_decay": (
        [0.701091, 0.127161, 0.120304, 0.117033, 0.117512],
        "0.9433333333333334",
    ),
    "momentum, schedule_lr_decay": (
        [0.702226, 0.128974, 0.125965, 0.123375, 0.123218],
        "0.9533333333333334",
    ),
    "adam, schedule_lr_decay": ([0.699346, 0.130074, 0.129826, 0.129282, 0.128361], "0.94"),
}


@pytest.fixture(scope="module")
def init_lesson(tmp_path_factory: pytest.TempPathFactory) -> Lesson:
    # the lesson at its default size: the notebook's 15,000 iterations (its three runs
    # beside four further inits, which do not change their numbers: test_lesson_init)
    return run("init", tmp_path_factory.mktemp("init"))


def test_init_lesson_zeros_never_breaks_symmetry(init_lesson: Lesson) -> None:
    zeros = init_lesson.facts.circles.runs["zeros"]
    costs = [c for _, c in zeros.costs]
    assert costs == pytest.approx([0.6931471805599453] * 15, rel=1e-15)  # log 2, every time
    assert (zeros.train_accuracy, zeros.test_accuracy) == (0.5, 0.5)


def test_init_lesson_he_matches_the_notebook(init_lesson: Lesson) -> None:
    # Same data, weights and updates; NumPy and torch sum in different orders, so the
    # costs agree to ~14 digits, not bit for bit.
    he = init_lesson.facts.circles.runs["he"]
    assert [c for _, c in he.costs] == pytest.approx(HE, rel=1e-12)
    assert he.train_accuracy == 0.9933333333333333
    assert he.test_accuracy == 0.96
    assert "Accuracy: 0.9933333333333333" in init_lesson.lines


def test_init_lesson_large_random_saturates(init_lesson: Lesson) -> None:
    random = init_lesson.facts.circles.runs["random"]
    costs = [c for _, c in random.costs]
    assert costs[0] == math.inf  # the sigmoid saturates to exactly 1: log(0)
    # From there the run is chaotic: its saturated start amplifies the rounding of the
    # sums. Measured (float64, torch 2.13, the engine of 4eb2959; OMP_NUM_THREADS=1 and 2
    # give the same costs): the AVX-512 and AVX2 kernels agree bit for bit to iteration 44
    # and are 7e-4 apart by 215; at 1000 the cost is 0.62593 (AVX-512), 0.62306 (AVX2),
    # the notebook's 0.62479 (+1.8e-3, −2.8e-3); at 7000, mid-drop, the drop's timing
    # shifts it by +7.0e-3 and −4.0e-3. Those two are not compared. Elsewhere the runs
    # settle on the notebook's descent: at 2000–6000 and 8000–14000 all four settings are
    # within 4.6e-4 of it, and the largest AVX-512/AVX2 gap at any iteration of those
    # stretches is 1.3e-3 (iteration 2517), hence 2e-3.
    settled = [k for k in range(2, 15) if k != 7]
    assert [costs[k] for k in settled] == pytest.approx([RANDOM[k] for k in settled], rel=2e-3)
    # the notebook's shape: the printed cost falls at every print from 1000 on, the drop
    # at 7000 included (the smallest fall, 0.30 % from 12000 to 13000 on every setting,
    # is twice that largest gap)
    assert all(a > b for a, b in itertools.pairwise(costs[1:]))
    assert random.train_accuracy == 0.83  # the notebook's, on every setting
    assert random.test_accuracy == 0.86


def test_init_lesson_writes_its_report(init_lesson: Lesson) -> None:
    check_report(init_lesson, 7)
    names = {Path(p).name for p in init_lesson.figures}
    # the notebook's two figures, the cost curves and the decision boundaries
    assert {"circles-cost.png", "circles-boundaries.png"} <= names
    for path in init_lesson.figures:
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    output = (Path(init_lesson.figures[0]).parent / "output.txt").read_text()
    assert "Cost after iteration 14000: 0.07357895962677" in output


def test_optimizers_lesson_prints_the_notebook_output() -> None:
    lesson = optimizers.compute(optimizers.SIZES["default"], Env())
    for label, (costs, accuracy) in OPTIMIZERS.items():
        printed = [
            f"Cost after epoch {e}: {c:f}" for e, c in zip(range(0, 5000, 1000), costs, strict=True)
        ]
        block = lesson.lines[lesson.lines.index(f"{label}:") :]
        shown = [line for line in block if line.startswith("Cost after epoch")][:5]
        assert shown == printed, label
        assert f"Accuracy: {lesson.train_accuracy[label]}" == f"Accuracy: {accuracy}", label
    assert "learning rate after epoch 1000: 0.050000" in lesson.lines
