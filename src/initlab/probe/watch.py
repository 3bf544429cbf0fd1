"""Recording a forward and backward pass: the hooks, and the report they lead to.

:class:`Watch` attaches a forward hook to every leaf module (and a gradient hook to every
weight layer's output), groups what it sees into blocks (:mod:`initlab.probe.layers`),
has each block measured as the pass leaves it (:mod:`initlab.probe.stats`), and at
:meth:`Watch.report` adds the weights' statistics and the forecast and turns the numbers
into verdicts (:mod:`initlab.probe.verdicts`).
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from initlab._validation import param_message
from initlab.models import Stack
from initlab.probe.attention import measure_attention
from initlab.probe.forecast import _forecast
from initlab.probe.layers import (
    _BATCH_NORM,
    _COMPOSITE,
    _EMBEDDING,
    _OPAQUE,
    _PLAIN_WEIGHT,
    _RESHAPE,
    _SHAPE_ONLY,
    _WEIGHT,
    _Block,
    _inplace,
    _is_activation,
    _layout,
    _members,
    _output_tensor,
    _weights,
)
from initlab.probe.recurrent import RecurrentRecord, unsupported
from initlab.probe.residual import NORMS, ResidualFinder, measure_norm
from initlab.probe.results import (
    AttentionStats,
    LayerStats,
    NormStats,
    OutputStats,
    Probe,
    ProbeReport,
    RecurrentStats,
    ResidualStats,
)
from initlab.probe.stats import _measure, _measure_forward, _measure_grad, _Reads
from initlab.probe.verdicts import _DEFAULTS, Thresholds, judge, trends

__all__ = ["Watch"]


class Watch:
    """Records the per-layer statistics of one forward and backward pass of ``model``.

    Use it around a training step to probe the model as it trains, at the cost of the
    statistics only (no extra forward or backward pass). Hooks are attached on enter and
    removed on exit, also on error. The first forward pass after enter is recorded.

    The statistics are taken as the pass goes: a layer's activations when the next
    layer starts, ∂loss/∂h when the backward pass reaches it. On the CPU nothing is kept
    alive past its use (kept, the activations would make every step map fresh memory); on
    a GPU the layers' numbers are read once, at the report, and the tensors they come
    from are held until then (norm layers, residual blocks and attention modules are
    still read as the pass leaves each: one sync apiece). With ``updates``, a sample of
    each layer's weights is copied as the pass ends, so that a report after
    ``optimizer.step()`` reads that step's ‖ΔW‖/‖W‖ (the update_ratio verdict).
    The report adds the weights' statistics and turns the numbers into verdicts.

    Args:
        model: any ``nn.Module`` with weight layers (Linear, Conv, Embedding, attention,
            RNN/LSTM/GRU), or an initlab ``Stack``.
        thresholds: when measurements become verdicts.
        histograms: also keep histograms of every layer's output and gradient (for the
            figure; costs a pass over each).
        forecast: compute the theory's forecast beside the measurement.
        updates: also read ‖ΔW‖/‖W‖ of the optimizer step taken between the ``with``
            block and :meth:`report` (costs a copy of 4,096 weights per layer).

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
        updates: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(param_message("Watch", "model", "an nn.Module", type(model).__name__))
        _check_options("Watch", thresholds, histograms=histograms, forecast=forecast)
        if not isinstance(updates, bool):
            raise TypeError(param_message("Watch", "updates", "True or False", updates))
        self.updates = updates
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
        self._parts = _Parts()
        self._updates: _UpdateRecorder | None = None
        self._residual = False
        self._output: Tensor | None = None
        self._top: Tensor | None = None  # the last weight layer's output
        self._losses: list[list[float]] = []  # given to report(), across entries: per report
        # one loss, or one per member of a stack
        self.loss = math.nan

    # -- hooks
    def __enter__(self) -> Watch:
        self._remove()
        self._blocks.clear()
        self._reads = _Reads()
        self._seen.clear()
        self._failure = None
        self._done = False
        self._clone = False
        self._parts = _Parts(cached=self._parts.cached)  # the layout's reading stays
        self._updates = None
        self._output = self._top = None
        weight_layers = 0
        # Leaf outputs are kept for the residual blocks' branches only where a container
        # could be one: kept, they would hold every activation through the pass.
        self._residual = False
        opaque: list[str] = []  # modules measured whole: their children are not hooked
        for name, module in self.model.named_modules():
            if opaque and any(name.startswith(prefix + ".") for prefix in opaque):
                continue
            # A later in-place module would overwrite the outputs we keep: then keep copies.
            self._clone |= _inplace(module)
            label = name or type(module).__name__
            if isinstance(module, _OPAQUE):
                opaque.append(name)
            elif next(module.children(), None) is not None:
                if not _chain(module):  # a Sequential only chains: never a residual block
                    self._residual = True
                    hook = self._container_hook(label)
                    self._handles.append(module.register_forward_hook(hook))
                continue
            weight = isinstance(module, _WEIGHT)
            weight_layers += weight
            # always_call: the hook also runs when the forward raises, to name the layer.
            if isinstance(module, _COMPOSITE):
                hook = self._composite_hook(label)
                self._handles.append(
                    module.register_forward_hook(hook, with_kwargs=True, always_call=True)
                )
            else:
                hook = self._hook(label, weight)
                self._handles.append(module.register_forward_hook(hook, always_call=True))
        if weight_layers == 0:
            self._remove()
            raise ValueError(
                "The model has no layer with weights to probe (nn.Linear, nn.Conv*, "
                "nn.ConvTranspose*, nn.Embedding, nn.MultiheadAttention, nn.RNN/LSTM/GRU, or "
                f"initlab's stacked layers). Got {type(self.model).__name__} with modules "
                f"{sorted({type(m).__name__ for m in self.model.modules()})}."
            )
        self._handles.append(self.model.register_forward_hook(self._output_hook))
        return self

    def __exit__(self, *exc: object) -> None:
        self._remove()
        if self.updates and self._blocks and exc[0] is None:
            # A step taken before report() is measured: ‖ΔW‖/‖W‖ per layer.
            self._updates = _UpdateRecorder(self._blocks)

    def _remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _output_hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        """The model's output. Where the model itself is not called (a LightningModule
        whose training_step calls self.net(x)), the report reads the last weight layer's
        output instead: a classifier's logits come from its head."""
        if self._output is None and isinstance(output, Tensor):
            self._output = output.detach()

    def _container_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if self._done or id(module) in self._seen:
                return
            self._seen.add(id(module))  # a block called twice is measured once
            self._parts.residuals += self._parts.finder.block_outputs(name, module, args, output)

        return hook

    def _composite_hook(self, name: str) -> Callable[..., None]:
        """Attention and recurrent layers: measured by their own module, and as one layer
        of the chain through their first output."""
        layer = self._hook(name, True)

        def hook(
            module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
        ) -> None:
            value = _output_tensor(module, out)
            if out is None or self._done or id(module) in self._seen:
                layer(module, args, None)  # names a failed forward
                return
            if value is None:
                self._parts.unseen.append(
                    f"{name} ({type(module).__name__}): its output is not a tensor (e.g. a "
                    "PackedSequence)"
                )
                self._seen.add(id(module))
                return
            if isinstance(module, nn.MultiheadAttention):
                stats = measure_attention(name, module, args, kwargs, out)
                self._parts.add(name, module, stats, self._parts.attention)
            else:
                assert isinstance(module, nn.RNNBase)
                why = unsupported(module, args, kwargs, out)
                record: RecurrentRecord | str = (
                    why if why is not None else RecurrentRecord(name, module, args, kwargs, out)
                )
                self._parts.add(name, module, record, self._parts.recurrent)
            x = args[0] if args else next(iter(kwargs.values()), value)
            layer(module, (x,) if isinstance(x, Tensor) else (value,), value)

        return hook

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
            # The copy (or the detached view, which shares the output's version counter):
            # a later in-place module may overwrite the output itself.
            if self._residual:
                self._parts.finder.leaf_output(name, output, value)
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
                self._top = value
                if output.requires_grad:
                    output.register_hook(self._grad_hook(block))  # type: ignore[no-untyped-call]
                return
            if isinstance(module, NORMS):
                self._parts.norms.append(measure_norm(name, module, args, value))
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
    def report(self, loss: float | Tensor | None = None, target: Any = None) -> ProbeReport:
        """The statistics and verdicts of the recorded pass.

        Call it after the backward pass; called after ``optimizer.step()`` by a Watch with
        ``updates``, it also reads that step's ‖ΔW‖/‖W‖ per layer. The same Watch may be
        entered again at later steps: it keeps the losses given here, and a loss that
        climbs over them is a verdict.

        Args:
            loss: the training loss of the recorded pass (a number or a scalar tensor; for
                an initlab ``Stack``, a tensor of the M members' losses gives each member
                its own history, a single number is every member's).
            target: the batch's targets: integer class labels let the report compare the
                cross-entropy of the logits with its natural value ln C.

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
        if loss is not None:
            values = _losses(loss, members)
            self.loss = math.fsum(values) if len(values) > 1 else values[0]
            self._losses.append(values)
        measured = _measure(
            self._blocks, self.thresholds, self.histograms, self._reads, self.forecast
        )
        if self._updates is not None:
            ratios = self._updates.ratios()
            for rows, ratio in zip(measured.rows, ratios, strict=True):
                for m, row in enumerate(rows):
                    row["update_weight_ratio"] = ratio[m if len(ratio) > 1 else 0]
        forecasts, note = (
            _forecast(self._blocks, measured, members) if self.forecast else ([], "not asked for")
        )
        bias_discarded = [
            b.bn_direct and getattr(b.module, "bias", None) is not None for b in self._blocks
        ]
        parts = self._parts.settle(self.model, self._blocks, self.thresholds)
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
            output = self._output if self._output is not None else self._top
            if output is not None and stacked and output.dim() > 1 and output.shape[0] == members:
                output = output[m]
            probes.append(
                _member_report(
                    layers,
                    self.thresholds,
                    bias_discarded,
                    replace(parts, output=output_stats(output, target)),
                    losses=(
                        tuple(v[m] if len(v) > 1 else v[0] for v in self._losses)
                        if loss is not None
                        else ()
                    ),
                    note=note,
                    member=m if stacked else None,
                )
            )
        return ProbeReport(tuple(probes) if stacked else (probes[0],))


def _losses(loss: float | Tensor, members: int) -> list[float]:
    """The reported loss as one value, or one per member."""
    if isinstance(loss, Tensor):
        values = loss.detach().reshape(-1).double().tolist()
        if len(values) == 1 or len(values) == members:
            return values
        raise ValueError(
            f"Watch.report: expected a scalar loss, or one per member ({members}). Got a "
            f"tensor of shape {tuple(loss.shape)}: reduce it (e.g. .mean())."
        )
    if isinstance(loss, bool) or not isinstance(loss, int | float):
        raise TypeError(
            param_message("report", "loss", "a number or a tensor", type(loss).__name__)
        )
    return [float(loss)]


def _chain(module: nn.Module) -> bool:
    """A container whose forward only chains or holds its children."""
    kind = type(module)
    if isinstance(module, nn.Sequential):
        return kind.forward is nn.Sequential.forward
    return isinstance(module, nn.ModuleList | nn.ModuleDict)


class _UpdateRecorder:
    """‖ΔW‖/‖W‖ of the step taken after the recorded pass, per weight layer and member:
    the weights are copied as the pass ends (when the ``with`` block exits) and compared
    with themselves at the report. Copying then, rather than in an optimizer hook, also
    holds for optimizers that run the pass inside ``step(closure)`` (Lightning's).

    A layer of more than :data:`_SAMPLE` weights is read on a fixed random sample of that
    many: a step moves every weight of a dense layer, so the sample's ratio estimates the
    layer's to a few % (‖·‖² of 4,096 terms), which is all a 1e-3 guide needs, and the copy
    costs nothing beside the step."""

    def __init__(self, blocks: Sequence[_Block]) -> None:
        self.blocks = list(blocks)
        with torch.no_grad():
            flats = [_flat(b) for b in self.blocks]
            self.where = [
                _sample_of(f.shape[1], f.device) if f.shape[1] > _SAMPLE else None for f in flats
            ]
            self.before = [
                f.clone() if i is None else f[:, i] for f, i in zip(flats, self.where, strict=True)
            ]

    def ratios(self) -> list[list[float]]:
        """Per block, per member, the change since the copy; nan where nothing changed
        (the report came before the step)."""
        with torch.no_grad():
            rows = []
            for block, before, i in zip(self.blocks, self.before, self.where, strict=True):
                after = _flat(block) if i is None else _flat(block)[:, i]
                rows.append(torch.stack([(after - before).norm(dim=1), before.norm(dim=1)]))
            values = torch.cat(rows, dim=1).double().tolist()  # one read
        out, at = [], 0
        for before in self.before:
            m = before.shape[0]
            change, norm = values[0][at : at + m], values[1][at : at + m]
            out.append([c / n if c > 0 else math.nan for c, n in zip(change, norm, strict=True)])
            at += m
        return out


# Weights per layer and member read for ‖ΔW‖/‖W‖ (all of them in a smaller layer).
_SAMPLE = 4096


@functools.lru_cache(maxsize=64)
def _sample_of(n: int, device: torch.device) -> Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randperm(n, generator=g)[:_SAMPLE].to(device)


def _flat(block: _Block) -> Tensor:
    """The block's weights as (M, n), a view where the layer's own weight is one."""
    module = block.module
    if isinstance(module, _PLAIN_WEIGHT + _EMBEDDING):
        w = module.weight.detach()
        return w.reshape(1, -1)
    return _weights(module, block.members)[0].reshape(block.members, -1)


@dataclass(eq=False)
class _Parts:
    """What a pass shows beside the chain of layers, gathered by the hooks."""

    finder: ResidualFinder = field(default_factory=ResidualFinder)
    attention: list[tuple[str, AttentionStats | str]] = field(default_factory=list)
    recurrent: list[tuple[str, RecurrentRecord | str]] = field(default_factory=list)
    norms: list[NormStats] = field(default_factory=list)
    residuals: list[ResidualStats] = field(default_factory=list)
    unseen: list[str] = field(default_factory=list)
    measured: set[int] = field(default_factory=set)  # ids of the modules that were seen
    cached: tuple[Any, list[str]] | None = None  # what was not measured, by model layout

    def add(self, name: str, module: nn.Module, found: Any, into: list[Any]) -> None:
        into.append((name, found))
        self.measured.add(id(module))

    def settle(
        self, model: nn.Module, blocks: Sequence[_Block], thresholds: Thresholds
    ) -> _Settled:
        """The parts as the report holds them, and what the probe did not see."""
        unseen = list(self.unseen)
        attention = []
        for name, a in self.attention:
            if isinstance(a, str):
                unseen.append(f"{name} (MultiheadAttention): {a}")
            else:
                attention.append(a)
        recurrent = []
        for name, r in self.recurrent:
            stats = r if isinstance(r, str) else r.stats(thresholds)
            if isinstance(stats, str):
                unseen.append(f"{name} (recurrent): {stats}")
            else:
                recurrent.append(stats)
        self.recurrent = []  # the records hold the pass's tensors: let them go
        key = (id(model), tuple(id(b.module) for b in blocks), tuple(n.name for n in self.norms))
        if self.cached is None or self.cached[0] != key:  # the model's modules, once
            self.cached = (key, _not_measured(model, set(key[1]), self.norms))
        unseen += self.cached[1]
        return _Settled(
            tuple(attention),
            tuple(recurrent),
            tuple(self.norms),
            tuple(self.residuals),
            None,
            tuple(unseen),
        )


@dataclass(frozen=True)
class _Settled:
    attention: tuple[AttentionStats, ...]
    recurrent: tuple[RecurrentStats, ...]
    norms: tuple[NormStats, ...]
    residuals: tuple[ResidualStats, ...]
    output: OutputStats | None
    unseen: tuple[str, ...]


def _not_measured(model: nn.Module, layers: set[int], norms: Sequence[NormStats]) -> list[str]:
    """Parameters no measurement covers, by module: weight layers that did not run, and
    parameters a module uses itself (a ViT's cls_token, a custom layer)."""
    normed = {n.name for n in norms}
    missing: dict[str, list[str]] = {}
    skip: list[str] = []
    for name, module in model.named_modules():
        if skip and any(name.startswith(prefix + ".") for prefix in skip):
            continue
        if id(module) in layers or (name or type(module).__name__) in normed:
            skip.append(name)
            continue
        own = [n for n, _ in module.named_parameters(recurse=False)]
        if not own:
            continue
        label = name or "the model"
        if isinstance(module, nn.RNNCellBase):
            missing.setdefault(
                f"{label} ({type(module).__name__}): a recurrent cell, called step by step in "
                "the model's own loop: not measured (nn.RNN/LSTM/GRU over the sequence are)",
                [],
            )
        elif isinstance(module, _WEIGHT + NORMS):
            missing.setdefault(f"{label} ({type(module).__name__}): did not run in the pass", [])
        else:
            which = ", ".join(own[:4]) + (" …" if len(own) > 4 else "")
            verb = "parameter {} is" if len(own) == 1 else "parameters {} are"
            missing.setdefault(
                f"{label} ({type(module).__name__}): its {verb.format(which)} used by its own code",
                [],
            )
    return list(missing)


def _class_width(output: Tensor, target: Tensor) -> int | None:
    """The number of classes of (N, C, …) scores against (N, …) labels, or of a batch-first
    sequence model's (N, T, C) against (N, T) (its loss reshapes); None when neither fits."""
    if output.shape[0] == target.shape[0] and output.shape[2:] == target.shape[1:]:
        return int(output.shape[1])
    if output.shape[:-1] == target.shape:
        return int(output.shape[-1])
    return None


def output_stats(output: Tensor | None, target: Any) -> OutputStats | None:
    """The output's scale and, for a classifier, its cross-entropy against ln C.

    A classifier is recognised by its targets: integer labels with one score per class
    (N, C, …) and C ≥ 2, or one logit per example with labels in {0, 1}.
    """
    if output is None or not output.is_floating_point() or output.numel() == 0:
        return None
    with torch.no_grad():
        z = output.double()
        rms = math.sqrt(float(z.square().mean()))
        classes, ce, natural = None, math.nan, math.nan
        labels = (
            isinstance(target, Tensor)
            and target.numel() > 0
            and not target.is_floating_point()
            and not target.is_complex()
            and target.dtype != torch.bool
        )
        width = (
            _class_width(z, target)
            if labels and z.dim() == target.dim() + 1 and z.dim() >= 2
            else None
        )
        try:
            if (
                width is not None
                and width >= 2
                and int(target.min()) >= 0
                and int(target.max()) < width
            ):
                if z.shape[-1] == width and z.shape[:-1] == target.shape:  # (N, T, C)
                    z = z.reshape(-1, width)
                    target = target.reshape(-1)
                classes = width
                ce = float(F.cross_entropy(z, target.to(z.device)))
                natural = math.log(classes)
            elif (
                labels
                and z.reshape(-1).shape == target.reshape(-1).shape
                and int(target.min()) >= 0
                and int(target.max()) <= 1
            ):
                classes = 2
                y = target.reshape(z.shape).to(z)
                ce = float(F.binary_cross_entropy_with_logits(z, y))
                natural = math.log(2.0)
        except (RuntimeError, ValueError):  # a layout it does not read: no verdict, no error
            classes, ce, natural = None, math.nan, math.nan
    return OutputStats(tuple(output.shape), rms, classes, ce, natural)


def _member_report(
    layers: list[LayerStats],
    t: Thresholds,
    bias_discarded: Sequence[bool],
    parts: _Settled,
    *,
    losses: tuple[float, ...],
    note: str,
    member: int | None,
) -> Probe:
    """One member's :class:`Probe`: its layers, their verdicts and the depth factors."""
    verdicts = judge(
        layers,
        t,
        bias_discarded,
        output=parts.output,
        attention=parts.attention,
        recurrent=parts.recurrent,
        residuals=parts.residuals,
        losses=losses,
    )
    signal, gradient = trends(layers)
    return Probe(
        layers=tuple(layers),
        verdicts=verdicts,
        loss=losses[-1] if losses else math.nan,
        loss_after_steps=math.nan,
        # As the depth verdicts read them (the path without embeddings and recurrent
        # layers; the gradient per example).
        forward_factor=signal.factor,
        backward_factor=gradient.factor,
        forecast_note=note,
        member=member,
        attention=parts.attention,
        recurrent=parts.recurrent,
        norms=parts.norms,
        residuals=parts.residuals,
        output=parts.output,
        unseen=parts.unseen,
        loss_history=losses,
    )


def _check_options(fn: str, thresholds: object, *, histograms: object, forecast: object) -> None:
    if thresholds is not None and not isinstance(thresholds, Thresholds):
        raise TypeError(
            param_message(fn, "thresholds", "a Thresholds or None", type(thresholds).__name__)
        )
    for name, value in (("histograms", histograms), ("forecast", forecast)):
        if not isinstance(value, bool):
            raise TypeError(param_message(fn, name, "True or False", value))
