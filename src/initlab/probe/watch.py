"""Recording a forward and backward pass: the hooks, and the report they lead to.

:class:`Watch` attaches a forward hook to every leaf module (and a gradient hook to every
weight layer's output), groups what it sees into blocks (:mod:`initlab.probe.layers`),
has each block measured as the pass leaves it (:mod:`initlab.probe.stats`), and at
:meth:`Watch.report` adds the weights' statistics and the forecast and turns the numbers
into verdicts (:mod:`initlab.probe.verdicts`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from initlab._validation import param_message
from initlab.models import Stack
from initlab.probe.forecast import _forecast
from initlab.probe.layers import (
    _BATCH_NORM,
    _RESHAPE,
    _SHAPE_ONLY,
    _STACKED_WEIGHT,
    _WEIGHT,
    _Block,
    _inplace,
    _is_activation,
    _layout,
    _members,
    _weights,
)
from initlab.probe.results import LayerStats, Probe, ProbeReport
from initlab.probe.stats import _measure, _measure_forward, _measure_grad, _Reads
from initlab.probe.verdicts import _DEFAULTS, Thresholds, judge, per_layer_factor

__all__ = ["Watch"]


class Watch:
    """Records the per-layer statistics of one forward and backward pass of ``model``.

    Use it around a training step to probe the model as it trains, at the cost of the
    statistics only (no extra forward or backward pass). Hooks are attached on enter and
    removed on exit, also on error. The first forward pass after enter is recorded.

    The statistics are taken as the pass goes: a layer's activations when the next
    layer starts, ∂loss/∂h when the backward pass reaches it. On the CPU nothing is kept
    alive past its use (kept, the activations would make every step map fresh memory); on
    a GPU the numbers are read once, at the report (one sync), and the tensors they come
    from are held until then. The report adds the weights' statistics and turns the
    numbers into verdicts.

    Args:
        model: any ``nn.Module`` with Linear or Conv layers, or an initlab ``Stack``.
        thresholds: when measurements become verdicts.
        histograms: also keep histograms of every layer's output and gradient (for the
            figure; costs a pass over each).
        forecast: compute the theory's forecast beside the measurement.

    Example:
        >>> import torch
        >>> from torch.nn import functional as F
        >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> x, y = torch.randn(64, 8), torch.randn(64, 1)
        >>> with Watch(model) as watch:
        ...     loss = F.mse_loss(model(x), y)
        ...     loss.backward()
        >>> opt.step()
        >>> report = watch.report()
        >>> len(report.layers), report.layers[0].activation
        (2, 'relu')
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        thresholds: Thresholds | None = None,
        histograms: bool = False,
        forecast: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(param_message("Watch", "model", "an nn.Module", type(model).__name__))
        _check_options("Watch", thresholds, histograms=histograms, forecast=forecast)
        self.model = model
        self.thresholds = thresholds if thresholds is not None else _DEFAULTS
        self.histograms = histograms
        self.forecast = forecast
        self._handles: list[Any] = []
        self._blocks: list[_Block] = []
        self._reads = _Reads()
        self._seen: set[int] = set()
        self._failure: tuple[str, nn.Module, tuple[int, ...]] | None = None
        self._done = False
        self._clone = False
        self.loss = math.nan

    # -- hooks
    def __enter__(self) -> Watch:
        self._blocks.clear()
        self._reads = _Reads()
        self._seen.clear()
        self._failure = None
        self._done = False
        self._clone = False
        weight_layers = 0
        for name, module in self.model.named_modules():
            # A later in-place module would overwrite the outputs we keep: then keep copies.
            self._clone |= _inplace(module)
            stacked = isinstance(module, _STACKED_WEIGHT)
            if next(module.children(), None) is not None and not stacked:
                continue
            weight = isinstance(module, _WEIGHT)
            weight_layers += weight
            label = name or type(module).__name__
            # always_call: the hook also runs when the forward raises, to name the layer.
            hook = self._hook(label, weight)
            self._handles.append(module.register_forward_hook(hook, always_call=True))
        if weight_layers == 0:
            self._remove()
            raise ValueError(
                "The model has no Linear or Conv layer (nn.Linear, nn.Conv1d/2d/3d, "
                f"nn.ConvTranspose*, or initlab's stacked layers) to probe. Got "
                f"{type(self.model).__name__} with modules "
                f"{sorted({type(m).__name__ for m in self.model.modules()})}."
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self._remove()

    def _remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str, weight: bool) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if not isinstance(output, Tensor):
                # Called from the except clause of a forward that raised: the innermost
                # such module (the first hook to run) is the one that failed.
                if output is None and self._failure is None and sys.exc_info()[0] is not None:
                    shape = tuple(args[0].shape) if args and isinstance(args[0], Tensor) else ()
                    self._failure = (name, module, shape)
                return
            if self._done or id(module) in self._seen:
                return
            self._seen.add(id(module))
            value = output.detach()
            if self._clone:
                value = value.clone()
            if weight:
                x = args[0].detach() if args and isinstance(args[0], Tensor) else value
                if self._blocks and not self._blocks[-1].closed:
                    previous = self._blocks[-1]
                    previous.next_x, previous.closed = x, True
                    _measure_forward(previous, self._reads, self.thresholds, self.histograms)
                index = len(self._blocks)
                block = _Block(index, name, module, _layout(module), _members(module), x, value)
                block.x_numel, block.out = x.numel(), value
                self._blocks.append(block)
                if output.requires_grad:
                    output.register_hook(self._grad_hook(block))  # type: ignore[no-untyped-call]
                return
            if not self._blocks:
                return
            block = self._blocks[-1]
            if block.closed:
                return
            if isinstance(module, _BATCH_NORM):
                block.bn_direct = block.out is block.h and block.post is None
                block.batch_norm = "after" if block.post is not None else "before"
            elif block.post is None and _is_activation(module):
                block.post, block.post_module = value, module
            elif not isinstance(module, _RESHAPE):
                block.others.append(type(module).__name__)
            if not isinstance(module, _SHAPE_ONLY):  # the same values in the layer's layout
                block.out = value

        return hook

    def _grad_hook(self, block: _Block) -> Callable[[Tensor], None]:
        def hook(grad: Tensor) -> None:
            if block.forward is None:  # the last layer: its forward pass is over now
                block.closed = True
                _measure_forward(block, self._reads, self.thresholds, self.histograms)
            _measure_grad(block, grad.detach(), self._reads, self.histograms)

        return hook

    def _culprit(self) -> tuple[str, nn.Module, tuple[int, ...]] | None:
        return self._failure

    # -- steps (used by probe())
    def _weights_now(self) -> list[Tensor]:
        return [_weights(b.module, b.members)[0].clone() for b in self._blocks]

    # -- report
    def report(self) -> ProbeReport:
        """The statistics and verdicts of the recorded pass.

        Returns:
            A :class:`ProbeReport`: one :class:`Probe` per member of an initlab ``Stack``,
            one (``member`` None) for any other model.

        Raises:
            RuntimeError: nothing was recorded (no forward pass ran inside the block).
        """
        if not self._blocks:
            raise RuntimeError(
                "Watch recorded no forward pass: run the model inside `with Watch(model):`."
            )
        members = max(b.members for b in self._blocks)
        measured = _measure(
            self._blocks, self.thresholds, self.histograms, self._reads, self.forecast
        )
        forecasts, note = (
            _forecast(self._blocks, measured, members) if self.forecast else ([], "not asked for")
        )
        bias_discarded = [
            b.bn_direct and getattr(b.module, "bias", None) is not None for b in self._blocks
        ]
        stacked = isinstance(self.model, Stack)
        probes = []
        for m in range(members):
            layers = [
                LayerStats(
                    **rows[m],
                    forecast_preact_rms=forecasts[m][i][0] if forecasts else None,
                    forecast_grad_rms=forecasts[m][i][1] if forecasts else None,
                )
                for i, rows in enumerate(measured.rows)
            ]
            probes.append(
                _member_report(
                    layers,
                    self.thresholds,
                    bias_discarded,
                    loss=self.loss,
                    note=note,
                    member=m if stacked else None,
                )
            )
        return ProbeReport(tuple(probes) if stacked else (probes[0],))


def _member_report(
    layers: list[LayerStats],
    t: Thresholds,
    bias_discarded: Sequence[bool],
    *,
    loss: float,
    note: str,
    member: int | None,
) -> Probe:
    """One member's :class:`Probe`: its layers, their verdicts and the depth factors."""
    return Probe(
        layers=tuple(layers),
        verdicts=judge(layers, t, bias_discarded),
        loss=loss,
        loss_after_steps=math.nan,
        forward_factor=per_layer_factor([s.preact_rms for s in layers]),
        backward_factor=per_layer_factor([s.grad_rms for s in reversed(layers)]),
        forecast_note=note,
        member=member,
    )


def _check_options(fn: str, thresholds: object, *, histograms: object, forecast: object) -> None:
    if thresholds is not None and not isinstance(thresholds, Thresholds):
        raise TypeError(
            param_message(fn, "thresholds", "a Thresholds or None", type(thresholds).__name__)
        )
    for name, value in (("histograms", histograms), ("forecast", forecast)):
        if not isinstance(value, bool):
            raise TypeError(param_message(fn, name, "True or False", value))
