"""The lessons: each one command, each one stack, each ending in a report.

``initlab lessons`` lists them; ``initlab lesson NAME`` runs one. From Python::

    from initlab.lessons import run
    lesson = run("batchnorm", out="reports/batchnorm", quick=True)
    print(*lesson.findings, sep="\\n")

:func:`run` returns a :class:`Lesson`: its findings (sentences computed from the run), the
facts behind them (a typed dataclass per lesson), and the paths of its HTML report and PNG
figures. Every lesson module has one shape (see :mod:`initlab.lessons._lesson`): ``NAME``,
``TITLE``, ``QUESTION``, ``SIZES`` (``quick`` and ``default``), ``setup``, ``compute`` (facts,
without drawing), ``draw`` and ``findings``, and optionally ``KNOBS`` (the options it takes,
each a field of its sizes), ``TAKEAWAY`` and ``TRY_NEXT``; one runner does the rest.
In a notebook a :class:`Lesson` shows its page.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from initlab.experiments import resolve_device
from initlab.lessons._lesson import Env, Lesson, LessonProgress, knobs, run_lesson

__all__ = [
    "LESSONS",
    "Env",
    "Lesson",
    "LessonProgress",
    "knobs",
    "module",
    "resolve_device",
    "run",
]

#: name → one line on what the lesson shows (the module is initlab.lessons.NAME).
LESSONS: dict[str, str] = {
    "init": "zeros, ones, small, large, uniform, Xavier and He init: circles and a deep MNIST net",
    "optimizers": "GD, momentum and Adam, with and without decay (the deeplearning.ai notebook)",
    "batching": "batch GD vs SGD vs mini-batch: cost against epochs, updates and wall time",
    "batchnorm": "Ioffe & Szegedy's MNIST sigmoid net with and without BN; init × lr grid",
    "clipping": "Pascanu et al.'s gradient cliff; value, norm and adaptive clipping",
    "gradients": "vanishing and exploding gradients: depth × activation × init, probed",
    "landscape": "local and global minima, saddles, SGD noise, a real net's loss slice",
    "chaos": "the edge of chaos for deep tanh nets: χ₁, ξ_c and a trainability grid",
}


def module(name: str) -> ModuleType:
    """The module of the lesson called ``name`` (one of :data:`LESSONS`)."""
    if name not in LESSONS:
        raise ValueError(f"expected a lesson among {', '.join(LESSONS)}. Got {name!r}.")
    return importlib.import_module(f"initlab.lessons.{name}")


def run(
    name: str,
    out: str | Path | None = None,
    *,
    quick: bool = False,
    device: str = "cpu",
    progress: LessonProgress | None = None,
    options: Mapping[str, object] | None = None,
    command: str | None = None,
) -> Lesson:
    """Run the lesson called ``name`` (one of :data:`LESSONS`); write its report into
    ``out`` (None: in memory only).

    ``options`` set the lesson's knobs (:func:`knobs` lists them, e.g. ``{"depth": 50}``
    for ``gradients``); ``command`` is the command line shown in the page's footer.
    See :func:`initlab.lessons._lesson.run_lesson`.
    """
    return run_lesson(
        module(name),
        out,
        quick=quick,
        device=device,
        progress=progress,
        options=options,
        command=command,
    )
