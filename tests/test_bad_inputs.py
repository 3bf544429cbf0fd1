"""The bad-input suite of the command (issue 13, sections 4 and 5).

Every bad input ends in one line on stderr, ``error: …``, saying what was expected, what
was got and how to fix it, with exit code 2 and no traceback; outputs are checked before
any work; Ctrl-C exits 130 with one line and keeps what was computed. One test per case,
parametrized by family, then property-based tests (hypothesis) over any text.

The command runs in-process through typer's runner, on tiny data (circles, 1–300 steps).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

import initlab.cli
import initlab.lessons
import initlab.probe
import initlab.train
from initlab import data
from initlab._spec import parse_call
from initlab.cli import app
from initlab.init import parse_spec
from initlab.lessons import Lesson

runner = CliRunner()
ROOT = Path(__file__).parents[1]
NETS = f"{ROOT / 'examples' / 'deep_nets.py'}"
TRAIN = ["train", "--data", "circles", "--model", "2,4,1", "--steps", "1"]


def _invoke(args: Sequence[str], env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "120", **(env or {})})


def _one_line_error(result: Result, *fragments: str) -> str:
    """Exit 2, one line on stderr starting 'error:', no traceback; the line returned."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if training, a probe or a lesson starts: errors must come first."""

    def work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the work started before the error")

    monkeypatch.setattr(initlab.train, "train", work)
    monkeypatch.setattr(initlab.probe, "probe", work)
    monkeypatch.setattr(initlab.lessons, "run", work)
    yield


# ------------------------------------------------------------- user text is not markup


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--init", "he_norml[/x]"], ["--init: Init spec 'he_norml[/x]'", "Example: 'he_normal'"]),
        (["--init", "he_norml[red]"], ["--init: Init spec 'he_norml[red]' must start with a name"]),
        (["--init", "he_norml"], ["Unknown init scheme 'he_norml'", "Did you mean 'he_normal'?"]),
        (["--bias-init", "zeros[/x]"], ["--bias-init: Init spec 'zeros[/x]'"]),
        (["--activation", "[red]relu"], ["Got '[red]relu'"]),
        (["--schedule", "cosine[/x]"], ["--schedule", "'cosine[/x]'"]),
    ],
    ids=["init-closing-tag", "init-style-tag", "init-typo", "bias-init", "activation", "schedule"],
)
def test_user_text_in_an_error_is_printed_as_typed(
    args: list[str], fragments: list[str], no_work: None
) -> None:
    _one_line_error(_invoke([*TRAIN, *args]), *fragments)


@pytest.mark.parametrize("name", ["runs[draft].csv", "h[/x].csv", "[bold]h.parquet"])
def test_a_history_path_with_brackets_is_written_and_printed_as_given(
    name: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    result = _invoke([*TRAIN, "--init", "he_normal,zeros", "--save-history", str(path)])
    assert result.exit_code == 0, result.output
    assert f"history: {path}" in result.stdout
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    assert set(frame["init"]) == {"he_normal", "zeros"}


def test_a_factory_path_with_brackets_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "n[/x]ets.py"
    _one_line_error(
        _invoke(["probe", f"{path}:net", "--input-shape", "4x4"]),
        f"MODEL: cannot import '{path}': no file",
    )


_BRACKETED = """
from collections import OrderedDict
from torch import nn

def net():
    layers = [("in[/x]", nn.Linear(4, 8)), ("act[red]", nn.ReLU()), ("out[bold]", nn.Linear(8, 3))]
    return nn.Sequential(OrderedDict(layers))
"""


def test_probe_prints_layer_names_and_titles_as_they_are(tmp_path: Path) -> None:
    nets = tmp_path / "nets[draft].py"
    nets.write_text(_BRACKETED)
    figure = tmp_path / "p[/x].png"
    result = _invoke(
        [
            "probe",
            f"{nets}:net",
            "--input-shape",
            "32x4",
            "--init",
            "zeros",
            "--figure",
            str(figure),
        ]
    )
    assert result.exit_code == 0, result.output
    assert f"probe of {nets}:net" in result.stdout
    rows = result.stdout.splitlines()
    assert any(" in[/x] " in row for row in rows) and any(" out[bold] " in row for row in rows)
    assert "symmetric:" in result.stdout  # zero init: every unit is a copy of another
    assert f"figure: {figure}" in result.stdout and figure.read_bytes()[:4] == b"\x89PNG"


def test_lesson_findings_and_paths_are_printed_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "r[/x]"
    lesson = Lesson(
        name="init",
        title="Init [red]matters[/red]",
        question="Does the init [bold]matter?",
        findings=("zeros [/x] never break symmetry",),
        facts={},
        figures=(),
        report=out / "index.html",
        seconds=0.5,
        quick=False,
        lines=("Cost after iteration 0: [bold]0.69",),
    )
    monkeypatch.setattr(initlab.lessons, "run", lambda *args, **kwargs: lesson)
    result = _invoke(["lesson", "init", "--out", str(out), "--verbose"])  # lines: --verbose
    assert result.exit_code == 0, result.output
    for text in (*lesson.lines, lesson.title, *lesson.findings, f"report: {out / 'index.html'}"):
        assert text in result.stdout


# ------------------------------------------------------------- outputs checked first


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--save-history", "{file}/h.csv"], ["the folder of --save-history", "is a file"]),
        (["--save-history", "{tmp}/h.xyz"], ["must end in .csv or .parquet. Got '.xyz'"]),
        (["--save-history", "{tmp}/runs.csv"], ["is a folder", "Give a file name"]),
        (["--figure", "{file}/loss.png"], ["the folder of --figure", "is a file"]),
        (["--figure", "{tmp}/loss.xyz"], ["must end in .png or .pdf or .svg. Got '.xyz'"]),
        (["--figure", "{tmp}/loss"], ["Got 'no extension'"]),
        (["--save-history", "{tmp}/" + "h" * 250 + ".csv"], ["--save-history", "shorter name"]),
    ],
    ids=["history-under-file", "history-ext", "history-folder", "figure-under-file",
         "figure-ext", "figure-no-ext", "history-name-too-long"],
)  # fmt: skip
def test_train_outputs_are_checked_before_training(
    args: list[str], fragments: list[str], tmp_path: Path, no_work: None
) -> None:
    (tmp_path / "runs.csv").mkdir()  # a folder where the file should go
    args = [a.format(file=_file(tmp_path), tmp=tmp_path) for a in args]
    _one_line_error(_invoke([*TRAIN, *args]), *fragments)


@pytest.mark.parametrize(
    ("out", "fragments"),
    [
        ("{file}", ["--out", "is a file. Give a folder"]),
        ("{file}/report", ["--out", "is a file, not a folder"]),
        ("{tmp}/locked/report", ["--out", "no permission to write in", "locked"]),
    ],
    ids=["file", "under-file", "unwritable"],
)
def test_lesson_out_is_checked_before_the_lesson(
    out: str, fragments: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_work: None
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # The tests may run as root, whom permissions do not stop: the OS's answer is faked.
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    out = out.format(file=_file(tmp_path), tmp=tmp_path)
    _one_line_error(_invoke(["lesson", "optimizers", "--quick", "--out", out]), *fragments)


@pytest.mark.parametrize(
    ("figure", "fragments"),
    [("{file}/p.png", ["the folder of --figure", "is a file"]), ("{tmp}/p.xyz", ["Got '.xyz'"])],
    ids=["under-file", "ext"],
)
def test_probe_figure_is_checked_before_the_probe(
    figure: str, fragments: list[str], tmp_path: Path, no_work: None
) -> None:
    figure = figure.format(file=_file(tmp_path), tmp=tmp_path)
    args = ["probe", f"{NETS}:deep_mlp(depth=2, inputs=8)", "--input-shape", "4x8"]
    _one_line_error(_invoke([*args, "--figure", figure]), *fragments)


def test_a_failed_history_write_leaves_no_file_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "h.csv"
    path.write_text("member,step,loss\nold\n")

    def half_written(self: pd.DataFrame, target: Any, **kwargs: object) -> None:
        Path(target).write_text("member,step,loss\n0,0,")  # the start of a file, then…
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_written)
    result = _invoke([*TRAIN, "--save-history", str(path)])
    _one_line_error(result, "--save-history", "cannot write", "No space left on device")
    assert path.read_text() == "member,step,loss\nold\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.csv"]  # no temporary file left


# ------------------------------------------------------------- data that is not there


def _corrupt_mnist(tmp_path: Path) -> Path:
    """A copy of MNIST whose test labels have one byte changed; the checksums are kept."""
    source = data.locate("mnist")
    copy = tmp_path / "corrupt" / "mnist"
    copy.mkdir(parents=True)
    for item in source.iterdir():
        (copy / item.name).symlink_to(item)
    labels = copy / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(labels.read_bytes())
    content[len(content) // 2] ^= 0xFF
    labels.unlink()
    labels.write_bytes(bytes(content))
    return copy.parent


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
@pytest.mark.parametrize(
    "command",
    [
        ["train", "--data", "mnist", "--model", "784,1", "--steps", "1"],
        ["probe", f"{NETS}:deep_mlp(depth=1, inputs=784)", "--data", "mnist"],
        ["lesson", "batchnorm", "--quick", "--out", "{tmp}/report"],
    ],
    ids=["train", "probe", "lesson"],
)
def test_missing_or_corrupt_data_is_one_line(
    command: list[str], damage: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if command[0] != "lesson":  # a lesson loads its data itself, first thing (batchnorm)
        request.getfixturevalue("no_work")
    if damage == "missing":
        root = tmp_path / "empty"
        root.mkdir()
        fragments = ["No mnist data found", "INITLAB_DATA", str(root)]
    else:
        root = _corrupt_mnist(tmp_path)
        fragments = ["Checksum mismatch for", "t10k-labels-idx1-ubyte.gz", "Copy it again"]
    args = [a.format(tmp=tmp_path) for a in command]
    _one_line_error(_invoke(args, env={"INITLAB_DATA": str(root)}), *fragments)


# ------------------------------------------------------------- devices


_NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")


@pytest.mark.parametrize(
    ("device", "fragment"),
    [
        ("tpu", "expected device 'cpu', 'cuda' or 'cuda:N'. Got 'tpu'."),
        ("meta", "expected device 'cpu', 'cuda' or 'cuda:N'. Got 'meta'."),
        pytest.param("cuda", "this torch sees no CUDA GPU", marks=_NO_CUDA),
        ("", "Got ''"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [TRAIN, ["lesson", "optimizers", "--quick", "--out", "{tmp}"]],
    ids=["train", "lesson"],
)
def test_an_unknown_or_missing_device_is_one_line(
    command: list[str], device: str, fragment: str, tmp_path: Path, no_work: None
) -> None:
    args = [a.format(tmp=tmp_path) for a in command]
    _one_line_error(_invoke([*args, "--device", device]), "--device: ", fragment)


# ------------------------------------------------------------- probe's model


_FAILING = {
    "raises": ("def net():\n    return {}['missing']\n", ["the factory 'net'", "KeyError"]),
    "syntax": ("def net(:\n    pass\n", ["importing", "SyntaxError", "line 1"]),
    "import": ("import torch\nundefined_name\n", ["importing", "NameError", "undefined_name"]),
    "forward": (
        "from torch import nn\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.fc = nn.Linear(4, 2)\n"
        "    def forward(self, x):\n        return self.fc(x).missing\n\n"
        "def net():\n    return Net()\n",
        ["the model", "AttributeError", "missing"],
    ),
}


@pytest.mark.parametrize("case", list(_FAILING))
def test_a_failing_model_is_named_in_one_line_and_debug_shows_its_traceback(
    case: str, tmp_path: Path
) -> None:
    source, fragments = _FAILING[case]
    nets = tmp_path / "nets.py"
    nets.write_text(source)
    args = ["probe", f"{nets}:net", "--input-shape", "8x4"]
    line = _one_line_error(_invoke(args), *fragments)
    assert "--debug" in line
    debug = _invoke([*args, "--debug"])
    assert debug.exit_code == 1 and debug.exception is not None
    assert type(debug.exception).__name__ == fragments[1]


@pytest.mark.parametrize(
    ("call", "fragments"),
    [
        ("deep_mlp(inputs=x)", ["bare name x", "Write 'x' in quotes"]),
        ("deep_mlp(activation=tanh)", ["bare name tanh", "Write 'tanh' in quotes"]),
        ("deep_mlp(depth=2", ["Factory call 'deep_mlp(depth=2'", "not of the form"]),
        ("ACTIVATIONS", ["to be an nn.Module or return one. Got dict."]),
    ],
    ids=["bare-name", "bare-activation", "syntax", "not-a-module"],
)
def test_a_factory_call_takes_literals_only(call: str, fragments: list[str], no_work: None) -> None:
    _one_line_error(_invoke(["probe", f"{NETS}:{call}", "--input-shape", "4x256"]), *fragments)


def test_a_quoted_factory_argument_is_a_string() -> None:
    args = ["probe", f"{NETS}:deep_mlp(depth=2, inputs=8, activation='tanh')"]
    result = _invoke([*args, "--input-shape", "16x8"])
    assert result.exit_code == 0, result.output
    assert " tanh " in result.stdout


@pytest.mark.parametrize("outputs", [1, 3])
def test_a_model_with_fewer_outputs_than_classes_is_one_line(outputs: int) -> None:
    model = f"{NETS}:deep_mlp(depth=1, width=8, inputs=64, outputs={outputs})"
    _one_line_error(
        _invoke(["probe", model, "--data", "digits", "--batch-size", "64"]),
        f"The model has {outputs} output",
        "labels up to 9: 10 classes need 10 outputs",
    )


# ------------------------------------------------------------- every option


_P = ["probe", f"{NETS}:deep_mlp(depth=2, width=8, inputs=8)", "--input-shape", "16x8"]
_PD = ["probe", f"{NETS}:deep_mlp(depth=2, width=8, inputs=64)", "--data", "digits"]

OPTIONS: dict[str, tuple[list[str], list[str]]] = {
    # train: comma lists that end up empty (they used to blame mlp's 'members')
    "init-empty": ([*TRAIN, "--init", ""], ["--init: expected init specs", "Got ''."]),
    "init-empty-item": ([*TRAIN, "--init", "zeros,,ones"], ["item 2 is empty"]),
    "lr-empty": ([*TRAIN, "--lr", ""], ["--lr: expected positive numbers", "Got ''."]),
    "optimizer-comma": ([*TRAIN, "--optimizer", ","], ["--optimizer: ", "Got ','."]),
    "clip-threshold-empty": ([*TRAIN, "--clip-threshold", ""], ["--clip-threshold: ", "Got ''"]),
    # train: numbers
    "lr-nan": ([*TRAIN, "--lr", "nan"], ["--lr: expected positive finite", "Got 'nan'."]),
    "lr-inf": ([*TRAIN, "--lr", "0.1,inf"], ["Got 'inf' in '0.1,inf'."]),
    "lr-negative": ([*TRAIN, "--lr", "-1"], ["--lr: ", "Got '-1'."]),
    "lr-float32": ([*TRAIN, "--lr", "1e100"], ["a float32 can hold", "Got '1e100'", "float64"]),
    "lr-word": ([*TRAIN, "--lr", "0.1,abc"], ["Got 'abc' in '0.1,abc'."]),
    "clip-threshold-zero": ([*TRAIN, "--clip-threshold", "0"], ["--clip-threshold: ", "'0'"]),
    "steps-zero": ([*TRAIN, "--steps", "0"], ["--steps: expected an integer from 1", "Got 0."]),
    "steps-negative": ([*TRAIN, "--steps", "-5"], ["--steps: ", "Got -5."]),
    "steps-huge": (
        [*TRAIN, "--steps", "10" * 10],
        ["to 1,000,000,000. Got 10,101,010,101,010,101,010."],
    ),
    "steps-word": ([*TRAIN, "--steps", "abc"], ["'--steps'", "Got 'abc'.", "initlab train --help"]),
    "epochs-too-many-steps": (
        ["train", "--model", "2,4,1", "--epochs", "10000000", "--batch-size", "1"],
        ["--epochs: expected a run of at most 1,000,000,000 steps", "8,000,000,000 steps"],
    ),
    "epochs-zero": ([*TRAIN, "--epochs", "0"], ["--epochs: ", "Got 0."]),
    "no-budget": (["train", "--model", "2,4,1"], ["expected a budget: --steps N or --epochs N"]),
    "seeds-zero": ([*TRAIN, "--seeds", "0"], ["--seeds: expected an integer from 1", "Got 0."]),
    "batch-size-zero": ([*TRAIN, "--batch-size", "0"], ["--batch-size: expected 'full'", "'0'"]),
    "batch-size-word": ([*TRAIN, "--batch-size", "half"], ["Got 'half'."]),
    "batch-size-larger": (
        [*TRAIN, "--batch-size", "5000"],
        ["--batch-size: expected at most the 800 training examples of circles. Got 5,000."],
    ),
    "window-zero": ([*TRAIN, "--tol", "1e-3", "--window", "0"], ["--window: ", "Got 0."]),
    "window-alone": ([*TRAIN, "--window", "5"], ["--window: expected --tol with --window"]),
    "window-too-long": (
        [*TRAIN, "--steps", "50", "--tol", "1e-3"],
        ["shorter than the run (50 steps)", "Got 100 (the default)"],
    ),
    "tol-nan": ([*TRAIN, "--tol", "nan"], ["--tol: expected a finite number >= 0", "Got nan."]),
    "tol-negative": ([*TRAIN, "--tol", "-1"], ["--tol: ", "Got -1.0."]),
    "dtype-float16": ([*TRAIN, "--dtype", "float16"], ["float32 or float64 only", "'float16'"]),
    # train: the model
    "model-empty-item": ([*TRAIN, "--model", "2,,1"], ["--model: ", "'2,,1'", "item 2 is empty"]),
    "model-zero": ([*TRAIN, "--model", "0,1"], ["--model: ", "Got '0' in '0,1'."]),
    "model-one-width": ([*TRAIN, "--model", "2"], ["at least two widths", "Got '2'."]),
    "model-word": ([*TRAIN, "--model", "2,ten,1"], ["Got 'ten' in '2,ten,1'."]),
    "model-features": (
        [*TRAIN, "--model", "3,4,1"],
        ["--model: expected the first width to be 2", "Got 3 in '3,4,1'. Use --model 2,4,1."],
    ),
    "model-classes": (
        [*TRAIN, "--model", "2,4,1", "--loss", "cross_entropy"],
        ["labels go up to 1"],
    ),
    "model-huge": (
        [*TRAIN, "--model", "2,100000000000,1"],
        ["--model: expected a stack that fits"],
    ),
    # train: names, each with the nearest
    "activation": ([*TRAIN, "--activation", "rleu"], ["--activation: ", "Did you mean 'relu'?"]),
    "batch-norm": ([*TRAIN, "--batch-norm", "bfore"], ["--batch-norm: ", "'before'?"]),
    "schedule": ([*TRAIN, "--schedule", "cosin(10)"], ["--schedule: ", "'cosin'"]),
    "schedule-arg": ([*TRAIN, "--schedule", "step_decay(0)"], ["--schedule: "]),
    "clip": ([*TRAIN, "--clip", "nrom"], ["--clip: ", "Did you mean 'norm'?"]),
    "loss": ([*TRAIN, "--loss", "bc"], ["--loss: ", "Did you mean 'bce'?"]),
    "optimizer": ([*TRAIN, "--optimizer", "sgd,adma"], ["--optimizer: ", "'adam'?"]),
    "data": ([*TRAIN, "--data", "moon"], ["--data: ", "Got 'moon'. Did you mean 'moons'?"]),
    "option-typo": ([*TRAIN, "--stpes", "1"], ["No such option: --stpes", "--steps"]),
    "command-typo": (["trian"], ["No such command 'trian'. Did you mean 'train'?"]),
    # probe
    "probe-no-input": (_P[:2], ["exactly one of --input-shape", "Got neither."]),
    "probe-shape": ([*_P[:2], "--input-shape", "16by8"], ["--input-shape: expected OUTxIN"]),
    "probe-shape-zero": ([*_P[:2], "--input-shape", "0x8"], ["at least 1. Got '0x8'."]),
    "probe-shape-huge": ([*_P[:2], "--input-shape", "99999999x99999999"], ["fits in memory"]),
    "probe-batch-size": ([*_PD, "--batch-size", "0"], ["--batch-size: ", "Got 0."]),
    "probe-batch-larger": ([*_PD, "--batch-size", "5000"], ["at most the 1,438 training"]),
    "probe-lr-nan": ([*_PD, "--steps", "1", "--lr", "nan"], ["--lr: ", "Got nan."]),
    "probe-lr-zero": ([*_PD, "--steps", "1", "--lr", "0"], ["--lr: ", "Got 0.0."]),
    "probe-steps": ([*_PD, "--steps", "-1"], ["--steps: expected an integer from 0"]),
    "probe-steps-no-loss": ([*_P, "--steps", "2"], ["--steps: expected a loss"]),
    "probe-seed": ([*_P, "--seed", "-1"], ["--seed: ", "Got -1."]),
    "probe-seed-huge": ([*_P, "--seed", "9" * 20], ["--seed: "]),
    "probe-loss": ([*_P, "--loss", "crossentropy"], ["--loss: ", "'cross_entropy'?"]),
    "probe-loss-labels": ([*_P, "--loss", "mse"], ["--loss: expected --data with --loss mse"]),
    "probe-init": ([*_P, "--init", "he_norml"], ["--init: ", "'he_normal'?"]),
    "probe-data": ([*_P[:2], "--data", "digit"], ["--data: ", "'digits'?"]),
    "probe-no-colon": (["probe", "deep_mlp", "--input-shape", "4x8"], ["MODULE:FACTORY"]),
    "probe-no-module": (["probe", "no_such_xyz:f", "--input-shape", "4x8"], ["cannot import"]),
    # lesson, schemes
    "lesson-name": (["lesson", "initialization"], ["NAME: expected one of init,"]),
    "lesson-missing": (["lesson"], ["Missing argument 'name'."]),
    "schemes-shape": (["schemes", "--shape", "256by128"], ["--shape: expected OUTxIN"]),
    "schemes-shape-huge": (["schemes", "--shape", "9" * 20 + "x3"], ["at most 2^63 - 1 values"]),
    "schemes-activation": (["schemes", "--activation", "rleu"], ["--activation: ", "'relu'"]),
}


# Checked by the engine as it starts, before its first step.
_ENGINE_CHECKS = {"model-classes"}


@pytest.mark.parametrize("case", list(OPTIONS))
def test_every_bad_option_is_one_line(case: str, request: pytest.FixtureRequest) -> None:
    if case not in _ENGINE_CHECKS:
        request.getfixturevalue("no_work")
    args, fragments = OPTIONS[case]
    _one_line_error(_invoke(args), *fragments)


# ------------------------------------------------------------- Ctrl-C


def test_ctrl_c_during_training_keeps_the_history_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = initlab.train.train

    class CtrlC(initlab.train.Observer):
        def on_step(self, run: Any) -> None:
            signal.raise_signal(signal.SIGINT)  # as Ctrl-C would, at the first check

    def interrupted(*args: Any, observers: Any = (), **kwargs: Any) -> Any:
        return real(*args, observers=[*observers, CtrlC()], **kwargs)

    monkeypatch.setattr(initlab.train, "train", interrupted)
    history = tmp_path / "h.csv"
    args = [*TRAIN, "--steps", "300", "--save-history", str(history)]
    result = _invoke(args)
    assert result.exit_code == 130, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: stopped after step ")
    assert lines[0].endswith("; the table and --save-history hold the run up to it.")
    stopped = int(lines[0].split("step ")[1].split(";")[0].replace(",", ""))
    assert 0 < stopped < 300
    frame = pd.read_csv(history)
    assert list(frame["step"]) == list(range(stopped))  # every step, logged one by one
    assert "Traceback" not in result.output and f"interrupted {stopped}" in result.stdout


@pytest.mark.parametrize("where", ["train", "probe"])
def test_ctrl_c_before_the_work_exits_130_in_one_line(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "load", ctrl_c)
    args = TRAIN if where == "train" else _PD
    result = _invoke(args)
    assert result.exit_code == 130, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: "), lines
    assert "Traceback" not in result.output


def test_ctrl_c_while_the_command_imports_exits_130_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from initlab import _entry

    real_import = __import__

    def interrupted(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "initlab.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", interrupted)
    with pytest.raises(SystemExit) as exit_:
        _entry.main()
    assert exit_.value.code == 130
    assert capsys.readouterr().err == ""


_INTERRUPT_TORCH = """
import builtins, runpy, sys
real = builtins.__import__
def interrupted(name, *args, **kwargs):
    if name == "torch" or name.startswith("torch."):
        raise KeyboardInterrupt  # as Ctrl-C would, while torch loads
    return real(name, *args, **kwargs)
builtins.__import__ = interrupted
script, sys.argv = sys.argv[1], ["initlab", "--help"]
runpy.run_path(script, run_name="__main__")
"""


def test_ctrl_c_while_torch_loads_in_the_console_script_exits_130_quietly() -> None:
    script = shutil.which("initlab", path=str(Path(sys.executable).parent))
    assert script is not None, "the initlab console script is not installed beside python"
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_TORCH, script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


# ------------------------------------------------------------- properties

# Text near the specs' grammar reaches further than arbitrary unicode alone.
_SPECLIKE = st.text(alphabet="abcdefghilmnoprstuvxz_0123456789.,()=+-e '\"[]*/{}:", max_size=40)
_ANY_TEXT = st.one_of(st.text(max_size=40), _SPECLIKE)


@settings(max_examples=300, deadline=None)
@given(text=_ANY_TEXT)
def test_the_spec_parsers_give_a_value_or_a_clear_error(text: str) -> None:
    for parse in (
        lambda: parse_call(text, "Spec", "'normal(std=0.01)'"),
        lambda: parse_call(text, "Factory call", "'net(depth=3)'", bare_names=False),
        lambda: parse_spec(text).describe((8, 4)),
    ):
        try:
            parse()
        except (ValueError, TypeError) as error:
            assert str(error).strip(), type(error)


_LIST_OPTIONS = ["--init", "--lr", "--optimizer", "--clip-threshold", "--model", "--batch-size",
                 "--schedule"]  # fmt: skip


@pytest.mark.parametrize("option", _LIST_OPTIONS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_ANY_TEXT)
def test_any_text_for_a_list_option_runs_or_is_one_line(option: str, text: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        # As if the machine had 256 MB: a valid but large --model is refused, not trained.
        patch.setattr(initlab.cli, "_memory", lambda: 256 * 2**20)
        result = _invoke([*TRAIN, "--clip", "norm", option, text])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    if result.exit_code != 0:
        _one_line_error(result)


_NAME = st.text(
    alphabet=st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=30,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    folders=st.lists(_NAME, max_size=3),
    name=_NAME,
    suffix=st.sampled_from([".csv", ".parquet", ".CSV", ".xyz", ""]),
    under_a_file=st.booleans(),
)
def test_any_history_path_is_written_or_refused_before_training(
    folders: list[str], name: str, suffix: str, under_a_file: bool
) -> None:
    calls = []
    real = initlab.train.train

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        patch.setattr(initlab.train, "train", counted)
        base = Path(tmp)
        if under_a_file:
            (base / "file").write_text("")
            base = base / "file"
        path = base.joinpath(*folders, name + suffix)
        result = _invoke([*TRAIN, "--save-history", str(path)])
        if result.exit_code == 0:
            frame = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
            assert list(frame["step"]) == [0] and calls == [1]
            # Shown as typed, or quoted with escapes where a terminal would act on a character.
            shown = str(path) if str(path).isprintable() else repr(str(path))
            assert f"history: {shown}" in result.stdout
        else:
            line = _one_line_error(result)
            assert "--save-history" in line and calls == [], line
