"""Results show themselves: a short ``repr`` and a small, escaped HTML view for Jupyter."""

from __future__ import annotations

import base64
import html
import io
import math
import os
import re
import subprocess
import sys
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import pytest
import torch
from PIL import Image
from torch import nn

from initlab import data, models
from initlab.probe import ProbeReport, Verdict, probe
from initlab.studies import StudySummary
from initlab.train import TrainConfig, TrainResult, train

SRC = Path(__file__).resolve().parents[1] / "src"


class _Collect(HTMLParser):
    """The text, tags and images of an HTML fragment, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self.images: list[str] = []
        self.rows = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "tr":
            self.rows += 1
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(fragment: str) -> _Collect:
    parser = _Collect()
    parser.feed(fragment)
    parser.close()
    return parser


def decode_png(src: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    image = Image.open(io.BytesIO(base64.b64decode(src[len(prefix) :], validate=True)))
    image.load()  # decodes every byte: a truncated PNG raises here
    return image


@pytest.fixture(scope="module")
def trained() -> TrainResult:
    torch.manual_seed(0)  # the members' init
    net = models.mlp([2, 8, 1], "tanh", members=3)
    ds = data.load("circles", n=100, seed=0)
    return train(net, ds, TrainConfig(loss="bce", steps=60, lr=[0.1, 1.0, 10.0]))


@pytest.fixture(scope="module")
def vanishing() -> ProbeReport:
    torch.manual_seed(0)  # a 12-layer tanh net at std 0.01: the gradient vanishes (0.1×/layer)
    layers: list[nn.Module] = []
    for _ in range(12):
        layers += [nn.Linear(100, 100), nn.Tanh()]
    net = nn.Sequential(*layers, nn.Linear(100, 10))
    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=0.01)
    return probe(net, torch.randn(128, 100))


# -------------------------------------------------------------------------- TrainResult


def test_train_result_repr_is_short_and_says_the_numbers(trained: TrainResult) -> None:
    text = repr(trained)
    assert "\n" not in text and len(text) < 200
    losses = [m.final_loss for m in trained.members]
    expected = ", ".join("nan" if math.isnan(v) else f"{v:.3g}" for v in losses)
    assert text == (f"TrainResult(members=3, steps=60, final_loss=[{expected}], stop_reason=None)")


def test_train_result_repr_of_a_large_stack_stays_short(trained: TrainResult) -> None:
    member = trained.members[0]
    many = replace(
        trained,
        members=tuple(
            replace(member, member=m, final_loss=math.nan if m == 2 else 1 / (m + 3))
            for m in range(500)
        ),
        stop_reason="x" * 500,
    )
    text = repr(many)
    assert len(text) < 200
    assert text.startswith(
        "TrainResult(members=500, steps=60, final_loss=[0.333, 0.25, nan, 0.167, "
    )
    assert re.search(r"… \+\d+\]", text)  # how many were left out
    # the numbers shown plus the count left out account for every member
    shown = re.search(r"final_loss=\[(.*), … \+(\d+)\]", text)
    assert shown is not None
    assert len(shown.group(1).split(", ")) + int(shown.group(2)) == 500


def test_train_result_html_has_the_members_and_a_figure_that_decodes(
    trained: TrainResult,
) -> None:
    page = parse(trained._repr_html_())
    text = " ".join(page.text)
    assert "3 members, 60 steps" in text
    assert page.rows == 1 + 3  # the header and one row per member
    statuses = [m.status for m in trained.members]
    for status in statuses:
        assert status in text
    [src] = page.images
    image = decode_png(src)
    assert image.format == "PNG" and image.width > 200 and image.height > 100


def test_train_result_html_escapes_its_strings(trained: TrainResult) -> None:
    evil = "<script>alert('x')</script>"
    member = replace(trained.members[0], config={"init": evil})
    result = replace(trained, members=(member, *trained.members[1:]), stop_reason=evil)
    fragment = result._repr_html_()
    assert "<script>" not in fragment
    assert fragment.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;") == 2
    assert evil in " ".join(parse(fragment).text)  # a browser shows it as text


# ------------------------------------------------------------------------------- probe


def test_probe_report_repr_is_one_short_line(vanishing: ProbeReport) -> None:
    assert repr(vanishing) == "ProbeReport(members=1, layers=13, problems=['vanishing'])"
    assert repr(vanishing[0]) == "Probe(member=None, layers=13, loss=nan, problems=['vanishing'])"


def test_stack_probe_repr_lists_each_problem_kind_once() -> None:
    torch.manual_seed(0)  # zero init in every member: symmetric units in all three
    net = models.mlp([4, 16, 16, 1], "tanh", members=3)
    models.init_members(net, ["zeros", "he_normal", "zeros"], ["zeros"] * 3, seeds=[0, 1, 2])
    report = probe(net, torch.randn(64, 4))
    kinds = list(dict.fromkeys(v.kind for p in report for v in p.problems))
    assert kinds  # the zero members have problems
    assert repr(report) == f"ProbeReport(members=3, layers=3, problems={kinds!r})"


def test_probe_repr_with_every_kind_stays_short(vanishing: ProbeReport) -> None:
    member = vanishing[0]
    verdicts = tuple(
        Verdict(kind=f"kind{k:02d}", layers=(1,), value=0.0, evidence="e", advice="a")  # type: ignore[arg-type]
        for k in range(40)
    )
    text = repr(replace(member, verdicts=verdicts))
    assert len(text) < 200 and "'kind00'" in text and "… +" in text


def test_probe_html_has_the_verdict_and_one_row_per_layer(vanishing: ProbeReport) -> None:
    fragment = vanishing._repr_html_()
    page = parse(fragment)
    text = " ".join(page.text)
    [verdict] = vanishing.verdicts
    assert verdict.kind in text and "Fix:" in text
    assert verdict.evidence in text and verdict.advice in text  # escaped, then unescaped
    assert page.rows == 1 + len(vanishing.layers)
    # the measured RMS of h, layer by layer, in 3 significant digits
    for layer in vanishing.layers:
        assert f"{layer.preact_rms:.3g}" in text
    assert len(fragment) < 20_000  # the old repr was 20,963 characters on one line


def test_healthy_probe_html_says_healthy() -> None:
    torch.manual_seed(0)  # He init for a ReLU net: healthy
    net = models.mlp([16, 32, 32, 4], "relu")
    models.init_members(net, ["he_normal"], ["zeros"], seeds=[0])
    report = probe(net, torch.randn(256, 16))
    assert report.healthy
    assert "healthy" in " ".join(parse(report._repr_html_()).text)


def test_stack_probe_html_has_a_row_per_member_and_folds_each() -> None:
    torch.manual_seed(0)
    net = models.mlp([4, 8, 1], "relu", members=10)
    report = probe(net, torch.randn(32, 4))
    page = parse(report._repr_html_())
    assert page.tags.count("details") == 8  # the first 8 members, folded
    text = " ".join(page.text)
    assert "10 members" in text and "report[m]" in text


def test_probe_html_escapes_names_and_verdicts(vanishing: ProbeReport) -> None:
    evil = "<img src=x onerror=alert(1)>"
    member = vanishing[0]
    layers = (replace(member.layers[0], name=evil), *member.layers[1:])
    verdict = replace(member.verdicts[0], evidence=evil, advice=evil)
    probe_ = replace(member, layers=layers, verdicts=(verdict,), unseen=(evil,))
    for shown in (ProbeReport((probe_,)), probe_, ProbeReport((probe_, probe_))):
        fragment = shown._repr_html_()
        assert "<img" not in fragment
        assert "&lt;img src=x onerror=alert(1)&gt;" in fragment


# ---------------------------------------------------------------------------- studies


def test_study_summary_repr_and_html() -> None:
    summary = StudySummary(
        runs=12,
        skipped=2,
        trained=9,
        done=7,
        diverged=1,
        failed=1,
        stacks=3,
        stacks_trained=2,
        interrupted=True,
        seconds=3.21,
    )
    assert repr(summary) == (
        "StudySummary(runs=12, skipped=2, trained=9, done=7, diverged=1, failed=1, "
        "pending=1, interrupted=True, seconds=3.21)"
    )
    page = parse(summary._repr_html_())
    text = " ".join(page.text)
    assert "9 of 12 runs trained" in text and "resume" in text
    assert page.rows == 1 + 7


# -------------------------------------------------------------------- matplotlib backend


def test_html_views_leave_the_backend_alone(
    trained: TrainResult, vanishing: ProbeReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("matplotlib.use was called")

    monkeypatch.setattr(matplotlib, "use", refuse)
    before = matplotlib.rcParams._get_backend_or_none()  # type: ignore[attr-defined]
    trained._repr_html_()
    vanishing._repr_html_()
    assert matplotlib.rcParams._get_backend_or_none() == before  # type: ignore[attr-defined]


def test_html_views_never_import_pyplot() -> None:
    # In a fresh interpreter, so that no other test's pyplot import can hide one.
    code = """
import sys, torch
from initlab import data, models
from initlab.probe import probe
from initlab.train import TrainConfig, train
net = models.mlp([2, 4, 1], "tanh", members=2)
result = train(net, data.load("circles", n=50, seed=0), TrainConfig(loss="bce", steps=5))
assert "<img" in result._repr_html_()
probe(net, torch.randn(8, 2))._repr_html_()
import matplotlib
print("pyplot" if "matplotlib.pyplot" in sys.modules else "no pyplot",
      matplotlib.rcParams._get_backend_or_none())
"""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # matplotlib's default
    env["PYTHONPATH"] = str(SRC)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["no", "pyplot", "None"]


def test_progress_shows_in_a_notebook_without_ipywidgets(monkeypatch: pytest.MonkeyPatch) -> None:
    # rich draws nothing in Jupyter without ipywidgets (it only warns): the bar is then drawn
    # as in an 80-column terminal, redrawn in place in the cell's output.
    import importlib.util

    import rich.console

    from initlab._repr import progress_console

    monkeypatch.setattr(rich.console, "_is_jupyter", lambda: True)
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "ipywidgets" else found(name, *a),
    )
    console = progress_console()
    assert not console.is_jupyter and console.is_terminal and console.width == 80
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    assert progress_console().is_jupyter  # with ipywidgets: rich's own notebook display


def test_a_fix_shows_its_changes_in_a_notebook() -> None:
    from torch import nn

    from initlab.probe import fix

    torch.manual_seed(0)
    net = nn.Sequential(*[m for _ in range(8) for m in (nn.Linear(16, 16), nn.Tanh())])
    for layer in net[::2]:
        nn.init.normal_(layer.weight, std=1.0)  # far too large for a fan-in of 16
    result = fix(net, torch.randn(64, 16))
    assert result.applied and len(repr(result)) < 200
    assert repr(result).startswith("FixResult(before='") and "after='healthy'" in repr(result)
    page = result._repr_html_()
    for call in result.applied:
        assert html.escape(call) in page  # each change as its call, escaped
    assert "After: healthy." in page and "<table" in page  # and the report after
