"""One registry of activations: each one's φ, module, torch gain, kinks, φ' and moments.

Every fact initlab uses about an activation is stated here, once, in :data:`REGISTRY`:
its name (and aliases), φ as a torch function, the ``nn.Module`` that :mod:`initlab.models`
builds for it, torch's ``calculate_gain`` value and where that value comes from, its
parameter (leaky_relu's slope, elu's alpha, softplus's β, …), φ' in closed form where
one is written (autograd otherwise), the kinks where φ or φ' is not smooth, and, for the
piecewise-linear ones, the two slopes that give every moment in closed form.
:mod:`initlab.init` (gains), :mod:`initlab.meanfield` (variance maps, forecasts),
:mod:`initlab.models` (builders) and the probe (recognizing an activation applied
functionally) all read it.

**Names** are ``torch.nn.functional``'s, with the parameter in brackets where there is
one: ``"linear"`` (``"identity"``), ``"relu"``, ``"leaky_relu"`` (slope 0.01, as torch)
or ``"leaky_relu(0.2)"``, ``"tanh"``, ``"sigmoid"``, ``"elu(0.5)"``, ``"selu"``,
``"gelu"`` (the exact, erf form), ``"gelu_tanh"``, ``"silu"`` (``"swish"``),
``"softplus(2)"`` (β), ``"hardtanh"`` ([−1, 1]), ``"mish"``, ``"hardshrink(0.3)"``, … (see
:data:`NAMES`). Any other φ is a callable that maps a float64 torch tensor *elementwise*
to a tensor of the same shape (``torch.sin``, ``lambda x: x * torch.sigmoid(x)``); its
derivative is taken by autograd.

**One quadrature.** Expectations over a Gaussian, E[g(√q z)] with z ~ N(0, 1) (the
second moment E[φ(√q z)²] that gains and the q-map need, E[φ'²], E[φ]), are integrated
by composite Gauss–Legendre quadrature on z ∈ [−12, 12] (N(0, 1) beyond weighs < 1e-32),
10 nodes a panel, on panels whose edges fall on the Gaussian's scale (every integer z),
on φ's scale (x = √q·z at 0, ±1/4, …, ±3, ±4, …, ±40, times softplus's 1/β or celu's α)
and on φ's kinks, which the registry states for every parameter. A callable's kinks are
unknown: its one-input panels also break at every multiple of 1/8 in x ∈ [−12, 12], where
torch's piecewise activations put theirs, with 16 nodes a panel. Two-input expectations
(the c-map) nest the same rule, the inner panels shifted onto the kinks for every outer
node.

It replaced a second rule, in :mod:`initlab.init`: 16 nodes on fixed panels of width 1/8
in z, which knew kinks only on multiples of 1/8, and followed φ's scale only at q = 1.
Measured against scipy's adaptive quadrature (relative error of E[φ(√q z)²]), old → this
rule: every named activation at its default parameters, q = 1: ≤ 3e-16 → ≤ 3e-16; a
kink off the grid, hardshrink(0.3): 4.3e-5 → 1e-16, softshrink(0.3): 8.6e-9 → 2e-16;
hardtanh at q = 30: 5.9e-5 → 1e-16; tanh at q = 1000 (it turns over within
|z| < 0.03): 1.5e-13 → 2e-16. It takes 340 nodes for tanh at q = 1 (3072 before). For
a callable at q = 1 its panels are the old rule's (hardshrink(0.3) as a callable, a jump
inside a panel: 4.3e-5 either way; 10 nodes a panel gave 4e-4). Gauss–Hermite would not
do: at q = 1000 numpy's ``hermegauss`` is still 2.5 % off E[tanh²] with 200 nodes (and
overflows beyond ~360); at q = 1 it needs 100 nodes for 1e-11.

Example:
    >>> spec = lookup("leaky_relu")
    >>> spec.param
    Param(name='negative_slope', default=0.01, low=None, low_open=True)
    >>> spec.torch_gain(0.2) == math.sqrt(2 / 1.04)  # He et al. 2015
    True
    >>> second_moment("relu", 2.0)  # E[relu(√2 z)²] = 2/2
    1.0
    >>> round(second_moment("tanh", 1.0), 6)
    0.394294
    >>> phi = resolve("elu(0.5)")
    >>> phi.name, phi.kinks, phi.df(torch.tensor([-1e6, 1e6], dtype=torch.float64)).tolist()
    ('elu(0.5)', (0.0,), [0.0, 1.0])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from initlab import _blas
from initlab._spec import parse_call
from initlab._validation import check_choice, check_real, param_message

_blas.strict()  # before MKL first runs: see initlab._blas

__all__ = [
    "NAMES",
    "REGISTRY",
    "Activation",
    "ActivationSpec",
    "Param",
    "Phi",
    "by_name",
    "functional_forms",
    "lookup",
    "resolve",
    "second_moment",
]

#: An activation as a user gives one: a name such as ``"tanh"`` or ``"leaky_relu(0.2)"``,
#: or a callable that maps a float64 torch tensor elementwise to a tensor of the same shape.
Activation: TypeAlias = str | Callable[[Tensor], Tensor]

_Fn: TypeAlias = Callable[[Tensor], Tensor]  # elementwise on tensors
_ParamFn: TypeAlias = Callable[[Tensor, float], Tensor]  # φ(x; p) or φ'(x; p)
_Array: TypeAlias = npt.NDArray[np.float64]

# --------------------------------------------------------------------------- the rows


@dataclass(frozen=True)
class Param:
    """An activation's one parameter, e.g. leaky_relu's ``negative_slope``."""

    name: str  # as torch.nn.functional names it
    default: float  # as torch.nn.functional's default
    low: float | None = None  # the bound a value must respect in a name ("softplus(2)")
    low_open: bool = True  # whether ``low`` itself is excluded


def _no_kinks(_: float) -> tuple[float, ...]:
    return ()


def _kink_at_zero(_: float) -> tuple[float, ...]:
    return (0.0,)


def _kinks_at(*points: float) -> Callable[[float], tuple[float, ...]]:
    return lambda _: points


def _kinks_at_param(p: float) -> tuple[float, ...]:
    return (-abs(p), abs(p))


def _unit_scale(_: float) -> float:
    return 1.0


_MEASURED = "measured second-moment gain 1/√E[φ(z)²]"


@dataclass(frozen=True)
class ActivationSpec:
    """One activation family: every fact initlab uses about it, stated once.

    Functions of the parameter ``p`` take the parameter's value (0.0, ignored, when the
    family has none).
    """

    name: str  # the canonical name, torch.nn.functional's
    fn: _ParamFn  # φ(x; p), elementwise, any dtype and device
    param: Param | None = None  # the family's parameter, if it has one
    grad: _ParamFn | None = None  # φ'(x; p) in closed form (torch's value at kinks); None: autograd
    kinks: Callable[[float], tuple[float, ...]] = _no_kinks  # x where φ or φ' is not smooth
    scale: Callable[[float], float] = _unit_scale  # the x-scale of φ's features
    # (s₋, s₊) when φ(x) = s₊x for x > 0 and s₋x for x < 0: every moment in closed form.
    homogeneous: Callable[[float], tuple[float, float]] | None = None
    # calculate_gain's table value: torch's (or, for prelu and rrelu, torch's leaky_relu
    # formula at their slope); None: the measured gain stands in.
    torch_gain: Callable[[float], float] | None = None
    note: str = _MEASURED  # where the gain that calculate_gain reports comes from
    module: Callable[[], nn.Module] | None = None  # what initlab.models builds for it
    aliases: tuple[str, ...] = ()  # other names for the same family

    def bind(self, value: float | None = None) -> Phi:
        """This family at one parameter value (its default when None), ready to integrate.

        Args:
            value: the parameter's value; must be None for a family without one.

        Returns:
            The :class:`Phi`, named ``"name"`` or ``"name(value)"``.

        Raises:
            ValueError: a value for a family without a parameter.

        Example:
            >>> lookup("softplus").bind(2.0).name
            'softplus(2)'
        """
        if self.param is None:
            if value is not None:
                raise ValueError(f"{self.name} takes no parameter. Got {value!r}; leave it out.")
            return _bound(self, 0.0, self.name)
        p = self.param.default if value is None else float(value)
        return _bound(self, p, f"{self.name}({p:g})")


def _bound(spec: ActivationSpec, p: float, name: str) -> Phi:
    def f(x: Tensor) -> Tensor:
        return spec.fn(x, p)

    grad = spec.grad
    df = _autograd(f) if grad is None else (lambda x: grad(x, p))
    homogeneous = spec.homogeneous(p) if spec.homogeneous is not None else None
    return Phi(name, f, df, spec.kinks(p), spec.scale(p), homogeneous)


def _leaky_gain(slope: float) -> float:
    # torch's leaky_relu entry; also the exact second-moment gain (E[φ²] = (1+slope²)/2).
    try:
        return math.sqrt(2.0 / (1 + slope**2))  # torch's expression, bit for bit
    except OverflowError:  # |slope| > 1e154: 1 + slope² is slope² to every digit
        return math.sqrt(2.0) / abs(slope)


def _ones(x: Tensor) -> Tensor:
    return torch.ones_like(x)


def _where_positive(x: Tensor, above: Tensor | float, below: Tensor | float) -> Tensor:
    # Tensors of x's dtype on both sides: torch.where on two Python floats makes float32.
    high = above if isinstance(above, Tensor) else torch.full_like(x, above)
    low = below if isinstance(below, Tensor) else torch.full_like(x, below)
    return torch.where(x > 0, high, low)


def _sech2(x: Tensor) -> Tensor:
    # sech²x = 4e^{−2|x|}/(1 + e^{−2|x|})²: no overflow and no 1 − tanh² cancellation.
    e = torch.exp(-2.0 * x.abs())
    return 4.0 * e / (1.0 + e) ** 2


def _elu_grad(x: Tensor, alpha: float, scale: float = 1.0) -> Tensor:
    return scale * _where_positive(x, 1.0, alpha * torch.exp(x.clamp(max=0.0)))


def _gelu(x: Tensor) -> Tensor:
    # x·Φ(x): torch's float64 ndtr keeps full relative precision in the left tail, where
    # F.gelu's 1 + erf(x/√2) cancels (only an absolute 1e-16 there, which is enough too).
    out: Tensor = x * torch.special.ndtr(x)
    return out


def _gelu_grad(x: Tensor) -> Tensor:
    out: Tensor = torch.special.ndtr(x) + x * torch.exp(-(x**2) / 2) / math.sqrt(2 * math.pi)
    return out


def _silu_grad(x: Tensor) -> Tensor:
    return torch.sigmoid(x) * (1.0 + x * torch.sigmoid(-x))


def _softplus(x: Tensor, beta: float) -> Tensor:
    # The exact log(1 + e^{βx})/β; torch's F.softplus (and nn.Softplus) switch to x above
    # βx > 20, a 2e-9 difference that the moments at large q would see.
    return torch.logaddexp(x.new_zeros(()), beta * x) / beta


def _hardtanh_grad(x: Tensor, _: float) -> Tensor:
    return (x.abs() < 1.0).to(x.dtype)


# Klambauer et al. 2017, as torch.nn.SELU (F.selu uses the same two numbers).
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

_LINEAR_NOTE = "identity: Var is kept as is"
_LEAKY_NOTE = "He et al. 2015: √(2/(1+slope²)), exactly the second-moment gain"


def _rectifier(
    name: str, param: Param, note: str, module: Callable[[], nn.Module] | None = None
) -> ActivationSpec:
    """A leaky_relu-shaped family: φ(x) = x for x > 0, p·x below."""
    return ActivationSpec(
        name,
        lambda x, s: F.leaky_relu(x, s),
        param,
        grad=lambda x, s: _where_positive(x, 1.0, s),
        kinks=_kink_at_zero,
        homogeneous=lambda s: (s, 1.0),
        torch_gain=_leaky_gain,
        note=note,
        module=module,
    )


_SPECS: tuple[ActivationSpec, ...] = (
    # torch's calculate_gain table first, in its order.
    ActivationSpec(
        "linear",
        lambda x, _: x,
        grad=lambda x, _: _ones(x),
        homogeneous=lambda _: (1.0, 1.0),
        torch_gain=lambda _: 1.0,
        note=_LINEAR_NOTE,
        module=nn.Identity,
        aliases=("identity",),
    ),
    ActivationSpec(
        "sigmoid",
        lambda x, _: torch.sigmoid(x),
        grad=lambda x, _: _sech2(x / 2) / 4,
        torch_gain=lambda _: 1.0,
        note="torch's table: 1 (measured second-moment gain ≈ 1.8462, sigmoid's mean 1/2 counted)",
        module=nn.Sigmoid,
    ),
    ActivationSpec(
        "tanh",
        lambda x, _: torch.tanh(x),
        grad=lambda x, _: _sech2(x),
        torch_gain=lambda _: 5.0 / 3,
        note="torch's table: 5/3, an empirical choice (measured second-moment gain ≈ 1.5925)",
        module=nn.Tanh,
    ),
    ActivationSpec(
        "relu",
        lambda x, _: F.relu(x),
        grad=lambda x, _: _where_positive(x, 1.0, 0.0),
        kinks=_kink_at_zero,
        homogeneous=lambda _: (0.0, 1.0),
        torch_gain=lambda _: math.sqrt(2.0),
        note="He et al. 2015: √2, exactly the second-moment gain",
        module=nn.ReLU,
    ),
    _rectifier("leaky_relu", Param("negative_slope", 0.01), _LEAKY_NOTE, module=nn.LeakyReLU),
    ActivationSpec(
        "selu",
        lambda x, _: F.selu(x),
        grad=lambda x, _: _elu_grad(x, _SELU_ALPHA, _SELU_SCALE),
        kinks=_kink_at_zero,
        torch_gain=lambda _: 3.0 / 4,
        note="torch's table: 3/4, found empirically (pytorch PR 50664); self-normalizing "
        "nets (Klambauer et al. 2017) need 1, the measured gain: use 'measured:selu' or 'linear'",
        module=nn.SELU,
    ),
    _rectifier(
        "prelu", Param("init", 0.25), "leaky_relu's formula at nn.PReLU's initial slope 0.25"
    ),
    _rectifier(
        "rrelu",
        Param("slope", (1 / 8 + 1 / 3) / 2),
        "leaky_relu's formula at nn.RReLU's mean slope (1/8 + 1/3)/2",
    ),
    # Not in torch's table: calculate_gain gives the measured second-moment gain.
    ActivationSpec(
        "elu",
        lambda x, a: F.elu(x, a),
        Param("alpha", 1.0),
        grad=lambda x, a: _elu_grad(x, a),
        kinks=_kink_at_zero,
        module=nn.ELU,
    ),
    ActivationSpec(
        "celu",
        lambda x, a: F.celu(x, a),
        Param("alpha", 1.0),
        kinks=_kink_at_zero,
        scale=lambda a: abs(a) or 1.0,
    ),
    ActivationSpec("gelu", lambda x, _: _gelu(x), grad=lambda x, _: _gelu_grad(x), module=nn.GELU),
    ActivationSpec("gelu_tanh", lambda x, _: F.gelu(x, approximate="tanh")),
    ActivationSpec(
        "silu",
        lambda x, _: F.silu(x),
        grad=lambda x, _: _silu_grad(x),
        module=nn.SiLU,
        aliases=("swish",),
    ),
    ActivationSpec("mish", lambda x, _: F.mish(x), module=nn.Mish),
    ActivationSpec(
        "softplus",
        _softplus,
        Param("beta", 1.0, low=0.0),
        grad=lambda x, b: torch.sigmoid(b * x),
        scale=lambda b: 1.0 / abs(b) if b else 1.0,
        module=nn.Softplus,
    ),
    ActivationSpec(
        "hardtanh",
        lambda x, _: F.hardtanh(x),
        grad=_hardtanh_grad,
        kinks=_kinks_at(-1.0, 1.0),
        module=nn.Hardtanh,
    ),
    ActivationSpec("relu6", lambda x, _: F.relu6(x), kinks=_kinks_at(0.0, 6.0)),
    ActivationSpec("hardswish", lambda x, _: F.hardswish(x), kinks=_kinks_at(-3.0, 3.0)),
    ActivationSpec("hardsigmoid", lambda x, _: F.hardsigmoid(x), kinks=_kinks_at(-3.0, 3.0)),
    ActivationSpec("logsigmoid", lambda x, _: F.logsigmoid(x)),
    ActivationSpec("softsign", lambda x, _: F.softsign(x), kinks=_kink_at_zero),
    ActivationSpec("tanhshrink", lambda x, _: F.tanhshrink(x)),
    ActivationSpec(
        "softshrink",
        lambda x, t: F.softshrink(x, t),
        Param("lambd", 0.5, low=0.0, low_open=False),
        kinks=_kinks_at_param,
    ),
    ActivationSpec(
        "hardshrink",
        lambda x, t: F.hardshrink(x, t),
        Param("lambd", 0.5),
        kinks=_kinks_at_param,
    ),
)

#: Every activation family by its canonical name, in torch's calculate_gain order.
REGISTRY: Mapping[str, ActivationSpec] = MappingProxyType({s.name: s for s in _SPECS})

_BY_NAME: dict[str, ActivationSpec] = {
    name: spec for spec in _SPECS for name in (spec.name, *spec.aliases)
}

#: Every name :func:`lookup` and :func:`resolve` know, aliases included, sorted.
NAMES: tuple[str, ...] = tuple(sorted(_BY_NAME))


def lookup(name: str) -> ActivationSpec:
    """The registry row of an activation name or alias (no parameter in brackets).

    Args:
        name: ``"relu"``, ``"swish"``, … (see :data:`NAMES`).

    Returns:
        The :class:`ActivationSpec`; an alias gives its family's row.

    Raises:
        ValueError: an unknown name (the message lists the known ones and the nearest).
        TypeError: ``name`` is not a string.

    Example:
        >>> lookup("swish").name, lookup("identity").module
        ('silu', <class 'torch.nn.modules.linear.Identity'>)
    """
    return _BY_NAME[check_choice("lookup", "name", name, _BY_NAME)]


def by_name() -> dict[str, ActivationSpec]:
    """Every name, aliases right after their family, mapped to its row, in registry order.

    Returns:
        A fresh dict: the name → row view that ``init.ACTIVATIONS`` and
        ``models.ACTIVATIONS`` are built from.

    Example:
        >>> list(by_name())[:3]
        ['linear', 'identity', 'sigmoid']
    """
    return dict(_BY_NAME)


def functional_forms(names: Iterable[str]) -> list[tuple[str, _Fn]]:
    """(canonical name, φ) for each name, in the order given, at default parameters.

    For recognizing an activation that a model applies functionally (``F.relu(x)``): a
    caller compares φ(layer output) with the next layer's input, candidate by candidate.

    Args:
        names: activation names, with or without a parameter (``"leaky_relu(0.2)"``).

    Returns:
        A list of (name, φ) pairs; φ works on any dtype and device.

    Raises:
        ValueError: an unknown name or a bad parameter.

    Example:
        >>> [name for name, _ in functional_forms(["relu", "leaky_relu", "elu"])]
        ['relu', 'leaky_relu(0.01)', 'elu(1)']
    """
    return [(phi.name, phi.f) for phi in (resolve(n, "functional_forms") for n in names)]


# --------------------------------------------------------------------------- resolved


def _autograd(f: _Fn) -> _Fn:
    """φ' of an elementwise φ by autograd (the sum's gradient), in float64; 0 where constant."""

    def df(x: Tensor) -> Tensor:
        t = x.detach().requires_grad_(True)
        with torch.enable_grad():  # the quadrature evaluates under no_grad
            y = f(t)
            if not y.requires_grad:  # φ is constant: φ' = 0
                return torch.zeros_like(x)
            (g,) = torch.autograd.grad(y.sum(), t, allow_unused=True)
        return torch.zeros_like(x) if g is None else g.detach().to(torch.float64)

    return df


# |x| at which φ's slopes at ±∞ are read (for χ₁ where q* = ∞).
_FAR = 1e6

_Z_MAX = 12.0  # N(0, 1) beyond ±12 weighs < 1e-32
_Z_EDGES = np.arange(-_Z_MAX, _Z_MAX + 0.5, 1.0)  # the Gaussian's scale
_X_POS = np.array([0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40])
_X_EDGES = np.concatenate([-_X_POS[::-1], [0.0], _X_POS])  # φ's scale, in x = √q·z
# Where a callable may have kinks: torch's piecewise activations put theirs on multiples
# of 1/8 (0, ±1/2, ±1, ±3, 6). One-input expectations only: the nested rule would take
# ~16× longer with 193 more edges.
_CALLABLE_BREAKS = tuple(float(x) for x in np.arange(-96, 97) / 8)
_NODES_PER_PANEL = 10  # 8 already reach 1e-15 on these panels; 10 leave a margin
# On a callable's panels: a kink or jump off the 1/8 grid falls inside a panel, where the
# error shrinks with the nodes (hardshrink(0.3): 4e-4 with 10, 4e-5 with 16).
_NODES_PER_BREAK_PANEL = 16
_NODES_PER_PANEL_2D = 8
_SMOOTHING = np.array([-8.0, -4, -2, -1, -0.5, 0, 0.5, 1, 2, 4, 8])


@functools.cache
def _legendre(n: int) -> tuple[_Array, _Array]:
    x, w = np.polynomial.legendre.leggauss(n)
    return x, w


def _panels(edges: _Array, n: int) -> tuple[_Array, _Array]:
    """Gauss–Legendre nodes on consecutive edges (last axis), weights times N(0,1) density."""
    x, w = _legendre(n)
    half = (edges[..., 1:] - edges[..., :-1]) / 2
    mid = (edges[..., 1:] + edges[..., :-1]) / 2
    shape = (*edges.shape[:-1], -1)
    z = (mid[..., None] + half[..., None] * x).reshape(shape)
    weights = (half[..., None] * w).reshape(shape) * np.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)
    return z, weights


@functools.lru_cache(maxsize=512)
def _nodes(root_q: float, x_edges: tuple[float, ...], n: int) -> tuple[_Array, _Array]:
    edges = np.unique(
        np.clip(np.concatenate([_Z_EDGES, np.asarray(x_edges) / root_q]), -_Z_MAX, _Z_MAX)
    )
    return _panels(edges, n)


def _at(g: _Fn, x: _Array) -> _Array:
    """g on a float64 array, through torch (no copy either way)."""
    with torch.no_grad():
        out: _Array = g(torch.from_numpy(x)).detach().cpu().numpy()
    return out


@dataclass(frozen=True)
class Phi:
    """One activation, resolved: φ and φ' on float64 tensors, and what the quadrature needs.

    Made by :func:`resolve` (a name or a callable) or :meth:`ActivationSpec.bind`.
    """

    name: str  # canonical, e.g. "leaky_relu(0.2)", or the callable's repr
    f: _Fn  # φ, elementwise
    df: _Fn  # φ' (torch's convention at kinks)
    kinks: tuple[float, ...] = ()  # x where φ or φ' is not smooth: panel edges
    scale: float = 1.0  # the x-scale of φ's features (1/β for softplus(β))
    # (s₋, s₊) when φ(x) = s₊x for x > 0 and s₋x for x < 0: every moment in closed form.
    homogeneous: tuple[float, float] | None = None
    breaks: tuple[float, ...] = ()  # x where φ may be kinked: one-input panel edges only

    @property
    def slopes(self) -> tuple[float, float]:
        """φ'(−∞) and φ'(+∞), read at x = ∓1e6."""
        far = _at(self.df, np.array([-_FAR, _FAR]))
        return float(far[0]), float(far[1])

    def _x_edges(self) -> _Array:
        out: _Array = np.concatenate([_X_EDGES * self.scale, np.asarray(self.kinks)])
        return out

    def expect(self, g: _Fn, q: float) -> float:
        """E[g(√q z)], z ~ N(0, 1), on panels that follow this φ (see the module doc).

        Args:
            g: a function of x = √q z, elementwise on float64 tensors (φ², φ', x·φ·φ', …).
            q: the variance of x, ≥ 0 (not checked).

        Returns:
            The expectation (g(0) at q = 0).

        Example:
            >>> phi = resolve("tanh")
            >>> round(phi.expect(lambda x: phi.f(x) ** 2, 1.0), 6)
            0.394294
        """
        if q == 0.0:
            return float(_at(g, np.zeros(1))[0])
        root = math.sqrt(q)
        edges = tuple(self._x_edges()) + self.breaks
        z, w = _nodes(root, edges, _NODES_PER_BREAK_PANEL if self.breaks else _NODES_PER_PANEL)
        return float(w @ _at(g, root * z))

    def expect_pair(self, g: _Fn, q: float, c: float) -> float:
        """E[g(u₁)g(u₂)] for (u₁, u₂) Gaussian, both of variance q, correlation c.

        Args:
            g: elementwise on float64 tensors.
            q: the variance, ≥ 0 (not checked).
            c: the correlation, in [−1, 1] (not checked).

        Returns:
            The expectation, by the nested panel rule.

        Example:
            >>> phi = resolve("tanh")  # independent: E[tanh]² = 0
            >>> abs(phi.expect_pair(phi.f, 1.0, 0.0)) < 1e-15
            True
        """
        if q == 0.0:
            return float(_at(g, np.zeros(1))[0] ** 2)
        root = math.sqrt(q)
        s = math.sqrt((1.0 - c) * (1.0 + c))
        if s == 0.0:  # u₂ = ±u₁
            return self.expect(lambda x: g(x) * g(c * x), q)
        # u₁ = √q z₁ and u₂ = √q (c z₁ + s z₂): the inner integral over z₂ is a Gaussian
        # smoothing, of width b = √q s, of g at a = √q c z₁. The outer panels follow g(√q z₁),
        # that smoothed g (features at x/(√q c)), and, for a kink k, its smoothed kink.
        b = root * s
        x_edges = self._x_edges()
        kinks = np.asarray(self.kinks)
        parts = [_Z_EDGES, x_edges / root]
        if c != 0.0:
            parts += [x_edges / (root * c), (kinks[:, None] + b * _SMOOTHING).ravel() / (root * c)]
        outer = np.unique(np.clip(np.concatenate(parts), -_Z_MAX, _Z_MAX))
        z1, w1 = _panels(outer, _NODES_PER_PANEL_2D)
        a = root * c * z1
        # The same number of inner edges for every outer node, so one array holds them all;
        # edges clipped onto ±12 make empty panels, which weigh nothing.
        shifted = np.clip((x_edges[None, :] - a[:, None]) / b, -_Z_MAX, _Z_MAX)
        inner = np.sort(
            np.concatenate([np.broadcast_to(_Z_EDGES, (len(z1), len(_Z_EDGES))), shifted], 1)
        )
        z2, w2 = _panels(inner, _NODES_PER_PANEL_2D)
        smoothed = np.einsum("ij,ij->i", w2, _at(g, a[:, None] + b * z2))
        return float(w1 @ (_at(g, root * z1) * smoothed))

    def finite(self, value: float, fn: str, what: str) -> float:
        """``value``, or a ValueError naming ``fn``, ``what`` and this φ where it is not finite."""
        if not math.isfinite(value):
            raise ValueError(
                f"{fn}: {what} is {value!r} for activation {self.name}: φ must be finite and "
                "grow slower than e^(x²/2)."
            )
        return value

    def second_moment(self, q: float, fn: str = "second_moment") -> float:
        """E[φ(√q z)²], z ~ N(0, 1): closed form where φ is homogeneous, else the quadrature.

        The one computation of the second moment: ``init.calculate_gain`` (at q = 1) and
        every map of :mod:`initlab.meanfield` call it.

        Args:
            q: the variance of φ's input, ≥ 0 (not checked).
            fn: the public function to name in an error.

        Returns:
            E[φ(√q z)²].

        Raises:
            ValueError: the result is not finite.

        Example:
            >>> resolve("leaky_relu(0.5)").second_moment(2.0)  # (1 + 0.25)/2 · 2
            1.25
        """
        if self.homogeneous is not None:
            low, high = self.homogeneous
            moment = q * (low * low + high * high) / 2  # inf (no OverflowError) beyond ~1e154
        else:
            moment = self.expect(lambda x: self.f(x) ** 2, q)
        return self.finite(moment, fn, "E[φ²]")


# --------------------------------------------------------------------------- resolve


@functools.lru_cache(maxsize=128)
def _named(text: str, fn: str) -> Phi:
    example = "'tanh' or 'leaky_relu(0.2)'"
    name, args, kwargs = parse_call(text, "Activation", example)
    spec = _BY_NAME[check_choice(fn, "activation", name, NAMES)]
    param = spec.param
    given = [*args, *kwargs.values()]
    if param is None:
        if given:
            fix = f"Write {spec.name!r}."
            raise ValueError(
                param_message(fn, "activation", f"{spec.name!r} without a parameter", text, fix)
            )
        return spec.bind()
    if len(given) > 1 or any(k != param.name for k in kwargs):
        raise ValueError(
            param_message(
                fn,
                "activation",
                f"{spec.name!r} or {spec.name}(<{param.name}>)",
                text,
                f"Write e.g. '{spec.name}(0.2)'.",
            )
        )
    if not given:
        return spec.bind()
    value = check_real(
        fn, f"activation's {param.name}", given[0], low=param.low, low_open=param.low_open
    )
    return spec.bind(value)


def _from_callable(phi: Callable[[Tensor], Tensor], fn: str) -> Phi:
    def f(x: Tensor) -> Tensor:
        y = phi(x)
        if not isinstance(y, Tensor) or y.shape != x.shape:
            raise ValueError(
                f"{fn}: an activation callable must map a float64 tensor elementwise to a "
                f"tensor of the same shape. Got {type(y).__name__} of shape "
                f"{tuple(getattr(y, 'shape', ()))} for input shape {tuple(x.shape)}. "
                "Wrap numpy code as lambda x: torch.from_numpy(f(x.detach().numpy()))."
            )
        return y.to(torch.float64)

    _at(f, np.array([-1.0, 1.0]))  # a callable that cannot be integrated is refused now
    return Phi(repr(phi), f, _autograd(f), breaks=_CALLABLE_BREAKS)


def resolve(activation: Activation, fn: str = "resolve") -> Phi:
    """An activation name or callable as a :class:`Phi`, ready to integrate.

    Args:
        activation: a name (``"relu"``, ``"leaky_relu(0.2)"``, ``"softplus(beta=2)"``; see
            the module doc; case and surrounding spaces are ignored) or a callable that
            maps a float64 tensor elementwise to a tensor of the same shape.
        fn: the public function to name in an error.

    Returns:
        The :class:`Phi`: a name's canonical form (``"elu(1)"`` for ``"elu"``) or the
        callable's repr, φ, φ', kinks and scale.

    Raises:
        ValueError: an unknown name (with the nearest known one), a parameter where the
            family has none, more than one or a misnamed one, a value out of range, or a
            callable that does not map a tensor to one of its shape.
        TypeError: neither a string nor a callable, or a parameter that is no number.

    Example:
        >>> resolve(" Leaky_ReLU(negative_slope=0.2) ").name
        'leaky_relu(0.2)'
        >>> resolve("softplus(2)").scale
        0.5
    """
    if isinstance(activation, str):
        return _named(activation.strip(), fn)
    if callable(activation):
        return _from_callable(activation, fn)
    raise TypeError(
        param_message(
            fn,
            "activation",
            "an activation name such as 'tanh' or 'leaky_relu(0.2)', or a callable on tensors",
            activation,
        )
    )


def second_moment(activation: Activation, q: float) -> float:
    """The second moment of an activation of a Gaussian: E[φ(√q z)²], z ~ N(0, 1).

    The input second moment of the next layer when this layer's pre-activations have
    second moment q: q/2 for ReLU, q for linear, (1 + s²)/2·q for leaky ReLU with slope s.
    At q = 1 it is 1/gain² for the second-moment gain of :func:`initlab.init.calculate_gain`.

    Args:
        activation: a name (``"relu"``, ``"leaky_relu(0.2)"``, ``"tanh"``, …; see the
            module doc) or a callable on float64 tensors.
        q: the pre-activation's second moment, ≥ 0.

    Returns:
        E[φ(√q z)²].

    Raises:
        ValueError: an unknown activation name (with the nearest known one), a bad
            parameter, q < 0 or non-finite, or a non-finite result.
        TypeError: an activation that is neither a string nor a callable, or q not a number.

    References:
        Poole et al., *Exponential expressivity in deep neural networks through transient
        chaos*, 2016 (eq. 3).

    Example:
        >>> second_moment("relu", 3.0), second_moment("leaky_relu(0.5)", 2.0)
        (1.5, 1.25)
        >>> round(second_moment("tanh", 1.0), 6)
        0.394294
    """
    fn = "second_moment"
    phi = resolve(activation, fn)
    return phi.second_moment(check_real(fn, "q", q, low=0.0), fn)
