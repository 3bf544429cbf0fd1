"""initlab.activations against references written here: torch's calculate_gain, formulas
from the definitions, scipy's adaptive quadrature, closed forms, torch.autograd."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import integrate, special
from torch import nn
from torch.nn import functional as F

from initlab import activations as act
from initlab import init, meanfield, models

Ref = Callable[[np.ndarray], np.ndarray]
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805
RRELU = (1 / 8 + 1 / 3) / 2


def _softplus(x: np.ndarray, beta: float = 1.0) -> np.ndarray:
    return np.logaddexp(0.0, beta * x) / beta


def _leaky(s: float) -> Ref:
    return lambda x: np.where(x > 0, x, s * x)


def _elu(alpha: float, scale: float = 1.0) -> Ref:
    return lambda x: scale * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


# φ at the default parameter and the places where φ or φ' is not smooth, written out here
# from the definitions (numpy, scipy.special), independently of the registry.
REFERENCE: dict[str, tuple[Ref, tuple[float, ...]]] = {
    "linear": (lambda x: x, ()),
    "sigmoid": (special.expit, ()),
    "tanh": (np.tanh, ()),
    "relu": (_leaky(0.0), (0.0,)),
    "leaky_relu": (_leaky(0.01), (0.0,)),
    "selu": (_elu(SELU_ALPHA, SELU_SCALE), (0.0,)),
    "prelu": (_leaky(0.25), (0.0,)),
    "rrelu": (_leaky(RRELU), (0.0,)),
    "elu": (_elu(1.0), (0.0,)),
    "celu": (_elu(1.0), (0.0,)),  # celu(x; 1) = elu(x; 1)
    "gelu": (lambda x: x * special.ndtr(x), ()),
    "gelu_tanh": (
        lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
        (),
    ),
    "silu": (lambda x: x * special.expit(x), ()),
    "mish": (lambda x: x * np.tanh(_softplus(x)), ()),
    "softplus": (_softplus, ()),
    "hardtanh": (lambda x: np.clip(x, -1.0, 1.0), (-1.0, 1.0)),
    "relu6": (_relu6, (0.0, 6.0)),
    "hardswish": (lambda x: x * _relu6(x + 3) / 6, (-3.0, 3.0)),
    "hardsigmoid": (lambda x: _relu6(x + 3) / 6, (-3.0, 3.0)),
    "logsigmoid": (lambda x: -_softplus(-x), ()),
    "softsign": (lambda x: x / (1 + np.abs(x)), (0.0,)),
    "tanhshrink": (lambda x: x - np.tanh(x), ()),
    "softshrink": (lambda x: np.sign(x) * np.maximum(np.abs(x) - 0.5, 0.0), (-0.5, 0.5)),
    "hardshrink": (lambda x: np.where(np.abs(x) > 0.5, x, 0.0), (-0.5, 0.5)),
}
# Off the default parameter, kinks off the 1/8 grid included.
WITH_PARAMETER: dict[str, tuple[Ref, tuple[float, ...]]] = {
    "leaky_relu(0.2)": (_leaky(0.2), (0.0,)),
    "elu(0.5)": (_elu(0.5), (0.0,)),
    "celu(0.3)": (lambda x: np.where(x > 0, x, 0.3 * np.expm1(np.minimum(x, 0) / 0.3)), (0.0,)),
    "softplus(3)": (lambda x: _softplus(x, 3.0), ()),
    "softshrink(0.3)": (
        lambda x: np.sign(x) * np.maximum(np.abs(x) - 0.3, 0.0),
        (-0.3, 0.3),
    ),
    "hardshrink(0.3)": (lambda x: np.where(np.abs(x) > 0.3, x, 0.0), (-0.3, 0.3)),
}
ALL = {**REFERENCE, **WITH_PARAMETER}
QS = (1e-4, 0.3, 1.0, 30.0, 1e3)


def _pdf(z: float) -> float:
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def _scipy_second_moment(phi: Ref, q: float, kinks: tuple[float, ...]) -> float:
    """E[φ(√q z)²] by scipy's adaptive quadrature, split at the kinks and on φ's scale."""
    root = math.sqrt(q)
    cuts = {0.0, *(k / root for k in kinks), *(s * v / root for v in (0.25, 1, 4) for s in (-1, 1))}
    points = sorted(p for p in cuts if abs(p) < 40)
    value, _ = integrate.quad(
        lambda z: float(phi(np.array(root * z))) ** 2 * _pdf(z),
        -40,
        40,
        points=points,
        limit=500,
        epsabs=1e-17,
        epsrel=1e-13,
    )
    return float(value)


def _grid(n: int = 20_001, span: float = 8.0) -> torch.Tensor:
    return torch.linspace(-span, span, n, dtype=torch.float64)


# ----------------------------------------------------------------------------- the rows


def test_the_references_cover_the_registry() -> None:
    assert set(REFERENCE) == set(act.REGISTRY)


def test_names_and_aliases() -> None:
    assert tuple(sorted(act.NAMES)) == act.NAMES
    assert len(set(act.NAMES)) == len(act.NAMES) == len(act.by_name())
    assert act.lookup("swish") is act.lookup("silu")
    assert act.lookup("identity") is act.lookup("linear")
    for name, spec in act.REGISTRY.items():
        assert spec.name == name and act.lookup(name) is spec
        for alias in spec.aliases:
            assert act.lookup(alias) is spec
    with pytest.raises(ValueError, match="Did you mean 'relu'"):
        act.lookup("rleu")


@pytest.mark.parametrize("name", sorted(act.REGISTRY))
def test_phi_is_the_definition(name: str) -> None:
    # Measured (AVX-512 and AVX2 kernels, 1 and 2 threads, x ∈ [−8, 8]): ≤ 8.9e-16 apart
    # (tanhshrink, x − tanh x); with a parameter ≤ 2.2e-16. But gelu: 8.9e-16 on one
    # thread, up to 2.85e-11 on two (300 repeats, AVX2 kernels every time, AVX-512 about
    # one run in six): how the grid is split between the threads decides which values take
    # torch's vectorized erf and which its scalar one, and the two differ by that much.
    x = _grid()
    phi = act.lookup(name).bind()
    ours = phi.f(x).numpy()
    tolerance = 1e-10 if name == "gelu" else 1e-14 * (1 + np.abs(ours)).max()
    assert np.abs(ours - REFERENCE[name][0](x.numpy())).max() <= tolerance


@pytest.mark.parametrize("name", sorted(WITH_PARAMETER))
def test_phi_with_a_parameter_is_the_definition(name: str) -> None:
    x = _grid()
    ours = act.resolve(name).f(x).numpy()
    assert np.abs(ours - WITH_PARAMETER[name][0](x.numpy())).max() <= 1e-14 * 9


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_jump_of_phi_or_its_derivative_is_a_stated_kink(name: str) -> None:
    # On a grid of step 1e-4, a smooth φ' changes by < 4e-4 a step (|φ''| ≤ 3.4 here, at
    # celu(0.3)); a jump of φ or φ' by ≥ 0.01 must sit within two steps of a stated kink,
    # and every kink of the definition must be stated.
    phi = act.resolve(name)
    x = _grid(160_001)
    step = float(x[1] - x[0])
    d = act._autograd(phi.f)(x)
    y = phi.f(x)
    jumps = ((d[1:] - d[:-1]).abs() > 1e-2) | ((y[1:] - y[:-1]).abs() - d[:-1].abs() * step > 1e-2)
    for at in x[:-1][jumps].tolist():
        assert any(abs(at - k) <= 2 * step for k in phi.kinks), (name, at, phi.kinks)
    assert set(ALL[name][1]) <= set(phi.kinks)


@pytest.mark.parametrize("name", sorted(n for n, s in act.REGISTRY.items() if s.homogeneous))
def test_homogeneous_slopes_are_phi(name: str) -> None:
    phi = act.lookup(name).bind()
    assert phi.homogeneous is not None
    low, high = phi.homogeneous
    x = _grid(2001)
    expected = torch.where(x > 0, high * x, low * x)
    assert torch.equal(phi.f(x), expected)


# ----------------------------------------------------------------------------- gains


TORCH_TABLE = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]


@pytest.mark.parametrize("name", TORCH_TABLE)
def test_torch_gain_is_torchs(name: str) -> None:
    spec = act.lookup(name)
    assert spec.torch_gain is not None
    default = spec.param.default if spec.param else 0.0
    assert spec.torch_gain(default) == nn.init.calculate_gain(name)
    if spec.param is not None:
        for slope in (0.0, 0.2, 3.0, -0.5):
            assert spec.torch_gain(slope) == nn.init.calculate_gain(name, slope)


def test_rows_without_a_torch_gain_are_not_in_torchs_table() -> None:
    for name, spec in act.REGISTRY.items():
        if name in TORCH_TABLE:
            continue
        with pytest.raises(ValueError, match="nonlinearity"):
            nn.init.calculate_gain(name)
        if spec.torch_gain is not None:  # prelu, rrelu: torch's leaky_relu formula
            assert spec.param is not None
            slope = spec.param.default
            assert spec.torch_gain(slope) == nn.init.calculate_gain("leaky_relu", slope)
            assert "leaky_relu's formula" in spec.note


def test_init_and_models_views_are_the_registry() -> None:
    for name in act.NAMES:
        assert init.ACTIVATIONS[name] is act.lookup(name)
    layers = set(init.ACTIVATIONS) - set(act.NAMES)  # torch's six conv layer names
    assert len(layers) == 6 and all(name.startswith("conv") for name in layers)
    for name in layers:
        assert init.ACTIVATIONS[name] is act.lookup("linear")
        assert nn.init.calculate_gain(name) == 1
    expected = {n for n in act.NAMES if act.lookup(n).module is not None}
    assert set(models.ACTIVATIONS) == expected
    assert meanfield.ACTIVATION_NAMES == act.NAMES
    assert meanfield.second_moment is act.second_moment


@pytest.mark.numerics
@pytest.mark.parametrize("name", sorted(n for n in act.NAMES if act.lookup(n).module))
def test_module_computes_phi(name: str) -> None:
    # nn.Softplus switches to x above x > 20 (2e-9 off the exact form): compared below 15.
    # Measured (both kernel families, 1 and 2 threads): ≤ 1.8e-15 apart (softplus at 15,
    # 1.2e-16 relative).
    module = act.lookup(name).module
    assert module is not None
    x = _grid(20_001, 15.0)
    assert torch.allclose(module()(x), act.resolve(name).f(x), rtol=1e-14, atol=1e-15)


# ----------------------------------------------------------------------------- moments


@pytest.mark.parametrize("q", [1e-3, 0.7, 2.0, 400.0])
def test_second_moment_closed_forms(q: float) -> None:
    assert act.second_moment("relu", q) == pytest.approx(q / 2, rel=1e-15)
    assert act.second_moment("linear", q) == q
    assert act.second_moment("leaky_relu(0.2)", q) == pytest.approx(1.04 / 2 * q, rel=1e-15)
    assert act.second_moment("prelu", q) == pytest.approx((1 + 0.25**2) / 2 * q, rel=1e-15)
    if q <= 2:  # E[sin²(√q z)] = (1 − e^{−2q})/2, a smooth callable (not wiggling faster)
        expected = (1 - math.exp(-2 * q)) / 2
        assert act.second_moment(torch.sin, q) == pytest.approx(expected, rel=1e-13)


@pytest.mark.numerics
@pytest.mark.parametrize("name", sorted(ALL))
def test_second_moment_matches_scipy(name: str) -> None:
    # Measured (both kernel families, 1 and 2 threads): ≤ 2.5e-13 relative, the worst
    # tanhshrink at q = 1e-4 (x − tanh x cancels) and gelu at q = 1e3 (4.9e-14); against
    # mpmath at 30 digits those two are 4e-15 and 2e-16 off: the rest is scipy's. The other
    # names and parameters: ≤ 6.2e-16. (Below 1e-30, at q = 1e-4 for the shrinks, the
    # expectation lies beyond |z| = 12: the absolute tolerance.)
    phi, kinks = ALL[name]
    for q in QS:
        expected = _scipy_second_moment(phi, q, kinks)
        assert act.second_moment(name, q) == pytest.approx(expected, rel=1e-11, abs=1e-30), q


@pytest.mark.numerics
def test_a_smooth_callable_is_as_accurate_as_its_name() -> None:
    # Measured (both kernel families, 1 and 2 threads): ≤ 2.2e-16 apart.
    for q in QS:
        for name, fn in (("tanh", torch.tanh), ("sigmoid", torch.sigmoid), ("gelu", F.gelu)):
            assert act.second_moment(fn, q) == pytest.approx(act.second_moment(name, q), rel=1e-13)


def test_a_callables_kink_off_the_grid_costs_accuracy() -> None:
    # The registry states hardshrink(0.3)'s jumps, a callable cannot: its panels are the
    # 1/8 grid at q = 1, where the jump inside [0.25, 0.375] costs 4.3e-5 (measured).
    phi, kinks = WITH_PARAMETER["hardshrink(0.3)"]
    expected = _scipy_second_moment(phi, 1.0, kinks)
    named = act.second_moment("hardshrink(0.3)", 1.0)
    as_callable = act.second_moment(lambda x: F.hardshrink(x, 0.3), 1.0)
    assert named == pytest.approx(expected, rel=1e-14)
    assert abs(as_callable - expected) / expected == pytest.approx(4.3e-5, rel=0.05)


# ----------------------------------------------------------------------------- derivatives


@pytest.mark.numerics
@pytest.mark.parametrize("name", sorted(n for n, s in act.REGISTRY.items() if s.grad))
def test_closed_form_derivatives_equal_autograd(name: str) -> None:
    # Kinks included: the closed forms take torch's value there. Measured (both kernel
    # families, 1 and 2 threads): ≤ 1.1e-15 apart (silu at x = ±40).
    spec = act.lookup(name)
    for p in (None, 0.3) if spec.param else (None,):
        phi = spec.bind(p)
        x = torch.cat([_grid(4001), torch.tensor([0.0, -1.0, 1.0, 40.0, -40.0])])
        t = x.clone().requires_grad_(True)
        value = 0.0 if spec.param is None else spec.param.default if p is None else p
        (expected,) = torch.autograd.grad(spec.fn(t, value).sum(), t)
        assert torch.allclose(phi.df(x), expected, rtol=1e-14, atol=1e-15), phi.name


def test_slopes_at_infinity() -> None:
    assert act.resolve("relu").slopes == (0.0, 1.0)
    assert act.resolve("leaky_relu(0.2)").slopes == (0.2, 1.0)
    assert act.resolve("mish").slopes == (0.0, 1.0)  # by autograd
    assert act.resolve("logsigmoid").slopes == (1.0, 0.0)
    assert act.resolve("tanh").slopes == (0.0, 0.0)
    assert act.resolve(lambda x: 3 * x).slopes == (3.0, 3.0)


# ----------------------------------------------------------------------------- resolve


def test_resolve_reads_names_and_parameters() -> None:
    assert act.resolve(" Leaky_ReLU(negative_slope=0.2) ").name == "leaky_relu(0.2)"
    assert act.resolve("swish").name == "silu"
    assert act.resolve("hardshrink(0.3)").kinks == (-0.3, 0.3)
    assert act.resolve("softplus(4)").scale == 0.25
    assert act.resolve("softshrink(0)").kinks == (-0.0, 0.0)
    with pytest.raises(ValueError, match="activation's lambd\" parameter of resolve"):
        act.resolve("softshrink(-1)")
    with pytest.raises(ValueError, match="activation's beta\" parameter"):
        act.resolve("softplus(0)")
    with pytest.raises(ValueError, match="'tanh' without a parameter"):
        act.resolve("tanh(1)")
    with pytest.raises(TypeError, match="'activation' parameter of resolve"):
        act.resolve(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="takes no parameter"):
        act.lookup("tanh").bind(0.5)


def test_a_callable_of_the_wrong_shape_is_refused_when_resolved() -> None:
    with pytest.raises(ValueError, match="resolve: an activation callable must map"):
        act.resolve(lambda x: x.sum())
    with pytest.raises(ValueError, match="calculate_gain: an activation callable"):
        init.calculate_gain(lambda x: x[:1])
    with pytest.raises(ValueError, match="second_moment: E\\[φ²\\] is inf"):
        act.second_moment(lambda x: torch.exp(x**4), 1.0)  # inf beyond |x| = 5.3
    with pytest.raises(ValueError, match="calculate_gain: E\\[φ²\\] is inf"):
        init.calculate_gain("leaky_relu", 1e300, method="measured")  # the slope² overflows


def test_functional_forms_for_the_probe() -> None:
    names = ["linear", "relu", "tanh", "sigmoid", "leaky_relu", "gelu", "silu", "elu"]
    forms = act.functional_forms(names)
    assert [n for n, _ in forms] == [
        "linear",
        "relu",
        "tanh",
        "sigmoid",
        "leaky_relu(0.01)",
        "gelu",
        "silu",
        "elu(1)",
    ]
    torch_forms = [lambda h: h, F.relu, torch.tanh, torch.sigmoid, F.leaky_relu, F.gelu, F.silu]
    x = torch.randn(1000) * 4  # float32, as a probe sees activations
    for (_, phi), reference in zip(forms, [*torch_forms, F.elu], strict=True):
        out = phi(x)
        assert out.dtype == torch.float32
        # the probe's tolerance; float32 F.gelu's 1 + erf(x/√2) cancels in the left tail
        # (1 % off at x = −4.5, 1.3e-7 absolute), where x·Φ(x) does not
        assert torch.allclose(out, reference(x), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- docs


PUBLIC = [getattr(act, n) for n in act.__all__ if inspect.isfunction(getattr(act, n))]
METHODS = [act.ActivationSpec.bind, act.Phi.expect, act.Phi.expect_pair, act.Phi.second_moment]


@pytest.mark.parametrize("fn", PUBLIC + METHODS, ids=lambda f: f.__qualname__)
def test_every_public_function_has_the_docstring_sections(fn: Callable[..., object]) -> None:
    doc = fn.__doc__ or ""
    for section in ("Returns:", ">>>"):
        assert section in doc, f"{fn.__qualname__} lacks {section}"
    if inspect.signature(fn).parameters:
        assert "Args:" in doc
