"""Lesson "chaos": the edge of chaos and how deep a tanh net can be trained.

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

Example:
    >>> from initlab.lessons import Env
    >>> tiny = Size(sigma_w2=(1.0, 4.0), depths=(4,), steps=3, n_train=100, curve_points=2)
    >>> facts = compute(tiny, Env())  # no figure drawn; SIZES["quick"] is the lesson's
    >>> round(facts.critical_sigma_w2, 2), facts.depths
    (1.76, (4,))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from initlab import data, meanfield, models
from initlab.lessons._lesson import Env
from initlab.probe import probe
from initlab.probe.verdicts import per_layer_factor
from initlab.report import OKABE_ITO
from initlab.report.figures import WIDTH as PAGE_WIDTH
from initlab.report.figures import subplots
from initlab.report.html import Report
from initlab.train import TrainConfig

__all__ = [
    "NAME",
    "QUESTION",
    "SIZES",
    "TITLE",
    "Curves",
    "Facts",
    "Size",
    "compute",
    "draw",
    "findings",
    "setup",
]

NAME = "chaos"
TITLE = "The edge of chaos: how deep a tanh net can train"
QUESTION = (
    "At which weight variance does a deep tanh net sit on the edge between order and "
    "chaos, and how much deeper can it be trained there than on either side?"
)

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
class Size:
    sigma_w2: tuple[float, ...]  # the grid's σ_w², the critical one added
    depths: tuple[int, ...]  # hidden layers of each stack
    steps: int  # SGD steps per stack
    n_train: int  # MNIST training examples
    curve_points: int  # σ_w² points on each side of the critical one, for the curves


SIZES = {
    "quick": Size(
        sigma_w2=(1.0, 1.5, 2.5, 4.0), depths=(8, 16, 30), steps=100, n_train=1000, curve_points=8
    ),
    "default": Size(
        sigma_w2=(1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0),
        depths=(10, 20, 30, 45, 60),
        steps=300,
        n_train=2000,
        curve_points=20,
    ),
}


@dataclass(frozen=True, eq=False)
class Curves:
    """The theory against σ_w², dense near the edge and never on it (ξ_c = ∞ there)."""

    sigma_w2: np.ndarray
    q_star: np.ndarray
    chi1: np.ndarray
    xi_c: np.ndarray


@dataclass(frozen=True, eq=False)
class Facts:
    activation: str
    sigma_b2: float
    critical_sigma_w2: float  # where χ₁ = 1
    chi1_at_critical: float
    sigma_w2: tuple[float, ...]  # the grid, sorted, the critical σ_w² included
    critical_index: int  # its place in the grid
    q_star: tuple[float, ...]  # per σ_w² of the grid, the theory's ...
    chi1: tuple[float, ...]
    xi_c: tuple[float, ...]  # (∞ at the critical σ_w²)
    chi1_measured: tuple[float, ...]  # the squared per-layer gradient factor, deepest nets
    curves: Curves
    depths: tuple[int, ...]
    steps: int  # SGD steps per stack
    n_train: int  # MNIST training examples
    classes: int
    accuracy: tuple[tuple[float, ...], ...]  # [depth][σ_w²] training accuracy (chance: diverged)
    threshold: float  # the training accuracy that counts as trainable
    deepest_trainable: tuple[int, ...]  # per σ_w², 0 where no depth trained
    rule_agreement: int  # cells where "trainable iff depth ≤ 6ξ_c" holds
    cells: int
    grad_rms: tuple[tuple[float, ...], ...]  # per σ_w²: the deepest net's ∂loss/∂h per layer
    losses: dict[int, np.ndarray]  # depth → (S, σ_w²) training loss

    @property
    def chance(self) -> float:
        return 1.0 / self.classes

    @property
    def best(self) -> float:
        """The best training accuracy of the grid."""
        return float(np.max(self.accuracy))

    @property
    def trainable(self) -> np.ndarray:
        """[depth][σ_w²]: whether the cell reached the threshold."""
        return np.asarray(self.accuracy) >= self.threshold


def setup(size: Size) -> str:
    return (
        f"Mean-field theory of deep {ACTIVATION} nets at σ_b² = {SIGMA_B2:g} (Poole et al. "
        "2016; Schoenholz et al. 2017) and a depth × σ_w² trainability grid on MNIST, one "
        "stack per depth."
    )


def compute(size: Size, env: Env) -> Facts:
    """The theory on the grid and as curves; train one stack per depth, probe the deepest."""
    env.stage("mean-field theory: the critical σ_w², χ₁, ξ_c and q*")
    critical = meanfield.critical_sigma_w2(ACTIVATION, SIGMA_B2)
    grid = tuple(sorted([*size.sigma_w2, critical]))
    xi = tuple(meanfield.correlation_depth(ACTIVATION, s, SIGMA_B2) for s in grid)
    curves = _curves(critical, size.curve_points)
    env.stage("loading MNIST")
    mnist, _ = data.scale(data.load("mnist", limit=size.n_train), per_feature=False)
    chance = 1.0 / mnist.num_classes
    rows: list[list[float]] = []
    losses: dict[int, np.ndarray] = {}
    grad_rms: tuple[tuple[float, ...], ...] = ()
    for depth in size.depths:
        row, losses[depth], profiles = _train_stack(env, mnist, grid, depth, size)
        rows.append(row)
        grad_rms = profiles or grad_rms
    accuracy = np.array(rows)
    threshold = chance + 0.5 * (float(accuracy.max()) - chance)
    trainable = accuracy >= threshold
    rule = np.array([[d <= DEPTH_RULE * x for x in xi] for d in size.depths])
    # χ₁ measured: the square of the per-layer gradient factor of the deepest nets at init,
    # over their upper three quarters (q has settled at q* by then).
    start = max(size.depths) // 4
    return Facts(
        activation=ACTIVATION,
        sigma_b2=SIGMA_B2,
        critical_sigma_w2=critical,
        chi1_at_critical=meanfield.chi1(ACTIVATION, critical, SIGMA_B2),
        sigma_w2=grid,
        critical_index=grid.index(critical),
        q_star=tuple(meanfield.fixed_point(ACTIVATION, s, SIGMA_B2) for s in grid),
        chi1=tuple(meanfield.chi1(ACTIVATION, s, SIGMA_B2) for s in grid),
        xi_c=xi,
        chi1_measured=tuple(per_layer_factor(p[start:][::-1]) ** 2 for p in grad_rms),
        curves=curves,
        depths=size.depths,
        steps=size.steps,
        n_train=mnist.n_train,
        classes=mnist.num_classes,
        accuracy=tuple(tuple(float(a) for a in row) for row in accuracy),
        threshold=threshold,
        deepest_trainable=tuple(
            max((d for d, ok in zip(size.depths, trainable[:, c], strict=True) if ok), default=0)
            for c in range(len(grid))
        ),
        rule_agreement=int((rule == trainable).sum()),
        cells=int(rule.size),
        grad_rms=grad_rms,
        losses=losses,
    )


def _curves(critical: float, points: int) -> Curves:
    """Dense near the edge, where ξ_c changes fastest; never exactly on it (ξ_c = ∞)."""
    low, high = CURVE_RANGE
    below = critical - (critical - low) * np.linspace(1.0, 0.0, points, endpoint=False) ** 2
    above = critical + (high - critical) * np.linspace(0.0, 1.0, points + 1)[1:] ** 2
    w2 = np.concatenate([below, above])
    return Curves(
        sigma_w2=w2,
        q_star=np.array([meanfield.fixed_point(ACTIVATION, s, SIGMA_B2) for s in w2]),
        chi1=np.array([meanfield.chi1(ACTIVATION, s, SIGMA_B2) for s in w2]),
        xi_c=np.array([meanfield.correlation_depth(ACTIVATION, s, SIGMA_B2) for s in w2]),
    )


def _train_stack(
    env: Env, mnist: data.Dataset, grid: tuple[float, ...], depth: int, size: Size
) -> tuple[list[float], np.ndarray, tuple[tuple[float, ...], ...]]:
    """One depth's stack, a member per σ_w²: each member's training accuracy (chance where
    it diverged), the loss curves, and (for the deepest) the gradient RMS per layer at init."""
    env.stage(f"training the depth-{depth} stack: {len(grid)} σ_w² values as members")
    widths = [mnist.x_train.shape[1], *[WIDTH] * depth, mnist.num_classes]
    net = models.mlp(widths, ACTIVATION, members=len(grid), device=env.device)
    specs = [f"variance_scaling(scale={s!r}, mode='fan_in', distribution='normal')" for s in grid]
    models.init_members(net, specs, f"normal(std={math.sqrt(SIGMA_B2)!r})", seeds=INIT_SEED)
    profiles: tuple[tuple[float, ...], ...] = ()
    if depth == max(size.depths):
        x = mnist.x_train[: 4 * BATCH].to(env.device)
        reports = probe(net, x, histograms=False, forecast=False)
        profiles = tuple(tuple(s.grad_rms for s in r.layers[:depth]) for r in reports)
    config = TrainConfig(
        optimizer="sgd", lr=LR, batch_size=BATCH, steps=size.steps, seeds=SHUFFLE_SEED
    )
    result = env.train(net, mnist, config)
    row = []
    for member in result.members:
        acc = member.train_accuracy
        ok = member.status != "diverged" and acc is not None and math.isfinite(acc)
        row.append(float(acc) if ok and acc is not None else 1.0 / mnist.num_classes)
    return row, result.loss.double().cpu().numpy(), profiles


def draw(facts: Facts, report: Report) -> None:
    _draw_theory(facts, report)
    _draw_gradients(facts, report)
    _draw_trainability(facts, report)
    _draw_losses(facts, report)


def _colours(n: int) -> Any:
    """One colour per σ_w² of the grid, dark to light."""
    from matplotlib import colormaps

    return colormaps["cividis"](np.linspace(0.0, 0.95, n))


def _label(facts: Facts, c: int) -> str:
    critical = " (critical)" if c == facts.critical_index else ""
    return f"σ_w² = {facts.sigma_w2[c]:.3g}{critical}"


def _draw_theory(facts: Facts, report: Report) -> None:
    curves, critical, grid = facts.curves, facts.critical_sigma_w2, facts.sigma_w2
    # One panel per row, sharing σ_w²: three side by side would not fit a page's width.
    fig, axes = subplots(3, 1, figsize=(PAGE_WIDTH, 9.6), sharex=True)
    ax = axes[0]
    ax.plot(curves.sigma_w2, curves.q_star, color=OKABE_ITO[0], lw=2, label="q* (theory)")
    ax.set_ylabel("q*, the fixed point of E[h²]")
    ax.set_title("Length: the q-map's fixed point")
    ax = axes[1]
    ax.plot(curves.sigma_w2, curves.chi1, color=OKABE_ITO[0], lw=2, label="χ₁ (theory)")
    measured = f"χ₁ measured by the probe ({max(facts.depths)} layers)"
    ax.plot(grid, facts.chi1_measured, "o", color=OKABE_ITO[3], ms=6, label=measured)
    ax.axhline(1.0, color="grey", lw=1, ls=":")
    ax.set_ylabel("χ₁ = σ_w² E[φ′(h)²]")
    ax.set_title("χ₁: the gradient's squared per-layer factor")
    ax = axes[2]
    ax.plot(curves.sigma_w2, curves.xi_c, color=OKABE_ITO[0], lw=2, label="ξ_c (theory)")
    finite = [x if math.isfinite(x) else np.nan for x in facts.xi_c]
    ax.plot(grid, finite, "s", color=OKABE_ITO[2], ms=6, label="grid's σ_w²")
    ax.set_yscale("log")
    ax.set_ylim(1, 1e3)
    ax.set_ylabel("ξ_c (layers)")
    ax.set_title("ξ_c: the depth correlations survive")
    for ax in axes:
        ax.axvline(critical, color=OKABE_ITO[1], lw=1.5, ls="--", label=f"critical {critical:.3f}")
        ax.grid(True, alpha=0.3)
        ax.title.set_fontsize(10)
        # beside the panel: inside, it would cover the curves where they matter
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    axes[-1].set_xlabel("σ_w² (weight variance × fan_in)")
    fig.suptitle(f"Mean-field theory of deep {ACTIVATION} nets at σ_b² = {SIGMA_B2:g}")
    report.section(
        "The theory: order, chaos and the depth scale ξ_c",
        f"For {ACTIVATION} with σ_b² = {SIGMA_B2:g}, the q-map's fixed point q*, the slope χ₁ "
        "and the correlation depth ξ_c from initlab.meanfield. Below the critical σ_w² "
        "(ordered phase) χ₁ < 1: gradients vanish; above it (chaotic phase) χ₁ > 1: they "
        "explode. The dots are χ₁ measured in the deepest nets of the grid before training, "
        "as the square of the gradient's per-layer factor.",
    )
    report.figure(
        fig,
        "theory",
        f"q*, χ₁ and ξ_c against σ_w² for {ACTIVATION} at σ_b² = {SIGMA_B2:g}; the dashed "
        "line marks the edge of chaos, where χ₁ = 1 and ξ_c diverges.",
    )


def _draw_gradients(facts: Facts, report: Report) -> None:
    deepest, colours = max(facts.depths), _colours(len(facts.sigma_w2))
    fig, ax = subplots(figsize=(8.5, 4.6))
    layers = np.arange(1, deepest + 1)
    for c, profile in enumerate(facts.grad_rms):
        lw = 2.6 if c == facts.critical_index else 1.4
        ax.plot(layers, profile, color=colours[c], lw=lw, label=_label(facts, c))
    ax.set_yscale("log")
    ax.set_xlabel("hidden layer (1 = next to the input)")
    ax.set_ylabel("RMS of the gradient ∂loss/∂h")
    ax.set_title(f"The gradient through the {deepest}-layer nets at init, per σ_w²")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    report.figure(
        fig,
        "gradients",
        "Measured by the probe (N(0, 1) output gradient). Read right to left, the way the "
        "gradient travels: it shrinks in the ordered phase and grows in the chaotic one.",
    )
    report.table(
        ["σ_w²", "q*", "χ₁ theory", "χ₁ measured", "ξ_c", "6 ξ_c", "deepest trainable"],
        [
            [
                f"{s:.3f}" + (" (critical)" if c == facts.critical_index else ""),
                facts.q_star[c],
                facts.chi1[c],
                facts.chi1_measured[c],
                _xi_text(facts.xi_c[c]),
                _xi_text(DEPTH_RULE * facts.xi_c[c]),
                facts.deepest_trainable[c] or "none",
            ]
            for c, s in enumerate(facts.sigma_w2)
        ],
        caption=f"The grid's σ_w²: theory, measurement, and the deepest net of depths "
        f"{', '.join(map(str, facts.depths))} that trained.",
    )


def _draw_trainability(facts: Facts, report: Report) -> None:
    report.section(
        "Trainability: depth × σ_w²",
        f"One stack per depth ({', '.join(map(str, facts.depths))} hidden layers of {WIDTH}), "
        f"its {len(facts.sigma_w2)} members the σ_w² of the grid, biases N(0, {SIGMA_B2:g}); "
        f"each trained by SGD (learning rate {LR:g}, batch {BATCH}) for {facts.steps} steps on "
        f"{facts.n_train} standardized MNIST digits. A cell counts as trainable (bold) when "
        f"its training accuracy reaches {facts.threshold:.0%}, half-way from chance "
        f"({facts.chance:.0%}) to the grid's best ({facts.best:.0%}). The dashed curve is 6ξ_c, "
        "the depth up to which Schoenholz et al. found nets trainable; with few steps the "
        "deepest nets here are limited by the budget too, so near the edge the measured "
        "depth stays below the curve.",
    )
    report.figure(
        _trainability_figure(facts),
        "trainability",
        "Training accuracy of every (depth, σ_w²) cell, the deepest trainable depth per "
        "σ_w² (orange steps: the top of the deepest cell that trained) and 6ξ_c (dashed).",
    )


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


def _trainability_figure(facts: Facts) -> Any:
    """The accuracy of every (depth, σ_w²) cell, the measured boundary and 6ξ_c."""
    import matplotlib.patheffects as effects

    depths, grid, accuracy = list(facts.depths), facts.sigma_w2, np.asarray(facts.accuracy)
    fig, ax = subplots(figsize=(PAGE_WIDTH, 5.6))
    x_edges, y_edges = _edges(list(grid)), _edges([float(d) for d in depths], log=True)
    mesh = ax.pcolormesh(x_edges, y_edges, accuracy, cmap="viridis", vmin=0.0, vmax=1.0)
    trainable = facts.trainable
    for (r, c), value in np.ndenumerate(accuracy):
        colour = "black" if value > 0.6 else "white"
        weight = "bold" if trainable[r, c] else "normal"
        text = f"{value:.0%}"
        ax.text(
            grid[c],
            depths[r],
            text,
            ha="center",
            va="center",
            fontsize=8,
            color=colour,
            fontweight=weight,
        )
    stroke = [effects.withStroke(linewidth=4, foreground="black")]
    w2, xi = facts.curves.sigma_w2, facts.curves.xi_c
    inside = (w2 >= x_edges[0]) & (w2 <= x_edges[-1])
    # 6ξ_c diverges at the edge: the limits come from the grid, and the curve is cut
    # where it leaves them (a point beyond the top is drawn at 1.5× the top, then clipped,
    # so the curve runs off the plot's edge rather than stopping short of it).
    rule = np.minimum(DEPTH_RULE * xi[inside], 1.5 * y_edges[-1])
    ax.plot(
        w2[inside],
        rule,
        color="white",
        lw=2,
        ls="--",
        path_effects=stroke,
        label="6 ξ_c (Schoenholz et al.)",
        clip_on=True,
    )
    # The measured boundary: along the top of each column's deepest trainable cell.
    tops = [y_edges[depths.index(d) + 1] if d else y_edges[0] for d in facts.deepest_trainable]
    ax.stairs(
        tops,
        x_edges,
        baseline=None,
        color=OKABE_ITO[1],
        lw=3,
        path_effects=stroke,
        label="deepest trainable depth (measured)",
    )
    critical = facts.critical_sigma_w2
    ax.axvline(critical, color=OKABE_ITO[4], lw=1.5, ls=":", label=f"critical σ_w² {critical:.3f}")
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_yscale("log")
    ax.set_ylim(y_edges[0], y_edges[-1])
    ax.set_yticks(depths, [str(d) for d in depths])
    ax.minorticks_off()
    ax.set_xlabel("σ_w² (weight variance × fan_in)")
    ax.set_ylabel("depth (hidden layers, log scale)")
    ax.set_title(f"Training accuracy after {facts.steps} SGD steps, per depth and σ_w²")
    fig.colorbar(mesh, ax=ax, label="training accuracy")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
    return fig


def _draw_losses(facts: Facts, report: Report) -> None:
    colours = _colours(len(facts.sigma_w2))
    fig, axes = subplots(1, 2, figsize=(PAGE_WIDTH, 4.2), sharey=True)
    show = [0, facts.critical_index, len(facts.sigma_w2) - 1]
    window = 1
    for ax, depth in zip(axes, (min(facts.depths), max(facts.depths)), strict=True):
        curves = facts.losses[depth]
        window = max(1, min(20, curves.shape[0] // 5))
        kernel = np.ones(window) / window
        for c in show:
            smooth = np.convolve(curves[:, c], kernel, mode="valid")
            steps = np.arange(window - 1, curves.shape[0])
            ax.plot(steps, smooth, color=colours[c], lw=2, label=_label(facts, c))
        chance = math.log(facts.classes)
        ax.axhline(chance, color="grey", ls=":", lw=1, label="ln 10 (chance)")
        ax.set_title(f"{depth} hidden layers")
        ax.set_xlabel("SGD step")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"training loss\n({window}-step average, nats)")
    axes[1].legend(fontsize=8)
    fig.suptitle("Loss curves at the grid's ends and at the edge of chaos")
    report.figure(
        fig,
        "losses",
        "Training loss of the shallowest and the deepest stack, for the smallest, the "
        "critical and the largest σ_w².",
    )


def _depth_text(depth: int) -> str:
    return f"{depth} layers" if depth > 0 else "zero layers (none of the depths tried trained)"


def _xi_text(xi: float) -> str:
    if math.isinf(xi):
        return "∞"
    return f"{xi:.1e}" if xi >= 1e4 else f"{xi:.1f}"


def findings(facts: Facts) -> list[str]:
    grid, chi, xi, measured = facts.sigma_w2, facts.chi1, facts.xi_c, facts.chi1_measured
    deepest, critical, at = facts.deepest_trainable, facts.critical_sigma_w2, facts.critical_index
    lo, hi = 0, len(grid) - 1
    return [
        f"For {ACTIVATION} at σ_b² = {SIGMA_B2:g} the edge of chaos is at σ_w² = {critical:.3f}, "
        f"where χ₁ = {facts.chi1_at_critical:.4f}; gradients shrink on one side (χ₁ = "
        f"{chi[lo]:.2f} at σ_w² = {grid[lo]:g}) and grow on the other ({chi[hi]:.2f} at "
        f"{grid[hi]:g}). The probe measured χ₁ = {measured[lo]:.2f}, {measured[at]:.2f} and "
        f"{measured[hi]:.2f} in the {max(facts.depths)}-layer nets.",
        f"The correlation depth ξ_c grows from {_xi_text(xi[lo])} layers at σ_w² = {grid[lo]:g} "
        f"to {_xi_text(xi[at])} at the critical σ_w², where it diverges, and falls back to "
        f"{_xi_text(xi[hi])} at {grid[hi]:g}.",
        f"After {facts.steps} SGD steps the deepest trainable net grew from "
        f"{_depth_text(deepest[lo])} at σ_w² = {grid[lo]:g} to "
        f"{_depth_text(deepest[at])} at σ_w² = {critical:.2f}, and was "
        f"{_depth_text(deepest[hi])} at σ_w² = {grid[hi]:g} (trainable: training "
        f"accuracy ≥ {facts.threshold:.0%}).",
        f"Schoenholz et al.'s rule, trainable if and only if depth ≤ 6ξ_c, matches "
        f"{facts.rule_agreement} of the {facts.cells} cells of the grid.",
    ]
