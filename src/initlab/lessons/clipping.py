"""Lesson 5, clipping: the gradient cliff of a one-neuron RNN, and clipping a net that blows up.

What it teaches. A recurrent net applies the same weights at every time step, so its
gradient is a product of many factors: over most of parameter space the product is tiny,
but where the dynamics change qualitatively (a bifurcation) it is huge. The loss surface
then has *cliffs*: flat regions next to walls whose slope is many orders of magnitude
steeper. Gradient descent that lands on a wall takes a step proportional to that slope and
is thrown far away, often onto a plateau where it stays. Clipping the gradient's norm
keeps the direction and bounds the step, so the descent stays where it was going
(Pascanu, Mikolov & Bengio 2013, §2.3, Fig. 6, and §3.2).

The same happens in an ordinary net trained with too large a learning rate: one step
overshoots, the loss and the gradients grow, the next step overshoots more, and within a
few steps the weights are infinite. Clipping bounds every step, so the same learning rate
trains. Three kinds of clipping are compared, each reporting the norm it saw and whether
it fired (:mod:`initlab.clip`): by value (clamp every component to ±c), by global norm
(rescale g to c when ‖g‖ > c) and adaptive clipping (AGC: rescale a unit's gradient when
‖Gᵢ‖ > λ‖Wᵢ‖, Brock et al. 2021).

The setup. Part 1, Pascanu et al.'s single-neuron recurrent net with no input,
xₜ = w·σ(xₜ₋₁) + b, σ the logistic sigmoid, run for 50 steps from x₀ = 0.5 (our choice of the
starting state), with loss (σ(x₅₀) − 0.7)². The loss and its gradient (autograd, float64) are
computed over a grid of (w, b) at once, one tensor; then plain gradient descent at
learning rate 1 runs from a grid of starting points, with and without clipping the
gradient's norm at 0.5, all starts and both variants as one batch. A start is *thrown* when
a single step of its unclipped descent is longer than 3 (the plotted frame is 10 wide).
Part 2, an MLP 784–128–128–128–10 with ReLU and He-normal weights on 10,000 MNIST
training images, plain SGD on mini-batches of 100 at learning rate 2, trained four times
from the same weights and batches: without clipping (beside it, at learning rate 0.1, the
safe slow alternative), and with value, global-norm and adaptive clipping. The engine
takes one kind of clipping per stack, so each kind is its own stack. The norm before
clipping and whether clipping fired come from the engine; the norm after clipping is
measured as the length of the step the weights took divided by the learning rate (plain
SGD moves θ by −lr·g, g the clipped gradient).

Sources. R. Pascanu, T. Mikolov and Y. Bengio, "On the difficulty of training recurrent
neural networks", ICML 2013, §2.3 and Fig. 6 (the one-neuron net and its cliff) and
§3.2 with Alg. 1 (clipping the norm);
T. Mikolov, "Statistical Language Models Based on Neural Networks", PhD thesis, 2012
(clipping by value); A. Brock, S. De, S. L. Smith and K. Simonyan, "High-Performance
Large-Scale Image Recognition Without Normalization", ICML 2021, §4 (AGC).

The quick size draws the surface on a coarser grid and trains the net on 2,000 images for
120 steps instead of 10,000 for 600.

Example:
    >>> from initlab.lessons import Env
    >>> facts = compute(Size(grid=21, starts=2, limit=300, steps=5), Env())  # a tiny size
    >>> tuple(facts.cliff.loss.shape), sorted(facts.net.runs)
    ((21, 21), ['agc', 'none', 'norm', 'value'])
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from initlab import clip as clipmod
from initlab import data, models
from initlab.lessons._lesson import Env
from initlab.report import OKABE_ITO
from initlab.report.figures import WIDTH, subplots
from initlab.report.html import Report
from initlab.train import ClipKind, Observer, Run, Status, TrainConfig, TrainResult

__all__ = [
    "NAME",
    "QUESTION",
    "SIZES",
    "TITLE",
    "Cliff",
    "Clipped",
    "Descent",
    "Facts",
    "Net",
    "NetRun",
    "Point",
    "Size",
    "compute",
    "draw",
    "findings",
    "rnn_loss",
]

NAME = "clipping"
TITLE = "Gradient clipping: the cliff, and a net that blows up"
QUESTION = (
    "Why does gradient descent get thrown off a loss surface's cliffs, or blow up at a high "
    "learning rate, and how do clipping by value, by norm and adaptive clipping stop it?"
)

# Part 1: Pascanu, Mikolov & Bengio 2013, §2.3 and Fig. 6
X0 = 0.5  # the initial state x₀
STEPS_RNN = 50  # time steps: the loss looks at x₅₀
TARGET = 0.7  # the loss is (σ(x₅₀) − 0.7)²
W_RANGE = (0.0, 10.0)  # the plotted frame
B_RANGE = (-7.0, 3.0)
GD_LR = 1.0  # plain gradient descent on (w, b)
GD_CLIP = 0.5  # the norm threshold of the clipped descent
GD_STEPS = 300
THROWN = 3.0  # a step longer than this (the frame is 10 wide) throws the descent away

# Part 2: a net that diverges at a high learning rate
WIDTHS = [784, 128, 128, 128, 10]
LR = 2.0  # too high for this net without clipping
SAFE_LR = 0.1  # the same net without clipping, at a rate that trains
BATCH = 100
#: kind → (threshold, how the report names it)
KINDS: tuple[ClipKind, ...] = ("value", "norm", "agc")
CLIPS: dict[str, tuple[float, str]] = {
    "value": (0.01, "by value, ±0.01"),
    "norm": (1.0, "by global norm, 1"),
    "agc": (0.02, "adaptive (AGC), λ = 0.02"),
}
# Each kind of clipping as the subject of a sentence.
_CLIPPER = {"value": "clipping by value", "norm": "clipping by global norm", "agc": "AGC"}
RATE_WINDOW = 20  # steps over which the clip rate is averaged
N_PARAMS = sum(a * b + b for a, b in itertools.pairwise(WIDTHS))  # weights and biases


@dataclass(frozen=True)
class Size:
    grid: int  # points per side of the (w, b) grid
    starts: int  # starting points per side for the descents
    limit: int  # MNIST examples per split
    steps: int  # training steps of the net


SIZES = {
    "quick": Size(grid=151, starts=10, limit=2000, steps=120),
    "default": Size(grid=401, starts=10, limit=10000, steps=600),
}


@dataclass(frozen=True)
class Descent:
    """Gradient descent on (w, b) from every start, on the CPU."""

    path: Tensor  # (steps + 1, N, 2) the (w, b) visited
    norm: Tensor  # (steps, N) gradient norm before clipping
    loss: Tensor  # (N,) final loss


@dataclass(frozen=True)
class Point:
    """The one-neuron RNN's loss and its gradient at one (w, b)."""

    w: float
    b: float
    loss: float
    grad: tuple[float, float]  # (∂/∂w, ∂/∂b)


@dataclass(frozen=True)
class Cliff:
    """Part 1: the one-neuron RNN's loss surface and the descents across it, on the CPU."""

    x0: float  # the net as it ran: x₀, the time steps and the target of σ(x_T)
    rnn_steps: int
    target: float
    w: Tensor  # (grid, grid) the grid's w (along dim 0) and b (along dim 1)
    b: Tensor
    loss: Tensor  # (grid, grid)
    grad_norm: Tensor  # (grid, grid)
    starts: Tensor  # (N, 2) the descents' starting points
    plain: Descent
    clipped: Descent  # the norm clipped at GD_CLIP
    jump: Tensor  # (N,) the longest single step of each unclipped descent
    thrown: tuple[int, ...]  # the starts whose unclipped descent took a step over THROWN
    worst: int  # the start thrown farthest
    worst_step: int  # and its longest step (0-based)
    calm: int  # a start far from the cliff: its two descents end closest, at a low loss
    steepest: Point  # the grid's steepest point (on the cliff)
    flattest: Point
    worst_start: Point

    @property
    def grad_norm_max(self) -> float:
        return float(self.grad_norm.max())

    @property
    def grad_norm_min(self) -> float:
        return float(self.grad_norm.min())

    @property
    def longest_step(self) -> float:
        return float(self.jump[self.worst])

    @property
    def landing(self) -> Tensor:
        """(2,) where the worst start's longest step landed."""
        return self.plain.path[self.worst_step + 1, self.worst]


@dataclass(frozen=True)
class NetRun:
    """One stack of part 2: one kind of clipping (or none), from the same weights."""

    label: str  # how the report names it
    result: TrainResult
    after: Tensor  # (steps, M) the gradient norm after clipping: the step taken over lr
    final_loss: tuple[float, ...]  # per member: mean batch loss of the last tenth of steps
    clip_rate: tuple[float, ...]  # per member: the share of steps on which clipping fired


@dataclass(frozen=True)
class Clipped:
    """A clipped run at learning rate LR (member 0 of its stack)."""

    threshold: float
    status: Status
    final_loss: float  # the mean batch loss of the last tenth of the steps
    test_accuracy: float | None
    clip_rate: float  # the share of steps on which clipping fired
    clip_rate_first_tenth: float
    clip_rate_last_tenth: float
    norm_kept_median: float  # the median over the steps of the norm after ÷ before
    norm_before: Tensor  # (steps,) float32 the global gradient norm before clipping
    norm_after: Tensor  # (steps,) float64 and after (the step taken over lr)


@dataclass(frozen=True)
class Net:
    """Part 2: the MLP at learning rate LR without clipping and with each kind."""

    n_train: int
    tail: int  # the final loss is the mean batch loss of this many last steps
    runs: dict[str, NetRun]  # "none" (members at LR and SAFE_LR), then each kind
    clipped: dict[str, Clipped]  # kind → its run
    initial_loss: float  # the first batch loss (every run starts from it)
    unclipped_status: Status  # the run at LR without clipping
    unclipped_stopped_step: int
    unclipped_final_loss: float
    unclipped_max_finite_loss: float  # the largest loss it reached before the end
    safe_status: Status  # the run at SAFE_LR without clipping
    safe_final_loss: float


@dataclass(frozen=True)
class Facts:
    """What the lesson found: the cliff (part 1) and the net clipped three ways (part 2)."""

    size: Size  # the sizes it ran at
    cliff: Cliff
    net: Net


def setup(size: Size) -> str:
    return (
        "Pascanu, Mikolov & Bengio 2013's one-neuron RNN and its gradient cliff; an MLP "
        f"on MNIST that blows up at learning rate {LR:g}, clipped by value, norm and AGC."
    )


def compute(size: Size, env: Env) -> Facts:
    """The one-neuron RNN's surface and descents, then the MLP trained four ways."""
    cliff = _cliff(size, env)
    env.part_done(lambda report: _draw_cliff(report, cliff, size.grid))  # if the net is cut
    return Facts(size=size, cliff=cliff, net=_net(size, env))


# --------------------------------------------------------------------------- part 1


def rnn_loss(
    w: Tensor, b: Tensor, *, x0: float = X0, steps: int = STEPS_RNN, target: float = TARGET
) -> Tensor:
    """Pascanu et al.'s one-neuron RNN: xₜ = w·σ(xₜ₋₁) + b from x₀, loss (σ(x_T) − target)².

    Elementwise over ``w`` and ``b`` (broadcast), so a whole grid of parameters is one call.

    Args:
        w: the recurrent weight(s).
        b: the bias(es), broadcast against ``w``.
        x0: the initial state.
        steps: the time steps T.
        target: what σ(x_T) should be.

    Returns:
        The loss at every (w, b), of their broadcast shape.

    Example:
        >>> w = torch.tensor([0.0], dtype=torch.float64)
        >>> b = torch.tensor([math.log(0.7 / 0.3)], dtype=torch.float64)  # x = b from step 1
        >>> float(rnn_loss(w, b)) < 1e-30
        True
    """
    x = torch.full_like(w + b, x0)  # the broadcast shape
    for _ in range(steps):
        x = w * torch.sigmoid(x) + b
    return (torch.sigmoid(x) - target).square()


def _loss_and_grad(w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """The loss and its gradient (∂/∂w, ∂/∂b) stacked last, for every point at once: the
    points are independent, so the gradient of the sum is each point's own gradient."""
    w = w.detach().requires_grad_()
    b = b.detach().requires_grad_()
    loss = rnn_loss(w, b)
    gw, gb = torch.autograd.grad(loss.sum(), (w, b))
    return loss.detach(), torch.stack([gw, gb], dim=-1)


def _descend(starts: Tensor, clip: float) -> tuple[Descent, Descent]:
    """Plain gradient descent on (w, b) from every start, twice: as it is, and with the
    gradient's norm clipped at ``clip`` (initlab.clip, one member per start). All starts
    of both variants are one batch of independent points; the results are on the CPU."""
    n = len(starts)
    p = torch.cat([starts, starts])  # rows n… are the clipped twins
    path, norms = [p.clone()], []
    for _ in range(GD_STEPS):
        _, g = _loss_and_grad(p[:, 0], p[:, 1])
        norms.append(torch.linalg.vector_norm(g, dim=1))
        clipmod.clip_by_global_norm_([g[n:]], clip, use_grad=False, nonfinite="pass", members=n)
        p = p - GD_LR * g
        path.append(p.clone())
    final, _ = _loss_and_grad(p[:, 0], p[:, 1])
    paths, before, final = torch.stack(path).cpu(), torch.stack(norms).cpu(), final.cpu()
    plain = Descent(paths[:, :n], before[:, :n], final[:n])
    return plain, Descent(paths[:, n:], before[:, n:], final[n:])


def _point(w: Tensor, b: Tensor, loss: Tensor, grad: Tensor, at: Any) -> Point:
    """The point ``at`` (an index) of ``w`` and ``b``, with its loss and gradient."""
    return Point(
        float(w[at]), float(b[at]), float(loss[at]), (float(grad[at][0]), float(grad[at][1]))
    )


def _cliff(size: Size, env: Env) -> Cliff:
    """The surface in float64 (the gradient spans many orders of magnitude), and gradient
    descent across it from a grid of starts, with and without clipping."""
    env.stage("the one-neuron RNN's loss surface")
    f64: dict[str, Any] = {"dtype": torch.float64, "device": env.device}
    w_axis = torch.linspace(*W_RANGE, size.grid, **f64)
    b_axis = torch.linspace(*B_RANGE, size.grid, **f64)
    w, b = torch.meshgrid(w_axis, b_axis, indexing="ij")
    loss, grad = _loss_and_grad(w, b)
    grad_norm = torch.linalg.vector_norm(grad, dim=-1)
    env.stage("gradient descent across the cliff")
    margin = 0.5  # starts inside the frame, on a grid
    ws = torch.linspace(W_RANGE[0] + margin, W_RANGE[1] - margin, size.starts, **f64)
    bs = torch.linspace(B_RANGE[0] + margin, B_RANGE[1] - margin, size.starts, **f64)
    starts = torch.cartesian_prod(ws, bs)
    plain, clipped = _descend(starts, GD_CLIP)
    jump = torch.linalg.vector_norm(plain.path[1:] - plain.path[:-1], dim=2).amax(dim=0)
    worst = int(jump.argmax())
    worst_path = plain.path[:, worst]
    worst_step = int(torch.linalg.vector_norm(worst_path[1:] - worst_path[:-1], dim=1).argmax())
    # and a start far from the cliff, where clipping changes little: the one whose two
    # descents end closest together, among those that reach a low loss
    ends_apart = torch.linalg.vector_norm(plain.path[-1] - clipped.path[-1], dim=1)
    calm = int(torch.where(plain.loss < 1e-3, ends_apart, math.inf).argmin())
    top, flat = (
        divmod(int(grad_norm.argmax()), size.grid),
        divmod(int(grad_norm.argmin()), size.grid),
    )
    start = starts[worst]
    start_loss, start_grad = _loss_and_grad(start[:1], start[1:])
    return Cliff(
        x0=X0,
        rnn_steps=STEPS_RNN,
        target=TARGET,
        w=w.cpu(),
        b=b.cpu(),
        loss=loss.cpu(),
        grad_norm=grad_norm.cpu(),
        starts=starts.cpu(),
        plain=plain,
        clipped=clipped,
        jump=jump,
        thrown=tuple((jump > THROWN).nonzero().flatten().tolist()),
        worst=worst,
        worst_step=worst_step,
        calm=calm,
        steepest=_point(w, b, loss, grad, top),
        flattest=_point(w, b, loss, grad, flat),
        worst_start=_point(start[:1], start[1:], start_loss, start_grad, 0),
    )


# --------------------------------------------------------------------------- part 2


class _StepLength(Observer):
    """Measures the norm of the gradient the optimizer applied, per member, as
    ‖θₜ₊₁ − θₜ‖ / lr: plain SGD moves θ by −lr·g, g the gradient after clipping."""

    every = 1  # after every step: the weights before and after it

    def __init__(self, lrs: list[float]) -> None:
        self.lr = torch.tensor(lrs, dtype=torch.float64)
        self.previous: list[Tensor] = []
        self.steps: list[Tensor] = []  # (M,) each step's length, on the run's device

    def on_start(self, run: Run) -> None:
        self.previous = [p.detach().clone() for p in run.model.parameters()]

    def on_step(self, run: Run) -> None:
        now = [p.detach().clone() for p in run.model.parameters()]
        squares = [
            (a - b).double().reshape(run.members, -1).square().sum(dim=1)
            for a, b in zip(now, self.previous, strict=True)
        ]
        self.steps.append(torch.stack(squares).sum(dim=0).sqrt())
        self.previous = now

    def norms(self) -> Tensor:
        """The norms of every step, (steps, M), on the CPU."""
        return torch.stack(self.steps).cpu() / self.lr


def _train_net(
    env: Env,
    ds: data.Dataset,
    size: Size,
    label: str,
    lrs: list[float],
    clip: ClipKind | None,
    threshold: float,
) -> NetRun:
    net = models.mlp(WIDTHS, "relu", members=len(lrs), device=env.device)
    models.init_members(net, "he_normal", seeds=[0] * len(lrs))  # the same weights for all
    config = TrainConfig(
        lr=lrs,
        batch_size=BATCH,
        steps=size.steps,
        seeds=0,
        clip=clip,
        clip_threshold=threshold,
        check_every=10,
    )
    meter = _StepLength(lrs)
    result = env.train(net, ds, config, observers=[meter])
    tail = max(1, size.steps // 10)
    members = range(len(lrs))
    return NetRun(
        label=label,
        result=result,
        after=meter.norms(),
        final_loss=tuple(float(result.loss[-tail:, m].double().mean()) for m in members),
        clip_rate=tuple(float(result.clipped[:, m].double().mean()) for m in members),
    )


def _clipped(net_run: NetRun, kind: str, size: Size) -> Clipped:
    r, tail = net_run.result, max(1, size.steps // 10)
    return Clipped(
        threshold=CLIPS[kind][0],
        status=r.members[0].status,
        final_loss=net_run.final_loss[0],
        test_accuracy=r.members[0].test_accuracy,
        clip_rate=net_run.clip_rate[0],
        clip_rate_first_tenth=float(r.clipped[: size.steps // 10, 0].double().mean()),
        clip_rate_last_tenth=float(r.clipped[-tail:, 0].double().mean()),
        norm_kept_median=float((net_run.after[:, 0] / r.grad_norm[:, 0]).median()),
        norm_before=r.grad_norm[:, 0],
        norm_after=net_run.after[:, 0],
    )


def _net(size: Size, env: Env) -> Net:
    """The MLP at LR without clipping (and at SAFE_LR), then with each kind of clipping."""
    env.stage("loading MNIST")
    ds = data.load("mnist", limit=size.limit).to(env.device)
    runs: dict[str, NetRun] = {}
    env.stage(f"training without clipping, learning rates {LR:g} and {SAFE_LR:g}")
    runs["none"] = _train_net(env, ds, size, "no clipping", [LR, SAFE_LR], None, 1.0)
    for kind in KINDS:
        threshold, label = CLIPS[kind]
        env.stage(f"training with clipping {label}")
        runs[kind] = _train_net(env, ds, size, label, [LR], kind, threshold)
    none = runs["none"]
    diverged, safe = none.result.members
    unclipped = none.result.loss[:, 0]
    return Net(
        n_train=ds.n_train,
        tail=max(1, size.steps // 10),
        runs=runs,
        clipped={kind: _clipped(runs[kind], kind, size) for kind in KINDS},
        initial_loss=float(unclipped[0]),
        unclipped_status=diverged.status,
        unclipped_stopped_step=diverged.stopped_step,
        unclipped_final_loss=diverged.final_loss,
        unclipped_max_finite_loss=float(unclipped[torch.isfinite(unclipped)].max()),
        safe_status=safe.status,
        safe_final_loss=none.final_loss[1],
    )


# --------------------------------------------------------------------------- drawing


def draw(facts: Facts, report: Report) -> None:
    """The cliff and the descents across it, then the net with and without clipping."""
    _draw_cliff(report, facts.cliff, facts.size.grid)
    _draw_net(report, facts.net, facts.size.steps)


def _draw_cliff(report: Report, cliff: Cliff, grid: int) -> None:
    report.section(
        "The gradient cliff of a one-neuron recurrent net",
        f"xₜ = w·σ(xₜ₋₁) + b, x₀ = {X0:g}, {STEPS_RNN} steps, loss (σ(x₅₀) − {TARGET:g})² "
        f"(Pascanu et al. 2013, §2.3 and Fig. 6). The loss and its gradient are computed by "
        f"autograd in float64 over a {grid}×{grid} grid of (w, b) in one tensor. "
        f"Gradient descent at learning rate {GD_LR:g} runs for {GD_STEPS} steps from "
        f"{len(cliff.starts)} starting points, with and without clipping the gradient's norm "
        f"at {GD_CLIP:g}; two are drawn: the one thrown farthest without clipping, and one "
        "far from the cliff.",
    )
    _draw_surface(report, cliff)
    report.table(
        ["start (w, b)", "longest step", "final loss, GD", f"final loss, clipped at {GD_CLIP:g}"],
        [
            [
                f"({cliff.starts[i, 0]:.1f}, {cliff.starts[i, 1]:.1f})",
                float(cliff.jump[i]),
                float(cliff.plain.loss[i]),
                float(cliff.clipped.loss[i]),
            ]
            for i in sorted(cliff.thrown, key=lambda i: -float(cliff.jump[i]))
        ],
        caption=f"Every start whose unclipped descent took a step longer than {THROWN:g}.",
    )


def _draw_net(report: Report, net: Net, steps: int) -> None:
    report.section(
        "A net that blows up, clipped three ways",
        f"An MLP {WIDTHS} with ReLU and He-normal weights, {net.n_train} MNIST training "
        f"images, plain SGD on batches of {BATCH} at learning rate {LR:g} for {steps} "
        "steps; every run starts from the same weights and sees the same batches.",
    )
    _draw_losses(report, net.runs, first=min(40, steps))
    _draw_norms(report, net.runs)
    report.table(
        ["clipping", "lr", "status", "steps run", "final loss", "test accuracy", "clip rate"],
        [row for net_run in net.runs.values() for row in _rows(net_run)],
        caption=(
            f"Final loss: the mean batch loss of the last {net.tail} steps (NaN: diverged). "
            "Clip rate: the share of steps on which clipping changed the gradient."
        ),
    )


def _rows(net_run: NetRun) -> list[list[Any]]:
    """A row of the summary table for each member of a stack."""
    return [
        [
            net_run.label,
            member.config["lr"],
            {"budget": "ran all steps"}.get(member.status, member.status),
            member.stopped_step,
            net_run.final_loss[m],
            "" if member.test_accuracy is None else f"{member.test_accuracy:.1%}",
            f"{net_run.clip_rate[m]:.0%}",
        ]
        for m, member in enumerate(net_run.result.members)
    ]


def _draw_surface(report: Report, cliff: Cliff) -> None:
    # The two maps one above the other: side by side they would not fit a page's width.
    fig, axes = subplots(2, 1, figsize=(WIDTH, 9.8))
    extent = (W_RANGE[0], W_RANGE[1], B_RANGE[0], B_RANGE[1])
    log_loss = torch.log10(cliff.loss.clamp(min=1e-12)).T.numpy()  # rows: b, columns: w
    log_grad = torch.log10(cliff.grad_norm.clamp(min=1e-12)).T.numpy()
    panels = (
        (axes[0], log_loss, "viridis", "log₁₀ loss", "Loss (σ(x₅₀) − 0.7)², log scale"),
        (axes[1], log_grad, "cividis", "log₁₀ ‖∇loss‖", "Gradient norm, log scale"),
    )
    for ax, values, cmap, label, title in panels:
        image = ax.imshow(values, origin="lower", extent=extent, aspect="auto", cmap=cmap)
        fig.colorbar(image, ax=ax, label=label)
        ax.set_xlim(*W_RANGE)
        ax.set_ylim(*B_RANGE)
        ax.set_xlabel("recurrent weight w")
        ax.set_ylabel("bias b")
        ax.set_title(title)
    axes[0].contour(
        cliff.w.numpy(),
        cliff.b.numpy(),
        cliff.loss.numpy(),
        levels=[1e-3, 1e-2, 0.05],
        colors="white",
        linewidths=0.7,
        alpha=0.8,
    )
    shown = [cliff.worst, cliff.calm]
    # Every drawn point, so that a note finds the frame's emptiest corner.
    drawn = torch.cat([d.path[:, i] for d in (cliff.plain, cliff.clipped) for i in shown])
    drawn = drawn[_inside(drawn)]
    for ax in axes:
        taken = {(0.0, 0.0)} if ax is axes[0] else set()  # the legend's corner
        for i in shown:
            for descent, colour, style, label in (
                (cliff.plain, OKABE_ITO[3], "-", "GD"),
                (cliff.clipped, OKABE_ITO[5], "--", f"GD, norm clipped at {GD_CLIP:g}"),
            ):
                line = label if i == shown[0] else None
                _draw_path(ax, descent.path[:, i], colour, style, line, drawn, taken)
            ax.plot(*cliff.plain.path[0, i].tolist(), "o", color="white", markeredgecolor="black")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(
        f"One-neuron RNN xₜ = w·σ(xₜ₋₁) + b, {STEPS_RNN} steps from x₀ = {X0:g}: the cliff, "
        f"and gradient descent (lr {GD_LR:g}) across it"
    )
    report.figure(
        fig,
        "surface",
        "Top: the loss over (w, b), log scale, with contours at 0.001, 0.01 and 0.05; "
        "bottom: the norm of its gradient, log scale. Where the net's dynamics switch "
        "between a low and a high fixed point the loss drops off a cliff and the gradient "
        "is orders of magnitude larger than around it. Circles: starts; squares: where "
        f"{GD_STEPS} steps ended; arrows: a step that left the frame.",
    )


def _draw_path(
    ax: Any,
    path: Tensor,
    colour: str,
    style: str,
    label: str | None,
    drawn: Tensor,
    taken: set[tuple[float, float]],
) -> None:
    """One descent's path while it stays in the frame; an arrow where it leaves it, or a
    square where it ends. Where it leaves, a note says where it went: in the corner of
    the frame farthest from every ``drawn`` point and not yet ``taken``, with a thin
    arrow to the exit, so that the note covers no path."""
    inside = _inside(path)
    last = int(inside.nonzero().max()) if bool(inside.any()) else 0
    ax.plot(
        path[: last + 1, 0], path[: last + 1, 1], style, color=colour, linewidth=1.8, label=label
    )
    if last == len(path) - 1:
        ax.plot(*path[-1].tolist(), "s", color=colour, markersize=6)
        return
    a, z = path[last], path[last + 1]  # thrown out of the frame: point where it went
    edge = _exit_point(a, z)
    ax.annotate(
        "",
        xy=(float(edge[0]), float(edge[1])),
        xytext=(float(a[0]), float(a[1])),
        arrowprops={"arrowstyle": "-|>", "color": colour, "linewidth": 1.8},
    )
    end = path[-1]
    # the arrow out of the frame is drawn too: the note keeps off it as well
    t = torch.linspace(0.0, 1.0, 20, dtype=torch.float64)[:, None]
    arrow = a.double() + t * (edge.double() - a.double())
    corner = _emptiest_corner(torch.cat([drawn.double(), arrow]), taken)
    taken.add(corner)
    ax.annotate(
        f"thrown to ({float(z[0]):.0f}, {float(z[1]):.0f})\nin one step;\n"
        f"ends at ({float(end[0]):.0f}, {float(end[1]):.0f})",
        xy=(float(a[0]), float(a[1])),
        xytext=(0.03 + 0.94 * corner[0], 0.04 + 0.92 * corner[1]),
        textcoords="axes fraction",
        ha="left" if corner[0] == 0 else "right",
        va="bottom" if corner[1] == 0 else "top",
        color="black",
        fontsize=8,
        bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "0.6", "boxstyle": "round"},
        arrowprops={"arrowstyle": "->", "color": "0.25", "linewidth": 0.9},
    )


def _emptiest_corner(drawn: Tensor, taken: set[tuple[float, float]]) -> tuple[float, float]:
    """The corner of the (w, b) frame, as axes fractions (0 or 1 each), whose note area
    (about a quarter of the width and height) is farthest from the ``drawn`` points."""
    frame = torch.tensor([W_RANGE[0], B_RANGE[0]], dtype=torch.float64)
    span = torch.tensor([W_RANGE[1] - W_RANGE[0], B_RANGE[1] - B_RANGE[0]], dtype=torch.float64)
    points = (drawn.double() - frame) / span  # in axes fractions
    corners = [c for c in ((0.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.0, 0.0)) if c not in taken]

    def clearance(corner: tuple[float, float]) -> float:
        # the note's centre, an eighth of the frame in from the corner
        centre = torch.tensor([0.15 + 0.7 * corner[0], 0.12 + 0.76 * corner[1]])
        if not len(points):
            return math.inf
        return float((points - centre.double()).norm(dim=1).min())

    return max(corners or [(1.0, 1.0)], key=clearance)


def _exit_point(a: Tensor, z: Tensor) -> Tensor:
    """Where the segment from ``a`` (inside the frame) to ``z`` (outside) leaves it."""
    d = z - a
    t = 1.0
    for k, (low, high) in enumerate((W_RANGE, B_RANGE)):
        if float(d[k]) > 0:
            t = min(t, (high - float(a[k])) / float(d[k]))
        elif float(d[k]) < 0:
            t = min(t, (low - float(a[k])) / float(d[k]))
    return a + t * d


def _inside(path: Tensor) -> Tensor:
    return (
        (path[:, 0] >= W_RANGE[0])
        & (path[:, 0] <= W_RANGE[1])
        & (path[:, 1] >= B_RANGE[0])
        & (path[:, 1] <= B_RANGE[1])
    )


def _smooth(values: Tensor, window: int) -> Tensor:
    """Trailing moving average over ``window`` steps (shorter at the start)."""
    cumulative = torch.cat([torch.zeros(1, dtype=torch.float64), values.double().cumsum(0)])
    ends = torch.arange(1, len(values) + 1)
    starts = (ends - window).clamp(min=0)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def _draw_losses(report: Report, runs: dict[str, NetRun], first: int) -> None:
    fig, axes = subplots(2, 1, figsize=(WIDTH, 8.6))
    colours = iter(OKABE_ITO)
    for net_run in runs.values():
        for m, member in enumerate(net_run.result.members):
            colour = next(colours)
            loss = net_run.result.loss[:, m]
            steps = net_run.result.steps
            label = net_run.label
            if net_run.label.startswith("no"):
                label = f"{label} (lr {member.config['lr']:g})"
            finite = torch.isfinite(loss)
            head = finite & (steps < first)
            axes[0].plot(
                steps[head], loss[head], color=colour, linewidth=1.6, marker=".", label=label
            )
            if member.status == "diverged":
                k = int((~finite).nonzero()[0]) if bool((~finite).any()) else len(loss)
                x, y = float(steps[k - 1]), float(loss[k - 1])
                axes[0].plot([x], [y], "X", color=colour, markersize=11)
                axes[0].annotate(
                    f"non-finite at step {member.stopped_step}",
                    (x, y),
                    textcoords="offset points",
                    xytext=(8, -4),
                    color=colour,
                    fontsize=9,
                )
            else:
                axes[1].plot(
                    steps, _smooth(loss, RATE_WINDOW), color=colour, linewidth=1.6, label=label
                )
    axes[0].set_yscale("log")
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("training loss (cross-entropy of the batch)")
    axes[0].set_title(f"The first {first} steps")
    axes[0].legend(fontsize=8, loc="center right")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("training step (mini-batches of 100)")
    axes[1].set_ylabel(f"training loss, mean of the last {RATE_WINDOW} steps")
    axes[1].set_title("The runs that stayed finite, to the end")
    axes[1].legend(fontsize=8, loc="upper right")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"An MLP on MNIST at learning rate {LR:g}, with and without clipping")
    report.figure(
        fig,
        "losses",
        f"Top: at learning rate {LR:g} without clipping the loss grows by orders of magnitude "
        "in a few steps until it is no longer a number (×: the last finite loss); every kind "
        f"of clipping keeps the same rate in check. Bottom: the runs that trained; learning "
        f"rate {SAFE_LR:g} without clipping is the safe, slower alternative.",
    )


def _draw_norms(report: Report, runs: dict[str, NetRun]) -> None:
    kinds = [k for k in runs if k != "none"]
    fig, axes = subplots(
        len(kinds), 2, figsize=(WIDTH, 3.2 * len(kinds)), sharex=True, squeeze=False
    )
    for row, kind in zip(axes, kinds, strict=True):
        net_run = runs[kind]
        steps = net_run.result.steps
        before, after = net_run.result.grad_norm[:, 0], net_run.after[:, 0]
        ax = row[0]
        ax.plot(steps, before, color=OKABE_ITO[3], linewidth=1.0, label="before clipping")
        ax.plot(steps, after, color=OKABE_ITO[0], linewidth=1.0, label="after clipping")
        if kind == "norm":
            threshold = CLIPS["norm"][0]
            ax.axhline(threshold, color="black", linestyle=":", label=f"threshold {threshold:g}")
        ax.set_yscale("log")
        ax.set_ylabel("global gradient norm")
        ax.set_title(f"Clipping {net_run.label}: the norm")
        ax.legend(fontsize=8, loc="upper right")
        ax.grid(alpha=0.3, which="both")
        ax = row[1]
        rate = _smooth(net_run.result.clipped[:, 0].double(), RATE_WINDOW) * 100
        kept = _smooth((after / before).double(), RATE_WINDOW) * 100
        ax.plot(steps, rate, color=OKABE_ITO[2], linewidth=1.6, label="steps on which it fired")
        ax.plot(
            steps,
            kept,
            color=OKABE_ITO[0],
            linewidth=1.6,
            linestyle="--",
            label="norm after ÷ norm before",
        )
        ax.set_ylim(-3, 103)
        ax.set_ylabel(f"%, mean of the last {RATE_WINDOW} steps")
        ax.set_title(f"Clipping {net_run.label}: how often, how much")
        ax.legend(fontsize=8, loc="center right")
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    report.figure(
        fig,
        "norms",
        "Left: the global gradient norm before clipping (measured by the engine) and after "
        "(the step the weights took, divided by the learning rate). Right: the clip rate, "
        f"the share of the last {RATE_WINDOW} steps on which clipping changed the gradient, "
        "and how much of the norm it kept. Value clipping and AGC fire whenever any "
        f"component or any unit of the {N_PARAMS:,} parameters is over its limit, and shrink "
        "the norm by a steady factor; norm clipping fires while the gradients are large and "
        "less and less as the net settles. Value clipping clamps components, so it changes "
        "the direction too; norm clipping keeps the direction; AGC limits each unit's "
        "gradient relative to that unit's weights.",
    )


# --------------------------------------------------------------------------- findings


def findings(facts: Facts) -> list[str]:
    cliff, net = facts.cliff, facts.net
    orders = math.log10(cliff.grad_norm_max / cliff.grad_norm_min)
    start, landing, worst = cliff.worst_start, cliff.landing, cliff.worst
    clipped_text = "; ".join(
        f"{CLIPS[k][1]}: {c.final_loss:.3f} ({c.test_accuracy or 0.0:.1%} test accuracy)"
        for k, c in net.clipped.items()
    )
    rates = "; ".join(
        f"{_CLIPPER[k]} fired on {c.clip_rate:.0%} of the steps "
        f"({c.clip_rate_first_tenth:.0%} in the first tenth of training, "
        f"{c.clip_rate_last_tenth:.0%} in the last) and kept a median "
        f"{c.norm_kept_median:.0%} of the gradient's norm"
        for k, c in net.clipped.items()
    )
    return [
        f"Over the (w, b) grid the one-neuron RNN's gradient norm ranges from "
        f"{cliff.grad_norm_min:.1e} to {cliff.grad_norm_max:.1e}, {orders:.0f} orders "
        f"of magnitude; the steepest point, on the cliff, is (w, b) = "
        f"({cliff.steepest.w:.2f}, {cliff.steepest.b:.2f}).",
        f"From {len(cliff.thrown)} of {len(cliff.starts)} starting points plain gradient "
        f"descent was thrown off the cliff (one step longer than {THROWN:g}); the worst, from "
        f"({start.w:.1f}, {start.b:.1f}), took a step of {cliff.longest_step:.0f} at step "
        f"{cliff.worst_step + 1} to ({float(landing[0]):.0f}, {float(landing[1]):.0f}) and "
        f"ended at loss {float(cliff.plain.loss[worst]):.3f}; with the norm clipped at "
        f"{GD_CLIP:g} it ended at {float(cliff.clipped.loss[worst]):.1e}.",
        f"Without clipping, at learning rate {LR:g}, the MLP's loss became non-finite at "
        f"step {net.unclipped_stopped_step} (it started at {net.initial_loss:.2f}); at "
        f"learning rate {SAFE_LR:g} it fell to {net.safe_final_loss:.3f}. Clipped at learning "
        f"rate {LR:g}, the final loss was {clipped_text}.",
        rates[:1].upper() + rates[1:] + ".",
    ]
