"""A lesson's report: one self-contained HTML file, with its PNG figures beside it.

:class:`Report` collects findings, figures, tables and text in order. Every figure is
saved as a PNG in the output folder the moment it is added, and the HTML file is
rewritten at the same time, so a lesson interrupted half-way still leaves a readable
report of what it had drawn. The page is rendered from Jinja2 templates
(``report/templates/``, autoescaped: every text given is shown as text, only :meth:`Report.raw`
passes markup); it embeds each figure as a base64 ``data:`` URI and its one stylesheet
(``report.css``): it opens offline and references no external URL.

A lesson's page reads top to bottom: the question, the setup, the findings, the figures
and tables, the takeaway, "try next" (commands) and a footer (the command, the versions,
the device, whether ``--quick`` ran, the options). Figures are shown at most 960 px wide.

Each file is written to a hidden temporary file in the same folder
(``.index.XXXX.html.part``) and renamed into place, so a run killed at any moment, even
with kill -9, leaves every file whole: its last complete version, or none. The kill may
leave that ``.part`` file behind. Nothing reads those files, and a later run does not
delete them: another run writing into the same folder at the same time may still be
filling its own. Delete them by hand.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> report = Report("demo", "A tiny report", folder)
    >>> report.question("What is 1 + 1?")
    >>> report.findings(["1 + 1 came out as 2."])
    >>> report.table(["x", "x²"], [[1, 1], [2, 4]], caption="squares")
    >>> report.write().name
    'index.html'
    >>> "1 + 1 came out as 2." in (folder / "index.html").read_text()
    True
"""

from __future__ import annotations

import base64
import functools
import html
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from initlab._io import atomic_path, write_atomic

__all__ = ["Report"]

#: the width, in CSS pixels, of the page's column: figures wider than this are scaled down.
COLUMN_PX = 960


def _escaped(value: object) -> Markup:
    """Every ``{{ value }}`` goes through here: text is escaped with :func:`html.escape`
    (``&#x27;`` and ``&quot;`` for quotes: a finding reads the same in the page's source as
    ``html.escape`` writes it), markup (:class:`Markup`, from :meth:`Report.raw`) passes."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value)))


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("initlab.report", "templates"),
        autoescape=True,  # every string is text unless wrapped in Markup (Report.raw)
        finalize=_escaped,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


@functools.cache
def _style() -> Markup:
    css = resources.files("initlab.report").joinpath("templates/report.css")
    return Markup(css.read_text(encoding="utf-8"))


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-").lower()
    if not slug:
        raise ValueError(f"a figure needs a name with letters or digits. Got {name!r}.")
    return slug


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _versions() -> dict[str, str]:
    import torch

    import initlab

    return {"initlab": initlab.__version__, "torch": str(torch.__version__)}


@dataclass
class Report:
    """The report of one lesson (or any run): title, findings, figures, tables, text.

    Args:
        name: short name, used in the page title (e.g. ``"batchnorm"``).
        title: the heading a reader sees.
        out: the folder for ``index.html`` and the PNGs; ``None`` keeps everything in
            memory (figures are still rendered, so the HTML can be built and checked).
        subtitle: one line under the heading (what was run, on what).
    """

    name: str
    title: str
    out: Path | None = None
    subtitle: str = ""
    _parts: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _findings: list[str] = field(default_factory=list, repr=False)
    _page: dict[str, Any] = field(default_factory=dict, repr=False)
    figures: list[Path] = field(default_factory=list)
    pngs: dict[str, bytes] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.out is not None:
            self.out = Path(self.out)
            self.out.mkdir(parents=True, exist_ok=True)
        self._page = {"question": "", "setup": "", "takeaway": "", "try_next": ()}
        self._page["footer"] = {"command": None, "device": None, "quick": None, "options": None}

    # ---------------------------------------------------------------- page parts

    def question(self, sentence: str) -> None:
        """The one question the page answers, shown first, under the heading."""
        self._page["question"] = sentence
        self._flush()

    def setup(self, text: str) -> None:
        """What was run, at what size (after the question, before the findings)."""
        self._page["setup"] = text
        self._flush()

    def takeaway(self, sentence: str) -> None:
        """The one sentence to remember, shown after the figures and tables."""
        self._page["takeaway"] = sentence
        self._flush()

    def try_next(self, commands: Sequence[str]) -> None:
        """Commands to run next, each on its own line, as code to copy."""
        if isinstance(commands, str):
            raise TypeError(f"try_next takes a sequence of commands. Got one string: {commands!r}.")
        self._page["try_next"] = tuple(commands)
        self._flush()

    def footer(
        self,
        *,
        command: str | None = None,
        device: str | None = None,
        quick: bool | None = None,
        options: Mapping[str, object] | None = None,
    ) -> None:
        """The footer's facts: the exact command that made the page, the device, whether
        the quick sizes ran, the options given (the initlab and torch versions are always
        there). ``None`` leaves a line out; ``options={}`` says "none"."""
        self._page["footer"] = {
            "command": command,
            "device": device,
            "quick": quick,
            "options": None if options is None else [(k, v) for k, v in options.items()],
        }
        self._flush()

    # ---------------------------------------------------------------- content

    def findings(self, sentences: Sequence[str]) -> None:
        """The lesson's findings, computed sentences, shown at the top of the page."""
        self._findings.extend(sentences)
        self._flush()

    def section(self, heading: str, text: str = "") -> None:
        """Start a section: a heading and an optional paragraph."""
        self._add(kind="section", heading=heading, text=text)

    def text(self, paragraph: str) -> None:
        """A paragraph of prose (plain text; escaped)."""
        self._add(kind="text", text=paragraph)

    def raw(self, markup: str) -> None:
        """Append HTML built by the caller, as is (the caller escapes what it puts in)."""
        self._add(kind="raw", markup=Markup(markup))

    def preformatted(self, lines: Sequence[str]) -> None:
        """Printed output, kept verbatim in a monospace block."""
        self._add(kind="pre", text="\n".join(lines))

    def table(
        self, header: Sequence[str], rows: Sequence[Sequence[object]], *, caption: str = ""
    ) -> None:
        """A table; floats are shown to 4 significant digits."""
        for row in rows:
            if len(row) != len(header):
                raise ValueError(
                    f"each row needs {len(header)} cells, one per column. Got {len(row)}: {row!r}."
                )
        cells = [[_cell(v) for v in row] for row in rows]
        self._add(kind="table", header=[str(h) for h in header], rows=cells, caption=caption)

    def figure(self, fig: Any, name: str, caption: str = "") -> Path | None:
        """Add a matplotlib figure: save it as ``NAME.png`` (when there is an output
        folder) and embed it in the page. Returns the PNG's path (or ``None``).

        A :class:`matplotlib.figure.Figure` made directly (``initlab.lessons._lesson.
        subplots``) needs nothing more; one made by pyplot is closed here, so pyplot
        does not keep it. The backend is never touched. Draw for a 960 px column: at
        the figures' 110 dpi that is ``figsize`` up to 8.7 inches wide
        (``initlab.report.figures.DPI``, ``WIDTH``); wider figures are scaled down, and
        their text with them."""
        slug = _slug(name)
        if slug in self.pngs:
            raise ValueError(f"the report already has a figure named {slug!r}: pick another name.")
        buffer = io.BytesIO()
        try:
            if fig.get_layout_engine() is None:
                fig.tight_layout()
            fig.savefig(buffer, format="png")
        finally:
            if getattr(fig.canvas, "manager", None) is not None:  # pyplot holds it
                import matplotlib.pyplot as plt

                plt.close(fig)
        return self.image(buffer.getvalue(), slug, caption)

    def image(self, png: bytes, name: str, caption: str = "") -> Path | None:
        """Add an already-rendered PNG (bytes) under ``NAME.png``."""
        if not png.startswith(b"\x89PNG"):
            raise ValueError(f"expected PNG bytes for figure {name!r}. Got {png[:8]!r}.")
        slug = _slug(name)
        self.pngs[slug] = png
        path = None
        if self.out is not None:
            path = write_atomic(self.out / f"{slug}.png", lambda tmp: tmp.write_bytes(png))
            self.figures.append(path)
        data = base64.b64encode(png).decode("ascii")
        self._add(kind="figure", slug=slug, data=data, alt=caption or slug, caption=caption)
        return path

    # ---------------------------------------------------------------- output

    def html(self) -> str:
        """The whole page, as a string."""
        return _templates().get_template("page.html.j2").render(self._context(footer=True))

    def fragment(self) -> str:
        """The page's body without ``<html>`` and footer, in a ``<div>`` with its scoped
        stylesheet: what a notebook shows (``_repr_html_``)."""
        return _templates().get_template("fragment.html.j2").render(self._context(footer=False))

    def write(self) -> Path:
        """Write ``index.html`` into the output folder and return its path."""
        if self.out is None:
            raise ValueError("this report has no output folder: pass out=… to write it.")
        path = self.out / "index.html"
        page = self.html()
        with atomic_path(path) as tmp:
            tmp.write_text(page, encoding="utf-8")
        return path

    def _context(self, *, footer: bool) -> dict[str, Any]:
        context = {
            "name": self.name,
            "title": self.title,
            "subtitle": self.subtitle,
            "findings": self._findings,
            "parts": self._parts,
            "style": _style(),
            **self._page,
        }
        if footer:
            context["footer"] = {**_versions(), **self._page["footer"]}
        return context

    def _add(self, **part: Any) -> None:
        self._parts.append(part)
        self._flush()

    def _flush(self) -> None:
        if self.out is not None:
            self.write()
