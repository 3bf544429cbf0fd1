"""The one shape of a lesson, and the one runner that runs every lesson.

A lesson is a module of :mod:`initlab.lessons` that declares

- ``NAME`` (its command name), ``TITLE`` (the page's heading) and ``QUESTION`` (the one
  sentence it answers);
- ``SIZES``: a mapping with the keys ``"quick"`` and ``"default"``, each a frozen dataclass
  of the lesson's sizes (epochs, widths, grid points, ...) — the only place sizes live;
- ``setup(size) -> str``: one sentence on what is run at that size (the page's subtitle);
- ``compute(size, env) -> Facts``: the experiments, returning a frozen, typed dataclass of
  the numbers the lesson found; it trains through ``env.train``, says what it is doing
  with ``env.stage`` and, for a lesson in parts, hands each finished part's drawing to
  ``env.part_done`` (drawn only if a Ctrl-C stops a later part); it draws nothing itself,
  so facts are computed and tested without a figure;
- ``draw(facts, report)``: the figures, tables and prose, from the facts alone;
- ``findings(facts) -> list[str]``: sentences formatted from the facts;
- optionally ``printed(facts) -> Sequence[str]``: output printed as a notebook prints it.

:func:`run_lesson` does the rest for every lesson: the device, the progress display,
Ctrl-C, timing, and the report (written as it grows: a Ctrl-C keeps the figures of every
part finished or drawn so far, and the page says where the lesson stopped).

Example:
    >>> from initlab.lessons import optimizers
    >>> facts = optimizers.compute(optimizers.Size(epochs=3), Env())  # no figure drawn
    >>> facts.lines[:2]
    ('gd:', 'Cost after epoch 0: 0.702405')
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch

from initlab.experiments import resolve_device
from initlab.report.html import Report
from initlab.train import Observer, Progress, ProgressObserver, TrainResult, train

if TYPE_CHECKING:  # matplotlib loads when a lesson draws, not when the CLI starts
    from matplotlib.figure import Figure

__all__ = [
    "Env",
    "Lesson",
    "LessonProgress",
    "closing_texts",
    "figure",
    "knobs",
    "run_lesson",
    "size_of",
    "subplots",
    "with_options",
]


class LessonProgress(Protocol):
    """A progress display: told each stage of a lesson, and fed the engine's reports."""

    def stage(self, text: str, total: int | None = None) -> None: ...

    def __call__(self, progress: Progress, /) -> None: ...


@dataclass(frozen=True)
class Lesson:
    """What a lesson found, drew and wrote. In a notebook it shows its page (question,
    setup, findings, figures, takeaway, try next); its ``repr`` is one line."""

    name: str
    title: str
    question: str  # the one sentence the lesson answers
    findings: tuple[str, ...]  # sentences computed from the run
    facts: Any  # the lesson's typed, frozen dataclass of the numbers behind the findings
    figures: tuple[Path, ...]  # PNGs written (none without an output folder)
    report: Path | None  # the HTML report (None without an output folder)
    seconds: float
    quick: bool  # whether the quick sizes ran
    lines: tuple[str, ...] = ()  # printed output, where the lesson prints some
    html: str = field(default="", repr=False)  # the report page itself
    body: str = field(default="", repr=False)  # the page's body, for a notebook
    takeaway: str = ""  # the one sentence to remember
    try_next: tuple[str, ...] = ()  # commands to run next
    options: tuple[tuple[str, object], ...] = ()  # the knobs given, in order

    def __repr__(self) -> str:
        where = f"report={str(self.report)!r}" if self.report is not None else "in memory"
        count = len(self.findings)
        return (
            f"<Lesson {self.name!r}{' quick' if self.quick else ''}: {self.seconds:.1f} s, "
            f"{count} finding{'' if count == 1 else 's'}, {where}>"
        )

    def _repr_html_(self) -> str:
        return self.body or self.html


class Env:
    """What a lesson's ``compute`` may use: the device, the progress display, the engine.

    ``Env()`` is a CPU run with no display (what tests use).
    """

    def __init__(
        self, device: str | torch.device = "cpu", progress: LessonProgress | None = None
    ) -> None:
        self.device = resolve_device(device)
        self.progress = progress
        self.stages: list[str] = []
        self.finished: list[Callable[[Report], None]] = []  # the finished parts' drawings

    def part_done(self, draw: Callable[[Report], None]) -> None:
        """A part of the lesson is computed: ``draw`` puts it on the page. The runner calls
        it only if the lesson is interrupted later, so a Ctrl-C keeps the finished parts'
        figures; a lesson that ends draws everything in ``draw(facts, report)``."""
        self.finished.append(draw)

    def stage(self, text: str, total: int | None = None) -> None:
        """Tell the progress display what the lesson is doing now; ``total``: the steps the
        stage trains in all, when it trains in several runs (the display counts across
        them, and shows that total from the start)."""
        self.stages.append(text)
        if self.progress is not None:
            if total is None:
                self.progress.stage(text)
            else:
                self.progress.stage(text, total=total)

    def train(self, *args: Any, observers: Sequence[Observer] = (), **kwargs: Any) -> TrainResult:
        """:func:`initlab.train.train`, heard by the progress display; a run stopped by
        Ctrl-C raises :class:`KeyboardInterrupt` here, so the lesson stops instead of going
        on with a cut-short run."""
        heard: list[Observer] = []
        if self.progress is not None:
            heard.append(ProgressObserver(self.progress))
        heard += observers
        result = train(*args, observers=heard, **kwargs)
        if result.interrupted:
            raise KeyboardInterrupt
        return result


def size_of(module: ModuleType, quick: bool) -> Any:
    """The lesson's sizes for a quick or a full run."""
    sizes: Mapping[str, Any] = module.SIZES
    return sizes["quick" if quick else "default"]


def run_lesson(
    module: ModuleType,
    out: str | Path | None = None,
    *,
    quick: bool = False,
    device: str | torch.device = "cpu",
    progress: LessonProgress | None = None,
    options: Mapping[str, object] | None = None,
    command: str | None = None,
) -> Lesson:
    """Run one lesson module (see this module's doc): compute, draw, find, write.

    Args:
        module: the lesson.
        out: the report's folder (None: in memory only).
        quick: the quick sizes instead of the default ones.
        device: where the engine trains.
        progress: the display told each stage and fed the engine's reports.
        options: the lesson's knobs, each a field of its ``Size`` (``KNOBS`` names them),
            replacing that field of the quick or default sizes; shown in the footer.
        command: the exact command that ran the lesson, for the footer (None: the
            equivalent Python call).

    Raises:
        ValueError: an unavailable device, or an option the lesson has no knob for (both
            before anything is written); a lesson that found nothing.
        KeyboardInterrupt: Ctrl-C; the report so far is on disk.
    """
    env = Env(device, progress)
    given = dict(options or {})
    size = with_options(module, size_of(module, quick), given)
    if command is None:
        command = _python_call(module.NAME, quick, str(env.device), given)
    started = time.perf_counter()
    folder = Path(out) if out is not None else None
    report = Report(module.NAME, module.TITLE, folder)
    report.footer(command=command, device=str(env.device), quick=quick, options=given)
    report.question(module.QUESTION)
    report.setup(module.setup(size))
    try:
        facts = module.compute(size, env)
    except KeyboardInterrupt:
        _interrupted(report, env, started, drawn=env.finished)
        raise
    env.stage("drawing")
    try:
        module.draw(facts, report)
    except KeyboardInterrupt:
        _interrupted(report, env, started, drawn=())
        raise
    found = list(module.findings(facts))
    if not found:
        raise ValueError(f"lesson {module.NAME!r} finished without a finding.")
    report.findings(found)
    takeaway, try_next = closing_texts(module)
    if takeaway:
        report.takeaway(takeaway)
    if try_next:
        report.try_next(try_next)
    path = report.write() if report.out is not None else None
    printed = getattr(module, "printed", None)
    return Lesson(
        name=module.NAME,
        title=module.TITLE,
        question=module.QUESTION,
        findings=tuple(found),
        facts=facts,
        figures=tuple(report.figures),
        report=path,
        seconds=time.perf_counter() - started,
        quick=quick,
        lines=tuple(printed(facts)) if printed is not None else (),
        html=report.html(),
        body=report.fragment(),
        takeaway=takeaway,
        try_next=try_next,
        options=tuple(given.items()),
    )


def knobs(module: ModuleType) -> Mapping[str, str]:
    """The lesson's knobs: option name → help text (empty: it takes no options)."""
    found: Mapping[str, str] = getattr(module, "KNOBS", {})
    return found


def with_options(module: ModuleType, size: Any, options: Mapping[str, object]) -> Any:
    """``size`` with the given options replacing its fields (``dataclasses.replace``).

    A string given for a number or a bool (as a command line gives it) is converted to the
    field's type; any other type that differs from the field's is refused.

    Raises:
        ValueError: an option that is not one of the lesson's ``KNOBS``, or a value that
            does not convert to its field's type.
    """
    if not options:
        return size
    allowed = knobs(module)
    unknown = [name for name in options if name not in allowed]
    if unknown:
        takes = (
            f"takes the options {', '.join(allowed)}"
            if allowed
            else "takes no options (it has no knobs)"
        )
        raise ValueError(
            f"lesson {module.NAME!r} {takes}. Got {', '.join(map(repr, unknown))}."
            + (" Drop it, or use a lesson that has it." if not allowed else "")
        )
    return dataclasses.replace(
        size,
        **{
            name: _as_field(module.NAME, name, getattr(size, name), v)
            for name, v in options.items()
        },
    )


def _as_field(lesson: str, name: str, current: object, value: object) -> object:
    kind = type(current)
    if current is None or (
        isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    ):
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and kind in (int, float, bool):
        text = value.strip().lower()
        try:
            if kind is bool:
                if text not in ("true", "false", "yes", "no", "1", "0"):
                    raise ValueError(text)
                return text in ("true", "yes", "1")
            return kind(text)
        except ValueError:
            pass
    raise ValueError(
        f"the {name!r} option of lesson {lesson!r} must be a {kind.__name__} (like its "
        f"default, {current!r}). Got {value!r}."
    )


def closing_texts(module: ModuleType) -> tuple[str, tuple[str, ...]]:
    """The lesson's takeaway and "try next" commands: the module's own ``TAKEAWAY`` and
    ``TRY_NEXT`` where it defines them, else those of :mod:`initlab.lessons._texts`."""
    from initlab.lessons import _texts

    takeaway: str = getattr(module, "TAKEAWAY", _texts.TAKEAWAYS.get(module.NAME, ""))
    try_next = getattr(module, "TRY_NEXT", _texts.TRY_NEXT.get(module.NAME, ()))
    return takeaway, tuple(try_next)


def _python_call(name: str, quick: bool, device: str, options: Mapping[str, object]) -> str:
    args = [repr(name)]
    if quick:
        args.append("quick=True")
    if device != "cpu":
        args.append(f"device={device!r}")
    if options:
        args.append(f"options={dict(options)!r}")
    return f"initlab.lessons.run({', '.join(args)})"


def _interrupted(
    report: Report, env: Env, started: float, drawn: Sequence[Callable[[Report], None]]
) -> None:
    """After a Ctrl-C: the finished parts on the page, and where the lesson stopped."""
    for draw in drawn:
        draw(report)
    stage = env.stages[-1] if env.stages else "starting"
    report.text(f"Interrupted while {stage}, after {time.perf_counter() - started:.0f} s.")


def figure(**fig_kw: Any) -> Figure:
    """A new :class:`matplotlib.figure.Figure`, made without pyplot: it belongs to no
    window and no backend, so drawing it never touches the user's backend, and nothing
    needs closing (it is freed when no longer referenced). ``fig_kw`` as for ``Figure``
    (``figsize``, ``dpi``, ``layout``, ...)."""
    from matplotlib.figure import Figure

    return Figure(**fig_kw)


def subplots(
    nrows: int = 1,
    ncols: int = 1,
    *,
    sharex: bool | Literal["none", "all", "row", "col"] = False,
    sharey: bool | Literal["none", "all", "row", "col"] = False,
    squeeze: bool = True,
    width_ratios: Sequence[float] | None = None,
    height_ratios: Sequence[float] | None = None,
    subplot_kw: dict[str, Any] | None = None,
    gridspec_kw: dict[str, Any] | None = None,
    **fig_kw: Any,
) -> tuple[Figure, Any]:
    """``(fig, axes)`` as ``matplotlib.pyplot.subplots`` returns them, on a new
    :func:`figure` (no pyplot, no backend switch, nothing to close).

    Example:
        >>> fig, (left, right) = subplots(1, 2, figsize=(6, 3), sharey=True)
        >>> type(fig).__name__, len(fig.axes)
        ('Figure', 2)
    """
    fig = figure(**fig_kw)
    grid: dict[str, Any] = {"sharex": sharex, "sharey": sharey, "squeeze": squeeze}
    grid.update(width_ratios=width_ratios, height_ratios=height_ratios)
    grid.update(subplot_kw=subplot_kw, gridspec_kw=gridspec_kw)
    axes = fig.subplots(nrows, ncols, **grid)
    return fig, axes
