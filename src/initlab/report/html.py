"""A lesson's report: one self-contained HTML file, with its PNG figures beside it.

:class:`Report` collects findings, figures, tables and text in order. Every figure is
saved as a PNG in the output folder the moment it is added, and the HTML file is
rewritten at the same time, so a lesson interrupted half-way still leaves a readable
report of what it had drawn. The HTML embeds each figure as a base64 ``data:`` URI and
its own small stylesheet: it opens offline and references no external URL.

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
    >>> report.findings(["1 + 1 came out as 2."])
    >>> report.table(["x", "x²"], [[1, 1], [2, 4]], caption="squares")
    >>> report.write().name
    'index.html'
    >>> "1 + 1 came out as 2." in (folder / "index.html").read_text()
    True
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from initlab._io import atomic_path, write_atomic

__all__ = ["Report"]

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.5; }
h1 { font-size: 1.7rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
p.subtitle { color: #555; margin-top: 0; }
section.findings { background: #eef5fb; border-left: 4px solid #0072B2;
                   padding: 0.6rem 1.2rem; margin: 1.2rem 0; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.92rem; margin-top: 0.3rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; padding: 0.7rem; overflow-x: auto; font-size: 0.85rem; }
footer { color: #777; font-size: 0.85rem; margin-top: 3rem; }
"""


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-").lower()
    if not slug:
        raise ValueError(f"a figure needs a name with letters or digits. Got {name!r}.")
    return slug


def _cell(value: object) -> str:
    if isinstance(value, float):
        return html.escape(f"{value:.4g}")
    return html.escape(str(value))


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
    _parts: list[str] = field(default_factory=list, repr=False)
    _findings: list[str] = field(default_factory=list, repr=False)
    figures: list[Path] = field(default_factory=list)
    pngs: dict[str, bytes] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.out is not None:
            self.out = Path(self.out)
            self.out.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- content

    def findings(self, sentences: Sequence[str]) -> None:
        """The lesson's findings, computed sentences, shown at the top of the page."""
        self._findings.extend(sentences)
        self._flush()

    def section(self, heading: str, text: str = "") -> None:
        """Start a section: a heading and an optional paragraph."""
        self._parts.append(f"<h2>{html.escape(heading)}</h2>")
        if text:
            self._parts.append(f"<p>{html.escape(text)}</p>")
        self._flush()

    def text(self, paragraph: str) -> None:
        """A paragraph of prose (plain text; escaped)."""
        self._parts.append(f"<p>{html.escape(paragraph)}</p>")
        self._flush()

    def raw(self, markup: str) -> None:
        """Append HTML built by the caller, as is (the caller escapes what it puts in)."""
        self._parts.append(markup)
        self._flush()

    def preformatted(self, lines: Sequence[str]) -> None:
        """Printed output, kept verbatim in a monospace block."""
        self._parts.append(f"<pre>{html.escape(chr(10).join(lines))}</pre>")
        self._flush()

    def table(
        self, header: Sequence[str], rows: Sequence[Sequence[object]], *, caption: str = ""
    ) -> None:
        """A table; floats are shown to 4 significant digits."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        for row in rows:
            if len(row) != len(header):
                raise ValueError(
                    f"each row needs {len(header)} cells, one per column. Got {len(row)}: {row!r}."
                )
        body = "".join(
            "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows
        )
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self._parts.append(
            f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
        self._flush()

    def figure(self, fig: Any, name: str, caption: str = "") -> Path | None:
        """Add a matplotlib figure: save it as ``NAME.png`` (when there is an output
        folder), embed it in the page, close it. Returns the PNG's path (or ``None``)."""
        import io

        import matplotlib.pyplot as plt

        slug = _slug(name)
        if slug in self.pngs:
            raise ValueError(f"the report already has a figure named {slug!r}: pick another name.")
        buffer = io.BytesIO()
        try:
            fig.tight_layout()
            fig.savefig(buffer, format="png")
        finally:
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
        alt = html.escape(caption or slug)
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        img = f'<img src="data:image/png;base64,{data}" alt="{alt}">'
        self._parts.append(f'<figure id="{slug}">{img}{cap}</figure>')
        self._flush()
        return path

    # ---------------------------------------------------------------- output

    def html(self) -> str:
        """The whole page, as a string."""
        findings = ""
        if self._findings:
            items = "".join(f"<li>{html.escape(s)}</li>" for s in self._findings)
            findings = f'<section class="findings"><h2>Findings</h2><ul>{items}</ul></section>'
        subtitle = f'<p class="subtitle">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>initlab · {html.escape(self.name)}</title>\n<style>{_STYLE}</style>\n"
            f"</head>\n<body>\n<h1>{html.escape(self.title)}</h1>\n{subtitle}\n{findings}\n"
            + "\n".join(self._parts)
            + "\n<footer>Made by initlab. Every number on this page was computed by the run "
            "that wrote it.</footer>\n</body>\n</html>\n"
        )

    def write(self) -> Path:
        """Write ``index.html`` into the output folder and return its path."""
        if self.out is None:
            raise ValueError("this report has no output folder: pass out=… to write it.")
        path = self.out / "index.html"
        page = self.html()
        with atomic_path(path) as tmp:
            tmp.write_text(page, encoding="utf-8")
        return path

    def _flush(self) -> None:
        if self.out is not None:
            self.write()
