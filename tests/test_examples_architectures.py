"""examples/architectures.py through ``initlab probe``: every factory builds, the default
models read healthy, and each pathology the factories make is named by its verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from initlab.cli import app

runner = CliRunner()
ARCHITECTURES = Path(__file__).parents[1] / "examples" / "architectures.py"
DIGITS = ("--data", "digits", "--batch-size", "64")
TOKENS_16 = ("--input-shape", "32x12", "--tokens", "16")  # transformer, embeddings
TOKENS_8 = ("--input-shape", "32x16", "--tokens", "8")  # the language models


def _report(factory: str, *options: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(
        app, ["probe", f"{ARCHITECTURES}:{factory}", *options, "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _problems(report: dict) -> set[str]:  # type: ignore[type-arg]
    return {v["kind"] for v in report["verdicts"] if v["severity"] == "problem"}


@pytest.mark.parametrize(
    ("factory", "options"),
    [
        ("resnet18()", DIGITS),
        ("transformer()", TOKENS_16),
        ("lstm_lm()", TOKENS_8),
        ("gru_lm()", TOKENS_8),
        ("gru_lm(state='zeros')", TOKENS_8),  # the update gate carries h: no pathology
        ("vit()", DIGITS),
        ("embedding_classifier()", TOKENS_16),
    ],
)
def test_the_defaults_read_healthy(factory: str, options: tuple[str, ...]) -> None:
    report = _report(factory, *options)
    assert report["healthy"], report["verdicts"]
    assert report["layers"], "the probe measured no layer"


@pytest.mark.parametrize(
    ("factory", "options", "expected"),
    [
        ("resnet18(init='normal')", DIGITS, {"high_loss"}),
        ("transformer(in_proj='normal')", TOKENS_16, {"attention_collapse"}),
        ("lstm_lm(state='zeros')", TOKENS_8, {"vanishing_in_time"}),
        ("lstm_lm(state='normal')", TOKENS_8, {"exploding_in_time", "saturated"}),
        ("gru_lm(state='normal')", TOKENS_8, {"exploding_in_time", "saturated"}),
        ("vit(init='normal')", DIGITS, {"high_loss", "residual_growth", "attention_collapse"}),
    ],
)
def test_each_pathology_is_named(
    factory: str, options: tuple[str, ...], expected: set[str]
) -> None:
    report = _report(factory, *options)
    assert not report["healthy"]
    assert expected <= _problems(report), report["verdicts"]


def test_the_numbers_behind_the_verdicts() -> None:
    # The zero W_hh cuts h_{t-1} out of step t: the gradient reaching step 0 is exactly 0.
    (rnn,) = _report("lstm_lm(state='zeros')", *TOKENS_8)["recurrent"]
    assert rnn["kind"] == "LSTM" and rnn["grad_through_time"][0] == 0.0
    assert rnn["grad_through_time"][-1] > 0
    # N(0, 1) weights behind batch norm: the loss far above ln 10, the weights' scale as
    # advice for the normalized convolutions.
    report = _report("resnet18(init='normal')", *DIGITS)
    output = report["output"]
    assert output["classes"] == 10 and output["cross_entropy"] > 2 * output["natural_loss"]
    advice = [v for v in report["verdicts"] if v["severity"] == "advice"]
    assert [v["kind"] for v in advice] == ["weight_scale"]


def test_a_bad_factory_argument_is_an_error_naming_the_choices() -> None:
    result = runner.invoke(app, ["probe", f"{ARCHITECTURES}:resnet18(init='nromal')", *DIGITS])
    assert result.exit_code != 0
    assert "'default', 'normal'" in result.output and "'nromal'" in result.output
