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
_BATCH_NORM = (nn.modules.batchnorm._NormBase, StackedBatchNorm)
# Modules that only reshape: the chain of layers continues through them.
_RESHAPE = (nn.Flatten, nn.Unflatten, nn.Identity, _Flatten, nn.Dropout)


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


@dataclass(eq=False)
class _Block:
    """A weight layer and what follows it up to the next weight layer, as recorded."""

    name: str
    module: nn.Module
    layout: Layout
    members: int
    x: Tensor  # the layer's input
    h: Tensor  # its output
    h_grad: Tensor | None = None
    post: Tensor | None = None  # the activation's output, if an activation module ran
    post_module: nn.Module | None = None
    out: Tensor | None = None  # the block's last output (after φ and any batch norm)
    next_x: Tensor | None = None  # the next weight layer's input
    batch_norm: Literal["before", "after"] | None = None
    bn_direct: bool = False  # batch norm ran directly after the layer
    others: list[str] = field(default_factory=list)  # other modules in the block


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
        self.model = model
        self.thresholds = thresholds if thresholds is not None else Thresholds()
        self.histograms = histograms
        self.forecast = forecast
        self._handles: list[Any] = []
        self._blocks: list[_Block] = []
        self._seen: set[int] = set()
        self._entered: list[tuple[str, nn.Module, tuple[int, ...]]] = []
        self._done = False
        self._clone = any(getattr(m, "inplace", False) for m in model.modules())
        self.loss = math.nan

    # -- hooks
    def __enter__(self) -> Watch:
        self._blocks.clear()
        self._seen.clear()
        self._done = False
        weight_layers = 0
        for name, module in self.model.named_modules():
            stacked = isinstance(module, _STACKED_WEIGHT)
            if next(module.children(), None) is not None and not stacked:
                continue
            if isinstance(module, _PLAIN_WEIGHT + _STACKED_WEIGHT):
                weight_layers += 1
            label = name or type(module).__name__
            self._handles.append(module.register_forward_pre_hook(self._pre_hook(label)))
            self._handles.append(module.register_forward_hook(self._hook(label)))
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

    def _pre_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            shape = tuple(args[0].shape) if args and isinstance(args[0], Tensor) else ()
            self._entered.append((name, module, shape))

        return hook

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if self._entered and self._entered[-1][1] is module:
                self._entered.pop()
            if self._done or id(module) in self._seen or not isinstance(output, Tensor):
                return
            self._seen.add(id(module))
            value = output.detach()
            if self._clone:  # a later in-place activation would overwrite what we keep
                value = value.clone()
            if isinstance(module, _PLAIN_WEIGHT + _STACKED_WEIGHT):
                x = args[0].detach() if args and isinstance(args[0], Tensor) else value
                if self._blocks and self._blocks[-1].next_x is None:
                    self._blocks[-1].next_x = x
                block = _Block(name, module, _layout(module), _members(module), x, value)
                block.out = value
                self._blocks.append(block)
                if output.requires_grad:
                    output.register_hook(self._grad_hook(block))  # type: ignore[no-untyped-call]
                return
            if not self._blocks:
                return
            block = self._blocks[-1]
            if block.next_x is not None:
                return
            if isinstance(module, _BATCH_NORM):
                block.bn_direct = block.out is block.h and block.post is None
                block.batch_norm = "after" if block.post is not None else "before"
            elif _is_activation(module) and block.post is None:
                block.post, block.post_module = value, module
            elif not isinstance(module, _RESHAPE):
                block.others.append(type(module).__name__)
            block.out = value

        return hook

    @staticmethod
    def _grad_hook(block: _Block) -> Callable[[Tensor], None]:
        def hook(grad: Tensor) -> None:
            block.h_grad = grad.detach()

        return hook

    def _culprit(self) -> tuple[str, nn.Module, tuple[int, ...]] | None:
        return self._entered[-1] if self._entered else None

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
        stats = _measure(self._blocks, self.thresholds, self.histograms)
        forecasts, note = (
            _forecast(self._blocks, stats, members) if self.forecast else ([], "not asked for")
        )
        for row in stats:
            del row["weight_ms"], row["bias_ms"]
        probes = []
        for m in range(members):
            layers = [
                LayerStats(
                    **{k: v[m] if isinstance(v, list) else v for k, v in s.items()},
                    forecast_preact_rms=forecasts[m][i][0] if forecasts else None,
                    forecast_grad_rms=forecasts[m][i][1] if forecasts else None,
                )
                for i, s in enumerate(stats)
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
def _directions(samples: int, device: torch.device) -> Tensor:
    g = torch.Generator(device=device).manual_seed(0)
    return torch.randn(samples, 2, generator=g, device=device, dtype=torch.float64)


def _symmetry(h: Tensor, tolerance: float) -> tuple[Tensor, Tensor]:
    """(distinct units, fraction of copies) per member, from h as (M, units, samples).

    Two units compute the same function on the batch when their outputs agree at every
    example. Comparing all pairs costs units²·samples; instead each unit's outputs are
    projected on two random directions and units whose projections agree (relative
    ``tolerance``) are counted as one. Distinct units collide by chance with probability
    about units²·tolerance², negligible at the default 1e-6.
    """
    units, samples = h.shape[1:]
    r = _directions(samples, h.device)
    p = torch.nan_to_num(h.double()) @ r  # (M, units, 2)
    scale = p.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-300)
    order = p[..., 0].argsort(dim=1)
    p = torch.gather(p, 1, order.unsqueeze(-1).expand(-1, -1, 2))
    same = ((p[:, 1:] - p[:, :-1]).abs() <= tolerance * scale).all(dim=-1)
    distinct = units - same.sum(dim=1)
    return distinct, 1.0 - distinct.double() / units


def _saturation(post: Tensor, name: str | None, t: Thresholds) -> Tensor | None:
    """Fraction of φ's outputs in its flat tails, per member; None for a non-saturating φ."""
    if name in ("tanh", "hardtanh"):
        flat = post.abs() > t.tanh_saturation
    elif name == "sigmoid":
        flat = (post < t.sigmoid_saturation) | (post > 1.0 - t.sigmoid_saturation)
    else:
        return None
    return flat.sum(dim=(1, 2), dtype=torch.float64) / flat[0].numel()


def _block_activation(block: _Block) -> tuple[str | None, Tensor | None]:
    """The φ after the layer and its output (from the module, or recognised)."""
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


def _moments(t: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and mean square per member of (M, ...), accumulated in float64 without a copy."""
    n = t[0].numel()
    mean = t.sum(dim=tuple(range(1, t.dim())), dtype=torch.float64) / n
    square = torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1, dtype=torch.float64)
    return mean, square.square() / n


def _std(mean: Tensor, square: Tensor, n: int) -> Tensor:
    """The sample std (n − 1) from the mean and the mean square."""
    return ((square - mean.square()) * (n / max(n - 1, 1))).clamp_min(0.0).sqrt()


@dataclass(eq=False)
class _Views:
    """One block's tensors as (M, units, samples) or (M, samples, units), weights as (M, N)."""

    unit_dim: int  # 1: (M, units, samples); 2: (M, samples, units)
    name: str | None
    h: Tensor
    out: Tensor
    post: Tensor
    g: Tensor | None
    w: Tensor
    wg: Tensor | None
    b: Tensor | None

    def key(self) -> tuple[Any, ...]:
        """Blocks with equal keys are measured together, as one tensor."""
        shapes = [None if v is None else (v.shape, v.dtype) for v in self.tensors()]
        return (self.unit_dim, self.name, self.post is self.out, *shapes)

    def tensors(self) -> list[Tensor | None]:
        return [self.h, self.out, self.post, self.g, self.w, self.wg, self.b]


def _views(block: _Block) -> _Views:
    mm = block.members
    out, unit_dim = _units(block.out if block.out is not None else block.h, block.layout, mm)
    name, post = _block_activation(block)
    weight, grad, bias = _weights(block.module, mm)
    return _Views(
        unit_dim,
        name,
        _units(block.h, block.layout, mm)[0],
        out,
        _units(post, block.layout, mm)[0] if post is not None else out,
        _units(block.h_grad, block.layout, mm)[0] if block.h_grad is not None else None,
        weight.reshape(mm, -1),
        grad.reshape(mm, -1) if grad is not None else None,
        bias.reshape(mm, -1) if bias is not None else None,
    )


def _group_stats(v: _Views, t: Thresholds) -> list[list[float]]:
    """The numbers of :class:`LayerStats`, one row each, per leading index."""
    nan = math.nan
    h_ms = _moments(v.h)[1]
    o_mean, o_ms = _moments(v.out)
    w_mean, w_ms = _moments(v.w)
    missing = torch.full_like(h_ms, nan)
    g_mean, g_ms = _moments(v.g) if v.g is not None else (missing, missing)
    wg_mean, wg_ms = _moments(v.wg) if v.wg is not None else (missing, missing)
    b_ms = _moments(v.b)[1] if v.b is not None else torch.zeros_like(h_ms)
    saturated = _saturation(v.post, v.name, t)
    across = 3 - v.unit_dim  # the samples' dimension
    distinct, _ = _symmetry(v.h if v.unit_dim == 1 else v.h.transpose(1, 2), t.symmetry_tolerance)
    units, n_h, n_w = v.h.shape[v.unit_dim], v.h[0].numel(), v.w.shape[1]
    rows: list[list[float]] = torch.stack(
        [
            h_ms.sqrt(),
            o_mean,
            _std(o_mean, o_ms, v.out[0].numel()),
            saturated if saturated is not None else missing,
            (v.post == 0).all(dim=across).sum(dim=1).double() / units,
            (v.h > 0).all(dim=across).sum(dim=1).double() / units,
            g_ms.sqrt(),
            _std(g_mean, g_ms, n_h),
            _std(w_mean, w_ms, n_w),
            (wg_ms * n_w).sqrt(),
            _std(wg_mean, wg_ms, n_w),
            (w_ms * n_w).sqrt(),
            distinct.double(),
            b_ms,
        ]
    ).tolist()
    return rows


def _measure(blocks: list[_Block], t: Thresholds, histograms: bool) -> list[dict[str, Any]]:
    """Per block, every statistic of :class:`LayerStats` (lists are per member).

    The report runs during training (:class:`Watch`), where each small op's overhead
    counts: layers of the same shape are concatenated and measured by one set of ops
    (a 20-layer MLP costs as many ops as one layer), and all numbers are read at once.
    """
    views = [_views(block) for block in blocks]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, v in enumerate(views):
        groups.setdefault(v.key(), []).append(i)
    numbers: list[list[list[float]]] = [[] for _ in blocks]
    for indices in groups.values():
        first = views[indices[0]]
        if len(indices) == 1:
            joined = first
        else:
            parts = [views[i].tensors() for i in indices]
            cat = [
                None if p[0] is None else torch.cat([x for x in p if x is not None])
                for p in zip(*parts, strict=True)
            ]
            h, out, post, g, w, wg, b = cat
            assert h is not None and out is not None and post is not None and w is not None
            post = out if first.post is first.out else post
            joined = _Views(first.unit_dim, first.name, h, out, post, g, w, wg, b)
        rows = _group_stats(joined, t)
        start = 0
        for i in indices:
            mm = blocks[i].members
            numbers[i] = [row[start : start + mm] for row in rows]
            start += mm
    out_rows = []
    members = max(b.members for b in blocks)
    nan = math.nan
    for i, (block, v) in enumerate(zip(blocks, views, strict=True)):
        mm = block.members
        (rms, a_mean, a_std, sat, dead, positive, g_rms, g_std, w_std) = numbers[i][:9]
        (wg_norm, wg_std, w_norm, distinct_units, b_sq) = numbers[i][9:]
        units = v.h.shape[v.unit_dim]
        g, grad, name, post_u = v.g, v.wg, v.name, v.post
        # A mean square accumulated in float64 is finite exactly when every value is.
        finite = {"h": rms, "∂h": g_rms if g is not None else None, "W": w_norm}
        finite |= {"∂W": wg_norm if grad is not None else None, "b": b_sq}
        fan_in, fan_out = _fans(block.module)
        row: dict[str, Any] = {
            "index": i + 1,
            "name": block.name,
            "kind": type(block.module).__name__,
            "activation": name,
            "batch_norm": block.batch_norm,
            "units": units,
            "fan_in": fan_in,
            "fan_out": fan_out,
            "preact_rms": rms,
            "act_mean": a_mean,
            "act_std": a_std,
            "saturated": sat,
            "dead": dead,
            "always_positive": positive,
            "grad_rms": g_rms,
            "grad_std": g_std,
            "weight_std": w_std,
            "weight_grad_norm": wg_norm,
            "weight_grad_std": wg_std,
            "grad_weight_ratio": [
                0.0 if gn == 0 else (gn / wn if wn > 0 else math.inf)
                for gn, wn in zip(wg_norm, w_norm, strict=True)
            ],
            "update_weight_ratio": [nan] * mm,  # filled in by probe(steps > 0)
            "symmetry": [1.0 - d / units for d in distinct_units],
            "distinct_units": [int(d) for d in distinct_units],
            "weight_ms": [n * n / v.w.shape[1] for n in w_norm],  # for the forecast only
            "bias_ms": b_sq,  # for the forecast only
            "nonfinite": [
                ", ".join(k for k, v in finite.items() if v is not None and not math.isfinite(v[m]))
                for m in range(mm)
            ],
            "act_hist": _histograms(post_u) if histograms else [None] * mm,
            "grad_hist": _histograms(g) if histograms and g is not None else [None] * mm,
        }
        if mm != members:  # a plain layer inside a stack's model: the same for every member
            row = {k: x * members if isinstance(x, list) else x for k, x in row.items()}
        out_rows.append(row)
    return out_rows


# ---------------------------------------------------------------------------- forecast


def _forecast(
    blocks: list[_Block], rows: list[dict[str, Any]], members: int
) -> tuple[list[list[tuple[float, float]]], str]:
    """Per member, per layer, the theory's (RMS of h, RMS of ∂loss/∂h); or why not.

    The weights' and biases' mean squares and the top gradient come from ``rows``, the
    measurements of :func:`_measure`: nothing is computed twice.
    """
    specs_by_member: list[list[meanfield.LayerSpec]] = [[] for _ in range(members)]
    for i, (block, row) in enumerate(zip(blocks, rows, strict=True)):
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
        if i > 0 and blocks[i - 1].out is not None:
            prev = blocks[i - 1].out
            assert prev is not None
            if prev.numel() != block.x.numel():
                return [], f"layer {i + 1} ({block.name}) does not take the previous output"
        for m in range(members):
            try:
                spec = meanfield.LayerSpec(
                    fan_in=row["fan_in"],
                    fan_out=row["fan_out"],
                    weight_var=row["weight_ms"][m],
                    bias_var=row["bias_ms"][m],
                    activation=name,
                    batch_norm=block.batch_norm == "before",
                )
            except ValueError as error:  # non-finite weights
                return [], f"layer {i + 1} ({block.name}) has no forecast: {error}"
            specs_by_member[m].append(spec)
    x2 = _input_second_moment(blocks[0])
    if blocks[-1].h_grad is None:
        return [], "no gradient reached the last layer"
    result = []
    for m in range(members):
        xm = float(x2[m if x2.numel() > 1 else 0])
        gm = rows[-1]["grad_rms"][m] ** 2
        try:
            layers = meanfield.forecast(specs_by_member[m], xm, gm)
        except (ValueError, OverflowError) as error:
            return [], f"the theory has no forecast: {error}"
        # h is the layer's own output, before any batch norm: the theory's a = W x + b.
        result.append(
            [(math.sqrt(f.linear_second_moment), math.sqrt(f.linear_grad_var)) for f in layers]
        )
    return result, ""


def _input_second_moment(block: _Block) -> Tensor:
    """E[x²] of the first layer's input, per member, or one value for a shared input."""
    x, module = block.x, block.module
    if isinstance(module, StackedConv) and x.shape[1] == module.in_channels * block.members:
        return _units(x, "stack_conv", block.members)[0].double().square().mean(dim=(1, 2))
    if isinstance(module, StackedLinear) and x.dim() == 3:
        return x.double().square().mean(dim=(1, 2))
    return x.double().square().mean().reshape(1)


# ------------------------------------------------------------------------------ verdicts


def _factor(values: Sequence[float]) -> float:
    """exp of the least-squares slope of log(values) against depth; 0 when one is 0."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2 or not np.all(np.isfinite(v)):
        return math.nan
    if np.any(v <= 0):
        return 0.0
    slope = np.polyfit(np.arange(len(v)), np.log(v), 1)[0]
    return float(np.exp(slope))


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
        TypeError: model is not an nn.Module; batch is not a tensor or a pair.
        ValueError: a model without parameters or without Linear/Conv layers; a batch with
            NaN/Inf; a batch the model cannot take (the error names the layer and both
            shapes); a loss that is not a scalar; steps > 0 without a loss_fn.

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
    watch = Watch(work, thresholds=thresholds, histograms=histograms, forecast=forecast)
    with watch, _named_failure(watch), torch.enable_grad():
        output = work(x)
        if not isinstance(output, Tensor):
            raise TypeError(
                f"probe needs the model to return a tensor. Got {type(output).__name__}."
            )
        loss = _loss(output, target, loss_fn, seed, isinstance(model, Stack))
        watch._done = True
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
