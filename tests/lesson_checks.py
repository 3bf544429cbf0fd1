"""What every lesson's report must be: checked the same way for each lesson."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import html5lib

from initlab.lessons import Lesson


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
    html5lib.HTMLParser(strict=True).parse(text)  # raises on any parse error
    assert not re.search(r"https?://", text)
    assert lesson.findings
    for finding in lesson.findings:
        assert html.escape(finding) in text, finding
        assert re.search(r"\d", finding), finding  # a finding carries the run's numbers
    return text
