"""The training engine: M independent members of one architecture, trained as one stack.

:func:`train` takes a :class:`~initlab.models.Stack`, a :class:`~initlab.data.Dataset`
and a :class:`TrainConfig`, and returns a :class:`TrainResult`. M = 1 is the ordinary
run; there is no second engine. Member m's numbers are those of its own
``nn.Sequential`` trained alone with ``torch.optim`` (in float64 within 1e-10 relative:
sums run in other orders): the loss is a sum of per-member losses (so each member's
gradient is its own), clipping and batch norm work per member, and each member takes
its own optimizer's step at its own learning rate.

**Optimizers.** SGD, momentum and Nesterov (torch's undamped form), RMSprop, Adam and
AdamW with ``torch.optim``'s rules: L2 weight decay added to the gradient, decoupled
(p ← p·(1 − lr·λ)) for AdamW; Adam's bias corrections; ε outside the square root. They
are written here over the stacked tensors, their state in tensors allocated once. The
learning rate is an (M,) tensor that multiplies each member's step, so members may have
their own rates, schedules, and optimizers: each optimizer computes new parameters from
the same starting point and each member keeps those of its own.

**A member's numbers never depend on its neighbours.** Its loss history and final
weights are bit-identical (float32 and float64) whatever the other members are: other
rates, optimizers or clipping thresholds, a member that diverged and is held, or none
(M = 1); wherever it sits in the stack. This is kept by:

- updates made of elementwise operations that round once (multiply, add, subtract,
  divide, square root), each a separate operation. Fused kernels (torch's fused Adam,
  ``addcmul``, ``lerp``, ``add`` with ``alpha``) may fuse a multiply-add in their vector
  code and not in the scalar code that finishes the last elements, so an element's
  result would depend on where it falls in the tensor, hence on M (torch's fused CPU
  Adam moved a float32 loss by 6e-8 with the stack size);
- one route for every stack: the rate is always a multiply by an (M, 1, …) view, the
  same for one rate or many; held members are kept by ``torch.where`` on the new
  parameters, which passes no NaN between members (the former route, a step at lr 1 and
  a rescale once a member was held, moved a healthy member's float32 loss by 2.1e-7
  when its neighbour diverged);
- the loss (a log-softmax over the classes, a gather, a mean per member) and the
  gradient norms reducing each member's row along a contiguous dimension, in an order
  fixed by the row's length alone (a row of 32,768 or more in fixed chunks: torch
  splits a lone row among threads, several rows one per thread).

Below the engine, kernels of torch and of the BLAS may compute the same member
differently at another stack size; within one stack size they do not look at the
neighbours' values, so members of one stack never touch each other. Measured on CPU
(torch 2.13, AVX-512 and AVX2 kernels, 1 and 2 threads):

- matrix products: MKL may block or thread the product of M·out rows (or a batch of M)
  differently from that of out rows. Small ones (a 5-13-7-3 net on batches of 8, up to
  M = 17) give every member the same bits at any M; a 784-100-100-10 net on a batch of
  64 with 2 threads computes a member's outputs and gradients at M = 64 within
  8·u·Σ|aᵢbᵢ| of those at M = 1 (u the unit roundoff; the same bits with 1 thread). The
  grouped convolutions of a CNN stack differ between M = 1 and M > 1 likewise, by
  rounding (5e-7 absolute at most, float32).
- activations whose torch kernel rounds differently in its vector and its scalar code:
  sigmoid (2 ulp), elu, selu, silu, softplus (1 ulp), gelu (1 ulp in float64) and mish
  (3 ulp), and their derivatives; relu, leaky_relu, tanh, hardtanh and identity compute
  every element alike.

Such a rounding difference then grows as any does in training: a chaotic run separates.

**Stopping, per member.** A member whose loss or parameters stop being finite is
*diverged*: from then on its parameters are held where they were and its NaN stays in its
own slice of every tensor, so the other members are unaffected. A member whose cost has
changed by less than ``tol`` over ``window`` steps is *converged* and held too. The rest
run to the budget (``steps`` or ``epochs``). Checks read the device every
``check_every`` steps only; nothing else syncs inside a step.

**History.** The cost, gradient norm, clipping and rate are recorded every
``log_every`` steps and at the last step taken, whatever it is. A member's
``final_loss`` is the cost at its own last step: the last step of the run, or the step
it converged at, or its first non-finite cost.

**Interrupting.** Ctrl-C during :func:`train` finishes the current step (with
``compile=True``'s kernel, the current call: at most about 50 ms of steps), stops, and
returns what was computed, marked ``interrupted``: the history up to the stop, the stop
step included.

Example:
    >>> from initlab import data, models
    >>> ds = data.load("circles", n=200, noise=0.05, seed=1)
    >>> net = models.mlp([2, 8, 1], "relu", members=3)
    >>> _ = models.init_members(net, "he_normal", seeds=0)
    >>> config = TrainConfig(loss="bce", lr=[0.01, 0.1, 1.0], steps=200)
    >>> result = train(net, ds, config)
    >>> [m.status for m in result.members]
    ['budget', 'budget', 'budget']
    >>> result.loss.shape  # (logged steps, members)
    torch.Size([200, 3])
"""

from __future__ import annotations

import functools
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, TypeAlias

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from initlab import clip as clipmod
from initlab import native
from initlab._spec import parse_call
from initlab._validation import check_choice, check_int, check_real, param_message
from initlab.data import Batcher, BatchSize, Dataset, check_dataset
from initlab.models import Stack

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULES",
    "BatchPlan",
    "Evaluation",
    "LogRow",
    "MemberResult",
    "MemberStopped",
    "Observer",
    "Progress",
    "ProgressObserver",
    "Run",
    "TrainConfig",
    "TrainResult",
    "schedule_factor",
    "total_steps",
    "train",
]

LossName: TypeAlias = Literal["cross_entropy", "bce", "mse"]
Schedule: TypeAlias = str | Callable[[int], float]
ClipKind: TypeAlias = Literal["value", "norm", "agc"]
Status: TypeAlias = Literal["converged", "diverged", "budget", "interrupted", "stopped"]
#: A custom cost: (outputs (M, B, out), targets) → (M,) per-member cost of the batch.
CostFn: TypeAlias = Callable[[Tensor, Tensor], Tensor]

LOSSES: tuple[str, ...] = ("cross_entropy", "bce", "mse")
OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")
SCHEDULES: tuple[str, ...] = ("constant", "step_decay", "exponential", "cosine")
_CLIPS: tuple[str, ...] = ("value", "norm", "agc")


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TrainConfig:
    """Everything about a run but the model and the data. Per-member fields take one
    value for all members or a sequence of M values.

    Example:
        >>> TrainConfig(optimizer="adam", lr=[1e-3, 1e-2], batch_size=64, epochs=10).epochs
        10
    """

    loss: LossName = "cross_entropy"  # cross_entropy (logits, int labels), bce (one logit), mse
    optimizer: str | Sequence[str] = "sgd"  # sgd, momentum, nesterov, rmsprop, adam, adamw
    lr: float | Sequence[float] = 0.01  # initial learning rate, > 0
    momentum: float = 0.9  # β of momentum and nesterov (torch's undamped form)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam/AdamW moment decay rates
    alpha: float = 0.99  # RMSprop's square-average decay rate
    eps: float = 1e-8  # Adam/AdamW/RMSprop denominator epsilon
    weight_decay: float = 0.0  # L2 (coupled) for all but AdamW, where it is decoupled
    schedule: Schedule | Sequence[Schedule] = "constant"  # per epoch; see schedule_factor
    batch_size: BatchSize = "full"  # "full" (batch GD), 1 (SGD), k (mini-batch GD)
    seeds: int | Sequence[int] = 0  # shuffle seed: one (all members see one order) or per member
    drop_last: bool = False  # drop each epoch's last, smaller batch
    clip: ClipKind | None = None  # value, norm (global, per member), agc, or None
    clip_threshold: float | Sequence[float] = 1.0  # the clipping threshold, > 0
    steps: int | None = None  # step budget (give steps or epochs)
    epochs: int | None = None  # epoch budget
    tol: float | None = None  # converged when |cost(t) − cost(t − window)| < tol
    window: int = 100  # steps over which the cost change is measured
    log_every: int = 1  # record the per-step history every k steps
    eval_every: int | None = None  # steps between train/test accuracy evaluations (end always)
    check_every: int = 100  # steps between stopping checks (each reads the device once)
    compile: bool = False  # compile the steps for this machine. An MLP stack on SGD,
    #   momentum or Nesterov (clipping by norm or value, weight decay) runs many steps per
    #   call in initlab's C kernel (the machine's C compiler, about a second once;
    #   initlab.native; larger layers' products in torch's MKL); anything else goes through
    #   torch.compile (seconds to start). Neither gives eager's bits (the kernel's runs: 4e-13).

    def __post_init__(self) -> None:
        fn = "TrainConfig"
        check_choice(fn, "loss", self.loss, LOSSES)
        for name in ("momentum", "alpha"):
            check_real(fn, name, getattr(self, name), low=0.0, high=1.0)
        b1, b2 = self.betas
        check_real(fn, "betas", b1, low=0.0, high=1.0, high_open=True)
        check_real(fn, "betas", b2, low=0.0, high=1.0, high_open=True)
        check_real(fn, "eps", self.eps, low=0.0)
        check_real(fn, "weight_decay", self.weight_decay, low=0.0)
        if self.clip is not None:
            check_choice(fn, "clip", self.clip, _CLIPS)
        if self.steps is None and self.epochs is None:
            raise ValueError(
                "TrainConfig needs a budget: steps=… or epochs=… (with tol=… a member may "
                "stop sooner)."
            )
        for name in ("steps", "epochs"):
            if getattr(self, name) is not None:
                check_int(fn, name, getattr(self, name), low=1)
        if self.tol is not None:
            check_real(fn, "tol", self.tol, low=0.0)
        for name in ("window", "log_every", "check_every"):
            check_int(fn, name, getattr(self, name), low=1)
        if self.eval_every is not None:
            check_int(fn, "eval_every", self.eval_every, low=1)
        if self.batch_size != "full":
            check_int(fn, "batch_size", self.batch_size, low=1)
        for value in _as_list(self.optimizer):
            check_choice(fn, "optimizer", value, OPTIMIZERS)
        for value in _as_list(self.lr):
            check_real(fn, "lr", value, low=0.0, low_open=True)
        for value in _as_list(self.clip_threshold):
            check_real(fn, "clip_threshold", value, low=0.0, low_open=True)
        for value in _as_list(self.schedule):
            schedule_factor(value, 0)  # validates a schedule spec

    def per_member(self, name: str, members: int) -> list[Any]:
        """Field ``name`` as a list of M values (a single value repeated)."""
        values = _as_list(getattr(self, name))
        if len(values) == 1:
            return values * members
        if len(values) != members:
            raise ValueError(
                param_message(
                    "train", name, f"one value or {members} (one per member)", getattr(self, name)
                )
            )
        return values


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str) or callable(value) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def schedule_factor(schedule: Schedule, epoch: int) -> float:
    """The learning-rate factor of ``schedule`` at ``epoch`` (lr = lr₀ · factor).

    ``"constant"``: 1. ``"step_decay(interval, rate=1)"``: 1/(1 + rate·⌊epoch/interval⌋).
    ``"exponential(gamma)"``: gammaᵉᵖᵒᶜʰ. ``"cosine(total)"``: (1 + cos(π·min(epoch,
    total)/total))/2. Or any callable ``epoch -> factor``.

    Example:
        >>> [schedule_factor("step_decay(1000)", e) for e in (0, 999, 1000, 2500)]
        [1.0, 1.0, 0.5, 0.3333333333333333]
        >>> schedule_factor("exponential(0.5)", 3)
        0.125
    """
    return _compiled(schedule)(epoch)


def _compiled(schedule: Schedule) -> Callable[[int], float]:
    """The schedule as a function of the epoch (a spec string is parsed once)."""
    if callable(schedule):
        return lambda epoch: float(schedule(epoch))
    if not isinstance(schedule, str):
        raise TypeError(
            param_message("schedule", "schedule", "a schedule spec or a callable", schedule)
        )
    return _parse_schedule(schedule)


@functools.cache
def _parse_schedule(schedule: str) -> Callable[[int], float]:
    fn = "schedule"
    name, args, kwargs = parse_call(schedule, "Schedule", "'step_decay(1000)'")
    name = check_choice(fn, "schedule", name, SCHEDULES)
    names = {
        "constant": [],
        "step_decay": ["interval", "rate"],
        "exponential": ["gamma"],
        "cosine": ["total"],
    }[name]
    if len(args) > len(names) or any(k not in names for k in kwargs):
        raise ValueError(
            f"Schedule {schedule!r}: {name} takes {', '.join(names) or 'no arguments'}."
        )
    params = {**dict(zip(names, args, strict=False)), **kwargs}
    if name == "constant":
        return lambda epoch: 1.0
    if name == "step_decay":
        interval = check_int(fn, "interval", params.get("interval", 1000), low=1)
        rate = check_real(fn, "rate", params.get("rate", 1.0), low=0.0)
        return lambda epoch: 1.0 / (1.0 + rate * (epoch // interval))
    if name == "exponential":
        gamma = check_real(fn, "gamma", params.get("gamma", 0.99), low=0.0, low_open=True)
        return lambda epoch: float(gamma**epoch)
    total = check_int(fn, "total", params.get("total", 100), low=1)
    return lambda epoch: 0.5 * (1.0 + math.cos(math.pi * min(epoch, total) / total))


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class MemberResult:
    """How one member's run went."""

    member: int  # its index in the stack
    config: Mapping[str, Any]  # its own values of the per-member fields
    status: Status  # why it stopped
    stopped_step: int  # how many steps it took (a diverged member: up to its first bad loss)
    final_loss: float  # the cost at its last step (diverged: its first non-finite cost)
    train_accuracy: float | None  # at the end, in eval mode (None for mse)
    test_accuracy: float | None


@dataclass(frozen=True)
class TrainResult:
    """Per-member summaries and histories; tensors are (rows, M) on the CPU.

    ``to_frame()`` gives the per-step history in long form (one row per member and step),
    ``summary_frame()`` one row per member.
    """

    members: tuple[MemberResult, ...]
    steps: Tensor  # (S,) the steps recorded: every log_every, and the last step taken
    loss: Tensor  # (S, M) the cost at those steps (the training loss, or the custom cost)
    grad_norm: Tensor  # (S, M) the global gradient norm per member, before clipping
    clipped: Tensor  # (S, M) bool, whether clipping fired
    lr: Tensor  # (S, M) the learning rate used
    epoch_loss: Tensor  # (E, M) mean cost of each epoch, weighted by batch size
    eval_steps: Tensor  # (K,) steps at which accuracy was evaluated
    train_accuracy: Tensor  # (K, M)
    test_accuracy: Tensor  # (K, M)
    interrupted: bool  # stopped by Ctrl-C (also when pressed at the last step: members "budget")
    seconds: float  # wall time of the training loop
    total_steps: int  # steps run
    stop_reason: str | None = None  # why an observer stopped the run (members: "stopped")

    def to_frame(self) -> pd.DataFrame:
        """The per-step history, one row per (member, step)."""
        import pandas as pd

        steps, members = self.loss.shape
        return pd.DataFrame(
            {
                "member": torch.arange(members).repeat(steps).numpy(),
                "step": self.steps.repeat_interleave(members).numpy(),
                "loss": self.loss.reshape(-1).double().numpy(),
                "grad_norm": self.grad_norm.reshape(-1).double().numpy(),
                "clipped": self.clipped.reshape(-1).numpy(),
                "lr": self.lr.reshape(-1).double().numpy(),
            }
        )

    def summary_frame(self) -> pd.DataFrame:
        """One row per member: its config, why and when it stopped, loss and accuracy."""
        import pandas as pd

        rows = []
        for m in self.members:
            rows.append(
                {
                    "member": m.member,
                    **{k: str(v) if callable(v) else v for k, v in m.config.items()},
                    "status": m.status,
                    "stopped_step": m.stopped_step,
                    "final_loss": m.final_loss,
                    "train_accuracy": m.train_accuracy,
                    "test_accuracy": m.test_accuracy,
                }
            )
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        from initlab._repr import MAX_REPR, number, short_list

        head = f"TrainResult(members={len(self.members)}, steps={self.total_steps}, final_loss="
        reason = self.stop_reason
        if reason is not None and len(reason) > 40:
            reason = reason[:39] + "…"
        tail = f", stop_reason={reason!r})"
        losses = [number(m.final_loss) for m in self.members]
        return head + short_list(losses, MAX_REPR - len(head) - len(tail)) + tail

    def _repr_html_(self) -> str:
        """The run in a notebook: what happened, each member's outcome, the cost curves."""
        from initlab._repr import box, number, paragraphs, png, table

        statuses: dict[str, int] = {}
        for m in self.members:
            statuses[m.status] = statuses.get(m.status, 0) + 1
        said = ", ".join(f"{n} {status}" for status, n in statuses.items())
        lines = [
            f"{len(self.members)} member{'s' if len(self.members) != 1 else ''}, "
            f"{self.total_steps} steps in {self.seconds:.2f} s: {said}."
        ]
        if self.stop_reason is not None:
            lines.append(f"Stopped by an observer: {self.stop_reason}")
        if self.interrupted:
            lines.append("Interrupted (Ctrl-C).")
        text = paragraphs(lines)
        keys = list(dict.fromkeys(k for m in self.members for k in m.config))
        rows = [
            [
                m.member,
                *(_shown(m.config.get(k, "")) for k in keys),
                m.status,
                m.stopped_step,
                number(m.final_loss),
                number(m.train_accuracy),
                number(m.test_accuracy),
            ]
            for m in self.members
        ]
        header = ["member", *keys, "status", "steps", "final loss", "train acc", "test acc"]
        figure = png(self._loss_figure()) if len(self.steps) else ""
        return box("TrainResult", text + table(header, rows, limit=30) + figure)

    def _loss_figure(self) -> Any:
        """The cost against the step, one line per member (a Figure: no pyplot)."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 3.4), dpi=100)
        ax = fig.add_subplot()
        x = self.steps.double().numpy()
        members = self.loss.shape[1]
        for m in range(members):
            y = self.loss[:, m].double()
            y = torch.where(torch.isfinite(y), y, torch.nan)
            config = ", ".join(f"{k}={_shown(v)}" for k, v in self.members[m].config.items())
            label = f"{m}: {config}"[:40] if m < 10 else None
            ax.plot(x, y.numpy(), label=label, linewidth=1.4)
        finite = self.loss[torch.isfinite(self.loss)]
        if finite.numel() and bool((finite > 0).all()):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("cost")
        ax.grid(alpha=0.3)
        if members > 1:
            ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return fig


def _shown(value: Any) -> str:
    """A config value as a table shows it (callables by name, floats in 4 digits)."""
    if callable(value):
        return getattr(value, "__name__", type(value).__name__)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@dataclass(frozen=True)
class Progress:
    """What a progress display needs (:meth:`Run.progress`, :class:`ProgressObserver`)."""

    step: int  # steps done
    total: int  # the step budget
    active: int  # members still training
    members: int  # M
    best_loss: float  # lowest current cost among the members
    worst_loss: float  # highest (inf/NaN when one diverged)
    steps_per_second: float


# --------------------------------------------------------------------------- observers


@dataclass(frozen=True)
class LogRow:
    """One row of the history as it is recorded: (M,) tensors on the run's device (reading
    one waits for the device)."""

    step: int  # the step (0-based) the row records
    loss: Tensor  # the cost at that step
    grad_norm: Tensor  # the global gradient norm before clipping
    clipped: Tensor  # bool, whether clipping fired
    lr: Tensor  # the learning rate used


@dataclass(frozen=True)
class Evaluation:
    """Accuracies after ``step`` steps, (M,) float64 on the CPU (NaN for mse, or without a
    test set)."""

    step: int
    train_accuracy: Tensor
    test_accuracy: Tensor


@dataclass(frozen=True)
class MemberStopped:
    """A member stopped before the others: it diverged or converged."""

    member: int
    status: Status
    step: int  # the steps it took
    final_loss: float  # the cost at its last step


class Observer:
    """Hears a run of :func:`train`: subclass it and override what you need (all no-ops).

    The engine calls only the methods a subclass overrides, at step boundaries. Nothing
    here waits for the device unless the observer reads a tensor (``run.last_loss``, a
    :class:`LogRow`'s) or calls ``run.progress()``: at a stopping check (every
    ``config.check_every`` steps) the engine has just read the device anyway, so an
    observer with ``every = None`` costs the run nothing more. ``run.stop(reason)`` ends the
    run at the next step boundary.

    Example:
        >>> class Print(Observer):
        ...     def on_member_stopped(self, run, event):
        ...         print(f"member {event.member} {event.status} after {event.step} steps")
    """

    every: int | None = None  # on_step every this many steps; None: at each stopping check

    def on_start(self, run: Run) -> None:
        """Before the first step."""

    def on_step(self, run: Run) -> None:
        """After every ``every`` steps (``run.step`` steps done)."""

    def on_log(self, run: Run, row: LogRow) -> None:
        """After each step the history records (every ``config.log_every``, and the last)."""

    def on_eval(self, run: Run, evaluation: Evaluation) -> None:
        """After each accuracy evaluation (every ``config.eval_every`` steps, and the end)."""

    def on_member_stopped(self, run: Run, event: MemberStopped) -> None:
        """When a member diverges or converges (seen at a stopping check)."""

    def on_end(self, run: Run, result: TrainResult) -> None:
        """After the run, with its result."""


class ProgressObserver(Observer):
    """Calls ``fn`` with a :class:`Progress` at every stopping check (a progress bar)."""

    def __init__(self, fn: Callable[[Progress], None]) -> None:
        self.fn = fn

    def on_step(self, run: Run) -> None:
        self.fn(run.progress())


class Run:
    """A run in progress, as its observers see it."""

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine
        self.model: Stack = engine.model
        self.config: TrainConfig = engine.config
        self.members: int = engine.members
        self.total: int = engine.total  # the step budget
        self.steps_per_epoch: int = engine.steps_per_epoch
        self.device: torch.device = engine.device
        self.started = time.perf_counter()  # when the loop started (set again as it starts)
        self.heard = 0.0  # seconds spent in observers' calls

    @property
    def step(self) -> int:
        """Steps done."""
        return self._engine.step

    @property
    def epoch(self) -> int:
        """The epoch under way (0-based)."""
        return self._engine.epoch

    @property
    def last_loss(self) -> Tensor:
        """(M,) the cost at the last step, on the device."""
        return self._engine.last_shown

    @property
    def active(self) -> list[bool]:
        """Per member, whether it still trains (as of the last stopping check)."""
        return list(self._engine.active_host)

    @property
    def elapsed(self) -> float:
        """Seconds of training since the loop started: the time spent in observers (in
        this one's call so far too) is not counted."""
        return time.perf_counter() - self.started - self.heard

    def hear(self, method: Callable[..., None], *args: Any) -> None:
        """Call an observer's method, its time kept out of :attr:`elapsed`."""
        started = time.perf_counter()
        try:
            method(self, *args)
        finally:
            self.heard += time.perf_counter() - started

    def progress(self) -> Progress:
        """What a progress display shows (reads the cost from the device)."""
        values = self.last_loss.tolist()
        finite = [v for v in values if math.isfinite(v)]
        active = self._engine.active_host
        return Progress(
            step=self.step,
            total=self.total,
            active=sum(active),
            members=len(active),
            best_loss=min(finite) if finite else math.nan,
            worst_loss=max(values) if finite and len(finite) == len(values) else math.inf,
            steps_per_second=self.step / max(self.elapsed, 1e-9),
        )

    def stop(self, reason: str = "stopped by an observer") -> None:
        """End the run at the next step boundary; the members still training are marked
        ``stopped`` and the result's ``stop_reason`` is ``reason``."""
        flag = self._engine.flag
        flag.stop, flag.reason = True, reason


class BatchPlan(Protocol):
    """What :func:`train` needs from a batching scheme (:class:`~initlab.data.Batcher`
    is one): steps per epoch, and each epoch's index tensors, (B,) or (M, B)."""

    @property
    def steps_per_epoch(self) -> int: ...

    def epoch(self, epoch: int) -> Iterator[Tensor]: ...


# --------------------------------------------------------------------------- losses


# torch's grain size: a reduction over fewer elements runs on one thread, in one order.
_SERIAL = 32768
_CHUNK = 8192  # a longer row is summed in chunks of this many, then the chunks' sums


def _row_mean(x: Tensor) -> Tensor:
    """The mean of each row of x (M, K), summed in an order fixed by K alone.

    torch sums one row of K ≥ 32,768 in per-thread pieces when it is the only row (M = 1),
    and whole when there are others: the bits would depend on M and on the threads. Here
    such a row is summed in chunks of 8,192 (then the chunks' sums), the same for any M.
    """
    k = x.shape[1]
    if k < _SERIAL:
        return x.sum(dim=1) / k
    whole = k - k % _CHUNK
    total = x[:, :whole].reshape(x.shape[0], -1, _CHUNK).sum(dim=2).sum(dim=1)
    if whole < k:
        total = total + x[:, whole:].sum(dim=1)
    return total / k


def _member_losses(logits: Tensor, y: Tensor, loss: str) -> Tensor:
    """Per-member mean loss over the batch, (M,), from logits in the stack's own layout
    (M, out, B) and targets (1 or M, B, …).

    One route for every M, in kernels that give each member's elements the same bits
    wherever the member sits in the stack: the log-softmax over the classes (dim 1, per
    member and example), a gather, an elementwise difference, and :func:`_row_mean`.
    """
    members, batch = logits.shape[0], logits.shape[2]
    if loss == "mse":
        target = y.to(logits.dtype)
        target = target.unsqueeze(1) if target.dim() == 2 else target.transpose(1, 2)
        return _row_mean((logits - target).square().reshape(members, -1))
    if loss == "bce":
        # −log σ(z) for label 1, −log(1 − σ(z)) for 0: the log-softmax of the logits (0, z).
        # (torch's binary_cross_entropy_with_logits computes some elements in vector code
        # and the last few in scalar code, which round differently: then a member's bits
        # would depend on how many members precede it.)
        logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
        y = y.to(torch.long)
    # Cross-entropy −log_softmax(z)[y]: the log-softmax read in the (M, classes, B) layout
    # in place, and a gather of each example's class (torch's nll_loss2d reads this
    # layout slowly).
    logp = F.log_softmax(logits, dim=1)
    picked = logp.gather(1, y.expand(members, batch).unsqueeze(1))
    return -_row_mean(picked.view(members, batch))


def _member_correct(out: Tensor, y: Tensor, loss: str) -> Tensor:
    """Per-member count of correct predictions, (M,), for cross_entropy or bce."""
    if loss == "cross_entropy":
        return (out.argmax(dim=-1) == y).sum(dim=1)
    return ((torch.sigmoid(out[..., 0]) > 0.5) == y.bool()).sum(dim=1)


# --------------------------------------------------------------------------- optimizers


#: What torch's _foreach_ operations take and return.
_Tensors: TypeAlias = list[Tensor] | tuple[Tensor, ...]


def _member_view(values: Tensor, like: Tensor) -> Tensor:
    """(M,) values as (M, 1, …): one value per member of a stacked tensor."""
    return values.view((-1,) + (1,) * (like.dim() - 1))


# Elements of a parameter slice that plain SGD updates at a time (sgd_in_place): 4 MB in
# float32, a core's share of the caches with the slices of p and g it reads.
_SGD_SLICE = 2**20


class _Rule:
    """One optimizer's update of every member of the stack, with its own state.

    :meth:`delta` returns s such that the new parameters are p − s (AdamW: p·(1 − lr·λ)
    − s, with the factor from :meth:`decay`). Only elementwise operations with one
    rounding each (mul, add, sub, div, sqrt) touch the values, so an element's result
    does not depend on where it sits in memory (see the module docstring). The state
    tensors are allocated once and updated in place.
    """

    def __init__(self, name: str, data: list[Tensor], config: TrainConfig) -> None:
        self.name = name
        self.config = config
        self.steps = 0  # Adam's t
        adam = name in ("adam", "adamw")
        self.buf = [torch.zeros_like(d) for d in data] if name in ("momentum", "nesterov") else []
        self.square = [torch.zeros_like(d) for d in data] if adam or name == "rmsprop" else []
        self.mean = [torch.zeros_like(d) for d in data] if adam else []
        # Adam's per-member factor lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ), rewritten in place every step,
        # so its (M, 1, …) views are made once.
        self.coef = data[0].new_zeros(data[0].shape[0]) if adam else None
        self.coef_views = [] if self.coef is None else [_member_view(self.coef, d) for d in data]
        self.decay_views: list[Tensor] = []  # AdamW's 1 − lr·λ per member, (M, 1, …)
        self.scratch: list[Tensor] = []  # the update, written in place (see _scaled)
        self.small: bool | None = None  # see _small
        self.slice = torch.empty(0)  # sgd_in_place's scratch

    def set_lr(self, lr: Tensor, data: list[Tensor]) -> None:
        """A new learning rate (M,): AdamW's decay factors follow it."""
        if self.name == "adamw" and self.config.weight_decay:
            factor = 1.0 - lr * self.config.weight_decay
            self.decay_views = [_member_view(factor, d) for d in data]

    def delta(
        self,
        pick: list[int] | None,
        p: list[Tensor],
        g: _Tensors,
        lr: Tensor,
        lrv: list[Tensor],
    ) -> _Tensors:
        """The update s of the parameters p (new p = p − s) from the gradients g.

        ``pick``: the indices of the parameters that have a gradient (None: all of them),
        whose state is used; ``lr`` (M,) and ``lrv`` its views, one per tensor. The
        gradients are read, never written (the engine reads them again after a stop).
        """
        c, name = self.config, self.name

        def state(values: list[Tensor]) -> list[Tensor]:
            return values if pick is None else [values[i] for i in pick]

        if c.weight_decay and name != "adamw":  # L2: g + λ·p, torch's coupled decay
            decayed = torch._foreach_mul(p, c.weight_decay)
            torch._foreach_add_(decayed, g)
            g = decayed
        if name == "sgd":
            return self._scaled(g, lrv)
        if name in ("momentum", "nesterov"):  # torch's undamped momentum: b ← μ·b + g
            buf = state(self.buf)
            torch._foreach_mul_(buf, c.momentum)
            torch._foreach_add_(buf, g)
            if name == "momentum":
                return self._scaled(buf, lrv)
            s = torch._foreach_mul(buf, c.momentum)  # nesterov: g + μ·b
            torch._foreach_add_(s, g)
            torch._foreach_mul_(s, lrv)
            return s
        # RMSprop and Adam: v ← β·v + (1 − β)·g²
        beta = c.alpha if name == "rmsprop" else c.betas[1]
        square = state(self.square)
        g2 = torch._foreach_mul(g, g)
        torch._foreach_mul_(g2, 1.0 - beta)
        torch._foreach_mul_(square, beta)
        torch._foreach_add_(square, g2)
        denom = torch._foreach_sqrt(square)
        if name == "rmsprop":  # lr·g/(√v + ε)
            torch._foreach_add_(denom, c.eps)
            s = torch._foreach_div(g, denom)
            torch._foreach_mul_(s, lrv)
            return s
        # Adam: m ← β₁·m + (1 − β₁)·g, then lr/(1 − β₁ᵗ) · m/(√v/√(1 − β₂ᵗ) + ε), written
        # as lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ) · m/(√v + ε·√(1 − β₂ᵗ)): the same number, two
        # operations fewer.
        self.steps += 1
        b1, b2 = c.betas
        mean = state(self.mean)
        g1 = torch._foreach_mul(g, 1.0 - b1)
        torch._foreach_mul_(mean, b1)
        torch._foreach_add_(mean, g1)
        root = math.sqrt(1.0 - b2**self.steps)
        torch._foreach_add_(denom, c.eps * root)
        s = torch._foreach_div(mean, denom)
        assert self.coef is not None
        torch.mul(lr, root / (1.0 - b1**self.steps), out=self.coef)  # on the device: no sync
        torch._foreach_mul_(s, state(self.coef_views))
        return s

    def _small(self, values: _Tensors) -> bool:
        """Under 256k elements in all (decided at the first step): a net whose update is
        one foreach call, its fresh tensors small enough to be reused by malloc."""
        if self.small is None:
            self.small = sum(t.numel() for t in values) < 2**18
        return self.small

    def _scaled(self, values: _Tensors, lrv: list[Tensor]) -> _Tensors:
        """lr·v per tensor (the same multiplications as ``_foreach_mul``) into tensors kept
        from step to step: a fresh 20 MB update per step (784-100 at M = 64) is
        page-faulted in anew (3.7 ms a step under the profiler, against 0.9 ms into a
        kept tensor)."""
        if self._small(values):  # one foreach call for a small net: no fresh pages there
            return torch._foreach_mul(values, lrv)
        if [t.shape for t in self.scratch] != [t.shape for t in values]:
            self.scratch = [torch.empty_like(t) for t in values]
        for v, lr, out in zip(values, lrv, self.scratch, strict=True):
            torch.mul(v, lr, out=out)
        return self.scratch

    def sgd_in_place(self, p: list[Tensor], g: _Tensors, lrv: list[Tensor]) -> bool:
        """Plain SGD, p ← p − lr·g, a large net's tensors a slice of members at a time:
        lr·g into a scratch of ``_SGD_SLICE`` elements, then subtracted, while the slice is
        still in cache (the same two roundings as :meth:`delta` then ``_foreach_sub_``;
        one pass over memory fewer: 784-100-100-10 at M = 256 moves 92 MB of parameters
        a step). False, doing nothing, for a small net, which :meth:`delta` steps in one
        foreach call."""
        if self._small(g):
            return False
        for d, v, lr in zip(p, g, lrv, strict=True):
            per = max(1, d[0].numel())
            rows = max(1, _SGD_SLICE // per)
            if self.slice.numel() < rows * per or self.slice.dtype != d.dtype:
                self.slice = d.new_empty(rows * per)
            for start in range(0, d.shape[0], rows):
                part, step = d[start : start + rows], lr[start : start + rows]
                out = self.slice[: part.numel()].view(part.shape)
                torch.mul(v[start : start + rows], step, out=out)
                part.sub_(out)
        return True

    def decay(self, pick: list[int] | None) -> list[Tensor]:
        """AdamW's per-member factors 1 − lr·λ, or [] when the rule has none."""
        if not self.decay_views or pick is None:
            return self.decay_views
        return [self.decay_views[i] for i in pick]


class _Stepper:
    """Steps the stacked parameters: each member by its own optimizer, at its own lr.

    Every member goes through the same operations whatever the stack holds: one lr or
    many, one optimizer or several, all members training or some held. A single
    optimizer with all members training updates the parameters in place (two passes
    over each tensor for plain SGD: lr·g, then p − lr·g); otherwise each optimizer's
    new parameters are computed aside and each member keeps those of its own
    optimizer, or its old ones when it is held (``torch.where``: a held member's NaN
    stays where it is).
    """

    def __init__(self, params: list[nn.Parameter], names: list[str], config: TrainConfig) -> None:
        self.params = params
        # Detached aliases of the parameters: updated in place without a no_grad guard.
        self.data = [p.detach() for p in params]
        groups = sorted(set(names))
        self.rules = [_Rule(g, self.data, config) for g in groups]
        device = params[0].device
        self.masks = [torch.tensor([n == g for n in names], device=device) for g in groups]
        self.lr: Tensor | None = None
        self.lr_views: list[Tensor] = []

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self, lr: Tensor, active: Tensor, all_active: bool) -> None:
        """One step; lr (M,) per member; ``active`` (M,) bool: the members that train."""
        if lr is not self.lr:  # a new rate (a schedule's new epoch): new views, once
            self.lr = lr
            self.lr_views = [_member_view(lr, d) for d in self.data]
            for rule in self.rules:
                rule.set_lr(lr, self.data)
        # Parameters with no gradient are skipped, as torch.optim skips them.
        pick: list[int] | None = None
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            pick = [i for i, g in enumerate(grads) if g is not None]
            if not pick:
                return
        data = self.data if pick is None else [self.data[i] for i in pick]
        lrv = self.lr_views if pick is None else [self.lr_views[i] for i in pick]
        g = [t for t in grads if t is not None]
        if len(self.rules) == 1 and all_active:
            rule = self.rules[0]
            if (
                rule.name == "sgd"
                and not rule.config.weight_decay
                and rule.sgd_in_place(data, g, lrv)
            ):
                return
            s = rule.delta(pick, data, g, lr, lrv)
            if decay := rule.decay(pick):
                torch._foreach_mul_(data, decay)
            torch._foreach_sub_(data, s)
            return
        kept = data
        for rule, mask in zip(self.rules, self.masks, strict=True):
            s = rule.delta(pick, data, g, lr, lrv)
            decay = rule.decay(pick)
            new = torch._foreach_sub(torch._foreach_mul(data, decay) if decay else data, s)
            keep = mask & active
            kept = [
                torch.where(_member_view(keep, n), n, k) for n, k in zip(new, kept, strict=True)
            ]
        for d, k in zip(data, kept, strict=True):
            d.copy_(k)


def _has_batch_norm(model: nn.Module) -> bool:
    from initlab.norm import StackedBatchNorm

    return any(isinstance(m, StackedBatchNorm) for m in model.modules())


def _on_device(values: Sequence[float], device: torch.device, dtype: torch.dtype) -> Tensor:
    """A small tensor on the device without waiting for it: from pinned memory on CUDA."""
    if device.type != "cuda":
        return torch.tensor(values, dtype=dtype, device=device)
    return torch.tensor(values, dtype=dtype).pin_memory().to(device, non_blocking=True)


def _check_outputs(model: Stack, ds: Dataset, loss: str) -> None:
    """The output width must fit the loss and the labels: a clear error, once, up front."""
    last = model.layers[-1]
    width = int(last.out_features)  # type: ignore[arg-type]
    labels = ds.y_train
    top = int(labels.max().item()) if labels.numel() else 0
    low = int(labels.min().item()) if labels.numel() else 0
    if loss == "cross_entropy" and width <= top:
        raise ValueError(
            f"The model has {width} output(s) but the labels go up to {top}: cross_entropy "
            f"needs one output per class, {top + 1} here. Make the last width {top + 1}."
        )
    if loss == "bce" and (width != 1 or low < 0 or top > 1):
        raise ValueError(
            f"bce needs one output and labels 0/1. Got {width} output(s) and labels in "
            f"[{low}, {top}]. For {top + 1} classes use cross_entropy with {top + 1} outputs."
        )
    if loss == "mse" and width != 1:
        raise ValueError(
            f"mse compares one output with the label. Got {width} outputs; make the last width 1."
        )


def _grads(params: list[nn.Parameter]) -> list[Tensor]:
    return [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]


def _per_member_norm(grads: list[Tensor], members: int) -> Tensor:
    """The global 2-norm of each member's gradients, (M,).

    Every norm runs along a contiguous last dimension, which torch reduces row by row
    in one order whatever the number of rows; over the first dimension of (T, M) it
    sums in another order at M = 1 than at M > 1.
    """
    norms = [torch.linalg.vector_norm(g.reshape(members, -1), dim=1) for g in grads]
    total: Tensor = torch.linalg.vector_norm(torch.stack(norms, dim=1), dim=1)
    return total


# --------------------------------------------------------------------------- backprop


def _in_place(backward: Any, **kwargs: Any) -> Callable[[Tensor, Tensor], Tensor]:
    """An activation's backward ``f(grad, output)`` written over ``grad`` (the ``out=``
    overload, with ``grad`` as its own output): the same numbers as autograd's
    out-of-place call, one pass less over memory and no fresh (M, out, B) tensor."""
    overload = backward.grad_input

    def call(grad: Tensor, output: Tensor) -> Tensor:
        result: Tensor = overload(grad, output, **kwargs, grad_input=grad)
        return result

    return call


#: The activations a plain MLP stack may use, with their backward from their output
#: (autograd's own formula for the in-place op: threshold_backward for relu_, …), each
#: run in place.
_BACKWARD: dict[type[nn.Module], tuple[Callable[[Tensor], Tensor], Callable[..., Tensor]]] = {
    nn.ReLU: (torch.relu_, _in_place(torch.ops.aten.threshold_backward, threshold=0)),
    nn.Tanh: (torch.tanh_, _in_place(torch.ops.aten.tanh_backward)),
    nn.Sigmoid: (torch.sigmoid_, _in_place(torch.ops.aten.sigmoid_backward)),
}


class _StepBuffers(NamedTuple):
    """The tensors one step of :class:`_Backprop` writes, kept from step to step. Fresh
    (M, out, B) tensors every step are fresh pages: at M = 1,000 on the circles net, perf
    found 14 % of a slow run in the kernel's zeroing of them (``clear_page_erms``), and
    steps that took 5.5 ms slowed to 10–17 ms."""

    outputs: list[Tensor | None]  # each layer's output; None for the model's (the
    # caller reads it: new every step)
    below: list[Tensor | None]  # the gradient each layer passes down; None for the first
    logits: Tensor | None  # bce's (0, z), its zeros written once; None for cross-entropy
    logp: Tensor  # the log-softmax of the logits
    dlogp: Tensor  # the gradient of the loss with respect to the logits


class _Backprop:
    """A plain MLP stack's loss and gradients without autograd: the forward pass, then its
    backward written out as the batched matrix products autograd would run.

    At M = 1 on a tiny net a step is dispatch, not arithmetic: autograd's graph, engine
    and gradient accumulation were half of a 2-10-5-1 step (about 100 of 210 µs). Here
    every operation is the one autograd calls for it, on the same operands in the same
    layout (``_log_softmax_backward_data``, ``bmm`` and ``mm`` with the same transposes,
    ``sum`` for the biases, ``threshold_backward``/``tanh_backward``/``sigmoid_backward``
    from the in-place activation's output), so the gradients are autograd's bit for bit
    and every guarantee of the engine holds unchanged. Only stacks of
    :class:`~initlab.models.StackedLinear` layers each followed by at most one ReLU, tanh
    or sigmoid, trained on cross-entropy or bce, without hooks and uncompiled, take this
    route (:meth:`build`); any other model, or one a hook is put on during the run, goes
    through autograd.

    Each parameter's ``.grad`` is one tensor, written again at every step (not a new
    tensor per step as after autograd with ``zero_grad``): an observer that keeps a
    gradient across steps must ``clone()`` it.
    """

    def __init__(self, model: Stack, loss: str, layers: list[tuple[Any, Any]]) -> None:
        self.loss = loss
        self.members = model.members
        # (weight, bias or None, activation or None, its backward) per linear layer.
        self.layers = layers
        self.params = list(model.parameters())
        # Detached parameters, the biases as (M, out, 1) for baddbmm.
        self.data = [
            (lin.weight.detach(), None if lin.bias is None else lin.bias.detach().unsqueeze(-1))
            for lin, _ in layers
        ]
        # The gradients: one tensor per parameter, written in place every step.
        self.grads = [
            (torch.empty_like(w), None if b is None else torch.empty_like(b)) for w, b in self.data
        ]
        self.pairs: list[tuple[nn.Parameter, Tensor]] = []
        for (lin, _), (gw, gb) in zip(layers, self.grads, strict=True):
            self.pairs.append((lin.weight, gw))
            if gb is not None:
                self.pairs.append((lin.bias, gb.squeeze(-1)))
        # The first layer on a shared batch: one (M·out, in) product, as StackedLinear.
        w0, b0 = self.data[0]
        self.w0 = w0.reshape(-1, w0.shape[2])
        self.b0 = None if b0 is None else b0.reshape(-1, 1)
        self.w0_column_major = self.w0.stride(0) == 1 and self.w0.stride(1) == self.w0.shape[0]
        gw0, gb0 = self.grads[0]
        self.grad_w0 = gw0.view(-1, w0.shape[2])
        self.grad_b0 = None if gb0 is None else gb0.view(-1, 1)
        self.cached_x: Tensor | None = None  # the shared batch whose (in, B) copy is kept
        self.x_t = torch.empty(0)
        self.x_version = self.y_version = -1  # their _version when cached
        first = layers[0][0]
        self.in_features = first.in_features
        self.contiguous = first.in_features <= 8  # as Stack.logits: see there
        m = nn.modules.module
        self.hook_dicts = [
            m._global_forward_hooks,
            m._global_forward_pre_hooks,
            m._global_backward_hooks,
            m._global_backward_pre_hooks,
        ]
        for module in model.modules():
            self.hook_dicts += [
                module._forward_hooks,
                module._forward_pre_hooks,
                module._backward_hooks,
                module._backward_pre_hooks,
            ]
        self.buffers: dict[tuple[Any, ...], Tensor] = {}  # see _buffer
        # Views that stay valid while the parameters are updated in place.
        self.weights_t = [w.transpose(1, 2) for w, _ in self.data]
        self.plan_key: tuple[int, bool] = (-1, False)  # (batch, shared) of self.plan
        self.plan: _StepBuffers | None = None
        self.cached_y: Tensor | None = None  # the targets whose d(loss)/d(log p) is cached
        self.cached: tuple[Tensor, Tensor, Tensor | None] = (torch.empty(0), torch.empty(0), None)

    @staticmethod
    def build(model: Stack, config: TrainConfig) -> _Backprop | None:
        """The route for ``model`` and ``config``, or None where autograd must run."""
        from initlab.models import StackedLinear

        if config.loss not in ("cross_entropy", "bce"):
            return None
        layers: list[tuple[Any, Any]] = []
        for layer in model.layers:
            kind = type(layer)
            if kind is StackedLinear:
                layers.append((layer, None))
            elif kind in _BACKWARD and layers and layers[-1][1] is None:
                layers[-1] = (layers[-1][0], _BACKWARD[kind])
            else:
                return None
        if layers[-1][1] is not None:
            return None
        # A subclass with its own forward computes something else; a parameter shared by
        # two layers (or one outside them) gets gradients this route does not add up.
        if type(model).logits is not Stack.logits or type(model).forward is not Stack.forward:
            return None
        own = [t for lin, _ in layers for t in (lin.weight, lin.bias) if t is not None]
        if len({id(t) for t in own}) != len(own) or len(own) != len(list(model.parameters())):
            return None
        try:
            return _Backprop(model, config.loss, layers)
        except RuntimeError:  # a layout its views cannot take (a non-contiguous weight)
            return None

    def _plan(self, batch: int, shared: bool) -> _StepBuffers:
        """The buffers of a step on ``batch`` examples (see :class:`_StepBuffers`)."""
        members, last = self.members, len(self.data) - 1
        outputs: list[Tensor | None] = []
        below: list[Tensor | None] = [None]
        for i, (weight, _) in enumerate(self.data):
            if i == last:
                outputs.append(None)
            elif i == 0 and shared:
                outputs.append(self._buffer(("z", i), (self.w0.shape[0], batch)))
            else:
                outputs.append(self._buffer(("z", i), (members, weight.shape[1], batch)))
            if i:
                below.append(self._buffer(("grad", i), (members, weight.shape[2], batch)))
        width = self.data[-1][0].shape[1]
        logits = None
        if self.loss == "bce":  # the logits (0, z): the zeros written here, z every step
            logits = self._buffer(("logits",), (members, 2, batch))
            logits[:, 0].zero_()  # (made, or resized: a resize moves the halves)
            width = 2
        shape = (members, width, batch)
        return _StepBuffers(
            outputs, below, logits, self._buffer(("logp",), shape), self._buffer(("dlogp",), shape)
        )

    def _buffer(self, key: tuple[Any, ...], shape: tuple[int, ...] | torch.Size) -> Tensor:
        """The step's tensor ``key``, of ``shape``, in memory kept from step to step."""
        buf = self.buffers.get(key)
        if buf is None:
            buf = self.buffers[key] = self.data[0][0].new_empty(shape)
        elif buf.shape != shape:  # a last, smaller batch: the storage is kept
            buf.resize_(shape)
        return buf

    def ready(self) -> bool:
        """No hook may see this step (a probe put on mid-run, a hook on a parameter),
        every parameter trains."""
        return not any(self.hook_dicts) and all(
            p.requires_grad
            and not p._backward_hooks
            and not getattr(p, "_post_accumulate_grad_hooks", None)
            for p in self.params
        )

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The outputs (M, out, B) and per-member losses (M,) of the batch x (B, in) shared
        or (M, B, in), targets y (1 or M, B); the gradients are left in each ``.grad``
        (the same tensors every step, written with ``out=``)."""
        members, data, layers, grads = self.members, self.data, self.layers, self.grads
        if x.dim() == 2 and members == 1:  # one member's batch is its own: as Stack.logits
            x = x.unsqueeze(0)
        shared = x.dim() == 2
        if not shared:
            h = x.transpose(1, 2)
        elif x is self.cached_x and x._version == self.x_version:  # the full batch, as
            h = self.x_t  # it was transposed (unless changed in place since)
        else:  # as Stack.logits: a shared batch of a few features as (in, B) contiguous
            h = x.T.contiguous() if self.contiguous else x.T
            self.cached_x, self.x_t, self.x_version = x, h, x._version
        inputs: list[Tensor] = []
        batch = h.shape[-1]
        if self.plan is None or self.plan_key != (batch, shared):  # the first step, or a
            self.plan = self._plan(batch, shared)  # batch of another size
            self.plan_key = (batch, shared)
        plan = self.plan
        for i, ((weight, bias), (_, act)) in enumerate(zip(data, layers, strict=True)):
            inputs.append(h)
            buf = plan.outputs[i]
            if i == 0 and shared:
                w, b = self.w0, self.b0
                z = torch.mm(w, h, out=buf) if b is None else torch.addmm(b, w, h, out=buf)
            else:
                if bias is None:
                    z = torch.bmm(weight, h, out=buf)
                else:
                    z = torch.baddbmm(bias, weight, h, out=buf)
            if act is not None:
                z = act[0](z)
            h = z.view(members, weight.shape[1], -1) if i == 0 and shared else z
        out = h
        logits = out
        if plan.logits is not None:  # bce: the log-softmax of (0, z), as _member_losses
            logits = plan.logits
            logits[:, 1].copy_(out[:, 0])
        if y is not self.cached_y or y._version != self.y_version:
            index = (y if self.loss != "bce" else y.to(torch.long)).expand(members, batch)
            index = index.unsqueeze(1)
            # d(−mean picked)/d(log p): −1/B at each example's class (autograd's neg,
            # div, sum and gather backward give this number), 0 elsewhere.
            grad = torch.zeros_like(logits).scatter_(1, index, -1.0 / batch)
            # bce picks from two classes: a select by the label, not a gather (2× faster;
            # the same values, in the same (M, B) layout).
            ones = index[:, 0] == 1 if self.loss == "bce" else None
            self.cached_y, self.cached, self.y_version = y, (index, grad, ones), y._version
        index, grad_logp, ones = self.cached
        logp = torch.log_softmax(logits, 1, out=plan.logp)
        if ones is None:
            picked = logp.gather(1, index).view(members, batch)
        else:
            picked = torch.where(ones, logp[:, 1], logp[:, 0])
        losses = -_row_mean(picked)
        grad_z = torch._log_softmax_backward_data(grad_logp, logp, 1, logp.dtype, out=plan.dlogp)
        if self.loss == "bce":
            grad_z = grad_z[:, 1:]
        for i in range(len(data) - 1, -1, -1):
            weight, act = data[i][0], layers[i][1]
            grad_w, grad_b = grads[i]
            if act is not None:  # from the activation's output, the next layer's input;
                grad_z = act[1](grad_z, inputs[i + 1])  # in place: grad_z is bmm's, ours
            x_in = inputs[i]
            if i == 0 and shared:
                g2 = grad_z.view(-1, grad_z.shape[-1])
                if grad_b is not None:
                    torch.sum(g2, 1, keepdim=True, out=self.grad_b0)
                if self.w0_column_major:  # as autograd's mm
                    grad_w.copy_(torch.mm(x_in, g2.t()).t().view(weight.shape))
                else:
                    torch.mm(g2, x_in.t(), out=self.grad_w0)
            else:
                if grad_b is not None:
                    torch.sum(grad_z, 2, keepdim=True, out=grad_b)
                torch.bmm(grad_z, x_in.transpose(1, 2), out=grad_w)
            if i == 0:
                continue
            # (bmm even for a width-1 layer's outer product: its k = 1 sums start from +0,
            # so a −0 product comes out +0 as in autograd, where a mul would keep −0.)
            grad_z = torch.bmm(self.weights_t[i], grad_z, out=plan.below[i])
        for p, g in self.pairs:
            if p.grad is not g:  # once, or after a step through autograd
                p.grad = g
        return out, losses


# --------------------------------------------------------------------------- interrupt


class _StopFlag:
    """Ctrl-C sets a flag that the loop reads at a step boundary (main thread only)."""

    def __init__(self) -> None:
        self.stop = False
        self.reason: str | None = None  # an observer's, when one stopped the run
        self._previous: Any = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.stop = True

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# --------------------------------------------------------------------------- memory


class _RecycledMemory:
    """While CPU training runs, freed large blocks stay in glibc's heap for reuse.

    glibc's malloc serves a block above its mmap threshold (128 KiB, rising to at most
    32 MiB) with a fresh mapping and unmaps it on free. A stack's gradients and
    activations are such blocks, allocated and freed every step, so every step
    page-faults tens of megabytes in anew: a 784-100-100-10 net at M = 256 and batch 64
    spent most of its step there (742 against 4,259 member-steps/s with the thresholds
    raised, one run of ``benchmarks/stack.py``'s case). Within :func:`train` the mmap and
    trim thresholds are raised (``mallopt``), so freed blocks are reused; afterwards they
    are set back to glibc's initial values, from which glibc returns the heap's free top
    to the system at the next free, as usual. (An explicit ``malloc_trim`` here made the
    next run page-fault all its memory in again: a sweep of short runs, 4 steps of a
    2-10-5-1 stack of 1,024, halved its speed, 45,000 against 89,000 member-steps/s.)
    It is a process-wide setting: nested or concurrent runs share one, kept until the
    last ends. Nothing is done off glibc, on CUDA, or when the user set ``MALLOC_*``
    variables (theirs rule).
    """

    _lock = threading.Lock()
    _depth = 0
    _INITIAL = 128 * 1024  # glibc's initial mmap and trim thresholds
    _M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

    def __init__(self, device: torch.device) -> None:
        self.libc = self._glibc() if device.type == "cpu" else None

    @staticmethod
    def _glibc() -> Any:
        import ctypes
        import os
        import platform

        if platform.libc_ver()[0] != "glibc" or any(k.startswith("MALLOC_") for k in os.environ):
            return None
        try:
            return ctypes.CDLL("libc.so.6")
        except OSError:
            return None

    def __enter__(self) -> _RecycledMemory:
        if self.libc is not None:
            with self._lock:
                if _RecycledMemory._depth == 0:
                    self.libc.mallopt(self._M_MMAP_THRESHOLD, 2**31 - 1)
                    self.libc.mallopt(self._M_TRIM_THRESHOLD, 2**31 - 1)
                _RecycledMemory._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        if self.libc is not None:
            with self._lock:
                _RecycledMemory._depth -= 1
                if _RecycledMemory._depth == 0:
                    self.libc.mallopt(self._M_MMAP_THRESHOLD, self._INITIAL)
                    self.libc.mallopt(self._M_TRIM_THRESHOLD, self._INITIAL)


# --------------------------------------------------------------------------- train


def _as_dataset(data: Dataset | Sequence[Tensor]) -> Dataset:
    if isinstance(data, Dataset):
        return data
    parts = list(data)
    if len(parts) not in (2, 4):
        raise ValueError(
            param_message(
                "train",
                "data",
                "a Dataset or (x_train, y_train[, x_test, y_test])",
                f"a sequence of {len(parts)}",
            )
        )
    x, y = parts[0], parts[1]
    check_dataset(x, y)
    x_test, y_test = (parts[2], parts[3]) if len(parts) == 4 else (x[:0], y[:0])
    num_classes = int(y.max().item()) + 1 if y.dtype == torch.int64 and y.numel() else 1
    return Dataset("tensors", x, y, x_test, y_test, max(num_classes, 1))


def train(
    model: Stack,
    data: Dataset | Sequence[Tensor],
    config: TrainConfig,
    *,
    batches: BatchPlan | None = None,
    cost: CostFn | None = None,
    observers: Sequence[Observer] = (),
) -> TrainResult:
    """Train every member of ``model`` on ``data`` as ``config`` says; return the result.

    Args:
        model: a stack of M members (:func:`initlab.models.mlp`, ``cnn``, ``from_modules``).
        data: a :class:`~initlab.data.Dataset`, or tensors (x_train, y_train[, x_test, y_test]).
        config: the run's settings.
        batches: a batching scheme to use instead of ``config.batch_size``/``seeds`` (e.g. a
            published notebook's order); it must cover the training set each epoch.
        cost: a per-member cost (outputs, targets) → (M,) to record instead of the training
            loss (e.g. a notebook's own cost formula); training still uses ``config.loss``.
        observers: :class:`Observer` objects that hear the run (start, steps, history rows,
            evaluations, members stopping, end) and may stop it at a step boundary; a
            progress display is one (:class:`ProgressObserver`).

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: data that does not fit the model, per-member lists of the wrong
            length, a batch size larger than the training set, non-finite data.

    Example:
        >>> from initlab import data, models
        >>> class StopAt(Observer):
        ...     every = 1
        ...     def on_step(self, run):
        ...         if run.step == 30:
        ...             run.stop("enough")
        >>> net = models.mlp([2, 4, 1], "tanh", members=2)
        >>> ds = data.load("circles", n=100, seed=0)
        >>> result = train(net, ds, TrainConfig(loss="bce", steps=100), observers=[StopAt()])
        >>> result.total_steps, result.stop_reason, result.members[0].status
        (30, 'enough', 'stopped')
    """
    hooks = _Hooks(observers)
    engine = _Engine(model, _as_dataset(data), config, batches, cost)
    run = Run(engine)
    for o in hooks.start:
        o.on_start(run)
    _loop(engine, run, hooks)
    result = engine.result(run)
    for o in hooks.end:
        o.on_end(run, result)
    return result


class _Hooks:
    """The observers sorted by what they override, once (their ``every`` checked first):
    the engine calls only those."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        def overriding(name: str) -> list[Observer]:
            return [o for o in observers if getattr(type(o), name) is not getattr(Observer, name)]

        stepping = overriding("on_step")
        for o in stepping:
            if o.every is not None:
                check_int(type(o).__name__, "every", o.every, low=1)
        self.at_check = [o for o in stepping if o.every is None]
        self.every = [(int(o.every), o) for o in stepping if o.every is not None]
        self.start, self.end = overriding("on_start"), overriding("on_end")
        self.log = overriding("on_log")
        self.eval = overriding("on_eval")
        self.stopped = overriding("on_member_stopped")


def total_steps(steps: int | None, epochs: int | None, steps_per_epoch: int) -> int:
    """The steps a run takes: the smaller of its budgets, whichever are given (0: none).

    Example:
        >>> total_steps(None, 3, 13), total_steps(20, 3, 13), total_steps(100, None, 13)
        (39, 20, 100)
    """
    budgets = [b for b in (steps, None if epochs is None else epochs * steps_per_epoch) if b]
    return min(budgets) if budgets else 0


def _batch_plan(
    model: Stack, config: TrainConfig, n: int, shuffle: int | list[int], device: torch.device
) -> BatchPlan | None:
    """``config.batch_size``'s batching scheme (None: the whole set every step), checked."""
    if config.batch_size == "full":
        return None
    if config.batch_size > n:
        raise ValueError(
            param_message(
                "train",
                "batch_size",
                f"at most the {n} training examples",
                config.batch_size,
                "Use batch_size='full' for all of them.",
            )
        )
    if n % config.batch_size == 1 and not config.drop_last and _has_batch_norm(model):
        raise ValueError(
            f"With {n} examples and batch_size={config.batch_size} each epoch ends with "
            "a batch of 1, and batch norm needs more than one value per channel in "
            "training. Use drop_last=True (--drop-last) or another batch size."
        )
    return Batcher(n, config.batch_size, shuffle, drop_last=config.drop_last, device=device)


class _Engine:
    """A run's state: set up before the loop, read by it, summarized after it.

    The loop itself is :func:`_loop`; what runs once per check, per evaluation or per run
    lives here, out of the hot path.
    """

    def __init__(
        self,
        model: Stack,
        ds: Dataset,
        config: TrainConfig,
        batches: BatchPlan | None,
        cost: CostFn | None,
    ) -> None:
        self.model, self.config, self.cost = model, config, cost
        members = self.members = model.members
        param0 = next(model.parameters())
        device, dtype = self.device, self.dtype = param0.device, param0.dtype
        self.x_train = ds.x_train.to(device=device, dtype=dtype)
        self.x_test = ds.x_test.to(device=device, dtype=dtype)
        y_train, y_test = ds.y_train.to(device), ds.y_test.to(device)
        if config.loss == "bce":
            y_train, y_test = y_train.to(dtype), y_test.to(dtype)
        self.y_train, self.y_test = y_train, y_test
        n = self.x_train.shape[0]
        model._is_shared(self.x_train[:1])  # the features must fit the model: a clear error
        _check_outputs(model, ds, config.loss)
        model.train()

        self.names = config.per_member("optimizer", members)
        self.lr0 = [float(v) for v in config.per_member("lr", members)]
        self.schedules = config.per_member("schedule", members)
        self.thresholds = [float(v) for v in config.per_member("clip_threshold", members)]
        seeds = config.per_member("seeds", members) if not isinstance(config.seeds, int) else None
        self.seeds = seeds
        # Equal seeds are one order: the members then share each batch (no per-member gather).
        shuffle: int | list[int]
        if seeds is None:
            shuffle = int(config.seeds)  # type: ignore[arg-type]
        else:
            shuffle = int(seeds[0]) if len(set(seeds)) == 1 else [int(v) for v in seeds]
        self.plan = (
            batches if batches is not None else _batch_plan(model, config, n, shuffle, device)
        )
        self.steps_per_epoch = 1 if self.plan is None else self.plan.steps_per_epoch
        self.total = total = total_steps(config.steps, config.epochs, self.steps_per_epoch)

        self.params = list(model.parameters())
        self.stepper = _Stepper(self.params, self.names, config)
        # One threshold: a number (no tensor at all). Several: a tensor moved to the device
        # once (TrainConfig has checked them), so no step copies or reads it.
        self.threshold: float | Tensor = (
            self.thresholds[0]
            if len(set(self.thresholds)) == 1
            else torch.tensor(self.thresholds, dtype=dtype, device=device)
        )
        self.active = torch.ones(members, dtype=torch.bool, device=device)
        self.active_host = [True] * members
        self.status: list[Status] = ["budget"] * members
        self.stopped = [total] * members  # steps each member took
        self.pending: list[Tensor] = []  # training losses since the last check
        self.pending_shown: list[Tensor] = []  # the recorded costs of those steps
        self.final: list[float | None] = [None] * members  # cost at a stopped member's last step
        self.no_clip = torch.zeros(members, dtype=torch.bool, device=device)
        self.norm = torch.zeros(members, device=device, dtype=dtype)
        self.fired = self.no_clip
        self.norm_step = -1  # the step whose gradient norm `norm` holds
        self.last_shown = torch.full((members,), math.nan, device=device, dtype=dtype)
        self.ring = torch.full((config.window + 1, members), math.nan, dtype=dtype, device=device)
        self.lr = torch.empty(0)
        self.step = self.epoch = 0
        self.interrupted = False
        self.flag = _StopFlag()
        self.stop_reason: str | None = None
        self.ctrl_c_at_end = False
        self.seconds = 0.0
        self.rec_steps: list[int] = []
        self.rec_loss: list[Tensor] = []
        self.rec_norm: list[Tensor] = []
        self.rec_clip: list[Tensor] = []
        self.rec_lr: list[Tensor] = []
        self.epoch_losses: list[Tensor] = []
        self.eval_steps: list[int] = []
        self.eval_train: list[Tensor] = []
        self.eval_test: list[Tensor] = []

    def evaluate(self, step: int, run: Run, hooks: _Hooks) -> None:
        """Train and test accuracy of every member, in eval mode."""
        model, members, loss = self.model, self.members, self.config.loss
        was_training = model.training
        model.eval()
        with torch.no_grad():
            accs = []
            for x, y in ((self.x_train, self.y_train), (self.x_test, self.y_test)):
                # float64, so that 298/300 prints as 0.9933333333333333, as NumPy's mean does
                acc = torch.full((members,), math.nan, device=self.device, dtype=torch.float64)
                if loss != "mse" and x.shape[0]:  # mse has no classes to count
                    acc.zero_()
                    for start in range(0, x.shape[0], 8192):
                        out = model(x[start : start + 8192])
                        acc += _member_correct(out, y[start : start + 8192].unsqueeze(0), loss)
                    acc /= x.shape[0]
                accs.append(acc.cpu())
        model.train(was_training)
        self.eval_steps.append(step)
        self.eval_train.append(accs[0])
        self.eval_test.append(accs[1])
        if hooks.eval:
            event = Evaluation(step, accs[0], accs[1])
            for o in hooks.eval:
                run.hear(o.on_eval, event)

    def check(self, step: int, run: Run, hooks: _Hooks) -> None:
        """Read the device: mark diverged and converged members (one sync).

        ``pending`` holds the training losses since the last check, so a member's
        divergence is dated to the first step whose loss was not finite.
        """
        members, config, pending = self.members, self.config, self.pending
        finite_params = torch.stack(
            [torch.isfinite(p.detach().reshape(members, -1)).all(dim=1) for p in self.params]
        ).all(dim=0)
        first = step + 1 - len(pending)
        if pending:
            bad_steps = ~torch.isfinite(torch.stack(pending))  # (steps since last check, M)
            any_bad = bad_steps.any(dim=0).tolist()
            first_bad = bad_steps.to(torch.uint8).argmax(dim=0).tolist()
        else:
            any_bad, first_bad = [False] * members, [0] * members
        bad_params = (~finite_params).tolist()
        change = [math.inf] * members
        if config.tol is not None:
            ring, w = self.ring, config.window + 1
            change = (ring[step % w] - ring[(step + 1) % w]).abs().tolist()
        newly = []
        for m in range(members):
            if not self.active_host[m]:
                continue
            if any_bad[m] or bad_params[m]:
                self.active_host[m], self.status[m] = False, "diverged"
                self.stopped[m] = first + first_bad[m] + 1 if any_bad[m] else step + 1
                newly.append(m)
            elif config.tol is not None and step >= config.window and change[m] < config.tol:
                self.active_host[m], self.status[m], self.stopped[m] = False, "converged", step + 1
                newly.append(m)
        if newly:
            self._stop_members(newly, first, run, hooks)
        pending.clear()
        self.pending_shown.clear()

    def _stop_members(self, newly: list[int], first: int, run: Run, hooks: _Hooks) -> None:
        """The cost at each newly stopped member's last step (still among the steps since
        the check); its observers told."""
        shown = torch.stack(self.pending_shown)
        rows = torch.tensor([self.stopped[m] - 1 - first for m in newly], device=self.device)
        values = shown[rows, torch.tensor(newly, device=self.device)].tolist()
        for m, value in zip(newly, values, strict=True):
            self.final[m] = value
        self.active.copy_(torch.tensor(self.active_host, device=self.device))
        if hooks.stopped:
            for m, value in zip(newly, values, strict=True):
                event = MemberStopped(m, self.status[m], self.stopped[m], value)
                for o in hooks.stopped:
                    run.hear(o.on_member_stopped, event)

    def record(self, step: int, shown: Tensor) -> LogRow:
        """One history row (its tensors stay on the device)."""
        self.rec_steps.append(step)
        self.rec_loss.append(shown)
        norm = self.norm.detach()
        self.rec_norm.append(norm)
        self.rec_clip.append(self.fired)
        self.rec_lr.append(self.lr)
        return LogRow(step, shown, norm, self.fired, self.lr)

    def finish(self, run: Run, hooks: _Hooks) -> None:
        """After the loop: the last check, the last step's row, the last evaluation."""
        step = self.step
        if self.pending:
            self.check(step - 1, run, hooks)
        if step and self.rec_steps[-1:] != [step - 1]:
            # The history ends with the last step taken, logged or not (an interrupted run,
            # a budget that is no multiple of log_every). Its gradients are still there:
            # the optimizer only reads them.
            if self.norm_step != step - 1:
                grads = _grads(self.params)
                self.norm, self.fired = _per_member_norm(grads, self.members), self.no_clip
            row = self.record(step - 1, self.last_shown)
            for o in hooks.log:
                run.hear(o.on_log, row)
        if self.interrupted:  # by Ctrl-C, or by an observer (which says why)
            reason = self.stop_reason = self.flag.reason
            mark: Status = "interrupted" if reason is None else "stopped"
            self.status = [s if s != "budget" else mark for s in self.status]
            self.stopped = [min(s, step) for s in self.stopped]
            self.interrupted = reason is None
        self.interrupted = self.interrupted or self.ctrl_c_at_end
        if not self.eval_steps or self.eval_steps[-1] != step:
            self.evaluate(step, run, hooks)

    def result(self, run: Run) -> TrainResult:
        """The run's summary and history, on the CPU."""
        members = self.members
        # A member that ran to the end: the cost of the last step; one stopped early: of
        # its own last step (recorded at the check that stopped it).
        last_costs: list[float] = self.last_shown.tolist()
        final_loss = [last_costs[m] if (f := self.final[m]) is None else f for m in range(members)]
        train_acc, test_acc = self.eval_train[-1].tolist(), self.eval_test[-1].tolist()
        summaries = []
        for m in range(members):
            cfg = {
                "optimizer": self.names[m],
                "lr": self.lr0[m],
                "schedule": self.schedules[m],
                "clip_threshold": self.thresholds[m] if self.config.clip else None,
                "seed": self.seeds[m] if self.seeds is not None else self.config.seeds,
            }
            summaries.append(
                MemberResult(
                    m,
                    cfg,
                    self.status[m],
                    self.stopped[m],
                    final_loss[m],
                    None if math.isnan(train_acc[m]) else train_acc[m],
                    None if math.isnan(test_acc[m]) else test_acc[m],
                )
            )

        def rows(values: list[Tensor], dtype: torch.dtype | None = None) -> Tensor:
            return torch.stack(values).cpu() if values else torch.empty(0, members, dtype=dtype)

        return TrainResult(
            members=tuple(summaries),
            steps=torch.tensor(self.rec_steps, dtype=torch.long),
            loss=rows(self.rec_loss),
            grad_norm=rows(self.rec_norm),
            clipped=rows(self.rec_clip, torch.bool),
            lr=rows(self.rec_lr),
            epoch_loss=rows(self.epoch_losses),
            eval_steps=torch.tensor(self.eval_steps, dtype=torch.long),
            train_accuracy=torch.stack(self.eval_train),
            test_accuracy=torch.stack(self.eval_test),
            interrupted=self.interrupted,
            seconds=self.seconds,
            total_steps=self.step,
            stop_reason=self.stop_reason,
        )


class _Rates:
    """Each member's learning rate in an epoch. Each distinct schedule is evaluated once
    per epoch, and the M rates are rebuilt only when a factor changes: with a full batch
    every step is an epoch, and M Python calls per step cost 0.1 ms at M = 1024."""

    def __init__(self, e: _Engine) -> None:
        distinct: list[Schedule] = []
        for sch in e.schedules:
            if sch not in distinct:  # by ==: a callable need not be hashable
                distinct.append(sch)
        self.fns = [_compiled(sch) for sch in distinct]
        self.which = [distinct.index(sch) for sch in e.schedules]
        self.constant = all(isinstance(sch, str) and sch == "constant" for sch in distinct)
        self.lr0, self.device, self.dtype = e.lr0, e.device, e.dtype
        self.last: tuple[float, ...] = ()
        self.lr = e.lr

    def at(self, epoch: int) -> Tensor:
        factors = tuple(f(epoch) for f in self.fns)
        if factors != self.last:  # a new tensor only when a rate changes
            lrs = [a * factors[i] for a, i in zip(self.lr0, self.which, strict=True)]
            self.lr = _on_device(lrs, self.device, self.dtype)
            self.last = factors
        return self.lr


def _loop(e: _Engine, run: Run, hooks: _Hooks) -> None:
    """The training loop: steps until the budget, every member stopped, Ctrl-C or an
    observer's stop. Everything it reads often is a local."""
    config, model, stepper, params, members = e.config, e.model, e.stepper, e.params, e.members
    cost, plan, total, device, dtype = e.cost, e.plan, e.total, e.device, e.dtype
    x_train, y_train, active = e.x_train, e.y_train, e.active  # active: updated in place
    pending, pending_shown, ring, window = e.pending, e.pending_shown, e.ring, config.window + 1
    clip, threshold, tol = config.clip, e.threshold, config.tol
    log_every, eval_every, check_every = config.log_every, config.eval_every, config.check_every
    steps_per_epoch, epoch_losses, no_clip = e.steps_per_epoch, e.epoch_losses, e.no_clip
    at_check, every, log_hooks = hooks.at_check, hooks.every, hooks.log
    rec_steps, rec_loss, rec_norm, rec_clip, rec_lr = (
        e.rec_steps,
        e.rec_loss,
        e.rec_norm,
        e.rec_clip,
        e.rec_lr,
    )

    def forward(xb: Tensor, yb: Tensor, update: Tensor | None) -> tuple[Tensor, Tensor]:
        out = model.logits(xb, update)  # (M, out, B)
        return out, _member_losses(out, yb, config.loss)

    backprop = _Backprop.build(model, config)
    if config.compile:
        kernel = _native_kernel(e, backprop)
        if kernel is not None and backprop is not None:
            _chunked_loop(e, run, hooks, backprop, kernel)
            return
        forward = torch.compile(forward)
        backprop = None

    ones = torch.ones(members, dtype=dtype, device=device)
    all_active = True
    started = run.started = time.perf_counter()
    step = epoch = 0
    interrupted = False
    rates = _Rates(e)
    lr = e.lr
    y_full = y_train.unsqueeze(0)
    norm, fired, last_shown, norm_step = e.norm, e.fired, e.last_shown, e.norm_step
    # index_select rather than x[idx]: 2–4× faster gathers (23 µs of a step at M = 1).
    batch_buffer = x_train.new_empty(0)
    any_active = True  # any(active_host), kept up to date at the checks
    with e.flag as flag, _RecycledMemory(device):
        while step < total and any_active and not interrupted:
            lr = e.lr = rates.at(epoch)
            one_step = steps_per_epoch == 1  # full batch: the epoch cost is the step's
            epoch_sum = last_shown if one_step else torch.zeros(members, device=device, dtype=dtype)
            seen = 0
            for idx in plan.epoch(epoch) if plan is not None else iter([None]):
                if step >= total or flag.stop or not any_active:
                    interrupted = flag.stop and step < total
                    break
                if idx is None:
                    xb, yb = x_train, y_full
                elif idx.dim() == 1:  # one order for all members: a shared batch
                    xb, yb = x_train.index_select(0, idx), y_train[idx].unsqueeze(0)
                else:
                    # Into one buffer reused by every step: a fresh (M, B, 784) batch of
                    # 50 MB (M = 256) is page-faulted in anew every step. Its previous
                    # contents were last read by the previous step's backward.
                    if batch_buffer.shape[0] != idx.numel():  # a last, smaller batch
                        batch_buffer.resize_(0)  # (keeps the memory; no resize warning)
                    xb = torch.index_select(x_train, 0, idx.reshape(-1), out=batch_buffer)
                    xb, yb = xb.view(*idx.shape, *x_train.shape[1:]), y_train[idx]
                if backprop is not None and backprop.ready():
                    out, losses = backprop(xb, yb)  # the gradients without autograd
                else:
                    out, losses = forward(xb, yb, None if all_active else active)
                    stepper.zero_grad()
                    # d(Σ losses)/d(loss_m) = 1: each member gets its own gradient, and no
                    # sum node is built for it.
                    losses.backward(ones)  # type: ignore[no-untyped-call]
                logging = step % log_every == 0
                if clip is not None:  # the clipper measures the norm anyway
                    norm, fired = _clip(clip, params, _grads(params), threshold, members)
                    norm_step = step
                elif logging:
                    norm, fired = _per_member_norm(_grads(params), members), no_clip
                    norm_step = step
                stepper.step(lr, active, all_active)
                # Detached, nothing below builds a graph: no no_grad block needed.
                trained = losses.detach()
                pending.append(trained)  # read at the next check, for divergence
                if cost is None:
                    shown = trained
                else:  # the documented (M, B, out) layout
                    with torch.no_grad():
                        shown = cost(out.detach().transpose(1, 2), yb)
                pending_shown.append(shown)
                if tol is not None:
                    ring[step % window] = shown
                batch = xb.shape[0] if idx is None or idx.dim() == 1 else idx.shape[-1]
                if one_step:
                    epoch_sum = shown
                else:
                    epoch_sum.add_(shown, alpha=batch)
                seen += batch
                if logging:  # _Engine.record's row, inlined: no call per step
                    detached = norm.detach()
                    rec_steps.append(step)
                    rec_loss.append(shown)
                    rec_norm.append(detached)
                    rec_clip.append(fired)
                    rec_lr.append(lr)
                    if log_hooks:  # what Run shows is brought up to date for them only
                        e.step, e.epoch, e.last_shown = step + 1, epoch, shown
                        row = LogRow(step, shown, detached, fired, lr)
                        for o in log_hooks:
                            run.hear(o.on_log, row)
                last_shown = shown
                step += 1
                if eval_every is not None and step % eval_every == 0:
                    e.step, e.epoch, e.last_shown = step, epoch, last_shown
                    e.evaluate(step, run, hooks)
                checked = step % check_every == 0 or step == total
                if checked:
                    e.step, e.epoch, e.last_shown = step, epoch, last_shown
                    e.check(step - 1, run, hooks)
                    all_active, any_active = all(e.active_host), any(e.active_host)
                if every or (checked and at_check):
                    e.step, e.epoch, e.last_shown = step, epoch, last_shown
                    if checked:
                        for o in at_check:
                            run.hear(o.on_step)
                    for k, o in every:
                        if step % k == 0:
                            run.hear(o.on_step)
            if seen:
                # on the device: no sync
                epoch_losses.append(epoch_sum if one_step else epoch_sum.div_(seen))
            epoch += 1
            if flag.stop and step < total:
                interrupted = True
    e.seconds = time.perf_counter() - started
    # A Ctrl-C at the last step boundary finds the run done: it is whole, but the caller
    # must still hear that the user asked to stop.
    e.ctrl_c_at_end = flag.stop and flag.reason is None and not interrupted
    e.step, e.epoch, e.lr, e.interrupted = step, epoch, lr, interrupted
    e.norm, e.fired, e.last_shown, e.norm_step = norm, fired, last_shown, norm_step
    e.finish(run, hooks)


# --------------------------------------------------------------------------- native

#: The nets the kernel takes (benchmarks/native_crossover.py): at any M those of up to
#: _NATIVE_ANY_M weights per member (Σ in·out); up to _NATIVE_LARGEST where the stack
#: holds at most _NATIVE_WORK weights in all. Past these, torch's products win.
_NATIVE_ANY_M, _NATIVE_LARGEST, _NATIVE_WORK = 320, 16_384, 40_000
#: The products of a layer of at least this many weights go from the kernel to torch's
#: MKL, where torch has one; the kernel then takes nets of any size.
_NATIVE_GEMM_MIN = 1024

#: The compiled kernel's codes for the activations after a layer (0: none), by the
#: activation's entry in _BACKWARD.
_ACTIVATION_CODES = {
    id(_BACKWARD[kind]): code for kind, code in ((nn.ReLU, 1), (nn.Tanh, 2), (nn.Sigmoid, 3))
}


def _native_kernel(e: _Engine, backprop: _Backprop | None) -> native.MlpSteps | None:
    """``compile=True``'s kernel for this run, or None where it cannot run it: one of
    SGD, momentum or Nesterov on every member (with or without weight decay), clipping
    by norm, by value or none, no cost function, on the CPU in float32 or float64, a
    stack :class:`_Backprop` takes with contiguous parameters, and (n, in) features."""
    config = e.config
    rule = e.names[0]
    if (
        backprop is None
        or e.cost is not None
        or config.clip not in (None, "norm", "value")
        or rule not in ("sgd", "momentum", "nesterov")
        or any(name != rule for name in e.names)
        or e.device.type != "cpu"
        or e.x_train.dim() != 2
        or e.x_train.shape[1] != backprop.in_features
    ):
        return None
    lins = [lin for lin, _ in backprop.layers]
    # The kernel where it is the faster route (benchmarks/native_crossover.py): small
    # nets, where a step of torch is dispatch, not arithmetic; and any net with a layer
    # whose products go to MKL from the kernel. With every product in its own loops, the
    # 784-100-100-10 net ran at half eager's rate, at M = 1 and at M = 64.
    size = sum(lin.in_features * lin.out_features for lin in lins)
    too_large = size > _NATIVE_ANY_M and (size > _NATIVE_LARGEST or e.members * size > _NATIVE_WORK)
    largest = max(lin.in_features * lin.out_features for lin in lins)
    if too_large and not (native.gemm(e.dtype) and largest >= _NATIVE_GEMM_MIN):
        return None  # past the rule, only where MKL takes the larger layers' products
    weights = [lin.weight.detach() for lin in lins]
    biases = [None if lin.bias is None else lin.bias.detach() for lin in lins]
    grads = [(gw, None if gb is None else gb.squeeze(-1)) for gw, gb in backprop.grads]
    tensors = [t for t in (*weights, *biases) if t is not None]
    if not all(t.is_contiguous() for t in tensors):
        return None
    if any(act is not None and id(act) not in _ACTIVATION_CODES for _, act in backprop.layers):
        return None  # an activation the kernel does not know
    fn = native.kernel(e.dtype)
    if fn is None:
        return None
    acts = [0 if act is None else _ACTIVATION_CODES[id(act)] for _, act in backprop.layers]
    buffers = None
    if rule != "sgd":  # momentum's buffers, the stepper's own (a step through autograd uses them)
        state = e.stepper.rules[0].buf
        where = {id(p): i for i, p in enumerate(e.params)}
        buffers = (
            [state[where[id(lin.weight)]] for lin in lins],
            [None if lin.bias is None else state[where[id(lin.bias)]] for lin in lins],
        )
    thresholds = None
    if config.clip is not None:
        thresholds = torch.tensor(e.thresholds, dtype=e.dtype)
    return native.MlpSteps(
        fn,
        weights,
        biases,
        [g for g, _ in grads],
        [g for _, g in grads],
        acts,
        config.loss,
        gemm_min=_NATIVE_GEMM_MIN,
        rule=rule,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        buffers=buffers,
        clip=config.clip,
        thresholds=thresholds,
    )


def _chunked_loop(
    e: _Engine, run: Run, hooks: _Hooks, backprop: _Backprop, kernel: native.MlpSteps
) -> None:
    """:func:`_loop` through the compiled kernel: the steps between two moments where
    something reads the run (a check, an evaluation, a row for an observer, an
    observer's ``every``, a new epoch where a schedule may change the rate) go to the
    kernel in one call, as many as take about 50 ms, so that Ctrl-C is still heard at
    once. While a hook is on the model (a probe put on mid-run), steps go through
    autograd one at a time, so that the hook sees them.

    The run records what :func:`_loop` records: a loss per step for the checks, the
    history every ``log_every`` steps (the kernel returns every step's gradient norm),
    the epochs' costs, and the last step's gradients in each ``.grad``.
    """
    config, model, stepper, params, members = e.config, e.model, e.stepper, e.params, e.members
    plan, total, active, flag = e.plan, e.total, e.active, e.flag
    x_train, y_train = e.x_train.contiguous(), e.y_train.contiguous()
    pending, pending_shown, ring, window = e.pending, e.pending_shown, e.ring, config.window + 1
    log_every, eval_every, check_every = config.log_every, config.eval_every, config.check_every
    no_clip, tol, device, clip = e.no_clip, config.tol, e.device, config.clip
    rates = _Rates(e)
    ones = torch.ones(members, dtype=e.dtype, device=device)
    most = 1024 if tol is None else window  # the ring takes at most `window` rows at once
    limit = min(8, most)  # steps per call: 8, then as many as take about 50 ms
    n = x_train.shape[0]

    def until(step: int) -> int:
        """The steps from ``step`` through the next one after which the run is read."""
        ends = [total, (step // check_every + 1) * check_every]
        if eval_every is not None:
            ends.append((step // eval_every + 1) * eval_every)
        if hooks.log:  # rows are steps 0, k, 2k, …: read after step s at count s + 1
            ends.append(-(-step // log_every) * log_every + 1)
        ends += [(step // k + 1) * k for k, _ in hooks.every]
        return min(ends) - step

    def eager(index: Tensor | None, lr: Tensor, all_active: bool) -> tuple[Tensor, Tensor, Tensor]:
        """One step through autograd, as :func:`_loop` takes it: (1, M) losses, norms,
        whether clipping fired."""
        if index is None:
            xb, yb = x_train, y_train.unsqueeze(0)
        elif index.dim() == 2:  # (1, B): shared
            xb, yb = x_train.index_select(0, index[0]), y_train[index[0]].unsqueeze(0)
        else:  # (1, M, B)
            xb, yb = x_train[index[0]], y_train[index[0]]
        stepper.zero_grad()
        losses = _member_losses(model.logits(xb, None if all_active else active), yb, config.loss)
        losses.backward(ones)  # type: ignore[no-untyped-call]
        if clip is not None:
            norm, fired = _clip(clip, params, _grads(params), e.threshold, members)
        else:
            norm, fired = _per_member_norm(_grads(params), members), no_clip
        stepper.step(lr, active, all_active)
        return losses.detach().unsqueeze(0), norm.unsqueeze(0), fired.unsqueeze(0)

    def chunks() -> tuple[int, int, Tensor, Tensor, bool]:
        """The loop; returns (step, epoch, lr, last_shown, interrupted)."""
        nonlocal limit
        step = epoch = 0
        lr = e.lr
        all_active = any_active = True
        interrupted = False
        last_shown = e.last_shown
        run.started = time.perf_counter()
        while step < total and any_active and not interrupted:
            lr = e.lr = rates.at(epoch)
            batches = None if plan is None else plan.epoch(epoch)
            ahead: Tensor | None = None  # a batch taken from `batches`, not yet stepped
            epoch_rows: list[Tensor] = []  # mini-batches: batch · loss, (K, M) per call
            seen = 0
            while step < total and any_active:
                if flag.stop:
                    interrupted = True
                    break
                ready = backprop.ready()
                want = max(1, min(until(step), limit)) if ready else 1
                if plan is None and not rates.constant:
                    want = 1  # every step is an epoch, perhaps at another rate
                index: Tensor | None = None
                if batches is not None:
                    idx: list[Tensor] = []
                    while len(idx) < want:
                        nxt = ahead if ahead is not None else next(batches, None)
                        ahead = None
                        if nxt is None:
                            break
                        if idx and nxt.shape != idx[0].shape:  # a last, smaller batch
                            ahead = nxt
                            break
                        idx.append(nxt)
                    if not idx:
                        break  # the epoch is over
                    want = len(idx)
                    index = torch.stack(idx).to(torch.int64)
                    if index.dim() == 3 and index.shape[1] == 1:
                        index = index[:, 0]  # (K, 1, B): one order, shared
                    _check_rows(index, n, members)  # the kernel reads what they point at
                if ready:
                    for p, g in backprop.pairs:
                        if p.grad is not g:  # once, or after a step through autograd
                            p.grad = g
                    tic = time.perf_counter()
                    losses, norms, fired = kernel(x_train, y_train, index, lr, active, want)
                    if want == limit:
                        per_step = (time.perf_counter() - tic) / want
                        limit = max(1, min(most, int(0.05 / max(per_step, 1e-7))))
                else:
                    losses, norms, fired = eager(index, lr, all_active)
                rows = list(losses.unbind(0))
                pending.extend(rows)
                pending_shown.extend(rows)
                if tol is not None:
                    at = torch.arange(step, step + want, device=device) % window
                    ring.index_copy_(0, at, losses)
                for k in range(-step % log_every, want, log_every):
                    e.rec_steps.append(step + k)
                    e.rec_loss.append(rows[k])
                    e.rec_norm.append(norms[k])
                    e.rec_clip.append(no_clip if clip is None else fired[k])
                    e.rec_lr.append(lr)
                if plan is None:
                    e.epoch_losses.extend(rows)
                else:
                    batch = index.shape[-1] if index is not None else 0
                    epoch_rows.append(losses if e.steps_per_epoch == 1 else losses * batch)
                    seen += batch * want
                last_shown = rows[-1]
                last_fired = no_clip if clip is None else fired[-1]
                e.norm, e.fired, e.norm_step = norms[-1], last_fired, step + want - 1
                step += want
                if plan is None:
                    epoch = step - 1  # a step is an epoch: this one's, as _loop shows it
                e.step, e.epoch, e.last_shown = step, epoch, last_shown
                if hooks.log and (step - 1) % log_every == 0:
                    row = LogRow(step - 1, last_shown, norms[-1], last_fired, lr)
                    for o in hooks.log:
                        run.hear(o.on_log, row)
                if eval_every is not None and step % eval_every == 0:
                    e.evaluate(step, run, hooks)
                if step % check_every == 0 or step == total:
                    e.check(step - 1, run, hooks)
                    all_active, any_active = all(e.active_host), any(e.active_host)
                    for o in hooks.at_check:
                        run.hear(o.on_step)
                for k, o in hooks.every:
                    if step % k == 0:
                        run.hear(o.on_step)
                if plan is None:
                    epoch = step  # a step is an epoch
                    if not rates.constant:
                        break  # the next epoch's rate
            if plan is not None:
                if seen:  # on the device: no sync
                    cost = torch.cat(epoch_rows).sum(0)
                    e.epoch_losses.append(cost if e.steps_per_epoch == 1 else cost.div_(seen))
                epoch += 1
            if flag.stop and step < total:
                interrupted = True
        return step, epoch, lr, last_shown, interrupted

    with flag, _RecycledMemory(device):  # Ctrl-C ends the run at a call's end
        step, epoch, lr, last_shown, interrupted = chunks()
    e.seconds = time.perf_counter() - run.started
    # As in _loop: a Ctrl-C at the last step boundary finds the run done.
    e.ctrl_c_at_end = flag.stop and flag.reason is None and not interrupted
    e.step, e.epoch, e.lr, e.interrupted = step, epoch, lr, interrupted
    e.last_shown = last_shown
    e.finish(run, hooks)


def _check_rows(index: Tensor, n: int, members: int) -> None:
    """A batch plan's rows, checked before the kernel reads what they point at."""
    if index.dim() == 3 and index.shape[1] != members:
        raise ValueError(
            f"The batch plan gave {index.shape[1]} orders of rows for {members} members: "
            "give one order (B,) shared by all, or one per member (M, B)."
        )
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n):
        raise IndexError(
            f"The batch plan gave rows from {int(index.min())} to {int(index.max())}; "
            f"the training set has rows 0 to {n - 1}."
        )


def _clip(
    kind: str,
    params: list[nn.Parameter],
    grads: list[Tensor],
    threshold: float | Tensor,
    members: int,
) -> tuple[Tensor, Tensor]:
    """Clip per member; the global norm before clipping and whether it fired, (M,) each."""
    if kind == "value":
        r = clipmod.clip_by_value_(
            grads, threshold, use_grad=False, nonfinite="pass", members=members
        )
    elif kind == "norm":
        r = clipmod.clip_by_global_norm_(
            grads, threshold, use_grad=False, nonfinite="pass", members=members
        )
    else:
        r = clipmod.adaptive_clip_(
            params, threshold, grads=grads, nonfinite="pass", members=members
        )
    return r.norm_before, r.fired
