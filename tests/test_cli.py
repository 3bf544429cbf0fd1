"""The initlab command, end to end through typer's runner."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import initlab
from initlab.cli import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"initlab {initlab.__version__}"


def test_schemes_lists_every_scheme_with_formula() -> None:
    result = runner.invoke(app, ["schemes"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in (
        "zeros",
        "xavier_uniform",
        "kaiming_normal",
        "orthogonal",
        "torch_default",
        "he_normal",
    ):
        assert name in result.output
    assert "U(±1/√in)" in result.output
    assert "--shape" in result.output  # the hint to ask for numbers


def test_schemes_for_a_shape_and_activation_prints_the_std_drawn() -> None:
    result = runner.invoke(
        app, ["schemes", "--shape", "256x128", "--activation", "relu"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    he = rows["he_normal"]
    assert f"{math.sqrt(2 / 128):.4g}" in he and "in=128" in he
    assert "g = 1.414 (relu)" in result.output
    xavier = rows["xavier_uniform"]
    std = math.sqrt(2) * math.sqrt(2 / 384)
    assert f"{std:.4g}" in xavier and f"±{math.sqrt(3) * std:.4g}" in xavier
    assert f"±{1 / math.sqrt(128):.4g}" in rows["torch_default"]
    assert "wrong dims" in rows["dirac"]


def test_schemes_for_a_conv_shape_uses_the_receptive_field() -> None:
    result = runner.invoke(app, ["schemes", "--shape", "64x3x3x3"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "fan_in 27, fan_out 576" in result.output and "in=27" in result.output
    assert f"{math.sqrt(1 / 27):.4g}" in result.output  # lecun_normal


def test_bad_shape_and_activation_are_clear_errors() -> None:
    result = runner.invoke(app, ["schemes", "--shape", "256by128"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "OUTxIN" in result.output and "256by128" in result.output
    result = runner.invoke(app, ["schemes", "--shape", "0x3"], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "at least 1" in result.output
    result = runner.invoke(app, ["schemes", "--activation", "rleu"], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "Did you mean 'relu'" in result.output


def test_gains_prints_both_conventions() -> None:
    result = runner.invoke(app, ["gains"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    tanh = next(line for line in result.output.splitlines() if "│ tanh " in line)
    assert "1.6667" in tanh and "1.5925" in tanh
    selu = next(line for line in result.output.splitlines() if "│ selu " in line)
    assert "0.7500" in selu and "1.0000" in selu


def test_train_grid_prints_a_table_per_member_and_saves(tmp_path) -> None:  # type: ignore[no-untyped-def]
    history, figure = tmp_path / "h.parquet", tmp_path / "loss.png"
    args = [
        "train",
        "--data",
        "circles",
        "--model",
        "2,8,1",
        "--init",
        "he_normal,zeros,normal(std=10)",
        "--seeds",
        "2",
        "--lr",
        "0.05",
        "--steps",
        "200",
        "--save-history",
        str(history),
        "--figure",
        str(figure),
    ]
    result = runner.invoke(app, args, env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "6 members" in result.output and "lr 0.05, optimizer sgd" in result.output
    rows = [line for line in result.output.splitlines() if "budget 200" in line]
    assert len(rows) == 6 and "normal(std=10)" in rows[-1]
    zeros = [line for line in rows if " zeros " in line]
    assert all("0.6931" in line for line in zeros)  # zero init: the cost never leaves log 2
    import pandas as pd

    frame = pd.read_parquet(history)
    assert len(frame) == 6 * 200 and set(frame["init"]) == {"he_normal", "zeros", "normal(std=10)"}
    assert figure.read_bytes()[:4] == b"\x89PNG"
    csv = tmp_path / "h.csv"
    assert runner.invoke(app, [*args[:-4], "--save-history", str(csv)]).exit_code == 0
    assert csv.read_text().startswith("member,step,loss")


def test_train_bad_options_are_clear_errors() -> None:
    result = runner.invoke(app, ["train", "--model", "2,ten,1", "--steps", "1"])
    assert result.exit_code == 2 and "2,10,5,1" in result.output
    result = runner.invoke(app, ["train", "--model", "3,4,1", "--steps", "1"])
    assert result.exit_code == 2 and "first width to be 2" in result.output
    result = runner.invoke(app, ["train", "--optimizer", "adma", "--steps", "1"])
    assert result.exit_code == 2 and "Did you mean 'adam'" in result.output
    result = runner.invoke(app, ["train", "--lr", "0.1,abc", "--steps", "1"])
    assert result.exit_code == 2 and "numbers" in result.output
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 2 and "budget" in result.output


def test_lessons_lists_all_eight() -> None:
    result = runner.invoke(app, ["lessons"])
    assert result.exit_code == 0
    for name in ("init", "optimizers", "batching", "batchnorm", "clipping", "gradients"):
        assert name in result.output
    assert "landscape" in result.output and "chaos" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_lesson_device_is_checked() -> None:
    result = runner.invoke(app, ["lesson", "optimizers", "--quick", "--device", "cuda"])
    assert result.exit_code == 2 and "no CUDA GPU" in result.output


def test_lesson_name_is_checked() -> None:
    result = runner.invoke(app, ["lesson", "initialization"])
    assert result.exit_code == 2 and "init, optimizers, batching" in result.output


def test_train_records_clip_thresholds_and_checks_seeds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    history = tmp_path / "h.csv"
    args = [
        "train",
        "--model",
        "2,6,1",
        "--steps",
        "20",
        "--clip",
        "norm",
        "--clip-threshold",
        "0.1,10",
        "--save-history",
        str(history),
    ]
    result = runner.invoke(app, args, env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.lstrip().startswith("#"))
    assert header.split()[:2] == ["#", "clip"]  # the thresholds vary, so they get a column
    import pandas as pd

    frame = pd.read_csv(history)
    assert sorted(frame["clip_threshold"].unique()) == [0.1, 10.0]
    assert runner.invoke(app, ["train", "--seeds", "0", "--steps", "1"]).exit_code == 2
    bad = runner.invoke(
        app, ["train", "--model", "2,6,1", "--loss", "cross_entropy", "--steps", "1"]
    )
    assert bad.exit_code == 2 and "labels go up to 1" in bad.output


# ----------------------------------------------------------------------------- probe

NETS = f"{Path(__file__).parents[1] / 'examples' / 'deep_nets.py'}:deep_mlp"


def _probe(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["probe", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_probe_diagnoses_xavier_relu_and_passes_he(tmp_path: Path) -> None:
    code, out = _probe(
        f"{NETS}(depth=12, width=128, inputs=64)", "--input-shape", "256x64", "--init",
        "xavier_normal", "--figure", str(tmp_path / "p.png"),
    )  # fmt: skip
    assert code == 0, out
    assert "vanishing: relu layers 1–13 shrink the signal by 0.7" in out
    assert "weight='he_normal'" in out
    assert (tmp_path / "p.png").stat().st_size > 10_000
    code, out = _probe(
        f"{NETS}(depth=12, width=128, inputs=64)", "--input-shape", "256x64", "--init", "he_normal"
    )
    assert code == 0, out
    assert "healthy: no verdict." in out


def test_probe_on_real_data_with_steps_shows_the_update_ratio() -> None:
    code, out = _probe(
        f"{NETS}(depth=2, width=32, inputs=64)", "--data", "digits", "--steps", "2", "--lr", "0.1"
    )
    assert code == 0, out
    assert "ΔW/W" in out and "loss" in out


def test_probe_marks_dead_layers_in_the_table() -> None:
    code, out = _probe(
        f"{NETS}(depth=3, width=32, inputs=8)", "--input-shape", "64x8", "--init", "he_normal",
        "--bias-init", "constant(-10)",
    )  # fmt: skip
    assert code == 0, out
    assert "dead:" in out and "units output 0 for every example" in out


def test_probe_needs_exactly_one_input() -> None:
    code, out = _probe(NETS)
    assert code == 2 and "exactly one of --input-shape" in out
    code, out = _probe(NETS, "--input-shape", "4x256", "--data", "digits")
    assert code == 2 and "exactly one of --input-shape" in out


def test_probe_names_a_bad_factory() -> None:
    code, out = _probe(NETS.replace("deep_mlp", "nothing"), "--input-shape", "4x256")
    assert code == 2 and "has no attribute 'nothing'" in out and "deep_mlp" in out
    code, out = _probe("no_such_module_xyz:build", "--input-shape", "4x256")
    assert code == 2 and "cannot import 'no_such_module_xyz'" in out
    code, out = _probe("deep_mlp", "--input-shape", "4x256")
    assert code == 2 and "expected MODULE:FACTORY" in out


def test_probe_names_the_layer_when_the_shape_is_wrong() -> None:
    code, out = _probe(NETS, "--input-shape", "4x100")
    assert code == 2
    assert "layer '0'" in out and "(…, 256)" in out and "(4, 100)" in out


def test_saved_history_keeps_each_steps_scheduled_lr(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    history = tmp_path / "h.csv"
    args = ["train", "--model", "2,6,1", "--steps", "5", "--lr", "0.1,0.2"]
    args += ["--schedule", "exponential(0.5)", "--save-history", str(history)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(history)
    # Full batch: every step is an epoch, so step k runs at base_lr · 0.5^k.
    expected = frame["base_lr"] * 0.5 ** frame["step"]
    assert sorted(frame["base_lr"].unique()) == [0.1, 0.2]
    assert frame["lr"].to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-6)  # float32 lr


def test_train_data_options_and_first_seed(tmp_path: Path) -> None:
    """--data 'name(options)' loads with those options; --seed s trains member s as
    --seeds s+1 trains its last member (the same init and shuffle seed)."""
    from initlab import data

    history = tmp_path / "h.csv"
    args = ["train", "--data", "circles(n=120, noise=0.2, test_size=0.25)", "--steps", "20"]
    result = runner.invoke(app, [*args, "--seed", "2", "--save-history", str(history)])
    assert result.exit_code == 0, result.output
    both = tmp_path / "both.csv"
    result = runner.invoke(app, [*args, "--seeds", "3", "--save-history", str(both)])
    assert result.exit_code == 0, result.output
    import pandas as pd

    alone = pd.read_csv(history)
    third = pd.read_csv(both).query("seed == 2")
    assert alone["loss"].tolist() == third["loss"].tolist()
    assert data.load("circles", n=120, noise=0.2, test_size=0.25).n_train == 90
    bad = runner.invoke(app, [*args[:2], "circles(n=120, noize=0.2)", "--steps", "5"])
    assert bad.exit_code != 0 and "Did you mean 'noise'" in bad.output
    bad = runner.invoke(app, [*args[:2], "circles(120", "--steps", "5"])
    assert bad.exit_code != 0 and "expected a name or name(key=value, …)" in bad.output


def test_playground_port_is_checked() -> None:
    result = runner.invoke(app, ["playground", "--no-browser", "--port", "70000"])
    assert result.exit_code != 0
    assert "expected a port from 0 to 65535" in result.output
