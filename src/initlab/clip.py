"""Gradient clipping that reports what it did: by value, by norm, by global norm, AGC.

Every clipper changes gradients in place under ``torch.no_grad()`` and returns a
:class:`ClipResult`: the norm before and after, whether clipping fired, and whether the
gradients were non-finite. Nothing prints, and nothing reads a tensor on the host:
the results are tensors (``.item()`` gives a Python number), the decisions are made with
``torch.where`` and ``clamp``, so a clipper inside a CUDA training step does not wait
for the device. The one exception is ``nonfinite="raise"``, which must look at the norm.

**What is clipped.** The first argument is what ``torch.nn.utils.clip_grad_norm_``
takes: parameters (one tensor or an iterable, e.g. ``model.parameters()``), whose
``.grad`` is clipped; parameters whose ``.grad`` is None are skipped. With
``use_grad=False`` the tensors are the gradients themselves (e.g. from
``torch.autograd.grad``). :func:`adaptive_clip_` needs the weights as well, so it always
takes the parameters, and the gradients either from ``.grad`` or from ``grads=``.

**Non-finite gradients.** When a norm is NaN or ±Inf (the gradients hold a NaN or an
Inf, or are so large that their norm overflows), ``nonfinite`` decides:

- ``"raise"``: raise ``RuntimeError`` and change nothing (this reads the norm on the
  host: one device sync per call);
- ``"skip"``: set those gradients to zero and flag them in ``result.nonfinite``. A zero
  gradient still advances momentum and Adam's moments and still applies weight decay,
  so skip the optimizer step where ``result.nonfinite`` is set;
- ``"pass"``: leave them exactly as they were and flag them; clipping does nothing.

**Stacked form.** With ``members=M`` every gradient has a leading dimension of M
independent members (the stacked engine's layout). Norms are taken per member, a
threshold may be a number or a tensor of shape (M,) (one per member), the result fields
have shape (M,), and the non-finite rule applies per member: clipping the stack equals
clipping each member alone. A tensor threshold is checked (finite, > 0) on the host,
which reads it once per call: a sync if it lives on an accelerator.

Example:
    >>> w = torch.nn.Parameter(torch.zeros(2, 3))  # two members, three weights each
    >>> w.grad = torch.tensor([[3.0, 4.0, 0.0], [0.3, 0.4, 0.0]])
    >>> r = clip_by_global_norm_([w], max_norm=1.0, members=2)
    >>> r.norm_before, r.fired
    (tensor([5.0000, 0.5000]), tensor([ True, False]))
    >>> w.grad
    tensor([[0.6000, 0.8000, 0.0000],
            [0.3000, 0.4000, 0.0000]])
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Literal, TypeAlias

import torch
from torch import Tensor

from initlab import _blas
from initlab._validation import check_choice, check_int, check_real, param_message

_blas.strict()  # before MKL first runs: see initlab._blas

__all__ = [
    "ClipResult",
    "NonFinite",
    "Threshold",
    "adaptive_clip_",
    "clip_by_global_norm_",
    "clip_by_norm_",
    "clip_by_value_",
]

#: What to do with a non-finite norm (see the module docstring).
NonFinite: TypeAlias = Literal["raise", "skip", "pass"]
#: A threshold: a number, or with ``members=M`` also a tensor of shape (M,).
Threshold: TypeAlias = float | Tensor
_Tensors: TypeAlias = Tensor | Iterable[Tensor | None]

_NONFINITE: tuple[str, ...] = ("raise", "skip", "pass")
# (gradients as (M, …), per-tensor norms (T, M), total norms (M,), thresholds (M,))
#   -> (the clipped gradients, whether clipping fired per member (M,))
_Rule: TypeAlias = Callable[[list[Tensor], Tensor, Tensor, Tensor], tuple[list[Tensor], Tensor]]


@dataclass(frozen=True, eq=False)  # eq=False: == on tensors is elementwise, not a bool
class ClipResult:
    """What a clipper saw and did; 0-d tensors, or shape (M,) with ``members=M``.

    The tensors live on the first gradient's device; ``.item()`` (or ``.tolist()``)
    gives Python numbers, at the price of one sync.
    """

    norm_before: Tensor  # norm of all gradients together, before clipping
    norm_after: Tensor  # the same norm after clipping (0 for a member zeroed by "skip")
    fired: Tensor  # bool: clipping changed a gradient (False for a non-finite member)
    nonfinite: Tensor  # bool: norm_before was NaN or ±Inf
    per_tensor_norms: list[Tensor] | None = None  # per_tensor=True: each gradient's norm before


# --------------------------------------------------------------------------- helpers


def _norm_over(t: Tensor, norm_type: float, keep: int) -> Tensor:
    """The norm over every dimension after the first ``keep``: shape ``t.shape[:keep]``.

    ``keep=1`` gives the norm per member of a stacked tensor (M, …); ``keep=2`` the
    norm per output unit (M, out, …). With nothing left to reduce, each entry is its own
    norm.
    """
    if t.ndim <= keep:
        return t.abs()
    if t.numel() == 0:  # the inf-norm of an empty dimension is undefined; 0 for all p
        return t.new_zeros(t.shape[:keep])
    norms: Tensor = torch.linalg.vector_norm(t.flatten(keep), norm_type, dim=-1)
    return norms


def _expand(x: Tensor, like: Tensor) -> Tensor:
    """``x`` (shape a prefix of ``like``'s) with trailing size-1 dims, to broadcast."""
    return x.reshape(x.shape + (1,) * (like.ndim - x.ndim))


def _as_stack(t: Tensor, members: int | None) -> Tensor:
    # The plain form is the stacked form with one member: one implementation for both.
    return t.unsqueeze(0) if members is None else t


def _check_options(
    fn: str, nonfinite: object, members: object, per_tensor: object
) -> tuple[str, int | None]:
    choice = check_choice(fn, "nonfinite", nonfinite, _NONFINITE)
    m = None if members is None else check_int(fn, "members", members, low=1)
    if not isinstance(per_tensor, bool):
        raise TypeError(param_message(fn, "per_tensor", "True or False", per_tensor))
    return choice, m


def _check_norm_type(fn: str, value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value == math.inf:
        return math.inf
    return check_real(fn, "norm_type", value, low=1.0)  # inf is the only infinite norm


def _check_threshold(fn: str, name: str, value: object, members: int | None) -> Threshold:
    if not isinstance(value, Tensor):
        return check_real(fn, name, value, low=0.0, low_open=True)
    expected = f"a finite number > 0 or a tensor of shape ({members},) of them"
    if members is None:
        expected = "a finite number > 0 (a tensor of thresholds, one per member, needs members=M)"
        raise TypeError(
            param_message(fn, name, expected, f"a tensor of shape {tuple(value.shape)}")
        )
    if value.shape != (members,) or not value.is_floating_point():
        got = f"a {value.dtype} tensor of shape {tuple(value.shape)}"
        raise ValueError(param_message(fn, name, expected + " (floating point)", got))
    # One host read, documented: a wrong threshold would silently disable clipping. A
    # threshold already on an accelerator is not read back (that would wait for the
    # device): the caller has checked it.
    if value.device.type == "cpu" and not bool((torch.isfinite(value) & (value > 0)).all()):
        raise ValueError(param_message(fn, name, expected, value.tolist()))
    return value


def _check_members(fn: str, tensors: Sequence[Tensor], members: int | None) -> None:
    if members is not None and any(t.ndim == 0 or t.shape[0] != members for t in tensors):
        shapes = [tuple(t.shape) for t in tensors]
        raise ValueError(
            param_message(
                fn,
                "members",
                "the size of every gradient's leading (member) dimension",
                members,
                f"The gradients have shapes {shapes}.",
            )
        )


def _tensor_list(fn: str, name: str, value: object, *, allow_none: bool) -> list[Tensor | None]:
    """One tensor or an iterable of tensors (and None where allowed), as a list."""
    if isinstance(value, Tensor):
        return [value]
    if not isinstance(value, Iterable) or isinstance(value, str | bytes):
        raise TypeError(param_message(fn, name, "a tensor or an iterable of tensors", value))
    items = list(value)
    for item in items:
        if not (isinstance(item, Tensor) or (allow_none and item is None)):
            kind = type(item).__name__
            raise TypeError(param_message(fn, name, "tensors only", f"an item of type {kind}"))
    return [item if isinstance(item, Tensor) else None for item in items]


def _gradients(fn: str, tensors: object, use_grad: object) -> list[Tensor]:
    """The gradients to clip: each tensor's ``.grad`` (None skipped), or the tensors."""
    if not isinstance(use_grad, bool):
        raise TypeError(param_message(fn, "use_grad", "True or False", use_grad))
    listed = _tensor_list(fn, "tensors", tensors, allow_none=not use_grad)
    # A tensor listed twice (shared weights) is clipped once and counted once.
    found = list({id(t): t for t in listed if t is not None}.values())
    if not use_grad:
        return found
    grads = [t.grad for t in found if t.grad is not None]
    if found and not grads and not any(t.requires_grad for t in found):
        warnings.warn(
            f"{fn}: none of the {len(found)} tensors has a .grad or requires grad, so nothing "
            "was clipped. If they are the gradients themselves, pass use_grad=False.",
            UserWarning,
            stacklevel=3,
        )
    return grads


def _raise_if_nonfinite(
    fn: str, bad: Tensor, total: Tensor, members: int | None, norm_type: float
) -> None:
    if not bool(bad.any()):  # the host read that nonfinite="raise" costs
        return
    which = "" if members is None else f" of member(s) {bad.nonzero().flatten().tolist()}"
    values = total[bad].tolist()
    raise RuntimeError(
        f"{fn}: the {norm_type:g}-norm of the gradients{which} is non-finite ({values}), so "
        "they cannot be clipped. Pass nonfinite='skip' to zero them and flag them in "
        "result.nonfinite (then skip the optimizer step), or nonfinite='pass' to leave them "
        "untouched and flag them."
    )


def _clip(
    fn: str,
    grads: list[Tensor],
    threshold: Threshold,
    rule: _Rule,
    *,
    norm_type: float,
    nonfinite: str,
    members: int | None,
    per_tensor: bool,
) -> ClipResult:
    """Measure, clip with ``rule``, handle non-finite members, measure again."""
    m = 1 if members is None else members

    def out(x: Tensor) -> Tensor:
        return x[0] if members is None else x

    if not grads:
        device = threshold.device if isinstance(threshold, Tensor) else None
        zero = torch.zeros(m, device=device)
        no = torch.zeros(m, dtype=torch.bool, device=device)
        return ClipResult(
            out(zero), out(zero.clone()), out(no), out(no.clone()), [] if per_tensor else None
        )

    with torch.no_grad():
        views = [_as_stack(g, members) for g in grads]
        device = views[0].device
        dtype = reduce(torch.promote_types, (v.dtype for v in views))

        def total_norm(tensors: list[Tensor]) -> tuple[Tensor, Tensor]:
            # (M, T), reduced along its contiguous last dim: a member's total is then summed
            # in one order whatever M is (over dim 0 of (T, M), M = 1 rounded otherwise).
            by_member = torch.stack(
                [_norm_over(t, norm_type, 1).to(device, dtype) for t in tensors], dim=1
            )
            return by_member.T, torch.linalg.vector_norm(by_member, norm_type, dim=1)

        norms, before = total_norm(views)  # (T, M), (M,)
        bad = ~torch.isfinite(before)
        if nonfinite == "raise":
            _raise_if_nonfinite(fn, bad, before, members, norm_type)
        if isinstance(threshold, Tensor):
            limit = threshold.to(device, dtype)
        else:  # torch.full, not torch.tensor: no host-to-device copy
            limit = torch.full((m,), threshold, dtype=dtype, device=device)
        clipped, fired = rule(views, norms, before, limit)
        for view, new in zip(views, clipped, strict=True):
            if nonfinite != "raise":
                # Never scale a non-finite member (NaN·c stays NaN): zero it or keep it.
                mask = _expand(bad.to(view.device), view)
                new = (
                    new.masked_fill(mask, 0)
                    if nonfinite == "skip"
                    else torch.where(mask, view, new)
                )
            view.copy_(new)
        _, after = total_norm(views)
    return ClipResult(
        norm_before=out(before),
        norm_after=out(after),
        fired=out(fired & ~bad),
        nonfinite=out(bad),
        per_tensor_norms=[out(n) for n in norms] if per_tensor else None,
    )


# --------------------------------------------------------------------------- clippers


def clip_by_value_(
    tensors: _Tensors,
    clip_value: Threshold,
    *,
    use_grad: bool = True,
    nonfinite: NonFinite = "raise",
    members: int | None = None,
    per_tensor: bool = False,
) -> ClipResult:
    """Clip by value: clamp every gradient component to [−clip_value, clip_value].

    gᵢ ← min(max(gᵢ, −c), c). The same as ``torch.nn.utils.clip_grad_value_``, with
    the non-finite rule of this module (torch clamps ±Inf to ±c and keeps NaN).

    Args:
        tensors: parameters whose ``.grad`` is clipped (None skipped), or with
            ``use_grad=False`` the gradients themselves.
        clip_value: c > 0; with ``members=M`` also a tensor of shape (M,).
        use_grad: clip each tensor's ``.grad`` (True) or the tensors (False).
        nonfinite: ``"raise"``, ``"skip"`` or ``"pass"`` for a non-finite norm.
        members: the size M of the leading member dimension of a stack, or None.
        per_tensor: also return each gradient's norm before clipping.

    Returns:
        A :class:`ClipResult` with global 2-norms; ``fired``: some |gᵢ| > c.

    Raises:
        ValueError: a threshold that is not finite and > 0, a per-member threshold not of
            shape (M,), gradients whose leading dimension is not M, an unknown
            ``nonfinite``.
        TypeError: an argument of the wrong type.
        RuntimeError: a non-finite norm with ``nonfinite="raise"``.

    References:
        Mikolov, *Statistical Language Models Based on Neural Networks*, 2012.

    Example:
        >>> g = torch.tensor([0.5, -3.0, 2.0])
        >>> r = clip_by_value_([g], 1.0, use_grad=False)
        >>> g, bool(r.fired)
        (tensor([ 0.5000, -1.0000,  1.0000]), True)
    """
    fn = "clip_by_value_"
    choice, m = _check_options(fn, nonfinite, members, per_tensor)
    threshold = _check_threshold(fn, "clip_value", clip_value, m)
    grads = _gradients(fn, tensors, use_grad)
    _check_members(fn, grads, m)

    def rule(
        views: list[Tensor], _: Tensor, before: Tensor, c: Tensor
    ) -> tuple[list[Tensor], Tensor]:
        clipped, fired = [], torch.zeros_like(before, dtype=torch.bool)
        for v in views:
            cv = _expand(c.to(v.device, v.dtype), v)  # compare in the gradient's dtype
            clipped.append(torch.clamp(v, min=-cv, max=cv))
            fired |= (_norm_over(v, math.inf, 1) > c.to(v.device, v.dtype)).to(fired.device)
        return clipped, fired

    return _clip(
        fn,
        grads,
        threshold,
        rule,
        norm_type=2.0,
        nonfinite=choice,
        members=m,
        per_tensor=per_tensor,
    )


def clip_by_norm_(
    tensors: _Tensors,
    max_norm: Threshold,
    *,
    norm_type: float = 2.0,
    eps: float = 0.0,
    use_grad: bool = True,
    nonfinite: NonFinite = "raise",
    members: int | None = None,
    per_tensor: bool = False,
) -> ClipResult:
    """Clip each gradient tensor by its own norm (Keras ``clipnorm``).

    g ← g · min(1, max_norm/(‖g‖ + ε)) for each tensor g separately. With the default
    ε = 0 a tensor whose norm exceeds max_norm is rescaled to norm max_norm exactly
    (as ``tf.clip_by_norm``); the others are untouched.

    Args:
        tensors: parameters whose ``.grad`` is clipped (None skipped), or with
            ``use_grad=False`` the gradients themselves.
        max_norm: the largest norm a tensor keeps; with ``members=M`` also a tensor (M,).
        norm_type: p ≥ 1 of the p-norm, or ``math.inf``.
        eps: ε ≥ 0 added to each norm.
        use_grad: clip each tensor's ``.grad`` (True) or the tensors (False).
        nonfinite: ``"raise"``, ``"skip"`` or ``"pass"`` for a non-finite norm; the choice
            applies to all of a member's gradients.
        members: the size M of the leading member dimension of a stack, or None.
        per_tensor: also return each gradient's norm before clipping.

    Returns:
        A :class:`ClipResult` with global p-norms; ``fired``: some tensor was rescaled.

    Raises:
        ValueError: as :func:`clip_by_value_`, and a bad ``norm_type`` or ``eps``.
        TypeError: an argument of the wrong type.
        RuntimeError: a non-finite norm with ``nonfinite="raise"``.

    References:
        Pascanu, Mikolov & Bengio, *On the difficulty of training recurrent neural
        networks*, 2013.

    Example:
        >>> a, b = torch.tensor([3.0, 4.0]), torch.tensor([0.3, 0.4])
        >>> r = clip_by_norm_([a, b], 1.0, use_grad=False, per_tensor=True)
        >>> a, b, r.per_tensor_norms
        (tensor([0.6000, 0.8000]), tensor([0.3000, 0.4000]), [tensor(5.), tensor(0.5000)])
    """
    fn = "clip_by_norm_"
    choice, m = _check_options(fn, nonfinite, members, per_tensor)
    threshold = _check_threshold(fn, "max_norm", max_norm, m)
    p = _check_norm_type(fn, norm_type)
    eps = check_real(fn, "eps", eps, low=0.0)
    grads = _gradients(fn, tensors, use_grad)
    _check_members(fn, grads, m)

    def rule(
        views: list[Tensor], norms: Tensor, _: Tensor, limit: Tensor
    ) -> tuple[list[Tensor], Tensor]:
        coef = torch.clamp(limit / (norms + eps), max=1.0)  # (T, M); ‖g‖ = 0 gives 1
        clipped = [
            v * _expand(c.to(v.device, v.dtype), v) for v, c in zip(views, coef, strict=True)
        ]
        return clipped, (coef < 1).any(dim=0)

    return _clip(
        fn, grads, threshold, rule, norm_type=p, nonfinite=choice, members=m, per_tensor=per_tensor
    )


def clip_by_global_norm_(
    tensors: _Tensors,
    max_norm: Threshold,
    *,
    norm_type: float = 2.0,
    eps: float = 1e-6,
    use_grad: bool = True,
    nonfinite: NonFinite = "raise",
    members: int | None = None,
    per_tensor: bool = False,
) -> ClipResult:
    """Clip by global norm: rescale all gradients together when ‖g‖ > max_norm.

    ‖g‖ is the p-norm of all gradients as one vector (the p-norm of their p-norms), and
    every gradient is multiplied by min(1, max_norm/(‖g‖ + ε)), exactly as
    ``torch.nn.utils.clip_grad_norm_`` (whose ε is 1e-6). So clipping fires when
    ‖g‖ + ε > max_norm, and then the norm after is max_norm · ‖g‖/(‖g‖ + ε), short of
    max_norm by a relative ε/(‖g‖ + ε); for the same reason a second pass rescales by
    max_norm/(norm_after + ε), within a relative ε/max_norm of 1. With ``eps=0`` the norm
    after is max_norm and clipping is idempotent, up to rounding.

    Args:
        tensors: parameters whose ``.grad`` is clipped (None skipped), or with
            ``use_grad=False`` the gradients themselves.
        max_norm: the largest global norm kept; with ``members=M`` also a tensor (M,).
        norm_type: p ≥ 1 of the p-norm, or ``math.inf``.
        eps: ε ≥ 0 added to the norm.
        use_grad: clip each tensor's ``.grad`` (True) or the tensors (False).
        nonfinite: ``"raise"``, ``"skip"`` or ``"pass"`` for a non-finite norm.
        members: the size M of the leading member dimension of a stack, or None.
        per_tensor: also return each gradient's norm before clipping.

    Returns:
        A :class:`ClipResult` with global p-norms; ``fired``: the scale was < 1.

    Raises:
        ValueError: as :func:`clip_by_value_`, and a bad ``norm_type`` or ``eps``.
        TypeError: an argument of the wrong type.
        RuntimeError: a non-finite norm with ``nonfinite="raise"``.

    References:
        Pascanu, Mikolov & Bengio, *On the difficulty of training recurrent neural
        networks*, 2013.

    Example:
        >>> w = torch.nn.Parameter(torch.zeros(3))
        >>> w.grad = torch.tensor([3.0, 4.0, 0.0])
        >>> r = clip_by_global_norm_([w], max_norm=1.0)
        >>> r.norm_before.item(), round(r.norm_after.item(), 4), bool(r.fired)
        (5.0, 1.0, True)
        >>> w.grad
        tensor([0.6000, 0.8000, 0.0000])
    """
    fn = "clip_by_global_norm_"
    choice, m = _check_options(fn, nonfinite, members, per_tensor)
    threshold = _check_threshold(fn, "max_norm", max_norm, m)
    p = _check_norm_type(fn, norm_type)
    eps = check_real(fn, "eps", eps, low=0.0)
    grads = _gradients(fn, tensors, use_grad)
    _check_members(fn, grads, m)

    def rule(
        views: list[Tensor], _: Tensor, before: Tensor, limit: Tensor
    ) -> tuple[list[Tensor], Tensor]:
        # clamp, not `if`: deciding on the host would wait for the device.
        coef = torch.clamp(limit / (before + eps), max=1.0)
        return [v * _expand(coef.to(v.device, v.dtype), v) for v in views], coef < 1

    return _clip(
        fn, grads, threshold, rule, norm_type=p, nonfinite=choice, members=m, per_tensor=per_tensor
    )


def adaptive_clip_(
    parameters: Tensor | Iterable[Tensor],
    clipping: Threshold = 0.01,
    *,
    grads: Iterable[Tensor | None] | None = None,
    eps: float = 1e-3,
    nonfinite: NonFinite = "raise",
    members: int | None = None,
    per_tensor: bool = False,
) -> ClipResult:
    """Adaptive gradient clipping (AGC): clip each unit's gradient relative to its weight.

    For each output unit i (row i of a weight: all dims but the first; a 1-D tensor,
    such as a bias, is one unit), with W*ᵢ = max(‖Wᵢ‖, ε):
    if ‖Gᵢ‖ > λ·W*ᵢ then Gᵢ ← λ·W*ᵢ · Gᵢ/‖Gᵢ‖ (2-norms, λ = ``clipping``). The ε floor
    lets zero-initialized weights move. In the stacked form dim 0 is the member, so a
    unit is dim 1 of a tensor with more than 2 dims, and a member's whole (M, out)
    vector is one unit. The paper leaves the final classifier layer unclipped: pass only
    the parameters to clip.

    Args:
        parameters: the weights, one tensor or an iterable.
        clipping: λ > 0; with ``members=M`` also a tensor (M,).
        grads: the gradients, one per parameter in the same order (None skipped);
            default: each parameter's ``.grad`` (None skipped).
        eps: ε ≥ 0, the floor on a unit's weight norm.
        nonfinite: ``"raise"``, ``"skip"`` or ``"pass"`` for a non-finite gradient norm.
        members: the size M of the leading member dimension of a stack, or None.
        per_tensor: also return each gradient's 2-norm before clipping.

    Returns:
        A :class:`ClipResult` with global 2-norms; ``fired``: some unit was rescaled.

    Raises:
        ValueError: as :func:`clip_by_value_`, a bad ``eps``, a gradient whose shape is
            not its parameter's, or ``grads`` not one per parameter.
        TypeError: an argument of the wrong type.
        RuntimeError: a non-finite norm with ``nonfinite="raise"``.

    References:
        Brock, De, Smith & Simonyan, *High-Performance Large-Scale Image Recognition
        Without Normalization*, 2021.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))  # ‖Wᵢ‖ = 5, 0
        >>> w.grad = torch.tensor([[0.3, 0.4], [0.3, 0.4]])  # ‖Gᵢ‖ = 0.5, 0.5
        >>> r = adaptive_clip_([w], clipping=0.2)  # limits 0.2·5 = 1 and 0.2·0.001
        >>> w.grad
        tensor([[3.0000e-01, 4.0000e-01],
                [1.2000e-04, 1.6000e-04]])
    """
    fn = "adaptive_clip_"
    choice, m = _check_options(fn, nonfinite, members, per_tensor)
    threshold = _check_threshold(fn, "clipping", clipping, m)
    eps = check_real(fn, "eps", eps, low=0.0)
    params = [
        w for w in _tensor_list(fn, "parameters", parameters, allow_none=False) if w is not None
    ]
    if grads is None:
        pairs = [(w, w.grad) for w in params if w.grad is not None]
    else:
        given = _tensor_list(fn, "grads", grads, allow_none=True)
        if len(given) != len(params):
            expected = f"one gradient (or None) per parameter, {len(params)} in all"
            raise ValueError(param_message(fn, "grads", expected, f"{len(given)} of them"))
        pairs = [(w, g) for w, g in zip(params, given, strict=True) if g is not None]
    for w, g in pairs:
        if w.shape != g.shape:
            raise ValueError(
                f"{fn}: every gradient must have its parameter's shape. Got a parameter of "
                f"shape {tuple(w.shape)} with a gradient of shape {tuple(g.shape)}."
            )
    _check_members(fn, [g for _, g in pairs], m)
    weights = [_as_stack(w, m) for w, _ in pairs]

    def rule(
        views: list[Tensor], _: Tensor, before: Tensor, lam: Tensor
    ) -> tuple[list[Tensor], Tensor]:
        clipped, fired = [], torch.zeros_like(before, dtype=torch.bool)
        for w, g in zip(weights, views, strict=True):
            keep = 2 if g.ndim > 2 else 1  # (M, out, …): per unit; (M, out) or (M,): per member
            w_norm = _norm_over(w.detach(), 2.0, keep).to(g.dtype).clamp(min=eps)  # W*
            g_norm = _norm_over(g, 2.0, keep)
            limit = _expand(lam.to(g.device, g.dtype), w_norm) * w_norm
            over = g_norm > limit
            # where, not `if`: no host read; limit/g_norm is only used where g_norm > 0.
            clipped.append(g * _expand(torch.where(over, limit / g_norm, 1.0), g))
            fired |= over.reshape(over.shape[0], -1).any(dim=1).to(fired.device)
        return clipped, fired

    return _clip(
        fn,
        [g for _, g in pairs],
        threshold,
        rule,
        norm_type=2.0,
        nonfinite=choice,
        members=m,
        per_tensor=per_tensor,
    )
