"""Lesson "optimizers": gradient descent, momentum and Adam, with and without decay.

The deeplearning.ai notebook "Optimization Methods" (Improving Deep Neural Networks,
course 2, week 2), reproduced exactly in float64: moons
(``numpy.random.seed(3); make_moons(300, noise=0.2)``), the net [2, 5, 2, 1] He-initialized
as the notebook draws it (``numpy.random.seed(3)``), mini-batches of 64, epoch k ordered by
``numpy.random.seed(10 + k); permutation(300)``, 5000 epochs. Seven runs as one stack: GD,
momentum (β 0.9) and Adam (0.9, 0.999, 1e-8) at lr 0.0007; GD with ``update_lr``
(lr₀/(1 + epoch)); GD, momentum (lr₀ 0.1) and Adam (lr₀ 0.01) with ``schedule_lr_decay``
(lr₀/(1 + ⌊epoch/1000⌋)).

**Momentum.** The notebook's momentum is the damped form v ← βv + (1−β)g, W ← W − lr·v.
torch's SGD momentum is undamped: b ← βb + g (b₁ = g), W ← W − lr·b. From zero velocity,
v = (1−β)·b at every step, so the notebook's run at lr is exactly torch's at lr·(1−β) —
which is how it runs here.

**Learning-rate decay.** The notebook updates the rate after each epoch i, so epoch e runs
at the rate computed after epoch e − 1; the schedules here do the same.

The report shows what the notebook prints, the epoch-cost curves and each run's decision
boundary. The quick size runs the first 400 epochs only.

Example:
    >>> from initlab.lessons import Env
    >>> facts = compute(Size(epochs=2), Env())
    >>> facts.labels[:3], facts.epoch_cost.shape
    (('gd', 'momentum', 'adam'), torch.Size([2, 7]))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from initlab.lessons import Env
from initlab.lessons._notebook import notebook_cost, notebook_dataset
from initlab.lessons.compat import (
    LegacyMiniBatches,
    legacy_make_moons,
    legacy_randn_weights,
    load_weights,
)
from initlab.models import mlp
from initlab.report.figures import draw_decision_boundaries, draw_loss_curves
from initlab.report.html import Report
from initlab.surfaces import DecisionMap, decision_map
from initlab.train import TrainConfig

__all__ = ["NAME", "QUESTION", "SIZES", "TITLE", "Facts", "Size", "compute", "draw", "findings"]

NAME = "optimizers"
TITLE = "Optimizers: gradient descent, momentum and Adam, with and without learning-rate decay"
QUESTION = (
    "How much sooner do momentum, Adam and learning-rate decay fit a small net to the moons "
    "than plain gradient descent at the same small rate?"
)


@dataclass(frozen=True)
class Size:
    epochs: int  # the notebook runs 5000


SIZES = {"quick": Size(epochs=400), "default": Size(epochs=5000)}

BETA = 0.9  # momentum's β
WIDTHS = (2, 5, 2, 1)


def _after_epoch(decay: Callable[[int], float]) -> Callable[[int], float]:
    """The rate of epoch e is the one the notebook computes after epoch e − 1."""
    return lambda epoch: 1.0 if epoch == 0 else decay(epoch - 1)


def _constant(epoch: int) -> float:
    return 1.0


_UPDATE_LR = _after_epoch(lambda e: 1.0 / (1.0 + e))
_SCHEDULE_LR_DECAY = _after_epoch(lambda e: 1.0 / (1.0 + math.floor(e / 1000)))

#: label → (optimizer, the notebook's lr₀, schedule of epoch)
RUNS: dict[str, tuple[str, float, Callable[[int], float]]] = {
    "gd": ("sgd", 0.0007, _constant),
    "momentum": ("momentum", 0.0007, _constant),
    "adam": ("adam", 0.0007, _constant),
    "gd, update_lr": ("sgd", 0.1, _UPDATE_LR),
    "gd, schedule_lr_decay": ("sgd", 0.1, _SCHEDULE_LR_DECAY),
    "momentum, schedule_lr_decay": ("momentum", 0.1, _SCHEDULE_LR_DECAY),
    "adam, schedule_lr_decay": ("adam", 0.01, _SCHEDULE_LR_DECAY),
}


@dataclass(frozen=True)
class Facts:
    epochs: int
    labels: tuple[str, ...]  # one per member, the keys of RUNS
    epoch_cost: Tensor  # (epochs, 7) the notebook's epoch cost
    costs: dict[str, list[tuple[int, float]]]  # the printed costs: (epoch, cost) per run
    train_accuracy: dict[str, float]
    final_cost: dict[str, float]  # the last epoch's cost
    best: str  # the run with the best training accuracy
    lines: tuple[str, ...]  # what the notebook prints
    x: Tensor  # (300, 2) the moons
    y: Tensor  # (300,)
    boundaries: DecisionMap  # each run's classifier over the plane, after training


def setup(size: Size) -> str:
    return (
        f"The deeplearning.ai notebook 'Optimization Methods', reproduced exactly in "
        f"float64: moons, net [2, 5, 2, 1], mini-batches of 64, {size.epochs} epochs, "
        "seven runs trained as one stack."
    )


def compute(size: Size, env: Env) -> Facts:
    """Train the seven runs as one stack; the printed costs, accuracies and boundaries."""
    if not 1 <= size.epochs <= 5000:
        raise ValueError(f"expected 1 <= epochs <= 5000, the notebook's run. Got {size.epochs}.")
    x, y = legacy_make_moons(300, 0.2, seed=3)
    ds = notebook_dataset("moons (notebook)", (x, y), None)
    stack = mlp(list(WIDTHS), "relu", bias=True, members=len(RUNS), dtype=torch.float64)
    he = legacy_randn_weights(WIDTHS, 3, lambda fan_in: math.sqrt(2.0 / fan_in))
    for m in range(len(RUNS)):
        load_weights(stack, m, he)
    stack = stack.to(env.device)
    config = TrainConfig(
        loss="bce",
        optimizer=[o for o, _, _ in RUNS.values()],
        lr=[lr * (1 - BETA) if o == "momentum" else lr for o, lr, _ in RUNS.values()],
        schedule=[s for _, _, s in RUNS.values()],
        momentum=BETA,
        epochs=size.epochs,
        log_every=1000,
        check_every=size.epochs,
    )
    batches = LegacyMiniBatches(300, 64, first_seed=10)
    steps = size.epochs * math.ceil(300 / 64)  # what the progress bar counts
    env.stage(f"7 optimizers × {size.epochs:,} epochs ({steps:,} mini-batch steps), one stack")
    result = env.train(stack, ds, config, batches=batches, cost=notebook_cost)
    epoch_cost = result.epoch_loss
    costs = {
        label: [(e, float(epoch_cost[e, m])) for e in range(0, size.epochs, 1000)]
        for m, label in enumerate(RUNS)
    }
    acc = {label: result.members[m].train_accuracy or 0.0 for m, label in enumerate(RUNS)}
    return Facts(
        epochs=size.epochs,
        labels=tuple(RUNS),
        epoch_cost=epoch_cost,
        costs=costs,
        train_accuracy=acc,
        final_cost={label: float(epoch_cost[-1, m]) for m, label in enumerate(RUNS)},
        best=max(RUNS, key=lambda label: acc[label]),
        lines=tuple(_printed(costs, acc)),
        x=ds.x_train,
        y=ds.y_train,
        boundaries=decision_map(stack.cpu(), ds.x_train),
    )


def _printed(costs: dict[str, list[tuple[int, float]]], acc: dict[str, float]) -> list[str]:
    """The notebook's printed output: the cost (and the decayed rate) every 1000 epochs."""
    lines: list[str] = []
    for label, (_, lr0, schedule) in RUNS.items():
        lines.append(f"{label}:")
        for epoch, cost in costs[label]:
            lines.append(f"Cost after epoch {epoch}: {cost:f}")
            if schedule is not _constant:
                lines.append(f"learning rate after epoch {epoch}: {lr0 * schedule(epoch + 1):f}")
        lines += [f"Accuracy: {acc[label]}", ""]
    return lines


def printed(facts: Facts) -> Sequence[str]:
    return facts.lines


def draw(facts: Facts, report: Report) -> None:
    labels = list(facts.labels)
    report.section(
        "Cost per epoch",
        "The epoch cost is the summed cross-entropy of the epoch's mini-batches over m, as "
        "the notebook computes it. Its wiggles are the mini-batches: each epoch sees them "
        "in a new order.",
    )
    epochs_axis = torch.arange(facts.epoch_cost.shape[0])
    report.figure(
        draw_loss_curves(
            epochs_axis,
            facts.epoch_cost,
            labels,
            "epoch cost",
            "epoch",
            heading=f"Epoch cost of {len(labels)} optimizer runs on the moons",
        ),
        "cost",
        "Epoch cost of each run (log scale). Adam, and every run with decay, leave "
        "plain gradient descent at lr 0.0007 behind.",
    )
    report.section("Decision boundaries", "Each run's classifier on the training points.")
    report.figure(
        draw_decision_boundaries(facts.boundaries, facts.x, facts.y, labels),
        "decision-boundaries",
        "Decision regions (orange: class 1) after training, one panel per run.",
    )
    report.section("Accuracy")
    report.table(
        ["run", "final epoch cost", "training accuracy"],
        [
            [label, facts.final_cost[label], f"{facts.train_accuracy[label]:.1%}"]
            for label in labels
        ],
        caption=f"after {facts.epochs} epochs",
    )
    report.section("What the notebook prints")
    report.preformatted(facts.lines)


def findings(facts: Facts) -> list[str]:
    acc, best = facts.train_accuracy, facts.best
    return [
        f"Plain gradient descent at lr 0.0007 reached {acc['gd']:.1%} training accuracy in "
        f"{facts.epochs} epochs; momentum {acc['momentum']:.1%}; Adam {acc['adam']:.1%}.",
        f"From lr₀ 0.1, gradient descent with schedule_lr_decay reached "
        f"{acc['gd, schedule_lr_decay']:.1%} and with update_lr (lr₀/(1 + epoch), which "
        f"decays much faster) {acc['gd, update_lr']:.1%}.",
        f"The best run was {best!r} at {acc[best]:.1%}, final epoch cost "
        f"{facts.final_cost[best]:.4f}.",
    ]
