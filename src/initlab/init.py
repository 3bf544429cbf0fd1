"""Weight and bias initializers, exactly: fans, gains, variance scaling, specs, ``apply``.

Every initializer fills a tensor in place under ``torch.no_grad()``, takes
``generator=`` when it is random, and returns the tensor, as ``torch.nn.init`` does.
Where torch has the same scheme, the same generator state gives bit-identical values.

A scheme can also be named by a *spec*, a short string parsed by :func:`parse_spec`:
``"he_normal"``, ``"normal(std=0.01)"``, ``"xavier_uniform(gain='tanh')"``,
``"variance_scaling(scale=2.0, mode='fan_avg', distribution='truncated_normal')"``,
``"constant(0.01)"``. :func:`apply` re-initializes a whole ``nn.Module`` from specs and
returns a record of what it did.

Example:
    >>> import torch
    >>> from initlab import init
    >>> w = torch.empty(256, 128)
    >>> _ = init.kaiming_normal_(w, generator=torch.Generator().manual_seed(0))
    >>> round(w.std().item(), 2)  # √(2/128) = 0.125
    0.13
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, Literal, TypeAlias

import numpy as np
import torch
from torch import Tensor, nn

from initlab import activations
from initlab._spec import parse_call
from initlab._validation import (
    DtypeError,
    OutOfRangeError,
    RuntimeValueError,
    TypeValueError,
    check_choice,
    check_int,
    check_real,
    did_you_mean,
    param_message,
)

__all__ = [
    "ACTIVATIONS",
    "TOKEN_PATTERNS",
    "Draw",
    "DtypeError",
    "InitRecord",
    "InitSpec",
    "OutOfRangeError",
    "RuntimeValueError",
    "Scheme",
    "TypeValueError",
    "apply",
    "calculate_fans",
    "calculate_gain",
    "constant_",
    "describe",
    "dirac_",
    "eye_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "lecun_normal_",
    "lecun_uniform_",
    "normal_",
    "ones_",
    "orthogonal_",
    "parse_spec",
    "scale_residual",
    "schemes",
    "sparse_",
    "torch_default_",
    "trunc_normal_",
    "truncated_normal_std",
    "uniform_",
    "variance_scaling_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

FanMode: TypeAlias = Literal["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
Distribution: TypeAlias = Literal["normal", "truncated_normal", "uniform"]
Bounds: TypeAlias = Literal["sigma", "absolute"]
#: A gain: a number, an activation name ("tanh", "leaky_relu(0.2)", "measured:tanh"),
#: or any callable φ, whose gain is then measured as 1/√E[φ(z)²], z ~ N(0, 1).
Gain: TypeAlias = float | str | Callable[[Tensor], Tensor]

_FAN_MODES: tuple[str, ...] = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
_DISTRIBUTIONS: tuple[str, ...] = ("normal", "truncated_normal", "uniform")
_SQRT3 = math.sqrt(3.0)
# Bound here, not looked up at each call: a user who swaps initlab's functions into
# torch.nn.init (so that their code's `nn.init.trunc_normal_` is ours) must not send
# ours into itself.
_torch_trunc_normal_ = nn.init.trunc_normal_
# How far from its mean a normal draw can land, in stds, for the overflow check: torch's
# samplers turn 53-bit uniforms into normals by Box–Muller, so |z| < √(2·53·ln 2) ≈ 8.6
# on every path; 10 leaves a margin (P(|z| > 10) = 1.5e-23 for an exact sampler).
_NORMAL_REACH = 10.0


# --------------------------------------------------------------------------- fans


def calculate_fans(
    tensor: Tensor | Sequence[int], *, transposed: bool = False, groups: int = 1
) -> tuple[int, int]:
    """Fan-in and fan-out of a weight, the receptive field included.

    fan_in is how many inputs each output unit sums over; fan_out how many outputs each
    input feeds. For a ``Linear`` weight (out, in): fan_in = in, fan_out = out. For a
    ``Conv{1,2,3}d`` weight (out, in/groups, k₁, …): fan_in = in/groups · ∏k and
    fan_out = out/groups · ∏k. A ``ConvTranspose`` weight is stored as
    (in, out/groups, k₁, …), so with ``transposed=True`` the roles of the first two
    dimensions swap: fan_in = in/groups · ∏k, fan_out = out/groups · ∏k.

    With the defaults (``groups=1``, not transposed) this is exactly torch's
    ``_calculate_fan_in_and_fan_out``, which ignores groups (its fan_out of a grouped
    conv is ``groups`` times too large) and treats a ConvTranspose weight as a Conv
    weight (its fans are swapped). :func:`apply` passes the layer's groups and
    transposition, so its fans are the true ones.

    Args:
        tensor: a weight, or its shape, with at least 2 dimensions.
        transposed: the weight belongs to a ``ConvTranspose`` layer.
        groups: the layer's ``groups``.

    Returns:
        ``(fan_in, fan_out)``.

    Raises:
        ValueError: fewer than 2 dimensions, or a first dimension not divisible by groups.

    Example:
        >>> calculate_fans((64, 3, 3, 3))
        (27, 576)
        >>> calculate_fans((3, 64, 3, 3), transposed=True)
        (27, 576)
        >>> calculate_fans((64, 8, 3, 3), groups=4)  # Conv2d(32, 64, 3, groups=4)
        (72, 144)
    """
    shape = _check_shape("calculate_fans", "tensor", tensor)
    if len(shape) < 2:
        raise ValueError(
            "fan_in and fan_out need a weight with at least 2 dimensions "
            f"(out_features, in_features, *kernel). Got shape {shape} instead. "
            "Biases and other 1-D tensors take a constant (e.g. 'zeros'), a normal or "
            "uniform scheme, or torch_default with fan_in=… given."
        )
    groups = check_int("calculate_fans", "groups", groups, low=1)
    if shape[0] % groups:
        raise ValueError(
            f"calculate_fans: dimension 0 of the weight ({shape[0]}) must be divisible by "
            f"groups. Got groups={groups}."
        )
    receptive_field = math.prod(shape[2:])
    per_group = shape[0] // groups * receptive_field
    other = shape[1] * receptive_field
    return (per_group, other) if transposed else (other, per_group)


def _check_shape(fn: str, name: str, shape: object) -> tuple[int, ...]:
    """A tensor's shape, or a shape given as a sequence of non-negative integers."""
    if isinstance(shape, Tensor):
        return tuple(shape.shape)
    expected = "a tensor or a shape: a sequence of integers >= 0 such as (out, in)"
    if isinstance(shape, str) or not isinstance(shape, Sequence):
        raise TypeError(param_message(fn, name, expected, shape))
    for size in shape:
        if isinstance(size, bool) or not isinstance(size, Integral):
            raise TypeError(param_message(fn, name, expected, shape))
        if size < 0:
            raise ValueError(param_message(fn, name, expected, shape))
    return tuple(int(size) for size in shape)


def _fans_for(shape: Sequence[int], fans: tuple[int, int] | None, fn: str) -> tuple[int, int]:
    """The fans given explicitly (validated), or those of the shape."""
    if fans is None:
        return calculate_fans(shape)
    if not (isinstance(fans, tuple | list) and len(fans) == 2):
        raise TypeError(param_message(fn, "fans", "a pair (fan_in, fan_out)", fans))
    fan_in, fan_out = (check_int(fn, "fans", f, low=0) for f in fans)
    return fan_in, fan_out


def _fan(fans: tuple[int, int], mode: str, fn: str) -> float:
    mode = check_choice(fn, "mode", mode, _FAN_MODES)
    fan_in, fan_out = fans
    fan: float
    if mode == "fan_in":
        fan = fan_in
    elif mode == "fan_out":
        fan = fan_out
    elif mode == "fan_avg":
        fan = (fan_in + fan_out) / 2.0
    else:
        fan = math.sqrt(fan_in * fan_out)
    if fan <= 0:
        raise ValueError(
            f"{fn} cannot scale by {mode} = {fan:g}: the weight has a zero-size dimension "
            f"(fans {fans})."
        )
    return fan


# --------------------------------------------------------------------------- gains


# torch's calculate_gain also takes these layer names, for a layer with no nonlinearity.
_TORCH_LAYERS = (
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)

#: Every activation initlab knows a gain for, by its ``torch.nn.functional`` name: a view
#: of :data:`initlab.activations.REGISTRY` (aliases included) and torch's layer names.
ACTIVATIONS: dict[str, activations.ActivationSpec] = {
    **activations.by_name(),
    **dict.fromkeys(_TORCH_LAYERS, activations.lookup("linear")),
}

_GAIN_STRING = re.compile(r"^(measured:)?([a-z0-9_]+)(?:\((.*)\))?$")


@functools.cache
def _measured_named_gain(name: str, param: float | None) -> float:
    return _measured_gain(ACTIVATIONS[name].bind(param))


def _measured_gain(phi: activations.Phi) -> float:
    fn = "calculate_gain"
    moment = phi.second_moment(1.0, fn)
    if moment <= 0:
        raise ValueError(
            f"A measured gain needs 0 < E[φ(z)²] < ∞. Got E[φ(z)²] = {moment!r}: "
            "φ is zero almost everywhere."
        )
    return 1.0 / math.sqrt(moment)


def calculate_gain(
    nonlinearity: str | Callable[[Tensor], Tensor],
    param: float | None = None,
    *,
    method: Literal["table", "measured"] | None = None,
) -> float:
    """The gain to multiply a unit-variance-preserving std by, for an activation.

    Two definitions, which agree for identity (1), ReLU (√2) and leaky ReLU
    (√(2/(1+slope²))) and differ elsewhere:

    * ``method="table"`` (default for names): torch's ``calculate_gain`` values where
      torch has one — tanh 5/3, sigmoid 1, selu 3/4 — so that initlab reproduces torch;
      for activations torch lacks (elu, gelu, silu, mish, softplus, hardtanh, …) the
      measured value.
    * ``method="measured"`` (the only one for callables): the second-moment gain
      g = 1/√E[φ(z)²], z ~ N(0, 1), computed by quadrature, which keeps
      E[(g·φ(z))²] = 1: tanh ≈ 1.5925, sigmoid ≈ 1.8462, selu = 1 (the self-normalizing
      value of Klambauer et al. 2017; torch's 3/4 was found empirically).

    ``ACTIVATIONS[name].note`` says where each table value comes from;
    ``initlab gains`` prints both numbers for every activation.

    E[φ(z)²] is the registry's (:meth:`initlab.activations.Phi.second_moment`): exact
    for the rectifiers, otherwise composite Gauss–Legendre quadrature whose panel edges
    include φ's kinks at any parameter, to ~1e-15 for every named activation; a
    callable's panels break at every multiple of 1/8, where torch's activations put their
    kinks, and a kink or jump elsewhere costs accuracy (hardshrink(0.3) as a callable:
    4e-5).

    Args:
        nonlinearity: a ``torch.nn.functional`` name (``"relu"``, ``"leaky_relu"``, …) or
            any callable φ mapping a tensor elementwise.
        param: the activation's parameter: leaky_relu's negative slope (default 0.01),
            elu/celu alpha, softplus beta, softshrink/hardshrink lambda.
        method: ``"table"`` or ``"measured"``; default ``"table"`` for names.

    Returns:
        The gain, a positive float.

    Raises:
        ValueError: unknown name (the message lists the known ones and the nearest),
            a ``param`` for an activation that has none, or ``"table"`` for a callable.
        TypeValueError: ``param`` is not a number (``True``, ``[1]``) or
            ``nonlinearity`` neither a name nor a callable; a ``TypeError`` and, as
            torch raises, a ``ValueError``.

    References:
        He et al., *Delving Deep into Rectifiers*, 2015; Klambauer et al.,
        *Self-Normalizing Neural Networks*, 2017.

    Example:
        >>> calculate_gain("relu") == math.sqrt(2)
        True
        >>> calculate_gain("tanh"), round(calculate_gain("tanh", method="measured"), 4)
        (1.6666666666666667, 1.5925)
        >>> g = calculate_gain(torch.sin)  # E[sin²z] = (1 − e⁻²)/2
        >>> abs(g - 1 / math.sqrt((1 - math.exp(-2)) / 2)) < 1e-12
        True
    """
    fn = "calculate_gain"
    if method is not None:
        check_choice(fn, "method", method, ("table", "measured"))
    if not isinstance(nonlinearity, str):
        if not callable(nonlinearity):
            raise TypeValueError(
                param_message(fn, "nonlinearity", "an activation name or a callable", nonlinearity)
            )
        if method == "table":
            raise ValueError(
                "A callable has no table gain: use method='measured' (the default for callables)."
            )
        if param is not None:
            raise ValueError("param is only for named activations; bind it into the callable.")
        return _measured_gain(activations.resolve(nonlinearity, fn))
    name = check_choice(fn, "nonlinearity", nonlinearity.lower(), ACTIVATIONS)
    spec = ACTIVATIONS[name]
    if param is not None:
        if spec.param is None:
            raise ValueError(f"{name} takes no parameter. Got param={param!r}; leave it out.")
        param = check_real(fn, "param", param, type_error=TypeValueError)
    if spec.torch_gain is not None and method != "measured":
        default = spec.param.default if spec.param is not None else 0.0
        return spec.torch_gain(default if param is None else param)
    return _measured_named_gain(name, param)


def _resolve_gain(gain: Gain, fn: str, name: str = "gain") -> float:
    """A gain argument (number, activation string or callable) as a float."""
    if isinstance(gain, str):
        match = _GAIN_STRING.match(gain.strip().lower())
        if match is None:
            raise ValueError(
                param_message(
                    fn,
                    name,
                    "a number, an activation name such as 'tanh' or 'leaky_relu(0.2)', "
                    "or 'measured:NAME'",
                    gain,
                )
            )
        measured, act, arg = match.groups()
        act = check_choice(fn, name, act, ACTIVATIONS)
        param = None
        if arg:
            try:
                param = float(arg)
            except ValueError as error:
                raise ValueError(
                    param_message(fn, name, "NAME or NAME(number)", gain, f"({arg!r} is no number)")
                ) from error
        return calculate_gain(act, param, method="measured" if measured else "table")
    if callable(gain):
        return calculate_gain(gain)
    return check_real(fn, name, gain, low=0.0)


# --------------------------------------------------------------------------- draws


@dataclass(frozen=True)
class Draw:
    """What a scheme draws for a tensor of a given shape (see :func:`describe`).

    ``std`` is the standard deviation of the values drawn — for a truncated normal the
    std after truncation, not the std of the underlying normal (``scale``).
    """

    distribution: str  # "constant", "uniform", "normal", "truncated_normal", "orthogonal", …
    std: float  # std of the values drawn (0 for a constant)
    mean: float = 0.0  # mean of the values drawn
    low: float | None = None  # smallest value that can be drawn, if bounded
    high: float | None = None  # largest value that can be drawn, if bounded
    fan_in: int | None = None  # the fans of the shape, for fan-based schemes
    fan_out: int | None = None
    fan: str | None = None  # which fan the scale uses: "fan_in", "fan_avg", …
    gain: float | None = None  # the gain used, if any
    loc: float | None = None  # truncated normal: mean of the underlying normal
    scale: float | None = None  # truncated normal: std of the underlying normal


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi) if math.isfinite(x) else 0.0


_GL_T, _GL_W = np.polynomial.legendre.leggauss(64)
_GL_T, _GL_W = (_GL_T + 1) / 2, _GL_W / 2  # nodes and weights on [0, 1]


def _narrow_moments(a: float, b: float) -> tuple[float, float]:
    """Mean and std of N(0, 1) truncated to a narrow [a, b], by quadrature.

    In the closed form the variance is 1 + … − mean², a difference of O(1 + a²) terms,
    which cancels to nothing for a narrow interval: [−1e-9, 1e-9] gave std 2e-4, not
    (b − a)/√12 = 5.8e-10. Here the moments are those of t = (x − a)/(b − a) on [0, 1],
    so nothing cancels; the density varies by at most e¹ over the interval (the caller
    sees to it), so 64 Gauss–Legendre nodes integrate it to rounding.
    """
    width = b - a
    nearest = min(max(0.0, a), b)  # the density's peak on [a, b]: no underflow
    x = a + width * _GL_T
    density = np.exp(-(x * x - nearest * nearest) / 2) * _GL_W
    t_mean = float(np.dot(density, _GL_T) / density.sum())
    t_var = float(np.dot(density, (_GL_T - t_mean) ** 2) / density.sum())
    return a + width * t_mean, width * math.sqrt(t_var)


def _truncated_moments(a: float, b: float, fn: str = "truncated_normal_std") -> tuple[float, float]:
    """Mean and std of N(0, 1) truncated to [a, b] (a and b in units of σ)."""
    far = max(abs(a), abs(b))
    # Narrow (also when a huge std makes Z underflow), and near enough for x² − c² to keep
    # its digits; farther out the tails' Z underflows below and that is the error.
    if (b - a) * max(1.0, far) <= 1.0 and far <= 1e3:
        return _narrow_moments(a, b)
    # Above the mean, difference the upper tails, where the cdf keeps its precision.
    z = _normal_cdf(-a) - _normal_cdf(-b) if a > 0 else _normal_cdf(b) - _normal_cdf(a)
    if not z > 0:
        raise ValueError(
            f"{fn}: a normal truncated to [{a:g}σ, {b:g}σ] around its mean has probability "
            f"{z!r} in floating point: the interval lies too far in the tail. Fix: move the "
            "bounds closer to the mean, or widen the std."
        )
    pa, pb = _normal_pdf(a), _normal_pdf(b)
    ta = a * pa if math.isfinite(a) else 0.0
    tb = b * pb if math.isfinite(b) else 0.0
    mean = (pa - pb) / z
    var = 1.0 + (ta - tb) / z - mean * mean
    return mean, math.sqrt(var)


def truncated_normal_std(a: float = -2.0, b: float = 2.0) -> float:
    """Std of a standard normal truncated to [a, b]: the σ correction of truncation.

    Var = 1 + (a·φ(a) − b·φ(b))/Z − ((φ(a) − φ(b))/Z)², Z = Φ(b) − Φ(a). For ±2σ this
    is 0.8796256610342398, the constant Keras and JAX divide by so that a truncated
    normal initializer draws with the requested std.

    Example:
        >>> truncated_normal_std(-2.0, 2.0)
        0.879625661034...
    """
    fn = "truncated_normal_std"
    a, b = check_real(fn, "a", a), check_real(fn, "b", b)
    if not a < b:
        raise ValueError(f"{fn} needs a < b. Got a={a!r}, b={b!r}.")
    return _truncated_moments(a, b)[1]


def _constant_draw(value: float, **info: Any) -> Draw:
    return Draw("constant", 0.0, mean=value, low=value, high=value, **info)


def _uniform_draw(low: float, high: float, **info: Any) -> Draw:
    return Draw("uniform", (high - low) / math.sqrt(12.0), (low + high) / 2, low, high, **info)


def _scaled_draw(std: float, distribution: str, fn: str, **info: Any) -> Draw:
    """A zero-mean draw of std ``std``: normal, σ-corrected truncated normal or uniform."""
    distribution = check_choice(fn, "distribution", distribution, _DISTRIBUTIONS)
    if distribution == "normal":
        return Draw("normal", std, **info)
    if distribution == "uniform":
        bound = _SQRT3 * std  # U(−b, b) has std b/√3
        return _uniform_draw(-bound, bound, **info)
    return _trunc_draw(0.0, std, -2.0, 2.0, "sigma", fn, **info)


def _trunc_draw(
    mean: float, std: float, a: float, b: float, bounds: str, fn: str, **info: Any
) -> Draw:
    bounds = check_choice(fn, "bounds", bounds, ("sigma", "absolute"))
    if not a < b:
        raise ValueError(f"{fn} needs a < b. Got a={a!r}, b={b!r}.")
    if bounds == "sigma":
        if std == 0:
            return _constant_draw(mean, **info)
        # Choose the underlying N(loc, scale²) so the *drawn* values have mean and std.
        m, s = _truncated_moments(a, b, fn)
        scale = std / s
        loc = mean - scale * m
        low, high = loc + a * scale, loc + b * scale
        return Draw("truncated_normal", std, mean, low, high, loc=loc, scale=scale, **info)
    if std == 0:
        if not a <= mean <= b:
            raise ValueError(
                f"{fn} with std=0 draws the constant mean={mean!r}, which lies outside "
                f"[a, b] = [{a!r}, {b!r}]. Fix: a mean within the bounds, or std > 0."
            )
        return _constant_draw(mean, **info)
    m, s = _truncated_moments((a - mean) / std, (b - mean) / std, fn)
    return Draw("truncated_normal", std * s, mean + std * m, a, b, loc=mean, scale=std, **info)


def _ready(tensor: object, fn: str, generator: torch.Generator | None) -> bool:
    """Validate the tensor and generator; False (with a warning) for a zero-element tensor."""
    if not isinstance(tensor, Tensor):
        raise TypeError(param_message(fn, "tensor", "a torch.Tensor", type(tensor).__name__))
    _check_generator(tensor, fn, generator)
    if tensor.numel() == 0:
        # torch's own words first: code that matches torch's warning still matches ours.
        warnings.warn(
            f"Initializing zero-element tensors is a no-op: {fn} got a tensor of shape "
            f"{tuple(tensor.shape)}, which has no elements, so there is nothing to initialize.",
            UserWarning,
            stacklevel=3,
        )
        return False
    return True


def _check_distinct(tensor: Tensor, fn: str) -> None:
    """Draws need one memory location per element: an ``expand``ed view has fewer."""
    if any(
        step == 0 and size > 1 for step, size in zip(tensor.stride(), tensor.shape, strict=True)
    ):
        raise RuntimeValueError(
            f"{fn} cannot fill a tensor whose elements share memory (shape "
            f"{tuple(tensor.shape)}, strides {tensor.stride()}: an expand()ed or broadcast "
            "view): each draw would land on several elements. Fix: initialize a copy that "
            "owns its memory, w = w.clone() (or w.contiguous()), and use that."
        )


def _check_floating(tensor: Tensor, fn: str, *, real: bool = False, why: str = "") -> None:
    """Random draws need a floating-point tensor; some (``real``) a real one."""
    dtype = tensor.dtype
    if dtype.is_floating_point or (dtype.is_complex and not real):
        return
    kinds = "real floating-point" if real else "floating-point"
    why = why if dtype.is_complex and why else "it draws random values"
    if dtype.is_complex:
        fix = (
            "create it with a real dtype (dtype=torch.float32), or draw the real and "
            "imaginary parts into real tensors and join them with torch.complex(re, im)."
        )
    else:
        fix = "create it with dtype=torch.float32, or convert it first: w = w.float()."
    raise DtypeError(
        f"{fn} needs a {kinds} tensor (float32, float64, float16 or bfloat16): {why}. "
        f"Got a tensor of dtype {dtype}. Fix: {fix}"
    )


def _exact_value(fn: str, name: str, value: float | bool, dtype: torch.dtype) -> float | int | bool:
    """``value`` as the dtype will hold it, or an error if it cannot hold it exactly.

    torch's ``fill_`` truncates 0.5 to 0 in an integer tensor and turns any nonzero into
    True in a bool tensor, silently: here that is an error that names the fix.
    """
    got = f"{fn} cannot put {name}={value!r} into a {dtype} tensor"
    if dtype == torch.bool:
        if value in (0, 1):
            return bool(value)
        raise OutOfRangeError(
            f"{got}: it holds only True and False, and {value!r} would become True. Fix: "
            "pass True, False, 1 or 0, or use a floating-point tensor (dtype=torch.float32)."
        )
    if dtype.is_floating_point or dtype.is_complex:
        largest = torch.finfo(dtype).max
        if abs(value) > largest:
            raise OutOfRangeError(
                f"{got}: its largest value is {largest:.6g}. Fix: a smaller {name}, or a "
                f"wider dtype{_wider(dtype)}."
            )
        return float(value)  # an int past int64 (2**70) is no torch scalar
    info = torch.iinfo(dtype)
    if not float(value).is_integer():
        raise OutOfRangeError(
            f"{got} exactly: an integer tensor would truncate it to {int(value)}. Fix: pass "
            f"an integral {name}, or use a floating-point tensor (dtype=torch.float32)."
        )
    if not info.min <= value <= info.max:
        raise OutOfRangeError(
            f"{got}: {dtype} holds integers in [{info.min}, {info.max}]. Fix: a {name} in "
            "that range, or a wider dtype (torch.int64, or torch.float64 for fractions)."
        )
    return int(value)


def _as_given(value: object, checked: float | None) -> float | int:
    """An integer argument as the exact int it is (a float loses digits past 2⁵³);
    anything else as the float it was checked to be."""
    if isinstance(value, Integral):
        return int(value)
    assert checked is not None
    return checked


def _wider(dtype: torch.dtype) -> str:
    """ " (torch.float32 holds up to …)": the wider floating dtypes and their ranges."""
    largest = torch.finfo(dtype).max
    wider = [d for d in (torch.float32, torch.float64) if torch.finfo(d).max > largest]
    if not wider:
        return " (none is wider than float64)"
    return " (" + ", ".join(f"{d} holds up to {torch.finfo(d).max:.3g}" for d in wider) + ")"


def _check_reach(fn: str, dtype: torch.dtype, reach: float, what: str, fix: str) -> None:
    """An error if draws reaching ``reach`` in magnitude would overflow ``dtype``."""
    largest = torch.finfo(dtype).max
    if not reach <= largest:  # also catches reach = inf
        raise OutOfRangeError(
            f"{fn} would overflow {dtype}: {what}, beyond its largest value {largest:.6g}, "
            f"so values would come out as ±inf. Fix: {fix}, or a wider dtype{_wider(dtype)}."
        )


# What to lower when a scheme's draws overflow: the parameter that sets their spread.
_SPREAD_PARAM: dict[str, str] = {
    "variance_scaling_": "scale",
    "xavier_uniform_": "gain",
    "xavier_normal_": "gain",
    "kaiming_uniform_": "gain: a smaller number as nonlinearity",
    "kaiming_normal_": "gain: a smaller number as nonlinearity",
}


def _check_fits(tensor: Tensor, draw: Draw, fn: str) -> None:
    """The dtype can hold what ``draw`` draws: a floating dtype for random draws, and
    draws that stay finite. (A constant's value is checked by :func:`_exact_value`.)"""
    dtype = tensor.dtype
    if draw.distribution == "constant":
        return  # one value: shared memory holds it as well
    _check_distinct(tensor, fn)
    truncated = draw.distribution == "truncated_normal"
    why = "a truncated normal is defined on the real line" if truncated else ""
    _check_floating(tensor, fn, real=truncated, why=why)
    largest = torch.finfo(dtype).max
    knob = f" (lower the {_SPREAD_PARAM[fn]})" if fn in _SPREAD_PARAM else ""
    if draw.distribution == "normal":
        reach = abs(draw.mean) + _NORMAL_REACH * draw.std
        what = (
            f"draws of N({draw.mean:g}, std={draw.std:g}) reach ±{reach:.3g} "
            f"(|mean| + {_NORMAL_REACH:g}·std)"
        )
        if abs(draw.mean) >= largest:
            fix = f"a mean within ±{largest:.3g}"
        else:
            limit = (largest - abs(draw.mean)) / _NORMAL_REACH
            fix = f"a std of at most {limit:.3g}{knob}"
        _check_reach(fn, dtype, reach, what, fix)
        return
    assert draw.low is not None and draw.high is not None
    low, high = draw.low, draw.high
    if draw.distribution == "uniform":
        # torch's uniform_ computes low + (high − low)·u, so the width must fit too.
        reach = max(abs(low), abs(high), high - low)
        what = f"U({low:g}, {high:g}) needs {reach:.3g} (the larger of |a|, |b| and b − a)"
        fix = f"|a|, |b| and b − a of at most {largest:.3g}{knob}"
    else:
        reach = max(abs(low), abs(high))
        what = f"the truncation bounds [{low:.3g}, {high:.3g}] reach {reach:.3g}"
        fix = f"bounds within ±{largest:.3g}{knob}"
    _check_reach(fn, dtype, reach, what, fix)


def _check_generator(tensor: Tensor, fn: str, generator: torch.Generator | None) -> None:
    """A generator must be a torch.Generator on the tensor's device (meta draws nothing)."""
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(param_message(fn, "generator", "a torch.Generator or None", generator))
        if generator.device.type != tensor.device.type and not tensor.is_meta:
            raise ValueError(
                f"The generator passed to {fn} is on {generator.device} but the tensor is on "
                f"{tensor.device}. Create it there: torch.Generator(device='{tensor.device}')."
            )


def _fill_(tensor: Tensor, draw: Draw, generator: torch.Generator | None, fn: str) -> Tensor:
    """Fill ``tensor`` with the distribution ``draw`` describes, once its dtype is checked."""
    _check_fits(tensor, draw, fn)
    if tensor.is_meta:
        # Nothing to draw, and the first draw on a meta tensor loads torch's meta kernels
        # (1.3 s): apply's dry run would add that to every command's start-up.
        return tensor
    with torch.no_grad():
        if draw.distribution == "constant":
            return tensor.fill_(draw.mean)
        if draw.distribution == "uniform":
            assert draw.low is not None and draw.high is not None
            return tensor.uniform_(draw.low, draw.high, generator=generator)
        if draw.distribution == "normal":
            return tensor.normal_(draw.mean, draw.std, generator=generator)
        if draw.distribution == "truncated_normal":
            assert draw.loc is not None and draw.scale is not None
            assert draw.low is not None and draw.high is not None
            # torch's sampler is exact (rejection from the normal or from a uniform
            # envelope), so both bound conventions share it and match torch bit for bit.
            return _torch_trunc_normal_(
                tensor, draw.loc, draw.scale, draw.low, draw.high, generator=generator
            )
    raise AssertionError(f"no fill for {draw.distribution}")  # pragma: no cover


# --------------------------------------------------------------------------- constants


def _draw_constant(shape: Sequence[int], val: float) -> Draw:
    # True/False are torch's (and Python's) 1 and 0: a bool tensor's natural values.
    return _constant_draw(
        check_real("constant_", "val", int(val) if isinstance(val, bool) else val)
    )


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros: w = 0. Every unit of the layer computes the same function.

    With all weights equal, all units of a layer receive the same gradient and stay
    identical for ever: zero (or constant) weights never break symmetry. Zero is the
    usual *bias* init.

    Example:
        >>> zeros_(torch.empty(2, 3)).sum().item()
        0.0
    """
    if _ready(tensor, "zeros_", None):
        _fill_(tensor, _constant_draw(0.0), None, "zeros_")
    return tensor


def ones_(tensor: Tensor) -> Tensor:
    """Fill with ones: w = 1 (batch norm's γ; no symmetry breaking for weights).

    Example:
        >>> ones_(torch.empty(2, 3)).sum().item()
        6.0
    """
    if _ready(tensor, "ones_", None):
        _fill_(tensor, _constant_draw(1.0), None, "ones_")
    return tensor


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with a constant: w = val (e.g. a bias of 0.01 to keep ReLUs alive).

    Any dtype, as long as it holds ``val`` exactly: where torch's ``constant_`` would
    truncate 0.5 to 0 in an integer tensor, turn 0.5 into True in a bool tensor, or
    overflow to ±inf, this is an error.

    Args:
        tensor: the tensor to fill.
        val: a finite number (True/False count as 1/0).

    Returns:
        ``tensor``.

    Raises:
        TypeError: ``val`` is not a number.
        ValueError: ``val`` is not finite.
        OutOfRangeError: the dtype cannot hold ``val`` exactly (a fraction into an integer
            tensor, anything but 0/1 into a bool tensor, a value beyond the dtype's
            range); a ``ValueError`` and, as torch raises on overflow, a ``RuntimeError``.

    Example:
        >>> constant_(torch.empty(3), 0.01)
        tensor([0.0100, 0.0100, 0.0100])
        >>> constant_(torch.empty(2, dtype=torch.int64), 0.5)
        Traceback (most recent call last):
        ...
        initlab._validation.OutOfRangeError: constant_ cannot put val=0.5 into a torch.int64 ...
    """
    if _ready(tensor, "constant_", None):
        draw = _draw_constant(tensor.shape, val)
        value = _exact_value("constant_", "val", _as_given(val, draw.mean), tensor.dtype)
        with torch.no_grad():
            tensor.fill_(value)
    return tensor


# --------------------------------------------------------------------------- plain random


def _draw_uniform(shape: Sequence[int], a: float = 0.0, b: float = 1.0) -> Draw:
    fn = "uniform_"
    a, b = check_real(fn, "a", a), check_real(fn, "b", b)
    if not a <= b:
        raise ValueError(f"{fn} needs a <= b. Got a={a!r}, b={b!r}; swap them.")
    return _uniform_draw(a, b)


def uniform_(
    tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """Fill with draws from the uniform distribution U(a, b); std = (b − a)/√12.

    Raises:
        ValueError: a > b, or a non-finite bound.
        DtypeError: a tensor that is not floating point (int, bool).
        OutOfRangeError: a bound or the width b − a beyond the dtype's largest value.

    Example:
        >>> w = uniform_(torch.empty(1000), -1.0, 1.0, generator=torch.Generator().manual_seed(0))
        >>> bool(w.min() >= -1 and w.max() <= 1)
        True
    """
    if _ready(tensor, "uniform_", generator):
        _fill_(tensor, _draw_uniform(tensor.shape, a, b), generator, "uniform_")
    return tensor


def _draw_normal(shape: Sequence[int], mean: float = 0.0, std: float = 1.0) -> Draw:
    fn = "normal_"
    return Draw("normal", check_real(fn, "std", std, low=0.0), check_real(fn, "mean", mean))


def normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill with draws from N(mean, std²).

    The classic lessons: "small random" is N(0, 1)·0.01 = ``normal(std=0.01)``, which
    makes deep nets vanish; "large random" is N(0, 1)·10 = ``normal(std=10)``, which
    saturates tanh/sigmoid and explodes ReLU nets.

    Raises:
        ValueError: std < 0, or a non-finite argument.
        DtypeError: a tensor that is not floating point (int, bool).
        OutOfRangeError: draws would overflow the dtype: |mean| + 10·std beyond its
            largest value (std=1e300 in float32), where torch would fill ±inf.

    Example:
        >>> w = normal_(torch.empty(10_000), std=0.01, generator=torch.Generator().manual_seed(0))
        >>> round(w.std().item(), 3)
        0.01
    """
    if _ready(tensor, "normal_", generator):
        _fill_(tensor, _draw_normal(tensor.shape, mean, std), generator, "normal_")
    return tensor


def _draw_trunc_normal(
    shape: Sequence[int],
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    bounds: Bounds = "absolute",
) -> Draw:
    fn = "trunc_normal_"
    mean, std = check_real(fn, "mean", mean), check_real(fn, "std", std, low=0.0)
    a, b = check_real(fn, "a", a), check_real(fn, "b", b)
    return _trunc_draw(mean, std, a, b, bounds, fn)


def trunc_normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: torch.Generator | None = None,
    *,
    bounds: Bounds = "absolute",
) -> Tensor:
    """Fill with draws from a truncated normal, in one of two conventions.

    ``bounds="absolute"`` (default; torch's ``nn.init.trunc_normal_``, so that this is
    a drop-in for it): N(mean, std²) with values outside the absolute interval [a, b]
    redrawn; no correction, so the drawn std is smaller than ``std`` (0.88·std for
    a, b = mean ∓ 2·std). Mind torch's default bounds ∓2: for std ≪ 1 they truncate
    nothing (``std=0.02`` is a plain normal), for std ≫ 1 the result is nearly
    uniform on [−2, 2]. Bit-identical to torch.

    ``bounds="sigma"``: ``a`` and ``b`` are in units of the underlying normal's σ (as
    in Keras's ``TruncatedNormal`` and JAX's ``truncated_normal``), and σ is corrected
    for the truncation (as their ``VarianceScaling`` does) so that the *drawn* values
    have exactly the requested ``mean`` and ``std``. For ±2: σ = std / 0.87962566 (see
    :func:`truncated_normal_std`), so values lie within ±2σ = ±2.27·std.

    ==============  ==============================  ==================================
    convention      bounds                          std of the drawn values
    ==============  ==============================  ==================================
    ``"sigma"``     mean' + [a, b]·σ (σ corrected)  ``std``, exactly
    ``"absolute"``  [a, b]                          less than ``std``
    ==============  ==============================  ==================================

    Args:
        tensor: the tensor to fill, of a real floating dtype.
        mean: mean of the underlying normal (absolute) or of the drawn values (sigma).
        std: std of the underlying normal (absolute) or of the drawn values (sigma).
        a: lower bound, absolute or in σ units (sigma).
        b: upper bound, absolute or in σ units (sigma); a < b.
        generator: the generator to draw from.
        bounds: ``"absolute"`` or ``"sigma"``.

    Returns:
        ``tensor``.

    Raises:
        ValueError: std < 0, a ≥ b, a non-finite argument, an unknown ``bounds``, an
            interval too far in the tail to draw from, or std = 0 with the mean
            outside [a, b].
        DtypeError: a tensor that is not real floating point (int, bool, complex).
        OutOfRangeError: bounds beyond the dtype's largest value.

    References:
        torch ``nn.init.trunc_normal_`` (absolute convention); Keras
        ``TruncatedNormal`` / ``VarianceScaling`` and JAX
        ``jax.nn.initializers.truncated_normal`` / ``variance_scaling`` (σ units, σ
        correction).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> w = trunc_normal_(torch.empty(100_000), std=0.5, bounds="sigma", generator=g)
        >>> round(w.std().item(), 2), bool(w.abs().max() <= 2 * 0.5 / 0.8796257)
        (0.5, True)
        >>> w = trunc_normal_(torch.empty(100_000), 0.0, 1.0, -1.0, 1.0, generator=g)
        >>> round(w.std().item(), 2)  # torch's convention: std of N(0, 1) within ±1
        0.54
    """
    if _ready(tensor, "trunc_normal_", generator):
        _fill_(
            tensor,
            _draw_trunc_normal(tensor.shape, mean, std, a, b, bounds),
            generator,
            "trunc_normal_",
        )
    return tensor


# --------------------------------------------------------------------------- fan based


def _draw_variance_scaling(
    shape: Sequence[int],
    scale: float = 1.0,
    mode: FanMode = "fan_in",
    distribution: Distribution = "truncated_normal",
    *,
    fans: tuple[int, int] | None = None,
) -> Draw:
    fn = "variance_scaling_"
    scale = check_real(fn, "scale", scale, low=0.0)
    fans = _fans_for(shape, fans, fn)
    fan = _fan(fans, mode, fn)
    std = math.sqrt(scale / fan)
    return _scaled_draw(std, distribution, fn, fan_in=fans[0], fan_out=fans[1], fan=mode)


def variance_scaling_(
    tensor: Tensor,
    scale: float = 1.0,
    mode: FanMode = "fan_in",
    distribution: Distribution = "truncated_normal",
    *,
    fans: tuple[int, int] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The general rule: zero-mean draws with Var(w) = scale / fan.

    fan is fan_in, fan_out, fan_avg = (fan_in + fan_out)/2 or fan_geo_avg =
    √(fan_in·fan_out). ``distribution`` is ``"normal"``, ``"truncated_normal"``
    (σ-corrected, within ±2σ, as Keras) or ``"uniform"`` (U(±√(3·scale/fan))). The
    named schemes are special cases:

    ===================  =======  =========  ===============
    scheme               scale    mode       distribution
    ===================  =======  =========  ===============
    xavier / glorot      gain²    fan_avg    normal, uniform
    kaiming / he (ReLU)  2        fan_in     normal, uniform
    lecun                1        fan_in     normal, uniform
    ===================  =======  =========  ===============

    Keras's ``glorot_normal``, ``he_normal`` and ``lecun_normal`` are the
    ``truncated_normal`` rows; initlab's ``*_normal_`` draw untruncated, as torch does.

    Args:
        tensor: a weight with at least 2 dimensions.
        scale: the variance numerator, ≥ 0.
        mode: which fan divides it.
        distribution: the shape of the draws.
        fans: (fan_in, fan_out) to use instead of those of the shape, e.g.
            ``calculate_fans(w, transposed=True, groups=g)`` for a ConvTranspose weight.
        generator: the generator to draw from.

    Returns:
        ``tensor``.

    Raises:
        ValueError: fewer than 2 dims, scale < 0, an unknown mode or distribution.

    References:
        Keras ``VarianceScaling``; Glorot & Bengio 2010; He et al. 2015; LeCun et al. 1998.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> w = variance_scaling_(torch.empty(400, 600), 2.0, "fan_avg", "uniform", generator=g)
        >>> round(w.var().item() * 500, 2)  # Var = 2/fan_avg
        2.0
    """
    if _ready(tensor, "variance_scaling_", generator):
        _fill_(
            tensor,
            _draw_variance_scaling(tensor.shape, scale, mode, distribution, fans=fans),
            generator,
            "variance_scaling_",
        )
    return tensor


def _draw_xavier(
    shape: Sequence[int], gain: Gain, distribution: str, fans: tuple[int, int] | None, fn: str
) -> Draw:
    g = _resolve_gain(gain, fn)
    fan_in, fan_out = _fans_for(shape, fans, fn)
    _fan((fan_in, fan_out), "fan_avg", fn)
    std = g * math.sqrt(2.0 / float(fan_in + fan_out))  # torch's expression, bit for bit
    return _scaled_draw(
        std, distribution, fn, fan_in=fan_in, fan_out=fan_out, fan="fan_avg", gain=g
    )


def _draw_xavier_uniform(
    shape: Sequence[int], gain: Gain = 1.0, *, fans: tuple[int, int] | None = None
) -> Draw:
    return _draw_xavier(shape, gain, "uniform", fans, "xavier_uniform_")


def _draw_xavier_normal(
    shape: Sequence[int], gain: Gain = 1.0, *, fans: tuple[int, int] | None = None
) -> Draw:
    return _draw_xavier(shape, gain, "normal", fans, "xavier_normal_")


def xavier_uniform_(
    tensor: Tensor,
    gain: Gain = 1.0,
    generator: torch.Generator | None = None,
    *,
    fans: tuple[int, int] | None = None,
) -> Tensor:
    """Xavier/Glorot uniform: U(−b, b), b = gain·√(6/(fan_in + fan_out)).

    Var = gain²·2/(fan_in + fan_out): the compromise between keeping the forward
    variance (fan_in) and the backward variance (fan_out). Fits tanh and sigmoid.

    Args:
        tensor: a weight with at least 2 dimensions.
        gain: a number, an activation name (``"tanh"`` → 5/3) or callable (see
            :func:`calculate_gain`).
        generator: the generator to draw from.
        fans: (fan_in, fan_out) instead of those of the shape (see :func:`calculate_fans`).

    Returns:
        ``tensor``.

    References:
        Glorot & Bengio, *Understanding the difficulty of training deep feedforward
        neural networks*, 2010.

    Example:
        >>> w = xavier_uniform_(torch.empty(30, 20), gain="tanh")
        >>> bool(w.abs().max() <= 5 / 3 * math.sqrt(6 / 50))
        True
    """
    if _ready(tensor, "xavier_uniform_", generator):
        _fill_(
            tensor,
            _draw_xavier_uniform(tensor.shape, gain, fans=fans),
            generator,
            "xavier_uniform_",
        )
    return tensor


def xavier_normal_(
    tensor: Tensor,
    gain: Gain = 1.0,
    generator: torch.Generator | None = None,
    *,
    fans: tuple[int, int] | None = None,
) -> Tensor:
    """Xavier/Glorot normal: N(0, σ²), σ = gain·√(2/(fan_in + fan_out)).

    Untruncated, as torch; Keras's ``glorot_normal`` is
    ``variance_scaling_(w, gain**2, "fan_avg", "truncated_normal")``.

    Args:
        tensor: a weight with at least 2 dimensions.
        gain: a number, an activation name or a callable (see :func:`calculate_gain`).
        generator: the generator to draw from.
        fans: (fan_in, fan_out) instead of those of the shape (see :func:`calculate_fans`).

    Returns:
        ``tensor``.

    References:
        Glorot & Bengio 2010.

    Example:
        >>> w = xavier_normal_(torch.empty(500, 300), generator=torch.Generator().manual_seed(0))
        >>> round(w.std().item(), 3), round(math.sqrt(2 / 800), 3)
        (0.05, 0.05)
    """
    if _ready(tensor, "xavier_normal_", generator):
        _fill_(
            tensor, _draw_xavier_normal(tensor.shape, gain, fans=fans), generator, "xavier_normal_"
        )
    return tensor


def _kaiming_gain(a: float, nonlinearity: Gain, fn: str) -> float:
    # torch passes a to calculate_gain, which calls a bad type a ValueError.
    a = check_real(fn, "a", a, type_error=TypeValueError)
    if isinstance(nonlinearity, str) and nonlinearity.strip().lower() == "leaky_relu":
        return calculate_gain("leaky_relu", a)  # torch: a is leaky_relu's negative slope
    if a != 0:
        raise ValueError(
            f"{fn}: a={a!r} is leaky_relu's negative slope, but nonlinearity is "
            f"{nonlinearity!r}. For a leaky ReLU use kaiming_normal(a={a!r}, "
            "nonlinearity='leaky_relu'); otherwise leave a at 0."
        )
    return _resolve_gain(nonlinearity, fn, "nonlinearity")


def _draw_kaiming(
    shape: Sequence[int],
    a: float,
    mode: str,
    nonlinearity: Gain,
    distribution: str,
    fans: tuple[int, int] | None,
    fn: str,
) -> Draw:
    gain = _kaiming_gain(a, nonlinearity, fn)
    fans = _fans_for(shape, fans, fn)
    std = gain / math.sqrt(_fan(fans, mode, fn))  # torch's expression, bit for bit
    return _scaled_draw(std, distribution, fn, fan_in=fans[0], fan_out=fans[1], fan=mode, gain=gain)


def _draw_kaiming_uniform(
    shape: Sequence[int],
    a: float = 0.0,
    mode: FanMode = "fan_in",
    nonlinearity: Gain = "leaky_relu",
    *,
    fans: tuple[int, int] | None = None,
) -> Draw:
    return _draw_kaiming(shape, a, mode, nonlinearity, "uniform", fans, "kaiming_uniform_")


def _draw_kaiming_normal(
    shape: Sequence[int],
    a: float = 0.0,
    mode: FanMode = "fan_in",
    nonlinearity: Gain = "leaky_relu",
    *,
    fans: tuple[int, int] | None = None,
) -> Draw:
    return _draw_kaiming(shape, a, mode, nonlinearity, "normal", fans, "kaiming_normal_")


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0.0,
    mode: FanMode = "fan_in",
    nonlinearity: Gain = "leaky_relu",
    generator: torch.Generator | None = None,
    *,
    fans: tuple[int, int] | None = None,
) -> Tensor:
    """Kaiming/He uniform: U(−b, b), b = gain·√(3/fan), gain from the nonlinearity.

    For ReLU (gain √2, ``a=0`` with the default ``"leaky_relu"``) and mode fan_in,
    Var = 2/fan_in keeps the forward variance of a ReLU net constant with depth;
    ``mode="fan_out"`` keeps the backward variance instead.

    Args:
        tensor: a weight with at least 2 dimensions.
        a: leaky_relu's negative slope (only with ``nonlinearity="leaky_relu"``).
        mode: ``"fan_in"``, ``"fan_out"``, ``"fan_avg"`` or ``"fan_geo_avg"``.
        nonlinearity: an activation name, ``"measured:NAME"``, a number or a callable.
        generator: the generator to draw from.
        fans: (fan_in, fan_out) instead of those of the shape (see :func:`calculate_fans`).

    Returns:
        ``tensor``.

    References:
        He et al., *Delving Deep into Rectifiers*, 2015.

    Example:
        >>> w = kaiming_uniform_(torch.empty(64, 32), nonlinearity="relu")
        >>> bool(w.abs().max() <= math.sqrt(2) * math.sqrt(3 / 32))
        True
    """
    if _ready(tensor, "kaiming_uniform_", generator):
        _fill_(
            tensor,
            _draw_kaiming_uniform(tensor.shape, a, mode, nonlinearity, fans=fans),
            generator,
            "kaiming_uniform_",
        )
    return tensor


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0.0,
    mode: FanMode = "fan_in",
    nonlinearity: Gain = "leaky_relu",
    generator: torch.Generator | None = None,
    *,
    fans: tuple[int, int] | None = None,
) -> Tensor:
    """Kaiming/He normal: N(0, σ²), σ = gain/√fan (√(2/fan_in) for ReLU).

    Args:
        tensor: a weight with at least 2 dimensions.
        a: leaky_relu's negative slope (only with ``nonlinearity="leaky_relu"``).
        mode: ``"fan_in"``, ``"fan_out"``, ``"fan_avg"`` or ``"fan_geo_avg"``.
        nonlinearity: an activation name, ``"measured:NAME"``, a number or a callable.
        generator: the generator to draw from.
        fans: (fan_in, fan_out) instead of those of the shape (see :func:`calculate_fans`).

    Returns:
        ``tensor``.

    References:
        He et al., *Delving Deep into Rectifiers*, 2015.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> w = kaiming_normal_(torch.empty(512, 256), mode="fan_out", generator=g)
        >>> round(w.std().item(), 2), round(math.sqrt(2 / 512), 2)
        (0.06, 0.06)
    """
    if _ready(tensor, "kaiming_normal_", generator):
        _fill_(
            tensor,
            _draw_kaiming_normal(tensor.shape, a, mode, nonlinearity, fans=fans),
            generator,
            "kaiming_normal_",
        )
    return tensor


def _draw_lecun_uniform(shape: Sequence[int], *, fans: tuple[int, int] | None = None) -> Draw:
    return _draw_kaiming(shape, 0.0, "fan_in", 1.0, "uniform", fans, "lecun_uniform_")


def _draw_lecun_normal(shape: Sequence[int], *, fans: tuple[int, int] | None = None) -> Draw:
    return _draw_kaiming(shape, 0.0, "fan_in", 1.0, "normal", fans, "lecun_normal_")


def lecun_uniform_(
    tensor: Tensor, *, fans: tuple[int, int] | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """LeCun uniform: U(−b, b), b = √(3/fan_in), so Var = 1/fan_in.

    References:
        LeCun, Bottou, Orr & Müller, *Efficient BackProp*, 1998.

    Example:
        >>> w = lecun_uniform_(torch.empty(10, 12))
        >>> bool(w.abs().max() <= 0.5)
        True
    """
    if _ready(tensor, "lecun_uniform_", generator):
        _fill_(tensor, _draw_lecun_uniform(tensor.shape, fans=fans), generator, "lecun_uniform_")
    return tensor


def lecun_normal_(
    tensor: Tensor, *, fans: tuple[int, int] | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """LeCun normal: N(0, 1/fan_in) (untruncated; Keras truncates, see variance_scaling_).

    With SELU this is the self-normalizing init of Klambauer et al. 2017.

    References:
        LeCun et al., *Efficient BackProp*, 1998; Klambauer et al. 2017.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> round(lecun_normal_(torch.empty(400, 100), generator=g).std().item(), 2)
        0.1
    """
    if _ready(tensor, "lecun_normal_", generator):
        _fill_(tensor, _draw_lecun_normal(tensor.shape, fans=fans), generator, "lecun_normal_")
    return tensor


def _draw_torch_default(shape: Sequence[int], fan_in: int | None = None) -> Draw:
    fn = "torch_default_"
    if len(shape) < 2 and fan_in is None:
        raise ValueError(
            f"{fn} of a {len(shape)}-D tensor (a bias) needs the layer's fan_in, which only "
            f"the weight knows. Got shape {tuple(shape)} and no fan_in: pass fan_in=…"
        )
    if fan_in is None:
        fans = calculate_fans(shape)
        # nn.Linear/nn.Conv: kaiming_uniform_(w, a=√5) → gain √(2/(1+5)), b = √3·gain/√fan_in
        # = 1/√fan_in; computed as torch does it so the draws match bit for bit.
        a = math.sqrt(5)
        bound = _SQRT3 * (math.sqrt(2.0 / (1 + a**2)) / math.sqrt(_fan(fans, "fan_in", fn)))
        return _uniform_draw(-bound, bound, fan_in=fans[0], fan_out=fans[1], fan="fan_in")
    fan_in = check_int(fn, "fan_in", fan_in, low=0)
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return _uniform_draw(-bound, bound, fan_in=fan_in, fan="fan_in")


def torch_default_(
    tensor: Tensor, *, fan_in: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """PyTorch's default for ``nn.Linear`` / ``nn.Conv*``: U(−1/√fan_in, 1/√fan_in).

    torch writes it as ``kaiming_uniform_(w, a=√5)``: gain √(2/(1+a²)) = √(1/3) and bound
    √3·gain/√fan_in = 1/√fan_in, i.e. Var = 1/(3·fan_in) — a third of LeCun's variance.
    The bias draws from the same U(±1/√fan_in) with the *weight's* fan_in, so for a 1-D
    tensor pass ``fan_in``. For ``ConvTranspose`` torch uses dimension 1 of the weight as
    the input (see :func:`calculate_fans`), and so does this function.

    Args:
        tensor: a weight (≥ 2 dims), or a bias with ``fan_in`` given.
        fan_in: the layer's fan-in, required for 1-D tensors.
        generator: the generator to draw from.

    Returns:
        ``tensor``.

    Example:
        >>> torch.manual_seed(0); layer = nn.Linear(20, 5)  # doctest: +ELLIPSIS
        <...>
        >>> torch.manual_seed(0); w = torch_default_(torch.empty(5, 20))  # doctest: +ELLIPSIS
        <...>
        >>> torch.equal(w, layer.weight)
        True
    """
    if _ready(tensor, "torch_default_", generator):
        _fill_(tensor, _draw_torch_default(tensor.shape, fan_in), generator, "torch_default_")
    return tensor


# --------------------------------------------------------------------------- structured


def _orthogonal_gain(shape: Sequence[int], gain: Gain) -> float:
    fn = "orthogonal_"
    if len(shape) < 2:
        raise ValueError(
            f"{fn} needs a tensor with at least 2 dimensions. Got shape {tuple(shape)}."
        )
    return _resolve_gain(gain, fn)


def _draw_orthogonal(shape: Sequence[int], gain: Gain = 1.0) -> Draw:
    g = _orthogonal_gain(shape, gain)
    rows = shape[0]
    cols = math.prod(shape[1:])
    # Orthonormal rows (wide) or columns (tall): the mean square entry is 1/max(rows, cols).
    return Draw("orthogonal", g / math.sqrt(max(rows, cols, 1)), gain=g)


def orthogonal_(
    tensor: Tensor, gain: Gain = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """A (semi-)orthogonal matrix times ``gain``: WᵀW = gain²·I (tall) or WWᵀ = gain²·I (wide).

    Dimensions after the first are flattened, so a conv weight (out, in, k, k) is an
    out × (in·k·k) matrix. Q comes from the QR decomposition of a standard normal
    matrix, with the signs of R's diagonal folded in so that Q is Haar-distributed
    (Mezzadri 2007). Computed in float32 at least, so half-precision tensors work.

    Args:
        tensor: a real floating-point tensor with at least 2 dimensions.
        gain: a number, an activation name or a callable.
        generator: the generator to draw from.

    Returns:
        ``tensor``.

    Raises:
        ValueError: fewer than 2 dimensions, or a bad gain.
        DtypeError: a tensor that is not real floating point (int, bool, complex).
        OutOfRangeError: a gain beyond the dtype's largest value.

    References:
        Saxe, McClelland & Ganguli, *Exact solutions to the nonlinear dynamics of learning
        in deep linear neural networks*, 2014.

    Example:
        >>> w = orthogonal_(torch.empty(6, 4), gain=2.0)
        >>> torch.allclose(w.T @ w, 4 * torch.eye(4), atol=1e-5)
        True
    """
    fn = "orthogonal_"
    if not _ready(tensor, fn, generator):
        return tensor
    factor = _orthogonal_gain(tensor.shape, gain)
    _check_distinct(tensor, fn)
    _check_floating(
        tensor, fn, real=True, why="it is drawn by a real QR decomposition (no unitary variant)"
    )
    # Orthonormal rows or columns have entries within ±1, so the weights within ±gain.
    _check_reach(
        fn,
        tensor.dtype,
        factor,
        f"gain={factor:g} scales entries up to ±{factor:g}",
        "a smaller gain",
    )
    if tensor.is_meta:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    dtype = torch.promote_types(tensor.dtype, torch.float32)
    with torch.no_grad():
        flat = torch.empty((rows, cols), dtype=dtype, device=tensor.device)
        flat.normal_(0, 1, generator=generator)
        if rows < cols:
            flat.t_()
        q, r = torch.linalg.qr(flat)
        q *= torch.diag(r, 0).sign()
        if rows < cols:
            q.t_()
        tensor.copy_(q.reshape(tensor.shape))  # also when the tensor is a strided view
        tensor.mul_(factor)
    return tensor


def _draw_eye(shape: Sequence[int], gain: float = 1.0) -> Draw:
    fn = "eye_"
    if len(shape) != 2:
        raise ValueError(f"{fn} needs a 2-D tensor. Got shape {tuple(shape)}; for conv use dirac_.")
    g = check_real(fn, "gain", gain)
    rows, cols = shape
    n, k = rows * cols, min(rows, cols)
    mean = g * k / n if n else 0.0
    std = math.sqrt(max(g * g * k / n - mean * mean, 0.0)) if n else 0.0
    return Draw("identity", std, mean, gain=g)


def eye_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """The identity matrix times ``gain`` (rectangular: as many inputs kept as possible).

    Identity recurrent weights make an RNN start as a perfect memory (Le et al. 2015).

    References:
        Le, Jaitly & Hinton, *A Simple Way to Initialize Recurrent Networks of Rectified
        Linear Units*, 2015.

    Any dtype that holds ``gain`` exactly, integer and bool tensors included (as
    torch's ``eye_``, which has no gain).

    Raises:
        ValueError: not 2-D, or a non-finite gain.
        OutOfRangeError: the dtype cannot hold ``gain`` exactly (e.g. 0.5 into an integer
            tensor, 2 into a bool tensor, 1e5 into float16).

    Example:
        >>> eye_(torch.empty(2, 3))
        tensor([[1., 0., 0.],
                [0., 1., 0.]])
        >>> eye_(torch.empty(2, 2, dtype=torch.int64), gain=3)
        tensor([[3, 0],
                [0, 3]])
    """
    if _ready(tensor, "eye_", None):
        draw = _draw_eye(tensor.shape, gain)
        _check_distinct(tensor, "eye_")
        value = _exact_value("eye_", "gain", _as_given(gain, draw.gain), tensor.dtype)
        with torch.no_grad():
            tensor.copy_(torch.eye(*tensor.shape, dtype=tensor.dtype, device=tensor.device))
            if tensor.dtype.is_floating_point or tensor.dtype.is_complex:
                tensor.mul_(value)
            elif value == 0:
                tensor.zero_()  # a bool tensor has no multiplication
            elif value != 1:
                tensor.mul_(value)
    return tensor


def _draw_dirac(shape: Sequence[int], groups: int = 1) -> Draw:
    fn = "dirac_"
    if len(shape) not in (3, 4, 5):
        raise ValueError(
            f"{fn} needs a conv weight with 3, 4 or 5 dimensions. Got shape {tuple(shape)}; "
            "for a Linear weight use eye_."
        )
    groups = check_int(fn, "groups", groups, low=1)
    if shape[0] % groups:
        raise ValueError(
            f"{fn}: out_channels {shape[0]} must be divisible by groups. Got groups={groups}."
        )
    n = math.prod(shape)
    k = groups * min(shape[0] // groups, shape[1])
    return Draw("dirac", math.sqrt(max(k / n - (k / n) ** 2, 0.0)), k / n)


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """The Dirac delta: a conv weight that passes input channel i to output channel i.

    Each of the ``groups`` groups keeps as many of its input channels as it has outputs;
    the centre tap is 1, everything else 0, so the layer starts as the identity.

    References:
        Zagoruyko & Komodakis, *DiracNets: Training Very Deep Neural Networks Without
        Skip-Connections*, 2017.

    Example:
        >>> w = dirac_(torch.empty(2, 2, 3))
        >>> torch.equal(torch.conv1d(torch.arange(6.0).view(1, 2, 3), w, padding=1),
        ...             torch.arange(6.0).view(1, 2, 3))
        True
    """
    if not _ready(tensor, "dirac_", None):
        return tensor
    _draw_dirac(tensor.shape, groups)
    _check_distinct(tensor, "dirac_")
    if tensor.is_meta:
        return tensor
    out_per_group = tensor.shape[0] // groups
    k = min(out_per_group, tensor.shape[1])
    outs = (torch.arange(groups)[:, None] * out_per_group + torch.arange(k)[None, :]).ravel()
    ins = torch.arange(k).repeat(groups)
    centre = [torch.tensor(s // 2) for s in tensor.shape[2:]]
    with torch.no_grad():
        tensor.zero_()
        tensor[(outs, ins, *centre)] = 1
    return tensor


def _draw_sparse(shape: Sequence[int], sparsity: float, std: float = 0.01) -> Draw:
    fn = "sparse_"
    if len(shape) != 2:
        raise ValueError(f"{fn} needs a 2-D tensor. Got shape {tuple(shape)}.")
    sparsity = check_real(fn, "sparsity", sparsity, low=0.0, high=1.0, high_open=True)
    std = check_real(fn, "std", std, low=0.0)
    kept = 1 - math.ceil(sparsity * shape[0]) / shape[0] if shape[0] else 0.0
    return Draw("sparse", std * math.sqrt(kept))


def sparse_(
    tensor: Tensor, sparsity: float, std: float = 0.01, generator: torch.Generator | None = None
) -> Tensor:
    """Sparse init: N(0, std²), then ⌈sparsity·rows⌉ entries of every column set to 0.

    torch's ``sparse_`` draws the zero positions from the global RNG even when given a
    generator; here every draw comes from ``generator``, so a seeded run is reproducible.
    The non-zero values are the same draws as torch's.

    Args:
        tensor: a 2-D tensor.
        sparsity: the fraction of each column set to zero, in [0, 1).
        std: std of the non-zero values.
        generator: the generator to draw from.

    Returns:
        ``tensor``.

    Raises:
        ValueError: not 2-D, sparsity outside [0, 1), or std < 0.
        DtypeError: a tensor that is not floating point (int, bool).
        OutOfRangeError: draws would overflow the dtype (10·std beyond its largest value).

    References:
        Martens, *Deep learning via Hessian-free optimization*, 2010.

    Example:
        >>> w = sparse_(torch.empty(10, 4), sparsity=0.3)
        >>> (w == 0).sum(dim=0).tolist()
        [3, 3, 3, 3]
    """
    fn = "sparse_"
    if not _ready(tensor, fn, generator):
        return tensor
    _draw_sparse(tensor.shape, sparsity, std)
    _check_fits(tensor, Draw("normal", float(std)), fn)
    if tensor.is_meta:
        return tensor
    rows, cols = tensor.shape
    zeros = math.ceil(sparsity * rows)
    with torch.no_grad():
        tensor.normal_(0, std, generator=generator)
        # A random subset of `zeros` rows per column: the first ranks of a random order.
        order = torch.rand((rows, cols), generator=generator, device=tensor.device).argsort(dim=0)
        tensor.scatter_(0, order[:zeros], 0.0)
    return tensor


# --------------------------------------------------------------------------- torch's old names


def _deprecated(new: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """torch's pre-0.4 name of ``new`` (no trailing underscore), deprecated as in torch.

    Kept so that code written for ``torch.nn.init`` runs unchanged on ``initlab.init``
    (torch's own test of its init module calls ``init.normal``).
    """
    old = new.__name__.removesuffix("_")

    def deprecated(*args: Any, **kwargs: Any) -> Tensor:
        warnings.warn(
            f"`initlab.init.{old}` is deprecated in favor of `initlab.init.{new.__name__}`, "
            f"as torch deprecates `nn.init.{old}`.",
            FutureWarning,
            stacklevel=2,
        )
        return new(*args, **kwargs)

    deprecated.__name__ = deprecated.__qualname__ = old
    deprecated.__doc__ = f"Deprecated (torch's old name): use :func:`{new.__name__}`."
    return deprecated


# Not in __all__: only for code that still uses torch's deprecated names.
uniform = _deprecated(uniform_)
normal = _deprecated(normal_)
constant = _deprecated(constant_)
eye = _deprecated(eye_)
dirac = _deprecated(dirac_)
xavier_uniform = _deprecated(xavier_uniform_)
xavier_normal = _deprecated(xavier_normal_)
kaiming_uniform = _deprecated(kaiming_uniform_)
kaiming_normal = _deprecated(kaiming_normal_)
orthogonal = _deprecated(orthogonal_)
sparse = _deprecated(sparse_)


# --------------------------------------------------------------------------- registry & specs


@dataclass(frozen=True)
class Scheme:
    """A named scheme: the function that fills, the one that describes, and its formula."""

    name: str
    fill: Callable[..., Tensor]  # the public initializer
    draw: Callable[..., Draw]  # same arguments, with a shape instead of a tensor
    formula: str  # what it draws, in a few characters (g: gain, in/out: fan_in/fan_out)
    fans: str = "—"  # which fans it uses: "in", "avg", "mode" (the mode argument)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # fixed arguments of an alias
    example: Mapping[str, Any] = field(default_factory=dict)  # arguments for a table row
    activation_arg: str | None = None  # the argument an activation name goes to
    alias_of: str | None = None  # the scheme this name is a preset of


def _schemes() -> dict[str, Scheme]:
    fan_any = "mode"
    base = [
        Scheme("zeros", zeros_, lambda shape: _constant_draw(0.0), "0"),
        Scheme("ones", ones_, lambda shape: _constant_draw(1.0), "1"),
        Scheme("constant", constant_, _draw_constant, "val", example={"val": 0.01}),
        Scheme("uniform", uniform_, _draw_uniform, "U(a, b)"),
        Scheme("normal", normal_, _draw_normal, "N(mean, std²)"),
        Scheme(
            "trunc_normal",
            trunc_normal_,
            _draw_trunc_normal,
            "N(mean, std²) within [a, b]",
        ),
        Scheme(
            "xavier_uniform",
            xavier_uniform_,
            _draw_xavier_uniform,
            "U(±g·√(6/(in+out)))",
            "avg",
            activation_arg="gain",
        ),
        Scheme(
            "xavier_normal",
            xavier_normal_,
            _draw_xavier_normal,
            "N(0, 2g²/(in+out))",
            "avg",
            activation_arg="gain",
        ),
        Scheme(
            "kaiming_uniform",
            kaiming_uniform_,
            _draw_kaiming_uniform,
            "U(±g·√(3/fan))",
            fan_any,
            activation_arg="nonlinearity",
        ),
        Scheme(
            "kaiming_normal",
            kaiming_normal_,
            _draw_kaiming_normal,
            "N(0, g²/fan)",
            fan_any,
            activation_arg="nonlinearity",
        ),
        Scheme("lecun_uniform", lecun_uniform_, _draw_lecun_uniform, "U(±√(3/in))", "in"),
        Scheme("lecun_normal", lecun_normal_, _draw_lecun_normal, "N(0, 1/in)", "in"),
        Scheme(
            "variance_scaling",
            variance_scaling_,
            _draw_variance_scaling,
            "Var = scale/fan",
            fan_any,
        ),
        Scheme(
            "orthogonal",
            orthogonal_,
            _draw_orthogonal,
            "g·Q: WᵀW = g²·I",
            activation_arg="gain",
        ),
        Scheme("eye", eye_, _draw_eye, "g·I"),
        Scheme("dirac", dirac_, _draw_dirac, "identity conv"),
        Scheme(
            "sparse",
            sparse_,
            _draw_sparse,
            "N(0, std²), zeros per col",
            example={"sparsity": 0.1},
        ),
        Scheme(
            "torch_default",
            torch_default_,
            _draw_torch_default,
            "U(±1/√in)",
            "in",
        ),
    ]
    registry = {s.name: s for s in base}

    def alias(name: str, of: str, **defaults: Any) -> None:
        target = registry[of]
        what = ", ".join(
            repr(v) if k == target.activation_arg else f"{k}={v!r}" for k, v in defaults.items()
        )
        formula = f"= {of}({what})" if what else f"= {of}"
        registry[name] = Scheme(
            name,
            target.fill,
            target.draw,
            formula,
            target.fans,
            defaults,
            alias_of=of,
            activation_arg=target.activation_arg if target.activation_arg not in defaults else None,
        )

    alias("zero", "zeros")
    alias("small_random", "normal", std=0.01)
    alias("large_random", "normal", std=10.0)
    alias("truncated_normal", "trunc_normal")
    alias("glorot_uniform", "xavier_uniform")
    alias("glorot_normal", "xavier_normal")
    alias("he_uniform", "kaiming_uniform", nonlinearity="relu")
    alias("he_normal", "kaiming_normal", nonlinearity="relu")
    alias("identity", "eye")
    alias("default", "torch_default")
    return registry


_SCHEMES = _schemes()


def schemes() -> dict[str, Scheme]:
    """Every scheme name a spec may use, aliases included, in table order.

    Example:
        >>> "he_normal" in schemes() and schemes()["he_normal"].alias_of
        'kaiming_normal'
    """
    return dict(_SCHEMES)


@functools.cache
def _parameter_names(fn: Callable[..., Any]) -> frozenset[str]:
    """The names a function takes (``inspect.signature`` costs 20 µs a call: a study's
    1,000-member stack asked it 15,000 times)."""
    return frozenset(inspect.signature(fn).parameters)


@dataclass(frozen=True)
class InitSpec:
    """A parsed init spec: a scheme name and its arguments. Call it on a tensor.

    Create with :func:`parse_spec`; ``str(spec)`` gives the canonical spec text.

    Example:
        >>> spec = parse_spec("normal(0.0, 0.01)")
        >>> str(spec), spec.describe((3, 4)).std
        ('normal(mean=0.0, std=0.01)', 0.01)
    """

    name: str  # the scheme name as written (an alias stays an alias)
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # the arguments given

    @property
    def scheme(self) -> Scheme:
        return _SCHEMES[self.name]

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments the scheme's function receives: an alias's presets, then kwargs."""
        return {**self.scheme.defaults, **self.kwargs}

    def __str__(self) -> str:
        if not self.kwargs:
            return self.name
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.name}({args})"

    def __hash__(self) -> int:
        return hash(str(self))

    def _accepts(self, name: str) -> bool:
        return name in _parameter_names(self.scheme.fill)

    def __call__(
        self,
        tensor: Tensor,
        *,
        generator: torch.Generator | None = None,
        fans: tuple[int, int] | None = None,
    ) -> Tensor:
        """Fill ``tensor`` in place with this scheme.

        ``fans`` overrides the fans of the shape for fan-based schemes (ignored by the
        others); :func:`apply` uses it for grouped and transposed convolutions.
        """
        kwargs = self.arguments
        if fans is not None and self._accepts("fans"):
            kwargs["fans"] = fans
        if self._accepts("generator"):
            kwargs["generator"] = generator
        return self.scheme.fill(tensor, **kwargs)

    def describe(self, shape: Sequence[int], *, fans: tuple[int, int] | None = None) -> Draw:
        """What this spec draws for a tensor of ``shape`` (no tensor is made)."""
        kwargs = self.arguments
        if fans is not None and self._accepts("fans"):
            kwargs["fans"] = fans
        return self.scheme.draw(_check_shape("describe", "shape", shape), **kwargs)


SpecLike: TypeAlias = str | InitSpec


def parse_spec(spec: SpecLike) -> InitSpec:
    """Parse an init spec: ``name`` or ``name(arg, key=value, …)`` with literal arguments.

    Positional arguments bind in the order of the scheme's function signature; unknown
    schemes and arguments are errors that list the valid ones and the nearest match.

    ======================================================  ================================
    spec                                                    means
    ======================================================  ================================
    ``"zeros"``, ``"ones"``, ``"constant(0.01)"``           constants
    ``"small_random"`` = ``"normal(std=0.01)"``             N(0,1)·0.01
    ``"large_random"`` = ``"normal(std=10)"``               N(0,1)·10
    ``"uniform(-0.1, 0.1)"``                                U(−0.1, 0.1)
    ``"xavier_uniform(gain='tanh')"``                       Glorot, tanh gain 5/3
    ``"he_normal"``                                         kaiming_normal, ReLU
    ``"variance_scaling(2.0, 'fan_avg', 'uniform')"``       the general rule
    ======================================================  ================================

    Args:
        spec: the text, or an :class:`InitSpec` (returned as is).

    Returns:
        The parsed, validated :class:`InitSpec`.

    Raises:
        ValueError: bad syntax, an unknown scheme or argument, too many arguments.
        TypeError: ``spec`` is neither a string nor an InitSpec.

    Example:
        >>> parse_spec("xavier_uniform(gain='tanh')").kwargs
        {'gain': 'tanh'}
        >>> parse_spec("he_norml")
        Traceback (most recent call last):
        ...
        ValueError: Unknown init scheme 'he_norml'. Did you mean 'he_normal'? Known: ...
    """
    if isinstance(spec, InitSpec):
        return spec
    if not isinstance(spec, str):
        raise TypeError(param_message("parse_spec", "spec", "a string", spec))
    name, args, kwargs = parse_call(spec, "Init spec", "'he_normal' or 'normal(std=0.01)'")
    if name not in _SCHEMES:
        hint = did_you_mean(name, _SCHEMES)
        raise ValueError(f"Unknown init scheme {name!r}.{hint} Known: {', '.join(_SCHEMES)}.")
    scheme = _SCHEMES[name]
    params = [
        p
        for p in inspect.signature(scheme.draw).parameters.values()
        # fans belong to a tensor, not to a scheme: apply() passes them per layer
        if p.name not in ("shape", "fans") and p.name not in scheme.defaults
    ]
    names = [p.name for p in params]
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    if len(args) > len(positional):
        raise ValueError(
            f"Init spec {spec!r}: {name} takes at most {len(positional)} positional "
            f"arguments ({', '.join(positional) or 'none'}). Got {len(args)}."
        )
    for key in kwargs:
        if key not in names:
            hint = did_you_mean(key, names)
            raise ValueError(
                f"Init spec {spec!r}: {name} has no argument {key!r}.{hint} "
                f"Valid: {', '.join(names) or 'none'}."
            )
    bound = dict(zip(positional, args, strict=False))
    twice = sorted(set(bound) & set(kwargs))
    if twice:
        raise ValueError(f"Init spec {spec!r}: {', '.join(twice)} given twice.")
    bound.update(kwargs)
    missing = [p.name for p in params if p.default is p.empty and p.name not in bound]
    if missing:
        raise ValueError(
            f"Init spec {spec!r}: {name} needs {', '.join(missing)}, "
            f"e.g. {name}({', '.join(f'{m}=…' for m in missing)})."
        )
    return InitSpec(name, bound)


def describe(spec: SpecLike, shape: Sequence[int], *, fans: tuple[int, int] | None = None) -> Draw:
    """What ``spec`` draws for a tensor of ``shape``: distribution, std, bounds, fans, gain.

    Example:
        >>> d = describe("he_uniform", (256, 128))
        >>> d.distribution, round(d.std, 4), round(d.high, 4), d.fan_in
        ('uniform', 0.125, 0.2165, 128)
    """
    return parse_spec(spec).describe(shape, fans=fans)


# --------------------------------------------------------------------------- apply


@dataclass(frozen=True)
class InitRecord:
    """One parameter that :func:`apply` re-initialized, and how."""

    parameter: str  # qualified name, e.g. "layers.0.weight"
    module: str  # the module's class, e.g. "Linear"
    shape: tuple[int, ...]
    scheme: str  # canonical spec text, e.g. "kaiming_normal(nonlinearity='relu')"
    std: float  # std of the distribution drawn (0 for constants)
    fan_in: int | None  # the fans used, for fan-based schemes
    fan_out: int | None


_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORM = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)
_RECURRENT = (nn.RNNBase, nn.RNNCellBase)
_KINDS: dict[str, tuple[type[nn.Module], ...]] = {
    "linear": (nn.Linear, nn.Bilinear),
    "conv": _CONV,
    "conv_transpose": _CONV_T,
    "embedding": (nn.Embedding,),
    "norm": _NORM,
    "attention": (nn.MultiheadAttention,),
    "recurrent": _RECURRENT,
}
# What `include` may name: the module kinds, and "token" for loose parameters.
_KIND_NAMES = (*_KINDS, "token")

#: The names of loose parameters (owned by a module of none of apply's kinds) that
#: :func:`apply` re-draws as learned tokens and position embeddings, each matched in
#: full against the parameter's own name, ignoring case: ``cls_token``, ``dist_token``
#: (DeiT), ``mask_token`` (BEiT, MAE), ``reg_token`` / ``register_tokens`` /
#: ``registers`` (ViTs with registers), ``query_tokens``, ``prompt_tokens``;
#: ``pos_embed`` (timm), ``pos_embedding`` (torchvision), ``position_embeddings`` (HF),
#: ``pos_emb``, ``positional_embedding``, ``abs_pos_embed``. Anything else is left as it
#: was, and named in apply's warning.
TOKEN_PATTERNS: tuple[str, ...] = (
    r"(cls|class|dist|mask|reg|register|query|prompt)_tokens?",
    r"registers",
    r"(abs(olute)?_)?pos(ition(al)?)?_emb(ed(ding)?)?s?",
)
_TOKEN = re.compile("|".join(f"(?:{p})" for p in TOKEN_PATTERNS), re.IGNORECASE)
# Tokens are not fan-based (a (1, 1, E) cls_token has no fan_in): they get BERT's
# truncated_normal_initializer(0.02), N(0, 0.02²) cut at ±2·0.02, the ViT/BERT/timm
# scale. Cut in absolute units, as TensorFlow's truncated normal cuts at 2σ; timm's
# trunc_normal_(std=.02) keeps torch's bounds ±2, which cut nothing at this std.
_TOKEN_SPEC = InitSpec("trunc_normal", {"std": 0.02, "a": -0.04, "b": 0.04})
# Gates stacked along dim 0 of a recurrent layer's weights and biases, in torch's order.
_LSTM_GATES, _GRU_GATES = "ifgo", "rzn"


def _kind(module: nn.Module) -> str | None:
    for kind, types in _KINDS.items():
        if isinstance(module, types):
            return kind
    return None


Include: TypeAlias = (
    Iterable[str | type[nn.Module]] | str | type[nn.Module] | Callable[[str, nn.Module], bool]
)


def _selector(include: Include | None) -> Callable[[str, nn.Module, str], bool]:
    """``include`` as a test of (module name, module, kind of the parameter)."""
    if include is None:
        return lambda name, module, kind: True
    if callable(include) and not isinstance(include, type):
        user = include
        return lambda name, module, kind: user(name, module)
    if isinstance(include, type | str):
        include = [include]
    expected = "kind names, nn.Module classes or a callable"
    if not isinstance(include, Iterable):
        raise TypeError(param_message("apply", "include", expected, include))
    kinds: list[str] = []
    types: list[type[nn.Module]] = []
    for item in include:
        if isinstance(item, str):
            kinds.append(check_choice("apply", "include", item, _KIND_NAMES))
        elif isinstance(item, type) and issubclass(item, nn.Module):
            types.append(item)
        else:
            raise TypeError(param_message("apply", "include", expected, item))
    return lambda name, module, kind: kind in kinds or isinstance(module, tuple(types))


def _gates(module: nn.Module) -> str:
    """The gates of a recurrent layer, one letter each ("h": a plain RNN's one)."""
    if isinstance(module, nn.RNNBase):
        return {"LSTM": _LSTM_GATES, "GRU": _GRU_GATES}.get(module.mode, "h")
    if isinstance(module, nn.LSTMCell):
        return _LSTM_GATES
    if isinstance(module, nn.GRUCell):
        return _GRU_GATES
    return "h"


# One piece of a parameter that apply fills with one spec: a label for the record ("" or
# "[q]"), its rows along dim 0 (None: all of it) and its role, which picks the spec.
_Part: TypeAlias = tuple[str, slice | None, str]


def _split(letters: str, param: Tensor, role: str) -> list[_Part]:
    """``param``'s rows cut into one equal block per letter (q, k, v; or the gates)."""
    if len(letters) == 1:
        return [("", None, role)]
    rows = param.shape[0] // len(letters)
    return [(f"[{x}]", slice(i * rows, (i + 1) * rows), role) for i, x in enumerate(letters)]


def _parts(
    kind: str | None, module: nn.Module, pname: str, param: Tensor, forget: bool
) -> list[_Part] | None:
    """The pieces of one parameter and their roles, or None for one apply does not know.

    Stacked matrices are separate layers, each with its own fans: an attention's
    in_proj_weight (3E, E) is q, k and v, each (E, E); a recurrent weight (gates·H, in)
    is one (H, in) matrix per gate.
    """
    if kind in ("norm", "linear", "conv", "conv_transpose", "embedding"):
        if pname not in ("weight", "bias"):
            return None  # e.g. an adapter's matrices added to a subclass of Linear
        if kind == "norm":
            return [("", None, "ones" if pname == "weight" else "zeros")]
        return [("", None, pname)]
    if kind == "attention":
        if pname == "in_proj_weight":
            return _split("qkv", param, "weight")
        if pname in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
            return [("", None, "weight")]
        if pname in ("in_proj_bias", "bias_k", "bias_v"):
            return [("", None, "bias")]
        return None
    if kind == "recurrent":
        gates = _gates(module)
        if pname.startswith("weight_ih"):
            return _split(gates, param, "weight")
        if pname.startswith("weight_hh"):
            return _split(gates, param, "recurrent")
        if pname.startswith("weight_hr"):  # the LSTM's projection (proj_size)
            return [("", None, "weight")]
        if pname.startswith("bias_"):
            if not (forget and gates == _LSTM_GATES):
                return [("", None, "bias")]
            role = "forget_hh" if pname.startswith("bias_hh") else "forget"
            return [
                (label, rows, role if label == "[f]" else "bias")
                for label, rows, _ in _split(gates, param, "")
            ]
        return None
    if kind is None and _TOKEN.fullmatch(pname):
        return [("", None, "token")]
    return None


def _layer_fans(module: nn.Module, param: Tensor) -> tuple[int, int] | None:
    """A conv weight's true fans (groups, transposition); None: the shape's own fans."""
    if isinstance(module, _CONV + _CONV_T) and param.dim() >= 2:
        groups = getattr(module, "groups", 1)
        return calculate_fans(param, transposed=isinstance(module, _CONV_T), groups=groups)
    return None


def _torch_default_spec(
    spec: InitSpec, module: nn.Module, pname: str, param: Tensor, zero_biases: set[int]
) -> tuple[InitSpec, tuple[int, int] | None]:
    """What torch's own ``reset_parameters`` draws for this parameter: a spec and fans."""
    if isinstance(module, nn.MultiheadAttention):
        if pname == "in_proj_weight":  # xavier_uniform_ of the whole (3E, E), fans (E, 3E)
            return InitSpec("xavier_uniform"), calculate_fans(param)
        if pname.endswith("_proj_weight"):
            return InitSpec("xavier_uniform"), None
        if pname == "in_proj_bias":
            return InitSpec("zeros"), None
        return InitSpec("xavier_normal"), None  # bias_k, bias_v
    if id(param) in zero_biases:  # an attention's out_proj.bias: torch zeroes it
        return InitSpec("zeros"), None
    if isinstance(module, _RECURRENT):  # every weight and bias: U(±1/√hidden_size)
        return InitSpec(spec.name, {**spec.kwargs, "fan_in": module.hidden_size}), None
    weight = module.weight
    assert isinstance(weight, Tensor)  # every other layer kind apply() touches has one
    if isinstance(module, nn.Embedding):
        return InitSpec("normal"), None  # nn.Embedding: N(0, 1)
    if isinstance(module, nn.Bilinear):  # U(±1/√in1) for weight and bias
        return InitSpec(spec.name, {**spec.kwargs, "fan_in": weight.shape[1]}), None
    if param.dim() < 2:  # a bias: U(±1/√fan_in) with the weight's fan_in, by torch's fans
        return InitSpec(spec.name, {**spec.kwargs, "fan_in": calculate_fans(weight)[0]}), None
    return spec, None


@dataclass(frozen=True)
class _Step:
    """One planned fill: the record, and what to fill with what."""

    record: InitRecord
    module: nn.Module
    param: Tensor
    rows: slice | None  # the piece of param to fill; None: all of it
    spec: InitSpec
    fans: tuple[int, int] | None


def _names_token(include: object) -> bool:
    return isinstance(include, list | tuple | set | frozenset) and "token" in include


def apply(
    model: nn.Module,
    weight: SpecLike | None,
    bias: SpecLike | None = "zeros",
    *,
    recurrent: SpecLike | Literal["auto"] | None = "auto",
    forget_bias: float | None = None,
    generator: torch.Generator | None = None,
    include: Include | None = None,
) -> list[InitRecord]:
    """Re-initialize every parameter of a model that a layer kind gives a meaning to.

    Each kind's weights get ``weight`` and its biases ``bias``, with the true fans of
    each matrix:

    - **linear, conv, conv_transpose, embedding** (Linear/Bilinear, Conv*,
      ConvTranspose*, Embedding): grouped and transposed convolutions are accounted for
      (:func:`calculate_fans`). An Embedding's ``padding_idx`` row is set back to zero.
    - **attention** (``nn.MultiheadAttention``): ``in_proj_weight`` (3E, E) is three
      matrices, q, k and v, each (E, E) with fans (E, E) and its own record
      (``"attn.in_proj_weight[q]"``); with kdim/vdim ≠ E, ``q/k/v_proj_weight`` each
      with its own fans. ``in_proj_bias``, ``bias_k``, ``bias_v`` get ``bias``;
      ``out_proj`` is an ``nn.Linear``, so "linear".
    - **recurrent** (``nn.RNN``/``LSTM``/``GRU`` and their cells): ``weight_ih_l{k}``
      is one (H, in) matrix per gate (LSTM i, f, g, o; GRU r, z, n; RNN one), fans
      (input_size or the layer below's output, H), and gets ``weight``;
      ``weight_hh_l{k}`` per gate gets ``recurrent``, orthogonal by default, so that
      the recurrence neither grows nor shrinks a state at the start (Saxe et al. 2014;
      ``recurrent="eye"`` is Le et al.'s identity for ReLU RNNs); the projection
      ``weight_hr_l{k}`` gets ``weight``; biases get ``bias``. ``forget_bias`` sets an
      LSTM's forget-gate slice of ``bias_ih`` to that value and of ``bias_hh`` to 0,
      so that the cell keeps its memory at the start (Gers et al. 2000; 1.0 as
      Jozefowicz et al. 2015).
    - **norm** (batch, instance, layer, group, RMS norm): γ = 1, β = 0 and fresh
      running statistics, whatever ``weight`` is.
    - **token**: loose parameters (owned by a module of none of the kinds above) whose
      names match :data:`TOKEN_PATTERNS` (``cls_token``, ``pos_embed``, …) get
      N(0, 0.02²) truncated at ±0.04, as ViT, BERT and timm start them, whatever
      ``weight`` is (they have no fans); leave them out with ``include``.

    ``"torch_default"`` reproduces each layer's own torch init (Embedding: N(0, 1);
    Bilinear: U(±1/√in1); recurrent: U(±1/√hidden_size) for every weight and bias, with
    ``recurrent="torch_default"`` for weight_hh; attention: xavier_uniform of the whole
    in_proj_weight, fans (E, 3E), zero biases; others: U(±1/√fan_in) with torch's fans,
    for the bias too). Parameters of other modules are left alone, with a warning that
    names them.

    Every spec is checked against every parameter, and the generator against every
    device, before anything is touched: an error leaves the model as it was.

    Args:
        model: any ``nn.Module``.
        weight: a spec for weights (see :func:`parse_spec`), or None to keep them.
        bias: a spec for biases, or None to keep them. Default ``"zeros"``.
        recurrent: a spec for the recurrent weights (weight_hh), per gate, or None to
            keep them. Default ``"auto"``: orthogonal, or kept when ``weight`` is None
            (None keeps what it names, as for weights).
        forget_bias: an LSTM's forget-gate bias (e.g. 1.0), or None to give it ``bias``.
            Layers without a forget gate (GRU, RNN, no bias) have nothing it applies to.
        generator: the generator every draw comes from, in module order, then parameter
            order, then q, k, v or gate order.
        include: which parameters to touch: kind names (``"linear"``, ``"conv"``,
            ``"conv_transpose"``, ``"embedding"``, ``"norm"``, ``"attention"``,
            ``"recurrent"``, ``"token"``), module classes, or a callable
            ``(qualified_name, module) -> bool`` (for a token, its module's name and
            module). Default: all of them.

    Returns:
        One :class:`InitRecord` per parameter or piece of a parameter touched, in the
        order drawn.

    Raises:
        ValueError: a bad spec, a spec that does not fit a parameter (e.g. ``eye`` on a
            conv weight), a generator on another device, or a non-finite
            ``forget_bias``; the model is then unchanged.
        TypeError: a ``forget_bias`` that is not a real number.

    References:
        Saxe, McClelland & Ganguli, *Exact solutions to the nonlinear dynamics of learning
        in deep linear neural networks*, 2014 (orthogonal recurrent weights). Le, Jaitly &
        Hinton, *A simple way to initialize recurrent networks of rectified linear units*,
        2015 (identity). Gers, Schmidhuber & Cummins, *Learning to forget*, 2000;
        Jozefowicz, Zaremba & Sutskever, *An empirical exploration of recurrent network
        architectures*, 2015 (forget bias 1). Devlin et al., *BERT*, 2019; Dosovitskiy
        et al., *An image is worth 16x16 words*, 2021 (tokens, std 0.02).

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        >>> records = apply(model, weight="he_normal", bias="constant(0.01)")
        >>> [(r.parameter, r.scheme, round(r.std, 3)) for r in records]
        [('0.weight', 'he_normal', 0.707), ('0.bias', 'constant(val=0.01)', 0.0), ('2.weight', 'he_normal', 0.5), ('2.bias', 'constant(val=0.01)', 0.0)]

        Attention's q, k and v are three matrices; an LSTM's weights are one per gate:

        >>> attn = nn.MultiheadAttention(8, num_heads=2)
        >>> [(r.parameter, r.fan_in, r.fan_out) for r in apply(attn, "xavier_uniform")][:3]
        [('in_proj_weight[q]', 8, 8), ('in_proj_weight[k]', 8, 8), ('in_proj_weight[v]', 8, 8)]
        >>> lstm = nn.LSTM(3, 5)
        >>> records = apply(lstm, "xavier_uniform", forget_bias=1.0)
        >>> [r.parameter for r in records][4:8]
        ['weight_hh_l0[i]', 'weight_hh_l0[f]', 'weight_hh_l0[g]', 'weight_hh_l0[o]']
        >>> lstm.bias_ih_l0[5:10].tolist(), lstm.bias_hh_l0.abs().sum().item()
        ([1.0, 1.0, 1.0, 1.0, 1.0], 0.0)
    """  # noqa: E501
    if not isinstance(model, nn.Module):
        raise TypeError(param_message("apply", "model", "an nn.Module", type(model).__name__))
    specs: dict[str, InitSpec | None] = {
        "weight": parse_spec(weight) if weight is not None else None,
        "bias": parse_spec(bias) if bias is not None else None,
        "recurrent": (
            (parse_spec("orthogonal") if weight is not None else None)
            if isinstance(recurrent, str) and recurrent == "auto"
            else parse_spec(recurrent)
            if recurrent is not None
            else None
        ),
        # Tokens are drawn with weights, or when asked for by name (include=["token"]).
        "token": _TOKEN_SPEC if weight is not None or _names_token(include) else None,
        "ones": InitSpec("ones"),
        "zeros": InitSpec("zeros"),
        "forget_hh": InitSpec("zeros"),
    }
    if forget_bias is not None:
        value = check_real("apply", "forget_bias", forget_bias)
        specs["forget"] = InitSpec("constant", {"val": value})
    selected = _selector(include)

    # Plan everything (and so check every spec against every shape, and the generator
    # against every device) before touching any parameter: an error leaves the model as
    # it was.
    plan: list[_Step] = []
    norms: list[nn.modules.batchnorm._NormBase] = []
    seen: set[int] = set()
    skipped: list[str] = []
    zero_biases: set[int] = set()  # torch zeroes an attention's out_proj.bias
    for name, module in model.named_modules():
        kind = _kind(module)
        if isinstance(module, nn.MultiheadAttention) and module.out_proj.bias is not None:
            zero_biases.add(id(module.out_proj.bias))
        if isinstance(module, nn.modules.batchnorm._NormBase) and selected(name, module, "norm"):
            norms.append(module)
        own = [(n, p) for n, p in module.named_parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for _, p in own)
        for pname, param in own:
            qualified = f"{name}.{pname}" if name else pname
            parts = _parts(kind, module, pname, param, forget_bias is not None)
            if parts is None:
                # Named only where it was asked for: a selection leaves the rest unsaid.
                if include is None or selected(name, module, kind or "token"):
                    skipped.append(qualified)
                continue
            if not selected(name, module, kind or "token"):
                continue
            if isinstance(param, nn.parameter.UninitializedParameter):
                raise ValueError(
                    f"apply: {qualified} is not materialized yet (a Lazy module). "
                    "Run one forward pass first."
                )
            _check_generator(param, "apply", generator)
            for label, rows, role in parts:
                spec = specs.get(role)
                if spec is None:
                    continue
                fans = None
                if spec.scheme.fill is torch_default_:
                    spec, fans = _torch_default_spec(spec, module, pname, param, zero_biases)
                elif role in ("weight", "recurrent"):
                    fans = _layer_fans(module, param)
                shape = tuple(param.shape)
                if rows is not None:
                    shape = (rows.stop - rows.start, *shape[1:])
                try:
                    draw = spec.describe(shape, fans=fans)
                    # A dry run on a meta tensor of the parameter's dtype checks what the
                    # shape alone cannot (an integer or complex dtype, an overflow) and
                    # draws nothing.
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # the real fill warns, once
                        spec(torch.empty(shape, dtype=param.dtype, device="meta"), fans=fans)
                except (ValueError, TypeError) as error:
                    raise type(error)(
                        f"apply: cannot initialize {qualified}{label} {shape} "
                        f"({type(module).__name__}) with {str(spec)!r}: {error}"
                    ) from error
                record = InitRecord(
                    qualified + label,
                    type(module).__name__,
                    shape,
                    str(spec),
                    draw.std,
                    draw.fan_in,
                    draw.fan_out,
                )
                plan.append(_Step(record, module, param, rows, spec, fans))

    for step in plan:
        param = step.param
        # A piece is a view of the parameter's rows: filling it fills the parameter.
        target = param if step.rows is None else param.detach()[step.rows]
        step.spec(target, generator=generator, fans=step.fans)
        module, padding_idx = step.module, getattr(step.module, "padding_idx", None)
        if isinstance(module, nn.Embedding) and param is module.weight and padding_idx is not None:
            with torch.no_grad():
                param[padding_idx].zero_()
    for norm in norms:
        norm.reset_running_stats()
    if skipped:
        warnings.warn(
            f"apply left {len(skipped)} parameter(s) it does not know as they were: "
            f"{', '.join(skipped[:8])}{' …' if len(skipped) > 8 else ''}. A loose "
            "parameter is re-drawn only when its name matches initlab.init.TOKEN_PATTERNS "
            "(cls_token, pos_embed, …). Initialize the others with the initlab.init "
            "functions directly.",
            UserWarning,
            stacklevel=2,
        )
    return [step.record for step in plan]


# --------------------------------------------------------------------------- residual branches


def _unknown_module(fn: str, name: str, modules: Mapping[str, nn.Module]) -> str:
    names = [n for n in modules if n]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    if close:
        hint = "Close names: " + ", ".join(repr(n) for n in close) + "."
    else:
        shown = ", ".join(repr(n) for n in names[:8]) + (" …" if len(names) > 8 else "")
        hint = f"Its modules: {shown or 'none'}."
    return (
        f"{fn}: the model has no module named {name!r}. {hint} Name the modules as "
        "model.named_modules() does (the probe's branch_source)."
    )


def scale_residual(
    model: nn.Module, branches: Iterable[str], *, count: int | None = None
) -> list[InitRecord]:
    """Start each residual branch small, so that a deep residual stream starts as the identity.

    A block adds its branch to the stream, x + f(x); L blocks of unit-scale branches
    grow the stream's variance L-fold. For each qualified module name in ``branches``
    (the module whose output is a branch's output, as the probe reports it in
    ``ResidualStats.branch_source``):

    - a norm layer with an affine weight: γ = 0, so the branch starts at β and the block
      at the identity (zero-γ: Goyal et al. 2017, the last BN of each ResNet block;
      Fixup, Zhang et al. 2019). β is left as it is (0 at torch's init);
    - an ``nn.Linear``, Conv or ConvTranspose: weight × 1/√count;
    - an ``nn.MultiheadAttention``: its ``out_proj.weight`` × 1/√count.

    ``count`` defaults to ``len(branches)``: with two branches per block (attention and
    MLP) that is GPT-2's 1/√(2L). The weights are scaled as they are, so call it once,
    after :func:`apply`. Every name is checked before anything is touched.

    Args:
        model: any ``nn.Module``.
        branches: qualified module names, e.g. ``["blocks.0.attn", "blocks.0.mlp.fc2"]``.
        count: the number of residual branches N for the factor 1/√N; default
            ``len(branches)``.

    Returns:
        One :class:`InitRecord` per parameter changed: ``scheme`` is ``"zeros"`` or
        ``"scale(1/√N)"``, ``std`` the weight's std afterwards.

    Raises:
        ValueError: an unknown name (the error lists close ones), a name given twice, a
            module of another kind, a norm without an affine weight, no names, or a
            count below 1.
        TypeError: ``branches`` is a string or not an iterable of strings.

    References:
        Goyal et al., *Accurate, large minibatch SGD: training ImageNet in 1 hour*, 2017.
        Zhang, Dauphin & Ma, *Fixup initialization: residual learning without
        normalization*, 2019. Radford et al., *Language models are unsupervised
        multitask learners* (GPT-2), 2019.

    Example:
        >>> net = nn.ModuleDict({"attn": nn.MultiheadAttention(8, 2), "fc2": nn.Linear(16, 8)})
        >>> w = net["fc2"].weight.clone()
        >>> [(r.parameter, r.scheme) for r in scale_residual(net, ["attn", "fc2"])]
        [('attn.out_proj.weight', 'scale(1/√2)'), ('fc2.weight', 'scale(1/√2)')]
        >>> torch.allclose(net["fc2"].weight, w / 2**0.5)
        True
        >>> bn = nn.BatchNorm2d(4)
        >>> _ = scale_residual(nn.Sequential(nn.Conv2d(4, 4, 3), bn), ["1"])
        >>> bn.weight.tolist()
        [0.0, 0.0, 0.0, 0.0]
    """
    fn = "scale_residual"
    if not isinstance(model, nn.Module):
        raise TypeError(param_message(fn, "model", "an nn.Module", type(model).__name__))
    expected = "a list of qualified module names, e.g. ['blocks.0.attn', 'blocks.0.mlp.fc2']"
    if isinstance(branches, str) or not isinstance(branches, Iterable):
        raise TypeError(param_message(fn, "branches", expected, branches))
    names = list(branches)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(param_message(fn, "branches", expected, name))
    if not names:
        raise ValueError(param_message(fn, "branches", "at least one module name", names))
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(
            f"{fn}: {', '.join(repr(n) for n in twice)} given twice: each branch is scaled "
            "once. Fix: name each module once."
        )
    n = len(names) if count is None else check_int(fn, "count", count, low=1)
    # Every name a module is reachable by, so that a shared module is found, and refused.
    modules = dict(model.named_modules(remove_duplicate=False))

    plan: list[tuple[str, nn.Module, Tensor, bool]] = []  # name, module, weight, zero it
    for name in names:
        if name not in modules:
            raise ValueError(_unknown_module(fn, name, modules))
        module = modules[name]
        target: object
        if isinstance(module, _NORM):
            target, zero, qualified = getattr(module, "weight", None), True, f"{name}.weight"
            if not isinstance(target, Tensor):
                raise ValueError(
                    f"{fn}: {name!r} is a {type(module).__name__} without an affine weight "
                    "(γ), so there is no γ to zero. Fix: build it with affine=True "
                    "(elementwise_affine=True), or name the branch's last Linear or Conv."
                )
        elif isinstance(module, nn.MultiheadAttention):
            target, zero, qualified = module.out_proj.weight, False, f"{name}.out_proj.weight"
        elif isinstance(module, (nn.Linear, nn.Bilinear, *_CONV, *_CONV_T)):
            target, zero, qualified = module.weight, False, f"{name}.weight"
        else:
            raise ValueError(
                f"{fn}: {name!r} is a {type(module).__name__}. It takes the module that "
                "produces a residual branch's output: a norm layer with an affine weight "
                "(its γ is zeroed), or an nn.Linear, a Conv, a ConvTranspose or an "
                "nn.MultiheadAttention (its weight, or out_proj's, is scaled by 1/√count)."
            )
        if isinstance(target, nn.parameter.UninitializedParameter):
            raise ValueError(
                f"{fn}: {qualified} is not materialized yet (a Lazy module). "
                "Run one forward pass first."
            )
        if any(target is other for _, _, other, _ in plan):
            raise ValueError(f"{fn}: {qualified} is shared with another branch named.")
        plan.append((qualified, module, target, zero))

    records = []
    with torch.no_grad():
        for qualified, module, weight, zero in plan:
            if zero:
                weight.zero_()
            else:
                weight.mul_(1.0 / math.sqrt(n))
            fans = None if zero else _layer_fans(module, weight) or calculate_fans(weight)
            records.append(
                InitRecord(
                    qualified,
                    type(module).__name__,
                    tuple(weight.shape),
                    "zeros" if zero else f"scale(1/√{n})",
                    float(weight.detach().double().std(correction=0)),
                    fans[0] if fans else None,
                    fans[1] if fans else None,
                )
            )
    return records
