"""A study's report: one self-contained HTML page drawn from its store.

:func:`write_report` reads a store (read-only) and writes one HTML file, its figures
embedded as PNG ``data:`` URIs (no external URL, opens offline):

- the counts (runs, done / diverged / failed / pending), the axes (config fields with more
  than one value among the runs) and their values, and the fixed fields;
- a metric (final or best loss, train or test accuracy) as a heatmap over two axes, the
  median of the finite values of each cell's runs (so over every other axis, seeds
  included; a diverged run's loss is counted, not averaged), with the number in each
  cell; a cell where a run diverged is hatched in red and shows ``×n`` (n runs
  diverged), a cell where every run diverged is red. With one axis, a chart of the
  median and range against it; with none, a table of the runs;
- the loss curves from the history, grouped by a field: each group's median and its
  min–max band, log scale;
- with ``probe_every``, the activation scale (``h_rms``) and gradient scale (``grad_rms``)
  against depth at the first and last probed step, one line per config (the median over
  its seeds);
- the best runs, and the configs of the diverged ones.

The heatmap's (or chart's) numbers are also in a hidden ``<table class="study-data">``:
one ``<tr>`` per cell with ``data-x``/``data-y`` (the axis values as JSON),
``data-value`` (the median, ``nan`` if none), ``data-runs`` and ``data-diverged``, for
tools and tests that read the page.

Example:
    >>> import tempfile, pathlib
    >>> from initlab.store import Result, Store
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.db"
    >>> with Store(path) as store:
    ...     _ = store.add_runs({
    ...         f"r{i}": {"lr": lr, "init": init, "seed": 0}
    ...         for i, (lr, init) in enumerate([(0.1, "he"), (0.1, "xavier"), (1.0, "he"),
    ...                                        (1.0, "xavier")])
    ...     })
    ...     store.write_stack([
    ...         Result("r0", "done", final_loss=0.2), Result("r1", "done", final_loss=0.3),
    ...         Result("r2", "diverged", "nan at step 3"), Result("r3", "done", final_loss=0.9),
    ...     ])
    >>> page = write_report(path)
    >>> page.relative_to(path.parent).as_posix()
    'runs-report/index.html'
    >>> 'data-diverged="1"' in page.read_text()
    True
"""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from initlab._io import atomic_path, check_output_file, check_output_folder
from initlab.report.html import Report
from initlab.store import RESULT_COLUMNS
from initlab.studies.spec import FIELDS

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["METRICS", "Metric", "write_report"]

Metric: TypeAlias = Literal["final_loss", "best_loss", "train_acc", "test_acc"]
#: The metrics a report can map; losses are better low, accuracies high.
METRICS: tuple[Metric, ...] = ("final_loss", "best_loss", "train_acc", "test_acc")

_STATUSES = ("done", "diverged", "failed", "pending")
_MAX_CURVES = 10  # groups drawn in the curves figure: more lines than colours cannot be told apart
_MAX_LINES = 12  # configs drawn against depth
_MAX_AXIS_VALUES = 20  # a numeric axis with more values (a random search's) is binned
_BINS = 8  # bins of such an axis
_MAX_BEST = 10  # rows of the best runs' table
_MAX_DIVERGED = 20  # rows of the diverged runs' table
_MAX_RUNS_TABLE = 50  # rows of the runs' table when there is no axis
_MAX_SHOWN_VALUES = 12  # values listed per axis in the summary
_DIVERGED = "#D55E00"  # Okabe–Ito vermillion: the diverged marks, on a viridis map
_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


# --------------------------------------------------------------------------- values


def _plain(value: object) -> object:
    """A cell of :func:`initlab.store.load` as a plain JSON value (NaN and None: None)."""
    if value is None:
        return None
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, bool):
        return value
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _json(value: object) -> str:
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))


def _label(value: object) -> str:
    plain = _plain(value)
    if plain is None:
        return "none"
    if isinstance(plain, list):
        return "[" + ",".join(_label(v) for v in plain) + "]"
    if isinstance(plain, bool):
        return str(plain).lower()
    if isinstance(plain, float):
        return f"{plain:g}"
    return str(plain)


def _order(value: object) -> tuple[int, float, str]:
    """Numbers first, in numeric order; then everything else by its label."""
    plain = _plain(value)
    if plain is None:
        return (0, 0.0, "")
    if isinstance(plain, int | float) and not isinstance(plain, bool):
        return (1, float(plain), "")
    return (2, 0.0, _label(plain))


def _number(value: float) -> str:
    return "nan" if math.isnan(value) else repr(float(value))


# --------------------------------------------------------------------------- the table


def _read(path: Path) -> pd.DataFrame:
    from initlab.store import load

    if not path.exists():
        raise ValueError(
            f"No store at {str(path)!r}. Check the path, or run the study first "
            "(initlab study run STUDY.toml --store PATH)."
        )
    return load(path)


def _config_columns(frame: pd.DataFrame) -> dict[str, str]:
    """Field name → column, the study's fields first (in :data:`FIELDS` order)."""
    columns = [
        c
        for c in frame.columns
        if c != "run_id" and c not in RESULT_COLUMNS and not c.startswith("extra.")
    ]
    named = {c.removeprefix("config."): c for c in columns}
    known = [n for n in FIELDS if n in named]
    return {n: named[n] for n in known + [n for n in named if n not in FIELDS]}


def _keys(frame: pd.DataFrame, column: str) -> list[str]:
    """Each run's value of ``column`` as JSON text: hashable, None for NaN, tuples as lists."""
    return [_json(v) for v in frame[column]]


def _axes(frame: pd.DataFrame, fields: dict[str, str]) -> dict[str, list[str]]:
    """Axis → its values (JSON text, in display order): fields with more than one value."""
    axes: dict[str, list[str]] = {}
    for name, column in fields.items():
        values = set(_keys(frame, column))
        if len(values) > 1:
            axes[name] = sorted(values, key=lambda text: _order(json.loads(text)))
    return axes


def _bin_wide_axes(frame: pd.DataFrame, fields: dict[str, str]) -> list[str]:
    """Replace, in ``frame``, each numeric field with more than :data:`_MAX_AXIS_VALUES`
    values (a random search's) by the centre of its bin (:data:`_BINS` bins, log-spaced
    when the values are positive and span more than 10×); say what was binned."""
    import numpy as np
    import pandas as pd

    said = []
    for name, column in fields.items():
        if name == "seed":  # repeats, never an axis of the figures
            continue
        values = frame[column]
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.isna().any() or values.map(lambda v: isinstance(v, bool)).any():
            continue
        if numeric.nunique() <= _MAX_AXIS_VALUES:
            continue
        low, high = float(numeric.min()), float(numeric.max())
        log = low > 0 and high / low > 10
        edges = np.geomspace(low, high, _BINS + 1) if log else np.linspace(low, high, _BINS + 1)
        index = np.clip(np.searchsorted(edges, numeric, side="right") - 1, 0, _BINS - 1)
        centres = np.sqrt(edges[:-1] * edges[1:]) if log else (edges[:-1] + edges[1:]) / 2
        frame[column] = [float(f"{centres[i]:.2g}") for i in index]
        said.append(f"{name} into {_BINS} {'log-spaced ' if log else ''}bins")
    return said


def _pick(axes: dict[str, list[str]], taken: Sequence[str]) -> str | None:
    """The axis with most values outside ``taken``, seeds last (a seed is a repeat)."""
    order = list(axes)
    free = [a for a in order if a not in taken and a != "seed"]
    if not free:
        return None
    return min(free, key=lambda a: (-len(axes[a]), order.index(a)))


def _check_axis(name: str | None, option: str, axes: dict[str, list[str]]) -> None:
    if name is not None and name not in axes:
        shown = ", ".join(f"{a} ({len(v)} values)" for a, v in axes.items()) or "none"
        raise ValueError(
            f"The {option!r} parameter of write_report must be an axis of the study: a field "
            f"with more than one value among its runs. Got {name!r}; the axes are: {shown}."
        )


# --------------------------------------------------------------------------- figures


def _figure(width: float, height: float, *, constrained: bool = False) -> Figure:
    # A Figure of its own, drawn by the Agg canvas savefig picks for PNG: pyplot's global
    # state (and its backend switch) is never touched.
    from matplotlib.figure import Figure

    if constrained:  # a figure legend outside the axes: only this layout makes room
        return Figure(figsize=(width, height), dpi=110, layout="constrained")
    return Figure(figsize=(width, height), dpi=110)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _heatmap(
    cells: pd.DataFrame,
    x: str,
    y: str,
    xs: list[str],
    ys: list[str],
    metric: str,
) -> Figure:
    import numpy as np
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.patches import Patch, Rectangle

    grid = np.full((len(ys), len(xs)), np.nan)
    diverged = np.zeros((len(ys), len(xs)), dtype=int)
    for row in cells.itertuples(index=False):
        i, j = ys.index(row.y), xs.index(row.x)
        grid[i, j] = row.value
        diverged[i, j] = row.diverged
    finite = grid[np.isfinite(grid)]
    low_is_good = metric.endswith("loss")
    cmap = "viridis_r" if low_is_good else "viridis"
    norm: Normalize
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 20:
        norm = LogNorm(finite.min(), finite.max())
    elif finite.size:
        norm = Normalize(finite.min(), max(finite.max(), finite.min() + 1e-12))
    else:
        norm = Normalize(0, 1)
    fig = _figure(min(3.0 + 0.9 * len(xs), 16.0), min(2.2 + 0.55 * len(ys), 14.0), constrained=True)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
    ax.set_facecolor("#f4f4f4")
    fig.colorbar(image, ax=ax, label=f"{metric} (median)")
    size = max(5.0, min(9.0, 60.0 / max(len(xs), len(ys))))
    mapper = image.cmap
    for i in range(len(ys)):
        for j in range(len(xs)):
            value, bad = grid[i, j], int(diverged[i, j])
            if math.isnan(value) and bad:  # every run of the cell diverged
                ax.add_patch(
                    Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=_DIVERGED, edgecolor="white")
                )
                ax.text(j, i, f"×{bad}", ha="center", va="center", color="white", fontsize=size)
                continue
            if bad:
                ax.add_patch(
                    Rectangle(
                        (j - 0.5, i - 0.5),
                        1,
                        1,
                        fill=False,
                        hatch="///",
                        edgecolor=_DIVERGED,
                        linewidth=1.5,
                    )
                )
            if math.isnan(value):
                text, colour = "–", "#555555"
            else:
                r, g, b, _ = mapper(norm(value))
                colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                text = f"{value:.3g}"
            if bad:
                text += f"\n×{bad}"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=size)
    ax.set_xticks(range(len(xs)), [_label(json.loads(v)) for v in xs], rotation=30, ha="right")
    ax.set_yticks(range(len(ys)), [_label(json.loads(v)) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    whole = np.isnan(grid) & (diverged > 0)
    handles = []
    if (diverged > 0).any() and not whole[diverged > 0].all():
        handles.append(
            Patch(facecolor="none", hatch="///", edgecolor=_DIVERGED, label="×n: n runs diverged")
        )
    if whole.any():
        handles.append(Patch(facecolor=_DIVERGED, label="×n: all n runs diverged"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False, fontsize=8)
    return fig


def _chart(cells: pd.DataFrame, x: str, xs: list[str], metric: str) -> Figure:
    """One axis: the median with its min–max range, diverged values marked."""
    import numpy as np

    # A value whose runs are all pending has no cell: NaN, and no mark.
    by = cells.set_index("x").reindex(xs)
    by["diverged"] = by["diverged"].fillna(0)
    fig = _figure(min(3.0 + 0.7 * len(xs), 14.0), 4.0)
    ax = fig.add_subplot()
    position = np.arange(len(xs))
    median = np.array([by.loc[v, "value"] for v in xs], dtype=float)
    low = np.array([by.loc[v, "low"] for v in xs], dtype=float)
    high = np.array([by.loc[v, "high"] for v in xs], dtype=float)
    ax.fill_between(position, low, high, color=_COLOURS[0], alpha=0.2, label="min–max")
    ax.plot(position, median, "o-", color=_COLOURS[0], label="median")
    top = np.nanmax(high) if np.isfinite(high).any() else 1.0
    for j, v in enumerate(xs):
        bad = int(by.loc[v, "diverged"])
        if bad:
            ax.plot([j], [top], marker="x", color=_DIVERGED, markersize=10, mew=2.5)
            ax.annotate(
                f"×{bad}",
                (j, top),
                textcoords="offset points",
                xytext=(6, 4),
                color=_DIVERGED,
                fontsize=9,
            )
    finite = median[np.isfinite(median)]
    if metric.endswith("loss") and finite.size and (low[np.isfinite(low)] > 0).all():
        ax.set_yscale("log")
    ax.set_xticks(position, [_label(json.loads(v)) for v in xs], rotation=30, ha="right")
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=9)
    return fig


def _curves(steps_by_group: list[tuple[str, Any, Any, Any, Any]], group: str | None) -> Figure:
    import numpy as np

    fig = _figure(7.5, 4.4)
    ax = fig.add_subplot()
    positive, seen = True, False
    for k, (label, steps, median, low, high) in enumerate(steps_by_group):
        colour = _COLOURS[k % len(_COLOURS)]
        ax.fill_between(steps, low, high, color=colour, alpha=0.18, linewidth=0)
        ax.plot(steps, median, color=colour, linewidth=1.6, label=label)
        values = np.concatenate([low, high])
        finite = values[np.isfinite(values)]
        positive &= bool((finite > 0).all())
        seen |= finite.size > 0
    if positive and seen:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(title=group, frameon=False, fontsize=8, title_fontsize=8)
    return fig


def _depth_figure(lines: list[tuple[str, pd.DataFrame, pd.DataFrame]]) -> Figure:
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    fig = _figure(12.5, 7.0, constrained=True)
    panels = fig.subplots(2, 2, sharex=True)
    positive = np.zeros((2, 2), dtype=bool)  # a log scale needs one positive value
    for k, (label, first, last) in enumerate(lines):
        colour = _COLOURS[k % len(_COLOURS)]
        style = "-" if k < len(_COLOURS) else "--"
        for row, stat in enumerate(("h_rms", "grad_rms")):
            for col, at in enumerate((first, last)):
                ax: Axes = panels[row][col]
                values = at[stat].to_numpy(dtype=float)
                positive[row, col] |= bool((values[np.isfinite(values)] > 0).any())
                ax.plot(
                    at["depth"],
                    at[stat],
                    style,
                    marker="o",
                    markersize=3,
                    color=colour,
                    label=label if row == col == 0 else None,
                )
    for row, stat in enumerate(("h_rms (activation scale)", "grad_rms (∂loss/∂h scale)")):
        for col, when in enumerate(("first probed step", "last probed step")):
            ax = panels[row][col]
            if positive[row, col]:
                ax.set_yscale("log")
            else:
                ax.text(
                    0.5,
                    0.5,
                    "not recorded",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    color="#777777",
                )
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.set_title(f"{stat.split()[0]}, {when}", fontsize=10)
            if col == 0:
                ax.set_ylabel(stat)
            if row == 1:
                ax.set_xlabel("depth (weight layer)")
    fig.legend(loc="outside right upper", frameon=False, fontsize=8)
    return fig


# --------------------------------------------------------------------------- sections


def _summary(
    page: Report, frame: pd.DataFrame, fields: dict[str, str], axes: dict[str, list[str]]
) -> None:
    counts = frame["status"].value_counts()
    page.section("Summary")
    page.table(
        ["runs", *_STATUSES],
        [[len(frame), *(int(counts.get(s, 0)) for s in _STATUSES)]],
        caption="runs by status (pending: no result yet)",
    )
    rows = []
    for name, values in axes.items():
        shown = [_label(json.loads(v)) for v in values[:_MAX_SHOWN_VALUES]]
        more = len(values) - len(shown)
        rows.append([name, len(values), ", ".join(shown) + (f", … ({more} more)" if more else "")])
    if rows:
        page.table(["axis", "values", "which"], rows, caption="the axes: fields that vary")
    else:
        page.text("No field varies among the runs: the study has no axis.")
    fixed = [
        f"{name}={_label(frame[column].iloc[0])}"
        for name, column in fields.items()
        if name not in axes and len(frame)
    ]
    if fixed:
        page.text("Fixed: " + ", ".join(fixed) + ".")


def _cells(frame: pd.DataFrame, metric: str, dims: list[str]) -> pd.DataFrame:
    """Per combination of ``dims`` (JSON-text columns): the median of ``metric`` over its
    runs with a value, its min and max, the runs, and how many diverged."""
    grouped = frame.groupby(dims, sort=False)
    cells = (
        grouped[metric]
        .agg(value="median", low="min", high="max")
        .join(
            grouped.agg(
                runs=("status", "size"),
                diverged=("status", lambda s: int((s == "diverged").sum())),
            )
        )
    )
    return cells.reset_index()


def _data_table(cells: pd.DataFrame, metric: str, dims: dict[str, str]) -> str:
    """The hidden machine-readable table of the heatmap's (or chart's) cells."""
    attributes = " ".join(f'data-{d}-field="{html.escape(name)}"' for d, name in dims.items())
    rows = []
    for row in cells.itertuples(index=False):
        coords = " ".join(f'data-{d}="{html.escape(str(getattr(row, d)))}"' for d in dims)
        rows.append(
            f'<tr {coords} data-value="{_number(row.value)}" data-runs="{int(row.runs)}" '
            f'data-diverged="{int(row.diverged)}"><td>{html.escape(str(row.value))}</td></tr>'
        )
    return (
        f'<table class="study-data" hidden data-metric="{html.escape(metric)}" {attributes}>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _metric_section(
    page: Report,
    frame: pd.DataFrame,
    fields: dict[str, str],
    axes: dict[str, list[str]],
    metric: str,
    x: str | None,
    y: str | None,
) -> None:
    page.section(f"{metric} over the axes")
    keyed = frame.copy()
    for name in axes:
        keyed[f"key.{name}"] = _keys(frame, fields[name])
    if x is None and y is not None:
        x = _pick(axes, (y,))
        if x is None:  # only seeds besides y: a chart against y
            x, y = y, None
    if x is None:
        x = _pick(axes, ()) or (next(iter(axes)) if axes else None)
    if y is None and x is not None:
        y = _pick(axes, (x,))
    if x is None:  # no axis: the runs themselves
        better = metric.endswith("loss")
        shown = frame.sort_values(metric, ascending=better, na_position="last")
        rows = [
            [r.run_id, r.status, getattr(r, metric)]
            for r in shown.head(_MAX_RUNS_TABLE).itertuples(index=False)
        ]
        more = len(frame) - len(rows)
        page.table(
            ["run", "status", metric],
            rows,
            caption="no field varies: every run"
            + (f" (the first {len(rows)}; {more} more)" if more else ""),
        )
        return
    dims = {"x": x} if y is None else {"x": x, "y": y}
    keyed["x"] = keyed[f"key.{x}"]
    if y is not None:
        keyed["y"] = keyed[f"key.{y}"]
    cells = _cells(keyed, metric, list(dims))
    rest = [a for a in axes if a not in dims.values()]
    per_cell = cells["runs"]
    spread = (
        f"{per_cell.min()}"
        if per_cell.min() == per_cell.max()
        else f"{per_cell.min()}–{per_cell.max()}"
    )
    over = f"the median of the finite values of each cell's {spread} runs"
    over += f" (over {', '.join(rest)})" if rest else ""
    diverged = int(cells["diverged"].sum())
    if y is None:
        fig = _chart(cells, x, axes[x], metric)
        caption = f"{metric} against {x}: {over}, with the min–max range. " + (
            f"A red × marks a value where runs diverged ({diverged} in all: ×n says how many)."
            if diverged
            else "No run diverged."
        )
        page.image(_png(fig), "metric", caption)
    else:
        fig = _heatmap(cells, x, y, axes[x], axes[y], metric)
        caption = (
            f"{metric} over {x} × {y}: {over}. "
            + (
                f"Red hatching marks the diverged region: ×n in a cell says n of its runs "
                f"diverged ({diverged} in all); a red cell diverged in every run."
                if diverged
                else "No run diverged."
            )
            + " An empty cell has no run with a value."
        )
        page.image(_png(fig), "metric", caption)
    page.raw(_data_table(cells, metric, dims))


def _curves_section(
    page: Report,
    path: Path,
    frame: pd.DataFrame,
    fields: dict[str, str],
    axes: dict[str, list[str]],
    group: str | None,
) -> None:
    import numpy as np

    from initlab.store import history

    page.section("Loss curves")
    finished = frame[frame["status"] != "pending"]
    losses = history(path, run_ids=list(finished["run_id"]), names=["loss"])
    if losses.empty:
        page.text("No run has a loss history yet.")
        return
    if group is None:
        group = next((a for a in axes if a != "seed"), None)
    wide = losses.pivot_table(index="step", columns="run_id", values="value", aggfunc="first")
    wide = wide.where(np.isfinite(wide))  # a diverged run's inf and NaN leave the band
    if group is None:
        labels = {"all runs": list(wide.columns)}
    else:
        key = dict(zip(frame["run_id"], _keys(frame, fields[group]), strict=True))
        labels = {}
        for value in axes[group]:
            members = [r for r in wide.columns if key[r] == value]
            if members:
                labels[_label(json.loads(value))] = members
    drawn = list(labels.items())[:_MAX_CURVES]
    series = []
    for label, members in drawn:
        block = wide[members].dropna(how="all")
        series.append(
            (
                f"{label} ({len(members)})",
                block.index.to_numpy(),
                block.median(axis=1).to_numpy(),
                block.min(axis=1).to_numpy(),
                block.max(axis=1).to_numpy(),
            )
        )
    left = len(labels) - len(drawn)
    caption = (
        ("every run's loss" if group is None else f"the loss grouped by {group}")
        + ": the median over each group's runs (their count in brackets) with the min–max "
        "band, log scale where every loss is positive; a diverged run leaves at its last "
        "finite loss."
        + (f" {left} more groups left out (the first {len(drawn)} shown)." if left else "")
    )
    page.image(_png(_curves(series, group)), "curves", caption)


def _depth_section(
    page: Report,
    path: Path,
    frame: pd.DataFrame,
    fields: dict[str, str],
    axes: dict[str, list[str]],
) -> None:
    from initlab.store import layers as read_layers

    page.section("Scale against depth")
    layers = read_layers(path, run_ids=list(frame["run_id"]))
    if layers.empty:
        page.text(
            "The store has no per-layer statistics: run the study with probe_every=K "
            "(e.g. probe_every=100) to record each layer's activation and gradient scale "
            "every K steps."
        )
        return
    config = [a for a in axes if a != "seed"]
    keys = {
        r: " ".join(f"{a}={_label(json.loads(k))}" for a, k in zip(config, ks, strict=True))
        or "all runs"
        for r, *ks in zip(frame["run_id"], *(_keys(frame, fields[a]) for a in config), strict=True)
    }
    layers = layers.assign(config=layers["run_id"].map(keys))
    first = layers[layers["step"] == layers.groupby("run_id")["step"].transform("min")]
    last = layers[layers["step"] == layers.groupby("run_id")["step"].transform("max")]
    probed = set(layers["run_id"])
    names = list(dict.fromkeys(keys[r] for r in frame["run_id"] if r in probed))
    shown = names[:_MAX_LINES]
    lines = []
    for name in shown:
        at = [
            part[part["config"] == name]
            .groupby("depth", as_index=False)[["h_rms", "grad_rms"]]
            .median()
            for part in (first, last)
        ]
        lines.append((name, at[0], at[1]))
    left = len(names) - len(shown)
    seeds = " (the median over its seeds)" if "seed" in axes else ""
    caption = (
        f"The RMS of each weight layer's output (h_rms) and of the loss's gradient with "
        f"respect to it (grad_rms), against depth, at each run's first and last probed "
        f"step; one line per config{seeds}."
        + (f" {left} configs left out (the first {len(shown)} shown)." if left else "")
    )
    page.image(_png(_depth_figure(lines)), "depth", caption)


def _runs_section(
    page: Report,
    frame: pd.DataFrame,
    fields: dict[str, str],
    axes: dict[str, list[str]],
    metric: str,
) -> None:
    better = metric.endswith("loss")
    page.section("Best runs")
    ranked = frame[frame[metric].notna()].sort_values(metric, ascending=better, kind="stable")
    records = ranked.head(_MAX_BEST).to_dict("records")
    page.table(
        ["run", *axes, "status", metric],
        [
            [rec["run_id"], *(_label(rec[fields[a]]) for a in axes), rec["status"], rec[metric]]
            for rec in records
        ],
        caption=f"the {len(records)} best runs by {metric} "
        f"({'lowest' if better else 'highest'} first)",
    )
    page.section("Diverged runs")
    diverged = frame[frame["status"] == "diverged"].to_dict("records")
    if not diverged:
        page.text("No run diverged.")
        return
    rows = [
        [rec["run_id"], *(_label(rec[fields[a]]) for a in axes), rec["reason"]]
        for rec in diverged[:_MAX_DIVERGED]
    ]
    more = len(diverged) - len(rows)
    page.table(
        ["run", *axes, "why"],
        rows,
        caption=f"{len(diverged)} runs diverged"
        + (f"; the first {len(rows)} shown" if more else ""),
    )


# --------------------------------------------------------------------------- entry


def _output(store: Path, out: str | Path | None) -> Path:
    if out is None:
        folder = store.with_name(f"{store.stem}-report")
        return check_output_folder(folder, "the report's folder") / "index.html"
    out = Path(out)
    if out.suffix.lower() in (".html", ".htm"):
        return check_output_file(out, (".html", ".htm"), "the report")
    return check_output_folder(out, "the report's folder") / "index.html"


def write_report(
    store_path: str | Path,
    out: str | Path | None = None,
    *,
    x: str | None = None,
    y: str | None = None,
    metric: str = "final_loss",
    group: str | None = None,
) -> Path:
    """Write a study's report: one self-contained HTML page drawn from its store.

    The axes are the config fields with more than one value among the runs. The metric is
    drawn as a heatmap over ``x`` and ``y`` (the median of the finite values of each
    cell's runs; diverged runs are counted in the cell, not averaged), against
    one axis when the study has one, or listed per run when it has none.

    Args:
        store_path: the study's store (read only; never written).
        out: an ``.html`` file, or a folder for ``index.html``; default: the folder
            ``<store stem>-report`` beside the store.
        x: the heatmap's columns: an axis (default: the axis with most values, seeds
            last: a seed is a repeat, medians are taken over it).
        y: the heatmap's rows: another axis (default: the next with most values; none
            when only seeds are left, which draws a chart against ``x``).
        metric: ``final_loss``, ``best_loss``, ``train_acc`` or ``test_acc``.
        group: the field the loss curves are grouped by (default: the first axis that is
            not ``seed``; all runs as one group when there is none).

    Returns:
        The page's path.

    Raises:
        ValueError: no store at ``store_path``, or not an initlab store; an unknown
            metric, or one no run has a value of; ``x``, ``y`` or ``group`` not an axis
            (the message lists the axes), or ``x`` equal to ``y``; an ``out`` that cannot
            be written.

    Example:
        >>> import tempfile, pathlib
        >>> from initlab.store import Result, Store
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "study.db"
        >>> with Store(path) as store:
        ...     _ = store.add_runs({"a": {"lr": 0.1}, "b": {"lr": 0.01}})
        ...     store.write_stack([Result("a", "done", final_loss=0.2),
        ...                        Result("b", "done", final_loss=0.5)])
        >>> write_report(path, path.parent / "page.html").name
        'page.html'
    """
    import numpy as np

    if metric not in METRICS:
        raise ValueError(
            "The 'metric' parameter of write_report must be one of "
            f"{', '.join(map(repr, METRICS))}. Got {metric!r} instead."
        )
    path = Path(store_path)
    frame = _read(path)
    target = _output(path, out)
    fields = _config_columns(frame)
    binned = _bin_wide_axes(frame, fields)
    axes = _axes(frame, fields)
    _check_axis(x, "x", axes)
    _check_axis(y, "y", axes)
    _check_axis(group, "group", axes)
    if x is not None and x == y:
        raise ValueError(
            f"The 'x' and 'y' parameters of write_report must be two different axes. Got "
            f"{x!r} for both; the axes are: {', '.join(axes)}."
        )
    # A diverged run's loss is inf (or NaN): it is counted (×n), never averaged, so the
    # medians are over the finite values only.
    for name in METRICS:
        frame[name] = frame[name].where(np.isfinite(frame[name]))
    finished = frame[frame["status"] != "pending"]
    if finished.empty:
        raise ValueError(
            f"{str(path)!r} has no finished run yet ({len(frame)} pending). Run the study "
            "first, or resume it (initlab study run … --store PATH)."
        )
    if frame[metric].notna().sum() == 0:
        have = [m for m in METRICS if frame[m].notna().any()]
        raise ValueError(
            f"No run of {str(path)!r} has a finite {metric}. "
            + (
                f"Pick a metric that has values: {', '.join(have)}."
                if have
                else "Every finished run diverged or failed: nothing to map."
            )
        )
    counts = frame["status"].value_counts()
    page = Report(
        "study",
        f"Study {path.name}",
        None,
        subtitle=f"{len(frame):,} runs: "
        + ", ".join(f"{int(counts.get(s, 0)):,} {s}" for s in _STATUSES),
    )
    _summary(page, frame, fields, axes)
    if binned:
        page.text(
            "Drawn in bins (a random search's axis has a value per run): "
            + "; ".join(binned)
            + ". Each bin shows its centre; its runs' values are in the store."
        )
    _metric_section(page, finished, fields, axes, metric, x, y)
    _curves_section(page, path, finished, fields, axes, group)
    _depth_section(page, path, finished, fields, axes)
    _runs_section(page, finished, fields, axes, metric)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        tmp.write_text(page.html(), encoding="utf-8")
    return target
