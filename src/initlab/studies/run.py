"""The local runner: a study's pending runs trained stack by stack into its store.

:func:`run_study` adds every run of the study to the store, skips those already done,
packs the rest (:func:`~initlab.studies.plan.plan`), trains each stack with
:func:`initlab.train.train` (each data set loaded once) and writes each stack's results
and history in ONE transaction (:meth:`~initlab.store.Store.write_stack`). A process
killed at any moment loses at most the stack in training; rerunning the same study
resumes, and a study that grows an axis reuses every run already done (a run's id is its
config's hash).

A run's results do not depend on the stack it trained in (the engine's members never
touch each other), so a resumed study, repacked, stores the numbers an uninterrupted
one would. What is written per run:

- ``status``: ``done`` (ran to its budget, or converged: ``reason`` says which),
  ``diverged`` (a non-finite loss or parameter froze it; ``reason`` says at which step),
  ``failed`` (building or training its stack raised; ``reason`` is the message);
- ``final_loss`` (the loss at its last step), ``best_loss`` (the lowest in its history),
  accuracies at the end, ``steps`` taken, ``seconds`` (its share of its stack's time);
- history every ``history_every`` steps while it trained: ``loss``, ``grad_norm``
  (before clipping), ``lr`` (the scheduled rate) and, with a clip, ``clipped`` (0 or 1);
  a run that ran to its budget also has its last step's row, and one that stopped early
  its last step's ``loss``;
- with ``probe_every = k``, each weight layer's statistics (depth 1…L in forward order)
  before the first step and every k steps, while it trained (steps ≤ its steps taken),
  as history rows ``layer.<depth>.h_rms`` (rms of the layer's output h),
  ``layer.<depth>.grad_rms`` (rms of ∂loss/∂h) and ``layer.<depth>.grad_ratio``
  (‖∇W‖/‖W‖), read back by :func:`initlab.store.layers`. They are measured by
  :func:`initlab.probe.probe` on a fixed batch, the first min(256, n_train) training
  examples with their targets and the run's loss, on a copy of the stack (training is not
  touched): the same numbers whatever stack the run trained in.

Ctrl-C stops the stack in training at a step boundary; every finished stack is kept and
the summary says ``interrupted``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initlab.store import LAYER_STATS, HistoryRow, Result, Store
from initlab.studies.backends import Backend, Executor, LocalExecutor, executor
from initlab.studies.check import check_points
from initlab.studies.plan import DEFAULT_MAX_MEMBERS, StackPlan, plan
from initlab.studies.spec import _OMITTED_WHEN_NONE, FIELDS, Study, run_id
from initlab.train import Observer, Run

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from initlab.data import Dataset
    from initlab.train import TrainResult

__all__ = ["StudySummary", "run_study"]


@dataclass(frozen=True)
class StudySummary:
    """What :func:`run_study` did."""

    runs: int  # runs in the study
    skipped: int  # already done in the store before this call
    trained: int  # runs written by this call
    done: int  # of those, done (budget or converged)
    diverged: int  # of those, diverged
    failed: int  # of those, failed
    stacks: int  # stacks planned for the pending runs
    stacks_trained: int  # stacks written by this call
    interrupted: bool  # Ctrl-C stopped it; rerun to resume
    seconds: float  # wall time of the call

    @property
    def pending(self) -> int:
        """Runs still without a result."""
        return self.runs - self.skipped - self.trained

    def __repr__(self) -> str:
        return (
            f"StudySummary(runs={self.runs}, skipped={self.skipped}, trained={self.trained}, "
            f"done={self.done}, diverged={self.diverged}, failed={self.failed}, "
            f"pending={self.pending}, interrupted={self.interrupted}, "
            f"seconds={self.seconds:.3g})"
        )

    def _repr_html_(self) -> str:
        """The summary in a notebook: a sentence and a table of the counts."""
        from initlab._repr import box, paragraphs, table

        lines = [
            f"{self.trained} of {self.runs} runs trained in {self.seconds:.1f} s "
            f"({self.stacks_trained} of {self.stacks} stacks); {self.skipped} were already "
            "in the store."
        ]
        if self.interrupted:
            lines.append("Interrupted: run the study again to resume.")
        if self.pending:
            lines.append(f"{self.pending} runs still have no result.")
        counts = [
            ("runs", self.runs),
            ("already done", self.skipped),
            ("trained", self.trained),
            ("done", self.done),
            ("diverged", self.diverged),
            ("failed", self.failed),
            ("pending", self.pending),
        ]
        return box("StudySummary", paragraphs(lines) + table(["", "runs"], counts))


class _Bar(Observer):
    """Moves the progress bar through a stack's steps, at the engine's stopping checks
    (which read the device anyway: no extra sync)."""

    def __init__(self, progress: Progress, task: TaskID, before: int, members: int) -> None:
        self.progress, self.task, self.before, self.members = progress, task, before, members

    def on_step(self, run: Run) -> None:
        share = self.members * run.step / max(run.total, 1)
        self.progress.update(self.task, completed=self.before + share)


#: The examples the layer probe reads: the first of the training set, at most this many.
PROBE_EXAMPLES = 256

#: One probe of a stack: (steps done, per member, per weight layer (h_rms, grad_rms,
#: grad_ratio)).
LayerRecord = tuple[int, list[list[tuple[float, float, float]]]]


class _LayerProbe(Observer):
    """Each member's per-layer statistics before the first step and every ``every``
    steps, on a fixed batch with its targets and the run's loss (the members' losses
    summed: each member's gradient is its own loss's)."""

    def __init__(self, ds: Dataset, every: int, loss: str, model: Any) -> None:
        parameter = next(model.parameters())
        n = min(PROBE_EXAMPLES, ds.n_train)
        x = ds.x_train[:n].to(device=parameter.device, dtype=parameter.dtype)
        self.batch = (x, ds.y_train[:n].to(parameter.device))
        self.every = every
        self.loss = loss
        self.records: list[LayerRecord] = []

    def loss_fn(self, output: Any, target: Any) -> Any:
        """Σ over members of each member's mean loss; ``output`` is (M, B, out)."""
        from initlab.train import _member_losses

        return _member_losses(output.transpose(1, 2), target.unsqueeze(0), self.loss).sum()

    def on_start(self, run: Run) -> None:
        self._probe(run)

    def on_step(self, run: Run) -> None:
        self._probe(run)

    def _probe(self, run: Run) -> None:
        from initlab.probe import probe

        report = probe(run.model, self.batch, self.loss_fn, histograms=False, forecast=False)
        stats = [
            [(ly.preact_rms, ly.grad_rms, ly.grad_weight_ratio) for ly in member.layers]
            for member in report
        ]
        self.records.append((run.step, stats))


def _stack_model(stack: StackPlan, device: str) -> Any:
    import torch

    from initlab import models

    s = stack.shared
    net = models.mlp(
        s["model"],
        s["activation"],
        None if s["batch_norm"] == "none" else s["batch_norm"],
        members=len(stack),
        dtype=getattr(torch, s["dtype"]),
        device=device,
    )
    models.init_members(
        net, stack.column("init"), stack.column("bias_init"), seeds=stack.column("seed")
    )
    return net


def _finite_min(values: Sequence[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return min(finite) if finite else None


def stack_rows(
    stack: StackPlan, result: TrainResult, probes: Sequence[LayerRecord] = ()
) -> tuple[list[Result], list[HistoryRow]]:
    """A trained stack's results and history rows, each member's alone.

    A member's history keeps the rows it trained: steps that are multiples of
    ``history_every`` before it stopped, plus its last step (the engine's last row for a
    run to its budget; its final loss for one that stopped early). Rows the engine
    recorded while the member was held (others still training) are left out, so the
    history is the same whatever stack the run trained in. Of the layer ``probes``, a
    member keeps those taken after at most its own steps (the weights its training made).
    """
    every = int(stack.shared["history_every"])
    clip = stack.shared["clip"] != "none"
    steps = result.steps.tolist()
    series = {
        "loss": result.loss.double().T.tolist(),
        "grad_norm": result.grad_norm.double().T.tolist(),
        "lr": result.lr.double().T.tolist(),
    }
    if clip:
        series["clipped"] = result.clipped.double().T.tolist()
    share = result.seconds / len(stack)
    now = time.time()
    results: list[Result] = []
    history: list[HistoryRow] = []
    for m, (rid, member) in enumerate(zip(stack.run_ids, result.members, strict=True)):
        taken = member.stopped_step
        budget = member.status == "budget"
        keep = [i for i, s in enumerate(steps) if s < taken and (budget or s % every == 0)]
        losses = [series["loss"][m][i] for i in keep]
        for name, values in series.items():
            history.extend((rid, steps[i], name, values[m][i]) for i in keep)
        if not budget and taken and (not keep or steps[keep[-1]] != taken - 1):
            history.append((rid, taken - 1, "loss", member.final_loss))
            losses.append(member.final_loss)
        for step, stats in probes:
            if step <= taken:
                for depth, layer in enumerate(stats[m], 1):
                    history.extend(
                        (rid, step, f"layer.{depth}.{stat}", value)
                        for stat, value in zip(LAYER_STATS, layer, strict=True)
                    )
        if member.status == "diverged":
            status, reason = "diverged", f"non-finite loss or weights at step {taken - 1}"
        else:
            status, reason = "done", member.status
        results.append(
            Result(
                rid,
                status,  # type: ignore[arg-type]
                reason,
                final_loss=member.final_loss,
                best_loss=_finite_min(losses),
                train_acc=member.train_accuracy,
                test_acc=member.test_accuracy,
                steps=taken,
                seconds=share,
                finished=now,
            )
        )
    return results, history


def _failed(stack: StackPlan, error: Exception, seconds: float) -> list[Result]:
    reason = f"{type(error).__name__}: {error}"
    return [Result(rid, "failed", reason, seconds=seconds / len(stack)) for rid in stack.run_ids]


@dataclass
class _Tally:
    trained: int = 0
    done: int = 0
    diverged: int = 0
    failed: int = 0
    stacks: int = 0

    def add(self, results: Sequence[Result]) -> None:
        self.trained += len(results)
        self.stacks += 1
        for r in results:
            setattr(self, r.status, getattr(self, r.status) + 1)


def _progress_bar(enabled: bool) -> Any:
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from initlab._repr import progress_console

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs"),
        TextColumn("{task.fields[stacks]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=progress_console(),
    )


def _check_fields(points: Sequence[Mapping[str, Any]]) -> None:
    """Configs given by hand (not a Study's points) must have every field."""
    required = [f for f in FIELDS if f not in _OMITTED_WHEN_NONE]
    for number, config in enumerate(points, 1):
        if missing := [f for f in required if f not in config]:
            raise ValueError(
                f"config {number} of {len(points):,}: expected every field of a run config. "
                f"Got none for {', '.join(missing)}. Give the configs of "
                "Study.points() (parse_overrides or load_toml make the Study)."
            )


def run_study(
    study: Study | Sequence[Mapping[str, Any]],
    store_path: str | Path,
    *,
    max_members: int = DEFAULT_MAX_MEMBERS,
    memory: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    observers: Sequence[Observer] = (),
    backend: Backend | Executor = "local",
    address: str | None = None,
) -> StudySummary:
    """Train a study's pending runs, stack by stack, into its store; resumable.

    Args:
        study: a :class:`~initlab.studies.Study`, or canonical configs (its points).
        store_path: the study's SQLite store (created if missing).
        max_members: the most members a stack may have.
        memory: the most bytes a stack may need (see :func:`~initlab.studies.plan.plan`).
        device: ``"cpu"`` or ``"cuda"``.
        progress: show a rich progress bar (runs done / total, stacks, ETA) on stderr.
        observers: more :class:`~initlab.train.Observer` objects, given to every stack's
            :func:`~initlab.train.train` (with ``backend="ray"``, pickled into each task).
        backend: where stacks train: ``"local"`` (here, one after another), ``"ray"``
            (one Ray task per stack) or an executor object (a configured
            :class:`~initlab.studies.backends.RayExecutor`); see
            :mod:`initlab.studies.backends`. Either way this process alone writes the
            store, and the numbers stored are the same.
        address: the Ray cluster (``"auto"``, ``"HOST:PORT"``; None: a Ray on this
            machine); only with ``backend="ray"``.

    Returns:
        A :class:`StudySummary`.

    Raises:
        ValueError: before anything trains: a bad device (unknown, or ``"cuda"`` without
            a GPU); an unknown backend, or an ``address`` with the local backend or beside
            an executor object; a config missing a field; what
            :func:`~initlab.studies.check.check_points` finds against the data (a data set
            that does not load, a model that does not fit it, a batch larger than its
            training set); a config with NaN or infinity; a store that is not an initlab
            store (a folder, another file, a newer schema); a run already stored with
            another config; ``max_members`` or ``memory`` below 1.
        TypeError: ``max_members`` or ``memory`` not an integer; a config value JSON
            cannot hold.
        ImportError: ``backend="ray"`` without Ray installed.
        sqlite3.Error: the store cannot be written (a full disk, or another writer
            holding it for more than 30 s); every stack written before stays.
        Exception: Ray's own errors when it cannot start or reach the cluster at
            ``address``; and any error training a stack raises but ValueError,
            RuntimeError and TypeError (those mark the stack's runs ``failed`` and the
            study goes on). Ctrl-C once the store is open is not raised: the summary
            says ``interrupted``.
    """
    from initlab.experiments import resolve_device

    started = time.perf_counter()
    resolve_device(device)
    runner = executor(backend, address=address)
    local = isinstance(runner, LocalExecutor)  # the bar moves within a stack
    points = study.points() if isinstance(study, Study) else [dict(p) for p in study]
    _check_fields(points)
    for p in points:  # as Study.points() leaves them: the same run has the same id
        for key in _OMITTED_WHEN_NONE:
            if key in p and p[key] is None:
                del p[key]
    # Every run against its data, before the store is touched; each data set loaded once.
    loaded = check_points(points)
    ids = [run_id(p) for p in points]
    tally = _Tally()
    interrupted = False
    stacks_planned = 0
    with Store(store_path) as store:
        store.add_runs(dict(zip(ids, points, strict=True)))
        done = store.done_ids()
        pending = [p for p, i in zip(points, ids, strict=True) if i not in done]
        skipped = len(points) - len(pending)
        datasets = {spec: loaded[spec] for spec in dict.fromkeys(p["data"] for p in pending)}
        try:
            the_plan = plan(
                pending,
                max_members=max_members,
                memory=memory,
                n_train={k: d.n_train for k, d in datasets.items()},
            )
            stacks_planned = len(the_plan)
            bar = _progress_bar(progress)
            with bar if bar is not None else _nothing():
                task = (
                    None
                    if bar is None
                    else bar.add_task("study", total=len(points), completed=skipped, stacks="")
                )

                def stack_observers(number: int, stack: StackPlan) -> list[Observer]:
                    extra: list[Observer] = list(observers)
                    if bar is not None and task is not None and local:
                        before = skipped + tally.trained
                        stacks = f"stack {number}/{stacks_planned}"
                        bar.update(task, completed=before, stacks=stacks)
                        extra.append(_Bar(bar, task, before, len(stack)))
                    return extra

                finished = runner.run(the_plan.stacks, datasets, device, stack_observers)
                try:
                    for out in finished:
                        if out.results is not None:
                            store.write_stack(out.results, out.history)
                            tally.add(out.results)
                            if bar is not None and task is not None:
                                stacks = f"{tally.stacks}/{stacks_planned} stacks"
                                bar.update(task, completed=skipped + tally.trained, stacks=stacks)
                        if out.stop:
                            interrupted = True
                            break
                finally:
                    finished.close()  # cancels the stacks still training elsewhere
        except KeyboardInterrupt:
            interrupted = True
    return StudySummary(
        runs=len(points),
        skipped=skipped,
        trained=tally.trained,
        done=tally.done,
        diverged=tally.diverged,
        failed=tally.failed,
        stacks=stacks_planned,
        stacks_trained=tally.stacks,
        interrupted=interrupted,
        seconds=time.perf_counter() - started,
    )


def _train_stack(
    stack: StackPlan, ds: Dataset, device: str, observers: Sequence[Observer]
) -> tuple[list[Result] | None, list[HistoryRow], bool]:
    """Train one stack: its results and history (None if Ctrl-C or an observer cut it
    short), and whether the study should stop after it."""
    from initlab.train import train

    started = time.perf_counter()
    every = stack.shared.get("probe_every")  # absent (None) unless the study sets it
    layer_probe: _LayerProbe | None = None
    try:
        net = _stack_model(stack, device)
        config = stack.train_config()
        if every is not None:  # without it, no observer: no cost per step
            layer_probe = _LayerProbe(ds, int(every), config.loss, net)
            observers = [*observers, layer_probe]
        result = train(net, ds, config, observers=observers)
    except (ValueError, RuntimeError, TypeError) as error:
        return _failed(stack, error, time.perf_counter() - started), [], False
    if result.stop_reason is not None or any(
        m.status in ("interrupted", "stopped") for m in result.members
    ):
        return None, [], True  # cut short: nothing of it is kept
    probes = layer_probe.records if layer_probe is not None else ()
    results, history = stack_rows(stack, result, probes)
    # Ctrl-C at the very last step leaves the stack whole: keep it, then stop.
    return results, history, result.interrupted


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
