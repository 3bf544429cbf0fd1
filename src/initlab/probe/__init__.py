"""Why a network will not train, layer by layer, and what to change: the probe.

:func:`probe` runs one forward and backward pass of any ``nn.Module`` on a batch (on a
copy: the user's model, its gradients and its batch-norm statistics are left untouched),
with hooks on every layer, and returns a :class:`Probe`: per weight layer (Linear, Conv,
and initlab's stacked layers), the statistics a practitioner reads —

* the layer's output h (pre-activation) root mean square and the block's output mean and
  std (after the activation and any batch norm),
* the fraction of saturated outputs (|tanh| > 0.97, sigmoid < 0.03 or > 0.97) and of
  dead units (output exactly 0 for every example of the batch),
* the std of ∂loss/∂h, the weight's std, its gradient's norm and std, and the
  gradient:weight norm ratio; with ``steps > 0`` also the update:weight ratio of a few
  optimizer steps,
* a symmetry score: the fraction of the layer's units that compute the same function as
  another unit on the batch (after a zero or constant init, all but one),

beside the forecast of the signal-propagation theory (:mod:`initlab.meanfield`) for the
same widths, activations and weights: "expected vs measured". From these it states
verdicts with their evidence and a concrete fix: vanishing or exploding signal or gradient
(with the per-layer factor), saturated, dead, symmetric, non-finite, and a bias made
redundant by the batch norm after it. Every verdict's threshold is a field of
:class:`Thresholds`.

During training, :class:`Watch` records the same statistics from the training step's own
forward and backward passes, so probing every 10th step costs little (see
``benchmarks/probe.py``).

Example:
    >>> import torch
    >>> from torch import nn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> layers = []
    >>> for _ in range(20):
    ...     layers += [nn.Linear(100, 100), nn.Tanh()]
    >>> model = nn.Sequential(*layers, nn.Linear(100, 10))
    >>> for layer in model:
    ...     if isinstance(layer, nn.Linear):
    ...         _ = nn.init.normal_(layer.weight, std=0.01), nn.init.zeros_(layer.bias)
    >>> report = probe(model, torch.randn(256, 100))
    >>> [v.kind for v in report.verdicts]
    ['vanishing', 'vanishing']
    >>> round(report.forward_factor, 2)  # the signal shrinks 10× per layer: 0.01·√100
    0.1
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from initlab import meanfield
from initlab._validation import check_int, check_real, param_message
from initlab.models import Stack, StackedConv, StackedLinear, _Flatten
from initlab.norm import StackedBatchNorm

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Histogram",
    "LayerStats",
    "Probe",
    "Thresholds",
    "Verdict",
    "Watch",
    "probe",
]

VerdictKind: TypeAlias = Literal[
    "vanishing", "exploding", "saturated", "dead", "symmetric", "nonfinite", "redundant_bias"
]
Layout: TypeAlias = Literal["linear", "conv", "stack_linear", "stack_conv"]

_PLAIN_WEIGHT = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)
_STACKED_WEIGHT = (StackedLinear, StackedConv)
_WEIGHT = _PLAIN_WEIGHT + _STACKED_WEIGHT
_BATCH_NORM = (nn.modules.batchnorm._NormBase, StackedBatchNorm)
# Modules that only reshape: the chain of layers continues through them.
_RESHAPE = (nn.Flatten, nn.Unflatten, nn.Identity, _Flatten, nn.Dropout)
# Of those, the ones whose output holds the same values as their input.
_SHAPE_ONLY = (nn.Flatten, nn.Unflatten, nn.Identity, _Flatten)


@dataclass(frozen=True)
class Thresholds:
    """When a measurement becomes a verdict. Every field is a documented default.

    Example:
        >>> Thresholds(dead=0.5).dead
        0.5
    """

    tanh_saturation: float = 0.97  # |tanh(h)| (and hardtanh, softsign) above this is saturated
    sigmoid_saturation: float = 0.03  # sigmoid(h) below this or above 1 − this is saturated
    saturated: float = 0.2  # a layer is saturated when more of its outputs than this are
    dead: float = 0.25  # dying: dead units exceed always-positive ones by more than this
    symmetric: float = 0.1  # a layer is symmetric when more of its units than this are copies
    vanishing: float = 0.8  # a per-layer RMS factor below this (over the whole depth) vanishes
    exploding: float = 1.25  # a per-layer RMS factor above this explodes
    depth_change: float = 10.0  # ... and only if the RMS changes by more than this in total
    symmetry_tolerance: float = 1e-6  # units closer than this (relative) compute the same function

    def __post_init__(self) -> None:
        fn = "Thresholds"
        for name in ("tanh_saturation", "saturated", "dead", "symmetric"):
            check_real(fn, name, getattr(self, name), low=0.0, high=1.0)
        check_real(fn, "sigmoid_saturation", self.sigmoid_saturation, low=0.0, high=0.5)
        check_real(fn, "vanishing", self.vanishing, low=0.0, high=1.0, low_open=True)
        check_real(fn, "exploding", self.exploding, low=1.0)
        check_real(fn, "depth_change", self.depth_change, low=1.0)
        check_real(fn, "symmetry_tolerance", self.symmetry_tolerance, low=0.0)


_DEFAULTS = Thresholds()  # frozen: one instance serves every Watch


@dataclass(frozen=True)
class Verdict:
    """One finding: what is wrong, where, the number behind it, and what to change."""

    kind: VerdictKind  # vanishing, exploding, saturated, dead, symmetric, nonfinite, ...
    layers: tuple[int, ...]  # the layers concerned, 1-based as in the table
    value: float  # the measurement behind it (a per-layer factor, a fraction)
    evidence: str  # the finding in words, with its numbers
    advice: str  # the fix to try, concretely

    def __str__(self) -> str:
        return f"{self.kind}: {self.evidence} Fix: {self.advice}"


@dataclass(frozen=True, eq=False)
class Histogram:
    """Counts of values in ``len(counts)`` equal bins between ``edges[0]`` and ``edges[-1]``."""

    counts: np.ndarray
    edges: np.ndarray


@dataclass(frozen=True)
class LayerStats:
    """What the probe measured at one weight layer (one member of a stack)."""

    index: int  # 1-based depth among the weight layers
    name: str  # the module's qualified name in the model
    kind: str  # the layer's class, e.g. "Linear", "Conv2d", "StackedLinear"
    activation: str | None  # the φ after it ("relu", "tanh", …, "linear"); None: unknown
    batch_norm: Literal["before", "after"] | None  # batch norm after the layer, where
    units: int  # output features or channels
    fan_in: int
    fan_out: int
    preact_rms: float  # √E[h²] of the layer's output h, over units and examples
    act_mean: float  # mean of the block's output (after φ and any batch norm)
    act_std: float  # its std
    saturated: float  # fraction of φ's outputs in its flat tails (nan: φ cannot saturate)
    dead: float  # fraction of units whose φ output is 0 for every example
    always_positive: float  # fraction of units whose h is > 0 for every example
    grad_rms: float  # √E[(∂loss/∂h)²]
    grad_std: float  # std of ∂loss/∂h
    weight_std: float
    weight_grad_norm: float  # ‖∂loss/∂W‖
    weight_grad_std: float
    grad_weight_ratio: float  # ‖∂loss/∂W‖ / ‖W‖ (inf for W = 0)
    update_weight_ratio: float  # mean ‖ΔW‖/‖W‖ per optimizer step (nan without steps)
    symmetry: float  # fraction of units that duplicate another unit's output
    distinct_units: int  # how many different functions the units compute on the batch
    nonfinite: str  # which of h, ∂h, W, ∂W, b hold NaN or Inf ("" for none)
    forecast_preact_rms: float | None  # the theory's √q for h; None where it does not apply
    forecast_grad_rms: float | None  # the theory's RMS of ∂loss/∂h
    act_hist: Histogram | None = field(default=None, compare=False, repr=False)
    grad_hist: Histogram | None = field(default=None, compare=False, repr=False)


_COLUMNS = [f.name for f in fields(LayerStats) if not f.name.endswith("_hist")]


@dataclass(frozen=True)
class Probe:
    """The probe's report: per-layer statistics, the model's verdicts, the loss.

    ``verdicts`` is empty for a healthy model. ``forward_factor`` and ``backward_factor``
    are the geometric-mean change of the RMS of h per layer going forward, and of
    ∂loss/∂h per layer going backward (toward the input): 1 keeps the scale.
    """

    layers: tuple[LayerStats, ...]
    verdicts: tuple[Verdict, ...]
    loss: float  # the loss on the batch (nan when no loss_fn was given)
    loss_after_steps: float  # after ``steps`` optimizer steps on a copy (nan without steps)
    forward_factor: float
    backward_factor: float
    forecast_note: str  # why the forecast is missing, or "" where it is there
    member: int | None = None  # which member of a stack, or None for a plain model

    @property
    def healthy(self) -> bool:
        """No verdict."""
        return not self.verdicts

    def verdict(self, kind: VerdictKind) -> Verdict | None:
        """The first verdict of this kind, or None."""
        return next((v for v in self.verdicts if v.kind == kind), None)

    def to_frame(self) -> pd.DataFrame:
        """One row per layer, one column per statistic."""
        import pandas as pd

        return pd.DataFrame([{c: getattr(s, c) for c in _COLUMNS} for s in self.layers])


# ----------------------------------------------------------------------------- recording


def _activation_name(module: nn.Module) -> str | None:
    """The meanfield name of an activation module, or None if it is not one."""
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.LeakyReLU):
        return f"leaky_relu({module.negative_slope})"
    if isinstance(module, nn.ELU) and not isinstance(module, nn.CELU):
        return f"elu({module.alpha})"
    simple: list[tuple[type[nn.Module], str]] = [
        (nn.Tanh, "tanh"),
        (nn.Sigmoid, "sigmoid"),
        (nn.SELU, "selu"),
        (nn.GELU, "gelu"),
        (nn.SiLU, "silu"),
        (nn.Softplus, "softplus"),
        (nn.Hardtanh, "hardtanh"),
        (nn.Identity, "linear"),
    ]
    for cls, name in simple:
        if isinstance(module, cls):
            options = {k: getattr(module, k, None) for k in ("min_val", "max_val", "approximate")}
            options |= {k: getattr(module, k, None) for k in ("beta", "threshold")}
            if cls is nn.Hardtanh and (options["min_val"], options["max_val"]) != (-1.0, 1.0):
                return None
            if cls is nn.Softplus and (options["beta"], options["threshold"]) != (1.0, 20.0):
                return None
            if cls is nn.GELU and options["approximate"] != "none":
                return None
            return name
    return None


def _inplace(module: nn.Module) -> bool:
    """``module.inplace``, without the cost of nn.Module's attribute lookup failing."""
    value = vars(module).get("inplace")
    if value is None and hasattr(type(module), "inplace"):
        value = getattr(module, "inplace", False)
    return bool(value)


def _is_activation(module: nn.Module) -> bool:
    other = (nn.ReLU6, nn.Softsign, nn.Mish, nn.CELU, nn.PReLU, nn.RReLU, nn.LogSigmoid)
    return _activation_name(module) not in (None, "linear") or isinstance(module, other)


# Candidates for an activation applied functionally (F.relu(layer(x))), recognised by
# comparing a layer's output with the next layer's input.
_FUNCTIONAL: list[tuple[str, Callable[[Tensor], Tensor]]] = [
    ("linear", lambda h: h),
    ("relu", F.relu),
    ("tanh", torch.tanh),
    ("sigmoid", torch.sigmoid),
    ("leaky_relu(0.01)", F.leaky_relu),
    ("gelu", F.gelu),
    ("silu", F.silu),
    ("elu(1.0)", F.elu),
]


def _infer_activation(h: Tensor, a: Tensor) -> str | None:
    for name, phi in _FUNCTIONAL:
        if torch.allclose(phi(h).reshape(-1), a.reshape(-1), rtol=1e-5, atol=1e-6):
            return name
    return None


@dataclass(eq=False, slots=True)
class _Block:
    """A weight layer and what follows it up to the next weight layer, as recorded.

    Once measured, the activations are let go (kept past their use, they would make each
    training step map fresh memory): only the numbers and small per-unit tensors stay.
    """

    index: int  # 0-based depth among the weight layers
    name: str
    module: nn.Module
    layout: Layout
    members: int
    x: Tensor | None  # the layer's input (once measured, kept for the first layer only)
    h: Tensor | None  # its output
    x_numel: int = 0
    h_grad: Tensor | None = None  # ∂loss/∂h as (M, …), kept for the histogram only
    post: Tensor | None = None  # the activation's output, if an activation module ran
    post_module: nn.Module | None = None
    out: Tensor | None = None  # the block's last output (after φ and any batch norm)
    out_numel: int = 0
    next_x: Tensor | None = None  # the next weight layer's input
    closed: bool = False  # the next weight layer ran: nothing more joins this block
    batch_norm: Literal["before", "after"] | None = None
    bn_direct: bool = False  # batch norm ran directly after the layer
    others: list[str] = field(default_factory=list)  # other modules in the block
    forward: _Forward | None = None  # the measured activations
    grad: _Moments | None = None  # the measured ∂loss/∂h


def _layout(module: nn.Module) -> Layout:
    if isinstance(module, StackedLinear):
        return "stack_linear"
    if isinstance(module, StackedConv):
        return "stack_conv"
    return "linear" if isinstance(module, nn.Linear | nn.Bilinear) else "conv"


def _members(module: nn.Module) -> int:
    return int(getattr(module, "members", 1)) if isinstance(module, _STACKED_WEIGHT) else 1


def _units(t: Tensor, layout: Layout, members: int) -> tuple[Tensor, int]:
    """Any recorded activation as (M, units, samples), or as (M, samples, units) where
    that is its own memory order (a plain Linear's (…, units) output): no copy, so
    same-shaped layers are joined by a plain memory copy and reduced contiguously.
    Returns the tensor and the dimension that holds the units (1 or 2)."""
    if layout == "stack_linear":
        if t.dim() == 2:  # a shared input (features, B)
            return t.unsqueeze(0).expand(members, -1, -1), 1
        return t, 1
    if layout == "stack_conv":  # (B, M·C, *spatial); a shared input is one member
        v = t.reshape(t.shape[0], members, t.shape[1] // members, -1)
        return v.permute(1, 2, 0, 3).reshape(members, v.shape[2], -1), 1
    if layout == "linear" or t.dim() < 2:
        return t.reshape(-1, t.shape[-1]).unsqueeze(0), 2
    return t.transpose(0, 1).reshape(t.shape[1], -1).unsqueeze(0), 1


def _weights(module: nn.Module, members: int) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Weight, its gradient and bias as (M, ...) (a plain layer is one member)."""
    weight = module.weight
    bias = getattr(module, "bias", None)
    assert isinstance(weight, Tensor)
    grad = weight.grad
    if isinstance(module, _STACKED_WEIGHT):
        return weight.detach(), grad, None if bias is None else bias.detach()
    return (
        weight.detach().unsqueeze(0),
        None if grad is None else grad.unsqueeze(0),
        None if bias is None else bias.detach().unsqueeze(0),
    )


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
    def report(self) -> Probe | list[Probe]:
        """The statistics and verdicts of the recorded pass.

        Returns:
            A :class:`Probe`; for an initlab ``Stack``, a list with one per member.

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
                _judge(
                    layers,
                    self.thresholds,
                    self._blocks,
                    loss=self.loss,
                    note=note,
                    member=m if isinstance(self.model, Stack) else None,
                )
            )
        return probes if isinstance(self.model, Stack) else probes[0]


# ------------------------------------------------------------------------- measurement


def _histograms(t: Tensor, bins: int = 40) -> list[Histogram | None]:
    out: list[Histogram | None] = []
    for row in t.reshape(t.shape[0], -1).double():
        finite = row[torch.isfinite(row)]
        if finite.numel() == 0:
            out.append(None)
            continue
        lo, hi = float(finite.min()), float(finite.max())
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        counts, edges = torch.histogram(finite.cpu(), bins=bins, range=(lo, hi))
        out.append(Histogram(counts.numpy(), edges.numpy()))
    return out


@functools.lru_cache(maxsize=16)
def _directions(samples: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    g = torch.Generator(device=device).manual_seed(0)
    r = torch.randn(samples, 2, generator=g, device=device, dtype=torch.float64)
    return r.T.to(dtype).contiguous()


def _projection(h: Tensor, unit_dim: int, across: int | None = None) -> Tensor:
    """Each unit's outputs projected on two random directions: (M, 2, units). ``h`` is
    (M, units, samples) or (M, samples, units), or (samples, units) with ``across`` 0."""
    if across == 0:
        r = _directions(h.shape[0], h.device, h.dtype)
        return (r @ h).unsqueeze(0)
    r = _directions(h.shape[3 - unit_dim], h.device, h.dtype)
    return r @ h if unit_dim == 2 else (h @ r.T).transpose(1, 2)


def _distinct(p: Tensor, tolerance: float) -> Tensor:
    """Distinct units per row of projections p (N, 2, units); NaN counts as distinct.

    Two units compute the same function on the batch when their outputs agree at every
    example. Comparing all pairs costs units²·samples; instead each unit's outputs are
    projected on two random directions and units whose projections agree (relative
    ``tolerance``) are counted as one. Distinct units collide by chance with probability
    about units²·tolerance², negligible at the default 1e-6. (A float32 projection is off
    by ~1e-7 of its scale, so identical units still agree.)
    """
    scale = p.nan_to_num(0.0).abs().amax(dim=(1, 2), keepdim=True)  # NaN: padding
    order = p[:, 0].argsort(dim=1)  # NaN last
    p = torch.gather(p, 2, order.unsqueeze(1).expand(-1, 2, -1))
    same = (p.diff(dim=2).abs() <= tolerance * scale).all(dim=1)
    return p.shape[2] - same.sum(dim=1)


def _saturation(post: Tensor, name: str | None, t: Thresholds) -> Tensor | None:
    """How many of φ's outputs are in its flat tails, per member of (M, units, samples) or
    (M, samples, units), or in all of (samples, units); None for a non-saturating φ."""
    if name in ("tanh", "hardtanh"):
        flat = post.abs() > t.tanh_saturation
    elif name == "sigmoid":
        flat = (post < t.sigmoid_saturation) | (post > 1.0 - t.sigmoid_saturation)
    else:
        return None
    return flat.sum(dim=(1, 2) if flat.dim() == 3 else None, dtype=torch.float64)


def _block_activation(block: _Block) -> tuple[str | None, Tensor | None]:
    """The φ after the layer and its output (from the module, or recognised)."""
    assert block.h is not None
    if block.post is not None:
        assert block.post_module is not None
        return _activation_name(block.post_module), block.post
    if block.batch_norm is not None:
        return None, None
    if block.next_x is not None and block.next_x.numel() == block.h.numel():
        post = block.next_x.reshape(block.h.shape)
        return _infer_activation(block.h, post), post
    return ("linear", block.h) if block.next_x is None else (None, None)


def _fans(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, StackedLinear):
        return module.in_features, module.out_features
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    weight = module.weight
    assert isinstance(weight, Tensor)
    shape = weight.shape[1:] if isinstance(module, StackedConv) else weight.shape
    receptive = math.prod(shape[2:])
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        groups = module.groups
        return shape[1] * receptive, shape[0] // groups * receptive
    groups = getattr(module, "groups", 1)
    return shape[1] * receptive, shape[0] // groups * receptive


def _ratio(total: float, n: int) -> float:
    """total / n, nan for n = 0 (an empty batch)."""
    return total / n if n else math.nan


def _std(deviations: float, n: int) -> float:
    """The sample std (n − 1) from the sum of squared deviations from the mean."""
    if n == 0:
        return math.nan
    var = deviations / max(n - 1, 1)
    return math.sqrt(var) if var > 0 else (var if math.isnan(var) else 0.0)


class _Reads:
    """Numbers queued on the device, read into Python together: each small op, and each
    read, costs more than the arithmetic done afterwards on plain floats. On a GPU the
    report reads once (one sync); on the CPU, where a read waits for nothing, a layer's
    numbers are read as soon as they are queued, so that its tensors can go at once."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.pending: list[Tensor] = []
        self.size = 0

    def add(self, t: Tensor) -> int:
        """Queue a 0-D or 1-D tensor; returns where its first value will be."""
        start = self.size
        self.size += t.shape[0] if t.dim() else 1
        if t.is_cpu and not self.pending:  # nothing to wait for: read it now
            if t.dim():
                self.values += t.tolist()
            else:
                self.values.append(t.item())
        else:
            self.pending.append(t)
        return start

    def read(self) -> list[float]:
        """Every value queued so far."""
        if self.pending:
            parts, self.pending = self.pending, []
            device = parts[0].device
            parts = [
                p.reshape(-1) if p.device == device else p.to(device).reshape(-1) for p in parts
            ]
            self.values += torch.cat(parts).double().tolist()
        return self.values


def _sum_squares(t: Tensor) -> Tensor:
    """Σx² per row of (M, N), as (M,)."""
    rows: Tensor = torch.linalg.vecdot(t, t)
    return rows


# Below this mean square, float32 squares underflow (2⁻¹²⁶) and the sum loses precision.
_TINY_SQUARE = 2.0**-100


# A variance below this share of E[x²] is taken about the mean: E[x²] − E[x]², each
# known to ~1e-7 in float32, would leave it fewer than 5 digits.
_CANCELLATION = 0.01


class _Moments:
    """A tensor's sum, sum of squares and sum of squared deviations from its mean, per
    member: ``t`` is (M, ...) for ``members`` M > 1, any shape for one member. On the CPU
    they are read at once (nothing to wait for) and the tensor let go; elsewhere they are
    queued in ``reads`` until :meth:`settle`.

    Sums run in the tensor's own dtype (float32 for half precision), which statistics
    need no better than: about 1e-7 relative for 10⁴ values, 1e-4 for 10⁷. The deviations
    are Σx² − (Σx)²/n where that keeps 5 digits, and are summed again about the mean
    where it would not (a sigmoid's outputs near 0.5 with a small std); off the CPU, where
    the sums are not read until the report, always about the mean. ``exact`` sums in
    float64 (the input, fed to the forecast); ``total=False`` asks for Σx² only.
    """

    __slots__ = (
        "centred", "deviations", "exact", "finite", "n", "redone", "square", "squares", "t",
        "total", "totals",
    )  # fmt: skip

    def __init__(
        self, t: Tensor, reads: _Reads, members: int, *, total: bool = True, exact: bool = False
    ) -> None:
        self.n = t.numel() // max(members, 1)
        self.exact = exact or t.dtype == torch.float64
        self.centred = False  # the queued squares are the deviations'
        self.totals: list[float] = [math.nan] * members
        self.squares: list[float] = []
        self.deviations: list[float] = [math.nan] * members
        self.finite: list[bool] = [True] * members
        self.redone = False  # the sums were redone in float64
        self.t: Tensor | None = t  # until settled
        self.total = self.square = -1
        # The common case, kept short: it runs for every tensor of every layer in training.
        one = members == 1 and t.dtype == torch.float32 and t.is_cpu and not exact
        if one and self._one(t.reshape(-1), total):
            return
        d = t.reshape(-1) if members == 1 else t.reshape(members, -1)  # 1-D: a BLAS dot
        if self.exact and d.dtype != torch.float64:
            d = d.double()
        if d.dtype not in (torch.float32, torch.float64):
            d = d.float()
        sums = d.sum(dim=-1) if total else None
        if d.is_cpu:  # the common case, read at once
            square = torch.dot(d, d) if d.dim() == 1 else _sum_squares(d)
            self._take(
                sums.reshape(-1).tolist() if sums is not None else None,
                square.reshape(-1).tolist(),
            )
            return
        if sums is not None and not self.exact:
            self.centred = True
            d = d - (sums / max(self.n, 1)).unsqueeze(-1)
        square = torch.dot(d, d) if d.dim() == 1 else _sum_squares(d)
        self.total = reads.add(sums) if sums is not None else -1
        self.square = reads.add(square)

    def _one(self, v: Tensor, total: bool) -> bool:
        """One member's float32 CPU sums, as :meth:`_take` would keep them; False where
        that needs more than the plain sums (non-finite, underflow, cancellation)."""
        q = torch.dot(v, v).item()
        if not self.n * _TINY_SQUARE <= q < math.inf:
            return False
        if total:
            x = v.sum().item()
            dev = q - x * x / max(self.n, 1)
            if not dev >= _CANCELLATION * q:  # also when x is not finite
                return False
            self.totals, self.deviations = [x], [dev]
        self.squares, self.t = [q], None
        return True

    def settle(self, values: list[float]) -> None:
        """Take the queued numbers from ``values``."""
        if self.t is not None:
            m, at, start = len(self.finite), self.total, self.square
            self._take(values[at : at + m] if at >= 0 else None, values[start : start + m])

    def _take(self, totals: list[float] | None, squares: list[float]) -> None:
        """Keep per member the sum (nan when not asked for), the sums of squares, and
        whether every value is finite; then let the tensor go. ``squares`` are the
        deviations' when centred."""
        t, self.t = self.t, None
        assert t is not None
        n, m = max(self.n, 1), len(self.finite)
        low = 0.0 if self.exact else self.n * _TINY_SQUARE
        # A sum of squares is finite exactly when every value is (a sum is too, then).
        if not all(low <= s < math.inf for s in squares) or (
            totals is not None and not all(-math.inf < x < math.inf for x in totals)
        ):
            # Rare: NaN or Inf, or a float32 sum that overflowed or underflowed: float64.
            self.redone = True
            d = t.reshape(m, -1).double()
            self.squares = _sum_squares(d).tolist()
            if totals is not None:
                sums = d.sum(dim=1)
                self.totals = sums.tolist()
                self.deviations = _sum_squares(d - (sums / n).unsqueeze(1)).tolist()
            if not all(math.isfinite(s) for s in self.squares):
                self.finite = torch.isfinite(d).all(dim=1).tolist()
            return
        if totals is None:
            self.squares = squares
            return
        self.totals = totals
        if self.centred:
            self.deviations = squares
            self.squares = [q + x * x / n for q, x in zip(squares, totals, strict=True)]
            return
        self.squares = squares
        self.deviations = [q - x * x / n for q, x in zip(squares, totals, strict=True)]
        if not self.exact and any(
            v < _CANCELLATION * q for v, q in zip(self.deviations, self.squares, strict=True)
        ):
            d = t.reshape(m, -1)
            d = d if d.dtype == torch.float32 else d.float()
            centred = d - (torch.tensor(totals, device=d.device) / n).unsqueeze(1)
            self.deviations = _sum_squares(centred).tolist()


class _Forward:
    """A block's activations, measured as the forward pass leaves them: the moments of h
    and of the block's output, φ's saturation and, per unit, the extremes and the
    projection for the symmetry (layers of one width are joined at the report)."""

    def __init__(self, block: _Block, reads: _Reads, t: Thresholds, keep: bool) -> None:
        assert block.h is not None
        mm, layout, h = block.members, block.layout, block.h
        self.name, post = _block_activation(block)
        last = block.out if block.out is not None else h
        if layout == "linear" and mm == 1 and not keep:
            # (samples, units) as it lies in memory; the reductions keep a member dim. The
            # modules after the layer may change the width (e.g. GLU halves it).
            unit_dim = 2
            h_units = h if h.dim() == 2 else h.reshape(-1, h.shape[-1])
            out_units = last if last.dim() == 2 else last.reshape(-1, last.shape[-1])
            post_units = (
                out_units if post is None or post is last else post.reshape(-1, post.shape[-1])
            )
            across = 0
        else:
            out_units, unit_dim = _units(last, layout, mm)
            h_units = out_units if h is last else _units(h, layout, mm)[0]
            post_units = out_units if post is None or post is last else _units(post, layout, mm)[0]
            across = 3 - unit_dim  # the samples' dimension
        self.unit_dim, self.across, self.tolerance = unit_dim, across, t.symmetry_tolerance
        self.units = h_units.shape[unit_dim if across else 1]
        self.n_h, self.n_out = h_units.numel() // mm, out_units.numel() // mm
        self.n_post = post_units.numel() // mm
        # One member's moments need no view: the whole tensor is reduced.
        self.h = _Moments(h if mm == 1 else h_units, reads, mm, total=False)
        self.out = _Moments(last if mm == 1 else out_units, reads, mm)
        saturated = _saturation(post_units, self.name, t)
        self.saturated = reads.add(saturated) if saturated is not None else None
        if h_units.shape[across] and post_units.shape[across]:
            post_max = post_units.amax(dim=across, keepdim=not across)
            # ReLU's outputs are ≥ 0: a unit is dead when its largest output is 0.
            post_min = post_max if self.name == "relu" else post_units.amin(across, not across)
            self.extremes = (h_units.amin(dim=across, keepdim=not across), post_min, post_max)
        else:  # an empty batch tells nothing: no unit counts as positive, dead or a copy
            unknown = torch.full((mm, self.units), math.nan, device=h.device)
            self.extremes = (unknown, unknown, unknown)
        wide = h_units if h.dtype in (torch.float32, torch.float64) else h_units.float()
        self.projection = _projection(wide, unit_dim, across)  # (M, 2, units)
        if not h_units.shape[across]:
            self.projection = torch.full_like(self.projection, math.nan)
        self.distinct: list[float] | None = None  # where h needed the float64 symmetry
        self.h_units: Tensor | None = h_units  # until settled
        self.post = post_units if keep else None  # for the histogram
        if self.h.t is None:  # read already (on the CPU)
            self.settle([])

    def settle(self, values: list[float]) -> None:
        self.h.settle(values)
        self.out.settle(values)
        if self.h.redone and self.h_units is not None:  # NaN/Inf or huge values in h
            h = torch.nan_to_num(self.h_units.double())
            p = _projection(h, self.unit_dim, self.across)
            self.distinct = _distinct(p, self.tolerance).tolist()
        self.h_units = None


def _measure_forward(block: _Block, reads: _Reads, t: Thresholds, keep: bool) -> None:
    """Measure the block's activations and let them go (the first layer keeps its input,
    for the forecast)."""
    assert block.h is not None
    block.out_numel = (block.out if block.out is not None else block.h).numel()
    block.forward = _Forward(block, reads, t, keep)
    block.h = block.post = block.out = block.next_x = None
    if block.index:
        block.x = None


def _measure_grad(block: _Block, grad: Tensor, reads: _Reads, keep: bool) -> None:
    """Measure ∂loss/∂h (and let it go, unless kept for the histogram)."""
    mm = block.members
    g = _units(grad, block.layout, mm)[0] if mm > 1 or keep else grad
    block.grad = _Moments(g, reads, mm)
    block.h_grad = g if keep else None


@dataclass(eq=False)
class _Units:
    """Where the per-unit counts of one block will be in the read."""

    positive: int
    dead: int
    distinct: int
    padding: int  # units added to join a wider group, counted as distinct


def _joined(parts: Sequence[Tensor], width: int) -> Tensor:
    """``parts`` concatenated along dim 0, the last dim padded to ``width`` with NaN."""
    padded = []
    for p in parts:
        short = width - p.shape[-1]
        padded.append(F.pad(p, (0, short), value=math.nan) if short else p)
    return torch.cat(padded)


def _queue_units(blocks: list[_Block], reads: _Reads) -> list[_Units]:
    """Always-positive, dead and distinct units per block. The per-unit numbers of all
    layers are joined, narrower ones padded with NaN (neither positive, nor dead, nor
    equal to anything), so that each count costs a few ops for the whole model."""
    forwards = [b.forward for b in blocks if b.forward is not None]
    groups: dict[torch.device, list[int]] = {}
    for i, f in enumerate(forwards):
        groups.setdefault(f.projection.device, []).append(i)
    where: list[_Units] = [_Units(0, 0, 0, 0) for _ in forwards]
    for indices in groups.values():
        group = [forwards[i] for i in indices]
        # φ may change the width (GLU): pad every per-unit row to the widest.
        width = max(t.shape[-1] for f in group for t in (*f.extremes, f.projection))

        h_min, post_min, post_max = (
            _joined(parts, width) for parts in zip(*(f.extremes for f in group), strict=True)
        )
        positive = reads.add((h_min > 0).sum(dim=1))
        dead = reads.add(((post_min == 0) & (post_max == 0)).sum(dim=1))
        projection = _joined([f.projection for f in group], width)
        distinct = reads.add(_distinct(projection, group[0].tolerance))
        start = 0
        for i, f in zip(indices, group, strict=True):
            where[i] = _Units(positive + start, dead + start, distinct + start, width - f.units)
            start += f.projection.shape[0]
    return where


@dataclass(eq=False)
class _Measured:
    """The report's numbers: per block, per member, the fields of :class:`LayerStats`;
    and for the forecast, per block the weights' and biases' mean squares per member,
    and E[x²] of the first layer's input per member (one value for a shared input)."""

    rows: list[list[dict[str, Any]]]
    weight_ms: list[list[float]]
    bias_ms: list[list[float]]
    input_ms: list[float]


def _input_moments(block: _Block, reads: _Reads) -> _Moments:
    """The first layer's input, per member, or as one for a shared input."""
    x, module, mm = block.x, block.module, block.members
    assert x is not None
    if isinstance(module, StackedConv) and x.shape[1] == module.in_channels * mm:
        return _Moments(_units(x, "stack_conv", mm)[0], reads, mm, total=False, exact=True)
    if isinstance(module, StackedLinear) and x.dim() == 3:
        return _Moments(x, reads, mm, total=False, exact=True)
    return _Moments(x, reads, 1, total=False, exact=True)


def _measure(
    blocks: list[_Block], t: Thresholds, histograms: bool, reads: _Reads, inputs: bool
) -> _Measured:
    """Every statistic of :class:`LayerStats`, per block and member.

    The report runs during training (:class:`Watch`), where each small op's overhead
    counts: each tensor is reduced to a few numbers per member, the per-unit counts of
    same-width layers are taken together, and the numbers are read at once; the
    statistics are then plain arithmetic on them.
    """
    for block in blocks:
        if block.forward is None:  # the last layer, or no backward pass ran
            _measure_forward(block, reads, t, histograms)
    params = []
    with torch.no_grad():
        for block in blocks:
            # (M, …) for a stacked layer; any shape for one member: no view needed.
            weight, bias = block.module.weight, getattr(block.module, "bias", None)
            assert isinstance(weight, Tensor)
            mm, grad = block.members, weight.grad
            params.append(
                (
                    _Moments(weight, reads, mm),
                    _Moments(grad, reads, mm) if grad is not None else None,
                    _Moments(bias, reads, mm, total=False) if isinstance(bias, Tensor) else None,
                )
            )
        x = _input_moments(blocks[0], reads) if inputs else None
        units = _queue_units(blocks, reads)
        values = reads.read()
    members = max(b.members for b in blocks)
    nan = math.nan
    measured = _Measured([], [], [], [])
    if x is not None:
        x.settle(values)
        measured.input_ms = [_ratio(s, x.n) for s in x.squares]
    for i, (block, (w, wg, b), u) in enumerate(zip(blocks, params, units, strict=True)):
        f, g = block.forward, block.grad
        assert f is not None
        for moments in (f, g, w, wg, b):
            if moments is not None:
                moments.settle(values)
        mm, n, n_w = block.members, f.units, w.n
        fan_in, fan_out = _fans(block.module)
        kind = type(block.module).__name__
        act_hist = _histograms(f.post) if f.post is not None else [None] * mm
        grad_hist = _histograms(block.h_grad) if block.h_grad is not None else [None] * mm
        distinct = (
            [d - u.padding for d in values[u.distinct : u.distinct + mm]]
            if f.distinct is None
            else f.distinct
        )
        rows = []
        for m in range(mm):
            g_dev, g_sq, g_ok = (
                (g.deviations[m], g.squares[m], g.finite[m]) if g else (nan, nan, True)
            )
            wg_dev, wg_sq, wg_ok = (
                (wg.deviations[m], wg.squares[m], wg.finite[m]) if wg else (nan, nan, True)
            )
            w_norm, wg_norm = math.sqrt(w.squares[m]), math.sqrt(wg_sq)
            o_sum = f.out.totals[m]
            ok = (
                ("h", f.h.finite[m]),
                ("∂h", g_ok),
                ("W", w.finite[m]),
                ("∂W", wg_ok),
                ("b", b.finite[m] if b else True),
            )
            sat = _ratio(values[f.saturated + m], f.n_post) if f.saturated is not None else nan
            rows.append(
                {
                    "index": i + 1,
                    "name": block.name,
                    "kind": kind,
                    "activation": f.name,
                    "batch_norm": block.batch_norm,
                    "units": n,
                    "fan_in": fan_in,
                    "fan_out": fan_out,
                    "preact_rms": math.sqrt(_ratio(f.h.squares[m], f.n_h)),
                    "act_mean": _ratio(o_sum, f.n_out),
                    "act_std": _std(f.out.deviations[m], f.n_out),
                    "saturated": sat,
                    "dead": values[u.dead + m] / n,
                    "always_positive": values[u.positive + m] / n,
                    "grad_rms": math.sqrt(_ratio(g_sq, f.n_h)),
                    "grad_std": _std(g_dev, f.n_h),
                    "weight_std": _std(w.deviations[m], n_w),
                    "weight_grad_norm": wg_norm,
                    "weight_grad_std": _std(wg_dev, n_w),
                    "grad_weight_ratio": (
                        0.0 if wg_norm == 0 else (wg_norm / w_norm if w_norm > 0 else math.inf)
                    ),
                    "update_weight_ratio": nan,  # filled in by probe(steps > 0)
                    "symmetry": 1.0 - distinct[m] / n,
                    "distinct_units": int(distinct[m]),
                    "nonfinite": ", ".join(k for k, fine in ok if not fine),
                    "act_hist": act_hist[m],
                    "grad_hist": grad_hist[m],
                }
            )
        weight_ms = [s / n_w for s in w.squares]
        bias_ms = [s / b.n for s in b.squares] if b is not None else [0.0] * mm
        if mm != members:  # a plain layer inside a stack's model: the same for every member
            rows, weight_ms, bias_ms = rows * members, weight_ms * members, bias_ms * members
        measured.rows.append(rows)
        measured.weight_ms.append(weight_ms)
        measured.bias_ms.append(bias_ms)
    return measured


# ---------------------------------------------------------------------------- forecast


def _forecast(
    blocks: list[_Block], measured: _Measured, members: int
) -> tuple[list[list[tuple[float, float]]], str]:
    """Per member, per layer, the theory's (RMS of h, RMS of ∂loss/∂h); or why not.

    The weights' and biases' mean squares, the input's and the top gradient come from
    ``measured``, the measurements of :func:`_measure`: nothing is computed twice.
    """
    specs_by_member: list[list[meanfield.LayerSpec]] = [[] for _ in range(members)]
    for i, block in enumerate(blocks):
        row = measured.rows[i][0]
        name = row["activation"]
        if name is None:
            return [], (
                f"layer {i + 1} ({block.name}) is followed by an activation the theory does "
                "not cover (or by other modules): no forecast"
            )
        if block.batch_norm == "after":
            return [], f"layer {i + 1} ({block.name}) has batch norm after φ: no forecast"
        if block.others:
            return [], (
                f"layer {i + 1} ({block.name}) is followed by {', '.join(block.others)}: "
                "the theory covers chains of Linear/Conv, batch norm and φ only"
            )
        if i > 0 and blocks[i - 1].out_numel != block.x_numel:
            return [], f"layer {i + 1} ({block.name}) does not take the previous output"
        for m in range(members):
            try:
                spec = meanfield.LayerSpec(
                    fan_in=row["fan_in"],
                    fan_out=row["fan_out"],
                    weight_var=measured.weight_ms[i][m],
                    bias_var=measured.bias_ms[i][m],
                    activation=name,
                    batch_norm=block.batch_norm == "before",
                )
            except ValueError as error:  # non-finite weights
                return [], f"layer {i + 1} ({block.name}) has no forecast: {error}"
            specs_by_member[m].append(spec)
    x2 = measured.input_ms
    if blocks[-1].grad is None:
        return [], "no gradient reached the last layer"
    result = []
    for m in range(members):
        xm = x2[m if len(x2) > 1 else 0]
        gm = measured.rows[-1][m]["grad_rms"] ** 2
        try:
            layers = meanfield.forecast(specs_by_member[m], xm, gm)
        except (ValueError, OverflowError) as error:
            return [], f"the theory has no forecast: {error}"
        # h is the layer's own output, before any batch norm: the theory's a = W x + b.
        result.append(
            [(math.sqrt(f.linear_second_moment), math.sqrt(f.linear_grad_var)) for f in layers]
        )
    return result, ""


# ------------------------------------------------------------------------------ verdicts


def _factor(values: Sequence[float]) -> float:
    """exp of the least-squares slope of log(values) against depth; 0 when one is 0."""
    if len(values) < 2 or not all(math.isfinite(v) for v in values):
        return math.nan
    if any(v <= 0 for v in values):
        return 0.0
    # The closed form of the fitted slope: a report runs during training, and a polyfit
    # costs more than the rest of the verdicts.
    logs = [math.log(v) for v in values]
    mid, mean = (len(logs) - 1) / 2, math.fsum(logs) / len(logs)
    slope = math.fsum((i - mid) * (y - mean) for i, y in enumerate(logs)) / math.fsum(
        (i - mid) * (i - mid) for i in range(len(logs))
    )
    try:
        return math.exp(slope)
    except OverflowError:
        return math.inf


def _ranges(indices: Sequence[int]) -> str:
    """[1, 2, 3, 5] → "layers 1–3, 5"; [4] → "layer 4"."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    text = ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs)
    return ("layer " if len(indices) == 1 else "layers ") + text


def _span(layers: Sequence[LayerStats]) -> str:
    return f"layers {layers[0].index}–{layers[-1].index}"


def _main_activation(layers: Sequence[LayerStats]) -> str | None:
    names = [s.activation for s in layers[:-1] if s.activation not in (None, "linear")]
    return max(set(names), key=names.count) if names else layers[0].activation


def _init_advice(activation: str | None) -> str:
    """The init to try for a vanishing or exploding net, as a runnable call."""
    apply = "initlab.init.apply(model, weight={!r})"
    base = (activation or "").split("(")[0]
    if base == "relu":
        return "use He init: " + apply.format("he_normal")
    if base == "leaky_relu":
        slope = (activation or "leaky_relu(0.01)")[len("leaky_relu(") : -1] or "0.01"
        return "use He init for leaky ReLU: " + apply.format(
            f"kaiming_normal(a={slope}, nonlinearity='leaky_relu')"
        )
    if base == "tanh":
        return "use Xavier init with tanh's gain 5/3: " + apply.format("xavier_normal(gain='tanh')")
    if base == "sigmoid":
        return (
            "sigmoid's slope is at most 1/4, so gradients shrink whatever the init: add "
            "batch norm before each sigmoid (initlab.models.mlp(..., batch_norm='before')) "
            "or use tanh or ReLU"
        )
    if base == "selu":
        return "use LeCun init for SELU: " + apply.format("lecun_normal")
    if base in ("linear", ""):
        return "use LeCun or Xavier init: " + apply.format("lecun_normal")
    return f"use the gain measured for {base}: " + apply.format(
        f"kaiming_normal(nonlinearity='measured:{base}')"
    )


def _depth_verdicts(layers: Sequence[LayerStats], t: Thresholds) -> list[Verdict]:
    verdicts = []
    act = _main_activation(layers)
    fix = _init_advice(act) + ", or add batch norm, or run initlab.lsuv.lsuv(model, batch)"
    span = _span(layers)
    index = tuple(s.index for s in layers)
    forward = _factor([s.preact_rms for s in layers])
    backward_values = [s.grad_rms for s in reversed(layers)]
    backward = _factor(backward_values)
    for what, factor, values in (
        ("signal", forward, [s.preact_rms for s in layers]),
        ("gradient", backward, backward_values),
    ):
        if math.isnan(factor):
            continue
        way = "going forward" if what == "signal" else "going back toward the input"
        if factor == 0.0:
            first_zero = next(i for i, v in enumerate(values) if v <= 0)
            where = layers[first_zero if what == "signal" else len(layers) - 1 - first_zero]
            verdicts.append(
                Verdict(
                    "vanishing",
                    index,
                    0.0,
                    f"the {what} is exactly 0 from layer {where.index} {way}.",
                    fix,
                )
            )
            continue
        total = factor ** (len(values) - 1)
        if factor < t.vanishing and total < 1.0 / t.depth_change:
            verdicts.append(
                Verdict(
                    "vanishing",
                    index,
                    factor,
                    f"{act or 'the'} {span} shrink the {what} by {factor:.2f}× per layer "
                    f"{way} ({total:.1e}× in all).",
                    fix,
                )
            )
        elif factor > t.exploding and total > t.depth_change:
            verdicts.append(
                Verdict(
                    "exploding",
                    index,
                    factor,
                    f"{act or 'the'} {span} grow the {what} by {factor:.2f}× per layer "
                    f"{way} ({total:.1e}× in all).",
                    fix + "; clip gradients (initlab.clip.clip_by_global_norm_)",
                )
            )
    return verdicts


def _layer_verdicts(layers: Sequence[LayerStats], t: Thresholds) -> list[Verdict]:
    verdicts: list[Verdict] = []

    def gather(kind: VerdictKind, hit: Callable[[LayerStats], bool], value: Any) -> None:
        found = [s for s in layers if hit(s)]
        if not found:
            return
        worst = max(found, key=value)
        verdicts.append(
            Verdict(kind, tuple(s.index for s in found), float(value(worst)), *texts[kind](found))
        )

    def names(found: Sequence[LayerStats]) -> str:
        return _ranges([s.index for s in found])

    texts: dict[str, Callable[[Sequence[LayerStats]], tuple[str, str]]] = {
        "nonfinite": lambda f: (
            "NaN or Inf in " + "; ".join(f"layer {s.index}: {s.nonfinite}" for s in f) + ".",
            "check the input for NaN/Inf, lower the learning rate, and clip gradients "
            "(initlab.clip.clip_by_global_norm_)",
        ),
        "saturated": lambda f: (
            f"{names(f)}: up to {max(s.saturated for s in f):.0%} of the "
            f"{f[0].activation} outputs sit in its flat tails, where its slope is ≈ 0.",
            "the weights are too large for this activation: "
            + _init_advice(f[0].activation)
            + ", or add batch norm before the activation",
        ),
        "dead": lambda f: (
            f"{names(f)}: up to {max(s.dead for s in f):.0%} of the units output 0 for "
            "every example (dead: no gradient flows through them), far more than the "
            f"{min(s.always_positive for s in f):.0%} that are positive for every example.",
            "the biases or weights push the pre-activations below 0: use bias='zeros' or a "
            "small positive constant (initlab.init.apply(model, weight='he_normal', "
            "bias='constant(0.01)')), a lower learning rate, or leaky_relu",
        ),
        "symmetric": lambda f: (
            f"{names(f)}: {max(s.symmetry for s in f):.0%} of the units compute the same "
            f"function as another unit (only {min(s.distinct_units for s in f)} distinct).",
            "a constant init (zeros, ones) never breaks symmetry: every unit gets the same "
            "gradient. Use a random init: " + _init_advice(_main_activation(f)),
        ),
    }
    gather("nonfinite", lambda s: bool(s.nonfinite), lambda s: 1.0)
    gather(
        "saturated",
        lambda s: not math.isnan(s.saturated) and s.saturated > t.saturated,
        lambda s: s.saturated,
    )
    # In a deep net the examples' representations grow alike with depth, so a unit can be
    # off for the whole batch without being dead: then about as many are on for the whole
    # batch (the weights are symmetric about 0). Dead units are the excess over those; the
    # default 0.25 is far above the excess drawn by chance (a 30-layer He net of width 256
    # showed 10 % on 1 batch in 8 at threshold 0.1).
    gather(
        "dead",
        lambda s: s.dead > t.dead and s.dead - s.always_positive > t.dead,
        lambda s: s.dead,
    )
    gather("symmetric", lambda s: s.symmetry > t.symmetric, lambda s: s.symmetry)
    return verdicts


def _judge(
    layers: list[LayerStats],
    t: Thresholds,
    blocks: list[_Block],
    *,
    loss: float,
    note: str,
    member: int | None,
) -> Probe:
    verdicts = _depth_verdicts(layers, t) + _layer_verdicts(layers, t)
    redundant = [
        s
        for s, b in zip(layers, blocks, strict=True)
        if b.bn_direct and getattr(b.module, "bias", None) is not None
    ]
    if redundant:
        verdicts.append(
            Verdict(
                "redundant_bias",
                tuple(s.index for s in redundant),
                float(len(redundant)),
                f"{_ranges([s.index for s in redundant])} add a bias that the batch norm "
                "right after discards (its β replaces it).",
                "build these layers with bias=False (initlab.models.mlp(..., bias='auto') does)",
            )
        )
    return Probe(
        layers=tuple(layers),
        verdicts=tuple(verdicts),
        loss=loss,
        loss_after_steps=math.nan,
        forward_factor=_factor([s.preact_rms for s in layers]),
        backward_factor=_factor([s.grad_rms for s in reversed(layers)]),
        forecast_note=note,
        member=member,
    )


# --------------------------------------------------------------------------------- probe


def _split_batch(batch: object) -> tuple[Tensor, Any]:
    fn = "probe"
    if isinstance(batch, Tensor):
        x, target = batch, None
    elif isinstance(batch, tuple | list) and len(batch) == 2 and isinstance(batch[0], Tensor):
        x, target = batch[0], batch[1]
    else:
        raise TypeError(
            param_message(fn, "batch", "a tensor x or a pair (x, target)", type(batch).__name__)
        )
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"The batch holds {bad} non-finite value(s) (NaN or Inf) out of {x.numel()}: the "
            "probe would report them as the model's fault. Clean or impute the data first."
        )
    return x, target


def _check_options(fn: str, thresholds: object, *, histograms: object, forecast: object) -> None:
    if thresholds is not None and not isinstance(thresholds, Thresholds):
        raise TypeError(
            param_message(fn, "thresholds", "a Thresholds or None", type(thresholds).__name__)
        )
    for name, value in (("histograms", histograms), ("forecast", forecast)):
        if not isinstance(value, bool):
            raise TypeError(param_message(fn, name, "True or False", value))


def _input_dtype_problem(model: nn.Module, x: Tensor) -> str | None:
    """What is wrong when an integer batch meets a first layer that computes in floats."""
    if x.is_floating_point() or x.is_complex():
        return None
    for name, module in model.named_modules():
        own = next(module.parameters(recurse=False), None)
        if own is None:
            continue
        if isinstance(module, nn.Embedding | nn.EmbeddingBag) or not own.is_floating_point():
            return None
        return (
            f"The batch is {x.dtype}, but the model's first layer {name or '(the model)'!r} "
            f"({type(module).__name__}) computes in {own.dtype}: it takes floating-point "
            f"input. Convert the batch (x.to({own.dtype})); integer ids (tokens, categories) "
            "need an nn.Embedding as the first layer."
        )
    return None


class _ClassError(ValueError):
    """Integer labels beyond the model's outputs (not a dtype problem)."""


def _check_classes(output: Tensor, target: object, stacked: bool, *, failed: bool) -> None:
    """Refuse integer labels that the model's outputs cannot score, naming both counts.

    A model with several outputs is checked before the loss (on a GPU an out-of-range
    label is a device-side assert); one output may be a regression onto integer targets,
    so it is checked only once the loss has failed.
    """
    if (
        not isinstance(target, Tensor)
        or target.dtype == torch.bool
        or target.is_floating_point()
        or target.is_complex()
        or target.numel() == 0
    ):
        return
    # torch's class dimension: 1 for (N, C, …) outputs; a stack's (M, N, C): the last.
    if stacked and output.ndim == target.ndim + 2:
        width = output.shape[-1]
    elif not stacked and output.ndim == target.ndim + 1 and output.ndim >= 2:
        width = output.shape[1]
    else:
        return
    classes = int(target.max()) + 1
    if width >= classes or (width == 1 and (classes <= 2 or not failed)):
        return
    raise _ClassError(
        f"The model has {width} output{'s' if width > 1 else ''} per example, but the "
        f"targets hold labels up to {classes - 1}: {classes} classes need {classes} outputs "
        f"(one logit each). Give the model's last layer {classes} outputs, or check the "
        "targets."
    )


def _expected_input(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return f"(…, {module.in_features})"
    if isinstance(module, StackedLinear):
        return f"(B, {module.in_features}) or ({module.members}, B, {module.in_features})"
    if isinstance(module, nn.modules.conv._ConvNd):
        dims = len(module.kernel_size)
        return f"(B, {module.in_channels}, {', '.join('…' * dims)})"
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return f"(B, {module.num_features}, …)"
    return "its usual input"


@contextlib.contextmanager
def _named_failure(watch: Watch) -> Iterator[None]:
    """Re-raise an error inside the forward pass naming the layer and both shapes."""
    try:
        yield
    except (RuntimeError, ValueError) as error:
        culprit = watch._culprit()
        if culprit is None:
            raise
        name, module, shape = culprit
        raise ValueError(
            f"The forward pass failed in layer {name!r} ({module}): it expects input "
            f"{_expected_input(module)} and got {shape}. Check the batch's shape against the "
            f"model's first layer. ({type(error).__name__}: {error})"
        ) from error


def probe(
    model: nn.Module,
    batch: Tensor | tuple[Tensor, Any],
    loss_fn: Callable[..., Tensor] | None = None,
    steps: int = 0,
    *,
    lr: float = 0.01,
    optimizer: Callable[[Any], torch.optim.Optimizer] | None = None,
    train: bool | None = True,
    thresholds: Thresholds | None = None,
    histograms: bool = True,
    forecast: bool = True,
    seed: int = 0,
) -> Probe | list[Probe]:
    """Why ``model`` will not train, layer by layer, and what to change.

    Runs one forward and backward pass of a copy of ``model`` on ``batch`` with hooks on
    every layer (removed afterwards, also on error). With ``loss_fn`` the gradient is that
    of ``loss_fn(model(x), target)`` (or ``loss_fn(model(x))`` for a batch without
    targets); without, ∂loss/∂output is drawn from N(0, 1) (divided by the batch size, as
    for a mean loss), the assumption of the
    signal-propagation theory, which then forecasts every layer's gradient. With
    ``steps > 0``, runs that many optimizer steps on the copy and reports the mean
    update:weight ratio per step (≈ 1e-3 is the usual healthy rule of thumb).

    Args:
        model: any ``nn.Module`` with Linear or Conv layers, or an initlab ``Stack`` (each
            member is probed; a stack's ``loss_fn`` should sum the members' losses).
        batch: x, or (x, target).
        loss_fn: the loss, returning a scalar; None for the N(0, 1) output gradient.
        steps: optimizer steps to take on the copy after the probe pass (needs loss_fn).
        lr: the learning rate of the default optimizer, SGD.
        optimizer: a factory ``params → torch.optim.Optimizer``, instead of SGD(lr).
        train: probe in training mode (batch norm uses batch statistics, as training
            does); False for eval mode; None keeps the model's mode.
        thresholds: when measurements become verdicts.
        histograms: keep histograms of every layer's output and gradient (for the figure).
        forecast: compute the signal-propagation forecast beside the measurements.
        seed: seeds the N(0, 1) output gradient and the symmetry test.

    Returns:
        A :class:`Probe`; for an initlab ``Stack``, a list with one per member.

    Raises:
        TypeError: model is not an nn.Module; batch is not a tensor or a pair; an integer
            batch that the first layer cannot take (it names both dtypes); an option of
            the wrong type.
        ValueError: a model without parameters or without Linear/Conv layers; a batch with
            NaN/Inf; a batch the model cannot take (the error names the layer and both
            shapes); integer labels beyond the model's outputs (it names both counts); a
            loss that is not a scalar; steps > 0 without a loss_fn.

    References:
        Glorot & Bengio 2010; He et al. 2015; Poole et al. 2016; Schoenholz et al. 2017.

    Example:
        >>> model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
        >>> _ = nn.init.zeros_(model[0].weight), nn.init.zeros_(model[0].bias)
        >>> report = probe(model, torch.randn(64, 10))
        >>> report.verdict("symmetric").evidence
        'layer 1: 97% of the units compute the same function as another unit (only 1 distinct).'
    """
    fn = "probe"
    if not isinstance(model, nn.Module):
        raise TypeError(param_message(fn, "model", "an nn.Module", type(model).__name__))
    if next(model.parameters(), None) is None:
        raise ValueError(
            f"The model {type(model).__name__} has no parameters: there is nothing to probe. "
            "Pass the network itself (with its Linear/Conv layers)."
        )
    steps = check_int(fn, "steps", steps, low=0)
    lr = check_real(fn, "lr", lr, low=0.0, low_open=True)
    _check_options(fn, thresholds, histograms=histograms, forecast=forecast)
    check_int(fn, "seed", seed, low=0)
    for name, value in (("loss_fn", loss_fn), ("optimizer", optimizer)):
        if value is not None and not callable(value):
            raise TypeError(param_message(fn, name, "a callable or None", type(value).__name__))
    if train is not None and not isinstance(train, bool):
        raise TypeError(param_message(fn, "train", "True, False or None", train))
    if steps > 0 and loss_fn is None:
        raise ValueError(
            param_message(fn, "loss_fn", "a loss when steps > 0", None, "Pass loss_fn, or steps=0.")
        )
    x, target = _split_batch(batch)
    work = copy.deepcopy(model)
    if train is not None:
        work.train(train)
    for p in work.parameters():
        p.grad = None
    # Only named when the forward fails: a model may convert its input itself (uint8
    # images divided by 255 in forward), so an integer batch is not wrong in itself.
    wrong_dtype = _input_dtype_problem(work, x)
    watch = Watch(work, thresholds=thresholds, histograms=histograms, forecast=forecast)
    stacked = isinstance(model, Stack)
    try:
        with watch, _named_failure(watch), torch.enable_grad():
            output = work(x)
            if not isinstance(output, Tensor):
                raise TypeError(
                    f"probe needs the model to return a tensor. Got {type(output).__name__}."
                )
            _check_classes(output, target, stacked, failed=False)
            try:
                loss = _loss(output, target, loss_fn, seed, stacked)
            except (IndexError, RuntimeError, ValueError):
                _check_classes(output, target, stacked, failed=True)
                raise
            watch._done = True
    except (RuntimeError, ValueError) as error:
        if wrong_dtype is not None and not isinstance(error, _ClassError):
            raise TypeError(wrong_dtype) from error
        raise
    if not output.requires_grad:
        raise ValueError(
            "The model's output does not require grad: are its parameters frozen "
            "(requires_grad=False) or is it run under torch.no_grad()?"
        )
    loss.backward()  # type: ignore[no-untyped-call]
    if loss_fn is not None:
        watch.loss = float(loss.detach())
    result = watch.report()  # before the steps change the weights
    if not steps:
        return result
    ratios, after = _take_steps(work, watch, x, target, loss_fn, steps, optimizer, lr)
    mean = torch.stack([torch.stack(step) for step in ratios]).mean(dim=0)  # (layers, M)

    def stepped(p: Probe, m: int) -> Probe:
        layers = tuple(
            replace(s, update_weight_ratio=float(mean[i, m if mean.shape[1] > 1 else 0]))
            for i, s in enumerate(p.layers)
        )
        return replace(p, layers=layers, loss_after_steps=after)

    if isinstance(result, list):
        return [stepped(p, m) for m, p in enumerate(result)]
    return stepped(result, 0)


def _loss(
    output: Tensor,
    target: Any,
    loss_fn: Callable[..., Tensor] | None,
    seed: int,
    stacked: bool = False,
) -> Tensor:
    if loss_fn is None:
        g = torch.Generator(device=output.device).manual_seed(seed)
        # A stack's members all get the gradient a member alone would get.
        shape = output.shape[1:] if stacked else output.shape
        grad = torch.randn(shape, generator=g, device=output.device, dtype=output.dtype)
        # Averaged over the examples, as a mean loss is, so ‖∇W‖/‖W‖ reads on its scale.
        return (output * grad).sum() / shape[0]
    loss = loss_fn(output) if target is None else loss_fn(output, target)
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        got = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(
            f"The loss must be a scalar tensor. Got {got}: reduce it (e.g. .mean(), or "
            "reduction='mean'); for a stack, sum the members' losses."
        )
    return loss.reshape(())


def _take_steps(
    work: nn.Module,
    watch: Watch,
    x: Tensor,
    target: Any,
    loss_fn: Callable[..., Tensor] | None,
    steps: int,
    optimizer: Callable[[Any], torch.optim.Optimizer] | None,
    lr: float,
) -> tuple[list[list[Tensor]], float]:
    """Optimizer steps on the copy: per step, per layer, ‖ΔW‖/‖W‖ per member."""
    opt = optimizer(work.parameters()) if optimizer else torch.optim.SGD(work.parameters(), lr=lr)
    ratios: list[list[Tensor]] = []
    loss = math.nan
    for step in range(steps):
        if step:
            opt.zero_grad()
            out = work(x)
            current = _loss(out, target, loss_fn, 0)
            current.backward()  # type: ignore[no-untyped-call]
        before = watch._weights_now()
        opt.step()
        after = watch._weights_now()
        ratios.append(
            [
                (a - b).double().flatten(1).norm(dim=1) / b.double().flatten(1).norm(dim=1)
                for a, b in zip(after, before, strict=True)
            ]
        )
    with torch.no_grad():
        loss = float(_loss(work(x), target, loss_fn, 0))
    if not math.isfinite(loss):
        warnings.warn(
            f"The loss is {loss} after {steps} steps at lr={lr:g}: lower the learning rate.",
            RuntimeWarning,
            stacklevel=3,
        )
    return ratios, loss
