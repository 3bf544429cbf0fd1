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

The quick size takes shorter budgets, fewer noisy runs and a coarser slice (21×21 against
41×41).

Example:
    >>> from initlab.lessons import Env
    >>> tiny = Size(steps_1d=50, noisy_runs=2, steps_2d=50, net_steps=3, grid=3)
    >>> facts = compute(tiny, Env())
    >>> facts.one_d.places[:2], tuple(facts.slice.losses.shape)
    (('global minimum', 'global minimum'), (3, 3))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from initlab import data, models
from initlab.lessons._lesson import Env
from initlab.report import OKABE_ITO
from initlab.report.figures import WIDTH, subplots
from initlab.report.html import Report
from initlab.surfaces import filter_normalized_direction, loss_slice
from initlab.train import TrainConfig

__all__ = [
    "HIMMELBLAU_MINIMA",
    "MINIMA_1D",
    "NAME",
    "QUESTION",
    "SADDLE_1D",
    "SIZES",
    "TITLE",
    "Facts",
    "Size",
    "compute",
    "draw",
    "findings",
    "himmelblau",
    "setup",
    "wells",
]

NAME = "landscape"
TITLE = "Local and global minima, saddle points and convergence"
QUESTION = (
    "Which minimum does gradient descent reach from where it starts, how do saddles and flat "
    "stretches slow and fool it, does gradient noise get it out of a shallow minimum, and "
    "does a trained net sit at the bottom of its loss?"
)


@dataclass(frozen=True)
class Size:
    steps_1d: int  # budget of the 1-D runs (the noise decays to 0 at 70 % of it)
    noisy_runs: int  # how many noisy runs from the shallow minimum
    steps_2d: int  # budget of the 2-D runs (the saddle pair gets twice as many)
    net_steps: int  # the real net's step budget
    grid: int  # slice grid points per axis (odd: θ* itself is on the grid)


SIZES = {
    "quick": Size(steps_1d=1500, noisy_runs=32, steps_2d=600, net_steps=150, grid=21),
    "default": Size(steps_1d=3000, noisy_runs=64, steps_2d=1500, net_steps=800, grid=41),
}

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


def _f(x: float) -> float:
    """The 1-D function at one point."""
    return float(wells(torch.tensor(x, dtype=torch.float64)))


# ----------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class Descent:
    """Runs of gradient descent from K starts, side by side (CPU tensors)."""

    path: Tensor  # (T + 1, K, d) or (T + 1, K) positions, held after a run stops
    cost: Tensor  # (T + 1, K)
    stop: tuple[int | None, ...]  # the step at which the convergence test stopped each run
    change: Tensor  # (T + 1, K) |f(t) − f(t − window)| (NaN for t < window)

    def end(self, j: int) -> int:
        """Run j's last step: where the convergence test stopped it, else the last one."""
        stop = self.stop[j]
        return stop if stop is not None else self.path.shape[0] - 1


@dataclass(frozen=True)
class Creeper:
    """The 1-D run that crept towards the flat saddle."""

    run: int  # its index among STARTS_1D
    x: float  # where it ended
    slope: float  # f′ there


@dataclass(frozen=True)
class OneD:
    """Gradient descent on the 1-D function from STARTS_1D."""

    starts: tuple[float, ...]
    descent: Descent
    ends: tuple[float, ...]  # where each run ended
    places: tuple[str, ...]  # what each end is: "global minimum", "flat saddle", ...
    reached: tuple[float, ...]  # the minima (of MINIMA_1D) some run reached
    f_at_minima: tuple[float, ...]  # f at each of MINIMA_1D
    budget: int  # the step budget
    creeper: Creeper | None  # None when no run ended at the flat saddle


@dataclass(frozen=True)
class Noise:
    """Plain GD (run 0) and noisy runs, all from SHALLOW_START."""

    sigma: float  # the noise's σ at the start
    runs: int  # how many noisy runs
    decay_steps: int  # the step at which the noise reaches 0
    budget: int
    descent: Descent  # runs + 1 runs
    gd_end: float  # where plain GD ended
    gd_cost: float  # f there
    ends: tuple[float, ...]  # where each noisy run ended
    escaped: int  # noisy runs that left the shallow minimum's basin
    in_global: int  # noisy runs that ended in the global minimum's basin


@dataclass(frozen=True)
class TwoD:
    """Gradient descent on Himmelblau's function from STARTS_2D."""

    descent: Descent
    ends: Tensor  # (K, 2) where each run ended
    reached: tuple[int, ...]  # the index in HIMMELBLAU_MINIMA of the minimum nearest each end
    distance: tuple[float, ...]  # each end's distance to that minimum
    saddles: Tensor  # (4, 2) Himmelblau's saddles (Newton's method)
    maximum: Tensor  # (2,) its maximum


@dataclass(frozen=True)
class Saddle:
    """Two starts as far from a saddle: one on its stable manifold, one away from it."""

    point: Tensor  # (2,) the saddle
    eigenvalues: tuple[float, float]  # of the Hessian there, ascending
    manifold: Tensor  # (n, 2) the stable manifold out to SADDLE_DISTANCE
    start: Tensor  # (2,) the saddle start (on the manifold, nudged off it)
    away: Tensor  # (2,) the away start (along the unstable direction)
    descent: Descent  # run 0 from start, run 1 from away
    grad_norm: Tensor  # (T + 1, 2) ‖∇f‖ along each path
    near: tuple[int, int]  # steps each run spent within NEAR of the saddle
    min_grad_norm: float  # the saddle start's smallest gradient norm before it stopped
    minima: tuple[int, int]  # the index in HIMMELBLAU_MINIMA of the minimum each reached


@dataclass(frozen=True)
class Net:
    """The digits net, trained until the engine's convergence test or its budget."""

    status: str  # "converged" or "budget"
    steps: int  # the steps it took
    converged_at: int | None  # the step the convergence test stopped it, if it did
    budget: int
    final_loss: float
    train_accuracy: float
    test_accuracy: float
    n_train: int  # training images
    history: Tensor  # (steps,) the training cost at each step


@dataclass(frozen=True)
class Slice:
    """The trained net's loss at θ* + α·d₁ + β·d₂ over a grid of (α, β)."""

    grid: int  # points per axis
    axis: Tensor  # (grid,) the α and β coordinates, over [−1, 1]
    losses: Tensor  # (grid, grid): row j is β = axis[j], column i is α = axis[i]
    centre_loss: float  # at θ* itself
    min_loss: float
    argmin: tuple[float, float]  # (α, β) of the lowest loss
    edge_loss: tuple[float, float]  # the lowest and highest loss on the grid's edge


@dataclass(frozen=True)
class Facts:
    one_d: OneD
    noise: Noise
    two_d: TwoD
    saddle: Saddle
    net: Net
    slice: Slice


def setup(size: Size) -> str:
    return (
        "Gradient descent on a 1-D function and on Himmelblau's function, with and without "
        "noise; a digits net's loss on a filter-normalized random slice."
    )


# ----------------------------------------------------------------------------- compute


def compute(size: Size, env: Env) -> Facts:
    """Descend the two functions from every start, then train the net and slice its loss."""
    one_d = _one_d(size, env)
    noise = _noise(size, env)
    two_d = _two_d(size, env)
    saddle = _saddle(size, env, two_d.saddles)
    env.part_done(lambda report: _draw_toys(report, one_d, noise, two_d, saddle))
    net, stack, ds = _net(size, env)
    return Facts(one_d, noise, two_d, saddle, net, _slice(size, env, stack, ds))


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


def _descend(
    fn: Callable[[Tensor], Tensor],
    starts: Tensor,
    *,
    lr: float,
    steps: int,
    tol: float | None,
    noise: Tensor | None = None,
    decay_steps: int | None = None,
    seed: int = 0,
) -> Descent:
    """Gradient descent x ← x − lr·(∇f(x) + σ_t·ξ) from each start (K, d) or (K,).

    ``noise`` (K,) is each run's σ (0: plain GD), decaying linearly to 0 at
    ``decay_steps``; ξ ~ N(0, 1) drawn from ``seed``. A run stops — and is held where it
    is — when |f(t) − f(t − WINDOW)| < tol, the convergence test; runs with noise are
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
        if tol is not None and t + 1 >= WINDOW:
            converged = (cost[-1] - cost[-1 - WINDOW]).abs() < tol
            newly = (converged & active & testable).tolist()
            for j in (j for j, hit in enumerate(newly) if hit):
                stop[j] = t + 1
            active &= ~(converged & testable)
            if not bool(active.any()):
                break
    costs = torch.stack(cost)
    change = torch.full_like(costs, math.nan)
    change[WINDOW:] = (costs[WINDOW:] - costs[:-WINDOW]).abs()
    return Descent(torch.stack(path).cpu(), costs.cpu(), tuple(stop), change.cpu())


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


def _one_d(size: Size, env: Env) -> OneD:
    """Which minimum each start reaches; the convergence test; the flat saddle."""
    env.stage("1-D: gradient descent from several starts")
    f64 = torch.float64
    starts = torch.tensor(STARTS_1D, dtype=f64, device=env.device)
    runs = _descend(wells, starts, lr=LR_1D, steps=size.steps_1d, tol=TOL)
    ends = tuple(float(runs.path[runs.end(j), j]) for j in range(len(STARTS_1D)))
    places = tuple(_name_1d(e) for e in ends)
    creeper = None
    if "flat saddle" in places:
        run = places.index("flat saddle")
        slope = float(_grad(wells, torch.tensor([ends[run]], dtype=f64))[0])
        creeper = Creeper(run, ends[run], slope)
    return OneD(
        starts=STARTS_1D,
        descent=runs,
        ends=ends,
        places=places,
        reached=tuple(sorted({m for m in MINIMA_1D if any(abs(e - m) < 0.05 for e in ends)})),
        f_at_minima=tuple(_f(m) for m in MINIMA_1D),
        budget=size.steps_1d,
        creeper=creeper,
    )


def _noise(size: Size, env: Env) -> Noise:
    """Plain GD and noisy runs from the shallow minimum's basin."""
    env.stage("1-D: noise against a shallow minimum")
    k = size.noisy_runs
    starts = torch.full((k + 1,), SHALLOW_START, dtype=torch.float64, device=env.device)
    sigma = torch.full((k + 1,), NOISE, dtype=torch.float64, device=env.device)
    sigma[0] = 0.0  # run 0: plain GD
    decay = int(NOISE_DECAY * size.steps_1d)
    runs = _descend(
        wells,
        starts,
        lr=LR_1D,
        steps=size.steps_1d,
        tol=None,
        noise=sigma,
        decay_steps=decay,
        seed=1,
    )
    gd_end = float(runs.path[-1, 0])
    ends = tuple(runs.path[-1, 1:].tolist())
    basins = [_basin(e) for e in ends]
    return Noise(
        sigma=NOISE,
        runs=k,
        decay_steps=decay,
        budget=size.steps_1d,
        descent=runs,
        gd_end=gd_end,
        gd_cost=_f(gd_end),
        ends=ends,
        escaped=sum(b != MINIMA_1D[1] for b in basins),
        in_global=sum(b == MINIMA_1D[0] for b in basins),
    )


def _nearest(point: Tensor, places: Tensor) -> tuple[int, float]:
    """The index of the nearest of ``places`` (n, d) to ``point`` (d,), and its distance."""
    distance = (places - point).norm(dim=-1)
    i = int(distance.argmin())
    return i, float(distance[i])


def _two_d(size: Size, env: Env) -> TwoD:
    """Himmelblau's function from several starts; its saddles and maximum."""
    env.stage("2-D: Himmelblau's function from several starts")
    f64 = torch.float64
    minima = torch.tensor(HIMMELBLAU_MINIMA, dtype=f64)
    saddles = torch.stack(
        [_newton(himmelblau, torch.tensor(s, dtype=f64)) for s in _HIMMELBLAU_SADDLES]
    )
    maximum = _newton(himmelblau, torch.tensor(_HIMMELBLAU_MAXIMUM, dtype=f64))
    starts = torch.tensor(STARTS_2D, dtype=f64, device=env.device)
    runs = _descend(himmelblau, starts, lr=LR_2D, steps=size.steps_2d, tol=TOL)
    ends = torch.stack([runs.path[runs.end(j), j] for j in range(len(STARTS_2D))])
    nearest = [_nearest(e, minima) for e in ends]
    return TwoD(
        descent=runs,
        ends=ends,
        reached=tuple(i for i, _ in nearest),
        distance=tuple(d for _, d in nearest),
        saddles=saddles,
        maximum=maximum,
    )


def _stable_manifold(saddle: Tensor, stable: Tensor, distance: float) -> Tensor:
    """Points on the saddle's stable manifold out to ``distance``, traced by gradient
    ascent from just beside the saddle (ascent runs the descent flow backwards)."""
    p = saddle + 1e-7 * stable
    points = [p]
    while float((p - saddle).norm()) < distance:
        p = p + 1e-3 * _grad(himmelblau, p[None])[0]
        points.append(p)
    return torch.stack(points)


def _saddle(size: Size, env: Env, saddles: Tensor) -> Saddle:
    """A start on the first saddle's stable manifold against one as far along its
    unstable direction."""
    env.stage("2-D: a saddle slows gradient descent")
    saddle = saddles[0]
    eigenvalues, vectors = torch.linalg.eigh(_hessian(himmelblau, saddle))
    unstable, stable = vectors[:, 0], vectors[:, 1]  # eigenvalues ascending: λ₋ < 0 < λ₊
    unstable = unstable if unstable[0] > 0 else -unstable  # point it towards +x
    below = stable if float(stable[1]) < 0 else -stable  # towards the maximum, below
    manifold = _stable_manifold(saddle, below, SADDLE_DISTANCE)
    start = manifold[-1] + SADDLE_NUDGE * unstable
    away = saddle + (manifold[-1] - saddle).norm() * unstable
    runs = _descend(
        himmelblau,
        torch.stack([start, away]).to(env.device),
        lr=LR_2D,
        steps=size.steps_2d * 2,
        tol=TOL,
    )
    grad_norm = torch.stack([_grad(himmelblau, runs.path[:, j]).norm(dim=-1) for j in range(2)], 1)
    near = [
        int(((runs.path[: runs.end(j) + 1, j] - saddle).norm(dim=-1) < NEAR).sum())
        for j in range(2)
    ]
    minima = torch.tensor(HIMMELBLAU_MINIMA, dtype=torch.float64)
    reached = [_nearest(runs.path[runs.end(j), j], minima)[0] for j in range(2)]
    low, high = eigenvalues.tolist()
    return Saddle(
        point=saddle,
        eigenvalues=(low, high),
        manifold=manifold,
        start=start,
        away=away,
        descent=runs,
        grad_norm=grad_norm,
        near=(near[0], near[1]),
        min_grad_norm=float(grad_norm[: (runs.stop[0] or len(grad_norm)), 0].min()),
        minima=(reached[0], reached[1]),
    )


def _net(size: Size, env: Env) -> tuple[Net, models.Stack, data.Dataset]:
    """The digits net, trained with full-batch Adam."""
    env.stage("a real net: training")
    ds = data.load("digits").to(device=env.device)
    stack = models.mlp(NET_WIDTHS, "relu", members=1, device=env.device)
    models.init_members(stack, "he_normal", seeds=0)
    config = TrainConfig(
        optimizer="adam",
        lr=0.01,
        batch_size="full",
        steps=size.net_steps,
        tol=1e-4,
        window=20,
        check_every=10,
    )
    result = env.train(stack, ds, config)
    member = result.members[0]
    net = Net(
        status=member.status,
        steps=member.stopped_step,
        converged_at=member.stopped_step if member.status == "converged" else None,
        budget=size.net_steps,
        final_loss=member.final_loss,
        train_accuracy=member.train_accuracy or 0.0,
        test_accuracy=member.test_accuracy or 0.0,
        n_train=ds.n_train,
        history=result.loss[:, 0].cpu(),
    )
    return net, stack, ds


def _slice(size: Size, env: Env, stack: models.Stack, ds: data.Dataset) -> Slice:
    """The trained net's loss on a random filter-normalized plane through θ*."""
    env.stage("a real net: the loss slice")
    generator = torch.Generator(device=env.device).manual_seed(1)
    theta = {name: p.detach()[0] for name, p in stack.named_parameters()}
    directions = (
        filter_normalized_direction(theta, generator),
        filter_normalized_direction(theta, generator),
    )
    half = size.grid // 2  # the grid is odd: α = β = 0 (θ* itself) is on it exactly
    axis = torch.arange(-half, half + 1, device=env.device, dtype=torch.float32) / half
    losses = loss_slice(stack, ds.x_train, ds.y_train, directions, axis, axis).cpu()
    axis = axis.cpu()
    i = int(losses.argmin())
    edge = torch.cat([losses[0], losses[-1], losses[:, 0], losses[:, -1]])
    return Slice(
        grid=size.grid,
        axis=axis,
        losses=losses,
        centre_loss=float(losses[half, half]),
        min_loss=float(losses.min()),
        argmin=(float(axis[i % size.grid]), float(axis[i // size.grid])),
        edge_loss=(float(edge.min()), float(edge.max())),
    )


# ----------------------------------------------------------------------------- draw


def draw(facts: Facts, report: Report) -> None:
    _draw_toys(report, facts.one_d, facts.noise, facts.two_d, facts.saddle)
    net = facts.net
    grid = facts.slice.grid
    report.section(
        "A real network's loss on a random slice",
        f"A {'–'.join(map(str, NET_WIDTHS))} ReLU MLP (He-normal init, seed 0) trained on the "
        f"digits' {net.n_train} training images with full-batch Adam (lr 0.01) until the "
        "engine's convergence test (cost change < 1e-4 over 20 steps) or "
        f"{net.budget} steps. Its loss at θ* + α·d₁ + β·d₂ on a {grid}×{grid} grid over "
        f"[−1, 1]², one stack of {grid**2} members.",
    )
    _draw_net(report, net, facts.slice)


def _draw_toys(report: Report, one_d: OneD, noise: Noise, two_d: TwoD, saddle: Saddle) -> None:
    """The functions one can see: 1-D, noise, 2-D, the saddle, the convergence test."""
    report.section(
        "A 1-D function: three minima, two maxima and a flat saddle",
        "f′(x) = (x + 1.8)(x + 1)(x + 0.55)(x − 0.3)(x − 1.7)(x − 0.95)², f(0) = 0: minima at "
        "−1.8 (the global one), −0.55 (shallow) and 1.7; maxima at −1 and 0.3; at 0.95 a "
        "double root of f′, where f′ = f″ = 0 but f keeps falling on both sides: a flat saddle. "
        f"Gradient descent at learning rate {LR_1D}, from {len(one_d.starts)} starts at once.",
    )
    _draw_1d(report, one_d)
    report.section(
        "Noise against a shallow minimum",
        f"{noise.runs} runs with gradient noise (σ = {noise.sigma} at first, decaying linearly "
        f"to 0 at step {noise.decay_steps}, then plain GD to step {noise.budget}) and one "
        f"plain GD run, all from x = {SHALLOW_START}. The noise stands in for SGD's mini-batch "
        "noise; its decay for a decaying learning rate.",
    )
    _draw_noise(report, noise)
    report.section(
        "A 2-D function: Himmelblau's four minima",
        f"Gradient descent at learning rate {LR_2D} from {len(STARTS_2D)} starts around the "
        "square [−4.5, 4.5]². The four minima are equally deep (f = 0): which one a run "
        "reaches depends only on the basin it starts in. Saddles and the maximum are found "
        "by Newton's method on ∇f = 0 (autograd Hessian).",
    )
    _draw_2d(report, two_d)
    low, high = saddle.eigenvalues
    report.section(
        "A saddle slows gradient descent",
        f"The saddle at ({float(saddle.point[0]):.4f}, {float(saddle.point[1]):.4f}) has "
        f"Hessian eigenvalues {low:.1f} and {high:.1f}: downhill along one direction, uphill "
        "along the other. The saddle start lies on its stable manifold "
        f"{SADDLE_DISTANCE} away, nudged {SADDLE_NUDGE:g} off it; the away start lies as far "
        "away along the unstable direction.",
    )
    _draw_saddle(report, saddle)
    report.section(
        "The convergence test",
        f"A run has converged when its cost changed by less than tol = {TOL:g} over the last "
        f"{WINDOW} steps; it then stops and is held where it is (as the training engine "
        "does with TrainConfig(tol=…, window=…)).",
    )
    _draw_convergence(report, one_d)


#: Line colours: Okabe & Ito's palette without its yellow (too pale on white), then black
#: and grey.
_LINES = (*(c for c in OKABE_ITO if c != "#F0E442"), "#000000", "#7F7F7F")


def _cycle(n: int) -> list[str]:
    return [_LINES[i % len(_LINES)] for i in range(n)]


def _labels_1d(one_d: OneD) -> list[str]:
    return [
        f"x₀ = {x0:+.2f} → {place}" for x0, place in zip(one_d.starts, one_d.places, strict=True)
    ]


def _curve(ax: Any) -> None:
    """The 1-D function over the plotted range."""
    grid = torch.linspace(-2.15, 2.05, 600, dtype=torch.float64)
    ax.plot(grid.numpy(), wells(grid).numpy(), color="#444444", linewidth=1.4, label="f(x)")
    ax.set_ylim(-2.8, 1.6)
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.grid(alpha=0.3)


def _draw_1d(report: Report, one_d: OneD) -> None:
    # "left" and "right" are the top and bottom panels: a page's width holds one.
    fig, (left, right) = subplots(2, 1, figsize=(WIDTH, 8.2))
    _curve(left)
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
    labels = _labels_1d(one_d)
    for j, (colour, label) in enumerate(zip(_cycle(len(labels)), labels, strict=True)):
        path = one_d.descent.path[:, j]
        stop = one_d.descent.stop[j]
        end = path[one_d.descent.end(j)]
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
    left.set_title("Gradient descent from 7 starts (squares)")
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
    report.figure(
        fig,
        "one-d-starts",
        "Top: f with its three minima, two maxima and the flat saddle at x = 0.95; each "
        "start's path as dots, an arrow from start to end. Bottom: each run's x over the "
        "steps; the dotted lines are the minima and the flat saddle.",
    )


def _draw_noise(report: Report, noise: Noise) -> None:
    fig, (left, right) = subplots(
        2, 1, figsize=(WIDTH, 8.6), gridspec_kw={"height_ratios": [1, 1.2]}
    )
    _noise_ends(left, noise)
    _noise_paths(right, noise)
    report.figure(
        fig,
        "noise-escapes",
        "Every run starts at x = −0.45 in the shallow minimum's basin (between the maxima at "
        "−1 and 0.3). Plain GD settles at −0.55 and stays. With Gaussian noise added to the "
        "gradient (σ decaying linearly to 0), the runs hop out of the shallow basin and end "
        "in a deeper minimum.",
    )


def _noise_ends(ax: Any, noise: Noise) -> None:
    """Where the noisy runs and plain GD ended, on the function."""
    _curve(ax)
    ends = noise.descent.path[-1, 1:]
    ax.plot(
        ends.numpy(),
        wells(ends).numpy(),
        "o",
        color=OKABE_ITO[3],
        alpha=0.35,
        markersize=7,
        label=f"noisy runs' end points ({noise.runs})",
    )
    ax.plot(
        [noise.gd_end],
        [noise.gd_cost],
        "*",
        color=OKABE_ITO[0],
        markersize=13,
        label="plain GD's end point",
    )
    ax.plot(
        [SHALLOW_START],
        [_f(SHALLOW_START)],
        "s",
        color="#000000",
        markersize=6,
        label="the start of every run",
    )
    for minimum in MINIMA_1D:
        count = sum(_basin(float(e)) == minimum for e in ends)
        ax.annotate(
            f"{count} noisy run{'s' if count != 1 else ''}",
            (minimum, _f(minimum)),
            xytext=(0, -16),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    ax.set_title("Where the runs ended")
    ax.legend(frameon=False, fontsize=8, loc="upper center")


def _noise_paths(ax: Any, noise: Noise) -> None:
    """x against step for every run, the noisy ones faint."""
    path = noise.descent.path
    steps = torch.arange(path.shape[0]).numpy()
    for j in range(1, path.shape[1]):
        ax.plot(
            steps,
            path[:, j].numpy(),
            color=OKABE_ITO[3],
            linewidth=0.5,
            alpha=0.35,
            label="GD + gradient noise" if j == 1 else None,
        )
    ax.plot(steps, path[:, 0].numpy(), color=OKABE_ITO[0], linewidth=2.2, label="plain GD")
    for i, value in enumerate(MAXIMA_1D):
        ax.axhline(
            value,
            color="#000000",
            linewidth=0.8,
            linestyle="--",
            label="the maxima that bound the shallow basin" if i == 0 else None,
        )
    ax.axvline(noise.decay_steps, color="#777777", linewidth=1.0, linestyle=":")
    ax.annotate(
        "noise has decayed to 0", (noise.decay_steps, 1.9), fontsize=8, ha="right", color="#555555"
    )
    ax.set_xlabel("step")
    ax.set_ylabel("x")
    ax.set_title(f"Noise escapes the shallow minimum: {noise.escaped} of {noise.runs} runs left it")
    ax.grid(alpha=0.3)
    ax.legend(
        frameon=True, framealpha=0.9, fontsize=8, loc="center right", bbox_to_anchor=(1.0, 0.63)
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


def _mark(ax: Any, points: Tensor, marker: str, label: str, size: float = 9) -> None:
    """Landmarks on a map (minima, saddles, a maximum): white, edged in black."""
    points = points.reshape(-1, 2)
    ax.plot(
        points[:, 0].numpy(),
        points[:, 1].numpy(),
        marker,
        color="white",
        markeredgecolor="black",
        markersize=size,
        label=label,
    )


def _path_2d(
    ax: Any, path: Tensor, colour: str, label: str | None, dot: float, width: float
) -> None:
    """A 2-D run: one dot per step, joined, and a square at its start."""
    ax.plot(
        path[:, 0].numpy(),
        path[:, 1].numpy(),
        ".-",
        color=colour,
        markersize=dot,
        linewidth=width,
        label=label,
    )
    ax.plot(
        [float(path[0, 0])],
        [float(path[0, 1])],
        "s",
        color=colour,
        markeredgecolor="black",
        markersize=7,
    )


def _draw_2d(report: Report, two_d: TwoD) -> None:
    fig, ax = subplots(figsize=(7.2, 6.2))
    filled = _contour(ax, himmelblau, -5.2, 5.2, 24)
    bar = fig.colorbar(filled, ax=ax)
    bar.set_label("log₁₀(f + 0.01)")
    _mark(ax, torch.tensor(HIMMELBLAU_MINIMA, dtype=torch.float64), "o", "minima (published)")
    _mark(ax, two_d.saddles, "X", "saddles")
    _mark(ax, two_d.maximum, "^", "maximum")
    runs = two_d.descent
    for j, colour in enumerate(_cycle(runs.path.shape[1])):
        label = "GD paths (one colour per start)" if j == 0 else None
        _path_2d(ax, runs.path[: runs.end(j) + 1, j], colour, label, dot=3, width=1.0)
    ax.set_xlim(-5.2, 5.2)
    ax.set_ylim(-5.2, 5.2)
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(
        f"Himmelblau's function: {len(runs.stop)} starts reach {len(set(two_d.reached))} minima"
    )
    ax.legend(frameon=True, fontsize=8, loc="lower left", framealpha=0.85)
    report.figure(
        fig,
        "two-d-starts",
        "Contours of log₁₀ f; squares are the starts, dotted lines the gradient-descent "
        "paths (one dot per step) up to the step the convergence test stopped them.",
    )


def _log_panel(ax: Any, xlabel: str, ylabel: str, title: str) -> None:
    """A panel of curves on a log scale: labels, a light grid and a frameless legend."""
    ax.set(yscale="log", xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(frameon=False, fontsize=8)


def _draw_saddle(report: Report, saddle: Saddle) -> None:
    from matplotlib.patches import Circle

    fig, (left, right) = subplots(
        2, 1, figsize=(WIDTH, 9.8), gridspec_kw={"height_ratios": [1.35, 1]}
    )
    filled = _contour(left, himmelblau, -1.0, 4.0, 24)
    fig.colorbar(filled, ax=left).set_label("log₁₀(f + 0.01)")
    left.plot(
        saddle.manifold[:, 0].numpy(),
        saddle.manifold[:, 1].numpy(),
        "--",
        color="#000000",
        linewidth=1.2,
        label="the saddle's stable manifold",
    )
    circle = Circle(
        (float(saddle.point[0]), float(saddle.point[1])),
        NEAR,
        fill=False,
        color="#000000",
        linestyle=":",
        linewidth=1.2,
    )
    left.add_patch(circle)
    _mark(left, saddle.point, "X", "saddle", size=10)
    runs = saddle.descent
    labels = ["saddle start", "away start"]
    colours = [OKABE_ITO[3], OKABE_ITO[0]]
    for j, (label, colour) in enumerate(zip(labels, colours, strict=True)):
        path = runs.path[: runs.end(j) + 1, j]
        near = f"{label}: {saddle.near[j]} steps within {NEAR} of the saddle"
        _path_2d(left, path, colour, near, dot=4, width=0.8)
        right.plot(
            torch.arange(len(path)).numpy(),
            saddle.grad_norm[: len(path), j].numpy(),
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
    _log_panel(
        right,
        "step",
        "gradient norm ‖∇f‖ (log scale)",
        "Near the saddle the gradient all but vanishes",
    )
    report.figure(
        fig,
        "saddle-slows",
        "Top: the start on (just off) the saddle's stable manifold slides down to the "
        "saddle, where the slope is nearly flat, and lingers before it falls away towards a "
        "minimum; the start as far from the saddle along its unstable direction goes straight "
        "down. The dotted circle is the 'near the saddle' zone. Bottom: the gradient norm "
        "along each path.",
    )


def _draw_convergence(report: Report, one_d: OneD) -> None:
    fig, (left, right) = subplots(2, 1, figsize=(WIDTH, 8.0), sharex=True)
    runs, labels = one_d.descent, _labels_1d(one_d)
    for j, (colour, label) in enumerate(zip(_cycle(len(labels)), labels, strict=True)):
        stop, end = runs.stop[j], runs.end(j)
        steps = torch.arange(end + 1).numpy()
        for ax, series, width in ((left, runs.cost, 1.5), (right, runs.change, 1.2)):
            ax.plot(steps, series[: end + 1, j].numpy(), color=colour, linewidth=width, label=label)
            if stop is not None:
                ax.plot(
                    [stop],
                    [float(series[stop, j])],
                    "o",
                    color=colour,
                    markersize=6,
                    markeredgecolor="black",
                )
    right.axhline(TOL, color="#000000", linestyle="--", linewidth=1.0)
    right.annotate(
        f"tol = {TOL:g}",
        (0.98, TOL),
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
    report.figure(
        fig,
        "convergence",
        "The 1-D runs again. A run stops when its cost has changed by less than tol over the "
        f"last {WINDOW} steps. The test watches the cost, not the slope's sign: the run that "
        "creeps towards the flat saddle at 0.95 is stopped there too.",
    )


def _draw_net(report: Report, net: Net, plane: Slice) -> None:
    fig, (left, right) = subplots(
        2, 1, figsize=(WIDTH, 9.0), gridspec_kw={"height_ratios": [1, 1.15]}
    )
    _net_training(left, net)
    _net_slice(fig, right, plane)
    report.figure(
        fig,
        "net-slice",
        "Top: the real network's training cost, with the step at which the engine's "
        "convergence test stopped it. Bottom: its loss at θ* + α·d₁ + β·d₂, with d₁, d₂ random "
        "and filter-normalized (Li et al. 2018), every grid point one member of one stack.",
    )


def _net_training(ax: Any, net: Net) -> None:
    """The training cost, and where the convergence test stopped it."""
    steps = torch.arange(1, len(net.history) + 1).numpy()
    ax.plot(steps, net.history.numpy(), color=OKABE_ITO[0], linewidth=1.5, label="training cost")
    stop = net.converged_at
    if stop is not None:
        ax.plot(
            [stop],
            [float(net.history[stop - 1])],
            "o",
            color=OKABE_ITO[3],
            markersize=7,
            markeredgecolor="black",
            label=f"converged: stopped at step {stop}",
        )
    _log_panel(
        ax,
        "step (Adam, full batch)",
        "training cost (cross-entropy, log scale)",
        "Training the 64–32–10 ReLU net on the digits",
    )


def _net_slice(fig: Any, ax: Any, plane: Slice) -> None:
    """The loss's contours over the slice, θ* and the grid's minimum."""
    axis, logl = plane.axis.numpy(), torch.log10(plane.losses).numpy()
    filled = ax.contourf(axis, axis, logl, levels=20, cmap="cividis")
    ax.contour(axis, axis, logl, levels=20, colors="white", linewidths=0.4, alpha=0.6)
    fig.colorbar(filled, ax=ax).set_label("log₁₀ training loss")
    _mark(ax, torch.zeros(2), "*", "trained weights θ*", size=15)
    a_min, b_min = plane.argmin
    ax.plot(
        [a_min],
        [b_min],
        "o",
        color=OKABE_ITO[3],
        markeredgecolor="black",
        markersize=6,
        label=f"grid minimum ({a_min:+.2f}, {b_min:+.2f})",
    )
    ax.set_aspect("equal")
    ax.set_xlabel("α (along filter-normalized direction d₁)")
    ax.set_ylabel("β (along d₂)")
    ax.set_title("The loss on a random 2-D slice through θ*")
    ax.legend(frameon=True, fontsize=8, loc="lower left", framealpha=0.85)


# ----------------------------------------------------------------------------- findings


def findings(facts: Facts) -> list[str]:
    found = [_found_1d(facts.one_d)]
    if facts.one_d.creeper is not None:
        found.append(_found_creeper(facts.one_d, facts.one_d.creeper))
    return [
        *found,
        _found_noise(facts.noise, facts.one_d),
        _found_2d(facts.two_d),
        _found_saddle(facts.saddle),
        _found_net(facts.net, facts.slice),
    ]


def _found_1d(one_d: OneD) -> str:
    grouped: dict[str, list[str]] = {}
    stalled = []
    for x0, place, end_x in zip(one_d.starts, one_d.places, one_d.ends, strict=True):
        if place != "flat saddle":
            grouped.setdefault(f"the {place} (x = {end_x:.3f})", []).append(f"{x0:+.2f}")
        else:
            stalled.append(f"the start at {x0:+.2f} stalled at the flat saddle (x = {end_x:.3f})")
    return (
        f"On the 1-D function, {len(one_d.starts)} gradient-descent starts reached "
        f"{len(one_d.reached)} different minima: "
        + "; ".join([f"{where} from {', '.join(xs)}" for where, xs in grouped.items()] + stalled)
        + "."
    )


def _found_creeper(one_d: OneD, creeper: Creeper) -> str:
    stops = one_d.descent.stop
    others = [st for j, st in enumerate(stops) if j != creeper.run and st is not None]
    stopped, x0 = stops[creeper.run], one_d.starts[creeper.run]
    how = (
        f"stopped the run from x = {x0:+.2f} after {stopped} steps"
        if stopped is not None
        else f"had not stopped the run from x = {x0:+.2f} within its "
        f"{one_d.budget} steps, though it hardly moved any more"
    )
    return (
        f"The convergence test (cost change < {TOL:g} over {WINDOW} steps) {how}: it was "
        f"at x = {creeper.x:.4f}, beside the flat saddle at {SADDLE_1D}, where "
        f"f′ = {creeper.slope:.2g} — a flat cost, not a minimum. The runs that reached minima "
        f"stopped after {min(others)}–{max(others)} steps."
    )


def _found_noise(noise: Noise, one_d: OneD) -> str:
    return (
        f"Plain GD from x = {SHALLOW_START} stayed in the {_name_1d(noise.gd_end)} "
        f"(x = {noise.gd_end:.4f}, f = {noise.gd_cost:.3f}); with Gaussian gradient "
        f"noise, {noise.escaped} of {noise.runs} runs left it, {noise.in_global} of them "
        f"ending in the global minimum at {MINIMA_1D[0]} (f = {one_d.f_at_minima[0]:.3f})."
    )


def _found_2d(two_d: TwoD) -> str:
    stops = [s for s in two_d.descent.stop if s]
    return (
        f"On Himmelblau's function the {len(STARTS_2D)} starts reached "
        f"{len(set(two_d.reached))} of its 4 minima; every end point lay within "
        f"{max(two_d.distance):.1e} of a published minimum, after "
        f"{min(stops)}–{max(stops)} steps."
    )


def _found_saddle(saddle: Saddle) -> str:
    first, second = (tuple(round(v, 3) for v in HIMMELBLAU_MINIMA[i]) for i in saddle.minima)
    point = saddle.point.tolist()
    return (
        f"A saddle slowed gradient descent: the start {SADDLE_DISTANCE} from the saddle at "
        f"({point[0]:.3f}, {point[1]:.3f}) on its stable manifold spent "
        f"{saddle.near[0]} steps within {NEAR} of it (the gradient norm fell to "
        f"{saddle.min_grad_norm:.1e}) and converged after {saddle.descent.stop[0]} steps; the "
        f"start as far away along the unstable direction spent {saddle.near[1]} steps there "
        f"and converged after {saddle.descent.stop[1]} — both in the minimum at {first}"
        + ("." if saddle.minima[0] == saddle.minima[1] else f" and {second}.")
    )


def _found_net(net: Net, plane: Slice) -> str:
    a_min, b_min = plane.argmin
    low, high = plane.edge_loss
    return (
        f"The digits net ({net.status} after {net.steps} steps, train accuracy "
        f"{net.train_accuracy:.1%}, test {net.test_accuracy:.1%}) sits "
        f"at the bottom of its random filter-normalized slice: the grid's lowest loss, "
        f"{plane.min_loss:.4g}, is at (α, β) = ({a_min:+.2f}, {b_min:+.2f}), against "
        f"{plane.centre_loss:.4g} at the trained point (0, 0); at the slice's edge the loss "
        f"rose to {low:.2g}–{high:.2g}."
    )
