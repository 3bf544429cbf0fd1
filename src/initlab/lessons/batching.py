"""Lesson 3, batching: batch gradient descent, SGD and mini-batch gradient descent.

What it teaches. An *epoch* is one pass over the training set, whatever the batch size;
an *update* is one step of the weights. Batch gradient descent (the whole training set
per update) makes one exact-gradient update per epoch: its cost falls smoothly but slowly
per epoch. Stochastic gradient descent (one example per update) makes n noisy updates per
epoch: its cost, measured per update, jumps about, but it moves far in one epoch — and it
pays for every update in wall time, since one example at a time leaves the arithmetic
unvectorized. Mini-batch gradient descent (k examples per update) sits in between:
⌈n/k⌉ updates per epoch, each a vectorized step on k examples, a cost curve noisier than
batch GD's and smoother than SGD's, and often the shortest wall time to a given cost.

The setup. scikit-learn's 8×8 digits (1,438 training and 359 test images, bundled, no
download), a 64–32–10 tanh MLP with Xavier-normal weights drawn from one seed — so every
variant starts from the *same* weights — and plain SGD at one learning rate. The variants
differ only in the batch size: the whole training set (batch GD), 256, 64, 16 and 1 (SGD),
each reshuffled every epoch from the same seed. Each variant is its own run (batch sizes
differ, so they cannot share a stack) and keeps its own clock: wall time is the engine's
loop time for that run alone, read at the end of every epoch, minus the time this lesson
spends evaluating the full training cost for the plots (measured and subtracted). The
cost drawn against epochs and wall time is that full training cost at each epoch's end;
the cost drawn against updates is the cost of the batch each update was computed on (the
curve the lecture shows, smooth for batch GD and noisy for SGD). Noise is the standard
deviation of the step-to-step change of that per-update cost over each run's last updates.

Sources. A. Ng, "Improving Deep Neural Networks", course 2 week 2, lectures "Mini-batch
gradient descent" and "Understanding mini-batch gradient descent" (the smooth-vs-noisy
curves and the batch-size spectrum from 1 to m); L. Bottou, "Large-Scale Machine Learning
with Stochastic Gradient Descent", COMPSTAT 2010 (§2–3: SGD's per-update cost against
batch GD's per-epoch cost); S. Ruder, "An overview of gradient descent optimization
algorithms", 2016, §2.

The quick size gives each variant a shorter budget and races to a higher cost.

Example:
    >>> from initlab.lessons import Env
    >>> facts = compute(Size(epochs=(2, 1, 1, 1, 1), target=2.0, noise_window=10), Env())
    >>> facts.runs["SGD"].updates_per_epoch, facts.runs["batch GD"].total_updates
    (1438, 2)
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from initlab import data, models
from initlab.data import BatchSize
from initlab.lessons._lesson import Env
from initlab.report import OKABE_ITO
from initlab.report.figures import WIDTH, subplots
from initlab.report.html import Report
from initlab.train import Observer, Run, TrainConfig

__all__ = ["NAME", "QUESTION", "SIZES", "TITLE", "Facts", "Size", "compute", "draw", "findings"]
__all__ += ["VariantRun"]  # a part of the facts

NAME = "batching"
TITLE = "Batch GD, SGD and mini-batch GD"
QUESTION = (
    "From the same initial weights, how do batch gradient descent, mini-batch gradient "
    "descent and SGD compare in cost per epoch, per update and per second, and in noise?"
)

WIDTHS = [64, 32, 10]  # digits: 64 pixels in, 10 classes out
ACTIVATION = "tanh"
WEIGHT_INIT = "xavier_normal"  # Glorot's init suits tanh; one seed for every variant
INIT_SEED = 0  # the same initial weights for every variant
SHUFFLE_SEED = 0  # every variant reshuffles from the same seed each epoch
LR = 0.1  # one learning rate for all variants: they differ only in the batch size
#: the variants, label → batch size ("full": the whole training set, batch GD)
BATCH_SIZES: dict[str, BatchSize] = {
    "batch GD": "full",
    "mini-batch 256": 256,
    "mini-batch 64": 64,
    "mini-batch 16": 16,
    "SGD": 1,
}
CHECKS_PER_EPOCH = 24  # at most this many full-cost evaluations per epoch …
CHECKS_PER_RUN = 150  # … and about this many per run


@dataclass(frozen=True)
class Size:
    # Each variant's epoch budget, in BATCH_SIZES' order. Budgets differ because an epoch
    # costs one update in batch GD and n in SGD; each is long enough for the variant's
    # curve to show its shape.
    epochs: tuple[int, ...]
    target: float  # the training cost every variant races to
    noise_window: int  # noise: std of the step-to-step cost change over the last updates


SIZES = {
    "quick": Size(epochs=(160, 30, 12, 4, 2), target=0.6, noise_window=100),
    "default": Size(epochs=(400, 100, 30, 10, 4), target=0.3, noise_window=200),
}


@dataclass(frozen=True)
class VariantRun:
    """One variant's run: its full training cost at checkpoints, its clock, and the
    cost of every update's own batch."""

    label: str
    batch_size: BatchSize  # "full" for batch GD, else k
    updates_per_epoch: int  # ⌈n/k⌉
    total_updates: int  # the updates the engine ran
    steps: tuple[int, ...]  # updates done at each checkpoint; [0] = 0, the initial weights
    cost: tuple[float, ...]  # the full training cost at each checkpoint
    seconds_at: tuple[float, ...]  # the run's loop time at each checkpoint; [0] = 0
    update_cost: tuple[float, ...]  # the cost of each update's own batch
    train_accuracy: float  # at the end of the budget
    test_accuracy: float
    noise: float  # std of the step-to-step change of update_cost over the last updates
    hit: int | None  # the first checkpoint whose full cost is ≤ the target (None: never)

    @property
    def epochs_run(self) -> int:
        return self.steps[-1] // self.updates_per_epoch

    @property
    def epochs(self) -> list[float]:
        """The checkpoints in epochs (fractions of a pass over the training set)."""
        return [s / self.updates_per_epoch for s in self.steps]

    @property
    def seconds(self) -> float:
        """The run's own loop time, to its end."""
        return self.seconds_at[-1]

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / self.epochs_run

    @property
    def epochs_to_target(self) -> float | None:
        return None if self.hit is None else self.epochs[self.hit]

    @property
    def updates_to_target(self) -> int | None:
        return None if self.hit is None else self.steps[self.hit]

    @property
    def seconds_to_target(self) -> float | None:
        return None if self.hit is None else self.seconds_at[self.hit]


@dataclass(frozen=True)
class Facts:
    n_train: int
    n_test: int
    target_cost: float  # the cost every variant races to
    noise_window: int  # the updates over which noise is measured
    runs: dict[str, VariantRun]  # label → run, in BATCH_SIZES' order
    fastest_to_target: str | None  # the first to the target cost in wall time

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.runs)

    @property
    def initial_cost(self) -> float:
        """The full training cost at init (every variant starts from the same weights)."""
        return next(iter(self.runs.values())).cost[0]


def setup(size: Size) -> str:
    return (
        "The same 64–32–10 tanh net, the same initial weights and the same digits, "
        f"trained with plain SGD at learning rate {LR}: only the batch size differs."
    )


def compute(size: Size, env: Env) -> Facts:
    """Train every variant from the same weights, each as its own run with its own clock."""
    ds = data.load("digits").to(device=env.device)
    runs: dict[str, VariantRun] = {}
    for (label, batch_size), epochs in zip(BATCH_SIZES.items(), size.epochs, strict=True):
        env.stage(f"{label}: {epochs} epochs")
        runs[label] = _train_variant(env, label, batch_size, epochs, ds, size)
    reached = [label for label, r in runs.items() if r.seconds_to_target is not None]
    fastest = min(
        reached, key=lambda label: runs[label].seconds_to_target or math.inf, default=None
    )
    return Facts(
        n_train=ds.n_train,
        n_test=ds.n_test,
        target_cost=size.target,
        noise_window=size.noise_window,
        runs=runs,
        fastest_to_target=fastest,
    )


def _full_cost(net: models.Stack, x: torch.Tensor, y: torch.Tensor) -> float:
    """The mean cross-entropy over the whole training set (one member)."""
    with torch.no_grad():
        return float(F.cross_entropy(net(x)[0], y))


class _Checkpoints(Observer):
    """At every stopping check: the run's own clock and its full training cost.

    ``run.elapsed`` leaves out the time spent in observers (the progress display, and
    this one evaluating the cost for the plots): it is the training's own time.
    """

    def __init__(self, net: models.Stack, x: torch.Tensor, y: torch.Tensor) -> None:
        self.net, self.x, self.y = net, x, y
        self.steps, self.cost, self.seconds_at = [0], [_full_cost(net, x, y)], [0.0]

    def on_step(self, run: Run) -> None:
        self.steps.append(run.step)
        self.seconds_at.append(run.elapsed)
        self.cost.append(_full_cost(self.net, self.x, self.y))


def _train_variant(
    env: Env, label: str, batch_size: BatchSize, epochs: int, ds: data.Dataset, size: Size
) -> VariantRun:
    """Train one variant as its own run; read its clock and its full cost at checkpoints."""
    net = models.mlp(WIDTHS, ACTIVATION, members=1, device=env.device)
    models.init_members(net, WEIGHT_INIT, seeds=INIT_SEED)
    per_epoch = data.Batcher(ds.n_train, batch_size).steps_per_epoch  # as the engine counts
    total = per_epoch * epochs
    every = max(math.ceil(per_epoch / CHECKS_PER_EPOCH), math.ceil(total / CHECKS_PER_RUN))
    checkpoints = _Checkpoints(net, ds.x_train, ds.y_train)
    config = TrainConfig(
        loss="cross_entropy",
        optimizer="sgd",
        lr=LR,
        batch_size=batch_size,
        seeds=SHUFFLE_SEED,
        epochs=epochs,
        check_every=every,  # one device read per check: the clock and the cost
    )
    result = env.train(net, ds, config, observers=[checkpoints])
    updates = result.loss[:, 0].tolist()
    member = result.members[0]
    return VariantRun(
        label=label,
        batch_size=batch_size,
        updates_per_epoch=per_epoch,
        total_updates=result.total_steps,
        steps=tuple(checkpoints.steps),
        cost=tuple(checkpoints.cost),
        seconds_at=tuple(checkpoints.seconds_at),
        update_cost=tuple(updates),
        train_accuracy=float(member.train_accuracy or 0.0),
        test_accuracy=float(member.test_accuracy or 0.0),
        noise=_noise(updates, size.noise_window),
        hit=next((i for i, c in enumerate(checkpoints.cost) if c <= size.target), None),
    )


def _noise(update_cost: list[float], window: int) -> float:
    """Std of the step-to-step change of the per-update cost over the last updates."""
    tail = update_cost[-(window + 1) :]
    diffs = [b - a for a, b in itertools.pairwise(tail)]
    return statistics.pstdev(diffs) if len(diffs) > 1 else math.nan


#: the three views of the full training cost: (x axis, figure name, caption)
_AGAINST = (
    (
        "epochs",
        "cost-vs-epochs",
        "The full training cost against epochs (fractions of an epoch at the checkpoints).",
    ),
    (
        "updates",
        "cost-vs-updates",
        "The same costs against the number of updates. Where curves lie on top of each "
        "other, an update on a small batch was worth as much as one on the whole set; where "
        "a curve lies above the others, its gradient noise cost it progress.",
    ),
    (
        "time",
        "cost-vs-time",
        "The same costs against each variant's own measured loop time (this machine, this "
        "run: the time axis changes with the machine and its load).",
    ),
)


def draw(facts: Facts, report: Report) -> None:
    """The setup, the cost against epochs, updates and time, the noise, and the table."""
    runs, target = list(facts.runs.values()), facts.target_cost
    report.section(
        "The setup",
        f"{facts.n_train} training and {facts.n_test} test digits (8×8 pixels scaled to "
        f"[0, 1]); a {'–'.join(map(str, WIDTHS))} {ACTIVATION} MLP initialized {WEIGHT_INIT} "
        f"from seed {INIT_SEED} for every variant (so the cost at init is the same for all: "
        f"{facts.initial_cost:.4f}); plain SGD at learning rate {LR}; each epoch reshuffled "
        f"from seed {SHUFFLE_SEED}. Each variant ran on its own, so its wall time is its own: "
        "the engine's loop time, read at checkpoints (at most "
        f"{CHECKS_PER_EPOCH} per epoch, about {CHECKS_PER_RUN} per run), minus the time spent "
        "evaluating the full training cost at those checkpoints for these plots (measured "
        "and subtracted). Epochs, updates and seconds to the target are read at the first "
        "checkpoint at or below it.",
    )
    report.section(
        "Cost against epochs, updates and wall time",
        "Against epochs, the question is how far one pass over the data goes: SGD updates n "
        "times in one pass, batch GD once. Against updates, it is how much an update on k "
        "examples is worth next to one on all n. Against wall time, it is updates times the "
        f"time per update. The dashed line is the target cost {target}.",
    )
    for axis, name, caption in _AGAINST:
        _draw_against(report, runs, target, axis, name, caption)
    report.section(
        "Smooth against noisy",
        "Noise is measured as the standard deviation of the change in the per-update cost "
        f"from one update to the next, over each run's last {facts.noise_window} updates.",
    )
    _draw_noisy(report, runs, min(300, min(len(r.update_cost) for r in runs)))
    report.section("Updates and time per epoch")
    _draw_per_epoch(report, runs)
    report.section(
        "The summary table",
        "Accuracy and time per variant, measured in this run. The time columns are each "
        "variant's own training-loop time on this machine: they change with the machine and "
        "its load, the other columns do not.",
    )
    report.table(
        _table_header(target),
        [_table_row(r, facts.n_train) for r in runs],
        caption="Batch GD, mini-batch GD and SGD, side by side",
    )


def _draw_against(
    report: Report, runs: list[VariantRun], target: float, axis: str, name: str, caption: str
) -> None:
    """Full training cost at the checkpoints against epochs, updates or wall time; a dot
    where each variant first reaches the target cost."""
    fig, ax = subplots(figsize=(7.2, 4.4))
    for colour, r in zip(OKABE_ITO, runs, strict=False):
        xs = {
            "epochs": r.epochs,
            "updates": [float(s) for s in r.steps],
            "time": r.seconds_at,
        }[axis]
        ax.plot(xs[1:], r.cost[1:], color=colour, linewidth=1.8, label=r.label)
        hit = r.hit
        if hit is not None:
            ax.plot([xs[hit]], [r.cost[hit]], "o", color=colour, markersize=6)
    init = runs[0].cost[0]
    ax.axhline(init, color="#777777", linestyle=":", linewidth=1.2)
    ax.axhline(target, color="#000000", linestyle="--", linewidth=1.0)
    for value, text, colour in (
        (init, f"cost at init, {init:.2f} (every variant)", "#555555"),
        (target, f"target cost {target} (dots: first reached)", "#000000"),
    ):
        ax.annotate(
            text,
            (0.01, value),
            xycoords=("axes fraction", "data"),
            ha="left",
            va="bottom",
            fontsize=8,
            color=colour,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(
        {
            "epochs": "epochs (passes over the training set, log scale)",
            "updates": "updates (weight steps, log scale)",
            "time": "wall time of the variant's own training loop (s, log scale)",
        }[axis]
    )
    ax.set_ylabel("training cost (cross-entropy, whole set)")
    ax.set_title(f"Training cost against {'wall time' if axis == 'time' else axis}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(frameon=False, fontsize=9, loc="lower left")
    report.figure(fig, name, caption)


def _draw_noisy(report: Report, runs: list[VariantRun], shown: int) -> None:
    """The lecture's picture: the per-update cost of each variant's first updates."""
    cols = min(len(runs), 3)  # three panels to a page's width keep their text readable
    rows = -(-len(runs) // cols)
    fig, grid = subplots(rows, cols, figsize=(WIDTH, 2.9 * rows + 0.6), sharey=True, squeeze=False)
    axes = grid.flat
    for ax in axes[len(runs) :]:
        ax.set_visible(False)
    for ax, colour, r in zip(axes, OKABE_ITO, runs, strict=False):
        costs = r.update_cost[:shown]
        ax.plot(range(1, len(costs) + 1), costs, color=colour, linewidth=0.8, label=r.label)
        per = r.updates_per_epoch
        ax.set_title(f"{r.label}\n({per} update{'s' if per != 1 else ''}/epoch)", fontsize=9)
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8, loc="upper right")
    for row in grid:
        row[0].set_ylabel("cost of the update's\nown batch")
    axes[0].set_ylim(bottom=0)
    fig.suptitle(f"Smooth against noisy: the cost of each of the first {shown} updates")
    report.figure(
        fig,
        "smooth-vs-noisy",
        "Each update's cost is measured on the batch it was computed from. Batch GD sees the "
        "whole set every time; the smaller the batch, the more each update's cost depends on "
        "which examples it drew, down to SGD, where it is the cost of one example.",
    )


def _draw_per_epoch(report: Report, runs: list[VariantRun]) -> None:
    """Updates per epoch, and the measured time per epoch, per variant."""
    fig, (left, right) = subplots(1, 2, figsize=(WIDTH, 4.0))
    labels = [r.label for r in runs]
    colours = list(OKABE_ITO[: len(runs)])
    bars = left.bar(labels, [r.updates_per_epoch for r in runs], color=colours)
    left.bar_label(bars, fontsize=8)
    left.set_ylabel("updates per epoch (log scale)")
    left.set_title("One epoch: how many updates")
    per_epoch_ms = [r.seconds / r.epochs_run * 1e3 for r in runs]
    bars = right.bar(labels, per_epoch_ms, color=colours)
    right.bar_label(bars, fmt="%.1f", fontsize=8)
    right.set_ylabel("wall time per epoch (ms, log scale)")
    right.set_title("One epoch: how long (measured)")
    for ax in (left, right):
        ax.set_yscale("log")
        ax.margins(y=0.15)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax.set_xlabel("variant (colours as in the other figures)")
        ax.grid(alpha=0.3, axis="y")
    report.figure(
        fig,
        "per-epoch",
        "Left: updates per epoch, ⌈n/k⌉ for batch size k and n training examples. Right: "
        "each variant's own loop time divided by its epochs (this machine, this run).",
    )


def _table_header(target: float) -> list[str]:
    return [
        "variant",
        "batch size",
        "updates / epoch",
        "epochs run",
        f"epochs to cost ≤ {target}",
        f"updates to cost ≤ {target}",
        f"seconds to cost ≤ {target}",
        "ms / epoch",
        "seconds in all",
        "final training cost",
        "train accuracy",
        "test accuracy",
        "noise (std of Δcost)",
    ]


def _table_row(r: VariantRun, n: int) -> list[Any]:
    e, u, t = r.epochs_to_target, r.updates_to_target, r.seconds_to_target
    return [
        r.label,
        n if r.batch_size == "full" else r.batch_size,
        r.updates_per_epoch,
        r.epochs_run,
        "not reached" if e is None else f"{e:.3g}",
        "—" if u is None else u,
        "—" if t is None else f"{t:.3f}",
        f"{r.seconds_per_epoch * 1e3:.2f}",
        f"{r.seconds:.3f}",
        r.cost[-1],
        f"{r.train_accuracy:.1%}",
        f"{r.test_accuracy:.1%}",
        r.noise,
    ]


def _epochs_text(r: VariantRun) -> str:
    if r.hit is None:
        return f"had not reached it after {r.epochs_run} epochs ({r.seconds:.2f} s)"
    return (
        f"needed {r.epochs[r.hit]:.3g} epochs = {r.steps[r.hit]} updates "
        f"({r.seconds_at[r.hit]:.2f} s)"
    )


def findings(facts: Facts) -> list[str]:
    runs = facts.runs
    batch, mini, sgd = runs["batch GD"], runs["mini-batch 64"], runs["SGD"]
    updates = ", ".join(
        f"{label} {'not reached' if r.updates_to_target is None else r.updates_to_target}"
        for label, r in runs.items()
    )
    fastest = facts.fastest_to_target
    return [
        f"An epoch is one pass over the {facts.n_train} training examples: SGD made "
        f"{sgd.updates_per_epoch} updates per epoch, mini-batch 64 made "
        f"{mini.updates_per_epoch} and batch GD {batch.updates_per_epoch}.",
        f"To a training cost of {facts.target_cost}: mini-batch 64 {_epochs_text(mini)}; "
        f"batch GD {_epochs_text(batch)}; SGD {_epochs_text(sgd)}.",
        f"Updates to the target cost: {updates}.",
        f"SGD's per-update cost curve was {sgd.noise / mini.noise:.1f}× noisier than "
        f"mini-batch 64's and {sgd.noise / batch.noise:.0f}× noisier than batch GD's (std of "
        f"the step-to-step cost change over the last {facts.noise_window} updates: "
        f"{sgd.noise:.3g}, {mini.noise:.3g} and {batch.noise:.3g}).",
        f"Time per epoch, measured: batch GD {batch.seconds_per_epoch * 1e3:.2f} ms, "
        f"mini-batch 64 {mini.seconds_per_epoch * 1e3:.2f} ms, SGD "
        f"{sgd.seconds_per_epoch * 1e3:.1f} ms"
        + (
            f"; the first to the target cost in wall time was {fastest} "
            f"({runs[fastest].seconds_to_target or 0.0:.2f} s)."
            if fastest is not None
            else "."
        ),
        f"Test accuracy at the end of each budget: batch GD {batch.test_accuracy:.1%} after "
        f"{batch.epochs_run} epochs, mini-batch 64 {mini.test_accuracy:.1%} after "
        f"{mini.epochs_run}, SGD {sgd.test_accuracy:.1%} after {sgd.epochs_run}.",
    ]
