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
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from initlab import data, models
from initlab.data import BatchSize
from initlab.lessons._lesson import Context, Lesson, LessonProgress, pyplot
from initlab.report import OKABE_ITO
from initlab.train import Progress, TrainConfig, TrainResult

__all__ = ["run"]

NAME = "batching"
TITLE = "Batch GD, SGD and mini-batch GD"

WIDTHS = [64, 32, 10]  # digits: 64 pixels in, 10 classes out
ACTIVATION = "tanh"
WEIGHT_INIT = "xavier_normal"  # Glorot's init suits tanh; one seed for every variant
INIT_SEED = 0  # the same initial weights for every variant
SHUFFLE_SEED = 0  # every variant reshuffles from the same seed each epoch
LR = 0.1  # one learning rate for all variants: they differ only in the batch size
NOISE_WINDOW = 200  # noise = std of the step-to-step cost change over the last updates


@dataclass(frozen=True)
class _Variant:
    label: str
    batch_size: BatchSize  # "full" for batch GD, else k
    epochs: int  # its budget


def _variants(quick: bool) -> list[_Variant]:
    """The batch sizes, each with an epoch budget that keeps the lesson short.

    Budgets differ because an epoch costs one update in batch GD and n in SGD; each is
    long enough for the variant's curve to show its shape.
    """
    if quick:
        return [
            _Variant("batch GD", "full", 160),
            _Variant("mini-batch 256", 256, 30),
            _Variant("mini-batch 64", 64, 12),
            _Variant("mini-batch 16", 16, 4),
            _Variant("SGD", 1, 2),
        ]
    return [
        _Variant("batch GD", "full", 400),
        _Variant("mini-batch 256", 256, 100),
        _Variant("mini-batch 64", 64, 30),
        _Variant("mini-batch 16", 16, 10),
        _Variant("SGD", 1, 4),
    ]


CHECKS_PER_EPOCH = 24  # at most this many full-cost evaluations per epoch …
CHECKS_PER_RUN = 150  # … and about this many per run


@dataclass(frozen=True)
class _Run:
    """One variant's run: its full training cost at checkpoints, its clock, and the
    cost of every update's own batch."""

    variant: _Variant
    updates_per_epoch: int
    steps: list[int]  # updates done at each checkpoint; [0] = 0, the initial weights
    cost: list[float]  # the full training cost at each checkpoint
    seconds_at: list[float]  # the run's loop time at each checkpoint; [0] = 0
    update_cost: list[float]  # the cost of each update's own batch
    result: TrainResult

    @property
    def epochs_run(self) -> int:
        return self.steps[-1] // self.updates_per_epoch

    @property
    def epochs(self) -> list[float]:
        """The checkpoints in epochs (fractions of a pass over the training set)."""
        return [s / self.updates_per_epoch for s in self.steps]

    @property
    def seconds(self) -> float:
        return self.seconds_at[-1]

    def first_below(self, target: float) -> int | None:
        """The first checkpoint whose full training cost is ≤ target (None: never)."""
        return next((i for i, c in enumerate(self.cost) if c <= target), None)

    def noise(self, window: int) -> float:
        """Std of the step-to-step change of the per-update cost over the last updates."""
        tail = self.update_cost[-(window + 1) :]
        diffs = [b - a for a, b in itertools.pairwise(tail)]
        return statistics.pstdev(diffs) if len(diffs) > 1 else math.nan


def _full_cost(net: models.Stack, x: torch.Tensor, y: torch.Tensor) -> float:
    """The mean cross-entropy over the whole training set (one member)."""
    with torch.no_grad():
        return float(F.cross_entropy(net(x)[0], y))


def _train_variant(
    ctx: Context, variant: _Variant, ds: data.Dataset, x: torch.Tensor, y: torch.Tensor
) -> _Run:
    """Train one variant as its own run; read its clock and its full cost at checkpoints."""
    net = models.mlp(WIDTHS, ACTIVATION, members=1, device=ctx.device)
    models.init_members(net, WEIGHT_INIT, seeds=INIT_SEED)
    n = ds.n_train
    per_epoch = 1 if variant.batch_size == "full" else math.ceil(n / int(variant.batch_size))
    total = per_epoch * variant.epochs
    every = max(math.ceil(per_epoch / CHECKS_PER_EPOCH), math.ceil(total / CHECKS_PER_RUN))
    steps, cost, seconds_at = [0], [_full_cost(net, x, y)], [0.0]
    spent_evaluating = 0.0

    def at_check(report: Progress) -> None:
        # The engine reports at every check (every `every` updates, and at the end). Its
        # own clock is step / steps_per_second; the time spent here is subtracted.
        nonlocal spent_evaluating
        started = time.perf_counter()
        steps.append(report.step)
        seconds_at.append(report.step / report.steps_per_second - spent_evaluating)
        cost.append(_full_cost(net, x, y))
        if ctx.progress is not None:
            ctx.progress(report)
        spent_evaluating += time.perf_counter() - started

    config = TrainConfig(
        loss="cross_entropy",
        optimizer="sgd",
        lr=LR,
        batch_size=variant.batch_size,
        seeds=SHUFFLE_SEED,
        epochs=variant.epochs,
        check_every=every,  # one device read per check: the clock and the cost
    )
    result = ctx.train(net, ds, config, progress=at_check)
    updates = result.loss[:, 0].tolist()
    return _Run(variant, per_epoch, steps, cost, seconds_at, updates, result)


def _draw_against(
    ctx: Context, runs: list[_Run], target: float, axis: str, name: str, caption: str
) -> None:
    """Full training cost at the checkpoints against epochs, updates or wall time; a dot
    where each variant first reaches the target cost."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 4.4), dpi=120)
    for colour, r in zip(OKABE_ITO, runs, strict=False):
        xs = {
            "epochs": r.epochs,
            "updates": [float(s) for s in r.steps],
            "time": r.seconds_at,
        }[axis]
        ax.plot(xs[1:], r.cost[1:], color=colour, linewidth=1.8, label=r.variant.label)
        hit = r.first_below(target)
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
    ctx.figure(fig, name, caption)


def _draw_noisy(ctx: Context, runs: list[_Run], shown: int) -> None:
    """The lecture's picture: the per-update cost of each variant's first updates."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(runs), figsize=(3.0 * len(runs), 3.4), dpi=120, sharey=True)
    for ax, colour, r in zip(axes, OKABE_ITO, runs, strict=False):
        costs = r.update_cost[:shown]
        ax.plot(range(1, len(costs) + 1), costs, color=colour, linewidth=0.8, label=r.variant.label)
        per = r.updates_per_epoch
        ax.set_title(
            f"{r.variant.label}\n({per} update{'s' if per != 1 else ''}/epoch)", fontsize=9
        )
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8, loc="upper right")
    axes[0].set_ylabel("cost of the update's own batch")
    axes[0].set_ylim(bottom=0)
    fig.suptitle(f"Smooth against noisy: the cost of each of the first {shown} updates")
    ctx.figure(
        fig,
        "smooth-vs-noisy",
        "Each update's cost is measured on the batch it was computed from. Batch GD sees the "
        "whole set every time; the smaller the batch, the more each update's cost depends on "
        "which examples it drew, down to SGD, where it is the cost of one example.",
    )


def _draw_per_epoch(ctx: Context, runs: list[_Run]) -> None:
    """Updates per epoch, and the measured time per epoch, per variant."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.8), dpi=120)
    labels = [r.variant.label for r in runs]
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
    ctx.figure(
        fig,
        "per-epoch",
        "Left: updates per epoch, ⌈n/k⌉ for batch size k and n training examples. Right: "
        "each variant's own loop time divided by its epochs (this machine, this run).",
    )


def _epochs_text(r: _Run, hit: int | None) -> str:
    if hit is None:
        return f"had not reached it after {r.epochs_run} epochs ({r.seconds:.2f} s)"
    epochs = r.epochs[hit]
    return f"needed {epochs:.3g} epochs = {r.steps[hit]} updates ({r.seconds_at[hit]:.2f} s)"


def run(
    out: str | Path | None = None,
    *,
    quick: bool = False,
    device: str = "cpu",
    progress: LessonProgress | None = None,
) -> Lesson:
    """Batch GD vs SGD vs mini-batch GD on the digits, from the same initial weights.

    Args:
        out: folder for ``index.html`` and the PNGs, or None to keep them in memory.
        quick: shorter budgets (the tests' mode).
        device: ``"cpu"`` or ``"cuda"``.
        progress: a progress display, told each stage and fed the engine's reports.

    Returns:
        The :class:`~initlab.lessons.Lesson`: findings, facts, figures, report.

    Raises:
        ValueError: a device that is not available.
    """
    ctx = Context(
        NAME,
        TITLE,
        out,
        quick=quick,
        device=device,
        progress=progress,
        subtitle=(
            "The same 64–32–10 tanh net, the same initial weights and the same digits, "
            f"trained with plain SGD at learning rate {LR}: only the batch size differs."
        ),
    )
    target = 0.6 if quick else 0.3  # the training cost every variant races to
    ds = data.load("digits").to(device=ctx.device)
    x, y = ds.x_train, ds.y_train
    n = ds.n_train

    runs = []
    for variant in _variants(quick):
        ctx.stage(f"{variant.label}: {variant.epochs} epochs")
        runs.append(_train_variant(ctx, variant, ds, x, y))
    by_label = {r.variant.label: r for r in runs}
    batch, mini, sgd = by_label["batch GD"], by_label["mini-batch 64"], by_label["SGD"]

    ctx.stage("drawing")
    window = NOISE_WINDOW // 2 if quick else NOISE_WINDOW
    noise = {r.variant.label: r.noise(window) for r in runs}
    hits = {r.variant.label: r.first_below(target) for r in runs}

    def at_hit(label: str, what: str) -> float | None:
        r, hit = by_label[label], hits[label]
        if hit is None:
            return None
        series: dict[str, list[float]] = {
            "epochs": r.epochs,
            "updates": [float(s) for s in r.steps],
            "seconds": r.seconds_at,
        }
        return series[what][hit]

    epochs_to = {label: at_hit(label, "epochs") for label in by_label}
    updates_to = {label: at_hit(label, "updates") for label in by_label}
    seconds_to = {label: at_hit(label, "seconds") for label in by_label}
    test_acc = {r.variant.label: float(r.result.members[0].test_accuracy or 0.0) for r in runs}
    train_acc = {r.variant.label: float(r.result.members[0].train_accuracy or 0.0) for r in runs}
    per_epoch_s = {r.variant.label: r.seconds / r.epochs_run for r in runs}

    ctx.report.section(
        "The setup",
        f"{n} training and {ds.n_test} test digits (8×8 pixels scaled to [0, 1]); a "
        f"{'–'.join(map(str, WIDTHS))} {ACTIVATION} MLP initialized {WEIGHT_INIT} from seed "
        f"{INIT_SEED} for every variant (so the cost at init is the same for all: "
        f"{runs[0].cost[0]:.4f}); plain SGD at learning rate {LR}; each epoch reshuffled "
        f"from seed {SHUFFLE_SEED}. Each variant ran on its own, so its wall time is its own: "
        "the engine's loop time, read at checkpoints (at most "
        f"{CHECKS_PER_EPOCH} per epoch, about {CHECKS_PER_RUN} per run), minus the time spent "
        "evaluating the full training cost at those checkpoints for these plots (measured "
        "and subtracted). Epochs, updates and seconds to the target are read at the first "
        "checkpoint at or below it.",
    )
    ctx.report.section(
        "Cost against epochs, updates and wall time",
        "Against epochs, the question is how far one pass over the data goes: SGD updates n "
        "times in one pass, batch GD once. Against updates, it is how much an update on k "
        "examples is worth next to one on all n. Against wall time, it is updates times the "
        f"time per update. The dashed line is the target cost {target}.",
    )
    _draw_against(
        ctx,
        runs,
        target,
        "epochs",
        "cost-vs-epochs",
        "The full training cost against epochs (fractions of an epoch at the checkpoints).",
    )
    _draw_against(
        ctx,
        runs,
        target,
        "updates",
        "cost-vs-updates",
        "The same costs against the number of updates. Where curves lie on top of each "
        "other, an update on a small batch was worth as much as one on the whole set; where "
        "a curve lies above the others, its gradient noise cost it progress.",
    )
    _draw_against(
        ctx,
        runs,
        target,
        "time",
        "cost-vs-time",
        "The same costs against each variant's own measured loop time (this machine, this "
        "run: the time axis changes with the machine and its load).",
    )
    ctx.report.section(
        "Smooth against noisy",
        "Noise is measured as the standard deviation of the change in the per-update cost "
        f"from one update to the next, over each run's last {window} updates.",
    )
    shown = min(300, min(len(r.update_cost) for r in runs))
    _draw_noisy(ctx, runs, shown)
    ctx.report.section("Updates and time per epoch")
    _draw_per_epoch(ctx, runs)

    header = [
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
    rows: list[list[Any]] = []
    for r in runs:
        label = r.variant.label
        e, u, t = epochs_to[label], updates_to[label], seconds_to[label]
        rows.append(
            [
                label,
                n if r.variant.batch_size == "full" else r.variant.batch_size,
                r.updates_per_epoch,
                r.epochs_run,
                "not reached" if e is None else f"{e:.3g}",
                "—" if u is None else int(u),
                "—" if t is None else f"{t:.3f}",
                f"{per_epoch_s[label] * 1e3:.2f}",
                f"{r.seconds:.3f}",
                r.cost[-1],
                f"{train_acc[label]:.1%}",
                f"{test_acc[label]:.1%}",
                noise[label],
            ]
        )
    ctx.report.section(
        "The summary table",
        "Accuracy and time per variant, measured in this run. The time columns are each "
        "variant's own training-loop time on this machine: they change with the machine and "
        "its load, the other columns do not.",
    )
    ctx.report.table(header, rows, caption="Batch GD, mini-batch GD and SGD, side by side")

    reached = [label for label in by_label if seconds_to[label] is not None]
    fastest = min(reached, key=lambda label: seconds_to[label] or math.inf, default=None)
    updates_list = ", ".join(
        f"{label} {'not reached' if updates_to[label] is None else int(updates_to[label] or 0)}"
        for label in by_label
    )
    findings = [
        f"An epoch is one pass over the {n} training examples: SGD made "
        f"{sgd.updates_per_epoch} updates per epoch, mini-batch 64 made "
        f"{mini.updates_per_epoch} and batch GD {batch.updates_per_epoch}.",
        f"To a training cost of {target}: mini-batch 64 "
        f"{_epochs_text(mini, hits['mini-batch 64'])}; batch GD "
        f"{_epochs_text(batch, hits['batch GD'])}; SGD {_epochs_text(sgd, hits['SGD'])}.",
        f"Updates to the target cost: {updates_list}.",
        f"SGD's per-update cost curve was {noise['SGD'] / noise['mini-batch 64']:.1f}× "
        f"noisier than mini-batch 64's and {noise['SGD'] / noise['batch GD']:.0f}× noisier "
        f"than batch GD's (std of the step-to-step cost change over the last {window} "
        f"updates: {noise['SGD']:.3g}, {noise['mini-batch 64']:.3g} and "
        f"{noise['batch GD']:.3g}).",
        f"Time per epoch, measured: batch GD {per_epoch_s['batch GD'] * 1e3:.2f} ms, "
        f"mini-batch 64 {per_epoch_s['mini-batch 64'] * 1e3:.2f} ms, SGD "
        f"{per_epoch_s['SGD'] * 1e3:.1f} ms"
        + (
            f"; the first to the target cost in wall time was {fastest} "
            f"({seconds_to[fastest] or 0.0:.2f} s)."
            if fastest is not None
            else "."
        ),
        f"Test accuracy at the end of each budget: batch GD {test_acc['batch GD']:.1%} after "
        f"{batch.epochs_run} epochs, mini-batch 64 {test_acc['mini-batch 64']:.1%} after "
        f"{mini.epochs_run}, SGD {test_acc['SGD']:.1%} after {sgd.epochs_run}.",
    ]
    facts: dict[str, Any] = {
        "n_train": n,
        "target_cost": target,
        "labels": list(by_label),
        "batch_sizes": {r.variant.label: r.variant.batch_size for r in runs},
        "updates_per_epoch": {r.variant.label: r.updates_per_epoch for r in runs},
        "epochs_run": {r.variant.label: r.epochs_run for r in runs},
        "total_updates": {r.variant.label: r.result.total_steps for r in runs},
        "initial_cost": {r.variant.label: r.cost[0] for r in runs},
        "checkpoint_updates": {r.variant.label: r.steps for r in runs},
        "checkpoint_cost": {r.variant.label: r.cost for r in runs},
        "checkpoint_seconds": {r.variant.label: r.seconds_at for r in runs},
        "seconds": {r.variant.label: r.seconds for r in runs},
        "seconds_per_epoch": per_epoch_s,
        "epochs_to_target": epochs_to,
        "updates_to_target": updates_to,
        "seconds_to_target": seconds_to,
        "fastest_to_target": fastest,
        "noise": noise,
        "noise_window": window,
        "final_cost": {r.variant.label: r.cost[-1] for r in runs},
        "train_accuracy": train_acc,
        "test_accuracy": test_acc,
    }
    return ctx.finish(findings, facts)
