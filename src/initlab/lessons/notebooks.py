"""The classic lessons, reproduced exactly, each as one stack.

:func:`lesson_init` and :func:`lesson_optimizers` rerun the deeplearning.ai notebooks of
"Improving Deep Neural Networks" (course 2, week 1 "Initialization" and week 2
"Optimization Methods") in float64: the same data, the same initial weights and the same
mini-batch orders (drawn with :mod:`initlab.lessons.compat`), the same updates, the same printed
costs. Every run of a lesson is a member of one stack, trained by the ordinary engine.

**Momentum.** The notebook's momentum is the damped form v ← βv + (1−β)g, W ← W − lr·v.
torch's SGD momentum is undamped: b ← βb + g (b₁ = g), W ← W − lr·b. From zero
velocity, v = (1−β)·b at every step, so the notebook's run at lr is exactly torch's at
lr·(1−β) — which is how it runs here.

**Learning-rate decay.** The notebook updates the rate after each epoch i to
lr₀/(1 + ⌊i/1000⌋) (``schedule_lr_decay``) or lr₀/(1 + i) (``update_lr``), so epoch e
runs at the rate computed after epoch e − 1; the schedules here do the same.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np
import torch
from torch import Tensor

from initlab._io import write_atomic
from initlab._validation import check_int, param_message
from initlab.data import Dataset
from initlab.lessons._notebook import notebook_cost, notebook_dataset
from initlab.lessons.compat import (
    legacy_make_circles,
    legacy_randn_weights,
    load_weights,
)
from initlab.models import Stack, mlp
from initlab.report import decision_boundaries, loss_curves
from initlab.surfaces import decision_map
from initlab.train import Progress, ProgressObserver, TrainConfig, TrainResult, train

__all__ = [
    "INIT_WIDTHS",
    "LessonResult",
    "init_data",
    "init_weights",
    "lesson_init",
    "notebook_cost",
]


@dataclass(frozen=True)
class LessonResult:
    """What a lesson printed and drew, and the run behind it."""

    name: str  # "init" or "optimizers"
    runs: tuple[str, ...]  # one label per member
    lines: tuple[str, ...]  # the printed output, as the notebook prints it
    costs: dict[str, list[tuple[int, float]]]  # per run: (iteration or epoch, cost) printed
    train_accuracy: dict[str, float]
    test_accuracy: dict[str, float]  # empty when the lesson has no test set
    figures: tuple[Path, ...]  # PNGs written (none without an output folder)
    result: TrainResult
    seconds: float
    model: Stack  # the trained stack, one member per run


#: The notebook's net for "Initialization": [2, 10, 5, 1], ReLU, ReLU, sigmoid output.
INIT_WIDTHS: tuple[int, ...] = (2, 10, 5, 1)

Weights: TypeAlias = Sequence[tuple[np.ndarray, np.ndarray]]


def init_data() -> Dataset:
    """The notebook's circles: ``numpy.random.seed(1); make_circles(300, noise=0.05)`` for
    training and seed 2, 100 points, for the test (float64)."""
    return notebook_dataset(
        "circles (notebook)",
        legacy_make_circles(300, 0.05, seed=1),
        legacy_make_circles(100, 0.05, seed=2),
    )


def init_weights() -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """The notebook's three initial weights, (W, b) per layer of :data:`INIT_WIDTHS`:
    ``"zeros"``, ``"random"`` (``randn·10`` after ``numpy.random.seed(3)``) and ``"he"``
    (``randn·√(2/n_{l−1})`` after the same seed); biases zero.

    Example:
        >>> w = init_weights()
        >>> list(w), float(abs(w["zeros"][0][0]).max())
        (['zeros', 'random', 'he'], 0.0)
    """
    scales: dict[str, tuple[int | None, Callable[[int], float]]] = {
        "zeros": (None, lambda fan_in: 0.0),
        "random": (3, lambda fan_in: 10.0),
        "he": (3, lambda fan_in: math.sqrt(2.0 / fan_in)),
    }
    return {k: legacy_randn_weights(INIT_WIDTHS, seed, f) for k, (seed, f) in scales.items()}


def lesson_init(
    out: str | Path | None = None,
    *,
    progress: Callable[[Progress], None] | None = None,
    extra: Mapping[str, Weights] | None = None,
    steps: int = 15_000,
    device: str | torch.device = "cpu",
) -> LessonResult:
    """Week 1, "Initialization": zeros, large random (×10) and He init on circles.

    Data: ``numpy.random.seed(1); make_circles(300, noise=0.05)`` for training and seed 2,
    100 points for the test. Net [2, 10, 5, 1], ReLU, ReLU, sigmoid; full-batch gradient
    descent at lr 0.01 for 15,000 iterations; weights ``randn·{0, 10, √(2/n_{l−1})}`` after
    ``numpy.random.seed(3)``, biases zero. Prints the cost every 1000 iterations and the
    train/test accuracy per init; with ``out``, writes the cost curves and the decision
    boundaries there.

    Args:
        out: a folder for the cost curves, the decision boundaries and ``output.txt``.
        progress: called at every check (every 1000 iterations) with the engine's progress.
        extra: further initial weights, label → (W, b) per layer, trained as further
            members of the same stack (so at almost no extra cost). The printed ``lines``
            stay the notebook's three runs; ``costs``, the accuracies and the figures
            cover every member.
        steps: iterations (15,000 in the notebook; fewer for a quick look).
        device: where to train (the notebook's numbers are those of the CPU).

    Raises:
        ValueError: an ``extra`` label that is one of the notebook's, weights of the
            wrong shapes, ``steps`` < 1.
    """
    started = time.perf_counter()
    steps = check_int("lesson_init", "steps", steps, low=1)
    ds = init_data()
    inits: dict[str, Weights] = dict(init_weights())
    for label, weights in (extra or {}).items():
        if label in inits:
            raise ValueError(
                param_message(
                    "lesson_init",
                    "extra",
                    f"labels other than the notebook's {', '.join(map(repr, inits))}",
                    label,
                    "Rename the extra run.",
                )
            )
        inits[label] = weights
    widths = list(INIT_WIDTHS)
    stack = mlp(widths, "relu", bias=True, members=len(inits), dtype=torch.float64)
    for m, weights in enumerate(inits.values()):
        load_weights(stack, m, weights)
    stack.to(device)
    config = TrainConfig(
        loss="bce",
        optimizer="sgd",
        lr=0.01,
        batch_size="full",
        steps=steps,
        log_every=1000,
        check_every=1000,
    )
    observers = [ProgressObserver(progress)] if progress is not None else []
    result = train(stack, ds, config, cost=notebook_cost, observers=observers)

    labels = tuple(inits)
    lines: list[str] = []
    costs: dict[str, list[tuple[int, float]]] = {}
    train_acc, test_acc = {}, {}
    for m, label in enumerate(labels):
        costs[label] = [
            (int(s), float(c))
            for s, c in zip(result.steps, result.loss[:, m], strict=True)
            if int(s) % config.log_every == 0  # the notebook's prints, not the last step
        ]
        train_acc[label] = result.members[m].train_accuracy or 0.0
        test_acc[label] = result.members[m].test_accuracy or 0.0
        if m >= 3:  # the notebook prints its own three runs
            continue
        lines.append(f"initialization = {label!r}")
        lines += [f"Cost after iteration {i}: {c}" for i, c in costs[label]]
        lines += ["On the train set:", f"Accuracy: {train_acc[label]}"]
        lines += ["On the test set:", f"Accuracy: {test_acc[label]}", ""]
    figures = _report(
        out,
        copy.deepcopy(stack).cpu() if out is not None else stack,  # drawn on the CPU
        ds,
        lines,
        result.steps,
        result.loss,
        labels,
        "cost (notebook formula)",
        "iteration",
        [f"{k} init" for k in labels],
    )
    return LessonResult(
        "init",
        labels,
        tuple(lines),
        costs,
        train_acc,
        test_acc,
        figures,
        result,
        time.perf_counter() - started,
        stack,
    )


def _report(
    out: str | Path | None,
    stack: Stack,
    ds: Dataset,
    lines: list[str],
    steps: Tensor,
    costs: Tensor,
    labels: Sequence[str],
    title: str,
    xlabel: str,
    panels: Sequence[str],
) -> tuple[Path, ...]:
    """Write a lesson's report into ``out``: cost curves, decision boundaries, the text."""
    if out is None:
        return ()
    folder = Path(out)
    figures = (
        loss_curves(steps, costs, labels, folder / "cost.png", title=title, xlabel=xlabel),
        decision_boundaries(
            decision_map(stack, ds.x_train),
            ds.x_train,
            ds.y_train,
            panels,
            folder / "decision-boundaries.png",
        ),
    )
    text = "\n".join(lines) + "\n"
    write_atomic(folder / "output.txt", lambda tmp: tmp.write_text(text))
    return figures
