"""initlab.meanfield against independent references: scipy quadrature, closed forms, Monte Carlo."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, special
from torch import nn

from initlab import meanfield as mf

Scalar = Callable[[float], float]

# The spec asks for 1e-8 (smooth φ) and 1e-6 (kinked φ) against scipy; the panel rule
# reaches ~1e-15 and scipy's adaptive quadrature ~1e-13, so one tolerance covers both.
RTOL = 1e-10
ATOL = 1e-14  # for means that vanish (odd φ)
QS = (1e-4, 1e-2, 0.3, 1.0, 5.0, 30.0, 1e3)
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _pdf(z: float) -> float:
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def _elu(alpha: float, scale: float = 1.0) -> tuple[Scalar, Scalar]:
    return (
        lambda x: scale * (x if x > 0 else alpha * math.expm1(x)),
        lambda x: scale * (1.0 if x > 0 else alpha * math.exp(x)),
    )


def _leaky(s: float) -> tuple[Scalar, Scalar]:
    return (lambda x: x if x > 0 else s * x), (lambda x: 1.0 if x > 0 else s)


# φ, φ' and kinks, written out here from the definitions (scalar, scipy.special).
REFERENCE: dict[str, tuple[Scalar, Scalar, tuple[float, ...]]] = {
    "linear": (lambda x: x, lambda x: 1.0, ()),
    "relu": (*_leaky(0.0), (0.0,)),
    "leaky_relu(0.2)": (*_leaky(0.2), (0.0,)),
    "tanh": (math.tanh, lambda x: 1 - math.tanh(x) ** 2, ()),
    "sigmoid": (special.expit, lambda x: special.expit(x) * special.expit(-x), ()),
    "elu": (*_elu(1.0), (0.0,)),
    "elu(0.5)": (*_elu(0.5), (0.0,)),
    "selu": (*_elu(SELU_ALPHA, SELU_SCALE), (0.0,)),
    "gelu": (
        lambda x: x * special.ndtr(x),
        lambda x: special.ndtr(x) + x * _pdf(x),
        (),
    ),
    "silu": (
        lambda x: x * special.expit(x),
        lambda x: special.expit(x) * (1 + x * special.expit(-x)),
        (),
    ),
    "softplus": (lambda x: float(np.logaddexp(0.0, x)), special.expit, ()),
    "softplus(3)": (
        lambda x: float(np.logaddexp(0.0, 3 * x)) / 3,
        lambda x: special.expit(3 * x),
        (),
    ),
    "hardtanh": (
        lambda x: min(1.0, max(-1.0, x)),
        lambda x: 1.0 if abs(x) < 1 else 0.0,
        (-1.0, 1.0),
    ),
}


def gauss(g: Scalar, q: float, kinks: tuple[float, ...] = (), epsabs: float = 1e-15) -> float:
    """E[g(√q z)] by scipy's adaptive quadrature, split at the kinks and on φ's scale."""
    root, span = math.sqrt(q), 40.0
    cuts = {0.0, *(k / root for k in kinks)}
    cuts |= {s * v / root for v in (0.25, 1, 4, 16) for s in (-1, 1)}
    points = sorted(p for p in cuts if abs(p) < span)
    value, _ = integrate.quad(
        lambda z: g(root * z) * _pdf(z),
        -span,
        span,
        points=points,
        limit=500,
        epsabs=epsabs,
        epsrel=1e-13,
    )
    return float(value)


def gauss2(g: Scalar, q: float, c: float, kinks: tuple[float, ...] = ()) -> float:
    """E[g(u₁)g(u₂)], u's of variance q and correlation c, by nested scipy quadrature."""
    root, s, span = math.sqrt(q), math.sqrt((1 - c) * (1 + c)), 12.0

    def inner(z1: float) -> float:
        a = root * c * z1
        points = sorted({0.0, *(min(max((k - a) / (root * s), -11.9), 11.9) for k in kinks)})
        v, _ = integrate.quad(
            lambda z2: g(a + root * s * z2) * _pdf(z2),
            -span,
            span,
            points=points,
            epsabs=1e-14,
            epsrel=1e-12,
            limit=200,
        )
        return float(v)

    cuts = {0.0, *(k / root for k in kinks), *(k / (root * c) for k in kinks if c)}
    points = sorted(p for p in cuts if abs(p) < span)
    value, _ = integrate.quad(
        lambda z1: g(root * z1) * inner(z1) * _pdf(z1),
        -span,
        span,
        points=points,
        epsabs=1e-14,
        epsrel=1e-12,
        limit=200,
    )
    return float(value)


def close(ours: float, reference: float, rtol: float = RTOL, atol: float = ATOL) -> bool:
    return abs(ours - reference) <= rtol * abs(reference) + atol


# ----------------------------------------------------------------------------- moments


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_moments_match_scipy_quadrature(name: str) -> None:
    f, df, kinks = REFERENCE[name]
    for q in QS:
        assert close(mf.second_moment(name, q), gauss(lambda x: f(x) ** 2, q, kinks)), q
        assert close(mf.derivative_moment(name, q), gauss(lambda x: df(x) ** 2, q, kinks)), q
        # the mean of an odd φ is 0: only an absolute tolerance is reachable
        assert close(mf.mean(name, q), gauss(f, q, kinks, epsabs=1e-13), atol=1e-13), q


@pytest.mark.parametrize("q", [1e-3, 0.7, 2.0, 400.0])
def test_rectifier_closed_forms(q: float) -> None:
    assert mf.second_moment("relu", q) == pytest.approx(q / 2, rel=1e-15)
    assert mf.derivative_moment("relu", q) == 0.5
    assert mf.mean("relu", q) == pytest.approx(math.sqrt(q / (2 * math.pi)), rel=1e-15)
    assert mf.second_moment("leaky_relu(0.2)", q) == pytest.approx((1 + 0.04) / 2 * q, rel=1e-15)
    assert mf.derivative_moment("leaky_relu", q) == pytest.approx((1 + 1e-4) / 2, rel=1e-15)
    assert mf.second_moment("linear", q) == q
    assert mf.second_moment("identity", q) == q
    assert mf.mean("sigmoid", q) == pytest.approx(0.5, abs=1e-15)  # σ(x) − 1/2 is odd


def test_moments_at_zero_length_are_phi_at_zero() -> None:
    assert mf.second_moment("tanh", 0.0) == 0.0
    assert mf.second_moment("sigmoid", 0.0) == 0.25
    assert mf.derivative_moment("tanh", 0.0) == 1.0
    assert mf.derivative_moment("relu", 0.0) == 0.0  # torch: relu'(0) = 0
    assert mf.mean("softplus", 0.0) == pytest.approx(math.log(2), rel=1e-15)


def test_a_callable_is_integrated_with_autograd_derivatives() -> None:
    for q in (0.01, 1.0, 3.0):  # E[sin²] = (1 − e^{−2q})/2, E[cos²] = (1 + e^{−2q})/2
        assert close(mf.second_moment(torch.sin, q), (1 - math.exp(-2 * q)) / 2)
        assert close(mf.derivative_moment(torch.sin, q), (1 + math.exp(-2 * q)) / 2)
        assert abs(mf.mean(torch.sin, q)) < ATOL
        assert close(mf.second_moment(torch.tanh, q), mf.second_moment("tanh", q), 1e-14)
    # a constant has φ' = 0 (autograd gives no gradient)
    assert mf.derivative_moment(lambda x: torch.ones_like(x), 1.0) == 0.0


def test_parameters_in_names() -> None:
    assert mf.second_moment("leaky_relu(negative_slope=0.5)", 2.0) == 1.25
    assert mf.second_moment(" Leaky_ReLU(0.5) ", 2.0) == 1.25
    assert mf.second_moment("swish", 1.3) == mf.second_moment("silu", 1.3)
    assert mf.second_moment("elu(alpha=0.5)", 1.3) == mf.second_moment("elu(0.5)", 1.3)


# ----------------------------------------------------------------------------- q-map


def _tanh_qstar(sigma_w2: float, sigma_b2: float) -> float:
    moment = lambda q: gauss(lambda x: math.tanh(x) ** 2, q)  # noqa: E731
    return float(
        optimize.brentq(lambda q: sigma_w2 * moment(q) + sigma_b2 - q, 1e-9, 1e3, xtol=1e-15)
    )


@pytest.mark.parametrize(
    ("sigma_w2", "sigma_b2"), [(0.5, 0.1), (1.5, 0.05), (4.0, 0.0), (2.5, 1.0)]
)
def test_tanh_fixed_point_matches_scipy_root(sigma_w2: float, sigma_b2: float) -> None:
    expected = _tanh_qstar(sigma_w2, sigma_b2)
    assert close(mf.fixed_point("tanh", sigma_w2, sigma_b2), expected, 1e-10)
    assert close(mf.fixed_point("tanh", sigma_w2, sigma_b2, q0=50.0), expected, 1e-10)
    assert close(mf.qmap("tanh", expected, sigma_w2, sigma_b2), expected, 1e-12)


def test_fixed_point_of_affine_q_maps_and_divergence() -> None:
    assert mf.fixed_point("relu", 1.0, 0.5) == pytest.approx(1.0, rel=1e-15)
    assert mf.fixed_point("leaky_relu(0.5)", 1.0, 0.3) == pytest.approx(0.3 / (1 - 0.625))
    assert mf.fixed_point("linear", 2.0, 0.1) == math.inf
    assert mf.fixed_point("relu", 2.0, 0.1) == math.inf  # the marginal case grows linearly
    assert mf.fixed_point("relu", 2.0, 0.0, q0=3.0) == 3.0  # every q is fixed
    assert mf.fixed_point("relu", 3.0, 0.0, q0=0.0) == 0.0
    assert mf.fixed_point("elu", 3.0, 0.1) == math.inf  # geometric growth, general path
    assert mf.fixed_point("elu", 2.0, 0.1) == math.inf  # linear growth, general path
    assert mf.fixed_point("tanh", 3.0, 0.0, q0=0.0) == 0.0  # 0 is fixed, if unstable
    assert mf.fixed_point("tanh", 0.5, 0.0) < 1e-12  # ordered, no bias: the length dies
    # A finite q* far out is found: elu's q-map is ≈ σ_w²(q/2 + 1/2 − …) + σ_b².
    far = mf.fixed_point("elu", 1.99, 0.1)
    assert 100 < far < 1e4
    assert close(mf.qmap("elu", far, 1.99, 0.1), far, 1e-12)


def test_fixed_point_near_criticality_converges() -> None:
    # qmap'(q*) → 1 here: the plain iteration would need ~1e5 steps.
    q = mf.fixed_point("tanh", 1.00002, 0.0)
    assert q == pytest.approx(_tanh_qstar(1.00002, 0.0), rel=1e-7)


def test_qmap_of_rectifiers() -> None:
    assert mf.qmap("relu", 1.0, 2.0, 0.0) == 1.0
    assert mf.qmap("relu", 3.0, 1.0, 0.25) == 1.75


# ----------------------------------------------------------------------------- χ₁, criticality


@pytest.fixture(scope="module")
def tanh_edge() -> tuple[float, float]:
    """σ_w² and q* at χ₁ = 1 for tanh, σ_b² = 0.05, from scipy alone."""
    sigma_b2 = 0.05

    def chi(sigma_w2: float) -> float:
        q = _tanh_qstar(sigma_w2, sigma_b2)
        return sigma_w2 * gauss(lambda x: (1 - math.tanh(x) ** 2) ** 2, q) - 1

    sigma_w2 = float(optimize.brentq(chi, 1.0, 3.0, xtol=1e-14, rtol=1e-14))
    return sigma_w2, _tanh_qstar(sigma_w2, sigma_b2)


def test_critical_tanh_matches_an_independent_root(tanh_edge: tuple[float, float]) -> None:
    sigma_w2, q = tanh_edge
    assert sigma_w2 == pytest.approx(1.76095, abs=1e-5)  # the literature's ≈ 1.76
    assert mf.critical_sigma_w2("tanh", 0.05) == pytest.approx(sigma_w2, rel=1e-10)
    assert mf.chi1("tanh", sigma_w2, 0.05) == pytest.approx(1.0, rel=1e-10)
    assert mf.fixed_point("tanh", sigma_w2, 0.05) == pytest.approx(q, rel=1e-10)
    assert mf.chi1("tanh", sigma_w2, 0.05, q=q) == pytest.approx(1.0, rel=1e-10)


def test_critical_values_with_closed_forms() -> None:
    assert mf.critical_sigma_w2("relu", 0.1) == pytest.approx(2.0, rel=1e-12)
    assert mf.critical_sigma_w2("leaky_relu(0.5)", 0.0) == pytest.approx(1.6, rel=1e-12)
    assert mf.critical_sigma_w2("linear", 0.3) == pytest.approx(1.0, rel=1e-12)
    # tanh without bias: q* = 0 and χ₁ = σ_w² up to 1; χ₁ − 1 = O((σ_w² − 1)²) above.
    assert mf.critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, abs=1e-5)


def test_chi1_at_infinite_length_is_the_slope_limit() -> None:
    assert mf.chi1("relu", 3.0, 0.1) == 1.5  # q* = ∞
    assert mf.chi1("elu", 3.0, 0.1) == 1.5  # φ'(−∞) = 0, φ'(∞) = 1
    assert mf.chi1(torch.relu, 3.0, 0.1) == 1.5
    assert mf.chi1("tanh", 2.0, 0.1, q=2.0) == pytest.approx(
        2.0 * gauss(lambda x: (1 - math.tanh(x) ** 2) ** 2, 2.0), rel=RTOL
    )


# ----------------------------------------------------------------------------- c-map


CMAP_CASES = [
    ("tanh", 0.5, 0.3),
    ("hardtanh", 2.0, -0.6),
    ("elu", 1.0, 0.9),
    ("sigmoid", 2.0, -0.6),
]


@pytest.mark.parametrize(("name", "q", "c"), CMAP_CASES)
def test_cmap_matches_nested_scipy_quadrature(name: str, q: float, c: float) -> None:
    f, _, kinks = REFERENCE[name]
    sigma_w2, sigma_b2 = 1.7, 0.2
    length = sigma_w2 * gauss(lambda x: f(x) ** 2, q, kinks) + sigma_b2
    expected = (sigma_w2 * gauss2(f, q, c, kinks) + sigma_b2) / length
    assert mf.cmap(name, c, q, sigma_w2, sigma_b2) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("c", [-0.8, 0.0, 0.4, 0.95])
def test_relu_cmap_is_the_arccosine_kernel(c: float) -> None:
    f, _, kinks = REFERENCE["relu"]
    expected = gauss2(f, 1.3, c, kinks)  # E[relu(u₁)relu(u₂)] by quadrature
    sigma_w2, sigma_b2 = 1.5, 0.1
    length = sigma_w2 * 1.3 / 2 + sigma_b2
    assert mf.cmap("relu", c, 1.3, sigma_w2, sigma_b2) == pytest.approx(
        (sigma_w2 * expected + sigma_b2) / length, rel=1e-10
    )
    # leaky: φ = s·x + (1 − s)·relu, so E[φφ] = s²qc + s(1 − s)qc + (1 − s)²E[relu relu]
    s = 0.3
    leaky = s**2 * 1.3 * c + s * (1 - s) * 1.3 * c + (1 - s) ** 2 * expected
    leaky_length = sigma_w2 * 1.3 * (1 + s**2) / 2 + sigma_b2
    assert mf.cmap("leaky_relu(0.3)", c, 1.3, sigma_w2, sigma_b2) == pytest.approx(
        (sigma_w2 * leaky + sigma_b2) / leaky_length, rel=1e-10
    )


@pytest.mark.parametrize("name", ["tanh", "hardtanh", "elu(0.5)", "relu", "gelu"])
def test_cmap_is_continuous_at_one_and_odd_maps_are_odd(name: str) -> None:
    assert mf.cmap(name, 1.0, 0.8, 1.3, 0.1) == 1.0
    assert mf.cmap(name, 1 - 1e-10, 0.8, 1.3, 0.1) == pytest.approx(1.0, abs=1e-8)
    if name in ("tanh", "hardtanh"):
        assert mf.cmap(name, -0.7, 0.8, 1.3, 0.0) == pytest.approx(
            -mf.cmap(name, 0.7, 0.8, 1.3, 0.0), rel=1e-13
        )


@pytest.mark.parametrize("name", ["tanh", "hardtanh", "elu(0.5)", "relu"])
def test_chi_c_is_the_slope_of_the_cmap(name: str) -> None:
    # Price's theorem against a central difference of the map itself.
    q, sigma_w2, sigma_b2, c, h = 0.9, 1.4, 0.1, 0.5, 1e-4
    slope = (
        mf.cmap(name, c + h, q, sigma_w2, sigma_b2) - mf.cmap(name, c - h, q, sigma_w2, sigma_b2)
    ) / (2 * h)
    assert mf.chi_c(name, sigma_w2, sigma_b2, c=c, q=q) == pytest.approx(slope, rel=1e-6)
    # at c = 1 and q = q* it is χ₁
    assert mf.chi_c(name, sigma_w2, sigma_b2, c=1.0) == pytest.approx(
        mf.chi1(name, sigma_w2, sigma_b2), rel=1e-12
    )


def test_ordered_phase_correlations_go_to_one() -> None:
    assert mf.correlation_fixed_point("tanh", 1.2, 0.05) == 1.0
    for c in (0.0, 0.5, 0.9, 0.99):  # no other fixed point: cmap(c) > c
        assert mf.cmap("tanh", c, mf.fixed_point("tanh", 1.2, 0.05), 1.2, 0.05) > c
    c = 0.2  # iterate the (closed-form) ReLU c-map at q*
    q = mf.fixed_point("relu", 1.5, 0.1)
    for _ in range(500):
        c = mf.cmap("relu", c, q, 1.5, 0.1)
    assert c == pytest.approx(1.0, abs=1e-6)
    assert mf.correlation_fixed_point("relu", 1.5, 0.1) == 1.0


def test_chaotic_phase_fixed_point_is_attracting() -> None:
    sigma_w2, sigma_b2 = 3.0, 0.3
    c_star = mf.correlation_fixed_point("tanh", sigma_w2, sigma_b2)
    assert 0 < c_star < 1
    f, _, _ = REFERENCE["tanh"]
    q = _tanh_qstar(sigma_w2, sigma_b2)
    assert (sigma_w2 * gauss2(f, q, c_star) + sigma_b2) / q == pytest.approx(c_star, rel=1e-9)
    assert mf.chi_c("tanh", sigma_w2, sigma_b2) < 1  # attracting
    assert mf.chi1("tanh", sigma_w2, sigma_b2) > 1  # while c = 1 repels


# ----------------------------------------------------------------------------- ξ_c


def test_correlation_depth_in_the_ordered_phase() -> None:
    q = _tanh_qstar(1.5, 0.05)
    chi = 1.5 * gauss(lambda x: (1 - math.tanh(x) ** 2) ** 2, q)
    assert mf.correlation_depth("tanh", 1.5, 0.05) == pytest.approx(-1 / math.log(chi), rel=1e-9)
    assert mf.correlation_depth("relu", 1.0, 0.1) == pytest.approx(1 / math.log(2), rel=1e-14)


def test_correlation_depth_in_the_chaotic_phase_without_bias() -> None:
    # odd φ, σ_b² = 0: c* = 0, where E[φ'(u₁)φ'(u₂)] = E[φ']², so ξ_c = −1/ln(σ_w² E[φ']²)
    q = _tanh_qstar(4.0, 0.0)
    chi = 4.0 * gauss(lambda x: 1 - math.tanh(x) ** 2, q) ** 2
    assert mf.correlation_fixed_point("tanh", 4.0, 0.0) == 0.0
    assert mf.correlation_depth("tanh", 4.0, 0.0) == pytest.approx(-1 / math.log(chi), rel=1e-9)


def test_correlation_depth_diverges_at_the_edge_of_chaos(tanh_edge: tuple[float, float]) -> None:
    critical, _ = tanh_edge
    ordered = [mf.correlation_depth("tanh", critical - d, 0.05) for d in (0.3, 0.03, 0.003)]
    assert ordered[0] < 20 and ordered == sorted(ordered) and ordered[2] > 8 * ordered[1] > 60
    chaotic = [mf.correlation_depth("tanh", critical + d, 0.05) for d in (0.3, 0.003)]
    assert chaotic[0] < 30 and chaotic[1] > 50 * chaotic[0]
    assert mf.correlation_depth("tanh", critical, 0.05) > 1e6  # inf up to rounding
    assert mf.correlation_depth("relu", 2.0, 0.0) == math.inf  # He: χ₁ = 1 exactly


# ----------------------------------------------------------------------------- forecast


def test_relu_chain_halves_under_xavier_and_keeps_under_he() -> None:
    n = 128
    xavier = [mf.LayerSpec(n, n, weight_var=1 / n, activation="relu") for _ in range(5)]
    he = [mf.LayerSpec(n, n, weight_var=2 / n, activation="relu") for _ in range(5)]
    out_x, out_he = mf.forecast(xavier, 3.0), mf.forecast(he, 3.0)
    assert out_x[0].preact_second_moment == 3.0  # the data is not rectified
    for before, after in itertools.pairwise(out_x):
        assert after.preact_second_moment == pytest.approx(
            before.preact_second_moment / 2, rel=1e-15
        )
        assert after.forward_factor == pytest.approx(math.sqrt(0.5), rel=1e-15)
        assert before.preact_grad_var == pytest.approx(after.preact_grad_var / 2, rel=1e-15)
    for layer in out_he[1:]:
        assert layer.preact_second_moment == pytest.approx(6.0, rel=1e-15)
        assert layer.forward_factor == pytest.approx(1.0, rel=1e-15)
    assert [f.backward_factor for f in out_he] == pytest.approx([1, 1, 1, 1, math.sqrt(0.5)])


def test_linear_chain_exact_recursions() -> None:
    fans = [7, 20, 30, 5]
    weight_vars, bias_vars = [0.3, 0.05, 0.1], [0.2, 0.0, 0.4]
    layers = [mf.LayerSpec(fans[i], fans[i + 1], weight_vars[i], bias_vars[i]) for i in range(3)]
    out = mf.forecast(layers, input_second_moment=2.0, output_grad_var=0.5)
    q = 2.0
    for i, layer in enumerate(out):  # E‖Wx + b‖²/n = fan_in·v·E[x²] + σ_b², by hand
        q = fans[i] * weight_vars[i] * q + bias_vars[i]
        assert layer.preact_second_moment == pytest.approx(q, rel=1e-15)
        assert layer.postact_second_moment == pytest.approx(q, rel=1e-15)
    g = 0.5
    for i in reversed(range(3)):  # ∂L/∂x = Wᵀ δ: Var = fan_out·v·Var δ
        assert out[i].preact_grad_var == pytest.approx(g, rel=1e-15)
        g *= fans[i + 1] * weight_vars[i]
        assert out[i].input_grad_var == pytest.approx(g, rel=1e-15)


def _monte_carlo(
    specs: list[mf.LayerSpec], batch: int, trials: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Measured E[h²], Var ∂L/∂h and Var ∂L/∂a per layer, averaged over weight draws.

    float32: the checks are to a few percent, and the draws should be quick.
    """
    gen = torch.Generator().manual_seed(seed)  # a fixed draw: the tolerance holds with margin
    acts = {"relu": torch.relu, "tanh": torch.tanh, "linear": lambda x: x}
    second, h_grad, a_grad = (np.zeros(len(specs)) for _ in range(3))
    for _ in range(trials):
        x = torch.randn(batch, specs[0].fan_in, generator=gen, dtype=torch.float32)
        x.requires_grad_(True)
        hs, a_s = [], []
        for spec in specs:
            w = torch.randn(spec.fan_out, spec.fan_in, generator=gen, dtype=torch.float32)
            b = torch.randn(spec.fan_out, generator=gen, dtype=torch.float32)
            a = x @ (w * math.sqrt(spec.weight_var)).T + b * math.sqrt(spec.bias_var)
            a.retain_grad()
            h = (
                nn.functional.batch_norm(a, None, None, training=True, eps=1e-12)
                if spec.batch_norm
                else a
            )
            h.retain_grad()
            x = acts[str(spec.activation)](h)
            hs.append(h)
            a_s.append(a)
        g = torch.randn(x.shape, generator=gen, dtype=torch.float32)
        (x * g).sum().backward()
        for i, (h, a) in enumerate(zip(hs, a_s, strict=True)):
            second[i] += h.detach().pow(2).mean().item() / trials
            h_grad[i] += h.grad.pow(2).mean().item() / trials  # type: ignore[union-attr]
            a_grad[i] += a.grad.pow(2).mean().item() / trials  # type: ignore[union-attr]
    return second, h_grad, a_grad


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_forecast_matches_monte_carlo(activation: str) -> None:
    n = 256
    specs = [
        mf.LayerSpec(64, n, 2.0 / 64, 0.1, activation),
        mf.LayerSpec(n, n, 1.5 / n, 0.1, activation),
        mf.LayerSpec(n, n, 2.5 / n, 0.1, activation),
        mf.LayerSpec(n, 64, 1.0 / n, 0.0, "linear"),
    ]
    out = mf.forecast(specs, input_second_moment=1.0)
    second, h_grad, _ = _monte_carlo(specs, batch=32, trials=32, seed=0)
    # A finite net's layer norms fluctuate from weight draw to weight draw, a deep ReLU
    # net's most; averaged over 32 draws of 256-wide layers, seeds 0-7 stay within 4.5%
    # (gradients within 2.5%).
    assert [f.preact_second_moment for f in out] == pytest.approx(second, rel=0.06)
    assert [f.preact_grad_var for f in out] == pytest.approx(h_grad, rel=0.04)


def test_forecast_with_batch_norm_matches_monte_carlo() -> None:
    n = 256
    specs = [
        mf.LayerSpec(n, n, 2.0 / n, 0.5, "relu", batch_norm=True),
        mf.LayerSpec(n, n, 0.5 / n, 0.5, "relu", batch_norm=True),
        mf.LayerSpec(n, n, 3.0 / n, 0.0, "relu", batch_norm=True),
        mf.LayerSpec(n, 64, 1.0 / n),
    ]
    out = mf.forecast(specs, input_second_moment=1.0)
    second, h_grad, a_grad = _monte_carlo(specs, batch=256, trials=3, seed=1)
    assert [f.preact_second_moment for f in out[:3]] == pytest.approx(second[:3], rel=1e-3)
    # Backward, BN's dropped centring terms (2/B) and Jensen's E[1/σ_B²] > 1/E[σ_B²]
    # (1 + 2/fan_in) add ~2% to what 3 draws of 256-wide layers scatter: over seeds 0-7
    # within 4% for ∂L/∂h, 5.5% for ∂L/∂a, 8% for the (unnormalized) top layer's length.
    assert out[3].preact_second_moment == pytest.approx(second[3], rel=0.12)
    assert [f.preact_grad_var for f in out] == pytest.approx(h_grad, rel=0.08)
    # ∂L/∂a ≈ ∂L/∂h / σ_B: the batch variance forecast from Var x = E[φ²] − E[φ]², not E[x²]
    assert [f.linear_grad_var for f in out] == pytest.approx(a_grad, rel=0.08)
    assert out[1].batch_variance == pytest.approx(0.5 * (0.5 - 1 / (2 * math.pi)), rel=1e-14)


def test_forecast_top_activation_and_factors() -> None:
    out = mf.forecast([mf.LayerSpec(4, 3, 0.25, 0.0, "tanh")], 1.0, output_grad_var=2.0)
    (layer,) = out
    assert layer.preact_grad_var == pytest.approx(2.0 * mf.derivative_moment("tanh", 1.0))
    assert layer.backward_factor == pytest.approx(math.sqrt(mf.derivative_moment("tanh", 1.0)))
    (by_callable,) = mf.forecast([mf.LayerSpec(4, 3, 0.25, 0.0, torch.tanh)], 1.0, 2.0)
    assert by_callable.preact_grad_var == pytest.approx(layer.preact_grad_var, rel=1e-14)
    assert by_callable.postact_second_moment == pytest.approx(
        layer.postact_second_moment, rel=1e-14
    )
    zero = mf.forecast([mf.LayerSpec(4, 3, 0.0), mf.LayerSpec(3, 2, 0.0)], 1.0)
    assert zero[0].forward_factor == 0.0 and math.isnan(zero[1].forward_factor)
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer.preact_grad_var = 0.0  # type: ignore[misc]


# ----------------------------------------------------------------------------- errors


def test_unknown_activation_names_say_did_you_mean() -> None:
    with pytest.raises(ValueError, match="Did you mean 'relu'"):
        mf.second_moment("rleu", 1.0)
    with pytest.raises(ValueError, match="'tanh' without a parameter"):
        mf.second_moment("tanh(0.2)", 1.0)
    with pytest.raises(ValueError, match="leaky_relu"):
        mf.second_moment("leaky_relu(0.1, 0.2)", 1.0)
    with pytest.raises(ValueError, match="leaky_relu"):
        mf.second_moment("leaky_relu(slope=0.1)", 1.0)
    with pytest.raises(ValueError, match="beta"):
        mf.second_moment("softplus(-1)", 1.0)
    with pytest.raises(TypeError, match="activation's negative_slope"):
        mf.second_moment("leaky_relu('steep')", 1.0)
    with pytest.raises(ValueError, match="not of the form"):
        mf.second_moment("relu(", 1.0)
    with pytest.raises(TypeError, match="activation"):
        mf.second_moment(3, 1.0)  # type: ignore[arg-type]


def test_bad_callables_are_refused() -> None:
    with pytest.raises(ValueError, match="same shape"):
        mf.second_moment(lambda x: x.sum(), 1.0)
    with pytest.raises(ValueError, match="E\\[φ²\\] is inf"):
        mf.second_moment(lambda x: torch.full_like(x, math.inf), 1.0)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: mf.second_moment("relu", -1.0), ValueError, "'q' parameter of second_moment"),
        (lambda: mf.derivative_moment("tanh", math.nan), ValueError, "'q'"),
        (lambda: mf.mean("tanh", "1"), TypeError, "'q'"),
        (lambda: mf.qmap("tanh", 1.0, 0.0, 0.1), ValueError, "'sigma_w2'"),
        (lambda: mf.qmap("tanh", 1.0, 1.0, -0.1), ValueError, "'sigma_b2'"),
        (lambda: mf.fixed_point("tanh", -1.0, 0.0), ValueError, "'sigma_w2'"),
        (lambda: mf.fixed_point("tanh", 1.0, 0.0, q0=-1.0), ValueError, "'q0'"),
        (lambda: mf.fixed_point("tanh", 1.0, 0.0, tol=0.0), ValueError, "'tol'"),
        (lambda: mf.fixed_point("tanh", 1.0, 0.0, max_iter=1), ValueError, "'max_iter'"),
        (lambda: mf.fixed_point("tanh", 1.5, 0.1, max_iter=2), RuntimeError, "did not converge"),
        (lambda: mf.chi1("tanh", 1.0, 0.1, q=-2.0), ValueError, "'q'"),
        (lambda: mf.cmap("tanh", 1.5, 1.0, 1.0, 0.0), ValueError, "'c'"),
        (lambda: mf.cmap("tanh", 0.5, 0.0, 1.0, 0.0), ValueError, "identically 0"),
        (lambda: mf.chi_c("tanh", 1.0, 0.0, c=-2.0), ValueError, "'c'"),
        (lambda: mf.chi_c("relu", 3.0, 0.1), ValueError, "no finite fixed point"),
        (lambda: mf.correlation_fixed_point("linear", 2.0, 0.1), ValueError, "q\\* = inf"),
        (lambda: mf.correlation_depth("relu", 3.0, 0.1), ValueError, "q\\* = inf"),
        (lambda: mf.critical_sigma_w2("sigmoid", 0.05), ValueError, "change sign"),
        (lambda: mf.critical_sigma_w2("gelu", 0.05), ValueError, "does not pass through 1"),
        (lambda: mf.critical_sigma_w2("tanh", 0.05, bounds=(2.0, 1.0)), ValueError, "low < high"),
        (lambda: mf.critical_sigma_w2("tanh", 0.05, bounds=(0.0, 1.0)), ValueError, "'bounds'"),
        (lambda: mf.critical_sigma_w2("tanh", 0.05, bounds=1.0), TypeError, "a pair"),
        (lambda: mf.critical_sigma_w2("tanh", -0.05), ValueError, "'sigma_b2'"),
        (lambda: mf.critical_sigma_w2("tanh", 0.05, q0=-1.0), ValueError, "'q0'"),
        (lambda: mf.critical_sigma_w2("tanh", 0.05, tol=-1.0), ValueError, "'tol'"),
    ],
)
def test_every_raise(call: Callable[[], object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fan_in": 0}, ValueError, "'fan_in'"),
        ({"fan_out": 2.0}, TypeError, "'fan_out'"),
        ({"weight_var": -0.1}, ValueError, "'weight_var'"),
        ({"bias_var": math.inf}, ValueError, "'bias_var'"),
        ({"activation": "tahn"}, ValueError, "Did you mean 'tanh'"),
        ({"batch_norm": 1}, TypeError, "'batch_norm'"),
    ],
)
def test_layer_spec_checks_its_fields(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    fields: dict[str, object] = {"fan_in": 3, "fan_out": 4, "weight_var": 0.1, **kwargs}
    with pytest.raises(error, match=match):
        mf.LayerSpec(**fields)  # type: ignore[arg-type]


def test_forecast_raises() -> None:
    spec = mf.LayerSpec(3, 4, 0.1)
    with pytest.raises(ValueError, match="at least one"):
        mf.forecast([], 1.0)
    with pytest.raises(TypeError, match="sequence of LayerSpec"):
        mf.forecast(spec, 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="layers\\[1\\]"):
        mf.forecast([spec, "dense"], 1.0)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="fan_in = 3 must equal"):
        mf.forecast([spec, spec], 1.0)
    with pytest.raises(ValueError, match="'input_second_moment'"):
        mf.forecast([spec], 0.0)
    with pytest.raises(ValueError, match="'output_grad_var'"):
        mf.forecast([spec], 1.0, -1.0)
    with pytest.raises(ValueError, match="'input_mean'"):
        mf.forecast([spec], 1.0, input_mean=1.5)
    with pytest.raises(TypeError, match="'input_mean'"):
        mf.forecast([spec], 1.0, input_mean="0")  # type: ignore[arg-type]
    bn = mf.LayerSpec(3, 4, 0.1, batch_norm=True)
    with pytest.raises(ValueError, match="variance is forecast to be 0"):
        mf.forecast([bn], 1.0, input_mean=1.0)  # constant inputs


# ----------------------------------------------------------------------------- docs


PUBLIC = [getattr(mf, name) for name in mf.__all__ if inspect.isfunction(getattr(mf, name))]


@pytest.mark.parametrize("fn", PUBLIC, ids=[f.__name__ for f in PUBLIC])
def test_every_public_function_has_the_docstring_sections(fn: Callable[..., object]) -> None:
    doc = fn.__doc__ or ""
    for section in ("Args:", "Returns:", "Raises:", "References:", ">>>"):
        assert section in doc, f"{fn.__name__} lacks {section}"
