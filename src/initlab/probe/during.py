"""The probe during a run of :func:`initlab.train.train`, heard through the engine's observers.

Example:
    >>> import torch
    >>> from initlab import data, models
    >>> from initlab.train import TrainConfig, train
    >>> ds = data.load("circles", n=200, seed=0)
    >>> net = models.mlp([2, 16, 16, 1], "tanh", members=2)
    >>> watch = ProbeEvery(ds.x_train[:128], every=50)
    >>> _ = train(net, ds, TrainConfig(loss="bce", lr=0.1, steps=100), observers=[watch])
    >>> [step for step, _ in watch.reports], len(watch.reports[-1][1])
    ([0, 50, 100], 2)
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from torch import Tensor

from initlab._validation import check_int
from initlab.probe.results import ProbeReport
from initlab.probe.run import probe
from initlab.probe.verdicts import VerdictKind
from initlab.train import Observer, Run

__all__ = ["ProbeEvery"]


class ProbeEvery(Observer):
    """Probes the stack being trained before its first step and every ``every`` steps.

    Each probe runs on a copy of the stack (its weights, gradients and batch-norm
    statistics are left as training has them) and on the same ``batch``, so the reports
    differ only by what training did. With ``stop_on``, the run stops as soon as every
    member has a verdict of one of those kinds (e.g. ``{"nonfinite"}``, or ``{"dead"}``
    for a sweep that should not spend its budget on dead nets).

    Args:
        batch: x, or (x, target), as :func:`~initlab.probe.probe` takes it.
        every: steps between probes (≥ 1).
        loss_fn: the probe's loss (None: the N(0, 1) output gradient of the theory).
        stop_on: verdict kinds that, on every member, stop the run.
        **options: further keyword arguments of :func:`~initlab.probe.probe`
            (``thresholds``, ``histograms``, ``forecast``, ``seed``, ...).

    Attributes:
        reports: ``(steps done, report)`` per probe, in order.
    """

    def __init__(
        self,
        batch: Tensor | tuple[Tensor, Any],
        every: int = 100,
        *,
        loss_fn: Callable[..., Tensor] | None = None,
        stop_on: Collection[VerdictKind] = (),
        **options: Any,
    ) -> None:
        self.every = check_int("ProbeEvery", "every", every, low=1)
        self.batch, self.loss_fn, self.stop_on = batch, loss_fn, frozenset(stop_on)
        self.options = options
        self.reports: list[tuple[int, ProbeReport]] = []

    def on_start(self, run: Run) -> None:
        self._probe(run)

    def on_step(self, run: Run) -> None:
        self._probe(run)

    def _probe(self, run: Run) -> None:
        report = probe(run.model, self.batch, self.loss_fn, **self.options)
        self.reports.append((run.step, report))
        if not self.stop_on:
            return
        found = [next((v for v in p.verdicts if v.kind in self.stop_on), None) for p in report]
        if all(v is not None for v in found):
            kinds = sorted({v.kind for v in found if v is not None})
            run.stop(f"the probe found {' and '.join(kinds)} in every member at step {run.step}")
