"""The probe inside a PyTorch Lightning ``Trainer``: :class:`ProbeCallback`.

A network that will not train usually shows it in its first hundred steps: saturated
units, a gradient that vanishes toward the input, updates a hundred times too small or
too large for the weights (the 1e-3 guide for ‖ΔW‖/‖W‖), a loss that climbs. Most people
train in a loop they did not write, so the probe comes to that loop as a callback. Every
``every`` optimizer steps it wraps one training step in :class:`initlab.probe.Watch`:
the hooks go on in ``on_train_batch_start`` and come off once the backward pass is done
(``on_before_optimizer_step``), and the report is made in ``on_train_batch_end``, after
the optimizer has stepped, so it reads that step's own forward and backward passes (no
extra pass) and the update it made. It keeps the reports, logs one number
per verdict kind to the trainer's logger (a curve that steps from 0 to 1 shows when a
problem appeared), says each new verdict once with its fix, and can stop training on the
kinds the user names — the callback form of :class:`initlab.probe.ProbeEvery`.

Lightning is an optional dependency (``pip install 'initlab[lightning]'``): ``import
initlab`` never imports this module, and importing it without Lightning raises an
ImportError that names the extra.

Example:
    >>> import lightning as L
    >>> import torch
    >>> from torch import nn
    >>> from torch.nn import functional as F
    >>> class Net(L.LightningModule):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    ...     def training_step(self, batch, batch_idx):
    ...         x, y = batch
    ...         return F.cross_entropy(self.net(x), y)
    ...     def configure_optimizers(self):
    ...         return torch.optim.SGD(self.parameters(), lr=0.1)
    >>> _ = torch.manual_seed(0)
    >>> data = torch.utils.data.TensorDataset(torch.randn(64, 2), torch.randint(0, 2, (64,)))
    >>> callback = ProbeCallback(every=2, log=False)
    >>> trainer = L.Trainer(max_steps=5, callbacks=[callback], logger=False,
    ...                     enable_checkpointing=False, enable_progress_bar=False,
    ...                     enable_model_summary=False)
    >>> trainer.fit(Net(), torch.utils.data.DataLoader(data, batch_size=16))
    >>> [step for step, _ in callback.reports]
    [0, 2, 4]
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, get_args

import torch
from torch import Tensor

from initlab._validation import check_int, did_you_mean, param_message
from initlab.probe import ProbeReport, Thresholds, Verdict, VerdictKind, Watch

try:
    import lightning.pytorch as pl
except ImportError as error:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "initlab.lightning needs PyTorch Lightning (the `lightning` package), which is not "
        f"installed here ({error}). Install it with: pip install 'initlab[lightning]'"
    ) from error

__all__ = ["KINDS", "ProbeCallback"]

# Problems and advice at WARNING, so that they show without any logging set up.
_logger = logging.getLogger(__name__)

#: Every verdict kind, in the order the metrics are logged: one ``probe/<kind>`` each.
KINDS: tuple[str, ...] = get_args(VerdictKind)


class ProbeCallback(pl.Callback):
    """Probes the training step every ``every`` optimizer steps, logs and says the verdicts.

    At step 0 and then every ``every`` steps (``trainer.global_step``, which counts
    optimizer steps), :class:`~initlab.probe.Watch` records the training step's forward
    and backward pass; once the optimizer has stepped, ``watch.report(loss=...)`` turns
    it into a :class:`~initlab.probe.ProbeReport`. One Watch serves the whole fit, so it
    keeps the losses of its earlier reports (for the "diverging" verdict). With gradient
    accumulation the last micro-batch of the step (the one the optimizer steps after) is
    recorded, and ∇W is the accumulated gradient.

    Per report, with ``log``, these metrics are written to every logger of the trainer
    (``trainer.loggers``) at the probe's step, whatever ``log_every_n_steps`` (unless it
    is 0: no step logging), and logged with ``pl_module.log_dict(on_step=True,
    logger=False)`` so that ``trainer.callback_metrics`` holds the latest, for
    ``EarlyStopping`` or ``ModelCheckpoint`` to monitor:

    * ``probe/<kind>``: 1 when a verdict of that kind was found, else 0, for every kind
      in :data:`KINDS` ("saturated", "vanishing", "update_ratio", "diverging", …);
    * ``probe/problems``: how many verdicts of severity "problem" (advice not counted);
    * ``probe/grad_weight_ratio_max``: the largest ‖∂loss/∂W‖/‖W‖ over the layers;
    * ``probe/update_weight_ratio_max``: the largest ‖ΔW‖/‖W‖ of the step (left out
      where it was not measured).

    (Through the trainer's own logging, a value logged at one step is written again at
    every later step of the epoch, and only every ``log_every_n_steps``: a probe every
    100 steps would rarely be written, and then beside steps it never saw.)

    A verdict is said when its kind appears, once while it lasts (again if it goes and
    comes back), with its evidence and its fix, on the process of rank zero, through the
    ``logging`` logger "initlab.lightning" at WARNING (so it shows without any logging
    set up; advice is marked so); its going away is said at INFO. A verdict of a kind in
    ``stop_on`` sets ``trainer.should_stop`` (in every process, when any process found
    it), which ends training after the current step; :attr:`stop_reason` says why.

    The loss given to the report is the training step's: ``outputs["loss"]`` (or the
    tensor it returned). Where the batch is a pair ``(x, y)`` with integer ``y``, ``y``
    is given as the target too, so the report can judge the loss at init against ln C.

    Manual optimization (``automatic_optimization = False``) works the same way: the
    hooks record the first forward pass through the module's layers inside
    ``training_step`` and the backward passes that follow, and the report waits until
    ``trainer.global_step`` has moved (an optimizer stepped), so ΔW/W is that step's.
    Two optimizers stepped per batch advance ``global_step`` by two, and ``every``
    counts those steps; a training step that returns no loss leaves the loss-based
    verdicts (loss at init, diverging) unjudged.

    Args:
        every: optimizer steps between probes (≥ 1); the first probe is at step 0.
        thresholds: when measurements become verdicts (None: the defaults).
        histograms: also keep histograms of every layer's output and gradient.
        log: log the metrics above to the trainer's logger.
        stop_on: verdict kinds that stop training, e.g. ``("nonfinite", "diverging")``.

    Attributes:
        reports: ``(step, report)`` per probe, in order; ``step`` is the
            ``trainer.global_step`` of the recorded training step (0 for the first).
        stop_reason: why this callback stopped training, or None.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: ``every`` < 1, or an unknown verdict kind in ``stop_on``.
    """

    def __init__(
        self,
        every: int = 100,
        *,
        thresholds: Thresholds | None = None,
        histograms: bool = False,
        log: bool = True,
        stop_on: Collection[VerdictKind] = (),
    ) -> None:
        fn = "ProbeCallback"
        self.every = check_int(fn, "every", every, low=1)
        if thresholds is not None and not isinstance(thresholds, Thresholds):
            raise TypeError(
                param_message(fn, "thresholds", "a Thresholds or None", type(thresholds).__name__)
            )
        for name, value in (("histograms", histograms), ("log", log)):
            if not isinstance(value, bool):
                raise TypeError(param_message(fn, name, "True or False", value))
        self.thresholds, self.histograms, self.log = thresholds, histograms, log
        self.stop_on = _kinds(fn, stop_on)
        self.reports: list[tuple[int, ProbeReport]] = []
        self.stop_reason: str | None = None
        self._watch: Watch | None = None
        self._open = False  # the Watch's hooks are on
        self._pending: _Pending | None = None  # the recorded step, until its report
        self._next = 0  # the first step at which the next probe may start
        self._said: set[tuple[int | None, str]] = set()  # the verdicts last said

    # -- Lightning's hooks
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._close()
        step = trainer.global_step
        # A step still pending has not been taken (gradient accumulation): record this
        # micro-batch instead, so that the recorded one is the last before the step.
        if self._pending is None and step < self._next:
            return
        if self._watch is None or self._watch.model is not pl_module:
            self._watch = Watch(
                pl_module, thresholds=self.thresholds, histograms=self.histograms, updates=True
            )
        self._watch.__enter__()
        self._open = True
        self._pending = _Pending(step, _labels(batch))

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        # The recorded pass's backward is done and the weights are not updated yet: the
        # hooks come off here, as in a plain loop (`with Watch(model): …backward()`, then
        # `opt.step()`), so that the Watch measures the step that follows.
        self._close()

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        pending = self._pending
        if pending is None:
            return
        self._close()
        if not pending.ended:  # the recorded batch: its loss is the step's
            pending.ended, pending.loss = True, _loss(outputs)
            if pending.loss is not None and pl_module.automatic_optimization:
                # Lightning hands on the loss divided by the micro-batches it accumulates.
                pending.loss *= trainer.accumulate_grad_batches
        if trainer.global_step == pending.step:  # no optimizer step yet (accumulating): wait
            return
        self._pending = None
        step, self._next = pending.step, pending.step + self.every
        assert self._watch is not None  # set with _pending
        report = _report(self._watch, pending.loss, pending.target)
        self.reports.append((step, report))
        self._say(trainer, step, report)
        self._stop(trainer, step, report)
        if self.log:
            self._log(trainer, pl_module, step, _metrics(report))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._discard(None)  # a step still pending was never taken: nothing to report

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._discard(exception)

    # -- the parts
    def _close(self) -> None:
        if self._open and self._watch is not None:
            self._watch.__exit__(None, None, None)
        self._open = False

    def _discard(self, exception: BaseException | None) -> None:
        """Drops a recorded step that will not be reported, and what the Watch set up for
        it: its hooks, and the hooks it left to measure the next optimizer step."""
        watch = self._watch
        if watch is not None and (self._open or self._pending is not None):
            if not self._open:
                watch.__enter__()  # drops what leaving set up for the step
            error = exception or RuntimeError("training ended before the recorded step")
            watch.__exit__(type(error), error, error.__traceback__)  # sets nothing up
        self._open, self._pending = False, None

    def _say(self, trainer: pl.Trainer, step: int, report: ProbeReport) -> None:
        found: set[tuple[int | None, str]] = set()
        for member in report:
            who = "" if member.member is None else f", member {member.member}"
            for v in member.verdicts:
                key = (member.member, v.kind)
                if key in found:
                    continue
                found.add(key)
                if key in self._said or not trainer.is_global_zero:
                    continue
                label = "" if v.severity == "problem" else " (advice)"
                _logger.warning("initlab probe at step %d%s%s: %s", step, who, label, v)
        if trainer.is_global_zero:
            for member_index, kind in sorted(self._said - found, key=str):
                who = "" if member_index is None else f", member {member_index}"
                _logger.info("initlab probe at step %d%s: %s no longer found", step, who, kind)
        self._said = found

    def _stop(self, trainer: pl.Trainer, step: int, report: ProbeReport) -> None:
        if not self.stop_on:
            return
        found = [v for member in report for v in member.verdicts if v.kind in self.stop_on]
        # Every process must agree, or one would stop while the others wait for it.
        if not trainer.strategy.reduce_boolean_decision(bool(found), all=False):
            return
        trainer.should_stop = True
        if found:
            kinds = " and ".join(sorted({v.kind for v in found}))
            self.stop_reason = f"the probe found {kinds} at step {step}: {found[0].evidence}"
        else:
            self.stop_reason = f"another process's probe found one of {sorted(self.stop_on)}"
        if trainer.is_global_zero:
            _logger.warning("initlab probe stops training: %s", self.stop_reason)

    def _log(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        step: int,
        metrics: dict[str, float],
    ) -> None:
        # For callbacks to monitor (trainer.callback_metrics), not for the loggers: Lightning
        # would write the values it holds at every step of the epoch, and only every
        # log_every_n_steps, where a probe's numbers belong at the probe's step alone.
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, logger=False, batch_size=1)
        if getattr(trainer, "log_every_n_steps", 1) == 0 or not trainer.is_global_zero:
            return  # step logging turned off; or not the process that writes the logs
        # The step the trainer writes this batch's metrics at (LearningRateMonitor reads
        # the same attribute): the probe's step, counted in batches that stepped.
        at = int(getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", step))
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=at)


# ------------------------------------------------------------------------------ helpers


@dataclass
class _Pending:
    """A recorded training step whose report waits for its optimizer step."""

    step: int  # trainer.global_step when it was recorded
    target: Tensor | None  # the batch's integer labels, for the loss at init
    loss: float | None = None  # the training step's loss, once its batch has ended
    ended: bool = False  # its batch has ended (the loss is read)


def _kinds(fn: str, stop_on: object) -> frozenset[str]:
    """``stop_on`` checked: a collection of verdict kinds (a lone string is refused)."""
    if isinstance(stop_on, str) or not isinstance(stop_on, Collection):
        got = repr(stop_on) if isinstance(stop_on, str) else type(stop_on).__name__
        raise TypeError(
            param_message(
                fn,
                "stop_on",
                "a collection of verdict kinds",
                got,
                f"Write stop_on=({stop_on!r},) for one kind." if isinstance(stop_on, str) else "",
            )
        )
    for kind in stop_on:
        if kind not in KINDS:
            raise ValueError(
                param_message(
                    fn,
                    "stop_on",
                    f"verdict kinds, each one of {', '.join(KINDS)}",
                    kind,
                    did_you_mean(str(kind), KINDS),
                ).rstrip()
            )
    return frozenset(stop_on)


def _loss(outputs: Any) -> float | None:
    """The training step's loss: a tensor it returned, or its dict's "loss"."""
    loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
    if isinstance(loss, Tensor) and loss.numel() == 1:
        return float(loss.detach())
    return None


def _labels(batch: Any) -> Tensor | None:
    """``y`` of a batch ``(x, y)`` whose ``y`` holds integer labels, else None."""
    if isinstance(batch, list | tuple) and len(batch) == 2:
        y = batch[1]
        if isinstance(y, Tensor) and not torch.is_floating_point(y) and y.dtype != torch.bool:
            return y
    return None


def _report(watch: Watch, loss: float | None, target: Tensor | None) -> ProbeReport:
    """``watch.report(loss=..., target=...)``, with only the arguments it takes."""
    # The report grows its loss and target arguments with the verdicts that read them
    # (diverging, the loss at init); pass what this version of Watch accepts.
    report: Callable[..., ProbeReport] = watch.report
    accepted = inspect.signature(report).parameters
    given = {"loss": loss, "target": target}
    return report(**{k: v for k, v in given.items() if k in accepted})


def _metrics(report: ProbeReport) -> dict[str, float]:
    """The numbers logged per report (see :class:`ProbeCallback`)."""
    verdicts: list[Verdict] = [v for member in report for v in member.verdicts]
    found = {v.kind for v in verdicts}
    metrics = {f"probe/{kind}": float(kind in found) for kind in KINDS}
    metrics["probe/problems"] = float(sum(v.severity == "problem" for v in verdicts))
    for name in ("grad_weight_ratio", "update_weight_ratio"):
        values = [
            getattr(s, name)
            for member in report
            for s in member.layers
            if not math.isnan(getattr(s, name))
        ]
        if values:
            metrics[f"probe/{name}_max"] = max(values)
    return metrics
