"""Signal propagation in deep fully-connected nets: variance recursions and mean-field theory.

A fully-connected net computes pre-activations h^l = W^l φ(h^{l−1}) + b^l with weight
entries of variance v_l = σ_w²/fan_in and biases of variance σ_b². Over random weights,
each unit's pre-activation is Gaussian in the wide limit, so one number per layer, the
second moment q^l = E[(h^l)²] across units and inputs, follows the *q-map*

    q^l = σ_w² E[φ(√q^{l−1} z)²] + σ_b²,    z ~ N(0, 1),

(Glorot & Bengio 2010 and He et al. 2015 for linear and ReLU nets; Poole et al. 2016 in
general). Two inputs whose pre-activations have correlation c follow the *c-map*; its
slope at c = 1, χ₁ = σ_w² E[φ'(√q* z)²], separates the ordered phase (χ₁ < 1: inputs
become alike) from the chaotic one (χ₁ > 1: they decorrelate), and sets the depth
ξ_c = −1/ln χ_c over which correlations, and trainability, survive (Schoenholz et al.
2017). :func:`forecast` runs the forward and backward variance recursions through a chain
of concrete layers, for a probe to print "expected vs measured" per layer.

**Activations** are names or callables, as :mod:`initlab.activations` reads them (the
names of :func:`initlab.init.calculate_gain`: ``"relu"``, ``"leaky_relu(0.2)"``,
``"tanh"``, ``"softplus(2)"``, …, or any φ that maps a float64 tensor elementwise).

**Numerics.** Linear, ReLU and leaky ReLU use closed forms (the arc-cosine kernel for the
c-map). Everything else is integrated by the registry's one quadrature
(:meth:`initlab.activations.Phi.expect`, composite Gauss–Legendre on panels that follow
the Gaussian, φ's scale and φ's kinks: ~1e-15 relative for every named activation over
q ∈ [1e-4, 1e3]); two-input expectations nest it
(:meth:`~initlab.activations.Phi.expect_pair`).

Example:
    >>> round(second_moment("relu", 2.0), 12)  # E[relu(√2 z)²] = 2/2
    1.0
    >>> round(critical_sigma_w2("tanh", 0.05), 4)  # the edge of chaos at σ_b² = 0.05
    1.761
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from initlab import activations
from initlab._validation import check_int, check_real, param_message
from initlab.activations import Activation, Phi, second_moment
from initlab.activations import resolve as _resolve

__all__ = [
    "ACTIVATION_NAMES",
    "Activation",
    "LayerForecast",
    "LayerSpec",
    "chi1",
    "chi_c",
    "cmap",
    "correlation_depth",
    "correlation_fixed_point",
    "critical_sigma_w2",
    "derivative_moment",
    "fixed_point",
    "forecast",
    "mean",
    "qmap",
    "second_moment",
]

# q (times max(1, q0, σ_b²)) beyond which a q-map still growing is taken to diverge: up
# there rounding (1e-16·q) would hide the map's additive terms.
_Q_DIVERGED = 1e12
_EPS = float(np.finfo(np.float64).eps)

#: Every activation name this module knows (a callable covers the rest): the registry's.
ACTIVATION_NAMES: tuple[str, ...] = activations.NAMES


# --------------------------------------------------------------------------- moments


def _mean_square(pair: tuple[float, float]) -> float:
    return (pair[0] ** 2 + pair[1] ** 2) / 2


def _derivative_moment(phi: Phi, q: float, fn: str) -> float:
    if math.isinf(q):
        return _mean_square(phi.slopes)
    if phi.homogeneous is not None and q > 0:
        return _mean_square(phi.homogeneous)
    return phi.finite(phi.expect(lambda x: phi.df(x) ** 2, q), fn, "E[φ'²]")


def _mean(phi: Phi, q: float, fn: str) -> float:
    if phi.homogeneous is not None:
        low, high = phi.homogeneous
        return math.sqrt(q) * (high - low) / math.sqrt(2 * math.pi)
    return phi.finite(phi.expect(phi.f, q), fn, "E[φ]")


def derivative_moment(activation: Activation, q: float) -> float:
    """The second moment of an activation's derivative: E[φ'(√q z)²], z ~ N(0, 1).

    The factor by which a layer's φ scales the variance of a backpropagated gradient:
    1/2 for ReLU (at any q > 0), (1 + s²)/2 for leaky ReLU. At kinks φ' takes torch's
    value (relu'(0) = 0), which only matters at q = 0.

    Args:
        activation: a name or a callable on float64 tensors (derivative by autograd).
        q: the pre-activation's second moment, ≥ 0.

    Returns:
        E[φ'(√q z)²].

    Raises:
        ValueError: an unknown activation, q < 0 or non-finite, or a non-finite result.
        TypeError: an activation that is neither a string nor a callable.

    References:
        Poole et al. 2016 (χ₁, eq. 7); He et al., *Delving Deep into Rectifiers*, 2015.

    Example:
        >>> derivative_moment("relu", 4.0)
        0.5
        >>> round(derivative_moment("tanh", 1.0), 6)
        0.464404
    """
    fn = "derivative_moment"
    phi = _resolve(activation, fn)
    return _derivative_moment(phi, check_real(fn, "q", q, low=0.0), fn)


def mean(activation: Activation, q: float) -> float:
    """The mean of an activation of a Gaussian: E[φ(√q z)], z ~ N(0, 1).

    √q/√(2π) for ReLU; 0 for odd φ (tanh, hardtanh); 1/2 for sigmoid at any q.

    Args:
        activation: a name or a callable on float64 tensors.
        q: the pre-activation's second moment, ≥ 0.

    Returns:
        E[φ(√q z)].

    Raises:
        ValueError: an unknown activation, q < 0 or non-finite, or a non-finite result.
        TypeError: an activation that is neither a string nor a callable.

    References:
        Poole et al. 2016 (the c-map at c = 0 is σ_w² E[φ]² + σ_b²).

    Example:
        >>> round(mean("relu", 2 * math.pi), 12)  # √(2π)/√(2π)
        1.0
        >>> round(mean("sigmoid", 3.0), 12)
        0.5
    """
    fn = "mean"
    phi = _resolve(activation, fn)
    return _mean(phi, check_real(fn, "q", q, low=0.0), fn)


# --------------------------------------------------------------------------- the q-map


def _check_sigmas(fn: str, sigma_w2: object, sigma_b2: object) -> tuple[float, float]:
    return (
        check_real(fn, "sigma_w2", sigma_w2, low=0.0, low_open=True),
        check_real(fn, "sigma_b2", sigma_b2, low=0.0),
    )


def qmap(activation: Activation, q: float, sigma_w2: float, sigma_b2: float) -> float:
    """The length map: the next layer's pre-activation second moment.

    q^l = σ_w² E[φ(√q^{l−1} z)²] + σ_b², z ~ N(0, 1), for weights of variance
    σ_w²/fan_in and biases of variance σ_b².

    Args:
        activation: a name or a callable on float64 tensors.
        q: this layer's pre-activation second moment q^{l−1}, ≥ 0.
        sigma_w2: σ_w², the weight variance times fan_in, > 0.
        sigma_b2: σ_b², the bias variance, ≥ 0.

    Returns:
        q^l.

    Raises:
        ValueError: an unknown activation, q < 0, sigma_w2 ≤ 0, sigma_b2 < 0, or a value
            that is not finite.
        TypeError: an activation that is neither a string nor a callable.

    References:
        Poole et al. 2016, eq. 3.

    Example:
        >>> qmap("relu", 1.0, 2.0, 0.0)  # He: the length is kept
        1.0
        >>> qmap("relu", 1.0, 1.0, 0.1)  # Xavier: halved, plus the bias
        0.6
    """
    fn = "qmap"
    phi = _resolve(activation, fn)
    q = check_real(fn, "q", q, low=0.0)
    sigma_w2, sigma_b2 = _check_sigmas(fn, sigma_w2, sigma_b2)
    return sigma_w2 * phi.second_moment(q, fn) + sigma_b2


def _fixed_point(
    phi: Phi, sigma_w2: float, sigma_b2: float, q0: float, tol: float, max_iter: int, fn: str
) -> float:
    if phi.homogeneous is not None:
        # The q-map is affine, q ↦ a·q + σ_b²: its iterates converge to σ_b²/(1 − a) when
        # a < 1 and otherwise grow without bound (or stay, when nothing drives them).
        a = sigma_w2 * _mean_square(phi.homogeneous)
        if a < 1.0:
            return sigma_b2 / (1.0 - a)
        if sigma_b2 == 0.0 and (a == 1.0 or q0 == 0.0):
            return q0
        return math.inf

    def step(q: float) -> float:
        return sigma_w2 * phi.second_moment(q, fn) + sigma_b2

    def slope(q: float) -> float:
        # d/dq E[φ(√q z)²] = E[z φ(√q z) φ'(√q z)]/√q = E[x φ(x) φ'(x)]/q at x = √q z:
        # only φ' is needed, so kinks are harmless.
        return sigma_w2 * phi.expect(lambda x: x * phi.f(x) * phi.df(x), q) / q

    # The plain iteration q ← qmap(q) converges at the rate qmap'(q*), which can be close to
    # 1 (tanh, σ_b² = 0: 1 − 2e-5 at σ_w² = 1.00002): it would take 1e5 steps, and its
    # steps shrink to a few ulps before q* is reached. Newton's method on qmap(q) = q, with
    # qmap' by quadrature, converges quadratically. Its steps go the plain one's way (up
    # where qmap(q) > q); where the map repels (qmap' ≥ 1) the plain step is taken, at
    # least doubling a growing q, so divergence shows within ~100 steps. No step more than
    # doubles q, and once q has been seen on both sides of a fixed point, steps stay within
    # that bracket (bisecting if Newton leaves it), so that Newton lands on the fixed point
    # the plain iteration would reach unless two fixed points lie within a factor 2.
    limit = _Q_DIVERGED * max(1.0, q0, sigma_b2)
    low, high = 0.0, math.inf  # qmap(low) ≥ low, qmap(high) ≤ high: q* lies between
    zero_is_fixed = step(0.0) == 0.0
    q = q0
    for _ in range(max_iter):
        q1 = step(q)
        if abs(q1 - q) <= 4 * _EPS * q:  # a residual at rounding: q* is as close as it gets
            return q1
        if q1 > q > limit:
            return math.inf
        if q1 > q:
            low = q
        else:
            high = q
        target = q1
        if q > 0.0:
            s = slope(q)
            if s < 1.0:
                newton = (q1 - q) / (1.0 - s)
                if abs(newton) <= tol * q:
                    return q + newton
                target = q + newton
            elif q1 > q:
                target = max(q1, 2.0 * q)
        target = min(target, max(q1, 2.0 * q))
        if target <= 0.0 and zero_is_fixed:
            target = 0.0  # heading for q* = 0 (σ_b² = 0, φ(0) = 0): the plain steps crawl
        elif not low < target < high:
            target = q1 if low < q1 < high else (low + high) / 2
        q = target
    raise RuntimeError(
        f"{fn}: the q-map of {phi.name} at sigma_w2={sigma_w2:g}, sigma_b2={sigma_b2:g} did "
        f"not converge within max_iter={max_iter} iterations (last q = {q:.6g}). Raise "
        "max_iter, or tol."
    )


def fixed_point(
    activation: Activation,
    sigma_w2: float,
    sigma_b2: float,
    *,
    q0: float = 1.0,
    tol: float = 1e-12,
    max_iter: int = 1000,
) -> float:
    """The fixed point q* of the q-map reached from q0: the length deep signals settle at.

    q* = σ_w² E[φ(√q* z)²] + σ_b², the limit of the iteration q ← qmap(q) from q0. It is
    found by Newton's method on qmap(q) = q (qmap' by quadrature), which is quadratic also
    where the plain iteration crawls (qmap'(q*) near 1); its steps go the plain one's way,
    never more than double q, and stay within any bracket of a fixed point seen, so it
    reaches the plain iteration's limit unless two fixed points lie within a factor 2. It
    stops when the Newton step is at most ``tol``·q, or qmap(q) and q agree to rounding
    (near criticality q* is only determined to ~1e-16/(1 − qmap'(q*)) relatively). For
    linear, ReLU and leaky ReLU the q-map is affine, q ↦ a·q + σ_b² with
    a = σ_w²(1 + s²)/2, and q* is exact: σ_b²/(1 − a) for a < 1.

    **Divergence.** Where the iterates grow without bound — a ≥ 1 for (leaky) ReLU or
    linear with σ_b² > 0, or any φ that grows linearly (elu, selu, gelu, silu, softplus)
    with σ_w² large enough — the result is ``math.inf``: for a general φ, once q still
    grows beyond 1e12·max(1, q0, σ_b²), where rounding would hide the map's additive
    terms. (A finite q* beyond that is also reported as inf.) With σ_b² = 0 and a = 1
    every q is fixed: the result is q0.

    Args:
        activation: a name or a callable on float64 tensors.
        sigma_w2: σ_w², > 0.
        sigma_b2: σ_b², ≥ 0.
        q0: the starting length, ≥ 0.
        tol: the relative size of the last Newton step at which to stop, > 0.
        max_iter: the most iterations, ≥ 2.

    Returns:
        q* ≥ 0, or ``math.inf`` if the iterates diverge.

    Raises:
        ValueError: an unknown activation, or sigma_w2 ≤ 0, sigma_b2 < 0, q0 < 0, tol ≤ 0.
        TypeError: an activation that is neither a string nor a callable.
        RuntimeError: neither converged nor diverged within ``max_iter`` iterations.

    References:
        Poole et al. 2016, eq. 4 and Fig. 1.

    Example:
        >>> fixed_point("relu", 1.0, 0.5)  # q* = 0.5/(1 − 1/2)
        1.0
        >>> fixed_point("linear", 2.0, 0.1)
        inf
        >>> round(fixed_point("tanh", 1.760955, 0.05), 4)
        0.57
        >>> fixed_point("elu", 3.0, 0.1)
        inf
    """
    fn = "fixed_point"
    phi = _resolve(activation, fn)
    sigma_w2, sigma_b2 = _check_sigmas(fn, sigma_w2, sigma_b2)
    q0 = check_real(fn, "q0", q0, low=0.0)
    tol = check_real(fn, "tol", tol, low=0.0, low_open=True)
    max_iter = check_int(fn, "max_iter", max_iter, low=2)
    return _fixed_point(phi, sigma_w2, sigma_b2, q0, tol, max_iter, fn)


def _length(phi: Phi, sigma_w2: float, sigma_b2: float, q: object, fn: str) -> float:
    """q as given (checked), or q* when None."""
    if q is None:
        return _fixed_point(phi, sigma_w2, sigma_b2, 1.0, 1e-12, 1000, fn)
    return check_real(fn, "q", q, low=0.0)


def chi1(activation: Activation, sigma_w2: float, sigma_b2: float, q: float | None = None) -> float:
    """χ₁, the mean squared singular value of a layer's Jacobian: σ_w² E[φ'(√q z)²].

    At q = q* it is the slope of the c-map at c = 1: χ₁ < 1 is the ordered phase (nearby
    inputs converge), χ₁ > 1 the chaotic one (they diverge), χ₁ = 1 the edge of chaos,
    where gradients neither vanish nor explode with depth. Where q* = ∞ (see
    :func:`fixed_point`) χ₁ is the limit σ_w²(φ'(−∞)² + φ'(+∞)²)/2: σ_w²/2 for ReLU.

    Args:
        activation: a name or a callable on float64 tensors (derivative by autograd).
        sigma_w2: σ_w², > 0.
        sigma_b2: σ_b², ≥ 0.
        q: the length to evaluate at, ≥ 0; default the fixed point q* reached from
            q0 = 1.

    Returns:
        χ₁.

    Raises:
        ValueError: an unknown activation, sigma_w2 ≤ 0, sigma_b2 < 0 or q < 0.
        TypeError: an activation that is neither a string nor a callable.
        RuntimeError: the fixed point did not converge (see :func:`fixed_point`).

    References:
        Poole et al. 2016, eq. 7; Schoenholz et al., *Deep Information Propagation*, 2017.

    Example:
        >>> chi1("relu", 2.0, 0.0)  # He initialization is critical
        1.0
        >>> round(chi1("tanh", 1.760955, 0.05), 5)
        1.0
    """
    fn = "chi1"
    phi = _resolve(activation, fn)
    sigma_w2, sigma_b2 = _check_sigmas(fn, sigma_w2, sigma_b2)
    return sigma_w2 * _derivative_moment(phi, _length(phi, sigma_w2, sigma_b2, q, fn), fn)


# --------------------------------------------------------------------------- the c-map


def _arccos_kernels(c: float) -> tuple[float, float]:
    """E[relu(u₁)relu(u₂)]/q and P(u₁ > 0, u₂ > 0), for unit-variance u's of correlation c."""
    between = math.pi - math.acos(c)  # π minus the angle between u₁ and u₂
    product = (math.sqrt((1 - c) * (1 + c)) + between * c) / (2 * math.pi)
    return product, between / (2 * math.pi)


def _product_moment(phi: Phi, q: float, c: float) -> float:
    """E[φ(u₁)φ(u₂)], u's of variance q and correlation c."""
    if phi.homogeneous is not None:
        # φ(x) = s₋x + (s₊ − s₋)relu(x); E[u₁ relu(u₂)] = qc/2 (Cho & Saul 2009).
        low, high = phi.homogeneous
        d = high - low
        return q * (low**2 * c + low * d * c + d**2 * _arccos_kernels(c)[0])
    if c == 1.0:
        return phi.expect(lambda x: phi.f(x) ** 2, q)
    if c == 0.0:  # independent
        return phi.expect(phi.f, q) ** 2
    return phi.expect_pair(phi.f, q, c)


def _derivative_product(phi: Phi, q: float, c: float) -> float:
    """E[φ'(u₁)φ'(u₂)], u's of variance q and correlation c."""
    if phi.homogeneous is not None and q > 0:
        low, high = phi.homogeneous
        d = high - low
        return low**2 + low * d + d**2 * _arccos_kernels(c)[1]
    if c == 1.0:
        return phi.expect(lambda x: phi.df(x) ** 2, q)
    if c == 0.0:
        return phi.expect(phi.df, q) ** 2
    return phi.expect_pair(phi.df, q, c)


def _cmap(phi: Phi, c: float, q: float, sigma_w2: float, sigma_b2: float, fn: str) -> float:
    length = sigma_w2 * phi.second_moment(q, fn) + sigma_b2
    if length == 0.0:
        raise ValueError(
            f"{fn}: the correlation is undefined where the next layer is identically 0 "
            f"(q = {q:g}, sigma_b2 = 0, φ(0) = 0). Use q > 0 or sigma_b2 > 0."
        )
    if c == 1.0:  # exactly: the covariance is the length
        return 1.0
    value = phi.finite((sigma_w2 * _product_moment(phi, q, c) + sigma_b2) / length, fn, "c'")
    return min(1.0, max(-1.0, value))  # |c'| ≤ 1 up to rounding: make it exact


def _check_length(q: float, fn: str) -> float:
    if math.isinf(q):
        raise ValueError(
            f"{fn}: the q-map has no finite fixed point here (q* = inf, see fixed_point): the "
            "correlation map is taken at q*. Pass a finite q, or lower sigma_w2."
        )
    return q


def cmap(activation: Activation, c: float, q: float, sigma_w2: float, sigma_b2: float) -> float:
    """The correlation map: the next layer's correlation between two inputs.

    For two inputs whose pre-activations u₁, u₂ both have second moment q and correlation
    c, the next layer's pre-activations have correlation

        c' = (σ_w² E[φ(u₁)φ(u₂)] + σ_b²) / (σ_w² E[φ(u₁)²] + σ_b²).

    At q = q* the denominator is q*, and this is Poole et al.'s C-map; c = 1 maps to 1.
    For (leaky) ReLU, E[relu(u₁)relu(u₂)] = q(√(1 − c²) + (π − arccos c)c)/(2π), the
    arc-cosine kernel of Cho & Saul (2009); for other φ a nested quadrature.

    Args:
        activation: a name or a callable on float64 tensors.
        c: the correlation, in [−1, 1].
        q: the inputs' pre-activation second moment, ≥ 0 (for Poole et al.'s map, q*).
        sigma_w2: σ_w², > 0.
        sigma_b2: σ_b², ≥ 0.

    Returns:
        c', in [−1, 1].

    Raises:
        ValueError: an unknown activation, c outside [−1, 1], q < 0, sigma_w2 ≤ 0,
            sigma_b2 < 0, or a next layer that is identically 0 (q = 0, σ_b² = 0, φ(0) = 0).
        TypeError: an activation that is neither a string nor a callable.

    References:
        Poole et al. 2016, eq. 5; Cho & Saul, *Kernel Methods for Deep Learning*, 2009.

    Example:
        >>> round(cmap("relu", 0.0, 1.0, 2.0, 0.0), 6)  # 2·(1/(2π)): orthogonal inputs
        0.31831
        >>> cmap("tanh", 1.0, 0.5, 1.5, 0.1)
        1.0
    """
    fn = "cmap"
    phi = _resolve(activation, fn)
    c = check_real(fn, "c", c, low=-1.0, high=1.0)
    q = check_real(fn, "q", q, low=0.0)
    sigma_w2, sigma_b2 = _check_sigmas(fn, sigma_w2, sigma_b2)
    return _cmap(phi, c, q, sigma_w2, sigma_b2, fn)


def _chi_c(phi: Phi, c: float, q: float, sigma_w2: float, sigma_b2: float, fn: str) -> float:
    # d/dc E[φ(u₁)φ(u₂)] = q E[φ'(u₁)φ'(u₂)] (Price's theorem), hence the slope.
    length = sigma_w2 * phi.second_moment(q, fn) + sigma_b2
    if length == 0.0:
        return 0.0
    return phi.finite(sigma_w2 * q * _derivative_product(phi, q, c) / length, fn, "χ_c")


def _correlation_fixed_point(
    phi: Phi, q: float, sigma_w2: float, sigma_b2: float, fn: str
) -> float:
    if _chi_c(phi, 1.0, q, sigma_w2, sigma_b2, fn) <= 1.0:
        return 1.0  # c = 1 attracts: the ordered phase (or the edge of chaos)

    # Chaotic: c = 1 repels. On [0, 1] the c-map is a power series in c with nonnegative
    # coefficients (Hermite expansion), so f(c) = cmap(c) − c is convex with f(0) ≥ 0,
    # f(1) = 0 and f'(1) = χ − 1 > 0: exactly one root c* in [0, 1), the attracting one.
    def f(c: float) -> float:
        return _cmap(phi, c, q, sigma_w2, sigma_b2, fn) - c

    f0 = f(0.0)
    if f0 <= 0.0:
        return 0.0
    gap = 0.5
    while (f1 := f(1.0 - gap)) >= 0.0:
        gap /= 4
        if gap < 1e-15:  # c* is within rounding of 1: χ barely above 1
            return 1.0
    return _brent(f, 0.0, 1.0 - gap, f0, f1, 1e-14, 0.0)


def correlation_fixed_point(
    activation: Activation, sigma_w2: float, sigma_b2: float, q: float | None = None
) -> float:
    """The attracting fixed point c* of the c-map: the correlation deep signals settle at.

    c* = 1 in the ordered phase (χ₁ ≤ 1: all inputs end up alike); in the chaotic phase
    (χ₁ > 1) the unique root of cmap(c) = c in [0, 1), found by Brent's method (0 for an
    odd φ with σ_b² = 0).

    Args:
        activation: a name or a callable on float64 tensors.
        sigma_w2: σ_w², > 0.
        sigma_b2: σ_b², ≥ 0.
        q: the length at which to take the c-map, ≥ 0; default the fixed point q*
            reached from q0 = 1.

    Returns:
        c* in [0, 1].

    Raises:
        ValueError: an unknown activation, sigma_w2 ≤ 0, sigma_b2 < 0, q < 0, or q* = ∞.
        TypeError: an activation that is neither a string nor a callable.
        RuntimeError: the fixed point q* did not converge.

    References:
        Poole et al. 2016, Fig. 2; Schoenholz et al. 2017, sec. 3.

    Example:
        >>> correlation_fixed_point("tanh", 1.0, 0.05)  # ordered
        1.0
        >>> correlation_fixed_point("tanh", 4.0, 0.0)  # chaotic, odd φ, no bias
        0.0
    """
    fn = "correlation_fixed_point"
    phi = _resolve(activation, fn)
    sigma_w2, sigma_b2 = _check_sigmas(fn, sigma_w2, sigma_b2)
    q = _check_length(_length(phi, sigma_w2, sigma_b2, q, fn), fn)
    return _correlation_fixed_point(phi, q, sigma_w2, sigma_b2, fn)


def chi_c(
    activation: Activation,
    sigma_w2: float,
    sigma_b2: float,
    c: float | None = None,
    q: float | None = None,
) -> float:
    """The slope of the c-map: χ_c = ∂c'/∂c = σ_w² q E[φ'(u₁)φ'(u₂)] / q'.

    u₁, u₂ have second moment q and correlation c, and q' = σ_w² E[φ(u₁)²] + σ_b² (= q at
    q*, where χ_c = σ_w² E[φ'(u₁)φ'(u₂)]). At c = 1 and q = q* it equals χ₁. At the
    attracting fixed point c* it sets how fast correlations converge: c^l − c* ∝ χ_c*^l.

    Args:
        activation: a name or a callable on float64 tensors (derivative by autograd).
        sigma_w2: σ_w², > 0.
        sigma_b2: σ_b², ≥ 0.
        c: the correlation, in [−1, 1]; default c* (:func:`correlation_fixed_point`).
        q: the length, ≥ 0; default the fixed point q* reached from q0 = 1.

    Returns:
        χ_c ≥ 0.

    Raises:
        ValueError: an unknown activation, c outside [−1, 1], sigma_w2 ≤ 0, sigma_b2 < 0,
            q < 0, or q* = ∞.
        TypeError: an activation that is neither a string nor a callable.
        RuntimeError: the fixed point q* did not converge.

    References:
        Poole et al. 2016, eq. 7; Schoenholz et al. 2017, eq. 9.

    Example:
        >>> abs(chi_c("relu", 1.5, 0.1, c=1.0) - chi1("relu", 1.5, 0.1)) < 1e-12
        True
        >>> round(chi_c("relu", 2.0, 0.0, c=0.0, q=1.0), 6)  # P(u₁ > 0, u₂ > 0)·2 = 1/2
        0.5
    """
    fn = "chi_c"
    phi = _resolve(activation, fn)
    sigma_w2, sigma_b2 = _check_sigmas(fn, sigma_w2, sigma_b2)
    if c is not None:
        c = check_real(fn, "c", c, low=-1.0, high=1.0)
    q = _check_length(_length(phi, sigma_w2, sigma_b2, q, fn), fn)
    if c is None:
        c = _correlation_fixed_point(phi, q, sigma_w2, sigma_b2, fn)
    return _chi_c(phi, c, q, sigma_w2, sigma_b2, fn)


def correlation_depth(activation: Activation, sigma_w2: float, sigma_b2: float) -> float:
    """ξ_c = −1/ln χ_c*, the depth over which two inputs' correlation is still seen.

    χ_c* is the c-map's slope at its attracting fixed point c*, at q = q* (reached from
    q0 = 1): χ₁ in the ordered phase. ξ_c is infinite at the edge of chaos (χ_c* = 1) and
    finite on both sides; Schoenholz et al. find nets trainable only to a depth of a few
    ξ_c.

    Args:
        activation: a name or a callable on float64 tensors.
        sigma_w2: σ_w², > 0.
        sigma_b2: σ_b², ≥ 0.

    Returns:
        ξ_c ≥ 0, ``math.inf`` at criticality.

    Raises:
        ValueError: an unknown activation, sigma_w2 ≤ 0, sigma_b2 < 0, or q* = ∞.
        TypeError: an activation that is neither a string nor a callable.
        RuntimeError: the fixed point q* did not converge.

    References:
        Schoenholz et al., *Deep Information Propagation*, 2017, eq. 9.

    Example:
        >>> round(correlation_depth("relu", 1.0, 0.1), 4)  # −1/ln(1/2)
        1.4427
        >>> round(correlation_depth("tanh", 1.5, 0.05), 2)
        15.79
    """
    fn = "correlation_depth"
    phi = _resolve(activation, fn)
    sigma_w2, sigma_b2 = _check_sigmas(fn, sigma_w2, sigma_b2)
    q = _check_length(_length(phi, sigma_w2, sigma_b2, None, fn), fn)
    c = _correlation_fixed_point(phi, q, sigma_w2, sigma_b2, fn)
    chi = _chi_c(phi, c, q, sigma_w2, sigma_b2, fn)
    if chi >= 1.0:
        return math.inf
    if chi <= 0.0:
        return 0.0
    return -1.0 / math.log(chi)


# --------------------------------------------------------------------------- criticality


def _brent(
    f: Callable[[float], float], a: float, b: float, fa: float, fb: float, xtol: float, rtol: float
) -> float:
    """A root of f in [a, b], where f(a) and f(b) differ in sign (Brent 1973)."""
    previous, current, f_previous, f_current = a, b, fa, fb
    block, f_block, step_before, step = a, fa, 0.0, 0.0
    if f_previous == 0.0:
        return previous
    for _ in range(200):
        if f_previous != 0.0 and f_current != 0.0 and (f_previous < 0) != (f_current < 0):
            block, f_block = previous, f_previous
            step_before = step = current - previous
        if abs(f_block) < abs(f_current):  # keep the best guess in `current`
            previous, current, block = current, block, current
            f_previous, f_current, f_block = f_current, f_block, f_current
        delta = (xtol + rtol * abs(current)) / 2
        bisect = (block - current) / 2
        if f_current == 0.0 or abs(bisect) < delta:
            return current
        if abs(step_before) > delta and abs(f_current) < abs(f_previous):
            if previous == block:  # secant
                trial = -f_current * (current - previous) / (f_current - f_previous)
            else:  # inverse quadratic interpolation
                d_previous = (f_previous - f_current) / (previous - current)
                d_block = (f_block - f_current) / (block - current)
                trial = -f_current * (f_block * d_block - f_previous * d_previous)
                trial /= d_block * d_previous * (f_block - f_previous)
            if 2 * abs(trial) < min(abs(step_before), 3 * abs(bisect) - delta):
                step_before, step = step, trial
            else:
                step_before = step = bisect
        else:
            step_before = step = bisect
        previous, f_previous = current, f_current
        current += step if abs(step) > delta else math.copysign(delta, bisect)
        f_current = f(current)
    raise RuntimeError("Brent's method did not converge in 200 steps.")  # pragma: no cover


def critical_sigma_w2(
    activation: Activation,
    sigma_b2: float,
    *,
    bounds: tuple[float, float] = (0.01, 100.0),
    q0: float = 1.0,
    tol: float = 1e-12,
) -> float:
    """The weight variance σ_w² at the edge of chaos: χ₁(σ_w², σ_b²) = 1 at q*.

    Solves σ_w² E[φ'(√q* z)²] = 1, with q* the fixed point that the q-map reaches from q0
    at that σ_w² (∞ where it diverges, with χ₁ its limit), by Brent's method within
    ``bounds``. Exact values: 2 for ReLU (He et al. 2015), 2/(1 + s²) for leaky ReLU, 1
    for linear and for tanh with σ_b² = 0. Some φ have none: sigmoid's χ₁ stays below 1
    up to σ_w² ≈ 103, and gelu's and silu's χ₁ jump across 1 (at σ_b² = 0.05, q0 = 1)
    where the iteration from q0 starts to escape to q = ∞.

    Args:
        activation: a name or a callable on float64 tensors.
        sigma_b2: σ_b², ≥ 0.
        bounds: (low, high), 0 < low < high, a bracket where χ₁ − 1 changes sign.
        q0: the length the q-map starts from (see :func:`fixed_point`), ≥ 0.
        tol: the relative tolerance in σ_w², > 0.

    Returns:
        The critical σ_w².

    Raises:
        ValueError: an unknown activation, sigma_b2 < 0, bad bounds or tol, no sign
            change of χ₁ − 1 within ``bounds`` (the message gives χ₁ at both ends), or a
            χ₁ that jumps across 1 instead of passing through it.
        TypeError: an activation that is neither a string nor a callable, or bounds that
            are not a pair.
        RuntimeError: a fixed point q* did not converge.

    References:
        Poole et al. 2016, Fig. 2; Schoenholz et al. 2017, Fig. 1.

    Example:
        >>> critical_sigma_w2("relu", 0.1)
        2.0
        >>> round(critical_sigma_w2("tanh", 0.05), 6)
        1.760955
    """
    fn = "critical_sigma_w2"
    phi = _resolve(activation, fn)
    sigma_b2 = check_real(fn, "sigma_b2", sigma_b2, low=0.0)
    q0 = check_real(fn, "q0", q0, low=0.0)
    tol = check_real(fn, "tol", tol, low=0.0, low_open=True)
    if not (isinstance(bounds, tuple | list) and len(bounds) == 2):
        raise TypeError(param_message(fn, "bounds", "a pair (low, high)", bounds))
    low, high = (check_real(fn, "bounds", b, low=0.0, low_open=True) for b in bounds)
    if low >= high:
        raise ValueError(param_message(fn, "bounds", "a pair with low < high", bounds))

    def length(sigma_w2: float) -> float:
        return _fixed_point(phi, sigma_w2, sigma_b2, q0, 1e-13, 1000, fn)

    def excess(sigma_w2: float) -> float:
        return sigma_w2 * _derivative_moment(phi, length(sigma_w2), fn) - 1.0

    f_low, f_high = excess(low), excess(high)
    if f_low * f_high > 0:
        raise ValueError(
            f"{fn}: χ₁ − 1 must change sign within bounds={bounds!r} for {phi.name} at "
            f"sigma_b2={sigma_b2:g}. Got χ₁ = {f_low + 1:.6g} at {low:g} and "
            f"{f_high + 1:.6g} at {high:g}. Widen the bounds; if χ₁ stays on one side, this "
            "activation has no edge of chaos at this σ_b²."
        )
    root = _brent(excess, low, high, f_low, f_high, 0.0, tol)
    if abs(excess(root)) > 1e-6:
        # χ₁ jumped across 1 instead of passing through it. For gelu or silu the q-map has
        # an attracting fixed point and, above it, a repelling one; where the repelling one
        # crosses q0 the iteration from q0 escapes to ∞, and χ₁ jumps to its limit there.
        below, above = root * (1 - 1e-9), root * (1 + 1e-9)
        raise ValueError(
            f"{fn}: χ₁ of {phi.name} at sigma_b2={sigma_b2:g} does not pass through 1: it "
            f"jumps from {excess(below) + 1:.6g} to {excess(above) + 1:.6g} at sigma_w2 ≈ "
            f"{root:.10g}, where the q-map's limit from q0={q0:g} jumps from "
            f"{length(below):.6g} to {length(above):.6g}. This activation has no edge of chaos "
            "at this σ_b² and q0 (try another σ_b², a smaller q0, or other bounds)."
        )
    return root


# --------------------------------------------------------------------------- forecast


@dataclass(frozen=True)
class LayerSpec:
    """One fully-connected layer for :func:`forecast`: x ↦ φ(BN(W x + b)).

    The constraints are checked here, once; the numbers are the actual ones, not σ's.
    """

    fan_in: int  # inputs per unit (W has fan_out × fan_in entries)
    fan_out: int  # units of this layer
    weight_var: float  # E[W_ij²], the per-entry second moment: σ_w²/fan_in, 2/fan_in for He
    bias_var: float = 0.0  # E[b_j²]
    activation: Activation = "linear"  # the φ applied after this layer; "linear" at the top
    batch_norm: bool = False  # BN (γ = 1, β = 0, training mode) between W x + b and φ

    def __post_init__(self) -> None:
        fn = "LayerSpec"
        check_int(fn, "fan_in", self.fan_in, low=1)
        check_int(fn, "fan_out", self.fan_out, low=1)
        check_real(fn, "weight_var", self.weight_var, low=0.0)
        check_real(fn, "bias_var", self.bias_var, low=0.0)
        _resolve(self.activation, fn)
        if not isinstance(self.batch_norm, bool):
            raise TypeError(param_message(fn, "batch_norm", "True or False", self.batch_norm))


@dataclass(frozen=True)
class LayerForecast:
    """What :func:`forecast` expects of one layer; a = W x + b, h = a or BN(a), y = φ(h)."""

    linear_second_moment: float  # E[a²] = fan_in·weight_var·E[x²] + bias_var
    preact_second_moment: float  # q = E[h²]: E[a²], or 1 after batch norm
    postact_second_moment: float  # E[y²] = E[φ(√q z)²], the next layer's E[x²]
    postact_mean: float  # E[y] = E[φ(√q z)]
    preact_grad_var: float  # Var ∂L/∂h = E[φ'(h)²]·Var ∂L/∂y
    linear_grad_var: float  # Var ∂L/∂a: preact_grad_var, or it ÷ the batch variance of a
    input_grad_var: float  # Var ∂L/∂x = fan_out·weight_var·linear_grad_var
    forward_factor: float  # √(q^l / q^{l−1}), q⁰ = the input's second moment
    backward_factor: float  # √(Var ∂L/∂h^l / Var ∂L/∂h^{l+1}), ∂L/∂y above the top layer
    batch_variance: float | None = None  # forecast Var_batch(a) under BN


def forecast(
    layers: Sequence[LayerSpec],
    input_second_moment: float,
    output_grad_var: float = 1.0,
    *,
    input_mean: float = 0.0,
) -> list[LayerForecast]:
    """Forecast every layer's activation and gradient scale in a chain of dense layers.

    Forward, with x the layer's input (x⁰ the data, E[x⁰²] = ``input_second_moment``),
    a = W x + b, h = a (or BN(a)), y = φ(h), over random zero-mean weights:

        E[a²] = fan_in · v · E[x²] + bias_var,    E[y²] = E[φ(√q z)²],  q = E[h²],

    exactly in expectation over W for any x; φ's moments treat h as N(0, q) (the wide
    limit). Xavier-initialized ReLU layers (v = 1/fan_in) halve q each layer; He (v =
    2/fan_in) keep it.

    Backward, from Var ∂L/∂y^L = ``output_grad_var`` at the top (so Var ∂L/∂h^L =
    output_grad_var when the last φ is linear):

        Var ∂L/∂h^{l−1} = fan_out_l · v_l · E[φ'(h^{l−1})²] · Var ∂L/∂a^l,

    under the *gradient independence assumption* of Schoenholz et al. (2017): the Wᵀ of the
    backward pass is treated as independent of the W of the forward pass, and ∂L/∂y as
    independent of φ'(h). (The tests find Monte Carlo nets of width 256 within a few
    percent of it.)

    **Batch norm** (γ = 1, β = 0, training mode) sets h to zero mean and unit variance per
    unit, so q = 1. Backward, ∂L/∂a ≈ ∂L/∂h · γ/σ_B: the two centring terms of BN's exact
    gradient, which remove ∂L/∂h's batch mean and its component along h (about 2 of the
    batch's B degrees of freedom), are dropped. σ_B², the batch variance of a, is
    forecast as fan_in · v · (E[x²] − E[x]²): the bias and the inputs' mean are the same
    for every example and cancel, and each unit's x is taken to vary over the batch as
    φ(N(0, q)) does (E[x] = ``input_mean`` for the data).

    Args:
        layers: the chain, first layer first; each layer's fan_in must equal the previous
            layer's fan_out.
        input_second_moment: E[x²] of the data, averaged over features, > 0.
        output_grad_var: Var ∂L/∂y of the network output, ≥ 0.
        input_mean: E[x] of the data, averaged over features (only batch norm in the
            first layer uses it); its square must not exceed ``input_second_moment``.

    Returns:
        One :class:`LayerForecast` per layer, first layer first.

    Raises:
        ValueError: no layers, fans that do not chain, input_second_moment ≤ 0,
            output_grad_var < 0, input_mean² > input_second_moment, or batch norm over a
            batch variance forecast to be 0.
        TypeError: a layer that is not a :class:`LayerSpec`.

    References:
        Glorot & Bengio, *Understanding the difficulty of training deep feedforward
        neural networks*, 2010; He et al. 2015; Schoenholz et al. 2017; Ioffe & Szegedy,
        *Batch Normalization*, 2015.

    Example:
        >>> he = LayerSpec(256, 256, weight_var=2 / 256, activation="relu")
        >>> top = LayerSpec(256, 10, weight_var=1 / 256)
        >>> layers = forecast([he, he, he, top], input_second_moment=1.0)
        >>> [round(f.preact_second_moment, 6) for f in layers]  # the data is not rectified
        [2.0, 2.0, 2.0, 1.0]
        >>> [round(f.preact_grad_var, 6) for f in layers]  # 10·(1/256)·½ below the top
        [0.019531, 0.019531, 0.019531, 1.0]
    """
    fn = "forecast"
    if isinstance(layers, LayerSpec) or not isinstance(layers, Sequence):
        raise TypeError(param_message(fn, "layers", "a sequence of LayerSpec", layers))
    if not layers:
        raise ValueError(param_message(fn, "layers", "at least one LayerSpec", layers))
    for i, spec in enumerate(layers):
        if not isinstance(spec, LayerSpec):
            raise TypeError(param_message(fn, f"layers[{i}]", "a LayerSpec", spec))
        if i and spec.fan_in != layers[i - 1].fan_out:
            raise ValueError(
                f"{fn}: layers[{i}].fan_in = {spec.fan_in} must equal layers[{i - 1}].fan_out "
                f"= {layers[i - 1].fan_out}: the layers are chained."
            )
    second = check_real(fn, "input_second_moment", input_second_moment, low=0.0, low_open=True)
    grad = check_real(fn, "output_grad_var", output_grad_var, low=0.0)
    first_mean = check_real(fn, "input_mean", input_mean)
    if first_mean**2 > second:
        raise ValueError(
            param_message(
                fn,
                "input_mean",
                f"at most √input_second_moment = {math.sqrt(second):g} in size",
                input_mean,
                "A mean cannot exceed the root mean square.",
            )
        )

    # Forward.
    phis = [_resolve(spec.activation, fn) for spec in layers]
    forward: list[tuple[float, float, float, float, float, float | None]] = []
    x2, x_mean, q_before = second, first_mean, second
    for i, (spec, phi) in enumerate(zip(layers, phis, strict=True)):
        a2 = spec.fan_in * spec.weight_var * x2 + spec.bias_var
        batch_var: float | None = None
        q = a2
        if spec.batch_norm:
            batch_var = spec.fan_in * spec.weight_var * max(x2 - x_mean**2, 0.0)
            if batch_var <= 0.0:
                raise ValueError(
                    f"{fn}: layers[{i}] normalizes a batch whose variance is forecast to be 0 "
                    f"(weight_var = {spec.weight_var:g}, input variance "
                    f"{max(x2 - x_mean**2, 0.0):g}): BN would divide by √eps. Give the layer "
                    "nonzero weights, or inputs that vary."
                )
            q = 1.0
        y2, y_mean = phi.second_moment(q, fn), _mean(phi, q, fn)
        forward.append((a2, q, y2, y_mean, _ratio(q, q_before), batch_var))
        x2, x_mean, q_before = y2, y_mean, q

    # Backward, top layer first.
    backward: list[tuple[float, float, float, float]] = []
    y_grad = grad  # Var ∂L/∂y of the current layer
    h_grad_above = grad  # Var ∂L/∂h of the layer above (the output's, for the top layer)
    for spec, phi, (_, q, _, _, _, batch_var) in zip(
        reversed(layers), reversed(phis), reversed(forward), strict=True
    ):
        h_grad = _derivative_moment(phi, q, fn) * y_grad
        a_grad = h_grad / batch_var if batch_var is not None else h_grad
        x_grad = spec.fan_out * spec.weight_var * a_grad
        backward.append((h_grad, a_grad, x_grad, _ratio(h_grad, h_grad_above)))
        y_grad, h_grad_above = x_grad, h_grad
    backward.reverse()

    return [
        LayerForecast(
            linear_second_moment=a2,
            preact_second_moment=q,
            postact_second_moment=y2,
            postact_mean=y_mean,
            preact_grad_var=h_grad,
            linear_grad_var=a_grad,
            input_grad_var=x_grad,
            forward_factor=f_factor,
            backward_factor=b_factor,
            batch_variance=batch_var,
        )
        for (a2, q, y2, y_mean, f_factor, batch_var), (h_grad, a_grad, x_grad, b_factor) in zip(
            forward, backward, strict=True
        )
    ]


def _ratio(numerator: float, denominator: float) -> float:
    """√(numerator/denominator); nan for 0/0, inf for x/0."""
    if denominator == 0.0:
        return math.nan if numerator == 0.0 else math.inf
    return math.sqrt(numerator / denominator)
