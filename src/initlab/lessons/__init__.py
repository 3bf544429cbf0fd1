"""The lessons: each one command, each one stack, each ending in a report.

``initlab lessons`` lists them; ``initlab lesson NAME`` runs one. From Python::

    from initlab.lessons import run
    lesson = run("batchnorm", out="reports/batchnorm", quick=True)
    print(*lesson.findings, sep="\\n")

Every lesson's ``run(out=None, *, quick=False, device="cpu", progress=None)`` returns a
:class:`Lesson`: its findings (sentences computed from the run), the numbers behind
them, and the paths of its HTML report and PNG figures.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from initlab.lessons._lesson import Context, Lesson, LessonProgress, resolve_device

__all__ = ["LESSONS", "Context", "Lesson", "LessonProgress", "resolve_device", "run"]

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


def run(
    name: str,
    out: str | Path | None = None,
    *,
    quick: bool = False,
    device: str = "cpu",
    progress: LessonProgress | None = None,
) -> Lesson:
    """Run the lesson called ``name`` (one of :data:`LESSONS`)."""
    if name not in LESSONS:
        raise ValueError(f"expected a lesson among {', '.join(LESSONS)}. Got {name!r}.")
    module: Any = importlib.import_module(f"initlab.lessons.{name}")
    lesson: Lesson = module.run(out, quick=quick, device=device, progress=progress)
    return lesson
