"""The study report: one self-contained page whose numbers are the store's.

Stores are built here with :class:`~initlab.store.Store` directly (configs, results and
histories chosen by the test, so the diverged cells are known in advance), plus one tiny
real study (:func:`~initlab.studies.run_study`, circles, 8 runs, 50 steps). The heatmap's
numbers are read from the page's hidden data table and compared with medians computed
here with pandas from :func:`~initlab.store.load`; the page is opened in a real Chromium.

Without /usr/bin/chromium (or Playwright) the browser test skips with the reason, except
under CI=true, where it fails (as tests/test_playground_browser.py).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from initlab.cli import app
from initlab.store import Result, Store, layers, load
from initlab.studies import parse_overrides, run_study
from initlab.studies.report import write_report

try:
    from playwright.sync_api import sync_playwright
except ImportError as error:
    PLAYWRIGHT_MISSING: str | None = f"Playwright for Python is not installed ({error})"
else:
    PLAYWRIGHT_MISSING = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

runner = CliRunner()

LRS = [0.001, 0.01, 0.1, 1.0]
INITS = ["he_normal", "normal(std=0.01)", "normal(std=10)"]
SEEDS = [0, 1, 2]
# The diverged runs, chosen: the whole (lr=1, std=10) cell, one seed of (lr=0.1, std=10),
# and one seed of (lr=1, he_normal).
DIVERGED = {
    (1.0, "normal(std=10)", 0),
    (1.0, "normal(std=10)", 1),
    (1.0, "normal(std=10)", 2),
    (0.1, "normal(std=10)", 1),
    (1.0, "he_normal", 2),
}
FAILED = {(0.001, "he_normal", 1)}
PENDING = {(0.01, "normal(std=0.01)", 2)}
DEPTH = 4  # weight layers with statistics, when the store has them


def _id(lr: float, init: str, seed: int) -> str:
    return f"lr{lr:g}-{init}-s{seed}"


def _build(path: Path, *, layers: bool = False) -> None:
    """A 4 lr × 3 init × 3 seed study with known diverged, failed and pending runs."""
    rng = np.random.default_rng(17)  # any losses do; fixed so a failure reproduces
    points = list(itertools.product(LRS, INITS, SEEDS))
    with Store(path) as store:
        store.add_runs(
            {
                _id(*p): {"data": "circles", "lr": p[0], "init": p[1], "seed": p[2], "steps": 40}
                for p in points
            }
        )
        results, rows = [], []
        for point in points:
            run = _id(*point)
            if point in PENDING:
                continue
            if point in FAILED:
                results.append(Result(run, "failed", "boom"))
                continue
            curve = np.exp(-np.linspace(0, 3, 5) * rng.uniform(0.2, 1.0)) * rng.uniform(0.5, 1)
            if point in DIVERGED:
                curve[3:] = np.inf  # the engine froze it: non-finite from step 30
                results.append(Result(run, "diverged", "nan at step 30", best_loss=curve[:3].min()))
            else:
                acc = float(rng.uniform(0.5, 1.0))
                results.append(
                    Result(
                        run,
                        "done",
                        "budget",
                        final_loss=float(curve[-1]),
                        best_loss=float(curve.min()),
                        train_acc=acc,
                        test_acc=acc - 0.05,
                        steps=40,
                    )
                )
            steps = range(0, 50, 10)
            rows += [(run, s, "loss", float(v)) for s, v in zip(steps, curve, strict=True)]
            if layers:
                scale = 10.0 if "std=10" in point[1] else 1.0
                for s in (0, 40):
                    for d in range(1, DEPTH + 1):
                        rows.append((run, s, f"layer.{d}.h_rms", scale**d * (1 + s / 100)))
                        rows.append((run, s, f"layer.{d}.grad_rms", scale ** (DEPTH - d)))
                        rows.append((run, s, f"layer.{d}.grad_ratio", 0.01))
        store.write_stack(results, rows)


@pytest.fixture
def study(tmp_path: Path) -> Path:
    path = tmp_path / "grid.db"
    _build(path)
    return path


class _Cells(HTMLParser):
    """The hidden data table: its attributes and each row's."""

    def __init__(self) -> None:
        super().__init__()
        self.table: dict[str, str | None] = {}
        self.rows: list[dict[str, str | None]] = []
        self.inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table" and found.get("class") == "study-data":
            self.table, self.inside = found, True
        elif tag == "tr" and self.inside:
            self.rows.append(found)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False


def _cells(page: Path) -> _Cells:
    parsed = _Cells()
    parsed.feed(page.read_text(encoding="utf-8"))
    return parsed


def _value(text: str | None) -> float:
    assert text is not None
    return float(text)  # "nan" reads as NaN


def _medians(path: Path, x: str, y: str, metric: str) -> pd.DataFrame:
    """The reference: pandas over load(), pending runs left out, medians of finite values."""
    frame = load(path)
    frame = frame[frame["status"] != "pending"]
    frame[metric] = frame[metric].where(np.isfinite(frame[metric]))
    grouped = frame.groupby([x, y])
    return pd.DataFrame(
        {
            "value": grouped[metric].median(),
            "runs": grouped.size(),
            "diverged": grouped["status"].agg(lambda s: int((s == "diverged").sum())),
        }
    )


def _assert_cells_match(page: Path, path: Path, x: str, y: str, metric: str) -> None:
    parsed = _cells(page)
    assert parsed.table["data-x-field"] == x and parsed.table["data-y-field"] == y
    assert parsed.table["data-metric"] == metric
    reference = _medians(path, x, y, metric)
    got = {(json.loads(r["data-x"] or ""), json.loads(r["data-y"] or "")): r for r in parsed.rows}
    assert set(got) == set(reference.index)
    for key, row in got.items():
        want = reference.loc[key]
        value = _value(row["data-value"])
        if math.isnan(want["value"]):
            assert math.isnan(value), key
        else:
            assert value == pytest.approx(want["value"], rel=1e-12, abs=0), key
        assert int(row["data-runs"] or -1) == want["runs"]
        assert int(row["data-diverged"] or -1) == want["diverged"]


# --------------------------------------------------------------------------- the page


def test_the_page_is_written_beside_the_store_and_self_contained(study: Path) -> None:
    page = write_report(study)
    assert page == study.parent / "grid-report" / "index.html"
    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text
    sources = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert {"metric", "curves"} <= set(re.findall(r'<figure id="([^"]+)"', text))
    # The counts, by status, as the store has them.
    assert "36 runs: 29 done, 5 diverged, 1 failed, 1 pending" in text
    assert load(study)["status"].value_counts().to_dict() == {
        "done": 29,
        "diverged": 5,
        "failed": 1,
        "pending": 1,
    }


def test_the_heatmaps_numbers_are_the_medians_over_the_other_axes(study: Path) -> None:
    page = write_report(study)
    # Default axes: the two with most values (lr: 4, init: 3); seed is a repeat.
    _assert_cells_match(page, study, "lr", "init", "final_loss")
    assert "(over seed)" in page.read_text(encoding="utf-8")


@pytest.mark.parametrize("metric", ["best_loss", "test_acc"])
def test_named_axes_and_metric(study: Path, tmp_path: Path, metric: str) -> None:
    page = write_report(study, tmp_path / "page.html", x="seed", y="lr", metric=metric)
    assert page == tmp_path / "page.html"
    _assert_cells_match(page, study, "seed", "lr", metric)
    assert "(over init)" in page.read_text(encoding="utf-8")


def test_exactly_the_diverged_cells_are_marked(study: Path) -> None:
    parsed = _cells(write_report(study))
    marked = {
        (json.loads(r["data-x"] or ""), json.loads(r["data-y"] or ""))
        for r in parsed.rows
        if int(r["data-diverged"] or 0) > 0
    }
    assert marked == {(lr, init) for lr, init, _ in DIVERGED}
    whole = [r for r in parsed.rows if r["data-diverged"] == r["data-runs"]]
    assert [(r["data-x"], r["data-y"]) for r in whole] == [("1.0", '"normal(std=10)"')]
    assert math.isnan(_value(whole[0]["data-value"]))  # no run of it has a final loss


def test_one_axis_draws_a_chart_and_no_axis_a_table(tmp_path: Path) -> None:
    one = tmp_path / "one.db"
    with Store(one) as store:
        store.add_runs(
            {
                f"r{i}": {"lr": lr, "seed": s}
                for i, (lr, s) in enumerate(itertools.product([0.1, 1.0, 10.0], [0, 1]))
            }
        )
        losses = [0.3, 0.5, 0.2, 0.25, None, 0.4]
        store.write_stack(
            [
                Result(f"r{i}", "done" if v is not None else "diverged", final_loss=v)
                for i, v in enumerate(losses)
            ],
            [(f"r{i}", 0, "loss", 1.0) for i in range(6)],
        )
    parsed = _cells(write_report(one))
    assert parsed.table["data-x-field"] == "lr" and "data-y-field" not in parsed.table
    got = {json.loads(r["data-x"] or ""): r for r in parsed.rows}
    # lr=10: one run diverged (counted), the median is the other's loss.
    want = {0.1: (0.4, "0"), 1.0: (0.225, "0"), 10.0: (0.4, "1")}
    assert set(got) == set(want)
    for lr, (median, diverged) in want.items():
        assert _value(got[lr]["data-value"]) == pytest.approx(median, rel=1e-12)
        assert got[lr]["data-diverged"] == diverged

    with Store(one) as store:  # lr=100: planned, not run yet
        store.add_runs({"later": {"lr": 100.0, "seed": 0}})
    parsed = _cells(write_report(one))
    assert sorted(json.loads(r["data-x"] or "") for r in parsed.rows) == [0.1, 1.0, 10.0]

    none = tmp_path / "none.db"
    with Store(none) as store:
        store.add_runs({"a": {"lr": 0.1}})
        store.write_stack([Result("a", "done", final_loss=0.125)])
    text = write_report(none).read_text(encoding="utf-8")
    assert "study-data" not in text and "no field varies" in text and "0.125" in text


def test_a_random_search_axis_is_drawn_in_log_bins(tmp_path: Path) -> None:
    # 200 runs, each its own lr drawn log-uniformly in [1e-4, 1]: 8 log-spaced bins, each
    # cell the median of the runs whose lr falls in it (computed here with numpy).
    path = tmp_path / "random.db"
    rng = np.random.default_rng(0)
    lrs = 10.0 ** rng.uniform(-4, 0, 200)
    lrs[0], lrs[1] = 1e-4, 1.0  # the ends, so the edges are known
    inits = ["he_normal", "zeros"] * 100
    losses = rng.uniform(0.1, 0.7, 200)
    with Store(path) as store:
        store.add_runs({f"r{i}": {"lr": float(lr), "init": inits[i]} for i, lr in enumerate(lrs)})
        store.write_stack(
            [Result(f"r{i}", "done", final_loss=float(v)) for i, v in enumerate(losses)]
        )
    page = write_report(path, x="lr", y="init")
    assert "lr into 8 log-spaced bins" in page.read_text(encoding="utf-8")
    edges = np.geomspace(1e-4, 1.0, 9)
    index = np.clip(np.searchsorted(edges, lrs, side="right") - 1, 0, 7)
    centres = np.sqrt(edges[:-1] * edges[1:])
    got = {
        (json.loads(r["data-x"] or ""), json.loads(r["data-y"] or "")): r for r in _cells(page).rows
    }
    assert len({lr for lr, _ in got}) == 8
    for b in range(8):
        for init in ("he_normal", "zeros"):
            inside = [
                v for v, i, k in zip(losses, index, inits, strict=True) if i == b and k == init
            ]
            if not inside:
                continue
            row = got[(float(f"{centres[b]:.2g}"), init)]
            assert _value(row["data-value"]) == pytest.approx(np.median(inside), rel=1e-12)
            assert int(row["data-runs"] or -1) == len(inside)


def test_the_depth_section_appears_iff_the_store_has_layer_statistics(
    study: Path, tmp_path: Path
) -> None:
    without = write_report(study).read_text(encoding="utf-8")
    assert 'id="depth"' not in without and "probe_every=K" in without
    probed = tmp_path / "probed.db"
    _build(probed, layers=True)
    text = write_report(probed).read_text(encoding="utf-8")
    assert '<figure id="depth">' in text and "probe_every=K" not in text
    assert "one line per config (the median over its seeds)" in text
    assert "configs left out" not in text  # 12 configs: all drawn


def test_the_best_and_the_diverged_runs_are_listed(study: Path) -> None:
    text = write_report(study).read_text(encoding="utf-8")
    frame = load(study)
    best = frame.sort_values("final_loss").head(10)["run_id"]
    body = text[text.index("<h2>Best runs</h2>") : text.index("<h2>Diverged runs</h2>")]
    assert re.findall(r"<tr><td>([^<]+)</td>", body) == list(best)
    diverged = text[text.index("<h2>Diverged runs</h2>") :]
    assert sorted(re.findall(r"<tr><td>([^<]+)</td>", diverged)) == sorted(
        _id(*p) for p in DIVERGED
    )


def test_many_configs_are_capped_and_the_page_says_how_many_were_left_out(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wide.db"
    lrs = [round(0.01 * (k + 1), 2) for k in range(14)]
    with Store(path) as store:
        store.add_runs({f"r{k}": {"lr": lr} for k, lr in enumerate(lrs)})
        rows = [(f"r{k}", s, "loss", 1.0 / (s + 1)) for k in range(14) for s in (0, 10)]
        rows += [(f"r{k}", 0, f"layer.{d}.h_rms", float(d)) for k in range(14) for d in (1, 2)]
        store.write_stack(
            [Result(f"r{k}", "done", final_loss=lr) for k, lr in enumerate(lrs)], rows
        )
    text = write_report(path).read_text(encoding="utf-8")
    assert "4 more groups left out (the first 10 shown)" in text
    assert "2 configs left out (the first 12 shown)" in text
    assert "y-field" not in text  # one axis: a chart
    page = write_report(path, tmp_path / "y.html", y="lr")  # y alone, nothing else: against it
    assert 'data-x-field="lr"' in page.read_text(encoding="utf-8")


def test_a_study_where_every_run_diverged(tmp_path: Path) -> None:
    path = tmp_path / "blown.db"
    with Store(path) as store:
        store.add_runs({"a": {"lr": 10.0}, "b": {"lr": 100.0}})
        store.write_stack(
            [Result(r, "diverged", "inf at step 1", best_loss=v) for r, v in (("a", 2), ("b", 3))],
            [
                (r, s, n, v)
                for r in "ab"
                for s, v in ((0, 1.0), (1, math.inf))
                for n in ("loss", "layer.1.h_rms", "layer.1.grad_rms")
            ],
        )
    with pytest.raises(ValueError, match="finite final_loss. Pick a metric that has values: best"):
        write_report(path)
    parsed = _cells(write_report(path, metric="best_loss"))
    assert [(r["data-x"], r["data-value"], r["data-diverged"]) for r in parsed.rows] == [
        ("10.0", "2.0", "1"),
        ("100.0", "3.0", "1"),
    ]


# --------------------------------------------------------------------------- bad inputs


def test_bad_inputs_are_refused_with_what_to_do(study: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"No store at .*run the study first"):
        write_report(tmp_path / "missing.db")
    other = tmp_path / "notes.db"
    other.write_text("not a database, just text\n" * 20)
    with pytest.raises(ValueError, match="is not an initlab store"):
        write_report(other)
    with pytest.raises(ValueError, match=r"Got 'depth'; the axes are: init \(3 values\), lr"):
        write_report(study, x="depth")
    with pytest.raises(ValueError, match="'y' parameter .* Got 'data'"):
        write_report(study, y="data")  # a field, but fixed: not an axis
    with pytest.raises(ValueError, match="'group' parameter"):
        write_report(study, group="steps")
    with pytest.raises(ValueError, match="two different axes"):
        write_report(study, x="lr", y="lr")
    with pytest.raises(ValueError, match="'metric' parameter .* 'final_loss', 'best_loss'"):
        write_report(study, metric="loss")
    regression = tmp_path / "regression.db"
    with Store(regression) as store:
        store.add_runs({"a": {"lr": 0.1}, "b": {"lr": 1.0}})
        store.write_stack([Result("a", "done", final_loss=0.2), Result("b", "done")])
    with pytest.raises(
        ValueError, match="No run .* has a finite train_acc.*metric that has values: final_loss"
    ):
        write_report(regression, metric="train_acc")
    pending = tmp_path / "pending.db"
    with Store(pending) as store:
        store.add_runs({"a": {"lr": 0.1}})
    with pytest.raises(ValueError, match=r"no finished run yet \(1 pending\)"):
        write_report(pending)
    assert not (tmp_path / "missing-report").exists()


# --------------------------------------------------------------------------- the command


def test_the_command_prints_the_path_and_exits_2_on_bad_input(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "study",
            "report",
            str(study),
            "--out",
            str(out),
            "--x",
            "init",
            "--y",
            "seed",
            "--metric",
            "best_loss",
            "--group",
            "lr",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out / "index.html")
    _assert_cells_match(out / "index.html", study, "init", "seed", "best_loss")
    assert "the loss grouped by lr" in (out / "index.html").read_text(encoding="utf-8")

    bad = runner.invoke(app, ["study", "report", str(study), "--x", "depht"])
    assert bad.exit_code == 2
    assert "Got 'depht'; the axes are: init (3 values), lr (4 values), seed (3 values)" in (
        " ".join(bad.output.split())
    )
    missing = runner.invoke(app, ["study", "report", str(tmp_path / "nope.db")])
    assert missing.exit_code == 2 and "No store at" in missing.output


# --------------------------------------------------------------------------- a real study


@pytest.fixture(scope="module")
def real_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A real study: 2 inits × 2 learning rates (1e6 diverges) × 2 seeds, 50 steps."""
    folder = tmp_path_factory.mktemp("real")
    study = parse_overrides(
        [
            "data=circles(n=100)",
            "model=2,6,1",
            "activation=tanh",
            "loss=mse",  # with lr=1e6, some runs diverge within 50 steps
            "init=he_normal,xavier_normal",
            "lr=0.1,1e6",
            "seed=range(2)",
            "steps=50",
            "history_every=5",
            "probe_every=25",
        ]
    )
    store = folder / "runs.db"
    run_study(study, store, progress=False)
    yield store, write_report(store)


def test_a_real_study(real_page: tuple[Path, Path]) -> None:
    store, page = real_page
    frame = load(store)
    assert len(frame) == 8 and (frame["status"] == "diverged").any()
    _assert_cells_match(page, store, "init", "lr", "final_loss")  # two values each: FIELDS order
    assert not layers(store).empty
    text = page.read_text(encoding="utf-8")
    assert (
        '<figure id="depth">' in text and "one line per config (the median over its seeds)" in text
    )


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true: the browser tests must run, not skip")
    pytest.skip(reason)


def test_the_page_opens_in_a_browser(real_page: tuple[Path, Path]) -> None:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium; make test does it as root)")
    if PLAYWRIGHT_MISSING:
        _unavailable(PLAYWRIGHT_MISSING)
    _, page_path = real_page
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page: Any = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.alt])"
            )
            hidden = page.eval_on_selector("table.study-data", "t => t.offsetHeight")
        finally:
            browser.close()
    assert len(images) >= 2 and all(done and width > 0 for done, width, _ in images), images
    assert errors == []
    assert hidden == 0  # the data table is for tools, not readers
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
