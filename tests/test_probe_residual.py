"""Tests for initlab.probe.residual: norm layers measured against their formulas, and
residual blocks found in models built from torch.nn, driven the way Watch drives them."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import zoo  # torchvision's BasicBlock: the addition in place, a downsample where shapes change
from torch import Tensor, nn
from torch.nn import functional as F

from initlab.norm import StackedBatchNorm
from initlab.probe.residual import NORMS, ResidualFinder, measure_norm, norm_numbers
from initlab.probe.results import ResidualStats


def rms(t: Tensor) -> float:
    return t.detach().double().pow(2).mean().sqrt().item()


def record(
    model: nn.Module, *inputs: Tensor, clone: bool = False, queued: bool = False
) -> tuple[dict[str, ResidualStats], dict[str, Tensor], ResidualFinder]:
    """One forward pass with the hooks Watch attaches: leaf modules (and the attention
    module's output[0]) → leaf_output, containers → block_output (or ``queued``:
    block_numbers, read at once). ``clone`` passes copies of the leaf outputs, as Watch
    does when the model holds in-place modules.

    Returns the blocks found (by name), every container's input as it came in (copied
    before the forward), and the finder."""
    finder = ResidualFinder()
    found: dict[str, ResidualStats] = {}
    inputs_seen: dict[str, Tensor] = {}
    handles = []

    def leaf(name: str, mha: bool) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            out = output[0] if mha else output
            if isinstance(out, Tensor):
                finder.leaf_output(name, out, out.detach().clone() if clone else None)

        return hook

    def block(name: str) -> Any:
        def pre(module: nn.Module, args: tuple[Any, ...]) -> None:
            if args and isinstance(args[0], Tensor):
                inputs_seen[name] = args[0].detach().clone()

        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if queued:
                numbers = finder.block_numbers(name, module, args, output)
                if numbers is not None:
                    found[name] = numbers[1](numbers[0].tolist())
                return
            stats = finder.block_output(name, module, args, output)
            if stats is not None:
                found[name] = stats

        return pre, hook

    for name, module in model.named_modules():
        label = name or type(module).__name__
        mha = isinstance(module, nn.MultiheadAttention)
        if mha or next(module.children(), None) is None:
            handles.append(module.register_forward_hook(leaf(label, mha)))
        else:
            pre, hook = block(label)
            handles.append(module.register_forward_pre_hook(pre))
            handles.append(module.register_forward_hook(hook))
    try:
        model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return found, inputs_seen, finder


# -- models built from torch.nn alone


def resnet(inplace: bool = True) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=inplace),
        nn.Sequential(zoo.BasicBlock(8, 8, inplace=inplace), zoo.BasicBlock(8, 8, inplace=inplace)),
        nn.Sequential(
            zoo.BasicBlock(8, 16, 2, inplace=inplace), zoo.BasicBlock(16, 16, inplace=inplace)
        ),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


class PreNormBlock(nn.Module):
    """x + fc2(gelu(fc1(norm(x))))."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.fc1, self.act, self.fc2 = nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d)

    def branch(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


class LayerScale(nn.Module):
    """timm's LayerScale module: x · γ."""

    def __init__(self, d: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(init * torch.ones(d))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class ViTBlock(nn.Module):
    """A ViT block with layer scale: x + γ₁·attn(norm1(x)), then + γ₂·mlp(norm2(x)).
    ``module_scale``: γ as a LayerScale module (timm); else a functional multiplication."""

    def __init__(self, d: int, heads: int, module_scale: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.module_scale = module_scale
        self.ls1, self.ls2 = LayerScale(d, 0.1), LayerScale(d, 0.1)
        self.gamma1 = nn.Parameter(0.1 * torch.ones(d))
        self.gamma2 = nn.Parameter(0.1 * torch.ones(d))

    def _attn(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        return self.attn(h, h, h, need_weights=False)[0]

    def stream(self, x: Tensor) -> Tensor:
        """The stream after the attention branch (by hand)."""
        return x + (self.ls1(self._attn(x)) if self.module_scale else self.gamma1 * self._attn(x))

    def branch(self, x2: Tensor) -> Tensor:
        mlp = self.mlp(self.norm2(x2))
        return self.ls2(mlp) if self.module_scale else self.gamma2 * mlp

    def forward(self, x: Tensor) -> Tensor:
        if self.module_scale:
            x = x + self.ls1(self._attn(x))
            return x + self.ls2(self.mlp(self.norm2(x)))
        x = x + self.gamma1 * self._attn(x)
        return x + self.gamma2 * self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, d: int = 16, depth: int = 3, module_scale: bool = False) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, d, 4, stride=4)
        self.blocks = nn.Sequential(*[ViTBlock(d, 4, module_scale) for _ in range(depth)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = self.blocks(x)
        return self.head(self.norm(x).mean(dim=1))


# -- measure_norm


def _batch_norm(x: Tensor, gamma: Tensor, beta: Tensor, eps: float) -> Tensor:
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)


def _randomize_affine(module: nn.Module) -> None:
    with torch.no_grad():
        module.weight.normal_(1.0, 0.5)
        module.bias.normal_(0.0, 0.3)


def test_measure_norm_batch_norm_2d_matches_the_formula() -> None:
    bn = nn.BatchNorm2d(6).double()
    _randomize_affine(bn)
    x = 3.0 + 2.0 * torch.randn(8, 6, 5, 5, dtype=torch.float64)
    stats = measure_norm("bn", bn, (x,), bn(x))
    expected = _batch_norm(x, bn.weight, bn.bias, bn.eps)
    assert stats.name == "bn" and stats.kind == "BatchNorm2d"
    assert stats.in_rms == pytest.approx(math.sqrt((x**2).mean().item()), rel=1e-12)
    assert stats.out_rms == pytest.approx(rms(expected), rel=1e-9)
    assert stats.gamma_rms == pytest.approx(rms(bn.weight), rel=1e-12)


def test_measure_norm_layer_norm_matches_the_formula() -> None:
    ln = nn.LayerNorm(12).double()
    _randomize_affine(ln)
    x = 5.0 * torch.randn(4, 7, 12, dtype=torch.float64)
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias
    stats = measure_norm("ln", ln, (x,), ln(x))
    assert stats.in_rms == pytest.approx(rms(x), rel=1e-12)
    assert stats.out_rms == pytest.approx(rms(expected), rel=1e-9)
    assert stats.gamma_rms == pytest.approx(rms(ln.weight), rel=1e-12)


def test_measure_norm_group_norm_matches_the_formula() -> None:
    gn = nn.GroupNorm(3, 6).double()
    _randomize_affine(gn)
    x = 0.1 * torch.randn(5, 6, 4, 4, dtype=torch.float64)
    g = x.reshape(5, 3, -1)
    normed = (g - g.mean(-1, keepdim=True)) / torch.sqrt(
        g.var(-1, unbiased=False, keepdim=True) + gn.eps
    )
    expected = normed.reshape_as(x) * gn.weight.view(1, -1, 1, 1) + gn.bias.view(1, -1, 1, 1)
    stats = measure_norm("gn", gn, (x,), gn(x))
    assert stats.kind == "GroupNorm"
    assert stats.in_rms == pytest.approx(rms(x), rel=1e-12)
    assert stats.out_rms == pytest.approx(rms(expected), rel=1e-9)
    assert stats.gamma_rms == pytest.approx(rms(gn.weight), rel=1e-12)


def test_measure_norm_rms_norm_matches_the_formula() -> None:
    norm = nn.RMSNorm(10, eps=1e-6).double()
    with torch.no_grad():
        norm.weight.normal_(1.0, 0.5)
    x = 4.0 * torch.randn(6, 10, dtype=torch.float64)
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    stats = measure_norm("rms", norm, (x,), norm(x))
    assert stats.kind == "RMSNorm"
    assert stats.in_rms == pytest.approx(rms(x), rel=1e-12)
    assert stats.out_rms == pytest.approx(rms(expected), rel=1e-9)
    assert stats.gamma_rms == pytest.approx(rms(norm.weight), rel=1e-12)


def test_measure_norm_without_an_affine_weight_reports_nan_gamma() -> None:
    ln = nn.LayerNorm(8, elementwise_affine=False)
    x = torch.randn(4, 8)
    stats = measure_norm("ln", ln, (x,), ln(x))
    assert math.isnan(stats.gamma_rms)
    assert stats.out_rms == pytest.approx(1.0, rel=1e-3)  # normalized, no γ


def test_measure_norm_reads_one_member_of_a_stacked_batch_norm() -> None:
    bn = StackedBatchNorm(2, 3)
    with torch.no_grad():
        bn.weight[0].fill_(1.0)
        bn.weight[1].fill_(3.0)
    x = torch.randn(2, 16, 3)
    x[1] *= 10
    y = bn(x)
    second = measure_norm("bn", bn, (x,), y, member=1)
    assert second.in_rms == pytest.approx(rms(x[1]), rel=1e-6)
    assert second.out_rms == pytest.approx(rms(y[1]), rel=1e-6)
    assert second.gamma_rms == pytest.approx(3.0)
    both = measure_norm("bn", bn, (x,), y)
    assert both.gamma_rms == pytest.approx(math.sqrt(5.0))


def test_norms_holds_the_normalization_layers() -> None:
    norms = [
        nn.BatchNorm1d(3),
        nn.BatchNorm2d(3),
        nn.BatchNorm3d(3),
        nn.InstanceNorm2d(3),
        nn.LayerNorm(3),
        nn.GroupNorm(1, 3),
        nn.RMSNorm(3),
        nn.LocalResponseNorm(2),
        StackedBatchNorm(2, 3),
    ]
    assert all(isinstance(m, NORMS) for m in norms)
    assert not any(isinstance(m, NORMS) for m in (nn.Linear(3, 3), nn.ReLU(), nn.Dropout()))


# -- residual blocks


def test_resnet_identity_blocks_are_found_and_downsample_blocks_are_not() -> None:
    model = resnet().train()
    x = torch.randn(4, 3, 8, 8)
    # The in-place ReLU overwrites bn2's output after the addition: Watch then passes
    # copies, as here.
    found, seen, _ = record(model, x, clone=True)
    assert sorted(found) == ["3.0", "3.1", "4.1"]  # not 4.0 (downsample), nor 3, 4, root
    for name, stats in found.items():
        block = model.get_submodule(name)
        x_in = seen[name]
        with torch.no_grad():
            branch = block.branch(x_in)
        assert stats.branch_source == f"{name}.bn2"
        assert stats.stream_in_rms == pytest.approx(rms(x_in), rel=1e-6)
        assert stats.stream_out_rms == pytest.approx(rms(F.relu(branch + x_in)), rel=1e-5)
        assert stats.branch_rms == pytest.approx(rms(branch), rel=1e-5)


def test_in_place_addition_without_copies_recovers_the_branch() -> None:
    # ReLU not in place: nothing but the addition itself changes bn2's output, so the
    # branch is read back as out − x.
    model = resnet(inplace=False).train()
    found, seen, _ = record(model, torch.randn(4, 3, 8, 8))
    assert sorted(found) == ["3.0", "3.1", "4.1"]
    stats = found["3.1"]
    x_in = seen["3.1"]
    with torch.no_grad():
        branch = model.get_submodule("3.1").branch(x_in)
    assert stats.branch_rms == pytest.approx(rms(branch), rel=1e-5)


def test_an_overwritten_branch_reads_nan_rather_than_wrong_values() -> None:
    # In-place ReLU after the in-place addition, and no copies: bn2's output is gone.
    found, _, _ = record(resnet().train(), torch.randn(4, 3, 8, 8))
    assert sorted(found) == ["3.0", "3.1", "4.1"]
    assert all(math.isnan(s.branch_rms) for s in found.values())
    assert found["3.0"].branch_source == "3.0.bn2"
    assert all(math.isfinite(s.stream_out_rms) for s in found.values())


def _encoder(norm_first: bool, dropout: float = 0.1) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        16, 4, 32, dropout=dropout, batch_first=True, norm_first=norm_first
    )
    return nn.TransformerEncoder(layer, 3, enable_nested_tensor=False).double()


def _by_hand(layer: nn.TransformerEncoderLayer, x: Tensor) -> tuple[Tensor, Tensor]:
    """The layer's output and the branch of its last addition (the feed-forward), from
    its submodules, in eval mode."""
    ff = lambda h: layer.linear2(layer.activation(layer.linear1(h)))  # noqa: E731
    sa = lambda h: layer.self_attn(h, h, h, need_weights=False)[0]  # noqa: E731
    if layer.norm_first:
        x2 = x + sa(layer.norm1(x))
        branch = ff(layer.norm2(x2))
        return x2 + branch, branch
    x1 = layer.norm1(x + sa(x))
    branch = ff(x1)
    return layer.norm2(x1 + branch), branch


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_layers_are_found_with_their_feed_forward_branch(
    norm_first: bool,
) -> None:
    model = _encoder(norm_first).eval()
    # The first layer's input needs a grad_fn (or requires_grad) for its addition to be
    # traced to it, as it has behind an embedding.
    x = torch.randn(3, 7, 16, dtype=torch.float64, requires_grad=True)
    found, seen, _ = record(model, x)
    assert sorted(found) == ["layers.0", "layers.1", "layers.2"]  # not the encoder
    for name, stats in found.items():
        layer = model.get_submodule(name)
        assert isinstance(layer, nn.TransformerEncoderLayer)
        with torch.no_grad():
            out, branch = _by_hand(layer, seen[name])
        assert stats.branch_source == f"{name}.linear2"
        assert stats.stream_in_rms == pytest.approx(rms(seen[name]), rel=1e-6)
        assert stats.stream_out_rms == pytest.approx(rms(out), rel=1e-6)
        assert stats.branch_rms == pytest.approx(rms(branch), rel=1e-6)


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_layers_in_training_name_the_layer_under_the_dropout(
    norm_first: bool,
) -> None:
    model = _encoder(norm_first, dropout=0.2).train()
    found, _, _ = record(model, torch.randn(3, 7, 16, dtype=torch.float64, requires_grad=True))
    assert sorted(found) == ["layers.0", "layers.1", "layers.2"]
    for name, stats in found.items():
        assert stats.branch_source == f"{name}.linear2"  # not dropout2
        assert math.isfinite(stats.branch_rms) and stats.branch_rms > 0


def test_pre_norm_residual_mlp() -> None:
    model = nn.Sequential(
        nn.Linear(5, 16), PreNormBlock(16), PreNormBlock(16), PreNormBlock(16), nn.Linear(16, 2)
    )
    found, seen, _ = record(model, torch.randn(32, 5))
    assert sorted(found) == ["1", "2", "3"]
    for name, stats in found.items():
        block = model.get_submodule(name)
        with torch.no_grad():
            branch = block.branch(seen[name])
        assert stats.branch_source == f"{name}.fc2"
        assert stats.branch_rms == pytest.approx(rms(branch), rel=1e-6)
        assert stats.stream_out_rms == pytest.approx(rms(seen[name] + branch), rel=1e-6)


@pytest.mark.parametrize("module_scale", [False, True])
def test_vit_blocks_with_layer_scale(module_scale: bool) -> None:
    model = ViT(module_scale=module_scale).double().eval()
    found, seen, _ = record(model, torch.randn(2, 3, 16, 16, dtype=torch.float64))
    assert sorted(found) == ["blocks.0", "blocks.1", "blocks.2"]  # not blocks, not root
    for name, stats in found.items():
        block = model.get_submodule(name)
        with torch.no_grad():
            x2 = block.stream(seen[name])
            branch = block.branch(x2)
        # The branch is γ·mlp(…): the scaled values, made by the MLP's last Linear.
        assert stats.branch_source == f"{name}.mlp.2"
        assert stats.branch_rms == pytest.approx(rms(branch), rel=1e-9)
        assert stats.stream_out_rms == pytest.approx(rms(x2 + branch), rel=1e-9)


def test_plain_mlp_and_a_same_width_container_are_not_residual() -> None:
    inner = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
    model = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), inner, nn.Linear(8, 1))
    found, _, _ = record(model, torch.randn(16, 8))
    assert found == {}


class BertSelfOutput(nn.Module):
    """Hugging Face BERT's residual: the stream comes in as the second argument."""

    def __init__(self, din: int, d: int) -> None:
        super().__init__()
        self.dense, self.LayerNorm, self.dropout = nn.Linear(din, d), nn.LayerNorm(d), nn.Dropout()

    def forward(self, hidden_states: Tensor, input_tensor: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.self = nn.MultiheadAttention(d, 2, batch_first=True)
        self.output = BertSelfOutput(d, d)

    def forward(self, x: Tensor) -> Tensor:
        return self.output(self.self(x, x, x, need_weights=False)[0], x)


class BertLayer(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.attention = BertAttention(d)
        self.intermediate = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU())
        self.output = BertSelfOutput(4 * d, d)

    def forward(self, x: Tensor) -> Tensor:
        a = self.attention(x)
        return self.output(self.intermediate(a), a)


def test_bert_style_residuals_whose_stream_is_the_second_argument() -> None:
    model = nn.Sequential(nn.Linear(8, 8), BertLayer(8), BertLayer(8)).eval()
    found, seen, _ = record(model, torch.randn(2, 5, 8))
    # Each addition once, by the module that makes it: not BertAttention, not BertLayer.
    assert sorted(found) == ["1.attention.output", "1.output", "2.attention.output", "2.output"]
    layer = model[2]
    with torch.no_grad():
        a = layer.attention(seen["2"])
        branch = layer.output.dense(layer.intermediate(a))
    stats = found["2.output"]
    assert stats.branch_source == "2.output.dense"
    assert found["2.attention.output"].branch_source == "2.attention.output.dense"
    assert stats.stream_in_rms == pytest.approx(rms(a), rel=1e-6)
    assert stats.branch_rms == pytest.approx(rms(branch), rel=1e-6)


class Functional(nn.Module):
    """A block whose branch ends in a functional op, ``kind``. All but "sin" apply tanh
    after the addition, so the branch cannot be read back as y − x."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.fc = nn.Linear(8, 8)
        self.gamma = nn.Parameter(torch.linspace(0.1, 1.0, 8))

    def branch(self, x: Tensor) -> Tensor:
        h = self.fc(x)
        return {
            "relu": lambda: F.relu(h),
            "alpha": lambda: 0.5 * h,
            "scalar": lambda: h / 4.0,
            "gamma": lambda: self.gamma * h,
            "cast": lambda: h,
            "sin": lambda: h.sin(),
            "sin, tanh": lambda: h.sin(),
        }[self.kind]()

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)
        if self.kind == "relu":
            return torch.tanh(x + F.relu(h))
        if self.kind == "alpha":
            return torch.tanh(torch.add(x, h, alpha=0.5))
        if self.kind == "scalar":
            return torch.tanh(x + h / 4.0)
        if self.kind == "gamma":
            return torch.tanh(x + self.gamma * h)
        if self.kind == "cast":  # as autocast does
            return torch.tanh(x + h.double()).float()
        if self.kind == "sin":
            return x + h.sin()
        return torch.tanh(x + h.sin())


@pytest.mark.parametrize("kind", ["relu", "alpha", "scalar", "gamma", "cast"])
def test_branches_ending_in_functional_ops_are_redone(kind: str) -> None:
    model = nn.Sequential(nn.Linear(4, 8), Functional(kind), nn.Linear(8, 1))
    found, seen, _ = record(model, torch.randn(16, 4))
    assert list(found) == ["1"]
    with torch.no_grad():
        branch = model[1].branch(seen["1"])
    assert found["1"].branch_rms == pytest.approx(rms(branch), rel=1e-6)
    assert found["1"].branch_source == "1.fc"


def test_a_branch_not_redone_is_y_minus_x_where_the_addition_is_last() -> None:
    model = nn.Sequential(nn.Linear(4, 8), Functional("sin"), nn.Linear(8, 1))
    found, seen, _ = record(model, torch.randn(16, 4))
    with torch.no_grad():
        branch = model[1].branch(seen["1"])
    # y − x carries the float32 rounding of the stream (~1e-7 of |x|).
    assert found["1"].branch_rms == pytest.approx(rms(branch), rel=1e-5)
    assert found["1"].branch_source == ""  # sin is no module's output, nor walked through
    # After tanh, y − x is not the branch: nan, not a wrong number.
    model[1].kind = "sin, tanh"
    found, _, _ = record(model, torch.randn(16, 4))
    assert list(found) == ["1"] and math.isnan(found["1"].branch_rms)


class PostRMSNorm(nn.Module):
    """norm(x + fc(x)) with nn.RMSNorm (written out in ops on the CPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.norm = nn.Linear(8, 8), nn.RMSNorm(8)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.fc(x))


def test_post_rms_norm_block_is_found() -> None:
    model = nn.Sequential(nn.Linear(4, 8), PostRMSNorm(), PostRMSNorm())
    found, seen, _ = record(model, torch.randn(16, 4))
    assert sorted(found) == ["1", "2"]
    with torch.no_grad():
        branch = model[2].fc(seen["2"])
    assert found["2"].branch_rms == pytest.approx(rms(branch), rel=1e-6)


def test_block_on_an_input_that_requires_grad() -> None:
    block = PreNormBlock(6)
    x = torch.randn(10, 6, requires_grad=True)
    found, _, _ = record(nn.Sequential(block), x)
    assert list(found) == ["0"]
    assert found["0"].branch_rms == pytest.approx(rms(block.branch(x)), rel=1e-6)
    # Without grad on the input, nothing says the addition's operand is the input.
    found, _, _ = record(nn.Sequential(block), x.detach())
    assert found == {}


def test_finished_containers_let_go_of_their_leaf_outputs() -> None:
    model = resnet().train()
    leaves = sum(1 for m in model.modules() if next(m.children(), None) is None)
    _, _, finder = record(model, torch.randn(2, 3, 8, 8), clone=True)
    # What stays: the top level's leaves and each top-level container's output chain.
    assert len(finder._leaves) < leaves / 2


def test_queued_numbers_give_the_same_stats_as_the_reading_forms() -> None:
    ln = nn.LayerNorm(8)
    x = torch.randn(4, 8)
    numbers, build = norm_numbers("ln", ln, (x,), ln(x))
    assert numbers.shape == (3,) and numbers.dtype == torch.float64
    assert build(numbers.tolist()) == measure_norm("ln", ln, (x,), ln(x))

    model = ViT().eval()
    x = torch.randn(2, 3, 16, 16)
    read, _, _ = record(model, x)
    queued, _, _ = record(model, x, queued=True)
    assert len(read) == 3 and queued == read
