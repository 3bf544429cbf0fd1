"""The attention measurement against torch's own attention weights.

The references are independent of :mod:`initlab.probe.attention`: the softmax weights
are the module's own (``need_weights=True, average_attn_weights=False``), the
projections are ``F.linear`` with the module's parameters sliced here, and which keys are
masked is read from the masks the tests build. The logits' spread is read from the
module's weights too: log p = s − logsumexp(s), so the std of log p over a query's keys is
that of s. Float64 modules keep the comparisons at rounding level (tolerance 1e-9).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from initlab.probe.attention import attention_weights, measure_attention
from initlab.probe.results import AttentionStats

D64 = torch.float64


def measure(module: nn.MultiheadAttention, *args: Any, **kwargs: Any) -> AttentionStats | str:
    """Calls the module as a model would, then measures that call as Watch's hook does."""
    output = module(*args, **kwargs)
    return measure_attention("attn", module, args, kwargs, output)


def stats(module: nn.MultiheadAttention, *args: Any, **kwargs: Any) -> AttentionStats:
    result = measure(module, *args, **kwargs)
    assert isinstance(result, AttentionStats), result
    return result


def reference(
    module: nn.MultiheadAttention,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    allowed: Tensor | None = None,
    **masks: Any,
) -> dict[str, float]:
    """entropy, max_weight and logit_std from the module's own per-head weights.

    ``allowed`` (broadcast to (N, heads, queries, keys)) says which keys a query may
    attend to, as the test built its masks; None: all."""
    _, w = module(query, key, value, need_weights=True, average_attn_weights=False, **masks)
    assert w is not None
    w = w.detach().double()
    if w.dim() == 3:  # unbatched
        w = w.unsqueeze(0)
    ok = torch.ones_like(w, dtype=torch.bool) if allowed is None else allowed.expand_as(w)
    n = ok.sum(dim=-1).double()
    choice = n >= 2
    p = w.where(ok, 0.0)
    entropy = -(p * p.clamp(min=1e-300).log()).sum(dim=-1) / n.clamp(min=2).log()
    logp = w.clamp(min=1e-300).log().where(ok, 0.0)
    mean = logp.sum(dim=-1, keepdim=True) / n.clamp(min=1).unsqueeze(-1)
    spread = ((logp - mean).where(ok, 0.0).square().sum(dim=-1) / n.clamp(min=1)).sqrt()
    return {
        "entropy": float(entropy[choice].mean()),
        "max_weight": float(w.amax(dim=-1)[choice].mean()),
        "logit_std": float(spread[choice].mean()),
    }


def assert_matches(s: AttentionStats, ref: dict[str, float], tol: float = 1e-9) -> None:
    for name, value in ref.items():
        assert getattr(s, name) == pytest.approx(value, rel=tol, abs=tol), name


def mha(embed: int = 16, heads: int = 4, **kwargs: Any) -> nn.MultiheadAttention:
    return nn.MultiheadAttention(embed, heads, dtype=D64, **kwargs)


# -- the projection matrices


def test_attention_weights_are_the_thirds_of_in_proj_weight_as_views() -> None:
    attn = nn.MultiheadAttention(8, 2)
    q, k, v = attention_weights(attn)
    assert torch.equal(torch.cat([q, k, v]), attn.in_proj_weight)
    with torch.no_grad():
        v.fill_(3.0)
    assert bool((attn.in_proj_weight[16:] == 3.0).all())
    assert bool((attn.in_proj_weight[:16] != 3.0).all())


def test_attention_weights_are_the_separate_matrices_when_kdim_or_vdim_differ() -> None:
    attn = nn.MultiheadAttention(8, 2, kdim=5, vdim=3)
    q, k, v = attention_weights(attn)
    assert (q, k, v) == (attn.q_proj_weight, attn.k_proj_weight, attn.v_proj_weight)
    assert [tuple(w.shape) for w in (q, k, v)] == [(8, 8), (8, 5), (8, 3)]


def test_attention_weights_rejects_other_modules() -> None:
    with pytest.raises(TypeError, match="must be an nn.MultiheadAttention. Got Linear instead"):
        attention_weights(nn.Linear(3, 3))  # type: ignore[arg-type]


# -- q, k, v against F.linear by hand


@pytest.mark.parametrize("separate", [False, True])
def test_q_k_v_rms_and_weight_std_are_those_of_the_projections(separate: bool) -> None:
    kdim, vdim = (6, 10) if separate else (None, None)
    attn = mha(16, 4, kdim=kdim, vdim=vdim, batch_first=True)
    with torch.no_grad():  # biases away from torch's 0 so that they count
        attn.in_proj_bias.normal_()
    x = torch.randn(3, 7, 16, dtype=D64)
    key = torch.randn(3, 5, kdim or 16, dtype=D64)
    value = torch.randn(3, 5, vdim or 16, dtype=D64)
    if separate:
        wq, wk, wv = attn.q_proj_weight, attn.k_proj_weight, attn.v_proj_weight
    else:
        wq, wk, wv = attn.in_proj_weight[:16], attn.in_proj_weight[16:32], attn.in_proj_weight[32:]
    b = attn.in_proj_bias
    with torch.no_grad():
        q, k, v = F.linear(x, wq, b[:16]), F.linear(key, wk, b[16:32]), F.linear(value, wv, b[32:])
    s = stats(attn, x, key, value)
    for got, want in ((s.q_rms, q), (s.k_rms, k), (s.v_rms, v)):
        assert got == pytest.approx(float(want.square().mean().sqrt()), rel=1e-12)
    for got, w in ((s.q_weight_std, wq), (s.k_weight_std, wk), (s.v_weight_std, wv)):
        assert got == pytest.approx(float(w.detach().std()), rel=1e-12)
    assert (s.name, s.heads, s.keys) == ("attn", 4, 5)


# -- entropy, max_weight, logit_std against the module's own weights


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("need_weights", [False, True])
def test_softmax_statistics_match_torch_without_masks(
    batch_first: bool, need_weights: bool
) -> None:
    attn = mha(batch_first=batch_first)
    shape = (3, 9, 16) if batch_first else (9, 3, 16)
    x = torch.randn(shape, dtype=D64)
    s = stats(attn, x, x, x, need_weights=need_weights)
    assert_matches(s, reference(attn, x, x, x))
    assert s.keys == 9


def test_cross_attention_with_kdim_and_vdim_matches_torch() -> None:
    attn = mha(16, 2, kdim=5, vdim=7)
    query = torch.randn(4, 2, 16, dtype=D64)  # (L, N, E): batch_first=False
    key, value = torch.randn(11, 2, 5, dtype=D64), torch.randn(11, 2, 7, dtype=D64)
    s = stats(attn, query, key, value)
    assert_matches(s, reference(attn, query, key, value))
    assert s.keys == 11


def test_unbatched_input_matches_torch() -> None:
    attn = mha(batch_first=True)  # batch_first does not apply to 2-D inputs
    x = torch.randn(6, 16, dtype=D64)
    padding = torch.tensor([False, False, True, False, True, False])
    s = stats(attn, x, x, x, key_padding_mask=padding)
    assert_matches(s, reference(attn, x, x, x, ~padding, key_padding_mask=padding))


def _masks(n: int, heads: int, length: int, kind: str) -> tuple[dict[str, Tensor], Tensor]:
    """Masks of one kind, and which keys they leave a query: (N, heads, L, S) bool."""
    g = torch.Generator().manual_seed(7)
    allowed = torch.ones(n, heads, length, length, dtype=torch.bool)
    masks: dict[str, Tensor] = {}
    if kind in ("bool_2d", "both"):
        m = torch.rand(length, length, generator=g) < 0.4
        m.fill_diagonal_(False)  # every query keeps a key
        masks["attn_mask"] = m
        allowed &= ~m
    if kind == "float_2d_bias":  # a finite additive bias (ALiBi-like): no key is masked
        i = torch.arange(length, dtype=D64)
        masks["attn_mask"] = -0.5 * (i[:, None] - i[None, :]).abs()
    if kind == "float_3d":  # −inf for some keys, −1e9 (a finite stand-in) for others
        m = torch.zeros(n * heads, length, length, dtype=D64)
        r = torch.rand(n * heads, length, length, generator=g)
        m[r < 0.2] = -math.inf
        m[(r >= 0.2) & (r < 0.35)] = -1e9
        m[r > 0.9] = 0.7  # and a finite bias on others
        m.diagonal(dim1=1, dim2=2).zero_()
        masks["attn_mask"] = m
        allowed &= (m > -1e4).reshape(n, heads, length, length)
    if kind in ("padding", "both", "padding_float"):
        p = torch.zeros(n, length, dtype=torch.bool)
        p[0, -3:] = True
        p[1, 1:] = True  # example 1 keeps a single key: its queries have no choice
        if kind == "padding_float":
            masks["key_padding_mask"] = torch.zeros(n, length, dtype=D64).masked_fill(p, -math.inf)
        else:
            masks["key_padding_mask"] = p
        allowed &= ~p[:, None, None, :]
    return masks, allowed


@pytest.mark.parametrize(
    "kind", ["bool_2d", "float_2d_bias", "float_3d", "padding", "padding_float", "both"]
)
@pytest.mark.parametrize("batch_first", [False, True])
def test_softmax_statistics_match_torch_with_masks(kind: str, batch_first: bool) -> None:
    n, heads, length = 3, 4, 8
    attn = mha(16, heads, batch_first=batch_first)
    x = torch.randn((n, length, 16) if batch_first else (length, n, 16), dtype=D64)
    masks, allowed = _masks(n, heads, length, kind)
    s = stats(attn, x, x, x, need_weights=False, **masks)
    assert_matches(s, reference(attn, x, x, x, allowed, **masks))


def test_queries_without_a_choice_are_left_out() -> None:
    # Example 1 keeps one key (weight 1, entropy 0): counted, it would pull max_weight up.
    n, heads, length = 2, 2, 5
    attn = mha(8, heads, batch_first=True)
    with torch.no_grad():  # all-zero q·k: uniform attention over the allowed keys
        attn.in_proj_weight.zero_()
    x = torch.randn(n, length, 8, dtype=D64)
    padding = torch.zeros(n, length, dtype=torch.bool)
    padding[0, 3:] = True
    padding[1, 1:] = True
    s = stats(attn, x, x, x, key_padding_mask=padding)
    assert s.entropy == pytest.approx(1.0, abs=1e-12)
    assert s.max_weight == pytest.approx(1 / 3, abs=1e-12)  # example 0's three keys only
    assert s.logit_std == 0.0


def test_every_query_without_a_choice_gives_nan() -> None:
    attn = mha(8, 2, batch_first=True)
    x = torch.randn(2, 1, 8, dtype=D64)  # one key
    s = stats(attn, x, x, x)
    assert math.isnan(s.entropy) and math.isnan(s.max_weight) and math.isnan(s.logit_std)
    assert s.keys == 1


@pytest.mark.parametrize("extra", ["add_bias_kv", "add_zero_attn", "both"])
def test_appended_keys_count_as_torch_counts_them(extra: str) -> None:
    flags = {"add_bias_kv": extra != "add_zero_attn", "add_zero_attn": extra != "add_bias_kv"}
    attn = mha(16, 4, **flags)
    x = torch.randn(7, 3, 16, dtype=D64)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[2, :4] = True
    s = stats(attn, x, x, x, key_padding_mask=padding)
    added = int(flags["add_bias_kv"]) + int(flags["add_zero_attn"])
    assert s.keys == 7 + added
    allowed = F.pad(~padding, (0, added), value=True)[:, None, None, :]
    assert_matches(s, reference(attn, x, x, x, allowed, key_padding_mask=padding))


# -- is_causal, as torch applies it


def test_is_causal_with_its_causal_mask_matches_torch() -> None:
    attn = mha(16, 4, batch_first=True)
    x = torch.randn(2, 6, 16, dtype=D64)
    causal = nn.Transformer.generate_square_subsequent_mask(6, dtype=D64)
    s = stats(attn, x, x, x, attn_mask=causal, is_causal=True, need_weights=False)
    allowed = torch.ones(6, 6, dtype=torch.bool).tril()
    assert_matches(s, reference(attn, x, x, x, allowed, attn_mask=causal))


def test_is_causal_replaces_attn_mask_where_torch_replaces_it() -> None:
    # torch's slow path (here: training mode) without weights or a padding mask hands
    # is_causal to scaled_dot_product_attention and drops attn_mask: a mask that is not
    # causal is then ignored. The recomputed output must agree (else a reason comes back).
    attn = mha(16, 4, batch_first=True)
    x = torch.randn(2, 6, 16, dtype=D64)
    wrong = torch.zeros(6, 6, dtype=torch.bool)
    wrong[:, 0] = True
    wrong[0, 0] = False
    s = stats(attn, x, x, x, attn_mask=wrong, is_causal=True, need_weights=False)
    allowed = torch.ones(6, 6, dtype=torch.bool).tril()
    causal = torch.ones(6, 6, dtype=torch.bool).triu(1)
    assert_matches(s, reference(attn, x, x, x, allowed, attn_mask=causal))
    # With weights to return, torch uses attn_mask itself.
    s = stats(attn, x, x, x, attn_mask=wrong, is_causal=True, need_weights=True)
    assert_matches(s, reference(attn, x, x, x, ~wrong, attn_mask=wrong))


def test_is_causal_on_torch_fast_path_applies_attn_mask() -> None:
    # The fused fast path (eval, no grad, self-attention, batch_first) applies attn_mask
    # and ignores the hint, and accepts the hint without any mask (then: none).
    attn = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    x = torch.randn(2, 6, 16)
    wrong = torch.zeros(6, 6, dtype=torch.bool)
    wrong[:, 0] = True
    wrong[0, 0] = False
    with torch.no_grad():
        s = stats(attn, x, x, x, attn_mask=wrong, is_causal=True, need_weights=False)
        assert_matches(s, reference(attn, x, x, x, ~wrong, attn_mask=wrong), tol=1e-5)
        s = stats(attn, x, x, x, is_causal=True, need_weights=False)
        assert_matches(s, reference(attn, x, x, x), tol=1e-5)


# -- the states: healthy default, collapsed with N(0, 1) projections


def test_default_attention_on_unit_input_spreads_its_weights() -> None:
    attn = nn.MultiheadAttention(64, 4, batch_first=True)
    x = torch.randn(8, 32, 64)
    s = stats(attn, x, x, x, need_weights=False)
    # Measured: entropy 0.966, max_weight 0.079 (uniform: 1/32 = 0.031), logit_std 0.477.
    # Theory: Xavier on (3·64, 64) has std √(2/256) = 0.088, so q and k components have
    # std √64·0.088 = 0.71, and q·k/√16 over 16 of them std 0.71²·√16/√16 = 0.5.
    assert s.entropy > 0.9
    assert s.max_weight < 0.2
    assert s.q_rms == pytest.approx(math.sqrt(2 / 256) * 8, rel=0.1)
    assert s.logit_std == pytest.approx(0.5, rel=0.15)


def test_unit_normal_in_proj_collapses_attention_onto_one_key() -> None:
    attn = nn.MultiheadAttention(64, 4, batch_first=True)
    with torch.no_grad():
        attn.in_proj_weight.normal_(0.0, 1.0)
    x = torch.randn(8, 32, 64)
    s = stats(attn, x, x, x, need_weights=False)
    # Measured: entropy 0.017, max_weight 0.976, logit_std 61.6. Theory: q and k
    # components of std √64 = 8, so q·k/√16 has std 8²·√16/√16 = 64.
    assert s.entropy < 0.1
    assert s.max_weight > 0.9
    assert s.q_rms == pytest.approx(8.0, rel=0.1)
    assert s.logit_std == pytest.approx(64.0, rel=0.15)
    assert s.q_weight_std == pytest.approx(1.0, rel=0.05)


# -- inside a model, called as nn.TransformerEncoderLayer calls it


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_measured_from_a_hook_inside_transformer_encoder_layer(
    batch_first: bool, norm_first: bool
) -> None:
    layer = nn.TransformerEncoderLayer(
        16, 4, 32, dropout=0.0, batch_first=batch_first, norm_first=norm_first, dtype=D64
    )
    seen: list[AttentionStats | str] = []
    inputs: list[Tensor] = []

    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        assert isinstance(module, nn.MultiheadAttention)
        assert kwargs["need_weights"] is False  # as the layer calls it
        inputs.append(args[0])
        seen.append(measure_attention("self_attn", module, args, kwargs, out))

    handle = layer.self_attn.register_forward_hook(hook, with_kwargs=True)
    x = torch.randn((2, 7, 16) if batch_first else (7, 2, 16), dtype=D64)
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, 5:] = True
    layer(x, src_key_padding_mask=padding).sum().backward()
    handle.remove()
    assert len(seen) == 1 and isinstance(seen[0], AttentionStats), seen
    a = inputs[0].detach()
    ref = reference(layer.self_attn, a, a, a, ~padding[:, None, None, :], key_padding_mask=padding)
    assert_matches(seen[0], ref)


def _record(model: nn.Module) -> tuple[dict[str, list[Any]], list[Any]]:
    """Hooks every attention module of ``model`` as Watch does: what each call measured,
    by qualified name, and each call's (module, args, kwargs) for the references."""
    seen: dict[str, list[Any]] = {}
    calls: list[Any] = []
    for name, m in model.named_modules():
        if isinstance(m, nn.MultiheadAttention):

            def hook(module: nn.Module, args: Any, kwargs: Any, out: Any, name: str = name) -> None:
                assert isinstance(module, nn.MultiheadAttention)
                seen.setdefault(name, []).append(measure_attention(name, module, args, kwargs, out))
                calls.append((module, args, kwargs))

            m.register_forward_hook(hook, with_kwargs=True)
    return seen, calls


def test_a_causal_transformer_encoder_is_measured_per_layer_with_its_causal_mask() -> None:
    # nn.TransformerEncoder finds the mask causal and passes is_causal=True: torch then
    # drops the mask for scaled_dot_product_attention's own causal masking.
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, dtype=D64)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    seen, calls = _record(model)
    x = torch.randn(3, 7, 16, dtype=D64)
    mask = nn.Transformer.generate_square_subsequent_mask(7, dtype=D64)
    model(x, mask=mask, is_causal=True).sum().backward()
    assert sorted(seen) == ["layers.0.self_attn", "layers.1.self_attn"]
    allowed = torch.ones(7, 7, dtype=torch.bool).tril()
    recorded = list(zip(sorted(seen.items()), calls, strict=True))  # before the references call
    for (name, (s,)), (module, args, kwargs) in recorded:
        assert kwargs["is_causal"] is True and isinstance(s, AttentionStats), s
        assert s.name == name
        a = args[0].detach()
        assert_matches(s, reference(module, a, a, a, allowed, attn_mask=mask))


def test_a_transformer_decoder_layer_measures_self_and_cross_attention() -> None:
    layer = nn.TransformerDecoderLayer(16, 4, 32, dropout=0.0, dtype=D64)  # (L, N, E)
    seen, calls = _record(layer)
    tgt, memory = torch.randn(5, 2, 16, dtype=D64), torch.randn(9, 2, 16, dtype=D64)
    tgt_mask = nn.Transformer.generate_square_subsequent_mask(5, dtype=D64)
    padding = torch.zeros(2, 9, dtype=torch.bool)
    padding[0, 6:] = True
    layer(tgt, memory, tgt_mask=tgt_mask, memory_key_padding_mask=padding).sum().backward()
    assert sorted(seen) == ["multihead_attn", "self_attn"]
    (self_call, cross_call) = calls
    s = seen["self_attn"][0]
    a = self_call[1][0].detach()
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    assert_matches(s, reference(self_call[0], a, a, a, causal, attn_mask=tgt_mask))
    c = seen["multihead_attn"][0]
    q, m = cross_call[1][0].detach(), cross_call[1][1].detach()
    ref = reference(cross_call[0], q, m, m, ~padding[:, None, None, :], key_padding_mask=padding)
    assert_matches(c, ref)
    assert (s.keys, c.keys) == (5, 9)


def test_with_attention_dropout_in_training_the_softmax_before_dropout_is_measured() -> None:
    attn = mha(16, 4, dropout=0.5, batch_first=True)
    x = torch.randn(2, 6, 16, dtype=D64)
    s = stats(attn, x, x, x, need_weights=False)  # output check skipped: dropout is random
    assert_matches(s, reference(attn.eval(), x, x, x))


# -- never re-entering the probe's hooks


def test_measuring_calls_no_module() -> None:
    attn = nn.MultiheadAttention(16, 4)
    calls: list[str] = []
    for name, m in [("attn", attn), ("out_proj", attn.out_proj)]:
        m.register_forward_pre_hook(lambda *_, name=name: calls.append(name))
    x = torch.randn(5, 2, 16)
    output = attn(x, x, x)
    calls.clear()
    assert isinstance(measure_attention("attn", attn, (x, x, x), {}, output), AttentionStats)
    assert calls == []


def test_nothing_of_the_measurement_joins_the_autograd_graph() -> None:
    attn = nn.MultiheadAttention(16, 4)
    x = torch.randn(5, 2, 16, requires_grad=True)
    output = attn(x, x, x)
    assert isinstance(measure_attention("attn", attn, (x, x, x), {}, output), AttentionStats)
    output[0].sum().backward()  # the graph is the module's alone
    assert attn.in_proj_weight.grad is not None


# -- what cannot be measured says why


def test_a_subclass_that_computes_something_else_is_not_measured_wrongly() -> None:
    class Scaled(nn.MultiheadAttention):
        def forward(self, *args: Any, **kwargs: Any) -> Any:
            out, w = super().forward(*args, **kwargs)
            return 2.0 * out, w

    attn = Scaled(16, 4)
    x = torch.randn(5, 2, 16)
    why = measure(attn, x, x, x)
    assert isinstance(why, str) and "differs" in why


def test_a_forward_with_another_signature_says_why() -> None:
    class SelfAttention(nn.MultiheadAttention):
        def forward(self, x: Tensor) -> Any:  # type: ignore[override]
            return super().forward(x, x, x)

    attn = SelfAttention(16, 4)
    why = measure(attn, torch.randn(5, 2, 16))
    assert why == "its forward takes no tensor query, key, value"


def test_an_integer_mask_says_why() -> None:
    attn = nn.MultiheadAttention(16, 4)
    x = torch.randn(5, 2, 16)
    mask = torch.zeros(5, 5, dtype=torch.int64)
    why = measure_attention("attn", attn, (x, x, x), {"attn_mask": mask}, None)
    assert why == "its attn_mask is torch.int64; torch takes only bool or float masks"


def test_half_precision_is_measured_in_float32() -> None:
    attn = nn.MultiheadAttention(16, 4, batch_first=True, dtype=torch.bfloat16)
    x = torch.randn(2, 6, 16, dtype=torch.bfloat16)
    s = stats(attn, x, x, x)
    ref = reference(attn, x, x, x)
    assert s.entropy == pytest.approx(ref["entropy"], abs=0.02)
    assert s.max_weight == pytest.approx(ref["max_weight"], abs=0.02)


def test_under_autocast_the_measurement_stays_in_float32() -> None:
    attn = nn.MultiheadAttention(16, 4, batch_first=True)
    x = torch.randn(2, 6, 16)
    plain = stats(attn, x, x, x, need_weights=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s = stats(attn, x, x, x, need_weights=False)  # the module's output is bfloat16
    assert s.entropy == pytest.approx(plain.entropy, rel=1e-6)
    assert s.logit_std == pytest.approx(plain.logit_std, rel=1e-6)
