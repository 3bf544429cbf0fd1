"""Lesson 7, landscape: local and global minima, saddle points, noise and convergence.

What it teaches. Gradient descent goes downhill from where it starts, so *where* it
starts decides *which* minimum it reaches: a local minimum is as good as a global one to
a method that only sees the slope. Where the slope vanishes without a minimum — a saddle
point — gradient descent slows to a crawl, and a convergence test that watches the cost
(stop when it changes by less than a tolerance) cannot tell a flat saddle from a
minimum. Noise in the gradient, as SGD's mini-batches supply, shakes a run out of a
shallow minimum that plain gradient descent would never leave. And a real network's loss,
seen on a random 2-D slice of its parameter space through its trained weights, is a
bowl with the trained point at the bottom.

The setup. Two functions written out analytically in torch and differentiated by
autograd (float64, so that exact locations can be compared):

- 1-D: f is defined by its derivative, f′(x) = (x + 1.8)(x + 1)(x + 0.55)(x − 0.3)
  (x − 1.7)(x − 0.95)², with f(0) = 0: minima at −1.8 (global), −0.55 (shallow) and
  1.7, maxima at −1 and 0.3, and at 0.95 a double root of f′ — a flat saddle
  (f′ = f″ = 0, neither minimum nor maximum), the 1-D kind of saddle point.
- 2-D: Himmelblau's function f(x, y) = (x² + y − 11)² + (x + y² − 7)², with four minima
  (all f = 0, at the published locations (3, 2), (−2.805118, 3.131312),
  (−3.779310, −3.283186), (3.584428, −1.848126)), four saddles and one maximum.

Gradient descent runs from several starts at once (one tensor of starts, one autograd
call per step), each stopped by the criterion |f(t) − f(t − w)| < tol. SGD's noise is
modelled as gradient + Gaussian noise whose scale decays linearly to zero (as a decaying
learning rate shrinks SGD's steps), many noisy runs side by side. The saddle start lies
on the saddle's stable manifold (traced by gradient *ascent* from the saddle), nudged
off it; the comparison start lies as far from the saddle along its unstable direction.
The real network is a 64–32–10 ReLU MLP trained on scikit-learn's digits with Adam until
the engine's convergence test stops it; its loss is then drawn on the plane θ* + α·d₁ +
β·d₂ through the trained weights θ*, with random directions d₁, d₂ filter-normalized
(each row of each weight matrix rescaled to the norm of the same row of θ*, biases not
moved), every grid point a member of one stack evaluated in one pass.

Sources. D. M. Himmelblau, *Applied Nonlinear Programming*, McGraw-Hill 1972 (the test
function and its minima); Goodfellow, Bengio & Courville, *Deep Learning*, MIT Press
2016, §4.3 and §8.2.2–8.2.3 (local minima, saddle points, plateaus); Y. Dauphin et al.,
"Identifying and attacking the saddle point problem in high-dimensional non-convex
optimization", NeurIPS 2014; R. Ge et al., "Escaping from saddle points — online
stochastic gradient for tensor decomposition", COLT 2015 (noise escapes saddles and
shallow minima); H. Li et al., "Visualizing the Loss Landscape of Neural Nets",
NeurIPS 2018, §4 (filter-normalized random directions).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from initlab import data, models
from initlab.lessons._lesson import Context, Lesson, LessonProgress, pyplot
from initlab.report import OKABE_ITO
from initlab.train import TrainConfig

__all__ = [
    "HIMMELBLAU_MINIMA",
    "MINIMA_1D",
    "SADDLE_1D",
    "filter_normalized_direction",
    "himmelblau",
    "loss_slice",
    "run",
    "wells",
]

NAME = "landscape"
TITLE = "Local and global minima, saddle points and convergence"

# ----------------------------------------------------------------------------- functions

#: The simple roots of the 1-D function's derivative, left to right: min, max, min, max, min.
ROOTS_1D = (-1.8, -1.0, -0.55, 0.3, 1.7)
#: The double root of f′: a flat saddle (f′ = f″ = 0), between the maximum 0.3 and the
#: minimum 1.7.
SADDLE_1D = 0.95
MINIMA_1D = (ROOTS_1D[0], ROOTS_1D[2], ROOTS_1D[4])
MAXIMA_1D = (ROOTS_1D[1], ROOTS_1D[3])
#: f = ∫ f′ with f(0) = 0, as polynomial coefficients (highest power first).
_WELLS = tuple(float(c) for c in np.polyint(np.poly([*ROOTS_1D, SADDLE_1D, SADDLE_1D])))

#: Himmelblau's four minima (all f = 0), as published (Himmelblau 1972).
HIMMELBLAU_MINIMA = (
    (3.0, 2.0),
    (-2.805118, 3.131312),
    (-3.779310, -3.283186),
    (3.584428, -1.848126),
)
#: Approximate saddles and maximum (refined by Newton's method before use).
_HIMMELBLAU_SADDLES = (
    (0.086677, 2.884254),
    (3.385154, 0.073852),
    (-0.127961, -1.953715),
    (-3.073026, -0.081353),
)
_HIMMELBLAU_MAXIMUM = (-0.270845, -0.923039)


def wells(x: Tensor) -> Tensor:
    """The 1-D function, elementwise: f with f′(x) = (x + 1.8)(x + 1)(x + 0.55)(x − 0.3)
    (x − 1.7)(x − 0.95)² and f(0) = 0.

    Minima at −1.8 (global), −0.55 and 1.7; maxima at −1 and 0.3; a flat saddle at 0.95.

    Example:
        >>> x = torch.tensor([-1.8, -0.55, 0.95], dtype=torch.float64, requires_grad=True)
        >>> torch.autograd.grad(wells(x).sum(), x)[0].abs().max().item() < 1e-12
        True
    """
    out = torch.zeros_like(x)
    for c in _WELLS:  # Horner's rule
        out = out * x + c
    return out


def himmelblau(p: Tensor) -> Tensor:
    """Himmelblau's function of points (..., 2): (x² + y − 11)² + (x + y² − 7)².

    Example:
        >>> himmelblau(torch.tensor([[3.0, 2.0]])).item()
        0.0
    """
    x, y = p[..., 0], p[..., 1]
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def _grad(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """∇fn at each of the independent points x (autograd through the sum)."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x).sum(), x)
    return g


def _hessian(fn: Callable[[Tensor], Tensor], p: Tensor) -> Tensor:
    """The Hessian of a scalar function at one point (autograd)."""
    hessian: Tensor = torch.autograd.functional.hessian(fn, p)  # type: ignore[no-untyped-call]
    return hessian


def _newton(fn: Callable[[Tensor], Tensor], p: Tensor, steps: int = 8) -> Tensor:
    """Refine a stationary point of a 2-D function by Newton's method on ∇fn = 0."""
    for _ in range(steps):
        hessian = _hessian(fn, p)
        p = p - torch.linalg.solve(hessian, _grad(fn, p[None])[0])
    return p


# ----------------------------------------------------------------------------- descent


@dataclass(frozen=True)
class _Descent:
    """Runs of gradient descent from K starts, side by side."""

    path: Tensor  # (T + 1, K, d) positions, held after a run stops
    cost: Tensor  # (T + 1, K)
    stop: list[int | None]  # the step at which the convergence test stopped each run
    change: Tensor  # (T + 1, K) |f(t) − f(t − window)| (NaN for t < window)

    def end(self, j: int) -> int:
        """Run j's last step: where the convergence test stopped it, else the last one."""
        stop = self.stop[j]
        return stop if stop is not None else self.path.shape[0] - 1


def _descend(
    fn: Callable[[Tensor], Tensor],
    starts: Tensor,
    *,
    lr: float,
    steps: int,
    tol: float | None,
    window: int,
    noise: Tensor | None = None,
    decay_steps: int | None = None,
    seed: int = 0,
) -> _Descent:
    """Gradient descent x ← x − lr·(∇f(x) + σ_t·ξ) from each start (K, d) or (K,).

    ``noise`` (K,) is each run's σ (0: plain GD), decaying linearly to 0 at
    ``decay_steps``; ξ ~ N(0, 1) drawn from ``seed``. A run stops — and is held where it
    is — when |f(t) − f(t − window)| < tol, the convergence test; runs with noise are
    never tested. The loop ends when every run has stopped or at ``steps``.
    """
    x = starts.clone()
    k = x.shape[0]
    generator = torch.Generator(device=x.device).manual_seed(seed)
    active = torch.ones(k, dtype=torch.bool, device=x.device)
    testable = torch.ones_like(active) if noise is None else noise == 0
    shape = (k,) + (1,) * (x.dim() - 1)
    path, cost = [x.clone()], [fn(x).detach()]
    stop: list[int | None] = [None] * k
    for t in range(steps):
        g = _grad(fn, x)
        if noise is not None:
            scale = max(0.0, 1.0 - t / decay_steps) if decay_steps else 1.0
            xi = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            g = g + (noise * scale).reshape(shape) * xi
        x = torch.where(active.reshape(shape), x - lr * g, x).detach()
        path.append(x.clone())
        cost.append(fn(x).detach())
        if tol is not None and t + 1 >= window:
            converged = (cost[-1] - cost[-1 - window]).abs() < tol
            newly = (converged & active & testable).tolist()
            for j in (j for j, hit in enumerate(newly) if hit):
                stop[j] = t + 1
            active &= ~(converged & testable)
            if not bool(active.any()):
                break
    costs = torch.stack(cost)
    change = torch.full_like(costs, math.nan)
    change[window:] = (costs[window:] - costs[:-window]).abs()
    return _Descent(torch.stack(path), costs, stop, change)


def _nearest(point: Tensor, places: Tensor) -> tuple[int, float]:
    """The index of the nearest of ``places`` (n, d) to ``point`` (d,), and its distance."""
    distance = (places - point).norm(dim=-1)
    i = int(distance.argmin())
    return i, float(distance[i])


# ----------------------------------------------------------------------------- the slice


def filter_normalized_direction(
    weights: dict[str, Tensor], generator: torch.Generator
) -> dict[str, Tensor]:
    """A random direction in parameter space, normalized filter by filter (Li et al. 2018).

    Each weight matrix (out, in, …) gets Gaussian entries, then each of its rows (one
    unit's incoming weights: a "filter") is rescaled to the norm of the same row of the
    weights, so that the direction's size matches the weights' size unit by unit and a
    ReLU net's rescaling symmetry cannot distort the picture. Biases (1-D tensors) get a
    zero direction: they are not moved.

    Args:
        weights: parameter name → tensor of one network.
        generator: the random source (on the weights' device).

    Returns:
        Parameter name → direction of the same shape.

    Example:
        >>> w = {"w": torch.tensor([[3.0, 4.0], [0.0, 1.0]]), "b": torch.ones(2)}
        >>> d = filter_normalized_direction(w, torch.Generator().manual_seed(0))
        >>> d["w"].norm(dim=1).tolist(), d["b"].tolist()
        ([5.0, 1.0], [0.0, 0.0])
    """
    direction = {}
    for name, w in weights.items():
        if w.dim() <= 1:
            direction[name] = torch.zeros_like(w)
            continue
        d = torch.randn(w.shape, generator=generator, device=w.device, dtype=w.dtype)
        rows = d.reshape(d.shape[0], -1).norm(dim=1)
        target = w.reshape(w.shape[0], -1).norm(dim=1)
        scale = (target / rows.clamp_min(torch.finfo(d.dtype).tiny)).reshape(
            -1, *[1] * (w.dim() - 1)
        )
        direction[name] = d * scale
    return direction


def loss_slice(
    net: models.Stack,
    x: Tensor,
    y: Tensor,
    directions: tuple[dict[str, Tensor], dict[str, Tensor]],
    alphas: Tensor,
    betas: Tensor,
    *,
    chunk: int = 256,
) -> Tensor:
    """The cross-entropy of a one-member MLP stack at θ* + α·d₁ + β·d₂ over a grid.

    Every grid point is a member of one stack of the same architecture, computed with
    one batched forward pass per ``chunk`` members.

    Args:
        net: a stack with one member (θ*); an MLP of Linear layers and activations.
        x, y: the examples and integer labels the loss is measured on.
        directions: (d₁, d₂), parameter name → direction, as from
            :func:`filter_normalized_direction`.
        alphas, betas: (A,) and (B,) coordinates along d₁ and d₂.
        chunk: members per forward pass (memory ∝ chunk · hidden width · len(x)).

    Returns:
        (B, A) losses: row j is β = betas[j], column i is α = alphas[i].
    """
    if net.members != 1:
        raise ValueError(f"loss_slice needs a stack of one member (θ*). Got {net.members}.")
    theta = {name: p.detach()[0] for name, p in net.named_parameters()}
    d1, d2 = directions
    grid_a, grid_b = torch.meshgrid(alphas, betas, indexing="xy")  # (B, A) each
    flat_a, flat_b = grid_a.reshape(-1), grid_b.reshape(-1)
    losses = []
    for start in range(0, flat_a.numel(), chunk):
        a, b = flat_a[start : start + chunk], flat_b[start : start + chunk]
        members = a.numel()
        grid = models.mlp(
            _widths(net), _activation(net), members=members, device=x.device, dtype=x.dtype
        )
        with torch.no_grad():
            for name, p in grid.named_parameters():
                view = (members,) + (1,) * theta[name].dim()
                p.copy_(theta[name] + a.view(view) * d1[name] + b.view(view) * d2[name])
            logits = grid.logits(x)  # (members, classes, n)
            loss = F.cross_entropy(logits, y.expand(members, -1), reduction="none").mean(dim=1)
        losses.append(loss)
    return torch.cat(losses).reshape(grid_a.shape)


def _widths(net: models.Stack) -> list[int]:
    linears = [m for m in net.layers if isinstance(m, models.StackedLinear)]
    return [linears[0].in_features] + [m.out_features for m in linears]


def _activation(net: models.Stack) -> str:
    for module in net.layers:
        for name, cls in models.ACTIVATIONS.items():
            if type(module) is cls and name not in ("identity", "linear"):
                return name
    return "identity"


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class _Settings:
    steps_1d: int  # budget of the 1-D runs
    noisy_runs: int  # how many noisy runs from the shallow minimum
    steps_2d: int  # budget of the 2-D runs
    net_steps: int  # the real net's step budget
    grid: int  # slice grid points per axis (odd: θ* itself is on the grid)


LR_1D = 0.02  # below 2/f″ at every minimum (f″ = 55.6 at −1.8): no overshooting
LR_2D = 0.005  # below 2/λ_max = 2/133.8 at Himmelblau's minima
TOL = 1e-7  # the convergence test: |f(t) − f(t − WINDOW)| < TOL
WINDOW = 10
NOISE = 5.0  # σ of the Gaussian gradient noise at the start, decaying to 0
NOISE_DECAY = 0.7  # the noise reaches 0 at this fraction of the 1-D budget
STARTS_1D = (-2.0, -1.3, -0.8, -0.2, 0.6, 1.2, 1.95)
SHALLOW_START = -0.45  # in the shallow minimum's basin, near its bottom
STARTS_2D = (
    (-4.0, 4.0),
    (0.0, 4.5),
    (4.0, 4.0),
    (4.5, 0.5),
    (4.0, -4.0),
    (0.5, -4.5),
    (-4.0, -4.0),
    (-4.5, 0.5),
)
SADDLE_DISTANCE = 1.5  # both saddle-experiment starts lie this far from the saddle
SADDLE_NUDGE = 1e-3  # the saddle start's offset from the stable manifold
NEAR = 0.5  # "near the saddle": within this distance
NET_WIDTHS = [64, 32, 10]


def _settings(quick: bool) -> _Settings:
    if quick:
        return _Settings(steps_1d=1500, noisy_runs=32, steps_2d=600, net_steps=150, grid=21)
    return _Settings(steps_1d=3000, noisy_runs=64, steps_2d=1500, net_steps=800, grid=41)


# ----------------------------------------------------------------------------- figures


def _draw_1d(ctx: Context, runs: _Descent, labels: list[str]) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.3), dpi=120)
    grid = torch.linspace(-2.15, 2.05, 600, dtype=torch.float64)
    left.plot(grid.numpy(), wells(grid).numpy(), color="#444444", linewidth=1.4, label="f(x)")
    for kind, points, marker in (
        ("minima", MINIMA_1D, "o"),
        ("maxima", MAXIMA_1D, "^"),
        ("flat saddle", (SADDLE_1D,), "D"),
    ):
        p = torch.tensor(points, dtype=torch.float64)
        left.plot(
            p.numpy(),
            wells(p).numpy(),
            marker,
            color="#000000",
            markersize=6,
            markerfacecolor="white",
            label=kind,
        )
    for j, (colour, label) in enumerate(zip(_cycle(len(labels)), labels, strict=True)):
        path = runs.path[:, j]
        stop = runs.stop[j]
        end = path[stop if stop is not None else -1]
        left.plot(path.numpy(), wells(path).numpy(), ".", color=colour, markersize=3, alpha=0.6)
        left.plot([float(path[0])], [float(wells(path[0]))], "s", color=colour, markersize=6)
        left.annotate(
            "",
            (float(end), float(wells(end))),
            (float(path[0]), float(wells(path[0]))),
            arrowprops={"arrowstyle": "->", "color": colour, "alpha": 0.5},
        )
        steps = torch.arange(len(path))
        right.plot(steps.numpy(), path.numpy(), color=colour, linewidth=1.5, label=label)
        if stop is not None:
            right.plot([stop], [float(path[stop])], "o", color=colour, markersize=5)
    left.set_ylim(-2.8, 1.6)
    left.set_xlabel("x")
    left.set_ylabel("f(x)")
    left.set_title("Gradient descent from 7 starts (squares)")
    left.grid(alpha=0.3)
    left.legend(frameon=False, fontsize=8, loc="upper center", ncol=2)
    for value in (*MINIMA_1D, SADDLE_1D):
        right.axhline(value, color="#bbbbbb", linewidth=0.8, linestyle=":")
    right.set_xscale("symlog", linthresh=10)
    right.set_xlabel("step (symmetric log scale)")
    right.set_ylabel("x")
    right.set_title("x against step; dots: stopped by the test")
    right.set_xlim(left=0)
    right.grid(alpha=0.3)
    right.legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ctx.figure(
        fig,
        "one-d-starts",
        "Left: f with its three minima, two maxima and the flat saddle at x = 0.95; each "
        "start's path as dots, an arrow from start to end. Right: each run's x over the "
        "steps; the dotted lines are the minima and the flat saddle.",
    )


#: Line colours: Okabe & Ito's palette without its yellow (too pale on white), then black
#: and grey.
_LINES = (*(c for c in OKABE_ITO if c != "#F0E442"), "#000000", "#7F7F7F")


def _cycle(n: int) -> list[str]:
    return [_LINES[i % len(_LINES)] for i in range(n)]


def _draw_noise(ctx: Context, runs: _Descent, decay_steps: int, escaped: int, total: int) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(11, 4.2), dpi=120, gridspec_kw={"width_ratios": [1, 1.6]}
    )
    grid = torch.linspace(-2.15, 2.05, 600, dtype=torch.float64)
    left.plot(grid.numpy(), wells(grid).numpy(), color="#444444", linewidth=1.4, label="f(x)")
    ends = runs.path[-1, 1:]
    left.plot(
        ends.numpy(),
        wells(ends).numpy(),
        "o",
        color=OKABE_ITO[3],
        alpha=0.35,
        markersize=7,
        label=f"noisy runs' end points ({total})",
    )
    gd_end = runs.path[-1, 0]
    left.plot(
        [float(gd_end)],
        [float(wells(gd_end))],
        "*",
        color=OKABE_ITO[0],
        markersize=13,
        label="plain GD's end point",
    )
    left.plot(
        [SHALLOW_START],
        [float(wells(torch.tensor(SHALLOW_START, dtype=torch.float64)))],
        "s",
        color="#000000",
        markersize=6,
        label="the start of every run",
    )
    left.set_ylim(-2.8, 1.6)
    left.set_xlabel("x")
    left.set_ylabel("f(x)")
    for minimum in MINIMA_1D:
        count = sum(_basin(float(e)) == minimum for e in ends)
        left.annotate(
            f"{count} noisy run{'s' if count != 1 else ''}",
            (minimum, float(wells(torch.tensor(minimum, dtype=torch.float64)))),
            xytext=(0, -16),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    left.set_title("Where the runs ended")
    left.grid(alpha=0.3)
    left.legend(frameon=False, fontsize=8, loc="upper center")
    steps = torch.arange(runs.path.shape[0]).numpy()
    for j in range(1, runs.path.shape[1]):
        right.plot(
            steps,
            runs.path[:, j].numpy(),
            color=OKABE_ITO[3],
            linewidth=0.5,
            alpha=0.35,
            label="GD + gradient noise" if j == 1 else None,
        )
    right.plot(steps, runs.path[:, 0].numpy(), color=OKABE_ITO[0], linewidth=2.2, label="plain GD")
    for i, value in enumerate(MAXIMA_1D):
        right.axhline(
            value,
            color="#000000",
            linewidth=0.8,
            linestyle="--",
            label="the maxima that bound the shallow basin" if i == 0 else None,
        )
    right.axvline(decay_steps, color="#777777", linewidth=1.0, linestyle=":")
    right.annotate(
        "noise has decayed to 0", (decay_steps, 1.9), fontsize=8, ha="right", color="#555555"
    )
    right.set_xlabel("step")
    right.set_ylabel("x")
    right.set_title(f"Noise escapes the shallow minimum: {escaped} of {total} runs left it")
    right.grid(alpha=0.3)
    right.legend(
        frameon=True, framealpha=0.9, fontsize=8, loc="center right", bbox_to_anchor=(1.0, 0.63)
    )
    ctx.figure(
        fig,
        "noise-escapes",
        "Every run starts at x = −0.45 in the shallow minimum's basin (between the maxima at "
        "−1 and 0.3). Plain GD settles at −0.55 and stays. With Gaussian noise added to the "
        "gradient (σ decaying linearly to 0), the runs hop out of the shallow basin and end "
        "in a deeper minimum.",
    )


def _contour(ax: Any, fn: Callable[[Tensor], Tensor], lo: float, hi: float, levels: Any) -> Any:
    g = torch.linspace(lo, hi, 300, dtype=torch.float64)
    gx, gy = torch.meshgrid(g, g, indexing="xy")
    z = fn(torch.stack([gx, gy], dim=-1))
    return ax.contourf(
        gx.numpy(),
        gy.numpy(),
        torch.log10(z + 1e-2).numpy(),
        levels=levels,
        cmap="Greys",
        alpha=0.8,
    )


def _draw_2d(
    ctx: Context, runs: _Descent, saddles: Tensor, maximum: Tensor, reached: list[int]
) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 6.2), dpi=120)
    filled = _contour(ax, himmelblau, -5.2, 5.2, 24)
    bar = fig.colorbar(filled, ax=ax)
    bar.set_label("log₁₀(f + 0.01)")
    minima = torch.tensor(HIMMELBLAU_MINIMA, dtype=torch.float64)
    ax.plot(
        minima[:, 0].numpy(),
        minima[:, 1].numpy(),
        "o",
        color="white",
        markeredgecolor="black",
        markersize=9,
        label="minima (published)",
    )
    ax.plot(
        saddles[:, 0].numpy(),
        saddles[:, 1].numpy(),
        "X",
        color="white",
        markeredgecolor="black",
        markersize=9,
        label="saddles",
    )
    ax.plot(
        [float(maximum[0])],
        [float(maximum[1])],
        "^",
        color="white",
        markeredgecolor="black",
        markersize=9,
        label="maximum",
    )
    for j, colour in enumerate(_cycle(runs.path.shape[1])):
        path = runs.path[: runs.end(j) + 1, j]
        ax.plot(
            path[:, 0].numpy(),
            path[:, 1].numpy(),
            ".-",
            color=colour,
            markersize=3,
            linewidth=1.0,
            label="GD paths (one colour per start)" if j == 0 else None,
        )
        ax.plot(
            [float(path[0, 0])],
            [float(path[0, 1])],
            "s",
            color=colour,
            markeredgecolor="black",
            markersize=7,
        )
    ax.set_xlim(-5.2, 5.2)
    ax.set_ylim(-5.2, 5.2)
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(f"Himmelblau's function: {len(runs.stop)} starts reach {len(set(reached))} minima")
    ax.legend(frameon=True, fontsize=8, loc="lower left", framealpha=0.85)
    ctx.figure(
        fig,
        "two-d-starts",
        "Contours of log₁₀ f; squares are the starts, dotted lines the gradient-descent "
        "paths (one dot per step) up to the step the convergence test stopped them.",
    )


def _draw_saddle(
    ctx: Context,
    runs: _Descent,
    saddle: Tensor,
    manifold: Tensor,
    grad_norm: Tensor,
    near: list[int],
) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.6), dpi=120)
    filled = _contour(left, himmelblau, -1.0, 4.0, 24)
    fig.colorbar(filled, ax=left).set_label("log₁₀(f + 0.01)")
    left.plot(
        manifold[:, 0].numpy(),
        manifold[:, 1].numpy(),
        "--",
        color="#000000",
        linewidth=1.2,
        label="the saddle's stable manifold",
    )
    circle = plt.Circle(
        (float(saddle[0]), float(saddle[1])),
        NEAR,
        fill=False,
        color="#000000",
        linestyle=":",
        linewidth=1.2,
    )
    left.add_patch(circle)
    left.plot(
        [float(saddle[0])],
        [float(saddle[1])],
        "X",
        color="white",
        markeredgecolor="black",
        markersize=10,
        label="saddle",
    )
    labels = ["saddle start", "away start"]
    colours = [OKABE_ITO[3], OKABE_ITO[0]]
    for j, (label, colour) in enumerate(zip(labels, colours, strict=True)):
        path = runs.path[: runs.end(j) + 1, j]
        left.plot(
            path[:, 0].numpy(),
            path[:, 1].numpy(),
            ".-",
            color=colour,
            markersize=4,
            linewidth=0.8,
            label=f"{label}: {near[j]} steps within {NEAR} of the saddle",
        )
        left.plot(
            [float(path[0, 0])],
            [float(path[0, 1])],
            "s",
            color=colour,
            markeredgecolor="black",
            markersize=7,
        )
        steps = torch.arange(len(path))
        right.plot(
            steps.numpy(),
            grad_norm[: len(path), j].numpy(),
            color=colour,
            linewidth=1.8,
            label=f"{label} (stopped at step {runs.stop[j]})",
        )
    left.set_xlim(-1.0, 4.0)
    left.set_ylim(-1.0, 4.0)
    left.set_aspect("equal")
    left.set_xlabel("x")
    left.set_ylabel("y")
    left.set_title("Two starts 1.5 from the saddle at (0.087, 2.884)")
    left.legend(frameon=True, fontsize=7, loc="lower right", framealpha=0.85)
    right.set_yscale("log")
    right.set_xlabel("step")
    right.set_ylabel("gradient norm ‖∇f‖ (log scale)")
    right.set_title("Near the saddle the gradient all but vanishes")
    right.grid(alpha=0.3, which="both")
    right.legend(frameon=False, fontsize=8)
    ctx.figure(
        fig,
        "saddle-slows",
        "Left: the start on (just off) the saddle's stable manifold slides down to the "
        "saddle, where the slope is nearly flat, and lingers before it falls away towards a "
        "minimum; the start as far from the saddle along its unstable direction goes straight "
        "down. The dotted circle is the 'near the saddle' zone. Right: the gradient norm "
        "along each path.",
    )


def _draw_convergence(ctx: Context, runs: _Descent, labels: list[str], tol: float) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.2), dpi=120)
    for j, (colour, label) in enumerate(zip(_cycle(len(labels)), labels, strict=True)):
        stop, end = runs.stop[j], runs.end(j)
        steps = torch.arange(end + 1).numpy()
        left.plot(steps, runs.cost[: end + 1, j].numpy(), color=colour, linewidth=1.5, label=label)
        right.plot(
            steps, runs.change[: end + 1, j].numpy(), color=colour, linewidth=1.2, label=label
        )
        if stop is not None:
            left.plot(
                [stop],
                [float(runs.cost[stop, j])],
                "o",
                color=colour,
                markersize=6,
                markeredgecolor="black",
            )
            right.plot(
                [stop],
                [float(runs.change[stop, j])],
                "o",
                color=colour,
                markersize=6,
                markeredgecolor="black",
            )
    right.axhline(tol, color="#000000", linestyle="--", linewidth=1.0)
    right.annotate(
        f"tol = {tol:g}",
        (0.98, tol),
        xycoords=("axes fraction", "data"),
        ha="right",
        va="bottom",
        fontsize=8,
    )
    for ax in (left, right):
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(left=0)
        ax.set_xlabel("step (symmetric log scale)")
        ax.grid(alpha=0.3, which="both")
    left.set_ylabel("cost f(x)")
    left.set_title("Cost curves; dots: stopped by the convergence test")
    right.set_yscale("log")
    right.set_ylabel(f"|f(t) − f(t − {WINDOW})| (log scale)")
    right.set_title(f"The test: cost change over {WINDOW} steps below tol")
    right.legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ctx.figure(
        fig,
        "convergence",
        "The 1-D runs again. A run stops when its cost has changed by less than tol over the "
        f"last {WINDOW} steps. The test watches the cost, not the slope's sign: the run that "
        "creeps towards the flat saddle at 0.95 is stopped there too.",
    )


def _draw_net(
    ctx: Context,
    history: Tensor,
    stop: int | None,
    alphas: Tensor,
    betas: Tensor,
    losses: Tensor,
) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(11.5, 4.6), dpi=120, gridspec_kw={"width_ratios": [1, 1.15]}
    )
    steps = torch.arange(1, len(history) + 1).numpy()
    left.plot(steps, history.numpy(), color=OKABE_ITO[0], linewidth=1.5, label="training cost")
    if stop is not None:
        left.plot(
            [stop],
            [float(history[stop - 1])],
            "o",
            color=OKABE_ITO[3],
            markersize=7,
            markeredgecolor="black",
            label=f"converged: stopped at step {stop}",
        )
    left.set_yscale("log")
    left.set_xlabel("step (Adam, full batch)")
    left.set_ylabel("training cost (cross-entropy, log scale)")
    left.set_title("Training the 64–32–10 ReLU net on the digits")
    left.grid(alpha=0.3, which="both")
    left.legend(frameon=False, fontsize=8)
    logl = torch.log10(losses).cpu()
    filled = right.contourf(
        alphas.cpu().numpy(), betas.cpu().numpy(), logl.numpy(), levels=20, cmap="cividis"
    )
    right.contour(
        alphas.cpu().numpy(),
        betas.cpu().numpy(),
        logl.numpy(),
        levels=20,
        colors="white",
        linewidths=0.4,
        alpha=0.6,
    )
    fig.colorbar(filled, ax=right).set_label("log₁₀ training loss")
    i = int(losses.argmin())
    a_min, b_min = float(alphas[i % len(alphas)]), float(betas[i // len(alphas)])
    right.plot(
        [0.0],
        [0.0],
        "*",
        color="white",
        markeredgecolor="black",
        markersize=15,
        label="trained weights θ*",
    )
    right.plot(
        [a_min],
        [b_min],
        "o",
        color=OKABE_ITO[3],
        markeredgecolor="black",
        markersize=6,
        label=f"grid minimum ({a_min:+.2f}, {b_min:+.2f})",
    )
    right.set_aspect("equal")
    right.set_xlabel("α (along filter-normalized direction d₁)")
    right.set_ylabel("β (along d₂)")
    right.set_title("The loss on a random 2-D slice through θ*")
    right.legend(frameon=True, fontsize=8, loc="lower left", framealpha=0.85)
    ctx.figure(
        fig,
        "net-slice",
        "Left: the real network's training cost, with the step at which the engine's "
        "convergence test stopped it. Right: its loss at θ* + α·d₁ + β·d₂, with d₁, d₂ random "
        "and filter-normalized (Li et al. 2018), every grid point one member of one stack.",
    )


# ----------------------------------------------------------------------------- the lesson


def _basin(x: float) -> float:
    """The 1-D minimum whose basin of attraction under GD holds x (the maxima bound them;
    the flat saddle does not, though plain GD cannot cross it from the left)."""
    if x < MAXIMA_1D[0]:
        return MINIMA_1D[0]
    if x < MAXIMA_1D[1]:
        return MINIMA_1D[1]
    return MINIMA_1D[2]


def _name_1d(x: float) -> str:
    places = {
        MINIMA_1D[0]: "global minimum",
        MINIMA_1D[1]: "shallow minimum",
        MINIMA_1D[2]: "local minimum",
        SADDLE_1D: "flat saddle",
    }
    at = min(places, key=lambda p: abs(p - x))
    return places[at] if abs(at - x) < 0.05 else "nowhere in particular"


def _stable_manifold(saddle: Tensor, stable: Tensor, distance: float) -> Tensor:
    """Points on the saddle's stable manifold out to ``distance``, traced by gradient
    ascent from just beside the saddle (ascent runs the descent flow backwards)."""
    p = saddle + 1e-7 * stable
    points = [p]
    while float((p - saddle).norm()) < distance:
        p = p + 1e-3 * _grad(himmelblau, p[None])[0]
        points.append(p)
    return torch.stack(points)


def run(
    out: str | Path | None = None,
    *,
    quick: bool = False,
    device: str = "cpu",
    progress: LessonProgress | None = None,
) -> Lesson:
    """Minima, saddles, noise and convergence on two functions, and a real net's loss slice.

    Args:
        out: folder for ``index.html`` and the PNGs, or None to keep them in memory.
        quick: shorter budgets and a coarser slice (the tests' mode).
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
        subtitle="Gradient descent on a 1-D function and on Himmelblau's function, with and "
        "without noise; a digits net's loss on a filter-normalized random slice.",
    )
    settings = _settings(quick)
    dev, f64 = ctx.device, torch.float64
    findings: list[str] = []
    facts: dict[str, Any] = {}

    # --- 1-D: which minimum each start reaches; the convergence test; the flat saddle.
    ctx.stage("1-D: gradient descent from several starts")
    starts_1d = torch.tensor(STARTS_1D, dtype=f64, device=dev)
    one_d = _descend(wells, starts_1d, lr=LR_1D, steps=settings.steps_1d, tol=TOL, window=WINDOW)
    one_d = _Descent(one_d.path.cpu(), one_d.cost.cpu(), one_d.stop, one_d.change.cpu())
    ends_1d = [float(one_d.path[s if s is not None else -1, j]) for j, s in enumerate(one_d.stop)]
    places_1d = [_name_1d(e) for e in ends_1d]
    labels_1d = [
        f"x₀ = {x0:+.2f} → {place}" for x0, place in zip(STARTS_1D, places_1d, strict=True)
    ]
    minima_reached = sorted({m for m in MINIMA_1D if any(abs(e - m) < 0.05 for e in ends_1d)})
    creeper = places_1d.index("flat saddle") if "flat saddle" in places_1d else None

    ctx.report.section(
        "A 1-D function: three minima, two maxima and a flat saddle",
        "f′(x) = (x + 1.8)(x + 1)(x + 0.55)(x − 0.3)(x − 1.7)(x − 0.95)², f(0) = 0: minima at "
        "−1.8 (the global one), −0.55 (shallow) and 1.7; maxima at −1 and 0.3; at 0.95 a "
        "double root of f′, where f′ = f″ = 0 but f keeps falling on both sides: a flat saddle. "
        f"Gradient descent at learning rate {LR_1D}, from {len(STARTS_1D)} starts at once.",
    )
    _draw_1d(ctx, one_d, labels_1d)
    grouped: dict[str, list[str]] = {}
    for x0, place, end_x in zip(STARTS_1D, places_1d, ends_1d, strict=True):
        if place != "flat saddle":
            grouped.setdefault(f"the {place} (x = {end_x:.3f})", []).append(f"{x0:+.2f}")
    stalled = [
        f"the start at {x0:+.2f} stalled at the flat saddle (x = {end_x:.3f})"
        for x0, place, end_x in zip(STARTS_1D, places_1d, ends_1d, strict=True)
        if place == "flat saddle"
    ]
    findings.append(
        f"On the 1-D function, {len(STARTS_1D)} gradient-descent starts reached "
        f"{len(minima_reached)} different minima: "
        + "; ".join([f"{where} from {', '.join(xs)}" for where, xs in grouped.items()] + stalled)
        + "."
    )
    facts.update(
        starts_1d=list(STARTS_1D),
        ends_1d=ends_1d,
        stops_1d=one_d.stop,
        places_1d=places_1d,
        minima_1d=list(MINIMA_1D),
        minima_1d_reached=minima_reached,
        f_at_minima_1d=[float(wells(torch.tensor(m, dtype=f64))) for m in MINIMA_1D],
    )
    if creeper is not None:
        slope = float(_grad(wells, torch.tensor([ends_1d[creeper]], dtype=f64))[0])
        others = [st for j, st in enumerate(one_d.stop) if j != creeper and st is not None]
        stopped = one_d.stop[creeper]
        how = (
            f"stopped the run from x = {STARTS_1D[creeper]:+.2f} after {stopped} steps"
            if stopped is not None
            else f"had not stopped the run from x = {STARTS_1D[creeper]:+.2f} within its "
            f"{settings.steps_1d} steps, though it hardly moved any more"
        )
        findings.append(
            f"The convergence test (cost change < {TOL:g} over {WINDOW} steps) {how}: it was "
            f"at x = {ends_1d[creeper]:.4f}, beside the flat saddle at {SADDLE_1D}, where "
            f"f′ = {slope:.2g} — a flat cost, not a minimum. The runs that reached minima "
            f"stopped after {min(others)}–{max(others)} steps."
        )
        facts.update(saddle_1d_run=creeper, saddle_1d_stop=ends_1d[creeper], saddle_1d_slope=slope)

    # --- Noise escapes the shallow minimum.
    ctx.stage("1-D: noise against a shallow minimum")
    k = settings.noisy_runs
    noisy_starts = torch.full((k + 1,), SHALLOW_START, dtype=f64, device=dev)
    sigma = torch.full((k + 1,), NOISE, dtype=f64, device=dev)
    sigma[0] = 0.0  # run 0: plain GD
    decay = int(NOISE_DECAY * settings.steps_1d)
    noisy = _descend(
        wells,
        noisy_starts,
        lr=LR_1D,
        steps=settings.steps_1d,
        tol=None,
        window=WINDOW,
        noise=sigma,
        decay_steps=decay,
        seed=1,
    )
    noisy = _Descent(noisy.path.cpu(), noisy.cost.cpu(), noisy.stop, noisy.change.cpu())
    gd_end = float(noisy.path[-1, 0])
    noisy_ends = noisy.path[-1, 1:].tolist()
    basins = [_basin(e) for e in noisy_ends]
    escaped = sum(b != MINIMA_1D[1] for b in basins)
    in_global = sum(b == MINIMA_1D[0] for b in basins)
    ctx.report.section(
        "Noise against a shallow minimum",
        f"{k} runs with gradient noise (σ = {NOISE} at first, decaying linearly to 0 at step "
        f"{decay}, then plain GD to step {settings.steps_1d}) and one plain GD run, all from "
        f"x = {SHALLOW_START}. The noise stands in for SGD's mini-batch noise; its decay for "
        "a decaying learning rate.",
    )
    _draw_noise(ctx, noisy, decay, escaped, k)
    gd_place = _name_1d(gd_end)
    findings.append(
        f"Plain GD from x = {SHALLOW_START} stayed in the {gd_place} (x = {gd_end:.4f}, "
        f"f = {float(wells(torch.tensor(gd_end, dtype=f64))):.3f}); with Gaussian gradient "
        f"noise, {escaped} of {k} runs left it, {in_global} of them ending in the global "
        f"minimum at {MINIMA_1D[0]} (f = {facts['f_at_minima_1d'][0]:.3f})."
    )
    facts.update(
        noise_sigma=NOISE,
        noisy_runs=k,
        gd_shallow_end=gd_end,
        noisy_ends=noisy_ends,
        noisy_escaped=escaped,
        noisy_in_global=in_global,
    )

    # --- 2-D: Himmelblau, several starts.
    ctx.stage("2-D: Himmelblau's function from several starts")
    minima = torch.tensor(HIMMELBLAU_MINIMA, dtype=f64)
    saddles = torch.stack(
        [_newton(himmelblau, torch.tensor(s, dtype=f64)) for s in _HIMMELBLAU_SADDLES]
    )
    maximum = _newton(himmelblau, torch.tensor(_HIMMELBLAU_MAXIMUM, dtype=f64))
    starts_2d = torch.tensor(STARTS_2D, dtype=f64, device=dev)
    two_d = _descend(
        himmelblau, starts_2d, lr=LR_2D, steps=settings.steps_2d, tol=TOL, window=WINDOW
    )
    two_d = _Descent(two_d.path.cpu(), two_d.cost.cpu(), two_d.stop, two_d.change.cpu())
    ends_2d = [two_d.path[s if s is not None else -1, j] for j, s in enumerate(two_d.stop)]
    nearest = [_nearest(e, minima) for e in ends_2d]
    reached = [i for i, _ in nearest]
    ctx.report.section(
        "A 2-D function: Himmelblau's four minima",
        f"Gradient descent at learning rate {LR_2D} from {len(STARTS_2D)} starts around the "
        "square [−4.5, 4.5]². The four minima are equally deep (f = 0): which one a run "
        "reaches depends only on the basin it starts in. Saddles and the maximum are found "
        "by Newton's method on ∇f = 0 (autograd Hessian).",
    )
    _draw_2d(ctx, two_d, saddles, maximum, reached)
    worst = max(d for _, d in nearest)
    findings.append(
        f"On Himmelblau's function the {len(STARTS_2D)} starts reached "
        f"{len(set(reached))} of its 4 minima; every end point lay within {worst:.1e} of a "
        "published minimum, after "
        f"{min(s for s in two_d.stop if s)}–{max(s for s in two_d.stop if s)} steps."
    )
    facts.update(
        starts_2d=[list(s) for s in STARTS_2D],
        ends_2d=[e.tolist() for e in ends_2d],
        minima_2d_reached=reached,
        distance_to_published_minimum=[d for _, d in nearest],
        stops_2d=two_d.stop,
        saddles_2d=saddles.tolist(),
        maximum_2d=maximum.tolist(),
    )

    # --- 2-D: a saddle slows gradient descent.
    ctx.stage("2-D: a saddle slows gradient descent")
    saddle = saddles[0]
    eigenvalues, vectors = torch.linalg.eigh(_hessian(himmelblau, saddle))
    unstable, stable = vectors[:, 0], vectors[:, 1]  # eigenvalues ascending: λ₋ < 0 < λ₊
    unstable = unstable if unstable[0] > 0 else -unstable  # point it towards +x
    below = stable if float(stable[1]) < 0 else -stable  # towards the maximum, below
    manifold = _stable_manifold(saddle, below, SADDLE_DISTANCE)
    saddle_start = manifold[-1] + SADDLE_NUDGE * unstable
    away_start = saddle + (manifold[-1] - saddle).norm() * unstable
    pair = _descend(
        himmelblau,
        torch.stack([saddle_start, away_start]).to(dev),
        lr=LR_2D,
        steps=settings.steps_2d * 2,
        tol=TOL,
        window=WINDOW,
    )
    pair = _Descent(pair.path.cpu(), pair.cost.cpu(), pair.stop, pair.change.cpu())
    grad_norm = torch.stack([_grad(himmelblau, pair.path[:, j]).norm(dim=-1) for j in range(2)], 1)
    near = []
    for j, s in enumerate(pair.stop):
        path = pair.path[: (s if s is not None else len(pair.path)) + 1, j]
        near.append(int(((path - saddle).norm(dim=-1) < NEAR).sum()))
    pair_ends = [pair.path[s if s is not None else -1, j] for j, s in enumerate(pair.stop)]
    pair_minima = [_nearest(e, minima) for e in pair_ends]
    min_grad = float(grad_norm[: (pair.stop[0] or len(grad_norm)), 0].min())
    ctx.report.section(
        "A saddle slows gradient descent",
        f"The saddle at ({float(saddle[0]):.4f}, {float(saddle[1]):.4f}) has Hessian "
        f"eigenvalues {float(eigenvalues[0]):.1f} and {float(eigenvalues[1]):.1f}: downhill "
        "along one direction, uphill along the other. The saddle start lies on its stable "
        f"manifold {SADDLE_DISTANCE} away, nudged {SADDLE_NUDGE:g} off it; the away start "
        "lies as far away along the unstable direction.",
    )
    _draw_saddle(ctx, pair, saddle, manifold, grad_norm, near)
    findings.append(
        f"A saddle slowed gradient descent: the start {SADDLE_DISTANCE} from the saddle at "
        f"({float(saddle[0]):.3f}, {float(saddle[1]):.3f}) on its stable manifold spent "
        f"{near[0]} steps within {NEAR} of it (the gradient norm fell to {min_grad:.1e}) and "
        f"converged after {pair.stop[0]} steps; the start as far away along the unstable "
        f"direction spent {near[1]} steps there and converged after {pair.stop[1]} — both "
        f"in the minimum at {tuple(round(v, 3) for v in minima[pair_minima[0][0]].tolist())}"
        + (
            "."
            if pair_minima[0][0] == pair_minima[1][0]
            else f" and {tuple(round(v, 3) for v in minima[pair_minima[1][0]].tolist())}."
        )
    )
    facts.update(
        saddle=saddle.tolist(),
        saddle_eigenvalues=eigenvalues.tolist(),
        saddle_start=saddle_start.tolist(),
        away_start=away_start.tolist(),
        saddle_steps=pair.stop[0],
        away_steps=pair.stop[1],
        saddle_near_steps=near[0],
        away_near_steps=near[1],
        saddle_min_grad_norm=min_grad,
        saddle_pair_minima=[i for i, _ in pair_minima],
    )

    # --- The convergence test on the cost curves.
    ctx.report.section(
        "The convergence test",
        f"A run has converged when its cost changed by less than tol = {TOL:g} over the last "
        f"{WINDOW} steps; it then stops and is held where it is (as the training engine "
        "does with TrainConfig(tol=…, window=…)).",
    )
    _draw_convergence(ctx, one_d, labels_1d, TOL)

    # --- A real network's loss on a random 2-D slice.
    ctx.stage("a real net: training")
    ds = data.load("digits").to(device=dev)
    net = models.mlp(NET_WIDTHS, "relu", members=1, device=dev)
    models.init_members(net, "he_normal", seeds=0)
    config = TrainConfig(
        optimizer="adam",
        lr=0.01,
        batch_size="full",
        steps=settings.net_steps,
        tol=1e-4,
        window=20,
        check_every=10,
    )
    result = ctx.train(net, ds, config)
    member = result.members[0]
    converged_at = member.stopped_step if member.status == "converged" else None
    ctx.stage("a real net: the loss slice")
    generator = torch.Generator(device=dev).manual_seed(1)
    theta = {name: p.detach()[0] for name, p in net.named_parameters()}
    directions = (
        filter_normalized_direction(theta, generator),
        filter_normalized_direction(theta, generator),
    )
    half = settings.grid // 2  # the grid is odd: α = β = 0 (θ* itself) is on it exactly
    axis = torch.arange(-half, half + 1, device=dev, dtype=torch.float32) / half
    losses = loss_slice(net, ds.x_train, ds.y_train, directions, axis, axis).cpu()
    centre = settings.grid // 2
    at_centre = float(losses[centre, centre])
    i = int(losses.argmin())
    a_min, b_min = float(axis[i % settings.grid]), float(axis[i // settings.grid])
    ctx.report.section(
        "A real network's loss on a random slice",
        f"A {'–'.join(map(str, NET_WIDTHS))} ReLU MLP (He-normal init, seed 0) trained on the "
        f"digits' {ds.n_train} training images with full-batch Adam (lr 0.01) until the "
        "engine's convergence test (cost change < 1e-4 over 20 steps) or "
        f"{settings.net_steps} steps. Its loss at θ* + α·d₁ + β·d₂ on a {settings.grid}×"
        f"{settings.grid} grid over [−1, 1]², one stack of {settings.grid**2} members.",
    )
    _draw_net(ctx, result.loss[:, 0], converged_at, axis, axis, losses)
    edge = torch.cat([losses[0], losses[-1], losses[:, 0], losses[:, -1]])
    findings.append(
        f"The digits net ({member.status} after {member.stopped_step} steps, train accuracy "
        f"{(member.train_accuracy or 0.0):.1%}, test {(member.test_accuracy or 0.0):.1%}) sits "
        f"at the bottom of its random filter-normalized slice: the grid's lowest loss, "
        f"{float(losses.min()):.4g}, is at (α, β) = ({a_min:+.2f}, {b_min:+.2f}), against "
        f"{at_centre:.4g} at the trained point (0, 0); at the slice's edge the loss rose to "
        f"{float(edge.min()):.2g}–{float(edge.max()):.2g}."
    )
    facts.update(
        net_status=member.status,
        net_steps=member.stopped_step,
        net_converged_at=converged_at,
        net_final_loss=member.final_loss,
        net_test_accuracy=member.test_accuracy,
        slice_grid=settings.grid,
        slice_axis=axis.cpu().tolist(),
        slice_losses=losses.tolist(),
        slice_centre_loss=at_centre,
        slice_min_loss=float(losses.min()),
        slice_argmin=(a_min, b_min),
        slice_edge_loss=(float(edge.min()), float(edge.max())),
    )
    return ctx.finish(findings, facts)
