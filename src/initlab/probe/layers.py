"""Which modules carry signal, which φ follows each weight layer, and the blocks.

The probe reads a model as a chain of blocks: a weight layer (Linear, Conv, initlab's
stacked layers) and what follows it up to the next weight layer: batch norm, the
activation φ, reshapes. This module says which modules are which, names φ as the
activation registry (:mod:`initlab.activations`, which the theory reads) names it,
recognises a φ applied functionally (``F.relu(layer(x))``) by the registry's φ, and views
any recorded tensor per member and per unit. Its names are the package's own (not public
API).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import torch
from torch import Tensor, nn

from initlab import activations
from initlab.models import StackedConv, StackedLinear, _Flatten
from initlab.norm import StackedBatchNorm

if TYPE_CHECKING:
    from initlab.probe.stats import _Forward, _Moments

Layout: TypeAlias = Literal["linear", "conv", "stack_linear", "stack_conv"]

_PLAIN_WEIGHT = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)
_STACKED_WEIGHT = (StackedLinear, StackedConv)
# Layers that carry signal through weights of their own but are not a W·x of one matrix:
# each is measured as one layer of the chain (its output, ∂loss/∂output, all its weights
# together), and beside it by its own module (attention, recurrent).
_ATTENTION = (nn.MultiheadAttention,)
_RECURRENT = (nn.RNNBase,)
_EMBEDDING = (nn.Embedding, nn.EmbeddingBag)
_COMPOSITE = _ATTENTION + _RECURRENT
_WEIGHT = _PLAIN_WEIGHT + _STACKED_WEIGHT + _EMBEDDING + _COMPOSITE
# Modules measured whole: the hooks do not look inside (nn.MultiheadAttention calls its
# out_proj functionally, so its hooks would never fire anyway).
_OPAQUE = _STACKED_WEIGHT + _ATTENTION
_BATCH_NORM = (nn.modules.batchnorm._NormBase, StackedBatchNorm)
# Modules that only reshape: the chain of layers continues through them.
_RESHAPE = (nn.Flatten, nn.Unflatten, nn.Identity, _Flatten, nn.Dropout)
# Of those, the ones whose output holds the same values as their input.
_SHAPE_ONLY = (nn.Flatten, nn.Unflatten, nn.Identity, _Flatten)


def _activation_name(module: nn.Module) -> str | None:
    """The registry's name of an activation module, with its parameter where it has one
    ("leaky_relu(0.2)"); None if it is not one, or is at settings its φ does not model."""
    row = _row_of(type(module))
    if row is None:
        return None
    cls, spec = row
    unmodelled = _UNMODELLED.get(cls)
    if unmodelled is not None and unmodelled(module):
        return None
    if spec.param is None:
        return spec.name
    return _bound_name(spec.name, float(getattr(module, spec.param.name)))


def _row_of(kind: type[nn.Module]) -> tuple[type[nn.Module], activations.ActivationSpec] | None:
    """The registry row whose module ``kind`` is (or subclasses), as (its class, the row).
    Kept by class: the hooks ask for every module at every recorded pass."""
    if kind not in _ROWS:
        _ROWS[kind] = next(((c, spec) for c, spec in _NAMED_MODULES if issubclass(kind, c)), None)
    return _ROWS[kind]


def _named_modules() -> tuple[tuple[type[nn.Module], activations.ActivationSpec], ...]:
    """The registry's rows that name the module models build, as (module class, row)."""
    rows = []
    for spec in activations.REGISTRY.values():
        if isinstance(spec.module, type) and issubclass(spec.module, nn.Module):
            rows.append((spec.module, spec))
    return tuple(rows)


_NAMED_MODULES = _named_modules()
_ROWS: dict[type[nn.Module], tuple[type[nn.Module], activations.ActivationSpec] | None] = {}

# A module's settings that its row's φ does not model: the theory has no name for it then.
_UNMODELLED: dict[type[nn.Module], Callable[[Any], bool]] = {
    nn.Hardtanh: lambda m: (m.min_val, m.max_val) != (-1.0, 1.0),  # the row's is [−1, 1]
    # torch's softplus turns into x above βx > threshold; the row's φ is the exact form,
    # 2e-9 from torch's at the default 20.
    nn.Softplus: lambda m: m.threshold != 20.0,
    nn.GELU: lambda m: m.approximate != "none",  # the row's φ is the exact (erf) form
}


@functools.lru_cache(maxsize=64)
def _bound_name(family: str, value: float) -> str:
    """The registry's name of a family at one parameter value (a module's hook asks for
    it at every pass: binding costs more than the lookup).

    The registry writes the value to 6 digits ("leaky_relu(0.123457)"); the forecast
    reads the name back, so a value that 6 digits do not give back is written whole.
    """
    name = activations.REGISTRY[family].bind(value).name
    return name if float(f"{value:g}") == value else f"{family}({value!r})"


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
# comparing a layer's output with the next layer's input, in this order.
_FUNCTIONAL: list[tuple[str, Callable[[Tensor], Tensor]]] = activations.functional_forms(
    ["linear", "relu", "tanh", "sigmoid", "leaky_relu", "gelu", "silu", "elu"]
)


def _infer_activation(h: Tensor, a: Tensor) -> str | None:
    if h.dtype != a.dtype or h.device != a.device:
        # Mixed precision (autocast) changes dtypes between layers: compare in float32
        # at the coarser dtype's precision.
        eps = (
            max(torch.finfo(h.dtype).eps, torch.finfo(a.dtype).eps)
            if h.is_floating_point() and a.is_floating_point()
            else 1e-3
        )
        h, a = h.float(), a.to(h.device).float()
        rtol, atol = 4 * eps, 4 * eps
    else:
        rtol, atol = 1e-5, 1e-6
    for name, phi in _FUNCTIONAL:
        if torch.allclose(phi(h).reshape(-1), a.reshape(-1), rtol=rtol, atol=atol):
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


def _parameters(module: nn.Module) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """A weight layer's weight, its gradient and its bias, as tensors: the module's own
    for Linear, Conv, Embedding and the stacked layers; for attention and recurrent
    layers all weight matrices (and all biases) flattened together, so that ‖∇W‖/‖W‖
    and ‖ΔW‖/‖W‖ read the whole layer. The gradient is None where any is missing."""
    if not isinstance(module, _COMPOSITE):
        weight, bias = module.weight, getattr(module, "bias", None)
        assert isinstance(weight, Tensor)
        return weight, weight.grad, bias if isinstance(bias, Tensor) else None
    weights, biases = [], []
    for name, p in module.named_parameters():
        if "bias" in name:
            biases.append(p)
        elif p.dim() >= 2:
            weights.append(p)
    grads = [p.grad for p in weights]
    weight = torch.cat([p.detach().reshape(-1) for p in weights])
    grad = None if any(g is None for g in grads) else torch.cat([g.reshape(-1) for g in grads])  # type: ignore[union-attr]
    bias = torch.cat([p.detach().reshape(-1) for p in biases]) if biases else None
    return weight, grad, bias


def _output_tensor(module: nn.Module, output: Any) -> Tensor | None:
    """The tensor that carries a layer's signal on: attention's and a recurrent layer's
    first output (the others are weights, h_n, c_n); None where there is none (a
    PackedSequence)."""
    if isinstance(output, Tensor):
        return output
    if isinstance(module, _COMPOSITE) and isinstance(output, tuple) and output:
        first = output[0]
        return first if isinstance(first, Tensor) else None
    return None


def _layout(module: nn.Module) -> Layout:
    if isinstance(module, StackedLinear):
        return "stack_linear"
    if isinstance(module, StackedConv):
        return "stack_conv"
    # Attention, recurrent and embedding outputs hold their units last, as Linear's do.
    flat = (nn.Linear, nn.Bilinear, *_EMBEDDING, *_COMPOSITE)
    return "linear" if isinstance(module, flat) else "conv"


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
    weight, grad, bias = _parameters(module)
    if isinstance(module, _STACKED_WEIGHT):
        return weight.detach(), grad, None if bias is None else bias.detach()
    return (
        weight.detach().unsqueeze(0),
        None if grad is None else grad.unsqueeze(0),
        None if bias is None else bias.detach().unsqueeze(0),
    )


def _fans(module: nn.Module) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight layer: an Embedding is a lookup (fan-in 1); an
    attention layer's projections are E × E; a recurrent layer's W_hh is H × H."""
    if isinstance(module, _EMBEDDING):
        return 1, module.embedding_dim
    if isinstance(module, nn.MultiheadAttention):
        return module.embed_dim, module.embed_dim
    if isinstance(module, nn.RNNBase):
        return module.hidden_size, module.hidden_size
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
