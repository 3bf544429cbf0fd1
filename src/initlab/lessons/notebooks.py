"""The classic lessons, reproduced exactly, each as one stack.

:func:`lesson_init` and :func:`lesson_optimizers` rerun the deeplearning.ai notebooks of
"Improving Deep Neural Networks" (course 2, week 1 "Initialization" and week 2
"Optimization Methods") in float64: the same data, the same initial weights and the same
mini-batch orders (drawn with :mod:`initlab.compat`), the same updates, the same printed
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
from initlab.compat import (
    LegacyMiniBatches,
    legacy_make_circles,
    legacy_make_moons,
    legacy_randn_weights,
    load_weights,
)
from initlab.data import Dataset
from initlab.models import Stack, mlp
from initlab.report import decision_boundaries, loss_curves
from initlab.train import Progress, TrainConfig, TrainResult, train

__all__ = [
    "INIT_WIDTHS",
    "LessonResult",
    "init_data",
    "init_weights",
    "lesson_init",
    "lesson_optimizers",
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


def notebook_cost(out: Tensor, y: Tensor) -> Tensor:
    """The notebooks' binary cross-entropy, in probability space, per member:
    a = 1/(1 + e⁻ᶻ), cost = (1/m)·nansum(−y·log a − (1−y)·log(1 − a)).

    Unlike the logit form used for training, a sigmoid that saturates to exactly 1 makes
    this inf — which is what the notebook prints for its "large random" init.

    Example:
        >>> notebook_cost(torch.tensor([[[0.0], [40.0]]], dtype=torch.float64),
        ...               torch.tensor([[1.0, 0.0]], dtype=torch.float64))
        tensor([inf], dtype=torch.float64)
    """
    a = 1 / (1 + torch.exp(-out[..., 0]))
    y = y.to(a.dtype)
    logprobs = torch.mul(-torch.log(a), y) + torch.mul(-torch.log(1 - a), 1 - y)
    return torch.nansum(logprobs, dim=1) / out.shape[1]


def _dataset(name: str, train: tuple, test: tuple | None) -> Dataset:  # type: ignore[type-arg]
    x, y = (torch.from_numpy(a) for a in train)
    xt, yt = (torch.from_numpy(a) for a in test) if test else (x[:0], y[:0])
    return Dataset(name, x, y, xt, yt, 2)


#: The notebook's net for "Initialization": [2, 10, 5, 1], ReLU, ReLU, sigmoid output.
INIT_WIDTHS: tuple[int, ...] = (2, 10, 5, 1)

Weights: TypeAlias = Sequence[tuple[np.ndarray, np.ndarray]]


def init_data() -> Dataset:
    """The notebook's circles: ``numpy.random.seed(1); make_circles(300, noise=0.05)`` for
    training and seed 2, 100 points, for the test (float64)."""
    return _dataset(
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
    result = train(stack, ds, config, cost=notebook_cost, progress=progress)

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
            stack, ds.x_train, ds.y_train, panels, folder / "decision-boundaries.png"
        ),
    )
    text = "\n".join(lines) + "\n"
    write_atomic(folder / "output.txt", lambda tmp: tmp.write_text(text))
    return figures


def _after_epoch(decay: Callable[[int], float]) -> Callable[[int], float]:
    """The rate of epoch e is the one the notebook computes after epoch e − 1."""
    return lambda epoch: 1.0 if epoch == 0 else decay(epoch - 1)


def lesson_optimizers(
    out: str | Path | None = None,
    *,
    progress: Callable[[Progress], None] | None = None,
    epochs: int = 5000,
    device: str | torch.device = "cpu",
) -> LessonResult:
    """Week 2, "Optimization Methods": GD, momentum and Adam on moons, with and without
    learning-rate decay, as one stack of seven members.

    Data: ``numpy.random.seed(3); make_moons(300, noise=0.2)``; net [2, 5, 2, 1], He
    init after ``numpy.random.seed(3)``; mini-batches of 64, epoch k (k = 1, 2, …)
    ordered by ``numpy.random.seed(10 + k); permutation(300)``; 5000 epochs. GD, momentum
    (β 0.9) and Adam (0.9, 0.999, 1e-8) at lr 0.0007; then GD with ``update_lr``
    (lr₀/(1 + epoch)), and GD, momentum (lr₀ 0.1) and Adam (lr₀ 0.01) with
    ``schedule_lr_decay`` (lr₀/(1 + ⌊epoch/1000⌋)). Prints the epoch cost (the summed
    cross-entropy of the epoch over m) every 1000 epochs and the training accuracy.
    ``epochs`` below 5000 runs the same lesson shorter (the printed costs then stop
    early); ``device`` is where the stack trains (float64 everywhere).
    """
    if not 1 <= epochs <= 5000:
        raise ValueError(f"expected 1 <= epochs <= 5000, the notebook's run. Got {epochs}.")
    started = time.perf_counter()
    x, y = legacy_make_moons(300, 0.2, seed=3)
    ds = _dataset("moons (notebook)", (x, y), None)
    beta = 0.9
    every_epoch = _after_epoch(lambda e: 1.0 / (1.0 + e))
    stepwise = _after_epoch(lambda e: 1.0 / (1.0 + math.floor(e / 1000)))
    constant: Callable[[int], float] = lambda e: 1.0  # noqa: E731
    # label: (optimizer, the notebook's lr₀, schedule); momentum runs at lr·(1 − β) here
    runs = {
        "gd": ("sgd", 0.0007, constant),
        "momentum": ("momentum", 0.0007, constant),
        "adam": ("adam", 0.0007, constant),
        "gd, update_lr": ("sgd", 0.1, every_epoch),
        "gd, schedule_lr_decay": ("sgd", 0.1, stepwise),
        "momentum, schedule_lr_decay": ("momentum", 0.1, stepwise),
        "adam, schedule_lr_decay": ("adam", 0.01, stepwise),
    }
    widths = [2, 5, 2, 1]
    stack = mlp(widths, "relu", bias=True, members=len(runs), dtype=torch.float64)
    he = legacy_randn_weights(widths, 3, lambda fan_in: math.sqrt(2.0 / fan_in))
    for m in range(len(runs)):
        load_weights(stack, m, he)
    stack = stack.to(device)
    names = [o for o, _, _ in runs.values()]
    config = TrainConfig(
        loss="bce",
        optimizer=names,
        lr=[lr * (1 - beta) if o == "momentum" else lr for o, lr, _ in runs.values()],
        schedule=[s for _, _, s in runs.values()],
        momentum=beta,
        epochs=epochs,
        log_every=1000,
        check_every=epochs,
    )
    batches = LegacyMiniBatches(300, 64, first_seed=10)
    result = train(stack, ds, config, batches=batches, cost=notebook_cost, progress=progress)

    labels = tuple(runs)
    lines: list[str] = []
    costs: dict[str, list[tuple[int, float]]] = {}
    train_acc = {}
    for m, (label, (_, lr0, schedule)) in enumerate(runs.items()):
        costs[label] = [(e, float(result.epoch_loss[e, m])) for e in range(0, epochs, 1000)]
        train_acc[label] = result.members[m].train_accuracy or 0.0
        lines.append(f"{label}:")
        for epoch, cost in costs[label]:
            lines.append(f"Cost after epoch {epoch}: {cost:f}")
            if schedule is not constant:
                lines.append(f"learning rate after epoch {epoch}: {lr0 * schedule(epoch + 1):f}")
        lines += [f"Accuracy: {train_acc[label]}", ""]
    epoch_axis = torch.arange(result.epoch_loss.shape[0])
    figures = _report(
        out,
        stack,
        ds,
        lines,
        epoch_axis,
        result.epoch_loss,
        labels,
        "epoch cost",
        "epoch",
        list(labels),
    )
    return LessonResult(
        "optimizers",
        labels,
        tuple(lines),
        costs,
        train_acc,
        {},
        figures,
        result,
        time.perf_counter() - started,
        stack,
    )
