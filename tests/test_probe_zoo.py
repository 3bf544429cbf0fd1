"""The probe on the architectures practitioners train (tests/zoo.py, built from torch.nn):
each pathology flagged with the right verdict and its numbers, each default model
healthy, each fix making the probe healthy and training work where it did not.

The numbers stated were measured on a 2-core AVX-512 CPU; the assertions hold them with
margins of several × (each is a ratio of scales, far from its threshold), and every run
is seeded. Training runs are short and asserted on what is robust: the loss after the
fix against the loss without it, from the same weights and batches.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import zoo
from torch import nn

from initlab import init
from initlab.probe import Watch, fix, probe

CE = nn.functional.cross_entropy
LN10 = math.log(10)


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    return zoo.digits(1024)


@pytest.fixture(scope="module")
def tokens() -> tuple[torch.Tensor, torch.Tensor]:
    return zoo.token_task(1024)


@pytest.fixture(scope="module")
def text() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = zoo.copy_task(512)
    return x, y.reshape(-1)


def kinds(report: object) -> set[str]:
    return {v.kind for v in report.problems}  # type: ignore[attr-defined]


def seeded(build, seed: int = 0):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    return build()


# ----------------------------------------------------------------- healthy defaults


def test_a_default_resnet18_is_healthy_and_every_part_is_seen(images) -> None:  # type: ignore[no-untyped-def]
    model = seeded(zoo.ResNet18)
    r = probe(model, (images[0][:256], images[1][:256]), CE)
    assert r.healthy, [str(v) for v in r.verdicts]
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    # every weight layer, by qualified name, in the order the pass runs them (a block's
    # downsample before its convs)
    assert sorted(s.name for s in r.layers) == sorted(convs)
    assert r.layers[5].name == "layer2.0.downsample.0"
    bns = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert sorted(n.name for n in r.norms) == sorted(bns)
    # the five blocks whose skip is the identity are streams; the three whose skip goes
    # through a downsample (layer2.0, layer3.0, layer4.0) change the shape: not streams
    assert [b.name for b in r.residuals] == [
        "layer1.0", "layer1.1", "layer2.1", "layer3.1", "layer4.1"
    ]  # fmt: skip
    assert all(b.branch_source.endswith("bn2") for b in r.residuals)
    assert r.output is not None and r.output.classes == 10
    assert r.output.cross_entropy < 1.5 * LN10
    assert r.unseen == ()


@pytest.mark.parametrize("norm_first", [True, False])
def test_a_default_transformer_is_healthy_and_its_attention_is_seen(tokens, norm_first) -> None:  # type: ignore[no-untyped-def]
    model = seeded(lambda: zoo.TokenTransformer(norm_first=norm_first))
    r = probe(model, (tokens[0][:256], tokens[1][:256]), CE)
    assert r.healthy, [str(v) for v in r.verdicts]
    names = [a.name for a in r.attention]
    assert names == ["encoder.layers.0.self_attn", "encoder.layers.1.self_attn"]
    assert all(a.entropy > 0.9 for a in r.attention)  # measured 0.96
    assert "encoder.layers.0.self_attn" in [s.name for s in r.layers]
    assert r.layers[0].kind == "Embedding"
    # two additions per layer, attention's then the MLP's, each with its source
    assert [b.branch_source.rsplit(".", 1)[-1] for b in r.residuals] == ["self_attn", "linear2"] * 2
    assert len(r.norms) == 4
    # the learned positions are a parameter the model adds itself: said, not hidden
    assert any(u.startswith("the model (TokenTransformer): its parameter pos is") for u in r.unseen)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_a_default_recurrent_lm_is_healthy_and_its_time_axis_is_seen(text, cell) -> None:  # type: ignore[no-untyped-def]
    r = probe(seeded(lambda: zoo.RecurrentLM(cell)), (text[0][:256], text[1][: 256 * 16]), CE)
    assert r.healthy, [str(v) for v in r.verdicts]
    (rnn,) = r.recurrent
    assert rnn.kind == cell and rnn.steps == 16
    # a default LSTM/GRU forgets ≈ 0.6× per step (measured 0.58 and 0.63): short, alive
    assert 0.4 < rnn.time_factor < 0.8
    assert rnn.grad_through_time[0] > 0
    assert [s.kind for s in r.layers] == ["Embedding", cell, "Linear"]


def test_an_embedding_classifier_is_healthy(tokens) -> None:  # type: ignore[no-untyped-def]
    r = probe(seeded(zoo.EmbeddingClassifier), (tokens[0][:256], tokens[1][:256]), CE)
    assert r.healthy, [str(v) for v in r.verdicts]
    assert r.layers[0].name == "embed"


def test_a_default_vit_is_healthy(images) -> None:  # type: ignore[no-untyped-def]
    r = probe(seeded(zoo.ViT), (images[0][:256], images[1][:256]), CE)
    assert r.healthy, [str(v) for v in r.verdicts]
    assert len(r.residuals) == 8 and len(r.attention) == 4  # two additions per block
    growth = r.residuals[-1].stream_out_rms / r.residuals[0].stream_in_rms
    assert growth < 3.0
    assert any("cls_token" in u and "pos_embed" in u for u in r.unseen)


def test_a_narrow_head_does_not_make_a_shallow_net_vanish() -> None:
    # a 32-64-2 classifier (it trains to 99.8 %): the whole drop in ∂h's RMS is its 64 → 2
    # head, which a per-example norm does not count as vanishing.
    model = seeded(lambda: zoo.mlp([32, 64, 2]))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 32, generator=g), torch.randint(0, 2, (256,), generator=g)
    r = probe(model, (x, y), CE)
    assert r.healthy, [str(v) for v in r.verdicts]


def test_a_redundant_bias_is_advice_not_a_problem(images) -> None:  # type: ignore[no-untyped-def]
    # VGG-style: conv with a bias, batch norm right after, ReLU
    def vgg() -> nn.Module:
        layers: list[nn.Module] = []
        for cin, cout in [(1, 16), (16, 32), (32, 32)]:
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(32 * 64, 10))

    r = probe(seeded(vgg), (images[0][:128], images[1][:128]), CE)
    assert r.healthy
    (v,) = r.verdicts
    assert v.kind == "redundant_bias" and v.severity == "advice" and v.layers == (1, 2, 3)
    assert "initlab.models" not in v.advice


# ------------------------------------------------------------------- the pathologies


def test_an_lstm_whose_gradient_never_reaches_step_0_is_flagged(text) -> None:  # type: ignore[no-untyped-def]
    model = seeded(zoo.RecurrentLM)
    with torch.no_grad():
        for p in model.rnn.parameters():
            p.zero_()
    r = probe(model, (text[0][:128], text[1][: 128 * 16]), CE)
    v = r.verdict("vanishing_in_time")
    assert v is not None and v.value == 0.0
    assert r.recurrent[0].grad_through_time[0] == 0.0
    assert "rnn (LSTM)" in v.evidence and "forget_bias=1.0" in v.advice


def test_an_lstm_that_forgets_every_step_is_flagged(text) -> None:  # type: ignore[no-untyped-def]
    model = seeded(zoo.RecurrentLM)
    with torch.no_grad():
        model.rnn.bias_ih_l0[64:128] = -5.0  # the forget gate's slice: σ(−5) = 0.007
    r = probe(model, (text[0][:128], text[1][: 128 * 16]), CE)
    v = r.verdict("vanishing_in_time")
    assert v is not None and v.value < 0.2  # measured 0.14 per step
    assert r.recurrent[0].gate_mean["forget"] < 0.05


def test_a_gru_drawn_from_n01_saturates_its_gates(text) -> None:  # type: ignore[no-untyped-def]
    model = seeded(lambda: zoo.RecurrentLM("GRU"))
    zoo.normal_(model.rnn)
    r = probe(model, (text[0][:128], text[1][: 128 * 16]), CE)
    assert {"saturated", "exploding_in_time"} <= kinds(r)
    assert r.verdict("weight_scale") is None  # a pooled W_ih, W_hh: its own rules judge it
    assert max(r.recurrent[0].gate_saturation.values()) > 0.5  # measured 0.76


def test_a_resnet_drawn_from_n01_has_a_loss_far_above_ln_c(images) -> None:  # type: ignore[no-untyped-def]
    model = zoo.normal_(seeded(zoo.ResNet18))
    r = probe(model, (images[0][:256], images[1][:256]), CE)
    v = r.verdict("high_loss")
    assert v is not None
    assert r.output is not None and r.output.cross_entropy > 5 * LN10  # measured 18.8
    assert r.output.rms > 5  # logits rms, measured 12.8 (≈ 0.74 at the default init)
    assert v.value == pytest.approx(r.output.cross_entropy / LN10)
    # the head (no batch norm after it) is a problem, the convs behind batch norm advice
    scale = [v for v in r.verdicts if v.kind == "weight_scale"]
    assert {(v.severity, v.layers[-1]) for v in scale} >= {("problem", len(r.layers))}
    assert any(v.severity == "advice" and len(v.layers) > 10 for v in scale)


def test_a_vit_drawn_from_n01_grows_its_stream_and_collapses_its_attention(images) -> None:  # type: ignore[no-untyped-def]
    model = zoo.normal_(seeded(zoo.ViT))
    r = probe(model, (images[0][:256], images[1][:256]), CE)
    assert {"residual_growth", "attention_collapse", "high_loss"} <= kinds(r)
    growth = r.residuals[-1].stream_out_rms / r.residuals[0].stream_in_rms
    assert r.verdict("residual_growth").value == pytest.approx(growth)  # type: ignore[union-attr]
    assert growth > 10  # measured 37
    assert min(a.entropy for a in r.attention) < 0.1  # measured 0.05


def test_attention_with_n01_in_proj_collapses_and_its_advice_works(tokens) -> None:  # type: ignore[no-untyped-def]
    model = seeded(zoo.TokenTransformer)
    with torch.no_grad():
        for layer in model.encoder.layers:
            nn.init.normal_(layer.self_attn.in_proj_weight)
    batch = (tokens[0][:256], tokens[1][:256])
    r = probe(model, batch, CE)
    v = r.verdict("attention_collapse")
    assert v is not None and v.value < 0.2  # entropy, measured 0.15 (0.96 by default)
    assert "include=['attention']" in v.advice
    # the advice, carried out: q, k, v as separate matrices, and the verdict is gone
    init.apply(model, weight="xavier_uniform", include=["attention"])
    after = probe(model, batch, CE)
    assert after.verdict("attention_collapse") is None
    assert min(a.entropy for a in after.attention) > 0.5  # measured 0.88 (q, k at 1/E)


def test_a_he_initialized_residual_net_is_not_told_to_use_he(images) -> None:  # type: ignore[no-untyped-def]
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(64, 64), nn.Linear(64, 64)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.fc2(torch.relu(self.fc1(x)))

    model = nn.Sequential(nn.Linear(64, 64), *(Block() for _ in range(12)), nn.Linear(64, 10))
    init.apply(model, weight="he_normal", generator=torch.Generator().manual_seed(0))
    r = probe(model, (images[0][:256].reshape(-1, 64), images[1][:256]), CE)
    assert "residual_growth" in kinds(r)  # the stream doubles its variance per block
    assert all("he_normal" not in v.advice for v in r.verdicts), [v.advice for v in r.verdicts]
    assert any("already follow He" in v.advice for v in r.verdicts if v.kind == "exploding")


def test_an_embedding_of_huge_scale_has_a_high_loss(tokens) -> None:  # type: ignore[no-untyped-def]
    model = seeded(zoo.EmbeddingClassifier)
    with torch.no_grad():
        model.embed.weight.mul_(100.0)
    r = probe(model, (tokens[0][:256], tokens[1][:256]), CE)
    assert r.verdict("high_loss") is not None
    assert r.verdict("weight_scale") is None  # an embedding's scale is not judged by fan-in


def test_a_diverging_run_under_watch_is_flagged_before_the_loss_explodes(images) -> None:  # type: ignore[no-untyped-def]
    x, y = images[0].reshape(-1, 64), images[1]
    model = seeded(lambda: zoo.mlp([64, 64, 64, 10]))
    opt = torch.optim.SGD(model.parameters(), lr=2.0)
    watch = Watch(model, updates=True)
    g = torch.Generator().manual_seed(0)
    reports = []
    for step in range(16):
        i = torch.randint(0, len(x), (64,), generator=g)
        with watch if step % 5 == 0 else _nothing():
            loss = CE(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
        opt.step()
        if step % 5 == 0:
            reports.append(watch.report(loss=loss, target=y[i]))
    assert not reports[0].verdict("diverging")
    # a step rewrites the weights by 0.71 of their norm at step 5 (measured), the loss
    # climbs 2.3 → 7.8 by step 10 (measured; a chaotic run: asserted on the verdicts)
    assert any(r.verdict("update_ratio") for r in reports[:2])
    flagged = [r for r in reports if r.verdict("diverging")]
    assert flagged and flagged[0].loss_history[-1] > 2 * flagged[0].loss_history[0]
    assert all(len(r.loss_history) == k + 1 for k, r in enumerate(reports))


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# -------------------------------------------------------------- fixes that train


def _fixed_and_not(build, batch, seed: int = 0):  # type: ignore[no-untyped-def]
    bad = seeded(build, seed)
    good = copy.deepcopy(bad)
    result = fix(good, batch, CE, generator=torch.Generator().manual_seed(seed))
    return bad, good, result


def test_fix_makes_an_n01_resnet_healthy_and_it_starts_learning_at_once(images) -> None:  # type: ignore[no-untyped-def]
    x, y = images
    bad, good, result = _fixed_and_not(
        lambda: zoo.normal_(zoo.ResNet18(width=8)), (x[:256], y[:256])
    )
    assert not result.before.healthy and result.after.healthy, str(result)
    before = zoo.train(bad, x, y, 40, 0.05)
    after = zoo.train(good, x, y, 40, 0.05)
    # measured over the first 10 steps: 12.2–12.7 unfixed, 2.2–2.3 fixed (ln 10 = 2.30);
    # after 40: 0.57–0.62 unfixed, 0.25–0.50 fixed
    assert zoo.mean(before[:10]) > 3 * LN10 > 2 * zoo.mean(after[:10])
    assert zoo.mean(after[-5:]) < zoo.mean(before[-5:])


def test_fix_makes_a_collapsed_transformer_healthy_and_it_learns(tokens) -> None:  # type: ignore[no-untyped-def]
    def collapsed() -> nn.Module:
        model = zoo.TokenTransformer()
        with torch.no_grad():
            for layer in model.encoder.layers:
                nn.init.normal_(layer.self_attn.in_proj_weight)
        return model

    x, y = tokens
    bad, good, result = _fixed_and_not(collapsed, (x[:256], y[:256]))
    assert "attention_collapse" in kinds(result.before) and result.after.healthy, str(result)
    before = zoo.train(bad, x, y, 60, 3e-3, optimizer="adam")
    after = zoo.train(good, x, y, 60, 3e-3, optimizer="adam")
    # measured over the last 6 steps: 0.19–0.21 unfixed, 1e-4–3e-4 fixed
    assert zoo.mean(after[-6:]) < 0.02 < 0.1 < zoo.mean(before[-6:])


def test_fix_makes_an_n01_lstm_healthy_and_it_learns_to_remember(text) -> None:  # type: ignore[no-untyped-def]
    def n01() -> nn.Module:
        model = zoo.RecurrentLM()
        zoo.normal_(model.rnn)
        return model

    x, y = text
    bad, good, result = _fixed_and_not(n01, (x[:128], y[: 128 * 16]))
    assert {"saturated", "exploding_in_time"} <= kinds(result.before) and result.after.healthy
    before = zoo.train(bad, x, y.reshape(len(x), -1), 100, 1e-2, optimizer="adam")
    after = zoo.train(good, x, y.reshape(len(x), -1), 100, 1e-2, optimizer="adam")
    # the copy task needs 3 steps of memory; measured over the last 10 steps: 1.54–1.55
    # unfixed (no better than guessing the 13 of 16 steps it cannot see), 0.37–0.42 fixed
    assert zoo.mean(after[-10:]) < 0.7 < 1.2 < zoo.mean(before[-10:])


def test_fix_makes_a_deep_n01_tanh_net_healthy_and_it_learns(images) -> None:  # type: ignore[no-untyped-def]
    x, y = images[0].reshape(-1, 64), images[1]
    bad, good, result = _fixed_and_not(
        lambda: zoo.normal_(zoo.mlp([64] + [64] * 30 + [10], nn.Tanh)), (x[:256], y[:256])
    )
    assert {"exploding", "saturated"} <= kinds(result.before) and result.after.healthy
    # the first layer gets LeCun's gain (its input has been through no tanh), the rest 5/3
    assert "xavier_normal(gain='tanh')" in " ".join(result.applied)
    before = zoo.train(bad, x, y, 100, 0.01)
    after = zoo.train(good, x, y, 100, 0.01)
    # measured over the last 10 steps: 2.8–3.0 unfixed, 0.67–1.3 fixed
    assert zoo.mean(after[-10:]) < 0.6 * zoo.mean(before[-10:])


def test_fix_makes_an_n01_vit_healthy(images) -> None:  # type: ignore[no-untyped-def]
    x, y = images
    _, _, result = _fixed_and_not(lambda: zoo.normal_(zoo.ViT()), (x[:256], y[:256]))
    assert {"residual_growth", "attention_collapse"} <= kinds(result.before)
    assert result.after.healthy, str(result)
    assert any("scale_residual" in call for call in result.applied)
    growth = result.after.residuals[-1].stream_out_rms / result.after.residuals[0].stream_in_rms
    assert growth < 3.0  # measured 1.7 (37 before)


def test_fix_leaves_what_no_init_can_change(images) -> None:  # type: ignore[no-untyped-def]
    def vgg() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
            nn.Linear(8 * 64, 10),
        )  # fmt: skip

    _, _, result = _fixed_and_not(vgg, (images[0][:64], images[1][:64]))
    assert result.applied == () and [v.kind for v in result.left] == ["redundant_bias"]


def test_fix_refuses_a_stack() -> None:
    from initlab.models import mlp

    with pytest.raises(TypeError, match="init_members"):
        fix(mlp([4, 8, 1], "relu", members=2), torch.randn(8, 4))


# ------------------------------------------------ third-party models, where they import


def _third_party(name: str):  # type: ignore[no-untyped-def]
    """The package, or a skip: absent, or built for another torch (torchvision's compiled
    operators then fail to register at import with a RuntimeError)."""
    import importlib

    try:
        return importlib.import_module(name)
    except (ImportError, RuntimeError, OSError) as error:
        pytest.skip(f"{name} does not import beside this torch: {error}")


def test_torchvision_resnet18_default_is_healthy_and_n01_is_not() -> None:
    models = _third_party("torchvision.models")
    g = torch.Generator().manual_seed(0)
    batch = torch.randn(8, 3, 64, 64, generator=g), torch.randint(0, 1000, (8,), generator=g)
    model = seeded(lambda: models.resnet18(weights=None))
    assert probe(model, batch, CE).healthy
    assert "high_loss" in kinds(probe(zoo.normal_(model), batch, CE))


def test_timm_vit_default_is_healthy() -> None:
    timm = _third_party("timm")
    model = seeded(lambda: timm.create_model("vit_tiny_patch16_224", pretrained=False))
    g = torch.Generator().manual_seed(0)
    batch = torch.randn(4, 3, 224, 224, generator=g), torch.randint(0, 1000, (4,), generator=g)
    assert probe(model, batch, CE).healthy


# ------------------------------------------------------- found on review, kept fixed


def test_a_batch_first_tagger_with_per_step_labels_is_read_not_refused() -> None:
    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.rnn = nn.Embedding(50, 16), nn.LSTM(16, 32, batch_first=True)
            self.head = nn.Linear(32, 5)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.head(self.rnn(self.embed(ids))[0])  # (N, T, C)

    model = seeded(Tagger)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 50, (8, 20), generator=g), torch.randint(0, 5, (8, 20), generator=g)

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return CE(out.reshape(-1, 5), target.reshape(-1))

    r = probe(model, (x, y), loss)
    assert r.output is not None and r.output.classes == 5
    with torch.no_grad():
        expected = float(loss(model(x), y))
    assert r.output.cross_entropy == pytest.approx(expected, rel=1e-5)
    with Watch(model) as watch:
        value = loss(model(x), y)
        value.backward()
    assert watch.report(loss=value, target=y).output.classes == 5  # type: ignore[union-attr]


def test_watch_under_bf16_autocast_does_not_break_the_step() -> None:
    layer = nn.TransformerEncoderLayer(64, 4, 128, 0.0, batch_first=True, norm_first=True)
    model = seeded(
        lambda: nn.Sequential(
            nn.Embedding(100, 64), nn.TransformerEncoder(layer, 3, enable_nested_tensor=False),
            nn.Linear(64, 10),
        )
    )  # fmt: skip
    x = torch.randint(0, 100, (16, 32), generator=torch.Generator().manual_seed(0))
    with Watch(model) as watch:
        with torch.autocast("cpu", torch.bfloat16):
            out = model(x)
        out.float().square().mean().backward()
    r = watch.report()
    assert len(r.attention) == 3 and r.healthy, [str(v) for v in r.verdicts]


def test_a_strided_he_cnn_with_global_pooling_is_not_vanishing() -> None:
    # its gradient's norm per example (over C·H·W) is flat through the convs (measured
    # 0.0018–0.0020); only the pooled head differs, by √(H·W): one step is no trend
    layers: list[nn.Module] = []
    cin = 3
    for cout, stride in [(32, 1), (64, 2), (64, 1), (128, 2), (128, 1)]:
        layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU()]
        cin = cout
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))
    init.apply(model, weight="he_normal", generator=torch.Generator().manual_seed(0))
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    r = probe(model, x)
    assert r.healthy, [str(v) for v in r.verdicts]
    sizes = [s.size for s in r.layers]
    assert sizes[:2] == [32 * 32 * 32, 64 * 16 * 16] and sizes[-1] == 10


def test_a_negative_loss_that_wobbles_is_not_diverging() -> None:
    from initlab.probe import Thresholds, verdicts

    assert verdicts.diverging([-10.0, -11.0, -10.5], Thresholds()) is None
    assert verdicts.diverging([2.3, 2.6, 7.8], Thresholds()) is not None
    assert verdicts.diverging([2.3, 2.6, math.nan], Thresholds()) is not None


def test_apply_with_no_weight_spec_keeps_recurrent_and_token_weights() -> None:
    model = nn.Module()
    model.cls_token = nn.Parameter(torch.ones(1, 1, 8))
    model.rnn = nn.GRU(8, 8)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    init.apply(model, None, "constant(0.01)")
    after = dict(model.named_parameters())
    assert torch.equal(after["cls_token"], before["cls_token"])
    assert torch.equal(after["rnn.weight_hh_l0"], before["rnn.weight_hh_l0"])
    assert torch.all(after["rnn.bias_ih_l0"] == 0.01)


def test_a_stack_given_one_loss_per_member_judges_each_members_history() -> None:
    from initlab.models import mlp

    stack = mlp([4, 8, 1], "relu", members=2)
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    watch = Watch(stack)
    for losses in ([1.0, 1.0], [0.8, 3.0], [0.7, 9.0]):
        with watch:
            stack(x).square().sum().backward()
        report = watch.report(loss=torch.tensor(losses, dtype=torch.float64))
    assert [p.loss_history for p in report] == [(1.0, 0.8, 0.7), (1.0, 3.0, 9.0)]
    assert report[0].verdict("diverging") is None and report[1].verdict("diverging")
    with pytest.raises(ValueError, match="one per member"):
        watch.report(loss=torch.ones(3))


def test_both_residual_additions_of_a_pre_norm_block_against_their_values() -> None:
    block = seeded(lambda: zoo.ViTBlock(32, 4))
    model = nn.Sequential(nn.Linear(32, 32), block)
    x = torch.randn(8, 17, 32, generator=torch.Generator().manual_seed(0))
    r = probe(model, x)
    with torch.no_grad():  # by hand, from the block's own modules
        s0 = model[0](x)
        h = block.norm1(s0)
        a = block.attn(h, h, h, need_weights=False)[0]
        s1 = s0 + a
        m = block.mlp(block.norm2(s1))
    rms = [float(t.double().square().mean().sqrt()) for t in (s0, a, s1, m, s1 + m)]
    attn, mlp = r.residuals
    assert (attn.name, attn.branch_source, mlp.branch_source) == ("1", "1.attn", "1.mlp.2")
    got = [attn.stream_in_rms, attn.branch_rms, attn.stream_out_rms, mlp.branch_rms]
    assert [*got, mlp.stream_out_rms] == pytest.approx(rms, rel=1e-5)
    assert mlp.stream_in_rms == pytest.approx(attn.stream_out_rms)
