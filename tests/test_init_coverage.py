"""init.apply on every parameter a fix needs (attention, recurrent, tokens) and
init.scale_residual, against references computed here: the schemes' formulas at the
fans of each matrix, scipy's distributions, QᵀQ = I, torch's own layer init."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from scipy import stats
from torch import nn

from initlab import init

# Kolmogorov–Smirnov p-values below this fail; with the fixed seeds of conftest a correct
# sampler passes with margin, and a sampler at the wrong fans (std off by ≥ 20 % on
# thousands of draws) gives p ≪ 1e-10.
P_MIN = 1e-4


def ks_pvalue(t: torch.Tensor, dist: stats.rv_continuous) -> float:
    return float(stats.kstest(t.detach().double().flatten().numpy(), dist.cdf).pvalue)


# ----------------------------------------------------------------------------- attention


def test_attention_q_k_v_are_three_matrices_with_their_own_fans(gen: torch.Generator) -> None:
    embed = 128
    attn = nn.MultiheadAttention(embed, num_heads=4, bias=True, add_bias_kv=True)
    with torch.no_grad():  # the case: N(0, 1) in_proj_weight
        attn.in_proj_weight.normal_()
    records = init.apply(attn, "xavier_uniform", "constant(0.1)", generator=gen)
    by_name = {r.parameter: r for r in records}
    bound = math.sqrt(6 / (embed + embed))  # fans (E, E); the whole (3E, E) gives √(6/4E)
    for i, part in enumerate("qkv"):
        record = by_name[f"in_proj_weight[{part}]"]
        assert (record.shape, record.fan_in, record.fan_out) == ((embed, embed), embed, embed)
        w = attn.in_proj_weight[i * embed : (i + 1) * embed]
        assert w.abs().max().item() <= bound
        # 16,384 draws: the largest lies within 0.1 % of the bound; √(6/4E) is 0.71·bound
        assert w.abs().max().item() > 0.99 * bound
        # std of U(±b) is b/√3; relative error of the sample std ~ 0.5 % here
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)
        assert ks_pvalue(w, stats.uniform(-bound, 2 * bound)) > P_MIN
    for name in ("in_proj_bias", "bias_k", "bias_v"):
        assert by_name[name].scheme == "constant(val=0.1)"
        assert torch.all(getattr(attn, name) == 0.1)
    # out_proj is an nn.Linear child: "linear", with the weight spec
    assert by_name["out_proj.weight"].fan_in == embed
    assert set(by_name) == {
        *(f"in_proj_weight[{p}]" for p in "qkv"),
        "in_proj_bias",
        "bias_k",
        "bias_v",
        "out_proj.weight",
        "out_proj.bias",
    }


def test_attention_with_kdim_vdim_uses_each_projections_fans(gen: torch.Generator) -> None:
    attn = nn.MultiheadAttention(64, 2, kdim=256, vdim=16, dtype=torch.float64)
    records = {r.parameter: r for r in init.apply(attn, "lecun_normal", generator=gen)}
    for name, fan_in in (("q_proj_weight", 64), ("k_proj_weight", 256), ("v_proj_weight", 16)):
        w = getattr(attn, name)
        assert records[name].fan_in == fan_in
        assert ks_pvalue(w, stats.norm(0, 1 / math.sqrt(fan_in))) > P_MIN, name


def test_attention_advice_lecun_normal_fixes_an_n01_in_proj(gen: torch.Generator) -> None:
    # The probe's advice for an attention model with N(0, 1) in_proj_weight.
    model = nn.TransformerEncoderLayer(64, 4, dim_feedforward=128, batch_first=True)
    with torch.no_grad():
        model.self_attn.in_proj_weight.normal_()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every parameter of the layer is known
        init.apply(model, weight="lecun_normal", generator=gen)
    w = model.self_attn.in_proj_weight
    assert w.std().item() == pytest.approx(1 / math.sqrt(64), rel=0.05)


# ----------------------------------------------------------------------------- recurrent


GATES = {nn.LSTM: "ifgo", nn.GRU: "rzn", nn.RNN: ""}


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_recurrent_weights_per_gate(cls: type[nn.RNNBase], gen: torch.Generator) -> None:
    inputs, hidden = 48, 64
    rnn = cls(inputs, hidden, num_layers=2, bidirectional=True)
    records = {r.parameter: r for r in init.apply(rnn, "xavier_normal", generator=gen)}
    gates = GATES[cls]
    labels = [f"[{g}]" for g in gates] or [""]
    for layer, fan_in in ((0, inputs), (1, 2 * hidden)):  # layer 1 reads both directions
        for suffix in ("", "_reverse"):
            w_ih = getattr(rnn, f"weight_ih_l{layer}{suffix}")
            w_hh = getattr(rnn, f"weight_hh_l{layer}{suffix}")
            for i, label in enumerate(labels):
                rows = slice(i * hidden, (i + 1) * hidden)
                record = records[f"weight_ih_l{layer}{suffix}{label}"]
                assert (record.fan_in, record.fan_out) == (fan_in, hidden)
                # Glorot at the gate's fans (in, H), not the stacked (in, gates·H)
                std = math.sqrt(2 / (fan_in + hidden))
                assert ks_pvalue(w_ih[rows], stats.norm(0, std)) > P_MIN, record.parameter
                assert records[f"weight_hh_l{layer}{suffix}{label}"].scheme == "orthogonal"
                q = w_hh[rows].detach().double()
                assert torch.allclose(q.T @ q, torch.eye(hidden, dtype=torch.float64), atol=1e-5)
            assert torch.all(getattr(rnn, f"bias_ih_l{layer}{suffix}") == 0)
    assert len(records) == 2 * 2 * (2 * max(len(gates), 1) + 2)


def test_whole_stacked_recurrent_matrix_is_not_orthogonal_per_gate(gen: torch.Generator) -> None:
    # The reference the per-gate test relies on: one orthogonal (4H, H) matrix has
    # orthonormal columns as a whole, and its gate blocks are not orthogonal.
    w = init.orthogonal_(torch.empty(4 * 32, 32, dtype=torch.float64), generator=gen)
    assert torch.allclose(w.T @ w, torch.eye(32, dtype=torch.float64), atol=1e-10)
    block = w[:32]
    assert not torch.allclose(block.T @ block, torch.eye(32, dtype=torch.float64), atol=0.1)


def test_forget_bias_sets_exactly_the_forget_slice(gen: torch.Generator) -> None:
    hidden = 5
    lstm = nn.LSTM(3, hidden, num_layers=2, bidirectional=True)
    records = init.apply(lstm, "xavier_uniform", "constant(0.1)", forget_bias=1.0, generator=gen)
    forget = slice(hidden, 2 * hidden)  # torch's gate order: i, f, g, o
    for name, param in lstm.named_parameters():
        if name.startswith("bias_ih"):
            assert torch.all(param[forget] == 1.0), name
        elif name.startswith("bias_hh"):
            assert torch.all(param[forget] == 0.0), name
        else:
            continue
        rest = torch.cat([param[:hidden], param[2 * hidden :]])
        assert torch.all(rest == 0.1), name
    schemes = {r.parameter: r.scheme for r in records}
    assert schemes["bias_ih_l1_reverse[f]"] == "constant(val=1.0)"
    assert schemes["bias_hh_l0[f]"] == "zeros"
    assert schemes["bias_hh_l0[g]"] == "constant(val=0.1)"


def test_forget_bias_alone_keeps_the_other_biases() -> None:
    lstm = nn.LSTM(3, 4)
    before = lstm.bias_ih_l0.detach().clone()
    init.apply(lstm, None, None, recurrent=None, forget_bias=2.0)
    assert torch.all(lstm.bias_ih_l0[4:8] == 2.0) and torch.all(lstm.bias_hh_l0[4:8] == 0)
    assert torch.equal(lstm.bias_ih_l0[:4], before[:4])
    assert torch.equal(lstm.bias_ih_l0[8:], before[8:])


def test_forget_bias_leaves_layers_without_a_forget_gate_as_bias_sets_them() -> None:
    # The probe's recurrent fix passes forget_bias=1.0 for any recurrent layer: a GRU or
    # an RNN has no forget gate, so its biases get `bias`, and nothing fails.
    model = nn.Sequential(nn.GRU(3, 3), nn.RNN(3, 3), nn.LSTM(3, 3, bias=False))
    records = init.apply(model, "he_normal", "constant(0.5)", forget_bias=1.0)
    assert torch.all(model[0].bias_ih_l0 == 0.5) and torch.all(model[1].bias_hh_l0 == 0.5)
    assert not any(r.scheme == "constant(val=1.0)" for r in records)


def test_a_bad_forget_bias_is_an_error_and_changes_nothing() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.LSTM(3, 3))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="forget_bias"):
        init.apply(model, "he_normal", forget_bias=math.nan)
    with pytest.raises(TypeError, match="forget_bias"):
        init.apply(model, "he_normal", forget_bias="1")  # type: ignore[arg-type]
    for a, b in zip(before, model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_recurrent_identity_and_projection(gen: torch.Generator) -> None:
    rnn = nn.RNN(4, 6, nonlinearity="relu")
    records = init.apply(rnn, "he_normal", recurrent="eye", generator=gen)
    assert torch.equal(rnn.weight_hh_l0, torch.eye(6))  # Le et al. 2015's IRNN
    names = [r.parameter for r in records]
    assert names == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]  # one "gate"

    lstm = nn.LSTM(4, 16, proj_size=8)
    records_by = {r.parameter: r for r in init.apply(lstm, "lecun_normal", generator=gen)}
    projection = records_by["weight_hr_l0"]
    assert (projection.fan_in, projection.scheme) == (16, "lecun_normal")
    for i in range(4):  # each gate's (16, 8) recurrent block has orthonormal columns
        q = lstm.weight_hh_l0[i * 16 : (i + 1) * 16].detach().double()
        assert torch.allclose(q.T @ q, torch.eye(8, dtype=torch.float64), atol=1e-5)


def test_recurrent_cells_per_gate(gen: torch.Generator) -> None:
    cell = nn.LSTMCell(8, 32)
    records = init.apply(cell, "xavier_normal", forget_bias=1.0, generator=gen)
    assert [r.parameter for r in records][:4] == [f"weight_ih[{g}]" for g in "ifgo"]
    assert torch.all(cell.bias_ih[32:64] == 1.0)
    q = cell.weight_hh[64:96].detach().double()
    assert torch.allclose(q.T @ q, torch.eye(32, dtype=torch.float64), atol=1e-5)


@pytest.mark.numerics
def test_torch_default_reproduces_torchs_recurrent_init() -> None:
    def make() -> nn.Module:
        return nn.Sequential(nn.LSTM(3, 5, num_layers=2), nn.GRU(5, 4, bidirectional=True))

    torch.manual_seed(3)
    fresh = make()
    model = make()
    torch.manual_seed(3)
    init.apply(model, "torch_default", "torch_default", recurrent="torch_default")
    for a, b in zip(fresh.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_torch_default_attention_is_xavier_of_the_whole_and_zero_biases() -> None:
    attn = nn.MultiheadAttention(16, 2, add_bias_kv=True)
    records = {r.parameter: r for r in init.apply(attn, "torch_default", "torch_default")}
    q = records["in_proj_weight[q]"]
    assert (q.scheme, q.fan_in, q.fan_out) == ("xavier_uniform", 16, 48)  # torch's fans
    assert torch.all(attn.in_proj_bias == 0) and torch.all(attn.out_proj.bias == 0)
    assert records["bias_k"].std == pytest.approx(math.sqrt(2 / (16 + 16)))


# ----------------------------------------------------------------------------- tokens


class ViTStem(nn.Module):
    def __init__(self, dim: int = 128, patches: int = 196) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 16, stride=16)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, patches + 1, dim))
        self.register_tokens = nn.Parameter(torch.ones(1, 4, dim))
        self.norm = nn.LayerNorm(dim)


# std of N(0, 1) truncated to ±2 (scipy): BERT's initializer draws N(0, 0.02²) within ±0.04
TRUNC_STD = 0.02 * float(stats.truncnorm(-2, 2).std())


def test_tokens_get_truncated_normal_std_002_whatever_the_weight(gen: torch.Generator) -> None:
    stem = ViTStem()
    records = {r.parameter: r for r in init.apply(stem, "he_normal", generator=gen)}
    for name in ("cls_token", "pos_embed", "register_tokens"):
        assert records[name].scheme == "trunc_normal(std=0.02, a=-0.04, b=0.04)"
        assert records[name].std == pytest.approx(TRUNC_STD, rel=1e-6)
        assert records[name].fan_in is None
    pos = stem.pos_embed
    assert pos.abs().max().item() <= 0.04
    assert pos.std().item() == pytest.approx(TRUNC_STD, rel=0.03)  # 25,216 draws
    assert ks_pvalue(pos, stats.truncnorm(-2, 2, scale=0.02)) > P_MIN
    assert stem.cls_token.abs().max().item() <= 0.04 and stem.cls_token.std().item() > 0.01


@pytest.mark.parametrize(
    "name",
    [
        "pos_embedding",
        "position_embeddings",
        "mask_token",
        "dist_token",
        "reg_token",
        "abs_pos_embed",
    ],
)
def test_token_names_are_matched(name: str) -> None:
    module = nn.Module()
    module.register_parameter(name, nn.Parameter(torch.full((1, 3, 8), 5.0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (record,) = init.apply(module, "lecun_normal")
    assert record.parameter == name and getattr(module, name).abs().max().item() <= 0.04


def test_tokens_follow_include_whatever_the_weight() -> None:
    stem = ViTStem()
    before = stem.pos_embed.detach().clone()
    init.apply(stem, "he_normal", include="conv")
    assert torch.equal(stem.pos_embed, before)
    conv = stem.patch.weight.detach().clone()
    # tokens only, as the probe's fix does: the rest stays
    records = init.apply(stem, None, None, include=["token"])
    assert [r.parameter for r in records] == ["cls_token", "pos_embed", "register_tokens"]
    assert torch.equal(stem.patch.weight, conv) and stem.pos_embed.abs().max().item() <= 0.04


# ----------------------------------------------------------------------------- every kind


class EveryKind(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 16, padding_idx=0)
        self.pos_embedding = nn.Parameter(torch.zeros(1, 10, 16))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 16))
        self.conv = nn.Conv1d(16, 16, 3, padding=1)
        self.deconv = nn.ConvTranspose1d(16, 16, 3, padding=1)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, norm_first=True),
            2,
            enable_nested_tensor=False,
        )
        self.lstm = nn.LSTM(16, 8, batch_first=True, bidirectional=True)
        self.gru_cell = nn.GRUCell(16, 16)
        self.bn = nn.BatchNorm1d(16)
        self.rms = nn.RMSNorm(16)
        self.head = nn.Linear(16, 3)


def test_a_model_with_every_kind_is_covered_without_a_warning(gen: torch.Generator) -> None:
    model = EveryKind()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = init.apply(model, "xavier_normal", forget_bias=1.0, generator=gen)
    touched = {r.parameter.split("[")[0] for r in records}
    assert touched == {name for name, _ in model.named_parameters()}


def test_an_unknown_loose_parameter_is_named_in_the_warning_and_kept() -> None:
    model = EveryKind()
    model.temperature = nn.Parameter(torch.tensor(7.0))
    with pytest.warns(UserWarning, match=r"1 parameter.*temperature.*TOKEN_PATTERNS"):
        records = init.apply(model, "xavier_normal")
    assert model.temperature.item() == 7.0
    assert "temperature" not in {r.parameter for r in records}


def test_a_bad_spec_for_a_piece_leaves_the_model_unchanged() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.LSTM(4, 3))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"1\.weight_hh_l0\[i\] \(3, 3\) \(LSTM\) with 'dirac'"):
        init.apply(model, "he_normal", recurrent="dirac")
    for a, b in zip(before, model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_apply_over_every_kind_is_reproducible() -> None:
    a, b = EveryKind(), EveryKind()
    init.apply(a, "he_uniform", forget_bias=1.0, generator=torch.Generator().manual_seed(4))
    init.apply(b, "he_uniform", forget_bias=1.0, generator=torch.Generator().manual_seed(4))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


# ----------------------------------------------------------------------------- scale_residual


def test_scale_residual_zero_gamma_on_a_batch_norm() -> None:
    block = nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
    with torch.no_grad():
        block[1].bias.fill_(0.5)
    (record,) = init.scale_residual(block, ["1"])
    assert torch.all(block[1].weight == 0) and torch.all(block[1].bias == 0.5)
    assert (record.parameter, record.scheme, record.std) == ("1.weight", "zeros", 0.0)


def test_scale_residual_divides_by_root_count_on_linear_and_attention_out_proj() -> None:
    blocks = nn.ModuleList(
        nn.ModuleDict({"attn": nn.MultiheadAttention(8, 2), "fc2": nn.Linear(32, 8)})
        for _ in range(3)
    )
    names = [f"{i}.{part}" for i in range(3) for part in ("attn", "fc2")]
    before = {n: p.detach().clone() for n, p in blocks.named_parameters()}
    records = init.scale_residual(blocks, names)
    factor = 1 / math.sqrt(6)  # GPT-2: 1/√(2L), L = 3 blocks of two branches
    for i in range(3):
        for weight in (f"{i}.attn.out_proj.weight", f"{i}.fc2.weight"):
            got = dict(blocks.named_parameters())[weight]
            torch.testing.assert_close(got, before[weight] * factor, rtol=1e-6, atol=0)
        # the rest is untouched: in_proj, biases
        for other in (f"{i}.attn.in_proj_weight", f"{i}.fc2.bias", f"{i}.attn.out_proj.bias"):
            assert torch.equal(dict(blocks.named_parameters())[other], before[other])
    assert {r.scheme for r in records} == {"scale(1/√6)"}
    assert records[1].fan_in == 32

    conv = nn.Sequential(nn.Conv2d(2, 2, 3))
    w = conv[0].weight.detach().clone()
    init.scale_residual(conv, ["0"], count=16)
    torch.testing.assert_close(conv[0].weight, w / 4, rtol=1e-6, atol=0)


def test_scale_residual_errors_name_what_it_takes_and_change_nothing() -> None:
    model = nn.Sequential(
        nn.Linear(4, 4), nn.ReLU(), nn.LayerNorm(4, elementwise_affine=False), nn.Linear(4, 4)
    )
    model.add_module("block_out", nn.Linear(4, 4))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"no module named 'block_ot'.*Close names: 'block_out'"):
        init.scale_residual(model, ["0", "block_ot"])
    with pytest.raises(ValueError, match=r"'1' is a ReLU\. It takes .*nn\.Linear"):
        init.scale_residual(model, ["0", "1"])
    with pytest.raises(ValueError, match=r"'2' is a LayerNorm without an affine weight"):
        init.scale_residual(model, ["0", "2"])
    with pytest.raises(ValueError, match="given twice"):
        init.scale_residual(model, ["0", "0"])
    with pytest.raises(ValueError, match="at least one module name"):
        init.scale_residual(model, [])
    with pytest.raises(ValueError, match="'count' parameter of scale_residual"):
        init.scale_residual(model, ["0"], count=0)
    with pytest.raises(TypeError, match="list of qualified module names"):
        init.scale_residual(model, "0")
    with pytest.raises(TypeError, match="list of qualified module names"):
        init.scale_residual(model, [0])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="nn.Module"):
        init.scale_residual("model", ["0"])  # type: ignore[arg-type]
    shared = nn.ModuleDict({"a": model[0], "b": model[0]})
    with pytest.raises(ValueError, match="shared"):
        init.scale_residual(shared, ["a", "b"])
    for a, b in zip(before, model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_an_extra_matrix_on_a_linear_subclass_is_named_not_given_the_bias_spec() -> None:
    class LoRALinear(nn.Linear):
        def __init__(self) -> None:
            super().__init__(8, 8)
            self.lora_a = nn.Parameter(torch.full((2, 8), 3.0))

    model = nn.Sequential(LoRALinear())
    with pytest.warns(UserWarning, match=r"0\.lora_a"):
        records = init.apply(model, "he_normal")
    assert [r.parameter for r in records] == ["0.weight", "0.bias"]
    assert torch.all(model[0].lora_a == 3.0)
