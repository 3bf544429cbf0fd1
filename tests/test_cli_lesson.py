"""The terminal of issue 18: `initlab data`, lesson knobs, progress bars, help text."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

import initlab.lessons
from initlab import fetch as fetch_mod
from initlab.cli import _Bar, _LessonBar, app
from initlab.lessons import LESSONS, Lesson
from initlab.train import Progress

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path under ``group`` (typer's click objects), the group itself first."""
    yield path
    for name, command in getattr(group, "commands", {}).items():
        yield from _commands(command, (*path, name))


# ----------------------------------------------------------------------------- help


def test_no_help_text_shows_a_flags_type() -> None:
    import typer

    paths = list(_commands(typer.main.get_command(app)))
    assert ("lesson",) in paths and ("data", "fetch") in paths and ("study", "run") in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, path
        assert "--help" in result.output
        assert all(len(line) <= 80 for line in result.output.splitlines()), path


def test_lesson_help_shows_the_default_folder_and_lists_the_lessons() -> None:
    result = runner.invoke(app, ["lesson", "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "[default: ./initlab-reports/NAME]" in result.output
    for name, summary in LESSONS.items():
        assert f"{name}: {summary}" in result.output
    assert "--depth" in result.output and "--activation" in result.output
    assert "--verbose" in result.output


# ----------------------------------------------------------------------------- data


def test_data_fetch_passes_its_arguments_and_prints_the_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[str, Any, dict[str, Any]]] = []

    def fake(name: str, root: Any = None, **kwargs: Any) -> Path:
        calls.append((name, root, kwargs))
        return Path(root if root is not None else fetch_mod.cache_dir()) / name

    monkeypatch.setattr(fetch_mod, "fetch", fake)
    args = ["data", "fetch", "fashion-mnist", "--dir", str(tmp_path)]
    mirrors = ["http://127.0.0.1:9/a/", "http://127.0.0.1:9/b/"]
    result = runner.invoke(app, [*args, "--mirror", mirrors[0], "--mirror", mirrors[1]], env=WIDE)
    assert result.exit_code == 0, result.output
    assert calls == [
        ("fashion-mnist", tmp_path, {"mirrors": mirrors, "progress": True}),
    ]
    assert str(tmp_path / "fashion-mnist") in result.output
    assert f"INITLAB_DATA={tmp_path}" in result.output  # how data.load finds it there
    calls.clear()
    result = runner.invoke(app, ["data", "fetch", "mnist"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert calls == [("mnist", None, {"mirrors": None, "progress": True})]
    assert "initlab finds it there" in result.output


def test_data_fetch_errors_and_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["data", "fetch", "cifar"], env=WIDE)
    assert result.exit_code == 2
    assert "mnist, fashion-mnist" in result.output and "cifar" in result.output

    def dead(name: str, root: Any = None, **kwargs: Any) -> Path:
        raise fetch_mod.FetchError("every mirror failed for train-images: tried http://x/.")

    monkeypatch.setattr(fetch_mod, "fetch", dead)
    result = runner.invoke(app, ["data", "fetch", "mnist"], env=WIDE)
    assert result.exit_code == 1
    assert "error: every mirror failed for train-images: tried http://x/." in result.output

    def bad_mirror(name: str, root: Any = None, **kwargs: Any) -> Path:
        raise ValueError("expected an http(s) URL or a folder. Got 'ftp:/x'.")

    monkeypatch.setattr(fetch_mod, "fetch", bad_mirror)
    result = runner.invoke(app, ["data", "fetch", "mnist", "--mirror", "ftp:/x"], env=WIDE)
    assert result.exit_code == 2 and "--mirror: expected" in result.output

    def interrupted(name: str, root: Any = None, **kwargs: Any) -> Path:
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch_mod, "fetch", interrupted)
    result = runner.invoke(app, ["data", "fetch", "mnist", "--dir", "d"], env=WIDE)
    assert result.exit_code == 130
    assert "Resume with: initlab data fetch mnist --dir d" in result.output


def test_data_where_prints_the_cache_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INITLAB_DATA", str(tmp_path))
    result = runner.invoke(app, ["data", "where"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == str(tmp_path)
    assert "$INITLAB_DATA" in result.output


# ----------------------------------------------------------------------------- lessons


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """``initlab.lessons.run`` replaced: it records its arguments and returns a lesson."""
    calls: list[dict[str, Any]] = []

    def fake(name: str, out: Any = None, **kwargs: Any) -> Lesson:
        calls.append({"name": name, "out": out, **kwargs})
        return Lesson(
            name=name,
            title=f"The {name} lesson",
            question="What?",
            findings=("First finding.", "Second finding."),
            facts=None,
            figures=(),
            report=tmp_path / "index.html",
            seconds=1.0,
            quick=True,
            lines=("notebook line 1", "notebook line 2"),
        )

    monkeypatch.setattr(initlab.lessons, "run", fake)
    return calls


def test_lesson_knobs_are_passed_with_the_command(
    ran: list[dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "g"
    args = ["lesson", "gradients", "--depth", "50", "--activation", "tanh", "--quick"]
    result = runner.invoke(app, [*args, "--out", str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    [call] = ran
    assert call["options"] == {"depth": 50, "activation": "tanh"}
    assert call["command"] == (
        f"initlab lesson gradients --depth=50 --activation=tanh --quick --out {out}"
    )
    assert call["quick"] is True and call["out"] == out
    ran.clear()
    assert runner.invoke(app, ["lesson", "gradients", "--quick"], env=WIDE).exit_code == 0
    assert ran[0]["options"] == {}  # only the knobs given
    assert ran[0]["command"] == "initlab lesson gradients --quick"


def test_the_gradients_lesson_takes_depth_and_activation() -> None:
    knobs = initlab.lessons.knobs(initlab.lessons.module("gradients"))
    assert {"depth", "activation"} <= set(knobs)


def test_a_knob_given_to_a_lesson_without_it_exits_2(
    ran: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(app, ["lesson", "optimizers", "--depth", "50"], env=WIDE)
    assert result.exit_code == 2, result.output
    assert "error: --depth: lesson optimizers takes no options" in result.output
    assert "only gradients takes" in result.output and not ran
    # a lesson with knobs of its own names them
    chaos: ModuleType = initlab.lessons.module("chaos")
    monkeypatch.setattr(chaos, "KNOBS", {"width": "units per layer"}, raising=False)
    result = runner.invoke(app, ["lesson", "chaos", "--activation", "relu"], env=WIDE)
    assert result.exit_code == 2 and "takes only --width" in result.output and not ran


def test_a_knob_value_the_lesson_refuses_exits_2_before_running(
    ran: list[dict[str, Any]],
) -> None:
    result = runner.invoke(app, ["lesson", "gradients", "--depth", "0"], env=WIDE)
    assert result.exit_code == 2 and "--depth" in result.output and not ran
    # past the command's own bound, the lesson's: a 2-layer net has no depth to study
    shallow = runner.invoke(app, ["lesson", "gradients", "--depth", "2"], env=WIDE)
    assert shallow.exit_code == 2 and "depth" in shallow.output and not ran
    typo = runner.invoke(app, ["lesson", "gradients", "--activation", "tanhh"], env=WIDE)
    assert typo.exit_code == 2 and "tanh" in typo.output and not ran
    # a lesson without knobs says so, whatever the value
    other = runner.invoke(app, ["lesson", "optimizers", "--depth", "0"], env=WIDE)
    assert other.exit_code == 2 and "gradients" in other.output and not ran


def test_lesson_prints_findings_first_and_the_notebook_only_with_verbose(
    ran: list[dict[str, Any]],
) -> None:
    result = runner.invoke(app, ["lesson", "init", "--quick"], env=WIDE)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:3] == ["The init lesson", " • First finding.", " • Second finding."]
    assert "notebook line" not in result.output and "--verbose" in result.output
    result = runner.invoke(app, ["lesson", "init", "--quick", "--verbose"], env=WIDE)
    lines = result.output.splitlines()
    assert lines[:3] == ["The init lesson", " • First finding.", " • Second finding."]
    assert lines.index("notebook line 1") > 2 and "notebook line 2" in lines
    assert "report:" in lines[-1]


# ----------------------------------------------------------------------------- bars


def _progress(step: int, total: int, members: int = 7, active: int = 7) -> Progress:
    return Progress(
        step=step,
        total=total,
        active=active,
        members=members,
        best_loss=0.123456,
        worst_loss=math.inf if active < members else 2.345678,
        steps_per_second=12345.6,
    )


def _lines(bar: _Bar, console: Console) -> list[str]:
    """The bar as the terminal shows it, one string per line."""
    file = console.file
    assert isinstance(file, io.StringIO)
    file.seek(0)
    file.truncate()
    console.print(bar.progress.get_renderable())
    return file.getvalue().splitlines()


def _console(width: int = 80) -> Console:
    return Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)


def _counts(lines: list[str], width: int = 80) -> str:
    [line] = lines
    assert len(line) <= width and "None" not in line, line
    return line


def test_a_lesson_bar_counts_a_stage_of_several_runs_in_80_columns() -> None:
    console = _console()
    bar = _LessonBar("lesson init", console=console)
    assert "steps" not in _counts(_lines(bar, console))  # nothing counted, nothing said
    # the init lesson's MNIST stage: 200 steps trained in segments of 40, each run
    # reporting once, at its end
    bar.stage("MNIST: 7 inits × 200 SGD steps, one stack", total=200)
    assert "0/200 steps" in _counts(_lines(bar, console))
    for k in range(1, 6):
        bar(_progress(40, 40))
        line = _counts(_lines(bar, console))
        assert f" {40 * k}/200 steps" in line and "loss 0.123–2.35" in line
    # without a total for the stage: what is known so far, counted across the runs
    bar.stage("a stage of two runs")
    assert "steps" not in _counts(_lines(bar, console))
    bar(_progress(50, 100, members=3, active=2))
    line = _counts(_lines(bar, console))
    assert "50/100 steps" in line and "2/3 left" in line
    bar(_progress(100, 100, members=3, active=2))
    bar(_progress(30, 100, members=3))
    assert "130/200 steps" in _counts(_lines(bar, console))


def test_a_long_stage_is_cut_to_fit_80_columns() -> None:
    console = _console()
    bar = _LessonBar("lesson gradients", console=console)
    bar.stage("Glorot's net: " + "a very long description of what runs " * 5, total=123_456)
    bar(_progress(65_432, 123_456, members=1000, active=999))
    line = _counts(_lines(bar, console))
    assert "65,432/123,456 steps" in line and "…" in line
    # a wider terminal shows more of the label, and the losses whole
    console = _console(120)
    bar = _LessonBar("lesson gradients", console=console)
    bar.stage("MNIST: 7 inits × 200 SGD steps, one stack", total=200)
    bar(_progress(40, 200, members=7, active=6))
    line = _counts(_lines(bar, console), 120)
    assert line.startswith("MNIST: 7 inits × 200 SGD steps, one stack ")
    assert "40/200 steps  loss 0.123–inf · 6/7 left" in line


def test_the_train_bar_knows_its_total_from_the_start() -> None:
    console = _console()
    bar = _Bar("6 members", console=console)

    class _Run:
        total = 3000

    bar.on_start(_Run())  # type: ignore[arg-type]
    assert "0/3,000 steps" in _counts(_lines(bar, console))
    bar(_progress(1500, 3000, members=6))
    assert "1,500/3,000 steps" in _counts(_lines(bar, console))


def test_knobs_listed_in_help_match_the_lessons() -> None:
    """Every knob a lesson declares is an option of `initlab lesson`."""
    declared: Mapping[str, str] = {
        knob: name
        for name in LESSONS
        for knob in initlab.lessons.knobs(initlab.lessons.module(name))
    }
    result = runner.invoke(app, ["lesson", "--help"], env=WIDE)
    for knob in declared:
        assert f"--{knob.replace('_', '-')}" in result.output
