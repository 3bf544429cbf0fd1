"""The initlab command, end to end through typer's runner."""

from __future__ import annotations

import math

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
