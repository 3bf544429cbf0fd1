"""When a measurement means the network will not train, and what to change.

This is the file to read, and to tune, first. It opens with :class:`Thresholds`, the
numbers at which a measurement becomes a verdict; then each rule is one small function
over the per-layer statistics (:class:`~initlab.probe.LayerStats`) with its reasoning and
its paper; :func:`judge` applies them in the order a report lists them. The wording of
the evidence and of the advice comes last.

A rule returns a :class:`Verdict` (what is wrong, which layers, the number behind it, the
evidence in words, a concrete fix) or None. The depth rules (vanishing, exploding) read a
:class:`Trend`: how the RMS of h changes layer by layer going forward, or that of
∂loss/∂h going back toward the input.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from initlab.probe import probe
    >>> model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    >>> _ = nn.init.zeros_(model[0].weight), nn.init.zeros_(model[0].bias)
    >>> report = probe(model, torch.randn(64, 8))
    >>> verdict = symmetric(report.layers, Thresholds())
    >>> verdict.layers
    (1,)
    >>> print(verdict.evidence)
    layer 1: 94% of the units compute the same function as another unit (only 1 distinct).
    >>> symmetric(report.layers, Thresholds(symmetric=0.95)) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

from initlab._validation import check_real

if TYPE_CHECKING:
    from initlab.probe.results import LayerStats

__all__ = [
    "Thresholds",
    "Trend",
    "Verdict",
    "VerdictKind",
    "dead",
    "exploding",
    "judge",
    "nonfinite",
    "per_layer_factor",
    "redundant_bias",
    "saturated",
    "symmetric",
    "trends",
    "vanishing",
]


@dataclass(frozen=True)
class Thresholds:
    """When a measurement becomes a verdict. Every field is a documented default.

    Example:
        >>> Thresholds(dead=0.5).dead
        0.5
    """

    tanh_saturation: float = 0.97  # |tanh(h)| (and hardtanh, softsign) above this is saturated
    sigmoid_saturation: float = 0.03  # sigmoid(h) below this or above 1 − this is saturated
    saturated: float = 0.2  # a layer is saturated when more of its outputs than this are
    dead: float = 0.25  # dying: dead units exceed always-positive ones by more than this
    symmetric: float = 0.1  # a layer is symmetric when more of its units than this are copies
    vanishing: float = 0.8  # a per-layer RMS factor below this (over the whole depth) vanishes
    exploding: float = 1.25  # a per-layer RMS factor above this explodes
    depth_change: float = 10.0  # ... and only if the RMS changes by more than this in total
    symmetry_tolerance: float = 1e-6  # units closer than this (relative) compute the same function

    def __post_init__(self) -> None:
        fn = "Thresholds"
        for name in ("tanh_saturation", "saturated", "dead", "symmetric"):
            check_real(fn, name, getattr(self, name), low=0.0, high=1.0)
        check_real(fn, "sigmoid_saturation", self.sigmoid_saturation, low=0.0, high=0.5)
        check_real(fn, "vanishing", self.vanishing, low=0.0, high=1.0, low_open=True)
        check_real(fn, "exploding", self.exploding, low=1.0)
        check_real(fn, "depth_change", self.depth_change, low=1.0)
        check_real(fn, "symmetry_tolerance", self.symmetry_tolerance, low=0.0)


_DEFAULTS = Thresholds()  # frozen: one instance serves every Watch

VerdictKind: TypeAlias = Literal[
    "vanishing",
    "exploding",
    "saturated",
    "dead",
    "symmetric",
    "nonfinite",
    "redundant_bias",
    "high_loss",
    "weight_scale",
    "vanishing_in_time",
    "exploding_in_time",
    "residual_growth",
    "attention_collapse",
    "update_ratio",
    "diverging",
]
Severity: TypeAlias = Literal["problem", "advice"]


@dataclass(frozen=True)
class Verdict:
    """One finding: what is wrong, where, the number behind it, and what to change."""

    kind: VerdictKind  # vanishing, exploding, saturated, dead, symmetric, nonfinite, ...
    layers: tuple[int, ...]  # the layers concerned, 1-based as in the table
    value: float  # the measurement behind it (a per-layer factor, a fraction)
    evidence: str  # the finding in words, with its numbers
    advice: str  # the fix to try, concretely
    # "problem": the network will not train well as it is; "advice": it will, but could
    # be simpler or better (a redundant bias). A report is healthy without problems.
    severity: Severity = "problem"

    def __str__(self) -> str:
        return f"{self.kind}: {self.evidence} Fix: {self.advice}"


@dataclass(frozen=True)
class Trend:
    """How the signal or the gradient changes with depth, as the depth rules read it."""

    what: Literal["signal", "gradient"]
    values: tuple[float, ...]  # RMS of h forward, or of ∂loss/∂h from the top layer down
    factor: float  # the fitted change per layer (per_layer_factor of values)
    layers: tuple[LayerStats, ...]  # every layer, in index order


# --------------------------------------------------------------------------------- rules


def vanishing(trend: Trend, t: Thresholds) -> Verdict | None:
    """The signal (or the gradient) shrinks geometrically with depth.

    Each layer multiplies the RMS of h by about σ_w·√fan_in times φ's mean slope (and the
    gradient by the same going back); below 1 the product over L layers goes to 0 as
    factorᴸ: the top layers see no trace of the input, the bottom ones get no gradient.
    The verdict needs both a per-layer factor below ``t.vanishing`` and a total change over
    the depth beyond ``t.depth_change``, so that a shallow net with a mild factor passes.
    A quantity that is exactly 0 from some layer on vanishes whatever the thresholds.

    References:
        Glorot & Bengio 2010, "Understanding the difficulty of training deep feedforward
        neural networks"; He et al. 2015, "Delving deep into rectifiers"; Schoenholz et
        al. 2017, "Deep information propagation".
    """
    factor, values, layers = trend.factor, trend.values, trend.layers
    if math.isnan(factor):
        return None
    if factor == 0.0:
        first_zero = next(i for i, v in enumerate(values) if v <= 0)
        where = layers[first_zero if trend.what == "signal" else len(layers) - 1 - first_zero]
        return Verdict(
            "vanishing",
            _indices(layers),
            0.0,
            f"the {trend.what} is exactly 0 from layer {where.index} {_way(trend)}.",
            _depth_fix(layers),
        )
    total = factor ** (len(values) - 1)
    if not (factor < t.vanishing and total < 1.0 / t.depth_change):
        return None
    return Verdict(
        "vanishing",
        _indices(layers),
        factor,
        f"{_main_activation(layers) or 'the'} {_span(layers)} shrink the {trend.what} by "
        f"{factor:.2f}× per layer {_way(trend)} ({total:.1e}× in all).",
        _depth_fix(layers),
    )


def exploding(trend: Trend, t: Thresholds) -> Verdict | None:
    """The signal (or the gradient) grows geometrically with depth.

    The mirror of :func:`vanishing`: a per-layer factor above ``t.exploding`` (weights too
    large for φ, e.g. σ_w·√fan_in > 1 with ReLU) multiplies the RMS by factorᴸ, until the
    loss or the steps overflow. The total change must exceed ``t.depth_change`` too.

    References:
        Glorot & Bengio 2010, "Understanding the difficulty of training deep feedforward
        neural networks"; Pascanu, Mikolov & Bengio 2013, "On the difficulty of training
        recurrent neural networks" (clipping the gradient's norm).
    """
    factor = trend.factor
    if math.isnan(factor):
        return None
    total = factor ** (len(trend.values) - 1)
    if not (factor > t.exploding and total > t.depth_change):
        return None
    layers = trend.layers
    return Verdict(
        "exploding",
        _indices(layers),
        factor,
        f"{_main_activation(layers) or 'the'} {_span(layers)} grow the {trend.what} by "
        f"{factor:.2f}× per layer {_way(trend)} ({total:.1e}× in all).",
        _depth_fix(layers) + "; clip gradients (initlab.clip.clip_by_global_norm_)",
    )


def nonfinite(layers: Sequence[LayerStats], t: Thresholds) -> Verdict | None:
    """NaN or Inf in a layer's output, its gradient, its weights or their gradient.

    Nothing else can be read from a layer past a NaN or Inf: the input carries one (the
    probe refuses such a batch, a training step may not), or the weights or the steps
    overflowed, most often after an exploding gradient met a large learning rate.

    References:
        Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural
        networks".
    """
    found = [s for s in layers if s.nonfinite]
    if not found:
        return None
    return Verdict(
        "nonfinite",
        _indices(found),
        1.0,
        "NaN or Inf in " + "; ".join(f"layer {s.index}: {s.nonfinite}" for s in found) + ".",
        "check the input for NaN/Inf, lower the learning rate, and clip gradients "
        "(initlab.clip.clip_by_global_norm_)",
    )


def saturated(layers: Sequence[LayerStats], t: Thresholds) -> Verdict | None:
    """More than ``t.saturated`` of a bounded φ's outputs sit in its flat tails.

    Where |tanh| > ``t.tanh_saturation`` (or sigmoid is within ``t.sigmoid_saturation`` of
    0 or 1) the slope φ' is nearly 0: the unit passes almost no gradient and its output
    barely depends on its input. Weights too large for the fan-in put most outputs there.

    References:
        LeCun, Bottou, Orr & Müller 1998, "Efficient BackProp"; Glorot & Bengio 2010,
        "Understanding the difficulty of training deep feedforward neural networks".
    """
    found = [s for s in layers if not math.isnan(s.saturated) and s.saturated > t.saturated]
    if not found:
        return None
    worst = max(s.saturated for s in found)
    return Verdict(
        "saturated",
        _indices(found),
        float(worst),
        f"{_ranges(_indices(found))}: up to {worst:.0%} of the {found[0].activation} outputs "
        "sit in its flat tails, where its slope is ≈ 0.",
        "the weights are too large for this activation: "
        + _init_advice(found[0].activation)
        + ", or add batch norm before the activation",
    )


def dead(layers: Sequence[LayerStats], t: Thresholds) -> Verdict | None:
    """Units whose output is 0 for every example: no gradient flows through them.

    In a deep net the examples' representations grow alike with depth, so a unit can be
    off for the whole batch without being dead: then about as many are on for the whole
    batch (the weights are symmetric about 0). Dead units are the excess over those; the
    default 0.25 is far above the excess drawn by chance (a 30-layer He net of width 256
    showed 10 % on 1 batch in 8 at threshold 0.1).

    References:
        Lu, Shin, Su & Karniadakis 2020, "Dying ReLU and initialization: theory and
        numerical examples"; Maas, Hannun & Ng 2013, "Rectifier nonlinearities improve
        neural network acoustic models" (leaky ReLU).
    """
    found = [s for s in layers if s.dead > t.dead and s.dead - s.always_positive > t.dead]
    if not found:
        return None
    worst = max(s.dead for s in found)
    return Verdict(
        "dead",
        _indices(found),
        float(worst),
        f"{_ranges(_indices(found))}: up to {worst:.0%} of the units output 0 for every "
        "example (dead: no gradient flows through them), far more than the "
        f"{min(s.always_positive for s in found):.0%} that are positive for every example.",
        "the biases or weights push the pre-activations below 0: use bias='zeros' or a "
        "small positive constant (initlab.init.apply(model, weight='he_normal', "
        "bias='constant(0.01)')), a lower learning rate, or leaky_relu",
    )


def symmetric(layers: Sequence[LayerStats], t: Thresholds) -> Verdict | None:
    """More than ``t.symmetric`` of a layer's units compute the same function as another.

    Units that start equal (a zero or constant init) get equal gradients and stay equal
    for ever: the layer is as wide as one unit. Two units count as one when their outputs
    agree at every example of the batch (within ``t.symmetry_tolerance``, relative).

    References:
        Rumelhart, Hinton & Williams 1986, "Learning representations by back-propagating
        errors"; Goodfellow, Bengio & Courville 2016, "Deep Learning", §8.4.
    """
    found = [s for s in layers if s.symmetry > t.symmetric]
    if not found:
        return None
    worst = max(s.symmetry for s in found)
    return Verdict(
        "symmetric",
        _indices(found),
        float(worst),
        f"{_ranges(_indices(found))}: {worst:.0%} of the units compute the same function as "
        f"another unit (only {min(s.distinct_units for s in found)} distinct).",
        "a constant init (zeros, ones) never breaks symmetry: every unit gets the same "
        "gradient. Use a random init: " + _init_advice(_main_activation(found)),
    )


def redundant_bias(layers: Sequence[LayerStats], discarded: Sequence[bool]) -> Verdict | None:
    """A layer's bias is followed directly by batch norm, which subtracts it again.

    Batch norm subtracts the batch mean of each feature, bias included, and adds its own
    shift β: the bias has no effect on the output and its gradient is 0. ``discarded[i]``
    says whether batch norm directly follows ``layers[i]`` and that layer has a bias.

    References:
        Ioffe & Szegedy 2015, "Batch normalization: accelerating deep network training by
        reducing internal covariate shift", §3.2.
    """
    found = [s for s, gone in zip(layers, discarded, strict=True) if gone]
    if not found:
        return None
    return Verdict(
        "redundant_bias",
        _indices(found),
        float(len(found)),
        f"{_ranges(_indices(found))} add a bias that the batch norm right after discards "
        "(its β replaces it).",
        "build these layers with bias=False (initlab.models.mlp(..., bias='auto') does)",
    )


def judge(
    layers: Sequence[LayerStats], t: Thresholds, bias_discarded: Sequence[bool]
) -> tuple[Verdict, ...]:
    """Every rule, in the order a report lists its verdicts.

    The signal's depth verdict, then the gradient's; then the per-layer rules: non-finite,
    saturated, dead, symmetric; last the redundant biases.

    Args:
        layers: the statistics of one member, in index order.
        t: the thresholds.
        bias_discarded: per layer, whether batch norm directly follows it and it has a bias.

    Returns:
        The verdicts; empty for a healthy model.
    """
    found: list[Verdict | None] = []
    for trend in trends(layers):
        found += [vanishing(trend, t), exploding(trend, t)]
    found += [rule(layers, t) for rule in (nonfinite, saturated, dead, symmetric)]
    found.append(redundant_bias(layers, bias_discarded))
    return tuple(v for v in found if v is not None)


# ------------------------------------------------------------------- the measurements


def trends(layers: Sequence[LayerStats]) -> tuple[Trend, Trend]:
    """The signal's trend (the RMS of h going forward) and the gradient's (of ∂loss/∂h,
    from the top layer down)."""
    forward = tuple(s.preact_rms for s in layers)
    backward = tuple(s.grad_rms for s in reversed(layers))
    return (
        Trend("signal", forward, per_layer_factor(forward), tuple(layers)),
        Trend("gradient", backward, per_layer_factor(backward), tuple(layers)),
    )


def per_layer_factor(values: Sequence[float]) -> float:
    """exp of the least-squares slope of log(values) against depth; 0 when one is 0."""
    if len(values) < 2 or not all(math.isfinite(v) for v in values):
        return math.nan
    if any(v <= 0 for v in values):
        return 0.0
    # The closed form of the fitted slope: a report runs during training, and a polyfit
    # costs more than the rest of the verdicts.
    logs = [math.log(v) for v in values]
    mid, mean = (len(logs) - 1) / 2, math.fsum(logs) / len(logs)
    slope = math.fsum((i - mid) * (y - mean) for i, y in enumerate(logs)) / math.fsum(
        (i - mid) * (i - mid) for i in range(len(logs))
    )
    try:
        return math.exp(slope)
    except OverflowError:
        return math.inf


# ------------------------------------------------------------------------ the wording


def _indices(layers: Sequence[LayerStats]) -> tuple[int, ...]:
    return tuple(s.index for s in layers)


def _ranges(indices: Sequence[int]) -> str:
    """[1, 2, 3, 5] → "layers 1–3, 5"; [4] → "layer 4"."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    text = ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs)
    return ("layer " if len(indices) == 1 else "layers ") + text


def _span(layers: Sequence[LayerStats]) -> str:
    return f"layers {layers[0].index}–{layers[-1].index}"


def _way(trend: Trend) -> str:
    return "going forward" if trend.what == "signal" else "going back toward the input"


def _main_activation(layers: Sequence[LayerStats]) -> str | None:
    names = [s.activation for s in layers[:-1] if s.activation not in (None, "linear")]
    return max(set(names), key=names.count) if names else layers[0].activation


def _depth_fix(layers: Sequence[LayerStats]) -> str:
    """The fix for a vanishing or exploding net."""
    return (
        _init_advice(_main_activation(layers))
        + ", or add batch norm, or run initlab.lsuv.lsuv(model, batch)"
    )


def _init_advice(activation: str | None) -> str:
    """The init to try for a vanishing or exploding net, as a runnable call."""
    apply = "initlab.init.apply(model, weight={!r})"
    base = (activation or "").split("(")[0]
    if base == "relu":
        return "use He init: " + apply.format("he_normal")
    if base == "leaky_relu":
        slope = (activation or "leaky_relu(0.01)")[len("leaky_relu(") : -1] or "0.01"
        return "use He init for leaky ReLU: " + apply.format(
            f"kaiming_normal(a={slope}, nonlinearity='leaky_relu')"
        )
    if base == "tanh":
        return "use Xavier init with tanh's gain 5/3: " + apply.format("xavier_normal(gain='tanh')")
    if base == "sigmoid":
        return (
            "sigmoid's slope is at most 1/4, so gradients shrink whatever the init: add "
            "batch norm before each sigmoid (initlab.models.mlp(..., batch_norm='before')) "
            "or use tanh or ReLU"
        )
    if base == "selu":
        return "use LeCun init for SELU: " + apply.format("lecun_normal")
    if base in ("linear", ""):
        return "use LeCun or Xavier init: " + apply.format("lecun_normal")
    return f"use the gain measured for {base}: " + apply.format(
        f"kaiming_normal(nonlinearity='measured:{base}')"
    )
