"""What every lesson's report must be: checked the same way for each lesson."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import html5lib

from initlab.lessons import Lesson
from initlab.report.figures import DPI, WIDTH

# A page's column is 960 px: a wider figure is scaled down, and its text with it.
COLUMN_PX = 960


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height in pixels, read from the PNG's IHDR chunk (bytes 16-24)."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def check_report(lesson: Lesson, figures: int) -> str:
    """The lesson wrote ``index.html`` with each of its ``figures`` PNGs beside it and
    embedded (the same bytes), valid HTML, no external URL, and every finding on the
    page, each with numbers from the run. Returns the page."""
    assert lesson.report is not None and lesson.report.exists()
    text = lesson.report.read_text(encoding="utf-8")
    assert len(lesson.figures) == figures, [p.name for p in lesson.figures]
    embedded = re.findall(r'<figure id="([^"]+)"><img src="data:image/png;base64,([^"]+)"', text)
    assert len(embedded) == figures == text.count("data:image/png;base64,")
    on_disk = {Path(p).stem: Path(p).read_bytes() for p in lesson.figures}
    for name, data in embedded:
        assert on_disk[name].startswith(b"\x89PNG") and base64.b64decode(data) == on_disk[name]
    for name, png in on_disk.items():
        width, _ = png_size(png)
        assert width <= min(COLUMN_PX, round(WIDTH * DPI)), (name, width)
    tree = html5lib.HTMLParser(strict=True).parse(text)  # raises on any parse error
    # The page's text as a browser shows it (entities decoded, whitespace collapsed): a
    # finding is compared with what a reader sees, whatever escaping the writer chose.
    shown = " ".join("".join(tree.itertext()).split())
    assert not re.search(r"https?://", text)
    assert lesson.findings
    for finding in lesson.findings:
        assert " ".join(finding.split()) in shown, finding
        assert re.search(r"\d", finding), finding  # a finding carries the run's numbers
    return text
