"""How results show themselves: a short ``__repr__`` and a small HTML view for Jupyter.

Shared by :class:`~initlab.train.TrainResult`, :class:`~initlab.probe.Probe`,
:class:`~initlab.probe.ProbeReport` and :class:`~initlab.studies.StudySummary`. The HTML
is self-contained (inline styles, figures as base64 PNG) and every string in it is
escaped. Figures are drawn on a :class:`matplotlib.figure.Figure` directly: never pyplot,
never ``matplotlib.use``, so the user's backend and open figures are left alone.
:func:`progress_console` makes progress bars show in a notebook as in a terminal.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Sequence
from typing import Any

#: The longest ``__repr__`` a result gives (a line in a notebook or a log).
MAX_REPR = 199

# One style block per view, scoped to its class: the notebook's own styles are left alone.
_STYLE = (
    "<style>.initlab-repr{font-family:sans-serif;max-width:960px}"
    ".initlab-repr table{border-collapse:collapse;font-size:12px;margin:4px 0}"
    ".initlab-repr th{padding:2px 8px;border-bottom:2px solid #999;text-align:right}"
    ".initlab-repr td{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
    ".initlab-repr p{margin:2px 0}</style>"
)


def esc(value: object) -> str:
    """``value`` as text, HTML-escaped (quotes too)."""
    return html.escape(str(value), quote=True)


def number(value: float | int | None, digits: int = 3, *, nan: str = "nan") -> str:
    """A number in ``digits`` significant digits; None as "–", NaN as ``nan``, ±inf as
    written."""
    if value is None:
        return "–"
    if isinstance(value, bool | int):
        return str(value)
    if math.isnan(value):
        return nan
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def short_list(items: Sequence[str], budget: int) -> str:
    """``items`` as a Python-like list in at most ``budget`` characters: the first ones,
    then "…" and how many were left out."""
    shown: list[str] = []
    for k, item in enumerate(items):
        rest = len(items) - k - 1
        tail = f", … +{rest}]" if rest else "]"
        candidate = "[" + ", ".join([*shown, item])
        if len(candidate) + len(tail) > budget:
            return "[" + ", ".join(shown) + (", " if shown else "") + f"… +{len(items) - k}]"
        shown.append(item)
    return "[" + ", ".join(shown) + "]"


def table(header: Sequence[str], rows: Iterable[Sequence[object]], *, limit: int = 50) -> str:
    """An HTML table; cells are escaped; at most ``limit`` rows, then a line saying how
    many were left out."""
    rows = list(rows)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows[:limit]
    )
    more = f"<p>… and {len(rows) - limit} more rows.</p>" if len(rows) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def png(fig: Any) -> str:
    """A matplotlib Figure as an ``<img>`` with its PNG inline (base64)."""
    buffer = io.BytesIO()
    # Figure.savefig uses the Agg canvas for a PNG whatever the backend: no pyplot needed.
    fig.savefig(buffer, format="png", bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="figure" style="max-width:100%" src="data:image/png;base64,{data}"/>'


def box(title: str, body: str) -> str:
    """The outer frame of a result's HTML view, with an escaped title."""
    return (
        f'{_STYLE}<div class="initlab-repr">'
        f'<div style="font-weight:bold;margin:4px 0">{esc(title)}</div>{body}</div>'
    )


def paragraphs(lines: Iterable[str]) -> str:
    """Each line as an escaped paragraph."""
    return "".join(f"<p>{esc(line)}</p>" for line in lines)


def progress_console() -> Any:
    """The rich ``Console`` for a progress bar, on stderr: in a terminal as rich makes it;
    in Jupyter too when ipywidgets is installed (rich's live display there needs it).
    Without ipywidgets rich would only warn and draw nothing in a notebook, so there the
    bar is drawn as in a terminal of 80 columns, redrawn in place in the cell's output.

    Example:
        >>> progress_console().file is not None
        True
    """
    import importlib.util
    import sys

    from rich.console import Console

    console = Console(stderr=True)
    if console.is_jupyter and importlib.util.find_spec("ipywidgets") is None:
        return Console(file=sys.stderr, force_jupyter=False, force_terminal=True, width=80)
    return console
