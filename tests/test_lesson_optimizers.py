"""The optimizers lesson's quick run: the notebook's first printed costs, and the report."""

from __future__ import annotations

import pytest
from lesson_checks import check_report

from initlab.lessons import run

# The notebook's published "Cost after epoch 0" (deeplearning.ai, course 2 week 2).
EPOCH0 = {"gd": 0.702405, "momentum": 0.702413, "adam": 0.702166, "gd, update_lr": 0.701091}


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return run("optimizers", tmp_path_factory.mktemp("optimizers"), quick=True)


@pytest.mark.numerics
def test_quick_run_prints_the_notebook_costs(lesson) -> None:  # type: ignore[no-untyped-def]
    for label, cost in EPOCH0.items():
        block = lesson.lines[lesson.lines.index(f"{label}:") :]
        assert block[1] == f"Cost after epoch 0: {cost:f}", label
    acc = lesson.facts.train_accuracy
    # 400 epochs: Adam has already separated the moons, plain GD at lr 0.0007 has not.
    assert acc["adam"] > 0.9 > 0.75 > acc["gd"]
    assert f"{acc['adam']:.1%}" in lesson.findings[0]


def test_report_has_every_figure_embedded(lesson) -> None:  # type: ignore[no-untyped-def]
    page = check_report(lesson, 2)
    assert "Cost after epoch 0: 0.702405" in page  # the printed output is in the report


def test_unknown_lesson_and_missing_cuda_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="expected a lesson among init, optimizers"):
        run("initialisation")
    from initlab.lessons import resolve_device

    with pytest.raises(ValueError, match="expected device 'cpu', 'cuda' or 'cuda:N'. Got 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match="expected device 'cpu', 'cuda' or 'cuda:N'. Got 'meta'"):
        resolve_device("meta")
