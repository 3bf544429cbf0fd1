"""One open page of the playground: its lanes, trained as stacks on the engine, sampled live.

Lanes that share what the engine cannot vary per member
(:func:`~initlab.playground.lanes.stack_key`) train as one :class:`~initlab.models.Stack`,
one thread per stack, through :func:`initlab.train.train`. A :class:`_Sampler` observer
hears every step: it holds the run at a step boundary while the page is paused, and
takes samples for the page (costs and accuracies, histograms, update ratios, the
decision map, the probe's verdicts), each as often as its own cost allows (a few
percent of the time each), never once per step. The page's sender drains what the
samplers gathered (:meth:`Session.drain`): one message carries everything since the
previous one.

Example:
    >>> from initlab.playground.lanes import Lane
    >>> session = Session()
    >>> _ = session.configure([Lane(init="zeros"), Lane(init="he_normal")])
    >>> session.step()
    >>> session.wait_for_step(1, timeout=30)
    True
    >>> [u["lane"] for u in session.drain()["lanes"]]
    [0, 1]
    >>> session.close()
"""

from __future__ import annotations

import atexit
import math
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from initlab import data as datamod
from initlab import init as initmod
from initlab import models
from initlab.lsuv import lsuv
from initlab.norm import StackedBatchNorm
from initlab.playground.lanes import LABELS, Lane, LaneErrors, LaneProblem, check_lanes, stack_key
from initlab.probe import probe
from initlab.probe.verdicts import Verdict
from initlab.surfaces import decision_map
from initlab.train import LogRow, MemberStopped, Observer, Run, TrainConfig, TrainResult, train

__all__ = ["BUDGET", "HIST_EDGES", "Session"]

#: Steps a lane trains before it stops on its own (Reset starts it again).
BUDGET = 50_000
#: Bin edges of log10 |value| shared by every histogram; one more bin in front holds
#: the values below 1e-8 (exact zeros).
HIST_EDGES: tuple[float, ...] = tuple(-8 + 0.25 * i for i in range(49))
_TINY = 1e-8
_EVAL_ROWS = 1000  # held-out examples the live test cost is measured on
_HIST_ROWS = 256  # training examples the histograms and the probe look at
_MAP_SIZE = 48  # decision-map grid points per axis
_MARGIN = 0.4  # how far the map reaches beyond the points
_MAX_HISTORY = 200_000  # samples kept per lane for the CSV


# --------------------------------------------------------------------------- data


@lru_cache(maxsize=8)
def _dataset(name: str, options: tuple[tuple[str, Any], ...]) -> datamod.Dataset:
    """The same lane data once per process (MNIST takes a second to read)."""
    return datamod.load(name, **dict(options))


def _load(lane: Lane, index: int) -> datamod.Dataset:
    try:
        return _dataset(lane.data, tuple(sorted(lane.data_options().items())))
    except (FileNotFoundError, ValueError, OSError) as error:
        raise LaneErrors([LaneProblem(index, "data", f"{LABELS['data']}: {error}")]) from None


def _rows(n: int, limit: int) -> Tensor:
    """Evenly spaced rows, at most ``limit``: a fixed subset (the same every sample)."""
    rows = torch.linspace(0, n - 1, min(n, limit)).round().long().tolist()
    return torch.tensor(sorted(set(rows)), dtype=torch.long)


# --------------------------------------------------------------------------- verdicts


_PROPER_INIT = {
    "relu": ("he_normal", "He init"),
    "leaky_relu": ("he_normal", "He init"),
    "gelu": ("he_normal", "He init"),
    "selu": ("lecun_normal", "LeCun init"),
    "tanh": ("xavier_normal", "Xavier init"),
    "sigmoid": ("xavier_normal", "Xavier init"),
    "linear": ("xavier_normal", "Xavier init"),
}
_TITLES = {
    "symmetric": "Symmetric units: they all compute the same thing",
    "saturated": "Saturated units: the activation is flat where they sit",
    "dead": "Dead units: they output 0 for every example",
    "vanishing": "Vanishing: the signal or gradient shrinks layer by layer",
    "exploding": "Exploding: the signal or gradient grows layer by layer",
    "nonfinite": "Not finite: NaN or Inf in the network",
    "diverged": "Diverged: the loss became NaN or infinite",
    "weight_scale": "Weights far too large for their fan-in",
    "high_loss": "Loss far above its starting value ln C",
    "update_ratio": "Steps far too large or too small for the weights",
    "diverging": "Diverging: the loss climbs",
}


def _fix(kind: str, lane: Lane, value: float = math.nan) -> dict[str, Any] | None:
    """The one-click change of the lane's controls that addresses a verdict."""
    proper, label = _PROPER_INIT[lane.activation]
    if kind in ("diverged", "nonfinite"):
        if lane.clip == "none":
            return {"label": "clip at 1", "changes": {"clip": "norm", "clip_threshold": 1.0}}
        return {"label": "lower the rate ÷10", "changes": {"lr": lane.lr / 10}}
    if kind == "dead" and lane.activation == "relu":
        if lane.init != proper:
            return {"label": label, "changes": {"init": proper}}
        return {"label": "leaky ReLU", "changes": {"activation": "leaky_relu"}}
    if kind in ("symmetric", "saturated", "vanishing", "exploding", "dead", "weight_scale"):
        if lane.init != proper:
            return {"label": label, "changes": {"init": proper}}
        if lane.batch_norm == "none":
            return {"label": "add batch norm", "changes": {"batch_norm": "before"}}
        if kind == "exploding" and lane.clip == "none":
            return {"label": "clip at 1", "changes": {"clip": "norm", "clip_threshold": 1.0}}
    if kind == "high_loss" and lane.init != proper:
        return {"label": label, "changes": {"init": proper}}
    if kind == "update_ratio" and value > 1e-3:  # steps too large (value: the ratio)
        return {"label": "lower the rate ÷10", "changes": {"lr": lane.lr / 10}}
    if kind == "update_ratio":
        return {"label": "raise the rate ×10", "changes": {"lr": lane.lr * 10}}
    return None


def _verdict(v: Verdict, lane: Lane) -> dict[str, Any]:
    return {
        "kind": v.kind,
        "title": _TITLES.get(v.kind, v.kind),
        "evidence": v.evidence,
        "fix": _fix(v.kind, lane, v.value),
    }


def _diverged(lane: Lane, step: int) -> dict[str, Any]:
    return {
        "kind": "diverged",
        "title": _TITLES["diverged"],
        "evidence": (
            f"At step {step:,} the cost stopped being a number: the updates grew without "
            f"bound (learning rate {lane.lr:g}). The lane is frozen where it was."
        ),
        "fix": _fix("diverged", lane),
    }


# --------------------------------------------------------------------------- controls


class _Control:
    """The page's play / pause / step / stop, shared by every stack of a session."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.playing = False
        self.credit: dict[int, int] = {}  # per stack: steps it may take while paused
        self.stopped = False

    def gate(self, group: int, before: Callable[[], None]) -> bool:
        """Wait at a step boundary while paused; False when the run must stop.

        ``before`` runs once before waiting (a sample, so the page shows the paused step).
        """
        with self.cond:
            go = self._go(group)
            if go is not None:
                return go
        before()
        with self.cond:
            while True:
                go = self._go(group)  # the flags change while waiting
                if go is not None:
                    return go
                self.cond.wait(timeout=1.0)

    def _go(self, group: int) -> bool | None:
        """False: stop; True: take a step; None: wait (under ``cond``)."""
        if self.stopped:
            return False
        if self.playing:
            return True
        if self.credit.get(group, 0) > 0:
            self.credit[group] -= 1
            return True
        return None


# --------------------------------------------------------------------------- sampling


class _Throttle:
    """Runs a task no more often than its cost allows: its share of the wall time."""

    def __init__(self, interval: float, share: float) -> None:
        self.interval, self.share = interval, share
        self.next = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next

    def done(self, started: float) -> None:
        now = time.perf_counter()
        self.next = now + max(self.interval, (now - started) / self.share)


@dataclass
class _LaneState:
    status: str = "ready"
    message: str | None = None
    stopped_step: int | None = None
    verdict: dict[str, Any] | None = None  # the diverged verdict, until it is sent


@dataclass
class _Outbox:
    """What the samplers gathered since the page's last drain (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    history: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    def lane(self, index: int) -> dict[str, Any]:
        update = self.updates.get(index)
        if update is None:
            update = {
                "lane": index,
                "points": [],
                "ratios": None,
                "hist": None,
                "map": None,
                "verdicts": None,
            }
            self.updates[index] = update
        return update


def _finite(x: float) -> float | None:
    """7 significant digits (a float32's), or None for NaN and ±inf (JSON has neither)."""
    return float(f"{x:.7g}") if math.isfinite(x) else None


class _Group:
    """Lanes that train as one stack: the data, the stack, the config, its thread."""

    def __init__(self, number: int, indices: list[int], lanes: list[Lane]) -> None:
        self.number, self.indices, self.lanes = number, indices, lanes
        first = lanes[0]
        self.ds = _load(first, indices[0])
        size = first.batch_size
        if size != "full" and size > self.ds.n_train:
            message = (
                f"{LABELS['batch_size']}: expected at most the {self.ds.n_train:,} training "
                f"examples of {first.data}. Got {size:,}. Choose full for batch gradient "
                "descent."
            )
            raise LaneErrors([LaneProblem(i, "batch_size", message) for i in indices])
        self.loss_name = first.loss
        try:
            self.stack = models.mlp(
                first.widths,
                "identity" if first.activation == "linear" else first.activation,
                None if first.batch_norm == "none" else first.batch_norm,
                members=len(lanes),
                dtype=torch.float32,
            )
        except ValueError as error:
            raise LaneErrors([LaneProblem(indices[0], "hidden", str(error))]) from None
        self._initialize()
        self.config = TrainConfig(
            loss=first.loss,
            optimizer=[lane.optimizer for lane in lanes],
            lr=[lane.lr for lane in lanes],
            schedule=[lane.schedule for lane in lanes],
            batch_size=first.batch_size,
            seeds=[lane.seed for lane in lanes],
            clip=first.engine_clip,
            clip_threshold=[lane.clip_threshold for lane in lanes],
            steps=BUDGET,
            log_every=1,
            check_every=25,
        )
        ds = self.ds
        self.eval_test = _rows(ds.n_test, _EVAL_ROWS) if ds.n_test else None
        self.hist_rows = _rows(ds.n_train, _HIST_ROWS)
        self.x_all = torch.cat([ds.x_train, ds.x_test]) if first.two_d else None

    def _initialize(self) -> None:
        """Each member from its lane's init, bias init and seed; LSUV members are drawn
        orthogonal, then fitted alone (LSUV rescales every layer it sees)."""
        lanes = self.lanes
        weights = ["orthogonal" if lane.init == "lsuv" else lane.init for lane in lanes]
        try:
            models.init_members(
                self.stack,
                weights,
                [lane.bias_init for lane in lanes],
                seeds=[lane.seed for lane in lanes],
            )
        except (TypeError, ValueError):
            # The specs parsed; an error here is one that does not fit these layers: find
            # the lane and the control, one spec at a time, on the lane's plain net.
            raise LaneErrors(self._init_problems(weights)) from None
        batch = self.ds.x_train[_rows(self.ds.n_train, 512)]
        for m, lane in enumerate(lanes):
            if lane.init == "lsuv":
                plain = models.to_module(self.stack, m)
                try:
                    lsuv(plain, batch, generator=torch.Generator().manual_seed(lane.seed))
                except (RuntimeError, ValueError) as error:
                    message = f"{LABELS['init']}: LSUV failed on this lane: {error}"
                    raise LaneErrors([LaneProblem(self.indices[m], "init", message)]) from None
                models.load_member(self.stack, m, plain)

    def _init_problems(self, weights: list[str]) -> list[LaneProblem]:
        problems = []
        for m, (i, lane) in enumerate(zip(self.indices, self.lanes, strict=True)):
            for field_, weight, bias in (
                ("init", weights[m], None),
                ("bias_init", "zeros", lane.bias_init),
            ):
                try:
                    initmod.apply(models.to_module(self.stack, m), weight, bias)
                except (TypeError, ValueError) as error:
                    problems.append(LaneProblem(i, field_, f"{LABELS[field_]}: {error}"))
                    break
        return problems or [
            LaneProblem(i, "init", f"{LABELS['init']}: cannot initialize this lane")
            for i in self.indices
        ]


class _Sampler(Observer):
    """Hears one stack's run: holds it while paused, samples it for the page."""

    def __init__(self, session: Session, group: _Group) -> None:
        # This run's own control, outbox and lane states: a run that outlives a
        # reconfigure (its thread not yet out of a long step) never touches the next one's.
        self.session, self.group = session, group
        self.control, self.outbox, self.states = session.control, session.outbox, session.states
        self.generation = session.generation
        self.metrics = _Throttle(0.04, 0.01)
        self.evaluation = _Throttle(0.1, 0.04)
        self.hist = _Throttle(0.15, 0.03)
        self.map = _Throttle(0.15, 0.02)
        self.probe = _Throttle(1.0, 0.03)
        self.ratio = _Throttle(0.15, 0.01)
        self.rows: list[LogRow] = []
        self.last_row: LogRow | None = None
        self.clip_rate: list[float] = [0.0] * group.stack.members
        self.snapshot: list[Tensor] | None = None
        self.ratios: list[dict[str, Any]] | None = None
        self.run: Run | None = None

    # ----------------------------------------------------------------- engine events

    def on_start(self, run: Run) -> None:
        self.run = run
        self._sample(run, force=True)
        if not self.control.gate(self.group.number, lambda: None):
            run.stop("reset")
        else:
            self._set_status("training")

    def on_log(self, run: Run, row: LogRow) -> None:
        self.rows.append(row)
        if self.snapshot is not None:
            self._ratios(run)
        self._sample(run)
        if not self.control.gate(self.group.number, lambda: self._pause(run)):
            run.stop("reset")
        else:  # (only lanes that are ready, training or paused change)
            self._set_status("training")

    def on_member_stopped(self, run: Run, event: MemberStopped) -> None:
        lane = self.group.lanes[event.member]
        index = self.group.indices[event.member]
        state = self.states[index]
        state.status, state.stopped_step = event.status, event.step
        if event.status == "diverged":
            state.message = f"diverged at step {event.step:,}: the cost became NaN or infinite"
            state.verdict = _diverged(lane, event.step)  # sent with the next sample

    def on_end(self, run: Run, result: TrainResult) -> None:
        if result.stop_reason == "reset":
            return
        for m, member in enumerate(result.members):
            state = self.states[self.group.indices[m]]
            if state.status in ("training", "paused", "ready"):
                state.status = member.status
                if member.status == "budget":
                    state.message = f"the budget of {BUDGET:,} steps is spent: Reset to rerun"
        self._sample(run, force=True)

    # ----------------------------------------------------------------- states

    def _set_status(self, status: str) -> None:
        for index in self.group.indices:
            state = self.states[index]
            if state.status in ("ready", "training", "paused"):
                state.status = status

    def _pause(self, run: Run) -> None:
        self._set_status("paused")
        self._sample(run, force=True)

    # ----------------------------------------------------------------- samples

    def _sample(self, run: Run, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and not self.metrics.due(now):
            return
        g = self.group
        stack = g.stack
        with torch.no_grad():
            points = self._metrics(run)
            self.metrics.done(now)
            if force or self.evaluation.due(now):
                started = time.perf_counter()
                self._evaluate(points)
                self.evaluation.done(started)
        hist = map_ = verdicts = None
        if force or self.hist.due(now):
            started = time.perf_counter()
            hist = self._histograms(run.step)
            self.hist.done(started)
        if g.x_all is not None and (force or self.map.due(now)):
            started = time.perf_counter()
            dm = decision_map(stack, g.x_all, resolution=_MAP_SIZE, margin=_MARGIN)
            map_ = [
                {"step": run.step, "size": _MAP_SIZE, "prob": [round(v, 3) for v in p.tolist()]}
                for p in dm.prob.reshape(stack.members, -1)
            ]
            self.map.done(started)
        if force or self.probe.due(now):
            started = time.perf_counter()
            verdicts = self._verdicts()
            self.probe.done(started)
        if self.ratio.due(now) and self.snapshot is None:
            started = time.perf_counter()
            self.snapshot = [layer.weight.detach().clone() for layer in self._linears()]
            self.ratio.done(started)
        self._post(run, points, hist, map_, verdicts)

    def _linears(self) -> list[models.StackedLinear]:
        return [m for m in self.group.stack.layers if isinstance(m, models.StackedLinear)]

    def _loss(self, out: Tensor, y: Tensor) -> Tensor:
        """(M,) mean cost per member of outputs (M, B, out)."""
        if self.group.loss_name == "bce":
            target = y.to(out.dtype).expand(out.shape[0], -1)
            return F.binary_cross_entropy_with_logits(out[..., 0], target, reduction="none").mean(1)
        members, batch, classes = out.shape
        losses = F.cross_entropy(
            out.reshape(-1, classes), y.repeat(members), reduction="none"
        ).reshape(members, batch)
        return losses.mean(1)

    def _correct(self, out: Tensor, y: Tensor) -> Tensor:
        predicted = (out[..., 0] > 0).long() if self.group.loss_name == "bce" else out.argmax(-1)
        return (predicted == y).double().mean(1)

    def _metrics(self, run: Run) -> list[dict[str, Any]]:
        """Each member's point: the batch cost, gradient norm and clip rate of the last
        step (the test cost and accuracies None: :meth:`_evaluate` adds them)."""
        g = self.group
        stack, ds = g.stack, g.ds
        rows, self.rows = self.rows, []
        if rows or self.last_row is not None:
            # The batch cost of the last step taken (again, for a second sample at the
            # same step: the pause's).
            last = rows[-1] if rows else self.last_row
            assert last is not None
            self.last_row = last
            loss, grad_norm = last.loss.tolist(), last.grad_norm.tolist()
            if rows:
                clipped = torch.stack([r.clipped for r in rows]).double().mean(0).tolist()
                self.clip_rate = clipped
            clip_rate = self.clip_rate
        else:  # before the first step: the training cost (of a subset, for large sets)
            rows_ = slice(None) if ds.n_train <= _EVAL_ROWS else g.hist_rows
            # batch statistics, as training's first step; running statistics untouched
            keep = torch.zeros(stack.members, dtype=torch.bool)
            out = stack.logits(ds.x_train[rows_], keep).transpose(1, 2)
            loss = self._loss(out, ds.y_train[rows_]).tolist()
            grad_norm = [math.nan] * stack.members
            clip_rate = [0.0] * stack.members
        points = [
            {
                "step": run.step,
                "loss": _finite(loss[m]),
                "test_cost": None,
                "train_acc": None,
                "test_acc": None,
                "grad_norm": _finite(grad_norm[m]),
                "clip_rate": _finite(clip_rate[m]),
            }
            for m in range(stack.members)
        ]
        return points

    def _evaluate(self, points: list[dict[str, Any]]) -> None:
        """Adds the test cost and the accuracies (in eval mode) to each member's point."""
        g = self.group
        stack, ds = g.stack, g.ds
        was_training = stack.training
        stack.eval()
        try:
            train_rows = g.hist_rows if ds.n_train > _EVAL_ROWS else slice(None)
            train_acc = self._correct(stack(ds.x_train[train_rows]), ds.y_train[train_rows])
            if g.eval_test is not None:
                xt, yt = ds.x_test[g.eval_test], ds.y_test[g.eval_test]
                out = stack(xt)
                test_cost, test_acc = self._loss(out, yt).tolist(), self._correct(out, yt).tolist()
            else:
                test_cost = test_acc = [math.nan] * stack.members
        finally:
            stack.train(was_training)
        for m, point in enumerate(points):
            point["test_cost"] = _finite(test_cost[m])
            point["train_acc"] = _finite(float(train_acc[m]))
            point["test_acc"] = _finite(test_acc[m])

    def _histograms(self, step: int) -> list[dict[str, Any]]:
        """Per member, per hidden layer: where log10 |value| of its outputs and of
        ∂loss/∂h fall on the shared edges, and their RMS."""
        g = self.group
        stack = g.stack
        x, y = g.ds.x_train[g.hist_rows], g.ds.y_train[g.hist_rows]
        layers = list(stack.layers)
        linears = [i for i, layer in enumerate(layers) if isinstance(layer, models.StackedLinear)]
        hidden = linears[:-1]
        no_update = torch.zeros(stack.members, dtype=torch.bool)
        pre: list[Tensor] = []
        acts: list[Tensor] = []
        with torch.enable_grad():
            h = x.T.contiguous()
            for i, layer in enumerate(layers):
                if i in linears[1:]:
                    acts.append(h.detach())
                h = layer(h, no_update) if isinstance(layer, StackedBatchNorm) else layer(h)
                if i in hidden:
                    pre.append(h)
            out = h.transpose(1, 2)
            loss = self._loss(out, y).sum()
            grads = torch.autograd.grad(loss, pre) if pre else ()
        edges = torch.tensor(HIST_EDGES, dtype=torch.float64)
        bins = len(HIST_EDGES)  # the tiny bin plus the len − 1 between edges

        def counts(values: Tensor) -> list[list[float]]:
            v = values.detach().double().abs().reshape(stack.members, -1)
            index = torch.bucketize(v.clamp_min(1e-300).log10(), edges, right=True)
            index = index.clamp(1, bins - 1)
            index[v < _TINY] = 0
            index[~torch.isfinite(v)] = bins - 1
            offset = index + bins * torch.arange(stack.members).unsqueeze(1)
            c = torch.bincount(offset.reshape(-1), minlength=bins * stack.members)
            c = c.reshape(stack.members, bins).double()
            return (c / c.sum(1, keepdim=True)).tolist()

        def rms(values: Tensor) -> list[float]:
            return (
                values.detach().double().reshape(stack.members, -1).pow(2).mean(1).sqrt().tolist()
            )

        per_layer = [
            (counts(a), rms(a), counts(gr), rms(gr)) for a, gr in zip(acts, grads, strict=True)
        ]
        return [
            {
                "step": step,
                "layers": [
                    {
                        "name": f"layer {k + 1}",
                        "act": [round(v, 4) for v in ac[m]],
                        "grad": [round(v, 4) for v in gc[m]],
                        "act_rms": _finite(ar[m]),
                        "grad_rms": _finite(gr[m]),
                    }
                    for k, (ac, ar, gc, gr) in enumerate(per_layer)
                ],
            }
            for m in range(stack.members)
        ]

    def _ratios(self, run: Run) -> None:
        """‖ΔW‖/‖W‖ of the step just taken, per member and weight layer."""
        before, self.snapshot = self.snapshot, None
        assert before is not None
        values = []
        with torch.no_grad():
            for w0, layer in zip(before, self._linears(), strict=True):
                delta = (layer.weight - w0).flatten(1).norm(dim=1)
                values.append((delta / w0.flatten(1).norm(dim=1)).tolist())
        names = [f"layer {k + 1}" for k in range(len(values))]
        self.ratios = [  # sent with the next sample, so that every update is whole
            {"step": run.step, "layers": names, "values": [_finite(v[m]) for v in values]}
            for m in range(self.group.stack.members)
        ]

    def _verdicts(self) -> list[list[dict[str, Any]]]:
        g = self.group
        x, y = g.ds.x_train[g.hist_rows], g.ds.y_train[g.hist_rows]
        try:
            report = probe(
                g.stack,
                (x, y),
                lambda out, target: self._loss(out, target).sum(),
                histograms=False,
                forecast=False,
            )
        except (ValueError, RuntimeError) as error:
            return [
                [
                    {
                        "kind": "failed",
                        "title": "The probe failed",
                        "evidence": str(error),
                        "fix": None,
                    }
                ]
                for _ in g.lanes
            ]
        found = []
        for member, lane in zip(report, g.lanes, strict=True):
            kept = member.problems  # advice (a redundant bias) is not a lane's trouble
            found.append([_verdict(v, lane) for v in kept])
        return found

    def _post(
        self,
        run: Run,
        points: list[dict[str, Any]],
        hist: list[dict[str, Any]] | None,
        map_: list[dict[str, Any]] | None,
        verdicts: list[list[dict[str, Any]]] | None,
    ) -> None:
        outbox = self.outbox
        speed = run.step / max(run.elapsed, 1e-9)
        with outbox.lock:
            for m, index in enumerate(self.group.indices):
                state = self.states[index]
                update = outbox.lane(index)
                update.update(
                    step=run.step if state.stopped_step is None else state.stopped_step,
                    epoch=run.epoch,
                    status=state.status,
                    message=state.message,
                    steps_per_second=round(speed, 1),
                )
                update["points"].append(points[m])
                history = outbox.history.setdefault(index, [])
                if history and history[-1]["step"] == points[m]["step"]:
                    history[-1] = points[m]  # a second sample at one step (a pause's)
                elif len(history) < _MAX_HISTORY:
                    history.append(points[m])
                if self.ratios is not None:
                    update["ratios"] = self.ratios[m]
                if hist is not None:
                    update["hist"] = hist[m]
                if map_ is not None:
                    update["map"] = map_[m]
                if state.verdict is not None:
                    update["verdicts"], state.verdict = [state.verdict], None
                elif verdicts is not None and state.status != "diverged":
                    update["verdicts"] = verdicts[m]
            self.ratios = None
        self.session.stepped(self.generation, self.group.number, run.step)


# --------------------------------------------------------------------------- session


_OPEN: weakref.WeakSet[Session] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Stop every training thread before the interpreter goes: a thread killed inside
    torch at exit aborts the process ("terminate called without an active exception")."""
    for session in list(_OPEN):
        session.close()


class Session:
    """One page's lanes and their training threads.

    Args:
        id: the session's id (a random one by default).
    """

    def __init__(self, id: str | None = None) -> None:
        self.id = id or uuid.uuid4().hex[:12]
        self.lanes: list[Lane] = []
        self.states: list[_LaneState] = []
        self.outbox = _Outbox()
        self.control = _Control()
        self.groups: list[_Group] = []
        self.threads: list[threading.Thread] = []
        self._steps = threading.Condition()
        self._min_step = 0
        self._group_steps: dict[int, int] = {}
        self.data: list[dict[str, Any]] = []  # the lanes' data messages
        self.generation = 0  # counts configures: a sampler knows its own
        _OPEN.add(self)

    # ----------------------------------------------------------------- commands

    def configure(self, lanes: Sequence[Lane | dict[str, Any]]) -> list[Lane]:
        """Check the lanes and build their stacks; on any error nothing changes.

        Raises:
            LaneErrors: every problem found.
        """
        checked = check_lanes(list(lanes))
        groups = self._build(checked)  # may raise: the old lanes keep training
        playing = self.control.playing
        self._stop()
        self.lanes, self.groups = checked, groups
        self.states = [_LaneState() for _ in checked]
        self.outbox = _Outbox()
        self.control = _Control()
        self.control.playing = playing
        self.generation += 1
        self.data = self._data_messages()
        self._start()
        return checked

    def play(self) -> None:
        with self.control.cond:
            self.control.playing = True
            self.control.cond.notify_all()

    def pause(self) -> None:
        with self.control.cond:
            self.control.playing = False
            self.control.cond.notify_all()

    def step(self) -> None:
        """One step of every stack, then paused."""
        with self.control.cond:
            self.control.playing = False
            for group in self.groups:
                self.control.credit[group.number] = self.control.credit.get(group.number, 0) + 1
            self.control.cond.notify_all()

    def reset(self) -> None:
        """The same lanes from step 0, paused."""
        self.pause()
        if self.lanes:
            self.configure(self.lanes)

    def close(self) -> None:
        """Stop every thread (at its next step boundary) and wait for them."""
        self._stop()

    def stop_soon(self) -> None:
        """Tell every thread to stop at its next step boundary, without waiting."""
        with self.control.cond:
            self.control.stopped = True
            self.control.cond.notify_all()

    @property
    def playing(self) -> bool:
        return self.control.playing

    # ----------------------------------------------------------------- page side

    def drain(self) -> dict[str, Any]:
        """The lanes' updates since the last drain: ``{"lanes": [update, …]}``."""
        box = self.outbox
        with box.lock:
            updates = [box.updates[i] for i in sorted(box.updates)]
            box.updates = {}
        return {"lanes": updates}

    def history(self, lane: int) -> list[dict[str, Any]]:
        """The lane's samples so far (a copy)."""
        with self.outbox.lock:
            return list(self.outbox.history.get(lane, []))

    def wait_for_step(self, step: int, timeout: float) -> bool:
        """Wait until every stack has taken ``step`` steps (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._steps:
            while self._min_step < step:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._steps.wait(left)
        return True

    def stepped(self, generation: int, group: int, step: int) -> None:
        """A stack has taken ``step`` steps (its sampler says so)."""
        with self._steps:
            if generation != self.generation:
                return
            self._group_steps[group] = step
            if len(self._group_steps) == len(self.groups):
                self._min_step = min(self._group_steps.values())
            self._steps.notify_all()

    # ----------------------------------------------------------------- internals

    def _build(self, lanes: list[Lane]) -> list[_Group]:
        keys: dict[tuple[Any, ...], list[int]] = {}
        for i, lane in enumerate(lanes):
            keys.setdefault(stack_key(lane), []).append(i)
        return [
            _Group(n, indices, [lanes[i] for i in indices])
            for n, indices in enumerate(keys.values())
        ]

    def _data_messages(self) -> list[dict[str, Any]]:
        """One ``data`` message per lane: its points (2-D data) and the map's extent."""
        messages = []
        for group in self.groups:
            ds = group.ds
            for index in group.indices:
                lane = self.lanes[index]
                message: dict[str, Any] = {
                    "type": "data",
                    "lane": index,
                    "dims": int(ds.x_train[0].numel()),
                    "classes": ds.num_classes,
                    "extent": None,
                    "train": [],
                    "test": [],
                }
                if lane.two_d and group.x_all is not None:
                    # the decision map's grid: the points' range widened by its margin
                    dm_lo = group.x_all.min(0).values - _MARGIN
                    dm_hi = group.x_all.max(0).values + _MARGIN
                    message["extent"] = [
                        float(dm_lo[0]),
                        float(dm_hi[0]),
                        float(dm_lo[1]),
                        float(dm_hi[1]),
                    ]
                    message["train"] = _points(ds.x_train, ds.y_train)
                    message["test"] = _points(ds.x_test, ds.y_test)
                messages.append(message)
        return messages

    def _start(self) -> None:
        with self._steps:
            self._group_steps, self._min_step = {}, 0
        for group in self.groups:
            sampler = _Sampler(self, group)
            thread = threading.Thread(
                target=self._train,
                args=(group, sampler),
                name=f"playground-{self.id}-{self.generation}-{group.number}",
            )
            thread.daemon = True
            self.threads.append(thread)
            thread.start()

    def _train(self, group: _Group, sampler: _Sampler) -> None:
        # One intra-op thread: a tiny net's ops gain nothing from more, and outside the
        # main thread torch's two-thread pool ran the circles preset 3× slower (its
        # workers wait on the main thread's pool).
        torch.set_num_threads(1)
        try:
            train(group.stack, group.ds, group.config, observers=[sampler])
        except Exception as error:  # shown on the page, never a silent stop
            message = f"training failed: {type(error).__name__}: {error}"
            step = sampler.run.step if sampler.run is not None else 0
            with sampler.outbox.lock:
                for index in group.indices:
                    sampler.states[index].status = "failed"
                    sampler.states[index].message = message
                    update = sampler.outbox.lane(index)
                    update.update(
                        step=step, epoch=0, status="failed", message=message, steps_per_second=0
                    )

    def _stop(self) -> None:
        self.stop_soon()
        for thread in self.threads:
            thread.join(timeout=30)
        # One still inside a long step stops at its end, on its own generation's control.
        self.threads = [t for t in self.threads if t.is_alive()]


def _points(x: Tensor, y: Tensor) -> list[list[float]]:
    return [
        [round(a, 4), round(b, 4), int(c)] for (a, b), c in zip(x.tolist(), y.tolist(), strict=True)
    ]
