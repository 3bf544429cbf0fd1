"""Layer-sequential unit-variance (LSUV) initialization, fitted on a batch of data.

LSUV (Mishkin & Matas 2016) gives every Linear and Conv layer of a network an output
variance of 1 on real data: orthonormal weights first, then, layer by layer from the
input, the weight is rescaled until the layer's output variance is 1. It needs no gain
for the activation and no analysis of the architecture: whatever sits between the
layers (ReLU, tanh, pooling, skip connections) is measured, not modelled.

:func:`lsuv` works on any ``nn.Module``: one forward pass with hooks finds the layers and
the order in which they run. On initlab's stacks (:func:`initlab.models.mlp`,
:func:`~initlab.models.cnn`) every member is fitted on its own variance, as if it were
fitted alone. It returns one :class:`LSUVLayer` per layer and changes nothing if it
fails.

Example:
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 10))
    >>> x = torch.randn(512, 16)
    >>> records = lsuv(model, x, generator=torch.Generator().manual_seed(0))
    >>> [(r.name, r.converged) for r in records]
    [('0', True), ('2', True)]
    >>> round(model(x).var(correction=0).item(), 2)
    1.0
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import torch
from torch import Tensor, nn

from initlab._validation import check_choice, check_int, check_real, param_message
from initlab.init import orthogonal_
from initlab.models import StackedConv, StackedLinear

__all__ = ["LSUVLayer", "LayerKind", "lsuv"]

#: The kinds of layer :func:`lsuv` fits.
LayerKind: TypeAlias = Literal["linear", "conv"]
_KINDS: dict[str, tuple[type[nn.Module], ...]] = {
    "linear": (nn.Linear, StackedLinear),
    "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d, StackedConv),
}
_LAYERS: tuple[type[nn.Module], ...] = _KINDS["linear"] + _KINDS["conv"]
_STACKED = (StackedLinear, StackedConv)


@dataclass(frozen=True)
class LSUVLayer:
    """What :func:`lsuv` did to one layer. Per-member fields have one entry per member
    of a stacked layer, and one entry for a plain layer."""

    name: str  # qualified module name in the model, e.g. "layers.0" ("" for the model itself)
    module: str  # the layer's class, e.g. "Linear" or "StackedConv"
    iterations: int  # weight rescalings: 0 if the output was already within tolerance
    variance: tuple[float, ...]  # output variance on the batch at the end, per member
    scale: tuple[float, ...]  # total factor on the weight after the orthonormal draw
    bias_shift: tuple[float, ...]  # total added to the bias (nonzero only with center_bias)
    converged: bool  # every member ended within tolerance of target_var


class _Stop(Exception):
    """Raised by a hook to end a forward pass right after the layer being fitted."""


# --------------------------------------------------------------------------- layers


def _members(layer: nn.Module) -> int:
    return int(layer.members) if isinstance(layer, _STACKED) else 1


def _per_member(layer: nn.Module, out: Tensor) -> Tensor:
    """The layer's output as (M, everything else): one row per member."""
    if isinstance(layer, StackedLinear):  # (M, out, B)
        return out.reshape(layer.members, -1)
    if isinstance(layer, StackedConv):  # (B, M·out, *spatial): channels member-major
        return (
            out.reshape(out.shape[0], layer.members, -1).transpose(0, 1).reshape(layer.members, -1)
        )
    return out.reshape(1, -1)


def _weight(layer: nn.Module) -> Tensor:
    weight = layer.weight
    assert isinstance(weight, Tensor)  # every kind in _LAYERS has one
    return weight


def _bias(layer: nn.Module) -> Tensor | None:
    bias = layer.bias
    return bias if isinstance(bias, Tensor) else None


def _member_view(t: Tensor, layer: nn.Module) -> Tensor:
    """``t`` with a leading member dimension: a plain layer's tensor gets one of size 1."""
    return t if isinstance(layer, _STACKED) else t.unsqueeze(0)


def _moments(layer: nn.Module, out: Tensor) -> tuple[Tensor, Tensor]:
    """Variance (the mean squared deviation, no Bessel correction) and mean per member."""
    flat = _per_member(layer, out.detach())
    flat = flat.to(torch.promote_types(flat.dtype, torch.float32))  # half precision too
    var, mean = torch.var_mean(flat, dim=1, correction=0)
    return var, mean


# --------------------------------------------------------------------------- hooks


@contextmanager
def _hooks(modules: Iterable[nn.Module], hook: Callable[..., Any]) -> Iterator[None]:
    """Forward hooks (with kwargs) on ``modules``, removed whatever happens."""
    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class _State:
    """Every parameter and buffer of a model, saved, so that it can be put back exactly."""

    def __init__(self, model: nn.Module) -> None:
        self.saved: list[tuple[nn.Module, str, Tensor, Tensor, bool]] = []
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                self.saved.append((module, name, p, p.detach().clone(), False))
            for name, b in module.named_buffers(recurse=False):
                self.saved.append((module, name, b, b.detach().clone(), True))

    def restore(self, *, buffers_only: bool = False) -> None:
        with torch.no_grad():
            for module, name, original, copy, is_buffer in self.saved:
                if buffers_only and not is_buffer:
                    continue
                # A forward may rebind a buffer rather than update it in place: put the
                # original tensor back, so that references to it (optimizers) stay valid.
                if getattr(module, name) is not original:
                    setattr(module, name, original)
                original.copy_(copy)


def _execution_order(
    model: nn.Module, batch: Tensor, candidates: dict[nn.Module, str]
) -> list[tuple[str, nn.Module]]:
    """The candidate layers in the order of their first call in one forward pass.

    This is the first pass over the batch, so it is where a batch of the wrong shape,
    dtype or device fails: the innermost module running when the error came is known,
    and the error is explained in terms of that module's input and the batch.
    """
    order: dict[nn.Module, str] = {}
    names = {module: name for name, module in model.named_modules()}
    running: list[tuple[nn.Module, tuple[Any, ...]]] = []

    def record(module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        if module in candidates:
            order.setdefault(module, candidates[module])
        while running and running.pop()[0] is not module:
            pass  # a module whose error its caller caught never reached its hook

    def enter(module: nn.Module, args: Any, kwargs: Any) -> None:
        running.append((module, args))

    handles = [m.register_forward_pre_hook(enter, with_kwargs=True) for m in names]
    try:
        with _hooks(names, record):
            model(batch)
    except Exception as error:
        if not running:
            raise
        module, args = running[-1]
        name = names[module]
        explained = _explain(name, module, args, batch)
        if explained is not None:
            raise explained from error
        error.add_note(
            f"lsuv: raised in module {name or '<model>'!r} ({type(module).__name__}) on "
            f"{_describe(args[0]) if args else 'no positional input'}; the batch is "
            f"{_describe(batch)}."
        )
        raise
    finally:
        for handle in handles:
            handle.remove()
    return [(name, module) for module, name in order.items()]


def _describe(x: object) -> str:
    if isinstance(x, Tensor):
        return f"a tensor of shape {tuple(x.shape)}, dtype {x.dtype}, on {x.device}"
    return f"a {type(x).__name__}"


def _expected_input(module: nn.Module) -> tuple[str, Callable[[Tensor], bool]] | None:
    """The input shape a layer takes, in words, and a test of a tensor against it."""
    if isinstance(module, nn.Linear):
        n = module.in_features
        return (
            f"(N, {n}): its last dimension is the {n} in_features",
            lambda x: x.dim() >= 1 and x.shape[-1] == n,
        )
    if isinstance(module, StackedLinear):
        n, m = module.in_features, module.members
        return (
            f"({n}, B) shared by the members or ({m}, {n}, B)",
            lambda x: x.dim() in (2, 3) and x.shape[-2] == n and (x.dim() == 2 or x.shape[0] == m),
        )
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        c, dims = module.in_channels, len(module.kernel_size)
        spatial = ("L", "H, W", "D, H, W")[dims - 1]
        return (
            f"(N, {c}, {spatial}): {c} in_channels, {dims} spatial dimension(s)",
            lambda x: x.dim() in (dims + 1, dims + 2) and x.shape[-dims - 1] == c,
        )
    if isinstance(module, StackedConv):
        c, m, dims = module.in_channels, module.members, module.dims
        spatial = "L" if dims == 1 else "H, W"
        return (
            f"(N, {c} or {m}·{c}, {spatial})",
            lambda x: x.dim() == dims + 2 and x.shape[1] in (c, m * c),
        )
    return None


def _shares_memory(x: Tensor, batch: Tensor) -> bool:
    """``x`` is the batch or a view of it (the model only reshaped it)."""
    try:
        same = x.untyped_storage().data_ptr() == batch.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # sparse and other storage-less layouts
        return x is batch
    return x.device == batch.device and same


def _explain(
    name: str, module: nn.Module, args: tuple[Any, ...], batch: Tensor
) -> Exception | None:
    """A clear error for a layer that failed on its input, or None if no rule fits."""
    if not args or not isinstance(args[0], Tensor):
        return None
    x = args[0]
    label = f"layer {name or '<model>'!r} ({type(module).__name__})"
    prefix = "lsuv could not run the model on the batch:"
    view = _shares_memory(x, batch)

    def has(what: str, value: object) -> str:
        """Whose property is wrong, in words: the batch's, or the layer input's."""
        if value == getattr(batch, what) and (what != "shape" or view):
            return f"the batch has {what} {value}"
        if view:
            reshaped = f"the batch {tuple(batch.shape)} as the model reshaped it"
            return f"its input, {reshaped}, has {what} {value}"
        return (
            f"its input, computed from the batch ({_describe(batch)}) by the layers before "
            f"it, has {what} {value}"
        )

    if isinstance(module, nn.Embedding):
        if x.dtype in (torch.int64, torch.int32):
            return None
        return TypeError(
            f"{prefix} {label} takes integer ids (torch.int64), but {has('dtype', x.dtype)}. "
            "Fix: pass the ids as integers: batch.long()."
        )
    expected = _expected_input(module)
    if expected is None:
        return None
    weight = module.weight
    assert isinstance(weight, Tensor)
    if x.dtype != weight.dtype:
        if x.dtype.is_floating_point or x.dtype.is_complex:
            fix = f"batch.to({weight.dtype}), or the model to the batch's: model.to({x.dtype})."
        else:
            fix = (
                f"batch.to({weight.dtype}) if these are numbers; integer ids (tokens, "
                "classes) need an nn.Embedding before the first layer."
            )
        return TypeError(
            f"{prefix} {label} computes in {weight.dtype} (its weight's dtype), but "
            f"{has('dtype', x.dtype)}. Fix: {fix}"
        )
    if x.device != weight.device:
        return ValueError(
            f"{prefix} {label} is on {weight.device}, but {has('device', x.device)}. "
            f"Fix: batch.to({str(weight.device)!r})."
        )
    shape_words, fits = expected
    if fits(x):
        return None
    if view:
        fix = "pass a batch of the shape the model was built for, one sample per row."
    else:
        fix = "the layers before it turn the batch into that shape: check the model."
    return ValueError(
        f"{prefix} {label} takes inputs of shape {shape_words}, but "
        f"{has('shape', tuple(x.shape))}. Fix: {fix}"
    )


def _capture(
    model: nn.Module, batch: Tensor, layer: nn.Module, name: str
) -> tuple[tuple[Any, ...], dict[str, Any], Tensor]:
    """The inputs and output of ``layer``'s first call, the forward pass stopped there."""
    seen: list[tuple[tuple[Any, ...], dict[str, Any], Any]] = []

    def stop(module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        if not seen:
            seen.append((args, kwargs, output))
            raise _Stop

    with _hooks([layer], stop), suppress(_Stop):
        model(batch)
    if not seen:
        raise RuntimeError(
            f"lsuv: layer {name!r} ran in the first forward pass but not in a later one. "
            "LSUV needs a forward pass that calls the same layers every time: fix the "
            "model's control flow (e.g. no random layer drop) while it runs."
        )
    args, kwargs, output = seen[0]
    if not isinstance(output, Tensor):
        raise TypeError(
            f"lsuv: layer {name!r} returned {type(output).__name__}, not a tensor; a forward "
            "hook on it probably changes its output. Remove the hook while lsuv runs."
        )
    return args, kwargs, output


# --------------------------------------------------------------------------- arguments


def _selector(include: object) -> Callable[[str, nn.Module], bool]:
    fn = "lsuv"
    if include is None:
        return lambda name, module: True
    if callable(include) and not isinstance(include, type):
        return lambda name, module: bool(include(name, module))
    kinds = [include] if isinstance(include, str) else include
    if not isinstance(kinds, Iterable):
        raise TypeError(
            param_message(fn, "include", "'linear', 'conv', a list of them, or a callable", include)
        )
    types: tuple[type[nn.Module], ...] = ()
    for kind in kinds:
        types += _KINDS[check_choice(fn, "include", kind, _KINDS)]
    return lambda name, module: isinstance(module, types)


def _generators(
    generator: object, layers: Sequence[tuple[str, nn.Module]]
) -> list[torch.Generator | None]:
    """One generator (or None) per member index; a single one is shared by all members."""
    fn = "lsuv"
    members = max(_members(layer) for _, layer in layers)
    expected = "a torch.Generator, one per member of a stack, or None"
    if generator is None or isinstance(generator, torch.Generator):
        gens: list[torch.Generator | None] = [generator] * members
    elif isinstance(generator, Sequence) and all(isinstance(g, torch.Generator) for g in generator):
        gens = list(generator)
        sizes = {_members(layer) for _, layer in layers if isinstance(layer, _STACKED)}
        if sizes != {len(gens)} and not (not sizes and len(gens) == 1):
            raise ValueError(
                param_message(
                    fn,
                    "generator",
                    f"one generator per member ({' or '.join(map(str, sorted(sizes))) or 1})",
                    f"{len(gens)} generators",
                    "Pass one generator for all members, or exactly one per member.",
                )
            )
    else:
        raise TypeError(param_message(fn, "generator", expected, generator))
    device = _weight(layers[0][1]).device
    for g in gens:
        if g is not None and g.device.type != device.type:
            raise ValueError(
                f"The generator passed to lsuv is on {g.device} but the model is on {device}. "
                f"Create it there: torch.Generator(device='{device}')."
            )
    return gens


def _check_batch(batch: object) -> Tensor:
    fn = "lsuv"
    if not isinstance(batch, Tensor):
        raise TypeError(
            param_message(
                fn,
                "batch",
                "a torch.Tensor the model takes as its one input",
                type(batch).__name__,
                "For a (x, y) pair from a DataLoader pass x.",
            )
        )
    if batch.is_meta:
        raise ValueError(
            param_message(
                fn,
                "batch",
                "a tensor with data (LSUV measures variances on it)",
                "a meta tensor",
                "Pass real samples, e.g. a few hundred from the training data.",
            )
        )
    if batch.numel() == 0:
        raise ValueError(
            param_message(fn, "batch", "a non-empty tensor", f"shape {tuple(batch.shape)}")
        )
    if (batch.is_floating_point() or batch.is_complex()) and not bool(torch.isfinite(batch).all()):
        bad = int((~torch.isfinite(batch)).sum())
        raise ValueError(
            param_message(
                fn,
                "batch",
                "finite",
                f"a tensor with {bad} NaN or infinite entries",
                "Clean or normalize the data first.",
            )
        )
    return batch


# --------------------------------------------------------------------------- fitting


def _fit(
    layer: nn.Module,
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    out: Tensor,
    target_var: float,
    tolerance: float,
    max_iter: int,
    center_bias: bool,
) -> tuple[LSUVLayer, list[str]]:
    """Rescale one layer's weight, per member, until its output variance is on target.

    The layer's input does not depend on its own weight, so each rescaling re-runs only
    this layer on the input captured from the truncated forward pass.
    """
    members = _members(layer)
    weight, bias = _weight(layer), _bias(layer)
    scale = [1.0] * members
    shift = [0.0] * members
    iterations = 0
    while True:
        var_t, mean_t = _moments(layer, out)
        var = var_t.tolist()
        if not all(math.isfinite(v) for v in var):
            raise RuntimeError(
                f"lsuv: the output of layer {name!r} is not finite (variance {var}). "
                "Check the layers before it, or fit in float32 rather than half precision."
            )
        if center_bias and bias is not None:
            # A constant shift of every output leaves their variance as it is.
            _member_view(bias, layer).sub_(mean_t.to(bias.dtype).view(members, 1))
            shift = [s - mu for s, mu in zip(shift, mean_t.tolist(), strict=True)]
        pending = [abs(v - target_var) > tolerance and v > 0 for v in var]
        if not any(pending) or iterations == max_iter:
            break
        factor = [
            math.sqrt(target_var / v) if p else 1.0 for v, p in zip(var, pending, strict=True)
        ]
        w = _member_view(weight, layer)
        w.mul_(torch.tensor(factor, dtype=w.dtype, device=w.device).view(-1, *[1] * (w.dim() - 1)))
        scale = [s * f for s, f in zip(scale, factor, strict=True)]
        iterations += 1
        out = layer(*args, **kwargs)
    problems = []
    for m, v in enumerate(var):
        if abs(v - target_var) <= tolerance:
            continue
        who = f"{name or '<model>'}" + (f"[member {m}]" if isinstance(layer, _STACKED) else "")
        if v == 0:
            problems.append(f"{who}: output variance 0, its input carries no signal")
        else:
            problems.append(f"{who}: variance {v:.3g} after max_iter={max_iter} rescalings")
    record = LSUVLayer(
        name=name,
        module=type(layer).__name__,
        iterations=iterations,
        variance=tuple(var),
        scale=tuple(scale),
        bias_shift=tuple(shift),
        converged=not problems,
    )
    return record, problems


def lsuv(
    model: nn.Module,
    batch: Tensor,
    *,
    target_var: float = 1.0,
    tolerance: float = 0.1,
    max_iter: int = 10,
    orthogonal: bool = True,
    center_bias: bool = False,
    include: LayerKind | Iterable[LayerKind] | Callable[[str, nn.Module], bool] | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> list[LSUVLayer]:
    """Layer-sequential unit-variance initialization of every Linear and Conv layer.

    First every layer's weight W is drawn orthonormal (:func:`initlab.init.orthogonal_`;
    a conv weight as an out × in·∏k matrix). Then, layer by layer in the order the
    forward pass calls them, with B the layer's output on ``batch``::

        while |Var(B) − target_var| > tolerance and fewer than max_iter rescalings:
            W ← W · √(target_var / Var(B))

    Var is the mean squared deviation over every element of the output (all samples,
    units and positions), as in the paper. So a layer fed a constant input reaches the
    target too if that input varies over units: the spread is then across units, not
    samples. A layer with a bias may need several rescalings; without one, one
    rescaling is exact. With ``center_bias=True`` the bias is also shifted by the
    output's mean (one number over all elements) at every measurement, so the output
    ends with mean 0: a common variant; the paper leaves biases alone.

    **Any module.** The layers and their order come from one forward pass with hooks:
    layers in dicts, branches or custom ``forward`` methods are found, and a layer
    never called is left alone (with a warning). A layer called more than once per pass
    (weight sharing) is fitted on its first call. Each layer is fitted on its input from
    one forward pass stopped right after it (a hook raises a private exception), so a
    net of L layers costs L + 1 forward passes, most of them truncated, plus the
    rescalings, which re-run only the layer itself.

    **Stacks.** A :class:`~initlab.models.StackedLinear` or
    :class:`~initlab.models.StackedConv` is fitted per member: each member's variance
    (over its own part of the output) sets its own scale, so member m ends as
    ``lsuv(to_module(stack, m), ...)`` would leave it, given the same orthonormal draw
    (equal up to the rounding of batched products: ~1e-15 relative in float64).
    The draws go member by member: member 0's weights of every layer in execution
    order, then member 1's, … from one ``generator``; pass one generator per member
    (``generator=[g0, g1, …]``) and member m draws from its own, exactly as that member
    alone with ``generator=gm`` (plain layers in a model with stacks draw from the first).

    **State.** The forward passes run under ``torch.no_grad()`` in the model's current
    mode (train or eval; dropout in train mode makes the variances noisy). Buffers are
    put back after every pass, so batch-norm running statistics are not changed by
    LSUV's passes. If anything raises, ``KeyboardInterrupt`` included, every parameter
    and buffer is restored bit for bit before the exception propagates. The saved copy
    costs as much memory as the model's parameters and buffers.

    Args:
        model: any ``nn.Module`` with at least one ``nn.Linear``, ``nn.Conv1d/2d/3d``,
            ``StackedLinear`` or ``StackedConv``; ``model(batch)`` must run.
        batch: one input batch, e.g. a few hundred samples of the training data.
        target_var: the output variance to reach.
        tolerance: how far from ``target_var`` a variance may end, > 0.
        max_iter: the most rescalings per layer, ≥ 1.
        orthogonal: draw orthonormal weights first (the paper's pre-init); False
            rescales the weights the layers have.
        center_bias: also shift each layer's bias so that its output has mean 0.
        include: which layers to fit: ``"linear"``, ``"conv"``, a list of them, or a
            callable ``(qualified_name, module) -> bool`` asked about each Linear/Conv
            layer. Default: all of them.
        generator: the generator of the orthonormal draws, or one per member of a stack.

    Returns:
        One :class:`LSUVLayer` per fitted layer, in execution order.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, ``batch`` not a tensor, a
            parameter of the wrong type, or a batch whose dtype the first layer it reaches
            cannot take (integer ids into a Linear, float32 into a float64 model, floats
            into an Embedding): the message names the layer, its dtype and the batch's.
        ValueError: no Linear/Conv layer (or none selected, or none called), a batch that
            is empty, not finite, on the meta device, or of a shape the layer it reaches
            cannot take (the message names the layer and the input shape it takes, e.g.
            (N, 2) for ``nn.Linear(2, …)``), a model on the meta device, a layer not yet
            materialized (Lazy) or whose weight is computed (a parametrization,
            weight_norm), a bad parameter value, or generators that do not match the
            members.
        RuntimeError: a layer's output is not finite, or the forward pass calls
            different layers on different passes. The model is then unchanged, as after
            any exception. Any other error of the model's own forward pass propagates as
            it is, with a note naming the module that raised it and its input.

    Warns:
        UserWarning: a layer (or member) that ends outside the tolerance, because its
            output variance is 0 (its input carries no signal, e.g. dead ReLUs before it)
            or ``max_iter`` ran out; and selected layers that the forward pass never calls.

    References:
        Mishkin & Matas, *All you need is a good init*, ICLR 2016.

    Example:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(288, 2))
        >>> x = torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> records = lsuv(model, x, generator=torch.Generator().manual_seed(0))
        >>> [(r.name, r.module, round(r.variance[0], 1)) for r in records]
        [('0', 'Conv2d', 1.0), ('3', 'Linear', 1.0)]
    """
    fn = "lsuv"
    if not isinstance(model, nn.Module):
        raise TypeError(param_message(fn, "model", "an nn.Module", type(model).__name__))
    batch = _check_batch(batch)
    meta = [n for n, p in model.named_parameters() if p.is_meta]
    if meta:
        raise ValueError(
            f"lsuv measures output variances, which a model on the meta device has none of "
            f"(parameter {meta[0]!r} is on meta). Fix: materialize it first, e.g. "
            "model.to_empty(device='cpu') and an init, then call lsuv."
        )
    target_var = check_real(fn, "target_var", target_var, low=0.0, low_open=True)
    tolerance = check_real(fn, "tolerance", tolerance, low=0.0, low_open=True)
    max_iter = check_int(fn, "max_iter", max_iter, low=1)
    for flag, value in (("orthogonal", orthogonal), ("center_bias", center_bias)):
        if not isinstance(value, bool):
            raise TypeError(param_message(fn, flag, "True or False", value))
    selected = _selector(include)

    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, _LAYERS)]
    if not layers:
        raise ValueError(
            param_message(
                fn,
                "model",
                "a module containing nn.Linear, nn.Conv1d/2d/3d, StackedLinear or "
                "StackedConv layers",
                f"{type(model).__name__} with none",
                "LSUV rescales those layers' weights; other layers are left to their init.",
            )
        )
    chosen = {m: n for n, m in layers if selected(n, m)}
    if not chosen:
        raise ValueError(
            param_message(
                fn,
                "include",
                "a selection of at least one of the model's layers "
                f"({', '.join(n or '<model>' for n, _ in layers[:8])})",
                include,
            )
        )
    for module, name in chosen.items():
        own = dict(module.named_parameters(recurse=False))
        if not isinstance(own.get("weight"), nn.Parameter):
            raise ValueError(
                f"lsuv: the weight of layer {name!r} is computed from other parameters "
                "(a parametrization, weight_norm or spectral_norm), so rescaling it would "
                "not last. Apply lsuv before adding the parametrization, or exclude the "
                "layer with include=."
            )
        for pname, p in own.items():
            if isinstance(p, nn.parameter.UninitializedParameter):
                raise ValueError(
                    f"lsuv: {name}.{pname} is not materialized yet (a Lazy module). "
                    "Run one forward pass first."
                )
    gens = _generators(generator, [(n, m) for m, n in chosen.items()])

    state = _State(model)
    try:
        with torch.no_grad():
            order = _execution_order(model, batch, chosen)
            state.restore(buffers_only=True)
            if not order:
                raise ValueError(
                    f"lsuv: the forward pass calls none of the {len(chosen)} selected layers "
                    f"({', '.join(list(chosen.values())[:8])}). Pass the batch the model "
                    "takes, or check include."
                )
            if orthogonal:
                for m in range(len(gens)):
                    for _, layer in order:
                        if m < _members(layer):
                            orthogonal_(_member_view(_weight(layer), layer)[m], generator=gens[m])
            records: list[LSUVLayer] = []
            problems: list[str] = []
            for name, layer in order:
                args, kwargs, out = _capture(model, batch, layer, name)
                state.restore(buffers_only=True)
                record, trouble = _fit(
                    layer, name, args, kwargs, out, target_var, tolerance, max_iter, center_bias
                )
                records.append(record)
                problems += trouble
        # The warnings are raised inside the try: where warnings are errors, the model
        # is restored like after any other exception.
        if problems:
            warnings.warn(
                f"lsuv could not bring {len(problems)} layer(s) to variance "
                f"{target_var:g} ± {tolerance:g}: {'; '.join(problems[:8])}"
                f"{' …' if len(problems) > 8 else ''}. Fix: a layer whose input is all "
                "zeros has dead ReLUs before it (try center_bias=True or smaller biases); "
                "otherwise raise max_iter or tolerance.",
                UserWarning,
                stacklevel=2,
            )
        called = {layer for _, layer in order}
        missed = [name or "<model>" for layer, name in chosen.items() if layer not in called]
        if missed:
            warnings.warn(
                f"lsuv: {len(missed)} selected layer(s) never ran in the forward pass and "
                f"were left as they were: {', '.join(missed[:8])}"
                f"{' …' if len(missed) > 8 else ''}.",
                UserWarning,
                stacklevel=2,
            )
    except BaseException:
        state.restore()
        raise
    return records
