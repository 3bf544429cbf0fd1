"""``initlab probe`` on real inputs and real terminals: the data laid out for the model's
first layer, token batches, factory files that import their neighbours, errors in the
command's words, a table that fits 100 columns, JSON and CSV, the report's new parts,
and --fix."""

from __future__ import annotations

import io
import json
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

import initlab.probe
from initlab import experiments
from initlab.cli import _in_cli_words, _num, _print_probe, _shorten, app
from initlab.probe import Probe, ProbeReport, Verdict
from initlab.probe.results import (
    AttentionStats,
    NormStats,
    OutputStats,
    RecurrentStats,
    ResidualStats,
)

runner = CliRunner()

# Small models of the kinds practitioners probe, each a factory of a file the tests write.
_NETS = '''
import torch
from torch import nn


def cnn(channels=1):
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(8, 10),
    )


def conv1d():
    return nn.Sequential(nn.Conv1d(1, 4, 5), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 10))


def mlp(inputs=64):
    return nn.Sequential(nn.Linear(inputs, 32), nn.ReLU(), nn.Linear(32, 10))


def embedder(vocab=100, length=12):
    return nn.Sequential(nn.Embedding(vocab, 8), nn.Flatten(), nn.Linear(8 * length, 10))


class _Rows(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(8, 16, batch_first=True)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def rows():
    return _Rows()


class _Block(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class _ResNet(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        chans = [width, width, 2 * width, 4 * width, 8 * width]
        for i in range(1, 5):
            stride = 1 if i == 1 else 2
            blocks = [_Block(chans[i - 1], chans[i], stride), _Block(chans[i], chans[i])]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.fc = nn.Linear(8 * width, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(x.mean(dim=(2, 3)))


class _Wrapped(nn.Module):
    """A ResNet-18-style net two modules deep: every name starts with model.backbone."""

    def __init__(self):
        super().__init__()
        self.model = nn.Module()
        self.model.backbone = _ResNet()

    def forward(self, x):
        return self.model.backbone(x)


def resnet():
    return _Wrapped()
'''


@pytest.fixture(scope="module")
def nets(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("nets") / "nets.py"
    path.write_text(_NETS)
    return str(path)


def _probe(*args: str, columns: int = 200) -> tuple[int, str]:
    result = runner.invoke(app, ["probe", *args], env={"COLUMNS": str(columns)})
    return result.exit_code, result.output


def _error(out: str) -> str:
    """The one error line."""
    lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out
    return lines[0]


# ----------------------------------------------------------------------------- --data


def test_data_is_laid_out_as_images_for_a_conv_stem(nets: str) -> None:
    code, out = _probe(f"{nets}:cnn", "--data", "digits", "--batch-size", "32")
    assert code == 0, out
    assert "healthy" in out or "fix:" in out
    code, out = _probe(f"{nets}:cnn", "--data", "digits", "--format", "csv")
    frame = pd.read_csv(io.StringIO(out))
    assert frame.loc[0, "kind"] == "Conv2d" and frame.loc[0, "fan_in"] == 9
    # mnist1d's sequences as (N, 1, 40) for a Conv1d
    code, out = _probe(
        f"{nets}:conv1d", "--data", "mnist1d(n=200)", "--batch-size", "64", "--format", "csv"
    )
    assert code == 0, out
    assert pd.read_csv(io.StringIO(out)).loc[0, "kind"] == "Conv1d"


def test_data_is_flat_for_a_linear_first_layer_and_sequences_for_an_rnn(nets: str) -> None:
    code, out = _probe(f"{nets}:mlp", "--data", "digits", "--format", "csv")
    assert code == 0, out
    assert pd.read_csv(io.StringIO(out)).loc[0, "fan_in"] == 64
    # An RNN first: each 8×8 digit read as 8 steps of 8 features (batch_first).
    code, out = _probe(f"{nets}:rows", "--data", "digits")
    assert code == 0, out


def test_data_that_fits_no_layout_is_a_clear_error(nets: str) -> None:
    code, out = _probe(f"{nets}:cnn(channels=3)", "--data", "digits")
    assert code == 2
    assert _error(out) == (
        "error: --data: the model's first layer '0' (Conv2d) takes images with 3 channels, "
        "and --data digits gives images of 1×8×8 (channels × H × W). Give the model's first "
        "layer in_channels=1."
    )
    code, out = _probe(f"{nets}:mlp(inputs=784)", "--data", "digits")
    assert code == 2
    line = _error(out)
    assert "first layer '0' (Linear) takes 784 features per example" in line
    assert "digits gives images of 1×8×8" in line and "--layout image" in line
    code, out = _probe(f"{nets}:cnn", "--data", "circles")
    assert code == 2 and "expected images for --layout image or a conv stem" in _error(out)
    assert "circles gives 2 features per example" in out
    code, out = _probe(f"{nets}:embedder", "--data", "digits")
    assert code == 2 and "takes integer token ids" in out and "--tokens 100" in out
    code, out = _probe(f"{nets}:conv1d", "--data", "digits")
    assert code == 2 and "takes 1-D images" in out and "Use mnist1d" in out


def test_layout_overrides_the_guess_and_the_probe_names_the_mismatch(nets: str) -> None:
    code, out = _probe(f"{nets}:cnn", "--data", "digits", "--layout", "flat")
    assert code == 2
    line = _error(out)
    assert line.startswith("error: --data: The forward pass failed in layer '0'")
    assert "Check --data digits --layout flat against the model's first layer" in line
    code, out = _probe(f"{nets}:mlp", "--data", "digits", "--layout", "imag")
    assert code == 2 and "Did you mean 'image'?" in out
    code, out = _probe(f"{nets}:mlp", "--input-shape", "4x64", "--layout", "image")
    assert code == 2 and _error(out).startswith("error: --layout: expected --layout with --data")


# ----------------------------------------------------------------------------- tokens


def test_tokens_make_a_random_batch_of_ids(nets: str) -> None:
    args = [f"{nets}:embedder", "--input-shape", "16x12", "--tokens", "100"]
    code, out = _probe(*args, "--format", "csv")
    assert code == 0, out
    head = pd.read_csv(io.StringIO(out)).iloc[-1]  # the head after the embedding, measured
    assert (head["kind"], head["fan_in"]) == ("Linear", 96)
    # --seed seeds the factory's own init too: the same command, the same numbers
    assert _probe(*args, "--format", "csv")[1] == out
    assert _probe(*args, "--format", "csv", "--seed", "1")[1] != out
    # an integer batch by dtype alone: the ids span the first Embedding
    code, out = _probe(f"{nets}:embedder", "--input-shape", "16x12", "--input-dtype", "int")
    assert code == 0, out


def test_token_batches_that_cannot_fit_are_clear_errors(nets: str) -> None:
    code, out = _probe(f"{nets}:embedder", "--input-shape", "16x12", "--tokens", "1000")
    assert code == 2
    assert _error(out) == (
        "error: --tokens: expected at most the 100 ids of the model's first layer '0' "
        "(Embedding(100, …)). Got 1,000."
    )
    # the probe's own error, for a first layer that is not an Embedding
    code, out = _probe(f"{nets}:mlp", "--input-shape", "16x64", "--tokens", "10")
    assert code == 2
    line = _error(out)
    assert line.startswith("error: --tokens: The batch is torch.int64, but the model's first")
    assert "need an nn.Embedding as the first layer" in line and "x.to(" not in line
    code, out = _probe(f"{nets}:mlp", "--input-shape", "16x64", "--input-dtype", "long")
    assert code == 2 and "expected --tokens VOCAB with --input-dtype long" in out
    code, out = _probe(f"{nets}:embedder", "--input-shape", "16x12", "--tokens", "9",
                       "--input-dtype", "float")  # fmt: skip
    assert code == 2 and "expected integer token ids with --tokens" in out
    code, out = _probe(f"{nets}:embedder", "--data", "digits", "--tokens", "9")
    assert code == 2 and _error(out).startswith("error: --tokens: expected --tokens with")


# ----------------------------------------------------------------------------- factories


def _blocks_pair(folder: Path, width: int) -> str:
    folder.mkdir()
    (folder / "blocks.py").write_text(
        textwrap.dedent(f"""
        from torch import nn

        WIDTH = {width}

        class Block(nn.Sequential):
            def __init__(self, inputs):
                super().__init__(nn.Linear(inputs, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 2))
        """)
    )
    (folder / "net.py").write_text(
        textwrap.dedent("""
        from dataclasses import dataclass

        from blocks import Block

        @dataclass
        class Config:  # a dataclass needs its module in sys.modules while it is made
            inputs: int = 4

        def make(inputs=4):
            return Block(Config(inputs).inputs)
        """)
    )
    return str(folder / "net.py")


def test_a_factory_file_imports_the_files_beside_it(tmp_path: Path) -> None:
    path_before, modules_before = list(sys.path), set(sys.modules)
    first = experiments.load_factory(f"{_blocks_pair(tmp_path / 'a', 5)}:make(inputs=3)")
    second = experiments.load_factory(f"{_blocks_pair(tmp_path / 'b', 7)}:make")
    # each file's own blocks.py, never the one imported first
    assert (first[0].in_features, first[0].out_features) == (3, 5)
    assert (second[0].in_features, second[0].out_features) == (4, 7)
    assert sys.path == path_before
    assert not {"blocks", "net"} & (set(sys.modules) - modules_before)
    code, out = _probe(f"{tmp_path / 'a' / 'net.py'}:make", "--input-shape", "8x4")
    assert code == 0, out


# ----------------------------------------------------------------------------- errors


def test_library_messages_are_worded_in_options() -> None:
    option, text = _in_cli_words(
        "The 'loss_fn' parameter of probe must be a loss when steps > 0. Got None instead. "
        "Pass loss_fn, or steps=0."
    )
    assert option == "--loss"
    assert text == (
        "expected a loss when --steps > 0. Got none. Give --data (its labels give a loss), "
        "or --steps 0."
    )
    option, text = _in_cli_words("The 'lr' parameter of probe must be > 0. Got 0 instead.")
    assert (option, text) == ("--lr", "expected > 0. Got 0.")
    option, text = _in_cli_words(
        "The 'limit' parameter of load_fashion_mnist must be an integer >= 1. Got 0 instead."
    )
    assert option == "--data"
    assert text == "The 'limit' option of fashion-mnist must be an integer >= 1. Got 0 instead."
    assert _in_cli_words("nothing Python here", "--init") == ("--init", "nothing Python here")


def test_errors_reachable_from_the_command_name_its_options(nets: str) -> None:
    code, out = _probe(f"{nets}:mlp", "--data", "circles(n=-1)")
    assert code == 2
    assert _error(out) == (
        "error: --data: The 'n' option of circles must be an integer >= 2. Got -1 instead."
    )
    code, out = _probe(f"{nets}:cnn", "--input-shape", "4x1x8x8", "--init", "eye")
    assert code == 2
    line = _error(out)
    assert line.startswith("error: --init: cannot initialize 0.weight (8, 1, 3, 3) (Conv2d)")
    assert "eye needs a 2-D tensor" in line and "for conv use dirac." in line
    code, out = _probe(f"{nets}:cnn", "--input-shape", "4x64")
    assert code == 2
    line = _error(out)
    assert line.startswith("error: --input-shape: The forward pass failed in layer '0'")
    assert "Check --input-shape 4x64 against the model's first layer." in line
    code, out = _probe("initlab.models:mlp([4, 8, 2], 'relu', members=3)", "--input-shape",
                       "16x4", "--fix")  # fmt: skip
    assert code == 2
    assert _error(out) == (
        "error: MODEL: expected a plain nn.Module (for a Stack: init_members). Got 'Stack'. "
        "--fix takes a plain model."
    )
    code, out = _probe("torch.nn:ReLU", "--input-shape", "4x64")
    assert code == 2 and _error(out).startswith("error: MODEL: The model ReLU has no parameters")


# ----------------------------------------------------------------------------- the table


def test_the_table_fits_100_columns_on_a_resnet(nets: str) -> None:
    code, out = _probe(f"{nets}:resnet", "--data", "digits", "--batch-size", "32", "--steps",
                       "1", columns=100)  # fmt: skip
    assert code == 0, out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    # the shared prefix once, in a legend line; each name's informative end in the table
    assert "layer names start with model.backbone." in lines
    rows = [line for line in lines if line.split()[:1] == ["19"]]
    assert len(rows) == 1 and "layer4.1.conv1" in rows[0] and "backbone" not in rows[0]
    assert "∇W/W: ‖∂loss/∂W‖/‖W‖" in out and "ΔW/W: ‖ΔW‖/‖W‖ per step" in out
    # numbers in 3 significant digits, at most 7 characters
    for row in (line for line in lines if line[:3].strip().isdigit()):
        numbers = [w for w in row.split() if w[:1].isdigit() and not w.isdigit()]
        assert all(len(w) <= 7 for w in numbers), row


def test_every_column_and_verdicts_fit_100_columns() -> None:
    deep = Path(__file__).parents[1] / "examples" / "deep_nets.py"
    code, out = _probe(
        f"{deep}:deep_mlp(depth=6, activation='tanh', inputs=64, width=128)", "--data",
        "digits", "--init", "normal(std=0.2)", "--bias-init", "constant(0.5)", "--steps", "2",
        columns=100,
    )  # fmt: skip
    assert code == 0, out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    header = next(line for line in lines if line.startswith("# layer"))
    assert header.split() == ["#", "layer", "φ", "h", "rms", "theory", "∂h", "rms", "theory",
                              "satur.", "dead", "copies", "∇W/W", "ΔW/W", "verdict"]  # fmt: skip
    assert "satur." in next(line for line in lines if line.startswith("3 "))


def test_long_names_are_cut_from_the_left() -> None:
    assert _shorten("encoder.layers.11.self_attn.out_proj", 16) == "…f_attn.out_proj"
    assert _shorten("fc", 16) == "fc"
    assert [_num(x) for x in (0.000343, 12.345, 2.3e5, 0.0, float("nan"), float("inf"))] == [
        "3.43e-4", "12.3", "2.30e5", "0", "—", "inf",
    ]  # fmt: skip


# ----------------------------------------------------------------------------- json, csv


def test_json_is_one_object_per_member_and_nothing_else(nets: str) -> None:
    code, out = _probe(f"{nets}:mlp", "--data", "digits", "--steps", "2", "--format", "json")
    assert code == 0, out
    lines = out.splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert obj["model"].endswith("nets.py:mlp") and obj["member"] is None
    assert [layer["name"] for layer in obj["layers"]] == ["0", "2"]
    assert obj["layers"][0]["update_weight_ratio"] > 0 and "act_hist" not in obj["layers"][0]
    assert obj["loss"] > 0 and isinstance(obj["healthy"], bool)
    for key in ("verdicts", "attention", "recurrent", "norms", "residuals", "unseen"):
        assert isinstance(obj[key], list)
    assert obj["layers"][0]["saturated"] is None  # relu: NaN, written as null
    # a stack: one line per member
    code, out = _probe("initlab.models:mlp([4, 8, 2], 'relu', members=3)", "--input-shape",
                       "16x4", "--format", "json")  # fmt: skip
    assert code == 0, out
    assert [json.loads(line)["member"] for line in out.splitlines()] == [0, 1, 2]


def test_json_verdicts_carry_their_severity(nets: str) -> None:
    code, out = _probe(f"{nets}:mlp", "--data", "digits", "--init", "zeros", "--format", "json")
    assert code == 0, out
    verdicts = json.loads(out)["verdicts"]
    assert verdicts and all(v["severity"] in ("problem", "advice") for v in verdicts)
    assert "symmetric" in [v["kind"] for v in verdicts]


def test_csv_is_the_per_layer_table(nets: str) -> None:
    code, out = _probe(f"{nets}:mlp", "--data", "digits", "--format", "csv")
    assert code == 0, out
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame["name"]) == [0, 2] and list(frame["units"]) == [32, 10]
    assert {"preact_rms", "grad_rms", "grad_weight_ratio", "symmetry"} <= set(frame.columns)


# ----------------------------------------------------------------------------- new parts


def _report(verdicts: tuple[Verdict, ...]) -> Probe:
    base = initlab.probe.probe(torch.nn.Sequential(torch.nn.Linear(4, 3)), torch.randn(8, 4))[0]
    return Probe(
        layers=base.layers,
        verdicts=verdicts,
        loss=25.9,
        loss_after_steps=float("nan"),
        forward_factor=float("nan"),
        backward_factor=float("nan"),
        forecast_note="",
        attention=(
            AttentionStats(
                "encoder.layers.0.self_attn",
                4,
                50,
                1.02,
                0.98,
                1.0,
                0.51,
                0.97,
                0.061,
                0.02,
                0.02,
                0.02,
            ),
        ),
        recurrent=(
            RecurrentStats(
                "lstm",
                "LSTM",
                1,
                32,
                20,
                tuple(0.5**k for k in range(19, -1, -1)),
                0.5,
                (0.1,) * 20,
                {"forget": 0.03, "input": 0.12},
                {},
                0.4,
            ),
        ),
        norms=(NormStats("encoder.norm", "LayerNorm", 3.2, 1.0, 1.0),),
        residuals=(
            ResidualStats("encoder.layers.0", 332.0, 1159.0, 900.0, "encoder.layers.0.linear2"),
        ),
        output=OutputStats((8, 10), 14.5, 10, 25.9, 2.302585),
        unseen=("cell (MyCell): a module with its own parameters the probe does not know",),
    )


def _printed(report: Probe) -> str:
    console = Console(width=100, record=True, file=io.StringIO())
    _print_probe(console, report, "m.py:net", steps=False)
    return console.export_text()


def test_the_new_parts_print_as_compact_blocks() -> None:
    text = _printed(_report(()))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    attention = next(line for line in lines if "self_attn" in line)
    assert attention.split()[1:] == ["4", "50", "1.02", "0.98", "1", "0.51", "0.97", "0.061"]
    lstm = next(line for line in lines if line.startswith("lstm"))
    # gradient at t = 0, T/2, T−1 and the most saturated gate
    assert lstm.split() == ["lstm", "LSTM", "20", "0.5", "1.91e-6", "0.00195", "1", "input",
                            "12%"]  # fmt: skip
    block = next(line for line in lines if line.startswith("encoder.layers.0 "))
    assert block.split()[1:] == ["linear2", "332", "→", "1.16e3", "2.71"]
    assert "output: loss 25.9 (ln 10 = 2.30 at init), logits rms 14.5" in text
    assert "not measured: cell (MyCell): a module" in text
    assert "encoder.norm" in text  # few norm layers: listed


def test_healthy_only_without_problems_and_advice_reads_as_advice() -> None:
    advice = Verdict("redundant_bias", (1,), 1.0, "layer 1's bias is redundant.",
                     "bias=False", severity="advice")  # fmt: skip
    text = _printed(_report((advice,)))
    assert "healthy: no problem; advice below." in text
    assert "advice: redundant_bias: layer 1's bias is redundant." in text
    problem = Verdict("high_loss", (), 25.9, "the loss is 25.9, ln 10 = 2.30.", "scale down")
    text = _printed(_report((problem, advice)))
    assert "healthy" not in text
    assert "high_loss: the loss is 25.9" in text and "advice: redundant_bias" in text


# ----------------------------------------------------------------------------- --fix


class _FakeFix:
    """The contract of initlab.probe.fix: .before, .after, .applied."""

    def __init__(self, before: ProbeReport, after: ProbeReport) -> None:
        self.before, self.after = before, after
        self.applied = ("0.weight: he_normal (was zeros)",)


def test_fix_prints_before_what_it_applied_and_after(
    nets: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fix(model, batch, loss_fn=None, *, generator=None, **options):  # type: ignore[no-untyped-def]
        calls.append((loss_fn, options))
        before = initlab.probe.probe(model, batch, loss_fn)
        for layer in (model[0], model[2]):
            torch.nn.init.kaiming_normal_(layer.weight)
        return _FakeFix(before, initlab.probe.probe(model, batch, loss_fn))

    monkeypatch.setattr(initlab.probe, "fix", fix, raising=False)
    code, out = _probe(f"{nets}:mlp", "--data", "digits", "--init", "zeros", "--fix")
    assert code == 0, out
    before, _, after = out.partition("--fix applied:")
    assert "before --fix" in before and "symmetric" in before
    assert "0.weight: he_normal (was zeros)" in after and "after --fix" in after
    assert calls[0][0] is not None  # the loss of --data's labels
    assert calls[0][1] == {"steps": 0, "lr": 0.01, "seed": 0}  # the probe's options
    code, out = _probe(f"{nets}:mlp", "--data", "digits", "--init", "zeros", "--fix",
                       "--format", "json")  # fmt: skip
    obj = json.loads(out)
    assert obj["applied"] == ["0.weight: he_normal (was zeros)"]
    assert "symmetric" in [v["kind"] for v in obj["before"]["verdicts"]]
    assert "symmetric" not in [v["kind"] for v in obj["after"]["verdicts"]]


def test_fix_with_the_real_fix(nets: str) -> None:
    code, out = _probe(f"{nets}:mlp", "--data", "digits", "--init", "zeros", "--fix")
    assert code == 0, out
    before, _, after = out.partition("--fix applied:")
    assert "symmetric" in before and "symmetric" not in after
    assert "healthy" in after
