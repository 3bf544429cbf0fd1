"""Executors: where a study's stacks train. The driver (:func:`~initlab.studies.run_study`)
alone writes the store; an executor only trains stacks and hands back their rows.

An executor's :meth:`~Executor.run` takes the planned stacks and the loaded data and
yields one :class:`Finished` per stack as each finishes (in any order). The driver writes
each one's results and history in one transaction as it arrives, so a process killed at
any moment loses at most the stacks still in training. Closing the iterator (the driver
stops early: Ctrl-C, an observer's stop) cancels what is still running.

- :class:`LocalExecutor`: the stacks one after another in this process.
- :class:`RayExecutor`: one Ray task per stack, on this machine or a cluster. Each data
  set is put in Ray's object store once; a task gets its stack's plan and data, trains it
  and returns plain rows (:class:`~initlab.store.Result` objects and history tuples), never
  touching the store; at most ``max_in_flight`` tasks are submitted at a time; a task
  whose worker dies is run again (``max_retries``), and its stack is written once, from
  the attempt that finished. Needs ``pip install initlab[ray]``.

A result does not depend on where its stack trained: the same study stores the same
numbers (float64) under either executor.

A further backend (a process pool, Dask) is one class with this ``run`` method.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from initlab.store import HistoryRow, Result

if TYPE_CHECKING:
    from initlab.data import Dataset
    from initlab.studies.plan import StackPlan
    from initlab.train import Observer

__all__ = ["Backend", "Executor", "Finished", "LocalExecutor", "RayExecutor", "executor"]

#: The backends :func:`executor` knows.
Backend = Literal["local", "ray"]
#: The observers to give stack ``number`` (1-based) of a plan: called as each starts.
ObserverFactory = Callable[[int, "StackPlan"], Sequence["Observer"]]


@dataclass(frozen=True)
class Finished:
    """A stack that finished training: what the driver writes."""

    number: int  # the stack's place in the plan, from 1
    results: list[Result] | None  # one per member; None: cut short, nothing of it is kept
    history: list[HistoryRow]  # (run_id, step, name, value) rows
    stop: bool  # the study should stop after it (Ctrl-C, an observer's stop)


class Executor(Protocol):
    """Trains a plan's stacks and yields each as it finishes."""

    def run(
        self,
        stacks: Sequence[StackPlan],
        datasets: Mapping[str, Dataset],
        device: str,
        observers: ObserverFactory,
    ) -> Generator[Finished, None, None]:
        """Train ``stacks`` (stack ``s`` on ``datasets[s.shared["data"]]``) on ``device``;
        yield each finished one. Closing the iterator cancels the rest."""
        ...


class LocalExecutor:
    """The stacks one after another in this process: the default.

    Example:
        >>> from initlab.studies import parse_overrides, plan
        >>> from initlab.studies.plan import load_data
        >>> spec = "circles(n=20)"
        >>> p = plan(parse_overrides(["steps=10", "seed=0,1", f"data={spec}"]), n_train={spec: 16})
        >>> done = LocalExecutor().run(p.stacks, {spec: load_data(spec)}, "cpu", lambda n, s: ())
        >>> [(f.number, len(f.results or [])) for f in done]
        [(1, 2)]
    """

    def run(
        self,
        stacks: Sequence[StackPlan],
        datasets: Mapping[str, Dataset],
        device: str,
        observers: ObserverFactory,
    ) -> Generator[Finished, None, None]:
        from initlab.studies.run import _train_stack

        for number, stack in enumerate(stacks, 1):
            ds = datasets[stack.shared["data"]]
            results, history, stop = _train_stack(stack, ds, device, observers(number, stack))
            yield Finished(number, results, history, stop)


def _train_task(
    stack: StackPlan, ds: Dataset, device: str, observers: Sequence[Observer]
) -> tuple[list[Result] | None, list[HistoryRow], bool]:
    """One Ray task: one stack trained in a worker; plain rows back, no store."""
    from initlab.studies.run import _train_stack

    return _train_stack(stack, ds, device, observers)


class RayExecutor:
    """One Ray task per stack, on a local Ray or a cluster.

    Observers given to :func:`~initlab.studies.run_study` are pickled into each task and
    run in the worker beside the stack they watch (the progress bar moves as stacks
    finish).

    Args:
        address: the cluster to join: None starts a Ray on this machine (or uses the one
            this process already started), ``"auto"`` joins the one ``ray start`` runs
            here, ``"HOST:PORT"`` a head node's.
        num_cpus_per_task: CPUs Ray reserves for each stack's task.
        num_gpus_per_task: GPUs Ray reserves for each (set 1 with ``device="cuda"``).
        max_in_flight: the most tasks submitted at a time; None: twice the tasks the
            cluster can run at once (so a worker never waits for the driver).
        max_retries: times a task is run again after its worker died.

    Raises:
        ValueError: a count below its minimum.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus_per_task: float = 1,
        num_gpus_per_task: float = 0,
        max_in_flight: int | None = None,
        max_retries: int = 3,
    ) -> None:
        for name, value, least in (
            ("num_cpus_per_task", num_cpus_per_task, 0),
            ("num_gpus_per_task", num_gpus_per_task, 0),
            ("max_retries", max_retries, 0),
            ("max_in_flight", 1 if max_in_flight is None else max_in_flight, 1),
        ):
            if value < least:
                raise ValueError(
                    f"The '{name}' parameter of RayExecutor must be at least {least}. "
                    f"Got {value!r} instead."
                )
        if num_cpus_per_task == 0 and num_gpus_per_task == 0:
            raise ValueError(
                "RayExecutor needs num_cpus_per_task or num_gpus_per_task above 0. "
                "Got both 0 instead: give each task at least a CPU."
            )
        self.address = address
        self.num_cpus_per_task = num_cpus_per_task
        self.num_gpus_per_task = num_gpus_per_task
        self.max_in_flight = max_in_flight
        self.max_retries = max_retries

    def _slots(self, ray: Any) -> int:
        """Tasks the cluster can run at once."""
        total = ray.cluster_resources()
        fits = (
            [int(total.get("CPU", 0) // self.num_cpus_per_task)] if self.num_cpus_per_task else []
        )
        if self.num_gpus_per_task:
            fits.append(int(total.get("GPU", 0) // self.num_gpus_per_task))
        return max(1, min(fits))

    def run(
        self,
        stacks: Sequence[StackPlan],
        datasets: Mapping[str, Dataset],
        device: str,
        observers: ObserverFactory,
    ) -> Generator[Finished, None, None]:
        try:
            import ray
        except ImportError as error:  # pragma: no cover - depends on the install
            raise ImportError("The ray backend needs Ray: pip install 'initlab[ray]'.") from error

        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, logging_level=logging.WARNING)
        try:
            yield from self._run(ray, stacks, datasets, device, observers)
        finally:
            if started_here:
                ray.shutdown()

    def _run(
        self,
        ray: Any,
        stacks: Sequence[StackPlan],
        datasets: Mapping[str, Dataset],
        device: str,
        observers: ObserverFactory,
    ) -> Generator[Finished, None, None]:
        task = ray.remote(
            num_cpus=self.num_cpus_per_task,
            num_gpus=self.num_gpus_per_task,
            max_retries=self.max_retries,
            retry_exceptions=False,  # an error in the stack is its result, not a retry
        )(_train_task)
        bound = self.max_in_flight or 2 * self._slots(ray)
        # Each data set put once: every task reads the same object.
        refs = {spec: ray.put(datasets[spec]) for spec in {s.shared["data"] for s in stacks}}
        queue = iter(enumerate(stacks, 1))
        in_flight: dict[Any, tuple[int, StackPlan]] = {}

        def submit() -> None:
            for number, stack in queue:
                extra = list(observers(number, stack))
                ref = task.remote(stack, refs[stack.shared["data"]], device, extra)
                in_flight[ref] = (number, stack)
                if len(in_flight) >= bound:
                    return

        try:
            submit()
            while in_flight:
                [ref], _ = ray.wait(list(in_flight), num_returns=1)
                number, stack = in_flight.pop(ref)
                try:
                    results, history, stop = ray.get(ref)
                except ray.exceptions.RayTaskError as error:
                    raise error.as_instanceof_cause() from None  # as the local backend would
                except (ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError) as e:
                    # Its worker died on every try: the stack failed, like one that raised.
                    from initlab.studies.run import _failed

                    results, history, stop = _failed(stack, e, 0.0), [], False
                yield Finished(number, results, history, stop)
                if stop:
                    return
                submit()
        finally:
            for ref in in_flight:  # the driver stopped early: nothing more of this plan
                ray.cancel(ref)


def executor(
    backend: Backend | Executor = "local",
    *,
    address: str | None = None,
    **options: Any,
) -> Executor:
    """The executor of ``backend``: ``"local"`` or ``"ray"`` (``address`` and ``options``
    go to :class:`RayExecutor`), or ``backend`` itself when it is one already (say a
    ``RayExecutor(num_cpus_per_task=4)``).

    Raises:
        ValueError: an unknown backend, or an address or options for the local one.
        ImportError: ``"ray"`` without Ray installed.

    Example:
        >>> type(executor("local")).__name__
        'LocalExecutor'
    """
    if not isinstance(backend, str):
        if address is not None or options:
            raise ValueError(
                "An executor object takes its address and options itself. "
                f"Got address={address!r}, {options!r} beside it instead."
            )
        return backend
    if backend == "local":
        if address is not None or options:
            raise ValueError(
                "The local backend takes no address or options. "
                f"Got address={address!r}, {options!r} instead: use backend='ray'."
            )
        return LocalExecutor()
    if backend == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:  # said before any store is touched
            raise ImportError("The ray backend needs Ray: pip install 'initlab[ray]'.")
        return RayExecutor(address, **options)
    raise ValueError(
        f"The 'backend' parameter of run_study must be 'local' or 'ray'. Got {backend!r} instead."
    )
