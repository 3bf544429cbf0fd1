"""Attention, measured: the q, k, v projections, the logits' scale and the softmax's peak.

``nn.MultiheadAttention`` computes its queries, keys and values from ``in_proj_weight``
(or ``q/k/v_proj_weight``) and calls ``out_proj`` functionally, so no weight layer's hook
ever fires inside it: measured as a chain of Linear layers, an attention model whose
projections are N(0, 1) reads healthy. This module measures one call of the module from
what its forward hook sees (the call's inputs and the module's parameters), redoing the
part of its forward that the probe needs with torch's functional ops: never the module's
own forward, nor any hooked module, which would re-enter the probe's hooks.

Per head, the attention logits are s = q·kᵀ/√d (plus the call's additive mask) and the
weights p = softmax(s) over the keys. With independent q and k components of std σ_q,
σ_k, s has std √d·σ_qσ_k/√d = σ_qσ_k, and σ_q = √E·σ_W·rms(x) for an input of width E.
At torch's default (Xavier on the stacked (3E, E) matrix, σ_W = √(2/4E)) and unit
inputs, σ_q = σ_k ≈ 0.71: s has std ≈ 0.5 and the softmax spreads over many keys. With
N(0, 1) projections σ_q = √E, and s has std E (64 at E = 64): it grows with the square
of the weights' scale, the softmax collapses onto one key per query, its gradient
vanishes (∂p/∂s = diag(p) − ppᵀ → 0), and training stalls: "attention entropy collapse"
(Zhai et al. 2023). So the probe reports, per call, averaged over heads, queries and
examples:

- the scale of q, k, v (√E[x²]) and of the projection matrices (their std);
- ``logit_std``: the spread of the logits over the keys of a query, the softmax's
  effective inverse temperature;
- ``entropy``: the softmax's entropy H(p) = −Σ p ln p over the keys, divided by its
  largest value ln n (n the query's unmasked keys): 1 for uniform attention, 0 for
  one-hot;
- ``max_weight``: the largest weight of a query (1 when collapsed, 1/n when uniform).

Masks are applied as torch applies them: ``attn_mask`` (bool, True = may not attend, or
additive float; 2-D for every example or 3-D per example and head), ``key_padding_mask``
(bool or float), ``is_causal`` (where torch uses it in place of ``attn_mask``), the keys
``add_bias_kv`` and ``add_zero_attn`` append. A masked key (True, or an additive value
of at most −10⁴, the finite stand-ins for −∞ that older code uses) does not count: not in
n, not in the logits' spread. Queries with fewer than two unmasked keys have no choice to
make and are left out of all three softmax statistics.

The recomputed output is checked against the module's own (unless dropout was active):
a subclass whose forward computes something else is reported as unseen rather than
measured wrongly.

References:
    Vaswani et al. 2017, "Attention is all you need" (scaled dot-product attention).
    Zhai et al. 2023, "Stabilizing transformer training by preventing attention entropy
    collapse".
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from initlab.probe.results import AttentionStats

__all__ = ["attention_weights", "measure_attention"]

# An additive mask value at or below this masks its key: −∞, and the finite stand-ins
# older code uses (−1e4, −1e9, finfo.min). Softmax gives such a key a weight below e⁻¹⁰⁰⁰⁰.
_MASKED = -1e4

# How far the recomputed output may be from the module's own, relative to the output's
# RMS, before the call is reported as unseen: this, or 8 roundings of the output's dtype
# where that is more (bfloat16, 0.06). A faithful recomputation differs by rounding only
# (~1e-6 in float32, ~1e-2 in bfloat16); a forward of its own differs by order 1.
_OUTPUT_TOLERANCE = 0.02


def attention_weights(module: nn.MultiheadAttention) -> tuple[Tensor, Tensor, Tensor]:
    """The query, key and value projection matrices of an attention module.

    ``nn.MultiheadAttention`` keeps them stacked in ``in_proj_weight`` (3E, E) when the
    keys and values have the model's width, and as ``q_proj_weight``, ``k_proj_weight``,
    ``v_proj_weight`` when ``kdim`` or ``vdim`` differ. Each is returned as a view of the
    module's parameter: filling it in place (under ``no_grad``) initializes that matrix.

    Args:
        module: the attention module.

    Returns:
        (W_q, W_k, W_v): (E, E), (E, kdim), (E, vdim).

    Raises:
        TypeError: ``module`` is not an ``nn.MultiheadAttention``.

    Example:
        >>> attn = nn.MultiheadAttention(8, 2)
        >>> [tuple(w.shape) for w in attention_weights(attn)]
        [(8, 8), (8, 8), (8, 8)]
        >>> _ = torch.nn.init.zeros_(attention_weights(attn)[1])
        >>> bool((attn.in_proj_weight[8:16] == 0).all())
        True
    """
    if not isinstance(module, nn.MultiheadAttention):
        raise TypeError(
            "The 'module' parameter of attention_weights must be an nn.MultiheadAttention. "
            f"Got {type(module).__name__} instead."
        )
    stacked: Tensor | None = module.in_proj_weight  # None where kdim or vdim differ
    if stacked is not None:
        q, k, v = stacked.chunk(3, dim=0)
        return q, k, v
    return module.q_proj_weight, module.k_proj_weight, module.v_proj_weight


@functools.lru_cache(maxsize=32)
def _signature(forward: Callable[..., Any]) -> inspect.Signature:
    # Kept by function: the hook asks at every recorded call.
    return inspect.signature(forward)


def _call_arguments(
    module: nn.MultiheadAttention, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any] | str:
    """The call's arguments by name (defaults filled in), or why they cannot be read.

    Read by the module's own forward's signature, then, for a subclass whose forward
    takes ``*args, **kwargs`` (or other names), by ``MultiheadAttention.forward``'s."""
    whys = []
    for forward in dict.fromkeys([type(module).forward, nn.MultiheadAttention.forward]):
        try:
            bound = _signature(forward).bind(module, *args, **kwargs)
        except TypeError as e:
            whys.append(f"its call's arguments do not fit its forward's signature ({e})")
            continue
        bound.apply_defaults()
        if all(isinstance(bound.arguments.get(n), Tensor) for n in ("query", "key", "value")):
            return dict(bound.arguments)
        whys.append("its forward takes no tensor query, key, value")
    return whys[0]  # why the module's own forward does not fit


def _additive(mask: Tensor | None, name: str, dtype: torch.dtype) -> Tensor | str | None:
    """A bool mask (True = may not attend) or a float mask as the additive mask torch
    makes of it, in ``dtype``; None stays None."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(
            mask, -math.inf
        )
    if mask.is_floating_point():
        return mask.to(dtype)
    return f"its {name} is {mask.dtype}; torch takes only bool or float masks"


def _batch_first(x: Tensor, batched: bool, batch_first: bool) -> Tensor:
    """An input as (N, length, features)."""
    if not batched:
        return x.unsqueeze(0)
    return x if batch_first else x.transpose(0, 1)


# Examples × heads × queries × keys recomputed at most (float32: 128 MiB per tensor): a
# long-context model's fused attention never builds this matrix, and the probe must not
# be the one to run the machine out of memory.
_MAX_SCORES = 2**25


def _pad_key(mask: Tensor) -> Tensor:
    """An additive mask with one more key, unmasked: the key add_bias_kv or add_zero_attn
    appends."""
    return F.pad(mask, (0, 1))


def measure_attention(
    name: str,
    module: nn.MultiheadAttention,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    output: object,
) -> AttentionStats | str:
    """Measures one call of an attention module from what its forward hook saw.

    Recomputes, under ``no_grad`` and with functional ops only, q = x_q W_qᵀ + b_q, k, v,
    and per head the logits s = q·kᵀ/√d + mask and the weights p = softmax(s) over the
    keys, as torch computes them (see the module docstring for the masks). Returns, over
    heads, queries and examples: √E[q²], √E[k²], √E[v²] (every position of the call);
    the std of s over a query's unmasked keys, averaged; the entropy −Σ p ln p / ln n
    (n unmasked keys), averaged; the largest p of a query, averaged. Queries with fewer
    than two unmasked keys are left out of these three. Costs one projection and one
    attention matrix (examples × heads × queries × keys), and the output's recomputation,
    which is checked against ``output``.

    Args:
        name: the module's qualified name in the model.
        module: the attention module.
        args: the positional arguments of the call (as a ``with_kwargs`` hook gets them).
        kwargs: its keyword arguments.
        output: what the call returned: (attention output, weights or None).

    Returns:
        The statistics, or a short reason why the call cannot be measured (for the
        report's list of what the probe could not see).

    References:
        Zhai et al. 2023, "Stabilizing transformer training by preventing attention
        entropy collapse".

    Example:
        >>> attn = nn.MultiheadAttention(16, 2, batch_first=True)
        >>> x = torch.randn(4, 10, 16)
        >>> stats = measure_attention("attn", attn, (x, x, x), {}, attn(x, x, x))
        >>> stats.heads, stats.keys, stats.entropy > 0.9
        (2, 10, True)
        >>> with torch.no_grad():
        ...     _ = attn.in_proj_weight.normal_(0.0, 1.0)
        >>> measure_attention("attn", attn, (x, x, x), {}, attn(x, x, x)).entropy < 0.2
        True
    """
    call = _call_arguments(module, args, kwargs)
    if isinstance(call, str):
        return call
    q, k = call["query"], call["key"]
    if isinstance(q, Tensor) and isinstance(k, Tensor) and q.dim() == 3 and k.dim() == 3:
        n = q.shape[0 if module.batch_first else 1]
        scores = n * module.num_heads * q.shape[-2 if module.batch_first else 0]
        scores *= k.shape[-2 if module.batch_first else 0]
        if scores > _MAX_SCORES:
            return (
                f"its attention matrix is too large to recompute beside the model's "
                f"({scores:,} scores; up to {_MAX_SCORES:,}): probe it on fewer examples"
            )
    # The modes the call ran in decide which of torch's paths it took (see _fast_path).
    modes = (torch.is_grad_enabled(), torch.is_autocast_enabled())
    device = call["query"].device.type
    # Measured in float32 at least, whatever autocast would make of the products.
    autocast = torch.is_autocast_enabled(device)
    with torch.no_grad(), torch.autocast(device, enabled=False) if autocast else nullcontext():
        return _measure(name, module, call, output, modes)


def _measure(
    name: str,
    module: nn.MultiheadAttention,
    call: dict[str, Any],
    output: object,
    modes: tuple[bool, bool],
) -> AttentionStats | str:
    query, key, value = call["query"], call["key"], call["value"]
    if query.is_nested or key.is_nested or value.is_nested:
        return "its inputs are nested tensors"
    if query.dim() not in (2, 3) or key.dim() != query.dim() or value.dim() != query.dim():
        return f"its inputs are {query.dim()}-D; it takes 2-D (unbatched) or 3-D"
    batched = query.dim() == 3
    dtype = torch.promote_types(query.dtype, torch.float32)  # half precision upcast
    heads, width = module.num_heads, module.embed_dim
    d = module.head_dim

    # Projections, as (N, length, E).
    xq, xk, xv = (
        _batch_first(x, batched, module.batch_first).to(dtype) for x in (query, key, value)
    )
    wq, wk, wv = (w.to(dtype) for w in attention_weights(module))
    bias = module.in_proj_bias
    bq, bk, bv = (None, None, None) if bias is None else bias.to(dtype).chunk(3)
    q, k, v = F.linear(xq, wq, bq), F.linear(xk, wk, bk), F.linear(xv, wv, bv)
    rms = [_rms(t) for t in (q, k, v)]
    n, length = q.shape[0], q.shape[1]

    # The masks, as one additive mask broadcast to (N, heads, queries, keys).
    key_padding = _additive(call.get("key_padding_mask"), "key_padding_mask", dtype)
    if isinstance(key_padding, str):
        return key_padding
    attn_mask = _additive(call.get("attn_mask"), "attn_mask", dtype)
    if isinstance(attn_mask, str):
        return attn_mask
    is_causal = bool(call.get("is_causal", False))
    causal = False
    if is_causal and attn_mask is not None:
        # torch's slow path hands is_causal to scaled_dot_product_attention in place of
        # attn_mask when there are no weights to return and no padding mask; otherwise
        # it uses attn_mask. Its fast path always uses attn_mask.
        causal = key_padding is None and not bool(call.get("need_weights", True))
        if causal and _fast_path(module, query, key, value, call, modes):
            causal = False
    # is_causal without attn_mask: the slow path refuses it, so the module ran its fast
    # path, which ignores the hint (no mask).
    if causal:
        attn_mask = None
    masks: list[Tensor] = []
    if attn_mask is not None:
        if attn_mask.dim() == 3:
            if attn_mask.shape[0] != n * heads:
                return f"its 3-D attn_mask has {attn_mask.shape[0]} rows for {n} × {heads} heads"
            masks.append(attn_mask.reshape(n, heads, *attn_mask.shape[1:]))
        else:
            masks.append(attn_mask.reshape(1, 1, *attn_mask.shape[-2:]))
    if key_padding is not None:
        masks.append(key_padding.reshape(-1, 1, 1, key_padding.shape[-1]))

    # The keys add_bias_kv and add_zero_attn append (never masked).
    if module.bias_k is not None and module.bias_v is not None:
        k = torch.cat([k, module.bias_k.to(dtype).expand(n, 1, width)], dim=1)
        v = torch.cat([v, module.bias_v.to(dtype).expand(n, 1, width)], dim=1)
        masks = [_pad_key(m) for m in masks]
    q, k, v = (t.reshape(n, t.shape[1], heads, d).transpose(1, 2) for t in (q, k, v))
    if module.add_zero_attn:
        k, v = F.pad(k, (0, 0, 0, 1)), F.pad(v, (0, 0, 0, 1))
        masks = [_pad_key(m) for m in masks]
    keys = k.shape[2]

    logits = q @ k.transpose(-2, -1) / math.sqrt(d)  # (N, heads, queries, keys)
    if causal:
        masks.append(
            torch.zeros(length, keys, dtype=dtype, device=q.device).masked_fill_(
                torch.ones(length, keys, dtype=torch.bool, device=q.device).triu_(1), -math.inf
            )
        )
    for m in masks:
        if m.shape[-1] != keys:
            return f"its masks cover {m.shape[-1]} keys; the call has {keys}"
    if masks:
        # Which keys are masked is read from the mask, not the logits: collapsed attention
        # has logits beyond −10⁴ of its own.
        mask = functools.reduce(torch.add, masks)
        masked = (mask <= _MASKED).expand_as(logits)
        logits = logits + mask
        unmasked = (~masked).sum(dim=-1).to(dtype)
        kept = logits.masked_fill(masked, 0.0)
        mean = kept.sum(dim=-1, keepdim=True) / unmasked.unsqueeze(-1).clamp(min=1)
        spread = ((kept - mean).masked_fill(masked, 0.0).square().sum(dim=-1) / unmasked).sqrt()
    else:
        unmasked = torch.full(logits.shape[:-1], keys, dtype=dtype, device=q.device)
        spread = logits.std(dim=-1, correction=0)
    weights = logits.softmax(dim=-1)
    choice = unmasked >= 2  # queries with a choice to make
    entropy = torch.special.entr(weights).sum(dim=-1) / unmasked.clamp(min=2).log()
    peak = weights.amax(dim=-1)

    # The output, recomputed, against the module's own.
    mismatch = torch.zeros((), dtype=dtype, device=q.device)
    theirs = output[0] if isinstance(output, tuple) and output else output
    tolerance = _tolerance(theirs)  # in the output's own dtype
    dropped = module.training and module.dropout > 0.0
    if isinstance(theirs, Tensor) and not theirs.is_nested and not dropped:
        ours = (weights @ v).transpose(1, 2).reshape(n, length, width)
        ours = F.linear(ours, module.out_proj.weight.to(dtype), _to(module.out_proj.bias, dtype))
        theirs = _batch_first(theirs, batched, module.batch_first).to(dtype)
        if theirs.shape != ours.shape:
            return f"its output is {tuple(theirs.shape)}, not the attention's {tuple(ours.shape)}"
        # Queries with no unmasked key: torch gives NaN or 0 depending on the path.
        seen = (unmasked > 0).all(dim=1).unsqueeze(-1) & theirs.isfinite() & ours.isfinite()
        gap = (ours - theirs).masked_fill(~seen, 0.0)
        mismatch = _rms(gap) / _rms(theirs.masked_fill(~seen, 0.0)).clamp(min=1e-30)

    numbers = torch.stack(
        [
            *rms,
            _mean_where(spread, choice),
            _mean_where(entropy, choice),
            _mean_where(peak, choice),
            *(w.double().std().to(dtype) for w in attention_weights(module)),
            mismatch,
        ]
    ).tolist()  # one read of the device
    if numbers[-1] > tolerance:
        return (
            f"its output differs from attention recomputed from its parameters "
            f"(by {numbers[-1]:.2g} of its RMS): a forward of its own?"
        )
    return AttentionStats(
        name=name,
        heads=heads,
        keys=keys,
        q_rms=numbers[0],
        k_rms=numbers[1],
        v_rms=numbers[2],
        logit_std=numbers[3],
        entropy=numbers[4],
        max_weight=numbers[5],
        q_weight_std=numbers[6],
        k_weight_std=numbers[7],
        v_weight_std=numbers[8],
    )


def _fast_path(
    module: nn.MultiheadAttention,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    call: dict[str, Any],
    modes: tuple[bool, bool],
) -> bool:
    """Whether the call could have run torch's fused fast path (which ignores is_causal
    and applies attn_mask): the conditions of ``MultiheadAttention.forward`` that this
    measurement can tell. ``modes``: whether grad mode and autocast were on for the call."""
    grad_enabled, autocast = modes
    tensors = [query, key, value, *module.parameters()]
    return (
        torch.backends.mha.get_fastpath_enabled()
        and query.dim() == 3
        and query is key
        and key is value
        and not module.training
        and module.batch_first
        and module.num_heads % 2 == 0
        and module.in_proj_weight is not None
        and module.in_proj_bias is not None
        and module.bias_k is None
        and not module.add_zero_attn
        and query.dtype == module.in_proj_weight.dtype
        and not autocast
        and not (grad_enabled and any(t.requires_grad for t in tensors))
        and not any(
            m is not None and m.is_floating_point()
            for m in (call.get("attn_mask"), call.get("key_padding_mask"))
        )
    )


def _tolerance(output: object) -> float:
    """How far the recomputed output may be from the module's ``output`` (relative RMS)."""
    if isinstance(output, Tensor) and output.is_floating_point():
        return max(_OUTPUT_TOLERANCE, 8 * torch.finfo(output.dtype).eps)
    return _OUTPUT_TOLERANCE


def _rms(t: Tensor) -> Tensor:
    """√E[x²] over every element, as a 0-D tensor."""
    return t.square().mean().sqrt()


def _mean_where(t: Tensor, where: Tensor) -> Tensor:
    """The mean of ``t`` where ``where`` holds; NaN where it never does."""
    # No boolean indexing: it would wait for the device to learn the result's size.
    return torch.where(where, t, 0.0).sum() / where.sum()


def _to(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if t is None else t.to(dtype)
