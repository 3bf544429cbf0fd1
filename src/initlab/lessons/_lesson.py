"""What every lesson shares: its context while running, and its result.

A lesson is a module with a ``run(out=None, *, quick=False, device="cpu", progress=None)``
function returning a :class:`Lesson`. It builds its report through :class:`Context`
(findings, figures, tables), trains through :meth:`Context.train` (which feeds the
progress display and turns Ctrl-C into a clean stop), and ends with
:meth:`Context.finish`. Findings are sentences formatted from the run's own numbers;
``facts`` holds those numbers so a test can assert them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from initlab.experiments import resolve_device
from initlab.report.html import Report
from initlab.train import Progress, TrainResult, train

__all__ = ["Context", "Lesson", "LessonProgress", "resolve_device"]


class LessonProgress(Protocol):
    """A progress display: told each stage of a lesson, and fed the engine's reports."""

    def stage(self, text: str) -> None: ...

    def __call__(self, progress: Progress, /) -> None: ...


@dataclass(frozen=True)
class Lesson:
    """What a lesson found, drew and wrote."""

    name: str
    title: str
    findings: tuple[str, ...]  # sentences computed from the run
    facts: dict[str, Any]  # the numbers behind the findings
    figures: tuple[Path, ...]  # PNGs written (none without an output folder)
    report: Path | None  # the HTML report (None without an output folder)
    seconds: float
    lines: tuple[str, ...] = ()  # printed output, where the lesson prints some
    html: str = field(default="", repr=False)  # the report page itself


class Context:
    """A running lesson: its options, its report and its progress display."""

    def __init__(
        self,
        name: str,
        title: str,
        out: str | Path | None,
        *,
        quick: bool,
        device: str | torch.device,
        progress: LessonProgress | None,
        subtitle: str = "",
    ) -> None:
        self.name = name
        self.title = title
        self.quick = quick
        self.device = resolve_device(device)
        self.progress = progress
        self.report = Report(name, title, Path(out) if out is not None else None, subtitle)
        self.started = time.perf_counter()

    def stage(self, text: str) -> None:
        """Tell the progress display what the lesson is doing now."""
        if self.progress is not None:
            self.progress.stage(text)

    def train(self, *args: Any, **kwargs: Any) -> TrainResult:
        """:func:`initlab.train.train`, fed to the progress display; a run stopped by
        Ctrl-C raises :class:`KeyboardInterrupt` here, after its figures so far are
        saved, so the lesson stops instead of going on with a cut-short run."""
        kwargs.setdefault("progress", self.progress)
        result = train(*args, **kwargs)
        if result.interrupted:
            raise KeyboardInterrupt
        return result

    def figure(self, fig: Any, name: str, caption: str = "") -> Path | None:
        """Add a matplotlib figure to the report (saved at once as ``NAME.png``)."""
        return self.report.figure(fig, name, caption)

    def finish(
        self,
        findings: Sequence[str],
        facts: dict[str, Any],
        lines: Sequence[str] = (),
    ) -> Lesson:
        """Put the findings at the top of the report, write it, return the lesson."""
        if not findings:
            raise ValueError(f"lesson {self.name!r} finished without a finding.")
        self.report.findings(list(findings))
        path = self.report.write() if self.report.out is not None else None
        return Lesson(
            name=self.name,
            title=self.title,
            findings=tuple(findings),
            facts=dict(facts),
            figures=tuple(self.report.figures),
            report=path,
            seconds=time.perf_counter() - self.started,
            lines=tuple(lines),
            html=self.report.html(),
        )


def pyplot() -> Any:
    """matplotlib's pyplot on the off-screen Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


Runner = Callable[..., Lesson]
