"""Lesson 8, chaos: the edge of chaos and how deep a tanh net can be trained.

What it teaches. Draw a deep tanh net's weights from N(0, σ_w²/fan_in) and its biases
from N(0, σ_b²). In the wide limit every layer's pre-activations are Gaussian with a
second moment q that settles at a fixed point q*, and two inputs' correlation c follows
a map whose slope at c = 1 is χ₁ = σ_w² E[φ'(√q* z)²] (Poole et al. 2016). For χ₁ < 1
(the *ordered* phase, small σ_w²) every input is driven to the same output and the
gradient shrinks by √χ₁ per layer going backward; for χ₁ > 1 (the *chaotic* phase) nearby
inputs are torn apart and the gradient grows. Correlations, and with them the
information a net could learn from, survive about ξ_c = −1/ln χ_c layers, where χ_c is
the map's slope at its stable correlation c*; ξ_c diverges at the edge of chaos,
χ₁ = 1. Schoenholz et al. (2017) found that nets train only when they are shallower
than about 6ξ_c: arbitrarily deep nets train only at the edge.

The setup. tanh, σ_b² = 0.05. The theory (:mod:`initlab.meanfield`): q*, χ₁ and ξ_c
against σ_w², and the critical σ_w² where χ₁ = 1. The experiment: MLPs of width 64 on an
MNIST subset (standardized), one stack per depth whose members are the σ_w² of a grid
(the critical one included), each trained by plain SGD for a few hundred steps; a net is
*trainable* when its final training accuracy is at least half-way from chance to the
best accuracy of the whole grid. Before training, :func:`initlab.probe.probe` measures
each deepest net's per-layer gradient factor, whose square is the measured χ₁. The
trainability heatmap has 6ξ_c drawn over it. Few steps reach only moderate depths, so the
grid stops where the lesson's time budget does.

Sources. B. Poole, S. Lahiri, M. Raghu, J. Sohl-Dickstein & S. Ganguli, "Exponential
expressivity in deep neural networks through transient chaos", NeurIPS 2016, §2–3
(the q- and c-maps, χ₁, the order-to-chaos transition); S. Schoenholz, J. Gilmer, S.
Ganguli & J. Sohl-Dickstein, "Deep Information Propagation", ICLR 2017, §3 (the depth
scales ξ_q and ξ_c, eq. 9), §4 (the backward pass: gradients vanish or explode by χ₁ per
layer) and §5 (trainability on MNIST and CIFAR-10 up to a depth of about 6ξ_c).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from initlab import data, meanfield, models
from initlab.lessons._lesson import Context, Lesson, LessonProgress, pyplot
from initlab.probe import probe
from initlab.report import OKABE_ITO
from initlab.train import TrainConfig

__all__ = ["run"]

NAME = "chaos"
TITLE = "The edge of chaos: how deep a tanh net can train"

ACTIVATION = "tanh"
SIGMA_B2 = 0.05  # the bias variance of Schoenholz et al.'s Fig. 1 and of the trainability grid
WIDTH = 64  # hidden units per layer
BATCH = 64  # SGD mini-batch
LR = 0.01  # plain SGD, one learning rate for every member
SHUFFLE_SEED = 0  # every member sees the same batches
INIT_SEED = 0  # member m is initialized from seed INIT_SEED + m
DEPTH_RULE = 6.0  # Schoenholz et al.: trainable up to about 6 ξ_c
CURVE_RANGE = (0.8, 4.5)  # the σ_w² range of the theory curves


@dataclass(frozen=True)
class _Size:
    """How big the experiment is: the full run, or the quick one for tests."""

    sigma_w2: tuple[float, ...]  # the grid's σ_w², the critical one added
    depths: tuple[int, ...]  # hidden layers of each stack
    steps: int  # SGD steps per stack
    n_train: int  # MNIST training examples
    curve_points: int  # σ_w² points on each side of the critical one, for the curves


FULL = _Size(
    sigma_w2=(1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0),
    depths=(10, 20, 30, 45, 60),
    steps=300,
    n_train=2000,
    curve_points=20,
)
QUICK = _Size(
    sigma_w2=(1.0, 1.5, 2.5, 4.0),
    depths=(8, 30),
    steps=100,
    n_train=1000,
    curve_points=8,
)


def _weight_spec(sigma_w2: float) -> str:
    """N(0, σ_w²/fan_in), as an init spec."""
    return f"variance_scaling(scale={sigma_w2!r}, mode='fan_in', distribution='normal')"


def _depth_text(depth: int) -> str:
    return f"{depth} layers" if depth > 0 else "no depth tried"


def _xi_text(xi: float) -> str:
    if math.isinf(xi):
        return "∞"
    return f"{xi:.1e}" if xi >= 1e4 else f"{xi:.1f}"


def _edges(centres: list[float], *, log: bool = False) -> np.ndarray:
    """Cell edges half-way between grid values, the outer cells mirrored (in log space
    with ``log``, for a log axis)."""
    c = np.asarray(centres, dtype=np.float64)
    if log:
        edges: np.ndarray = np.exp(_edges(list(np.log(c))))
        return edges
    if len(c) == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])


def run(
    out: str | Path | None = None,
    *,
    quick: bool = False,
    device: str = "cpu",
    progress: LessonProgress | None = None,
) -> Lesson:
    """Run the lesson: mean-field χ₁ and ξ_c against σ_w², and a trainability grid.

    Args:
        out: the folder for the report and figures; None keeps them in memory.
        quick: a smaller grid (fewer σ_w², two depths, fewer steps), for tests.
        device: ``"cpu"`` or ``"cuda"``.
        progress: a progress display, told each stage and fed the engine's reports.

    Returns:
        The :class:`~initlab.lessons.Lesson`; ``facts`` holds the critical σ_w², the grid's
        χ₁ (theory and measured), ξ_c and q*, the accuracy of every (depth, σ_w²) cell,
        the threshold and the deepest trainable depth per σ_w².

    Raises:
        ValueError: a device that is not there (e.g. ``"cuda"`` without a GPU).
    """
    size = QUICK if quick else FULL
    ctx = Context(
        NAME,
        TITLE,
        out,
        quick=quick,
        device=device,
        progress=progress,
        subtitle=(
            f"Mean-field theory of deep {ACTIVATION} nets at σ_b² = {SIGMA_B2:g} (Poole et al. "
            "2016; Schoenholz et al. 2017) and a depth × σ_w² trainability grid on MNIST, one "
            "stack per depth."
        ),
    )
    plt = pyplot()

    # ------------------------------------------------------------ 1. the theory
    ctx.stage("mean-field theory: the critical σ_w², χ₁, ξ_c and q*")
    critical = meanfield.critical_sigma_w2(ACTIVATION, SIGMA_B2)
    chi_critical = meanfield.chi1(ACTIVATION, critical, SIGMA_B2)
    grid = sorted([*size.sigma_w2, critical])
    at_critical = grid.index(critical)
    q_star = [meanfield.fixed_point(ACTIVATION, s, SIGMA_B2) for s in grid]
    chi = [meanfield.chi1(ACTIVATION, s, SIGMA_B2) for s in grid]
    xi = [meanfield.correlation_depth(ACTIVATION, s, SIGMA_B2) for s in grid]

    # Dense near the edge, where ξ_c changes fastest; never exactly on it (ξ_c = ∞).
    low, high = CURVE_RANGE
    n = size.curve_points
    below = critical - (critical - low) * np.linspace(1.0, 0.0, n, endpoint=False) ** 2
    above = critical + (high - critical) * np.linspace(0.0, 1.0, n + 1)[1:] ** 2
    curve_w2 = np.concatenate([below, above])
    curve_chi = np.array([meanfield.chi1(ACTIVATION, s, SIGMA_B2) for s in curve_w2])
    curve_q = np.array([meanfield.fixed_point(ACTIVATION, s, SIGMA_B2) for s in curve_w2])
    curve_xi = np.array([meanfield.correlation_depth(ACTIVATION, s, SIGMA_B2) for s in curve_w2])

    # ------------------------------------------------------------ 2. trainability
    ctx.stage("loading MNIST")
    mnist, _ = data.scale(data.load("mnist", limit=size.n_train), per_feature=False)
    chance = 1.0 / mnist.num_classes
    specs = [_weight_spec(s) for s in grid]
    bias_spec = f"normal(std={math.sqrt(SIGMA_B2)!r})"
    accuracy = np.zeros((len(size.depths), len(grid)))
    losses: dict[int, np.ndarray] = {}
    grad_profiles: list[list[float]] = []
    deepest = max(size.depths)
    for row, depth in enumerate(size.depths):
        ctx.stage(f"training the depth-{depth} stack: {len(grid)} σ_w² values as members")
        widths = [mnist.x_train.shape[1], *[WIDTH] * depth, mnist.num_classes]
        net = models.mlp(widths, ACTIVATION, members=len(grid), device=ctx.device)
        models.init_members(net, specs, bias_spec, seeds=INIT_SEED)
        if depth == deepest:
            reports = probe(
                net,
                mnist.x_train[: 4 * BATCH].to(ctx.device),
                histograms=False,
                forecast=False,
            )
            assert isinstance(reports, list)  # a stack gives one report per member
            grad_profiles = [[s.grad_rms for s in r.layers[:depth]] for r in reports]
        result = ctx.train(
            net,
            mnist,
            TrainConfig(
                optimizer="sgd", lr=LR, batch_size=BATCH, steps=size.steps, seeds=SHUFFLE_SEED
            ),
        )
        for col, member in enumerate(result.members):
            acc = member.train_accuracy
            ok = member.status != "diverged" and acc is not None and math.isfinite(acc)
            accuracy[row, col] = float(acc) if ok and acc is not None else chance
        losses[depth] = result.loss.double().numpy()

    best = float(accuracy.max())
    threshold = chance + 0.5 * (best - chance)
    trainable = accuracy >= threshold
    deepest_trainable = [
        max((d for d, ok in zip(size.depths, trainable[:, c], strict=True) if ok), default=0)
        for c in range(len(grid))
    ]
    rule = np.array([[d <= DEPTH_RULE * x for x in xi] for d in size.depths])
    agree = int((rule == trainable).sum())

    # χ₁ measured: the square of the per-layer gradient factor of the deepest nets at init,
    # over their upper three quarters (q has settled at q* by then).
    start = deepest // 4
    chi_measured: list[float] = []
    for profile in grad_profiles:
        values = np.log(np.asarray(profile[start:][::-1], dtype=np.float64))
        if np.all(np.isfinite(values)):
            slope = float(np.polyfit(np.arange(len(values)), values, 1)[0])
            chi_measured.append(math.exp(2 * slope))
        else:
            chi_measured.append(math.nan)

    # ------------------------------------------------------------ report: theory
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    ax = axes[0]
    ax.plot(curve_w2, curve_q, color=OKABE_ITO[0], lw=2, label="q* (theory)")
    ax.set_ylabel("q*, the fixed point of E[h²]")
    ax.set_title("Length: the q-map's fixed point")
    ax = axes[1]
    ax.plot(curve_w2, curve_chi, color=OKABE_ITO[0], lw=2, label="χ₁ (theory)")
    ax.plot(
        grid,
        chi_measured,
        "o",
        color=OKABE_ITO[3],
        ms=6,
        label=f"χ₁ measured by the probe ({deepest} layers)",
    )
    ax.axhline(1.0, color="grey", lw=1, ls=":")
    ax.set_ylabel("χ₁ = σ_w² E[φ′(h)²]")
    ax.set_title("χ₁: the gradient's squared per-layer factor")
    ax = axes[2]
    ax.plot(curve_w2, curve_xi, color=OKABE_ITO[0], lw=2, label="ξ_c (theory)")
    ax.plot(
        grid,
        [x if math.isfinite(x) else np.nan for x in xi],
        "s",
        color=OKABE_ITO[2],
        ms=6,
        label="grid's σ_w²",
    )
    ax.set_yscale("log")
    ax.set_ylim(1, 1e3)
    ax.set_ylabel("ξ_c (layers)")
    ax.set_title("ξ_c: the depth correlations survive")
    for ax in axes:
        ax.axvline(critical, color=OKABE_ITO[1], lw=1.5, ls="--", label=f"critical {critical:.3f}")
        ax.set_xlabel("σ_w² (weight variance × fan_in)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Mean-field theory of deep {ACTIVATION} nets at σ_b² = {SIGMA_B2:g}")
    ctx.report.section(
        "The theory: order, chaos and the depth scale ξ_c",
        f"For {ACTIVATION} with σ_b² = {SIGMA_B2:g}, the q-map's fixed point q*, the slope χ₁ "
        "and the correlation depth ξ_c from initlab.meanfield. Below the critical σ_w² "
        "(ordered phase) χ₁ < 1: gradients vanish; above it (chaotic phase) χ₁ > 1: they "
        "explode. The dots are χ₁ measured in the deepest nets of the grid before training, "
        "as the square of the gradient's per-layer factor.",
    )
    ctx.figure(
        fig,
        "theory",
        f"q*, χ₁ and ξ_c against σ_w² for {ACTIVATION} at σ_b² = {SIGMA_B2:g}; the dashed "
        "line marks the edge of chaos, where χ₁ = 1 and ξ_c diverges.",
    )

    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    colours = plt.get_cmap("cividis")(np.linspace(0.0, 0.95, len(grid)))
    layers = np.arange(1, deepest + 1)
    for c, (s, profile) in enumerate(zip(grid, grad_profiles, strict=True)):
        label = f"σ_w² = {s:.3g}" + (" (critical)" if c == at_critical else "")
        lw = 2.6 if c == at_critical else 1.4
        ax.plot(layers, profile, color=colours[c], lw=lw, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("hidden layer (1 = next to the input)")
    ax.set_ylabel("RMS of the gradient ∂loss/∂h")
    ax.set_title(f"The gradient through the {deepest}-layer nets at init, per σ_w²")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ctx.figure(
        fig,
        "gradients",
        "Measured by the probe (N(0, 1) output gradient). Read right to left, the way the "
        "gradient travels: it shrinks in the ordered phase and grows in the chaotic one.",
    )

    ctx.report.table(
        ["σ_w²", "q*", "χ₁ theory", "χ₁ measured", "ξ_c", "6 ξ_c", "deepest trainable"],
        [
            [
                f"{s:.3f}" + (" (critical)" if c == at_critical else ""),
                q_star[c],
                chi[c],
                chi_measured[c],
                _xi_text(xi[c]),
                _xi_text(DEPTH_RULE * xi[c]),
                deepest_trainable[c] if deepest_trainable[c] else "none",
            ]
            for c, s in enumerate(grid)
        ],
        caption=f"The grid's σ_w²: theory, measurement, and the deepest net of depths "
        f"{', '.join(map(str, size.depths))} that trained.",
    )

    # ------------------------------------------------------------ report: trainability
    fig, ax = plt.subplots(figsize=(9, 5.2))
    x_edges, y_edges = _edges(grid), _edges([float(d) for d in size.depths], log=True)
    mesh = ax.pcolormesh(x_edges, y_edges, accuracy, cmap="viridis", vmin=0.0, vmax=1.0)
    for r, depth in enumerate(size.depths):
        for c, s in enumerate(grid):
            value = accuracy[r, c]
            ax.text(
                s,
                depth,
                f"{value:.0%}",
                ha="center",
                va="center",
                fontsize=8,
                color="black" if value > 0.6 else "white",
                fontweight="bold" if trainable[r, c] else "normal",
            )
    import matplotlib.patheffects as effects

    stroke = [effects.withStroke(linewidth=4, foreground="black")]
    inside = (curve_w2 >= x_edges[0]) & (curve_w2 <= x_edges[-1])
    ax.plot(
        curve_w2[inside],
        np.minimum(DEPTH_RULE * curve_xi[inside], 10 * y_edges[-1]),
        color="white",
        lw=2,
        ls="--",
        path_effects=stroke,
        label="6 ξ_c (Schoenholz et al.)",
    )
    # The measured boundary: along the top of each column's deepest trainable cell.
    tops = [y_edges[list(size.depths).index(d) + 1] if d else y_edges[0] for d in deepest_trainable]
    ax.stairs(
        tops,
        x_edges,
        baseline=None,
        color=OKABE_ITO[1],
        lw=3,
        path_effects=stroke,
        label="deepest trainable depth (measured)",
    )
    ax.axvline(critical, color=OKABE_ITO[4], lw=1.5, ls=":", label=f"critical σ_w² {critical:.3f}")
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_yscale("log")
    ax.set_ylim(y_edges[0], y_edges[-1])
    ax.set_yticks(list(size.depths), [str(d) for d in size.depths])
    ax.minorticks_off()
    ax.set_xlabel("σ_w² (weight variance × fan_in)")
    ax.set_ylabel("depth (hidden layers, log scale)")
    ax.set_title(f"Training accuracy after {size.steps} SGD steps, per depth and σ_w²")
    fig.colorbar(mesh, ax=ax, label="training accuracy")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
    ctx.report.section(
        "Trainability: depth × σ_w²",
        f"One stack per depth ({', '.join(map(str, size.depths))} hidden layers of {WIDTH}), "
        f"its {len(grid)} members the σ_w² of the grid, biases N(0, {SIGMA_B2:g}); each trained "
        f"by SGD (learning rate {LR:g}, batch {BATCH}) for {size.steps} steps on "
        f"{mnist.n_train} standardized MNIST digits. A cell counts as trainable (bold) when "
        f"its training accuracy reaches {threshold:.0%}, half-way from chance "
        f"({chance:.0%}) to the grid's best ({best:.0%}). The dashed curve is 6ξ_c, the "
        "depth up to which Schoenholz et al. found nets trainable; with few steps the "
        "deepest nets here are limited by the budget too, so near the edge the measured "
        "depth stays below the curve.",
    )
    ctx.figure(
        fig,
        "trainability",
        "Training accuracy of every (depth, σ_w²) cell, the deepest trainable depth per "
        "σ_w² (orange steps: the top of the deepest cell that trained) and 6ξ_c (dashed).",
    )

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    show = [0, at_critical, len(grid) - 1]
    for ax, depth in zip(axes, (min(size.depths), deepest), strict=True):
        curves = losses[depth]
        window = max(1, min(20, curves.shape[0] // 5))
        kernel = np.ones(window) / window
        for c in show:
            smooth = np.convolve(curves[:, c], kernel, mode="valid")
            label = f"σ_w² = {grid[c]:.3g}" + (" (critical)" if c == at_critical else "")
            ax.plot(
                np.arange(window - 1, curves.shape[0]), smooth, color=colours[c], lw=2, label=label
            )
        ax.axhline(math.log(mnist.num_classes), color="grey", ls=":", lw=1, label="ln 10 (chance)")
        ax.set_title(f"{depth} hidden layers")
        ax.set_xlabel("SGD step")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"training loss ({window}-step average, nats)")
    axes[1].legend(fontsize=8)
    fig.suptitle("Loss curves at the grid's ends and at the edge of chaos")
    ctx.figure(
        fig,
        "losses",
        "Training loss of the shallowest and the deepest stack, for the smallest, the "
        "critical and the largest σ_w².",
    )

    # ------------------------------------------------------------ findings
    lo, hi = 0, len(grid) - 1
    findings = [
        f"For {ACTIVATION} at σ_b² = {SIGMA_B2:g} the edge of chaos is at σ_w² = {critical:.3f}, "
        f"where χ₁ = {chi_critical:.4f}; gradients shrink on one side (χ₁ = {chi[lo]:.2f} at "
        f"σ_w² = {grid[lo]:g}) and grow on the other ({chi[hi]:.2f} at {grid[hi]:g}). The probe "
        f"measured χ₁ = {chi_measured[lo]:.2f}, {chi_measured[at_critical]:.2f} and "
        f"{chi_measured[hi]:.2f} in the {deepest}-layer nets.",
        f"The correlation depth ξ_c grows from {_xi_text(xi[lo])} layers at σ_w² = {grid[lo]:g} "
        f"to {_xi_text(xi[at_critical])} at the critical σ_w², where it diverges, and falls "
        "back to "
        f"{_xi_text(xi[hi])} at {grid[hi]:g}.",
        f"After {size.steps} SGD steps the deepest trainable net grew from "
        f"{_depth_text(deepest_trainable[lo])} at σ_w² = {grid[lo]:g} to "
        f"{_depth_text(deepest_trainable[at_critical])} at σ_w² = {critical:.2f}, and was "
        f"{_depth_text(deepest_trainable[hi])} at σ_w² = {grid[hi]:g} (trainable: training "
        f"accuracy ≥ {threshold:.0%}).",
        f"Schoenholz et al.'s rule, trainable if and only if depth ≤ 6ξ_c, matches "
        f"{agree} of the {rule.size} cells of the grid.",
    ]
    facts: dict[str, Any] = {
        "activation": ACTIVATION,
        "sigma_b2": SIGMA_B2,
        "critical_sigma_w2": critical,
        "chi1_at_critical": chi_critical,
        "sigma_w2": grid,
        "critical_index": at_critical,
        "q_star": q_star,
        "chi1": chi,
        "chi1_measured": chi_measured,
        "xi_c": xi,
        "depths": list(size.depths),
        "steps": size.steps,
        "accuracy": accuracy.tolist(),
        "threshold": threshold,
        "deepest_trainable": deepest_trainable,
        "rule_agreement": agree,
        "cells": int(rule.size),
    }
    return ctx.finish(findings, facts)
