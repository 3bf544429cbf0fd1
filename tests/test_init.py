"""initlab.init against independent references: formulas, scipy, torch.nn.init."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from unittest import mock

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats
from torch import nn
from torch.nn import functional as F

from initlab import init

P_MIN = 1e-4  # KS acceptance: a correct sampler with a fixed generator passes with margin


def ks_pvalue(t: torch.Tensor, dist: stats.rv_continuous) -> float:
    return float(stats.kstest(t.detach().double().flatten().numpy(), dist.cdf).pvalue)


def fans_of(shape: tuple[int, ...]) -> tuple[int, int]:
    """The fans, computed here from the shape (out, in, *kernel), not by initlab."""
    rf = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * rf, shape[0] * rf


# ----------------------------------------------------------------------------- fans


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((10, 20), (20, 10)),  # Linear(20, 10)
        ((8, 4, 5), (20, 40)),  # Conv1d(4, 8, 5)
        ((64, 3, 3, 3), (27, 576)),  # Conv2d(3, 64, 3)
        ((16, 8, 3, 3, 3), (216, 432)),  # Conv3d(8, 16, 3)
    ],
)
def test_fans_match_layer_definition(shape: tuple[int, ...], expected: tuple[int, int]) -> None:
    assert init.calculate_fans(shape) == expected
    assert init.calculate_fans(torch.empty(shape)) == expected
    assert nn.init._calculate_fan_in_and_fan_out(torch.empty(shape)) == expected


def test_conv_transpose_fans_swap_the_first_two_dims() -> None:
    layer = nn.ConvTranspose2d(in_channels=6, out_channels=4, kernel_size=3)
    # Each output element sums over in_channels · k · k inputs (stride 1).
    assert init.calculate_fans(layer.weight, transposed=True) == (6 * 9, 4 * 9)
    assert init.calculate_fans(layer.weight) == (4 * 9, 6 * 9)


# ----------------------------------------------------------------------------- KS tests


def _uniform(bound: float) -> stats.rv_continuous:
    return stats.uniform(loc=-bound, scale=2 * bound)


def _fan(shape: tuple[int, ...], mode: str) -> float:
    fan_in, fan_out = fans_of(shape)
    return {
        "fan_in": fan_in,
        "fan_out": fan_out,
        "fan_avg": (fan_in + fan_out) / 2,
        "fan_geo_avg": math.sqrt(fan_in * fan_out),
    }[mode]


TRUNC_2 = stats.truncnorm(-2, 2).std()  # scipy's std of N(0,1) truncated to ±2


KS_CASES: list[tuple[str, tuple[int, ...], Callable[..., torch.Tensor], stats.rv_continuous]] = [
    (
        "uniform",
        (200, 300),
        lambda t, g: init.uniform_(t, -0.3, 0.7, generator=g),
        stats.uniform(loc=-0.3, scale=1.0),
    ),
    (
        "normal",
        (200, 300),
        lambda t, g: init.normal_(t, 0.5, 2.0, generator=g),
        stats.norm(0.5, 2.0),
    ),
    (
        "small_random",
        (200, 300),
        lambda t, g: init.parse_spec("small_random")(t, generator=g),
        stats.norm(0, 0.01),
    ),
    (
        "large_random",
        (200, 300),
        lambda t, g: init.parse_spec("large_random")(t, generator=g),
        stats.norm(0, 10.0),
    ),
    (
        "trunc_normal_sigma",
        (200, 300),
        lambda t, g: init.trunc_normal_(t, std=0.3, bounds="sigma", generator=g),
        stats.truncnorm(-2, 2, scale=0.3 / TRUNC_2),
    ),
    (
        # The default is torch's convention: absolute bounds, no σ correction.
        "trunc_normal_default",
        (200, 300),
        lambda t, g: init.trunc_normal_(t, 0.2, 0.5, -0.6, 1.0, g),
        stats.truncnorm((-0.6 - 0.2) / 0.5, (1.0 - 0.2) / 0.5, loc=0.2, scale=0.5),
    ),
    (
        "trunc_normal_absolute",
        (200, 300),
        lambda t, g: init.trunc_normal_(t, 0.0, 1.0, -1.5, 2.5, bounds="absolute", generator=g),
        stats.truncnorm(-1.5, 2.5),
    ),
    (
        "xavier_uniform",
        (300, 200),
        lambda t, g: init.xavier_uniform_(t, gain=1.7, generator=g),
        _uniform(1.7 * math.sqrt(6 / 500)),
    ),
    (
        "xavier_normal",
        (300, 200),
        lambda t, g: init.xavier_normal_(t, "tanh", generator=g),
        stats.norm(0, 5 / 3 * math.sqrt(2 / 500)),
    ),
    (
        "xavier_normal_conv",
        (32, 16, 3, 3),
        lambda t, g: init.xavier_normal_(t, generator=g),
        stats.norm(0, math.sqrt(2 / (16 * 9 + 32 * 9))),
    ),
    (
        "lecun_uniform",
        (300, 200),
        lambda t, g: init.lecun_uniform_(t, generator=g),
        _uniform(math.sqrt(3 / 200)),
    ),
    (
        "lecun_normal",
        (64, 8, 5),
        lambda t, g: init.lecun_normal_(t, generator=g),
        stats.norm(0, math.sqrt(1 / 40)),
    ),
    (
        "torch_default",
        (300, 200),
        lambda t, g: init.torch_default_(t, generator=g),
        _uniform(1 / math.sqrt(200)),
    ),
    (
        "torch_default_bias",
        (5000,),
        lambda t, g: init.torch_default_(t, fan_in=50, generator=g),
        _uniform(1 / math.sqrt(50)),
    ),
]
for _mode in ("fan_in", "fan_out", "fan_avg", "fan_geo_avg"):
    _shape = (48, 24, 3, 3)
    KS_CASES += [
        (
            f"kaiming_normal_{_mode}",
            _shape,
            lambda t, g, m=_mode: init.kaiming_normal_(t, mode=m, nonlinearity="relu", generator=g),
            stats.norm(0, math.sqrt(2 / _fan(_shape, _mode))),
        ),
        (
            f"kaiming_uniform_{_mode}",
            _shape,
            lambda t, g, m=_mode: init.kaiming_uniform_(t, 0.2, m, "leaky_relu", generator=g),
            _uniform(math.sqrt(2 / (1 + 0.2**2)) * math.sqrt(3 / _fan(_shape, _mode))),
        ),
    ]
    for _dist, _ref in (
        ("normal", lambda s: stats.norm(0, s)),
        ("uniform", lambda s: _uniform(math.sqrt(3) * s)),
        ("truncated_normal", lambda s: stats.truncnorm(-2, 2, scale=s / TRUNC_2)),
    ):
        KS_CASES.append(
            (
                f"variance_scaling_{_mode}_{_dist}",
                _shape,
                lambda t, g, m=_mode, d=_dist: init.variance_scaling_(t, 3.0, m, d, generator=g),
                _ref(math.sqrt(3.0 / _fan(_shape, _mode))),
            )
        )


@pytest.mark.numerics
@pytest.mark.parametrize(("name", "shape", "fill", "dist"), KS_CASES, ids=[c[0] for c in KS_CASES])
def test_random_scheme_matches_its_distribution(
    name: str,
    shape: tuple[int, ...],
    fill: Callable[..., torch.Tensor],
    dist: stats.rv_continuous,
    gen: torch.Generator,
) -> None:
    t = fill(torch.empty(shape), gen)
    assert ks_pvalue(t, dist) > P_MIN


def test_ks_test_rejects_a_wrong_std(gen: torch.Generator) -> None:
    # The KS check has power: a 5 % error in std is detected at this sample size.
    t = init.kaiming_normal_(torch.empty(300, 200), nonlinearity="relu", generator=gen)
    assert ks_pvalue(t, stats.norm(0, 1.05 * math.sqrt(2 / 200))) < P_MIN


def test_sparse_nonzeros_are_normal_and_zeros_are_exact_per_column(gen: torch.Generator) -> None:
    rows, cols, sparsity = 400, 60, 0.3
    t = init.sparse_(torch.empty(rows, cols), sparsity, std=0.05, generator=gen)
    assert ((t == 0).sum(dim=0) == math.ceil(sparsity * rows)).all()
    assert ks_pvalue(t[t != 0], stats.norm(0, 0.05)) > P_MIN


def test_sparse_values_are_torchs_draws_and_the_pattern_follows_the_generator() -> None:
    ours = init.sparse_(torch.empty(50, 20), 0.2, generator=torch.Generator().manual_seed(7))
    draws = torch.empty(50, 20).normal_(0, 0.01, generator=torch.Generator().manual_seed(7))
    kept = ours != 0
    assert torch.equal(ours[kept], draws[kept])
    again = init.sparse_(torch.empty(50, 20), 0.2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(ours, again)  # torch's own sparse_ would differ: it uses the global RNG


# ----------------------------------------------------------------------------- bit identity


def _same_state(
    a: Callable[..., object], b: Callable[..., object], shape: tuple[int, ...], dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = torch.empty(shape, dtype=dtype), torch.empty(shape, dtype=dtype)
    a(x, torch.Generator().manual_seed(42))
    b(y, torch.Generator().manual_seed(42))
    return x, y


TORCH_PAIRS: list[tuple[str, Callable[..., object], Callable[..., object]]] = [
    (
        "uniform",
        lambda t, g: init.uniform_(t, -2, 3, generator=g),
        lambda t, g: nn.init.uniform_(t, -2, 3, generator=g),
    ),
    (
        "normal",
        lambda t, g: init.normal_(t, 1, 0.2, generator=g),
        lambda t, g: nn.init.normal_(t, 1, 0.2, generator=g),
    ),
    (
        "trunc_normal_absolute",
        lambda t, g: init.trunc_normal_(t, 0, 1, -2, 2, bounds="absolute", generator=g),
        lambda t, g: nn.init.trunc_normal_(t, 0, 1, -2, 2, generator=g),
    ),
    (
        "trunc_normal_absolute_narrow",
        lambda t, g: init.trunc_normal_(t, 0.1, 0.5, 0.0, 0.2, bounds="absolute", generator=g),
        lambda t, g: nn.init.trunc_normal_(t, 0.1, 0.5, 0.0, 0.2, generator=g),
    ),
    (
        "xavier_uniform",
        lambda t, g: init.xavier_uniform_(t, gain="tanh", generator=g),
        lambda t, g: nn.init.xavier_uniform_(t, gain=5 / 3, generator=g),
    ),
    (
        "xavier_normal",
        lambda t, g: init.xavier_normal_(t, 0.7, generator=g),
        lambda t, g: nn.init.xavier_normal_(t, 0.7, generator=g),
    ),
    (
        "kaiming_uniform",
        lambda t, g: init.kaiming_uniform_(t, generator=g),
        lambda t, g: nn.init.kaiming_uniform_(t, generator=g),
    ),
    (
        "kaiming_uniform_leaky",
        lambda t, g: init.kaiming_uniform_(t, 0.1, "fan_out", generator=g),
        lambda t, g: nn.init.kaiming_uniform_(t, 0.1, "fan_out", generator=g),
    ),
    (
        "kaiming_normal_relu",
        lambda t, g: init.kaiming_normal_(t, nonlinearity="relu", generator=g),
        lambda t, g: nn.init.kaiming_normal_(t, nonlinearity="relu", generator=g),
    ),
    (
        "kaiming_normal_tanh",
        lambda t, g: init.kaiming_normal_(t, mode="fan_out", nonlinearity="tanh", generator=g),
        lambda t, g: nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="tanh", generator=g),
    ),
    (
        "he_normal_spec",
        lambda t, g: init.parse_spec("he_normal")(t, generator=g),
        lambda t, g: nn.init.kaiming_normal_(t, nonlinearity="relu", generator=g),
    ),
    (
        "orthogonal",
        lambda t, g: init.orthogonal_(t, 1.3, generator=g),
        lambda t, g: nn.init.orthogonal_(t, 1.3, generator=g),
    ),
    (
        "eye",
        lambda t, g: init.eye_(t.view(t.shape[0], -1)),
        lambda t, g: nn.init.eye_(t.view(t.shape[0], -1)),
    ),
    ("zeros", lambda t, g: init.zeros_(t), lambda t, g: nn.init.zeros_(t)),
    ("ones", lambda t, g: init.ones_(t), lambda t, g: nn.init.ones_(t)),
    ("constant", lambda t, g: init.constant_(t, 0.37), lambda t, g: nn.init.constant_(t, 0.37)),
]


@pytest.mark.numerics
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(17, 33), (40, 6), (8, 4, 5), (12, 6, 3, 3), (4, 4, 2, 3, 3)])
@pytest.mark.parametrize(("name", "ours", "theirs"), TORCH_PAIRS, ids=[p[0] for p in TORCH_PAIRS])
def test_bit_identical_to_torch(
    name: str,
    ours: Callable[..., object],
    theirs: Callable[..., object],
    shape: tuple[int, ...],
    dtype: torch.dtype,
) -> None:
    x, y = _same_state(ours, theirs, shape, dtype)
    assert torch.equal(x, y)


@pytest.mark.numerics
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("shape", [(8, 4, 5), (6, 6, 3, 3), (4, 2, 3, 3, 3)])
def test_dirac_bit_identical_to_torch(shape: tuple[int, ...], groups: int) -> None:
    assert torch.equal(
        init.dirac_(torch.empty(shape), groups), nn.init.dirac_(torch.empty(shape), groups)
    )


@pytest.mark.numerics
@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Linear(37, 11),
        lambda: nn.Conv1d(4, 6, 5),
        lambda: nn.Conv2d(3, 8, 3, groups=1),
        lambda: nn.Conv2d(4, 8, 3, groups=2),
        lambda: nn.ConvTranspose2d(5, 7, 3),
        lambda: nn.Conv3d(2, 3, 2),
    ],
)
def test_torch_default_reproduces_the_layers_own_init(make: Callable[[], nn.Module]) -> None:
    torch.manual_seed(3)
    layer = make()
    weight, bias = layer.weight, layer.bias
    assert isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor)
    torch.manual_seed(3)
    w = init.torch_default_(torch.empty_like(weight))
    b = init.torch_default_(
        torch.empty_like(bias), fan_in=nn.init._calculate_fan_in_and_fan_out(weight)[0]
    )
    assert torch.equal(w, weight) and torch.equal(b, bias)
    # and the formula it states: U(±1/√fan_in)
    fan_in = fans_of(tuple(weight.shape))[0]
    assert init.describe("torch_default", weight.shape).high == pytest.approx(
        1 / math.sqrt(fan_in), rel=1e-12
    )


@pytest.mark.numerics
def test_apply_torch_default_equals_fresh_layers() -> None:
    def make() -> nn.Module:
        return nn.Sequential(
            nn.Linear(6, 9),
            nn.Conv1d(9, 4, 3, bias=False),
            nn.ConvTranspose1d(4, 2, 3),
            nn.Conv2d(4, 6, 3, groups=2),
            nn.Bilinear(3, 4, 5),
            nn.Embedding(7, 3, padding_idx=1),
        )

    torch.manual_seed(5)
    fresh = make()
    model = make()
    torch.manual_seed(5)
    init.apply(model, "torch_default", "torch_default", generator=None)
    for a, b in zip(fresh.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------- trunc normal


@pytest.mark.parametrize(
    ("mean", "std", "a", "b"),
    [(0.0, 1.0, -2.0, 2.0), (0.3, 0.05, -2.0, 2.0), (1.0, 2.0, -1.0, 3.0), (0.0, 0.1, -3.0, 1.0)],
)
def test_trunc_normal_sigma_mode_draws_the_requested_std_within_bounds(
    mean: float, std: float, a: float, b: float, gen: torch.Generator
) -> None:
    t = init.trunc_normal_(
        torch.empty(1_000_000, dtype=torch.float64), mean, std, a, b, gen, bounds="sigma"
    )
    assert t.std().item() == pytest.approx(std, rel=0.01)
    assert t.mean().item() == pytest.approx(mean, abs=0.01 * std)
    # Bounds, derived here from scipy: the underlying σ' makes the truncated std equal std.
    z = stats.truncnorm(a, b)
    scale = std / z.std()
    loc = mean - scale * z.mean()
    assert t.min().item() >= loc + a * scale - 1e-12
    assert t.max().item() <= loc + b * scale + 1e-12
    draw = init.describe(f"trunc_normal({mean}, {std}, {a}, {b}, bounds='sigma')", (10,))
    assert (draw.low, draw.high) == pytest.approx((loc + a * scale, loc + b * scale), rel=1e-9)


def test_trunc_normal_absolute_mode_stays_in_bounds_and_reports_its_true_std(
    gen: torch.Generator,
) -> None:
    t = init.trunc_normal_(
        torch.empty(1_000_000, dtype=torch.float64),
        0.0,
        1.0,
        -2.0,
        2.0,
        bounds="absolute",
        generator=gen,
    )
    assert t.min() >= -2.0 and t.max() <= 2.0
    expected = stats.truncnorm(-2, 2).std()  # ≈ 0.8796: no correction in torch's convention
    assert t.std().item() == pytest.approx(expected, rel=0.01)
    for spec in ("trunc_normal(bounds='absolute')", "trunc_normal", "truncated_normal"):
        # absolute is the default, as in torch
        assert init.describe(spec, (3,)).std == pytest.approx(expected, rel=1e-12)


def test_truncated_normal_std_matches_scipy_and_keras_constant() -> None:
    assert init.truncated_normal_std() == pytest.approx(0.87962566103423978, rel=1e-14)
    for a, b in [(-1.0, 1.0), (-3.0, 0.5), (0.5, 4.0), (2.0, 6.0)]:
        assert init.truncated_normal_std(a, b) == pytest.approx(
            stats.truncnorm(a, b).std(), rel=1e-9
        )


# ----------------------------------------------------------------------------- orthogonal


@pytest.mark.numerics
@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (50, 50), (16, 8, 3, 3), (8, 16, 5)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal_gram_is_gain_squared_identity(
    shape: tuple[int, ...], gain: float, gen: torch.Generator
) -> None:
    w = init.orthogonal_(torch.empty(shape), gain, generator=gen).reshape(shape[0], -1)
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    assert torch.allclose(gram, gain**2 * torch.eye(gram.shape[0]), atol=1e-5 * gain**2)


def test_orthogonal_works_in_half_precision(gen: torch.Generator) -> None:
    w = init.orthogonal_(torch.empty(32, 16, dtype=torch.float16), generator=gen).float()
    assert torch.allclose(w.T @ w, torch.eye(16), atol=5e-3)


def test_orthogonal_reported_std_is_the_rms_entry(gen: torch.Generator) -> None:
    w = init.orthogonal_(torch.empty(30, 120), 2.0, generator=gen)
    assert init.describe("orthogonal(2.0)", (30, 120)).std == pytest.approx(
        w.pow(2).mean().sqrt().item(), rel=1e-5
    )


# ----------------------------------------------------------------------------- gains


def _quad_gain(phi: Callable[[np.ndarray], np.ndarray]) -> float:
    """1/√E[φ(z)²] by scipy's adaptive quadrature, split at 0 where most kinks are."""

    def f(z: float) -> float:
        return float(phi(np.array([z]))[0] ** 2 * stats.norm.pdf(z))

    pieces = [
        (-np.inf, -3),
        (-3, -1),
        (-1, -0.5),
        (-0.5, 0),
        (0, 0.5),
        (0.5, 1),
        (1, 3),
        (3, 6),
        (6, np.inf),
    ]
    moment = sum(
        integrate.quad(f, lo, hi, epsabs=1e-14, epsrel=1e-13, limit=200)[0] for lo, hi in pieces
    )
    return 1 / math.sqrt(moment)


def _numpy_act(name: str) -> Callable[[np.ndarray], np.ndarray]:
    fn = getattr(
        F, {"swish": "silu", "gelu_tanh": "gelu", "identity": "linear"}.get(name, name), None
    )
    if name in ("linear", "identity") or name.startswith("conv"):
        return lambda z: z
    if name == "gelu_tanh":
        return lambda z: F.gelu(torch.from_numpy(z), approximate="tanh").numpy()
    if name in ("prelu", "rrelu"):
        slope = 0.25 if name == "prelu" else (1 / 8 + 1 / 3) / 2
        return lambda z: np.where(z > 0, z, slope * z)
    if name in ("sigmoid", "tanh"):
        return {"sigmoid": special.expit, "tanh": np.tanh}[name]
    assert fn is not None, name
    return lambda z: fn(torch.from_numpy(z)).numpy()


@pytest.mark.parametrize("name", sorted(init.ACTIVATIONS))
def test_measured_gain_matches_adaptive_quadrature(name: str) -> None:
    assert init.calculate_gain(name, method="measured") == pytest.approx(
        _quad_gain(_numpy_act(name)), rel=1e-8
    )


def test_measured_gain_exact_cases() -> None:
    assert init.calculate_gain("relu", method="measured") == pytest.approx(math.sqrt(2), abs=1e-6)
    assert init.calculate_gain("linear", method="measured") == pytest.approx(1.0, abs=1e-6)
    assert init.calculate_gain(lambda z: z, method="measured") == pytest.approx(1.0, abs=1e-6)
    assert init.calculate_gain(F.relu) == pytest.approx(math.sqrt(2), abs=1e-6)
    # leaky ReLU: E[φ²] = (1 + s²)/2 exactly, which is also torch's formula
    for s in (0.01, 0.2, 0.5):
        expected = math.sqrt(2 / (1 + s**2))
        assert init.calculate_gain("leaky_relu", s) == pytest.approx(expected, rel=1e-15)
        assert init.calculate_gain("leaky_relu", s, method="measured") == pytest.approx(
            expected, abs=1e-9
        )


@pytest.mark.parametrize(
    ("name", "torch_value", "measured"),
    [("tanh", 5 / 3, 1.5925374197), ("sigmoid", 1.0, 1.8462285453), ("selu", 0.75, 1.0)],
)
def test_table_and_measured_conventions_both_pinned(
    name: str, torch_value: float, measured: float
) -> None:
    assert init.calculate_gain(name) == nn.init.calculate_gain(name) == pytest.approx(torch_value)
    assert init.calculate_gain(name, method="measured") == pytest.approx(measured, abs=1e-9)
    note = init.ACTIVATIONS[name].note  # the docs give both numbers
    assert "torch" in note and ("measured" in note or "1.5925" in note)


def test_selu_docs_give_both_numbers() -> None:
    note = init.ACTIVATIONS["selu"].note
    assert "3/4" in note and "measured" in note
    doc = init.calculate_gain.__doc__ or ""
    assert "3/4" in doc and "selu = 1" in doc and "5/3" in doc


@pytest.mark.parametrize(
    "name", ["linear", "conv2d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]
)
def test_table_equals_torch_where_torch_has_a_value(name: str) -> None:
    assert init.calculate_gain(name) == nn.init.calculate_gain(name)


def test_gain_strings_in_initializers() -> None:
    def std(spec: str) -> float:
        return init.describe(spec, (100, 100)).std

    base = math.sqrt(2 / 200)
    assert std("xavier_normal(gain='tanh')") == pytest.approx(5 / 3 * base)
    assert std("xavier_normal(gain=tanh)") == pytest.approx(5 / 3 * base)  # bare name
    assert std("xavier_normal(gain='measured:tanh')") == pytest.approx(1.5925374197 * base)
    assert std("xavier_normal(gain='leaky_relu(0.2)')") == pytest.approx(math.sqrt(2 / 1.04) * base)
    assert std("kaiming_normal(nonlinearity='measured:selu')") == pytest.approx(math.sqrt(1 / 100))
    w = init.xavier_normal_(torch.empty(100, 100), gain=torch.sin)
    assert w.std().item() == pytest.approx(init.calculate_gain(torch.sin) * base, rel=0.03)


# ----------------------------------------------------------------------------- specs


def test_seed_lessons_inits_are_all_expressible() -> None:
    shape = (5, 10)
    assert init.describe("zeros", shape).std == 0 and init.describe("zeros", shape).mean == 0
    assert init.describe("ones", shape).mean == 1
    assert init.describe("small_random", shape).std == 0.01
    assert init.describe("normal(std=0.01)", shape).std == 0.01
    assert init.describe("large_random", shape).std == 10.0
    assert init.describe("uniform(-1, 1)", shape).high == 1
    assert init.describe("xavier_uniform", shape).std == pytest.approx(math.sqrt(2 / 15))
    assert init.describe("he_normal", shape).std == pytest.approx(math.sqrt(2 / 10))
    assert init.describe("constant(0.01)", shape).mean == 0.01


def test_spec_forms_from_the_issue() -> None:
    spec = init.parse_spec(
        "variance_scaling(scale=2.0, mode='fan_avg', distribution='truncated_normal')"
    )
    assert spec.name == "variance_scaling" and spec.kwargs["mode"] == "fan_avg"
    assert init.describe(spec, (30, 10)).std == pytest.approx(math.sqrt(2.0 / 20))
    assert str(init.parse_spec("normal(0, 0.01)")) == "normal(mean=0, std=0.01)"
    assert init.parse_spec(" He_Normal ").name == "he_normal"
    assert init.parse_spec(spec) is spec


def test_variance_scaling_special_cases_agree_with_named_schemes() -> None:
    shape = (40, 24, 3)
    pairs = [
        ("xavier_normal(gain=1.3)", "variance_scaling(1.69, 'fan_avg', 'normal')"),
        ("xavier_uniform", "variance_scaling(1.0, 'fan_avg', 'uniform')"),
        ("he_normal", "variance_scaling(2.0, 'fan_in', 'normal')"),
        ("he_uniform", "variance_scaling(2.0, 'fan_in', 'uniform')"),
        (
            "kaiming_normal(mode='fan_out', nonlinearity='relu')",
            "variance_scaling(2.0, 'fan_out', 'normal')",
        ),
        ("lecun_normal", "variance_scaling(1.0, 'fan_in', 'normal')"),
        ("lecun_uniform", "variance_scaling(distribution='uniform')"),
    ]
    for named, general in pairs:
        a, b = init.describe(named, shape), init.describe(general, shape)
        assert a.distribution == b.distribution
        assert a.std == pytest.approx(b.std, rel=1e-12), named


def test_every_scheme_describes_and_fills_a_suitable_shape(gen: torch.Generator) -> None:
    for name, scheme in init.schemes().items():
        shape = (4, 6, 3) if scheme.alias_of == "dirac" or name == "dirac" else (6, 4)
        spec = init.InitSpec(name, dict(scheme.example))
        draw = spec.describe(shape)
        t = spec(torch.empty(shape), generator=gen)
        assert torch.isfinite(t).all(), name
        if draw.distribution in ("constant",):
            assert torch.all(t == draw.mean), name
        if draw.low is not None and draw.high is not None:
            assert t.min() >= draw.low and t.max() <= draw.high, name


# ----------------------------------------------------------------------------- apply


def test_apply_reinitializes_every_layer_kind_and_records_it(gen: torch.Generator) -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.ConvTranspose2d(8, 4, 3),
        nn.Flatten(),
        nn.Linear(4 * 32 * 32, 10),
        nn.LayerNorm(10),
    )
    emb = nn.Embedding(20, 6, padding_idx=0)
    bn = model[1]
    assert isinstance(bn, nn.BatchNorm2d)
    with torch.no_grad():
        bn.running_mean.fill_(3.0)
        bn.weight.fill_(7.0)
    container = nn.ModuleDict({"net": model, "emb": emb})
    records = init.apply(container, weight="he_normal", bias="constant(0.1)", generator=gen)
    by_name = {r.parameter: r for r in records}
    assert set(by_name) == {n for n, _ in container.named_parameters()}
    conv = by_name["net.0.weight"]
    assert (conv.fan_in, conv.scheme) == (27, "he_normal")
    assert conv.std == pytest.approx(math.sqrt(2 / 27))
    convt = by_name["net.3.weight"]
    assert convt.fan_in == 8 * 9  # transposed fans: in_channels · k · k
    assert by_name["net.1.weight"].scheme == "ones" and torch.all(bn.weight == 1)
    assert torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1)
    assert by_name["net.0.bias"].scheme == "constant(val=0.1)"
    assert torch.all(model[0].bias == 0.1)
    assert torch.all(emb.weight[0] == 0) and emb.weight[1:].std() > 0
    linear = model[5]
    assert isinstance(linear, nn.Linear)
    assert linear.weight.std().item() == pytest.approx(math.sqrt(2 / 4096), rel=0.05)


def test_apply_include_filters_and_keeps_the_rest() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Conv1d(4, 4, 1))
    before = model[1].weight.clone()
    records = init.apply(model, "zeros", include=["linear"])
    assert [r.parameter for r in records] == ["0.weight", "0.bias"]
    assert torch.all(model[0].weight == 0) and torch.equal(model[1].weight, before)
    records = init.apply(model, "ones", None, include=lambda name, m: name == "1")
    assert [r.parameter for r in records] == ["1.weight"]
    records = init.apply(model, "ones", None, include=[nn.Conv1d])
    assert [r.parameter for r in records] == ["1.weight"]


def test_apply_error_leaves_the_model_unchanged() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Conv2d(4, 4, 3))
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"1\.weight .*eye"):
        init.apply(model, "eye")  # fine for the Linear, not for the conv
    for a, b in zip(before, model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_apply_warns_about_parameters_it_does_not_know() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.LSTM(3, 3))
    model.temperature = nn.Parameter(torch.tensor(1.0))  # a loose parameter, no token
    with pytest.warns(UserWarning, match="temperature"):
        init.apply(model, "xavier_normal")


def test_apply_handles_shared_parameters_once(gen: torch.Generator) -> None:
    layer = nn.Linear(5, 5)
    model = nn.Sequential(layer, nn.Tanh(), layer)
    assert len(init.apply(model, "orthogonal", generator=gen)) == 2


def test_apply_is_reproducible_with_a_generator() -> None:
    def make() -> nn.Module:
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    a, b = make(), make()
    init.apply(a, "xavier_uniform", generator=torch.Generator().manual_seed(9))
    init.apply(b, "xavier_uniform", generator=torch.Generator().manual_seed(9))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_apply_rejects_lazy_modules_with_a_fix() -> None:
    with pytest.raises(ValueError, match="forward pass"):
        init.apply(nn.Sequential(nn.LazyLinear(3)), "he_normal")


# ----------------------------------------------------------------------------- bad input


def test_unknown_scheme_lists_valid_ones_and_nearest() -> None:
    with pytest.raises(ValueError, match=r"Did you mean 'xavier_uniform'\?.*Known: .*he_normal"):
        init.parse_spec("xavier_unifrom")


def test_unknown_argument_lists_valid_ones_and_nearest() -> None:
    with pytest.raises(
        ValueError, match=r"no argument 'sdt'.*Did you mean 'std'\?.*Valid: mean, std"
    ):
        init.parse_spec("normal(sdt=0.1)")


def test_bad_spec_syntax_and_arity() -> None:
    with pytest.raises(ValueError, match="name or name"):
        init.parse_spec("normal(std=")
    with pytest.raises(ValueError, match="at most 2 positional"):
        init.parse_spec("normal(0, 1, 2)")
    with pytest.raises(ValueError, match="needs sparsity"):
        init.parse_spec("sparse")
    with pytest.raises(ValueError, match="given twice"):
        init.parse_spec("normal(0.1, mean=0.2)")
    with pytest.raises(ValueError, match="literals"):
        init.parse_spec("normal(std=1+x)")
    with pytest.raises(TypeError, match="string"):
        init.parse_spec(0.01)  # type: ignore[arg-type]


def test_unknown_mode_distribution_and_activation_name_nearest() -> None:
    with pytest.raises(ValueError, match=r"'mode'.*Did you mean 'fan_out'"):
        init.kaiming_normal_(torch.empty(3, 3), mode="fan_ot")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'distribution'.*Did you mean 'uniform'"):
        init.variance_scaling_(torch.empty(3, 3), distribution="unifrom")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Did you mean 'leaky_relu'"):
        init.calculate_gain("leaky_rlu")


@pytest.mark.parametrize(
    "fill",
    [
        init.xavier_uniform_,
        init.xavier_normal_,
        init.kaiming_uniform_,
        init.kaiming_normal_,
        init.lecun_normal_,
        init.lecun_uniform_,
        init.variance_scaling_,
        init.torch_default_,
        init.orthogonal_,
    ],
)
def test_fan_based_schemes_reject_1d_tensors(fill: Callable[..., torch.Tensor]) -> None:
    with pytest.raises(ValueError, match=r"at least 2 dimensions|fan_in"):
        fill(torch.empty(5))


# Every initializer, called with the arguments it needs on a tensor of a suitable shape.
FILLS: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [
    ("zeros_", lambda t: init.zeros_(t)),
    ("ones_", lambda t: init.ones_(t)),
    ("constant_", lambda t: init.constant_(t, 0.5)),
    ("uniform_", lambda t: init.uniform_(t)),
    ("normal_", lambda t: init.normal_(t)),
    ("trunc_normal_", lambda t: init.trunc_normal_(t)),
    ("xavier_uniform_", lambda t: init.xavier_uniform_(t)),
    ("xavier_normal_", lambda t: init.xavier_normal_(t)),
    ("kaiming_uniform_", lambda t: init.kaiming_uniform_(t, mode="fan_out")),
    ("kaiming_normal_", lambda t: init.kaiming_normal_(t)),
    ("lecun_uniform_", lambda t: init.lecun_uniform_(t)),
    ("lecun_normal_", lambda t: init.lecun_normal_(t)),
    ("variance_scaling_", lambda t: init.variance_scaling_(t)),
    ("torch_default_", lambda t: init.torch_default_(t)),
    ("orthogonal_", lambda t: init.orthogonal_(t)),
    ("sparse_", lambda t: init.sparse_(t, 0.5)),
    ("eye_", lambda t: init.eye_(t)),
    ("dirac_", lambda t: init.dirac_(t)),
]


@pytest.mark.parametrize(("name", "fill"), FILLS, ids=[n for n, _ in FILLS])
def test_zero_element_tensor_warns_in_torchs_words_and_is_a_no_op(
    name: str, fill: Callable[[torch.Tensor], torch.Tensor]
) -> None:
    shape = (0, 4, 3) if name == "dirac_" else (0, 4)
    t = torch.empty(shape)
    with pytest.warns(UserWarning) as caught:
        out = fill(t)
    assert out is t and out.shape == shape
    [message] = [str(w.message) for w in caught]
    # torch's text first, so that code matching torch.nn.init's warning matches ours;
    # then which function and which shape.
    assert message.startswith("Initializing zero-element tensors is a no-op: ")
    assert f"{name} got a tensor of shape {shape}, which has no elements" in message


def test_negative_std_and_bad_sparsity() -> None:
    with pytest.raises(
        ValueError, match=r"'std' parameter of normal_ must be a finite number >= 0"
    ):
        init.normal_(torch.empty(3), std=-1.0)
    with pytest.raises(ValueError, match="'std' parameter of trunc_normal_"):
        init.trunc_normal_(torch.empty(3), std=-0.1)
    with pytest.raises(ValueError, match="'std' parameter of sparse_"):
        init.sparse_(torch.empty(3, 3), 0.1, std=-0.1)
    for sparsity in (-0.1, 1.0, 1.5):
        with pytest.raises(
            ValueError, match=r"'sparsity' parameter of sparse_ must be .*>= 0 and < 1"
        ):
            init.sparse_(torch.empty(3, 3), sparsity)


@pytest.mark.parametrize(
    ("call", "param"),
    [
        (lambda: init.normal_(torch.empty(3), std=math.nan), "std"),
        (lambda: init.normal_(torch.empty(3), mean=math.inf), "mean"),
        (lambda: init.uniform_(torch.empty(3), math.nan, 1.0), "a"),
        (lambda: init.constant_(torch.empty(3), math.nan), "val"),
        (lambda: init.xavier_normal_(torch.empty(3, 3), gain=math.nan), "gain"),
        (
            lambda: init.kaiming_normal_(torch.empty(3, 3), a=math.nan, nonlinearity="leaky_relu"),
            "a",
        ),
        (lambda: init.variance_scaling_(torch.empty(3, 3), scale=math.nan), "scale"),
        (lambda: init.trunc_normal_(torch.empty(3), a=math.nan), "a"),
        (lambda: init.calculate_gain("leaky_relu", math.nan), "param"),
    ],
)
def test_nan_arguments_are_rejected(call: Callable[[], object], param: str) -> None:
    with pytest.raises(ValueError, match=f"'{param}' parameter .* must be a finite number"):
        call()


def test_wrong_types_are_type_errors() -> None:
    with pytest.raises(TypeError, match="'std' parameter"):
        init.normal_(torch.empty(3), std="0.1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="torch.Tensor"):
        init.normal_([1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="torch.Generator"):
        init.normal_(torch.empty(3), generator=0)  # type: ignore[arg-type]


def test_generator_on_the_wrong_device_is_rejected_before_drawing() -> None:
    # No second device exists on a CPU-only machine: a generator that reports "cuda".
    cuda_gen = mock.create_autospec(torch.Generator, instance=True)
    cuda_gen.device = torch.device("cuda", 0)
    t = torch.zeros(4, 4)
    with pytest.raises(ValueError, match=r"generator .* is on cuda:0 but the tensor is on cpu"):
        init.kaiming_normal_(t, generator=cuda_gen)
    assert torch.all(t == 0) and not cuda_gen.method_calls
    model = nn.Sequential(nn.Linear(3, 3))
    before = model[0].weight.clone()
    with pytest.raises(ValueError, match="torch.Generator\\(device='cpu'\\)"):
        init.apply(model, "he_normal", generator=cuda_gen)
    assert torch.equal(model[0].weight, before)


def test_meta_tensors_accept_any_generator_and_draw_nothing() -> None:
    t = init.normal_(torch.empty(4, 3, device="meta"), generator=torch.Generator())
    assert t.is_meta


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensor_with_cpu_generator_is_rejected_and_cuda_generator_works() -> None:
    t = torch.empty(64, 32, device="cuda")
    with pytest.raises(ValueError, match="cuda"):
        init.xavier_normal_(t, generator=torch.Generator())
    g = torch.Generator(device="cuda").manual_seed(0)
    init.orthogonal_(t, generator=g)
    assert torch.allclose(t.T @ t, torch.eye(32, device="cuda"), atol=1e-5)


def test_other_bad_inputs() -> None:
    with pytest.raises(ValueError, match="a <= b"):
        init.uniform_(torch.empty(3), 1.0, 0.0)
    with pytest.raises(ValueError, match="a < b"):
        init.trunc_normal_(torch.empty(3), a=1.0, b=1.0)
    with pytest.raises(ValueError, match="negative slope"):
        init.kaiming_normal_(torch.empty(3, 3), a=0.1, nonlinearity="relu")
    with pytest.raises(ValueError, match="divisible by groups"):
        init.dirac_(torch.empty(3, 3, 3), groups=2)
    with pytest.raises(ValueError, match="2-D"):
        init.eye_(torch.empty(3, 3, 3))
    with pytest.raises(ValueError, match="takes no parameter"):
        init.calculate_gain("tanh", 0.5)
    with pytest.raises(ValueError, match="no table gain"):
        init.calculate_gain(torch.tanh, method="table")
    with pytest.raises(ValueError, match="needs the layer's fan_in"):
        init.torch_default_(torch.empty(4))
    with pytest.raises(ValueError, match="0 < E"):
        init.calculate_gain(lambda z: torch.zeros_like(z))
    with pytest.raises(ValueError, match="'gain' parameter"):
        init.xavier_normal_(torch.empty(3, 3), gain="tanh(")
    with pytest.raises(ValueError, match="'gain' parameter .* >= 0"):
        init.xavier_normal_(torch.empty(3, 3), gain=-1.0)


def test_meta_tensors_validate_and_do_not_sample() -> None:
    for spec in ("he_normal", "orthogonal", "trunc_normal", "sparse(0.5)", "torch_default"):
        t = init.parse_spec(spec)(torch.empty(8, 4, device="meta"))
        assert t.is_meta
    with pytest.raises(ValueError, match="2 dimensions"):
        init.xavier_normal_(torch.empty(8, device="meta"))


# ----------------------------------------------------------------------------- docs


PUBLIC = [getattr(init, name) for name in init.__all__ if inspect.isfunction(getattr(init, name))]


@pytest.mark.parametrize("fn", PUBLIC, ids=[f.__name__ for f in PUBLIC])
def test_every_public_function_has_a_runnable_example(fn: Callable[..., object]) -> None:
    assert ">>>" in (fn.__doc__ or ""), f"{fn.__name__} has no doctest example"


RANDOM_WITH_PAPERS = [
    init.xavier_normal_,
    init.xavier_uniform_,
    init.kaiming_normal_,
    init.kaiming_uniform_,
    init.lecun_normal_,
    init.lecun_uniform_,
    init.orthogonal_,
    init.sparse_,
    init.eye_,
    init.dirac_,
    init.variance_scaling_,
    init.trunc_normal_,
    init.calculate_gain,
]


@pytest.mark.parametrize("fn", RANDOM_WITH_PAPERS, ids=[f.__name__ for f in RANDOM_WITH_PAPERS])
def test_schemes_from_papers_cite_them(fn: Callable[..., object]) -> None:
    assert "References:" in (fn.__doc__ or "")


# ----------------------------------------------------------------------------- review fixes


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_apply_uses_true_fans_for_grouped_and_transposed_convs(groups: int) -> None:
    # LeCun init keeps a linear layer's output variance at the input's (= 1) only if the
    # fan_in is each output's true number of inputs.
    # Tolerance: each output channel's Σw² has relative std √(2/fan_in); over 32
    # channels the mean is within ~4 % (the wrong fans would be off by 2× or 4×).
    x = torch.randn(64, 32, 16, 16, dtype=torch.float64)
    for layer in (
        nn.Conv2d(32, 32, 3, groups=groups, bias=False, dtype=torch.float64),
        nn.ConvTranspose2d(32, 32, 3, groups=groups, bias=False, dtype=torch.float64),
    ):
        gen = torch.Generator().manual_seed(1)
        records = init.apply(layer, "lecun_normal", None, generator=gen)
        assert records[0].fan_in == 32 // groups * 9
        with torch.no_grad():
            y = layer(x)[..., 2:-2, 2:-2]  # interior: every output sees a full receptive field
        assert y.var().item() == pytest.approx(1.0, rel=0.06)


def test_grouped_fans_against_the_layer_definition() -> None:
    conv = nn.Conv2d(32, 64, 3, groups=4)
    assert init.calculate_fans(conv.weight, groups=4) == (8 * 9, 16 * 9)
    convt = nn.ConvTranspose2d(32, 64, 3, groups=4)
    assert init.calculate_fans(convt.weight, transposed=True, groups=4) == (8 * 9, 16 * 9)
    with pytest.raises(ValueError, match="divisible by groups"):
        init.calculate_fans((6, 2, 3), groups=4)


def test_apply_resets_running_stats_of_non_affine_batch_norm() -> None:
    bn = nn.BatchNorm1d(6, affine=False)
    with torch.no_grad():
        bn.running_mean.fill_(5.0)
    assert init.apply(nn.Sequential(nn.Linear(3, 6), bn), "he_normal")
    assert torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1)


def test_apply_include_accepts_a_single_kind_string() -> None:
    records = init.apply(
        nn.Sequential(nn.Linear(3, 4), nn.Conv1d(4, 4, 1)), "zeros", include="conv"
    )
    assert [r.parameter for r in records] == ["1.weight", "1.bias"]


def test_trunc_normal_far_in_the_tail_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="too far in the tail"):
        init.trunc_normal_(torch.empty(3), 1.0, 0.01, 0.0, 0.5, bounds="absolute")
    with pytest.raises(ValueError, match="too far in the tail"):
        init.describe("trunc_normal(a=40, b=41)", (3,))


def test_spec_rejects_repeated_and_starred_keywords() -> None:
    with pytest.raises(ValueError, match="given twice"):
        init.parse_spec("normal(std=0.01, std=0.02)")
    with pytest.raises(ValueError, match=r"\*\*mapping"):
        init.parse_spec("normal(**{'std': 5})")
    with pytest.raises(ValueError, match="no argument 'fans'"):
        init.parse_spec("lecun_normal(fans=(3, 4))")


def test_gain_errors_name_the_gain_parameter() -> None:
    with pytest.raises(ValueError, match=r"'gain' parameter of xavier_uniform_ must be a finite"):
        init.describe("xavier_uniform(gain=nan)", (3, 3))
    with pytest.raises(ValueError, match=r"'gain' parameter of orthogonal_ .*Did you mean"):
        init.describe("orthogonal(gain=sine)", (3, 3))
    with pytest.raises(ValueError, match=r"kaiming_normal\(a=0.1, nonlinearity='leaky_relu'\)"):
        init.describe("he_normal(a=0.1)", (3, 3))


def test_variance_scaling_zero_scale_keeps_its_fans() -> None:
    draw = init.describe("variance_scaling(0.0)", (4, 6))
    assert (draw.std, draw.fan_in, draw.fan_out) == (0.0, 6, 4)


def test_init_spec_is_hashable_and_prints_canonically() -> None:
    a, b = init.parse_spec("normal(0, 0.01)"), init.parse_spec("normal(mean=0, std=0.01)")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1


# ----------------------------------------------------------------------------- drop-in for torch
# PyTorch's own test/nn/test_init.py passes 48/48 with initlab.init in place of
# torch.nn.init (run outside this repository); these are our own tests of what it checks.


@pytest.mark.parametrize("param", [True, [1], {"a": "b"}, "0.2"], ids=repr)
def test_calculate_gain_bad_param_type_is_both_value_and_type_error(param: object) -> None:
    with pytest.raises(ValueError):  # torch's class: torch raises ValueError here
        nn.init.calculate_gain("leaky_relu", param)  # type: ignore[arg-type]
    with pytest.raises(init.TypeValueError) as caught:
        init.calculate_gain("leaky_relu", param)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, TypeError)
    assert str(caught.value) == (
        f"The 'param' parameter of calculate_gain must be a finite number. Got {param!r} instead."
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: init.calculate_gain(5),  # type: ignore[arg-type]
            "The 'nonlinearity' parameter of calculate_gain must be an activation name or a "
            "callable. Got 5 instead.",
        ),
        (
            lambda: init.kaiming_normal_(torch.empty(3, 3), a=[0.1]),  # type: ignore[arg-type]
            "The 'a' parameter of kaiming_normal_ must be a finite number. Got [0.1] instead.",
        ),
    ],
)
def test_other_bad_types_torch_calls_value_errors(call: Callable[[], object], message: str) -> None:
    with pytest.raises(init.TypeValueError) as caught:
        call()
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, TypeError)
    assert str(caught.value) == message


# torch's generator is the argument after its parameters, so it may come positionally.
POSITIONAL_GENERATOR: list[tuple[str, Callable[..., object], Callable[..., object]]] = [
    (
        "uniform_",
        lambda t, g: init.uniform_(t, -1, 2, g),
        lambda t, g: nn.init.uniform_(t, -1, 2, g),
    ),
    ("normal_", lambda t, g: init.normal_(t, 1, 3, g), lambda t, g: nn.init.normal_(t, 1, 3, g)),
    (
        "trunc_normal_",  # also: the default convention is torch's (absolute bounds)
        lambda t, g: init.trunc_normal_(t, 0.1, 0.5, -0.3, 0.9, g),
        lambda t, g: nn.init.trunc_normal_(t, 0.1, 0.5, -0.3, 0.9, g),
    ),
    (
        "trunc_normal_defaults",
        lambda t, g: init.trunc_normal_(t, generator=g),
        lambda t, g: nn.init.trunc_normal_(t, generator=g),
    ),
    (
        "xavier_uniform_",
        lambda t, g: init.xavier_uniform_(t, 0.5, g),
        lambda t, g: nn.init.xavier_uniform_(t, 0.5, g),
    ),
    (
        "xavier_normal_",
        lambda t, g: init.xavier_normal_(t, 0.5, g),
        lambda t, g: nn.init.xavier_normal_(t, 0.5, g),
    ),
    (
        "kaiming_uniform_",
        lambda t, g: init.kaiming_uniform_(t, 0.2, "fan_out", "leaky_relu", g),
        lambda t, g: nn.init.kaiming_uniform_(t, 0.2, "fan_out", "leaky_relu", g),
    ),
    (
        "kaiming_normal_",
        lambda t, g: init.kaiming_normal_(t, 0, "fan_in", "relu", g),
        lambda t, g: nn.init.kaiming_normal_(t, 0, "fan_in", "relu", g),
    ),
    (
        "orthogonal_",
        lambda t, g: init.orthogonal_(t, 2.0, g),
        lambda t, g: nn.init.orthogonal_(t, 2.0, g),
    ),
    (
        "sparse_values",  # torch draws the zero pattern from the global RNG: compare values
        lambda t, g: init.sparse_(t, 0.0, 0.3, g),
        lambda t, g: nn.init.sparse_(t, 0.0, 0.3, g),
    ),
]


@pytest.mark.numerics
@pytest.mark.parametrize(
    ("name", "ours", "theirs"), POSITIONAL_GENERATOR, ids=[c[0] for c in POSITIONAL_GENERATOR]
)
def test_generator_is_accepted_positionally_and_draws_torchs_values(
    name: str, ours: Callable[..., object], theirs: Callable[..., object]
) -> None:
    x, y = _same_state(ours, theirs, (20, 30), torch.float32)
    assert torch.equal(x, y)


DEPRECATED = ["uniform", "normal", "constant", "eye", "dirac", "xavier_uniform", "xavier_normal"]
DEPRECATED += ["kaiming_uniform", "kaiming_normal", "orthogonal", "sparse"]


@pytest.mark.parametrize("old", DEPRECATED)
def test_torchs_deprecated_names_warn_and_do_what_the_new_ones_do(old: str) -> None:
    assert hasattr(nn.init, old)  # the same list as torch's
    args = {"constant": (0.3,), "sparse": (0.5,)}.get(old, ())
    shape = (4, 3, 3) if old == "dirac" else (6, 4)
    new = getattr(init, old + "_")
    torch.manual_seed(5)
    expected = new(torch.empty(shape), *args)
    torch.manual_seed(5)
    with pytest.warns(FutureWarning, match=rf"`initlab.init.{old}` is deprecated in favor of"):
        got = getattr(init, old)(torch.empty(shape), *args)
    assert torch.equal(got, expected)
    assert old not in init.__all__


def test_torch_patched_with_initlab_does_not_recurse(monkeypatch: pytest.MonkeyPatch) -> None:
    # A user may swap initlab's functions into torch.nn.init; initlab's trunc_normal_
    # samples with torch's, which must then still be torch's.
    torchs = nn.init.trunc_normal_
    monkeypatch.setattr(nn.init, "trunc_normal_", init.trunc_normal_)
    x = nn.init.trunc_normal_(
        torch.empty(50), 0.0, 1.0, -1.0, 1.0, torch.Generator().manual_seed(3)
    )
    y = torchs(torch.empty(50), 0.0, 1.0, -1.0, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(x, y)


# ----------------------------------------------------------------------------- hostile inputs

RANDOM: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [
    (name, fill)
    for name, fill in FILLS
    if name not in ("zeros_", "ones_", "constant_", "eye_", "dirac_")
]
TORCH_NAMED = {name for name, _ in RANDOM if hasattr(nn.init, name)}


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool], ids=str)
@pytest.mark.parametrize(("name", "fill"), RANDOM, ids=[n for n, _ in RANDOM])
def test_random_initializers_refuse_integer_and_bool_tensors(
    name: str, fill: Callable[[torch.Tensor], torch.Tensor], dtype: torch.dtype
) -> None:
    t = torch.ones(6, 4, dtype=dtype)
    if name in TORCH_NAMED:  # torch raises NotImplementedError (a RuntimeError) or RuntimeError
        with pytest.raises(RuntimeError):
            getattr(nn.init, name)(t.clone(), *((0.5,) if name == "sparse_" else ()))
    with pytest.raises(init.DtypeError) as caught:
        fill(t)
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, NotImplementedError)
    message = str(caught.value)
    assert message.startswith(f"{name} needs a ")  # expected:
    assert "floating-point tensor (float32, float64, float16 or bfloat16)" in message
    assert f"Got a tensor of dtype {dtype}." in message  # got:
    assert message.endswith(  # the fix
        "Fix: create it with dtype=torch.float32, or convert it first: w = w.float()."
    )
    assert torch.equal(t, torch.ones(6, 4, dtype=dtype))  # untouched


@pytest.mark.parametrize(
    ("name", "fill"),
    [
        ("trunc_normal_", lambda t: init.trunc_normal_(t)),
        ("variance_scaling_", lambda t: init.variance_scaling_(t)),  # truncated_normal
        ("orthogonal_", lambda t: init.orthogonal_(t)),
    ],
)
def test_real_only_initializers_refuse_complex_tensors(
    name: str, fill: Callable[[torch.Tensor], torch.Tensor]
) -> None:
    if hasattr(nn.init, name):
        with pytest.raises(NotImplementedError):
            getattr(nn.init, name)(torch.zeros(6, 4, dtype=torch.complex64))
    t = torch.zeros(6, 4, dtype=torch.complex64)
    with pytest.raises(init.DtypeError) as caught:
        fill(t)
    message = str(caught.value)
    assert message.startswith(f"{name} needs a real floating-point tensor")
    assert "Got a tensor of dtype torch.complex64." in message
    assert "Fix: create it with a real dtype (dtype=torch.float32)" in message
    assert torch.equal(t, torch.zeros(6, 4, dtype=torch.complex64))


@pytest.mark.numerics
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda t, g: init.normal_(t, 0, 2, g), lambda t, g: nn.init.normal_(t, 0, 2, g)),
        (lambda t, g: init.xavier_uniform_(t, 1, g), lambda t, g: nn.init.xavier_uniform_(t, 1, g)),
        (
            lambda t, g: init.kaiming_normal_(t, generator=g),
            lambda t, g: nn.init.kaiming_normal_(t, generator=g),
        ),
    ],
)
def test_complex_tensors_draw_as_torch_draws_them(
    ours: Callable[..., object], theirs: Callable[..., object]
) -> None:
    x, y = _same_state(ours, theirs, (7, 5), torch.complex64)
    assert torch.equal(x, y) and x.imag.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.int64, torch.int8, torch.uint8, torch.bool], ids=str)
def test_eye_fills_integer_and_bool_tensors_as_torch_does(dtype: torch.dtype) -> None:
    expected = nn.init.eye_(torch.empty(3, 5, dtype=dtype))
    assert torch.equal(init.eye_(torch.empty(3, 5, dtype=dtype)), expected)
    assert expected.dtype == dtype and expected.sum() == 3


def test_eye_gain_into_integer_and_bool_tensors() -> None:
    assert init.eye_(torch.empty(2, 2, dtype=torch.int64), gain=3).tolist() == [[3, 0], [0, 3]]
    assert not init.eye_(torch.ones(2, 2, dtype=torch.bool), gain=0).any()
    with pytest.raises(init.OutOfRangeError, match="eye_ cannot put gain=0.5 into a torch.int64"):
        init.eye_(torch.empty(2, 2, dtype=torch.int64), gain=0.5)


@pytest.mark.parametrize(
    ("dtype", "val", "message"),
    [
        (
            torch.int64,
            0.5,
            "constant_ cannot put val=0.5 into a torch.int64 tensor exactly: an integer tensor "
            "would truncate it to 0. Fix: pass an integral val, or use a floating-point tensor "
            "(dtype=torch.float32).",
        ),
        (
            torch.bool,
            0.5,
            "constant_ cannot put val=0.5 into a torch.bool tensor: it holds only True and "
            "False, and 0.5 would become True. Fix: pass True, False, 1 or 0, or use a "
            "floating-point tensor (dtype=torch.float32).",
        ),
        (
            torch.bool,
            2,
            "constant_ cannot put val=2 into a torch.bool tensor: it holds only True and False, "
            "and 2 would become True.",
        ),
        (
            torch.int8,
            300,
            "constant_ cannot put val=300 into a torch.int8 tensor: torch.int8 holds integers "
            "in [-128, 127]. Fix: a val in that range, or a wider dtype (torch.int64, or "
            "torch.float64 for fractions).",
        ),
        (torch.uint8, -1, "torch.uint8 holds integers in [0, 255]."),
        (torch.int64, 2**63, "torch.int64 holds integers in [-9223372036854775808, "),
        (
            torch.float16,
            70000.0,
            "constant_ cannot put val=70000.0 into a torch.float16 tensor: its largest value is "
            "65504. Fix: a smaller val, or a wider dtype (torch.float32 holds up to 3.4e+38, "
            "torch.float64 holds up to 1.8e+308).",
        ),
        (torch.float32, 1e39, "its largest value is 3.40282e+38."),
    ],
    ids=lambda v: str(v),
)
def test_constant_refuses_values_the_dtype_cannot_hold(
    dtype: torch.dtype, val: float, message: str
) -> None:
    t = torch.zeros(3, dtype=dtype)
    with pytest.raises(init.OutOfRangeError) as caught:
        init.constant_(t, val)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, RuntimeError)
    assert message in str(caught.value)
    assert not t.any()  # untouched


@pytest.mark.parametrize(
    ("dtype", "val", "expected"),
    [
        (torch.int64, 2, [2, 2]),
        (torch.int64, -1.0, [-1, -1]),
        (torch.int64, 2**62 + 1, [2**62 + 1] * 2),  # exact: not rounded through a float
        (torch.uint8, 255, [255, 255]),
        (torch.bool, True, [True, True]),
        (torch.bool, 0.0, [False, False]),
        (torch.float32, 2**70, [2.0**70] * 2),  # an int past int64 into a float tensor
        (torch.float32, True, [1.0, 1.0]),  # torch's constant_ takes True as 1
    ],
    ids=lambda v: str(v),
)
def test_constant_fills_exact_values_in_any_dtype(
    dtype: torch.dtype, val: float, expected: list[object]
) -> None:
    assert init.constant_(torch.zeros(2, dtype=dtype), val).tolist() == expected


LARGEST_F32, LARGEST_F16 = 3.4028234663852886e38, 65504.0
OVERFLOWS: list[tuple[str, Callable[[], torch.Tensor], str]] = [
    (
        "normal_",
        lambda: init.normal_(torch.zeros(8), std=1e300),
        "normal_ would overflow torch.float32: draws of N(0, std=1e+300) reach ±1e+301 "
        "(|mean| + 10·std), beyond its largest value 3.40282e+38, so values would come out as "
        "±inf. Fix: a std of at most 3.4e+37, or a wider dtype (torch.float64 holds up to "
        "1.8e+308).",
    ),
    (
        "normal_mean",
        lambda: init.normal_(torch.zeros(8), mean=-1e39),
        "Fix: a mean within ±3.4e+38",
    ),
    (
        "normal_float16",
        lambda: init.normal_(torch.zeros(8, dtype=torch.float16), std=1e4),
        "beyond its largest value 65504, so values would come out as ±inf. Fix: a std of at "
        "most 6.55e+03, or a wider dtype (torch.float32 holds up to 3.4e+38, torch.float64 "
        "holds up to 1.8e+308).",
    ),
    (
        "normal_float64",
        lambda: init.normal_(torch.zeros(8, dtype=torch.float64), std=1e308),
        "Fix: a std of at most 1.8e+307, or a wider dtype (none is wider than float64).",
    ),
    (
        "uniform_",
        lambda: init.uniform_(torch.zeros(8), -3e38, 3e38),
        "uniform_ would overflow torch.float32: U(-3e+38, 3e+38) needs 6e+38 (the larger of "
        "|a|, |b| and b − a)",
    ),
    (
        "trunc_normal_",
        lambda: init.trunc_normal_(torch.zeros(8), 0, 1e38, -1e39, 1e39),
        "the truncation bounds [-1e+39, 1e+39] reach 1e+39, beyond its largest value",
    ),
    (
        "xavier_normal_",
        lambda: init.xavier_normal_(torch.zeros(8, 8), gain=1e39),
        "Fix: a std of at most 3.4e+37 (lower the gain)",
    ),
    (
        "kaiming_uniform_",
        lambda: init.kaiming_uniform_(torch.zeros(8, 8, dtype=torch.float16), nonlinearity=1e5),
        "kaiming_uniform_ would overflow torch.float16: U(-61237.2, 61237.2) needs 1.22e+05",
    ),
    (
        "variance_scaling_",
        lambda: init.variance_scaling_(torch.zeros(8, 8), 1e300),
        "Fix: bounds within ±3.4e+38 (lower the scale)",
    ),
    (
        "orthogonal_",
        lambda: init.orthogonal_(torch.zeros(8, 8), gain=1e39),
        "orthogonal_ would overflow torch.float32: gain=1e+39 scales entries up to ±1e+39",
    ),
    (
        "sparse_",
        lambda: init.sparse_(torch.zeros(8, 8), 0.5, std=1e300),
        "sparse_ would overflow torch.float32: draws of N(0, std=1e+300)",
    ),
    (
        "eye_",
        lambda: init.eye_(torch.zeros(8, 8, dtype=torch.float16), gain=1e5),
        "eye_ cannot put gain=100000.0 into a torch.float16 tensor: its largest value is 65504",
    ),
    (
        "meta",  # checked on a meta tensor too: nothing is drawn, everything is validated
        lambda: init.normal_(torch.zeros(8, device="meta"), std=1e300),
        "normal_ would overflow torch.float32",
    ),
]


@pytest.mark.parametrize(("name", "call", "message"), OVERFLOWS, ids=[c[0] for c in OVERFLOWS])
def test_draws_that_would_overflow_the_dtype_are_refused(
    name: str, call: Callable[[], torch.Tensor], message: str
) -> None:
    with pytest.raises(init.OutOfRangeError) as caught:
        call()
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, RuntimeError)
    assert message in str(caught.value)


def test_the_largest_spread_allowed_draws_finite_values() -> None:
    g = torch.Generator().manual_seed(0)
    for t, std in (
        (torch.empty(100_000, dtype=torch.float16), 6500.0),
        (torch.empty(100_000), 3e37),
    ):
        assert torch.isfinite(init.normal_(t, 0.0, std, g)).all()
    t = init.uniform_(torch.empty(1000), -1.7e38, 1.7e38, g)
    assert torch.isfinite(t).all()


@pytest.mark.numerics
def test_trunc_normal_with_a_huge_std_draws_as_torch_does() -> None:
    # N(0, 1e300²) within [-2, 2] is uniform there for every practical purpose.
    x, y = _same_state(
        lambda t, g: init.trunc_normal_(t, std=1e300, generator=g),
        lambda t, g: nn.init.trunc_normal_(t, std=1e300, generator=g),
        (1000,),
        torch.float32,
    )
    assert torch.equal(x, y) and x.abs().max() <= 2
    assert init.describe("trunc_normal(std=1e300)", (3,)).std == pytest.approx(
        4 / math.sqrt(12), rel=1e-12
    )


@pytest.mark.parametrize("bounds", [(-1e-9, 1e-9), (0.5, 0.5001), (30.0, 30.03), (-0.4, 0.5)])
def test_truncated_normal_std_of_narrow_intervals(bounds: tuple[float, float]) -> None:
    # The closed form cancels to nothing here ([-1e-9, 1e-9] gave 2e-4); reference: mpmath
    # quadrature at 40 digits. Measured agreement 2.2e-15 relative, the same under both
    # kernel families and 1 or 2 threads (numpy float64, no torch kernel involved).
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    a, b = (mp.mpf(x) for x in bounds)
    peak = min(max(mp.mpf(0), a), b)

    def density(x: object) -> object:
        return mp.exp(-(x * x - peak * peak) / 2)  # shifted: no underflow 30σ out

    z = mp.quad(density, [a, b])
    mean = mp.quad(lambda x: x * density(x), [a, b]) / z
    std = mp.sqrt(mp.quad(lambda x: (x - mean) ** 2 * density(x), [a, b]) / z)
    assert init.truncated_normal_std(*bounds) == pytest.approx(float(std), rel=1e-12)


def test_trunc_normal_refusals_say_what_and_why() -> None:
    with pytest.raises(ValueError, match=r"std=0 draws the constant mean=5.0, which lies outside"):
        init.trunc_normal_(torch.empty(3), mean=5.0, std=0.0)
    tail = r"trunc_normal_: a normal truncated to \[-1e\+300σ, -1e\+300σ\] .* too far in the tail"
    with pytest.raises(ValueError, match=tail):  # torch: OverflowError
        init.trunc_normal_(torch.empty(3), mean=1e300)


def test_leaky_relu_gain_of_a_huge_slope() -> None:
    # torch's 1 + slope² overflows (OverflowError); √(2/(1+s²)) = √2/s to every digit here.
    assert init.calculate_gain("leaky_relu", 1e300) == pytest.approx(math.sqrt(2) / 1e300)
    assert init.calculate_gain("leaky_relu", -1e200) == pytest.approx(math.sqrt(2) / 1e200)
    assert init.calculate_gain("leaky_relu", 10) == nn.init.calculate_gain("leaky_relu", 10)


SHARED_MEMORY = [(n, f) for n, f in FILLS if n not in ("zeros_", "ones_", "constant_", "dirac_")]


@pytest.mark.parametrize(("name", "fill"), SHARED_MEMORY, ids=[n for n, _ in SHARED_MEMORY])
def test_tensors_whose_elements_share_memory_are_refused(
    name: str, fill: Callable[[torch.Tensor], torch.Tensor]
) -> None:
    t = torch.zeros(1, 4).expand(6, 4)
    with pytest.raises(init.RuntimeValueError) as caught:  # torch: RuntimeError
        fill(t)
    assert str(caught.value) == (
        f"{name} cannot fill a tensor whose elements share memory (shape (6, 4), strides "
        "(0, 1): an expand()ed or broadcast view): each draw would land on several elements. "
        "Fix: initialize a copy that owns its memory, w = w.clone() (or w.contiguous()), and "
        "use that."
    )
    assert not t.any()


def test_constants_fill_shared_memory_and_dirac_refuses_it() -> None:
    assert init.constant_(torch.zeros(1, 4).expand(6, 4), 0.5).eq(0.5).all()
    with pytest.raises(init.RuntimeValueError, match="dirac_ cannot fill a tensor whose"):
        init.dirac_(torch.zeros(1, 2, 3).expand(4, 2, 3))


def test_orthogonal_fills_a_strided_view() -> None:
    base = torch.zeros(4, 3, 5)
    w = base.transpose(1, 2)  # (4, 5, 3), not contiguous: torch's view_as fails on it
    init.orthogonal_(w, generator=torch.Generator().manual_seed(0))
    flat = w.reshape(4, 15)
    # float32 Gram of 4 orthonormal rows: measured max deviation 2.4e-7 (default AVX-512
    # dispatch) and 1.8e-7 (ATEN_CPU_CAPABILITY=avx2), 1 and 2 threads alike.
    assert torch.allclose(flat @ flat.T, torch.eye(4), atol=1e-5)
    assert base.abs().sum() > 0  # written through the view


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: init.calculate_fans((-1, 3)),
            ValueError,
            "The 'tensor' parameter of calculate_fans must be a tensor or a shape: a sequence "
            "of integers >= 0 such as (out, in). Got (-1, 3) instead.",
        ),
        (lambda: init.calculate_fans(("a", 3)), TypeError, "Got ('a', 3) instead."),
        (lambda: init.calculate_fans(math.nan), TypeError, "Got nan instead."),
        (lambda: init.describe("normal", "x"), TypeError, "'shape' parameter of describe"),
        (
            lambda: init.apply(nn.Linear(2, 2), "he_normal", include=math.nan),
            TypeError,
            "The 'include' parameter of apply must be kind names, nn.Module classes or a "
            "callable. Got nan instead.",
        ),
    ],
)
def test_bad_shapes_and_selections(
    call: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        call()
    assert message in str(caught.value)


# torch warns that complex modules are experimental: a complex layer is the point here.
@pytest.mark.filterwarnings("ignore:Complex modules are a new feature:UserWarning")
@pytest.mark.parametrize(
    ("model", "spec", "error", "message"),
    [
        (
            lambda: nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3).to(torch.complex64)),
            "orthogonal",
            init.DtypeError,
            "apply: cannot initialize 1.weight (3, 3) (Linear) with 'orthogonal': orthogonal_ "
            "needs a real floating-point tensor",
        ),
        (
            lambda: nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3).half()),
            "normal(std=1e5)",
            init.OutOfRangeError,
            "apply: cannot initialize 1.weight (3, 3) (Linear) with 'normal(std=100000.0)': "
            "normal_ would overflow torch.float16",
        ),
    ],
)
def test_apply_checks_every_dtype_before_touching_the_model(
    model: Callable[[], nn.Module], spec: str, error: type[Exception], message: str
) -> None:
    net = model()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(error) as caught:
        init.apply(net, spec, include="linear")
    assert str(caught.value).startswith(message)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # the first layer was left alone too


def test_an_integer_beyond_a_doubles_range_is_a_clear_value_error() -> None:
    # float(10**400) raises OverflowError: the check must turn it into our message.
    with pytest.raises(
        ValueError,
        match=r"must be a finite number >= 0\. Got an integer of 401 digits",
    ):
        init.normal_(torch.empty(3), std=10**400)
