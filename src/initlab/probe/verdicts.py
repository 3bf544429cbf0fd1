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

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

from initlab._validation import check_real

if TYPE_CHECKING:
    from initlab.probe.results import (
        AttentionStats,
        LayerStats,
        OutputStats,
        RecurrentStats,
        ResidualStats,
    )

__all__ = [
    "Thresholds",
    "Trend",
    "Verdict",
    "VerdictKind",
    "attention_collapse",
    "dead",
    "diverging",
    "exploding",
    "exploding_in_time",
    "high_loss",
    "judge",
    "nonfinite",
    "per_layer_factor",
    "redundant_bias",
    "residual_growth",
    "saturated",
    "symmetric",
    "trends",
    "update_ratio",
    "vanishing",
    "vanishing_in_time",
    "weight_scale",
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
    high_loss: float = 2.0  # a classifier's cross-entropy above this × ln C, its value at init
    weight_scale: float = 5.0  # weight std·√fan_in above this: far above every standard init
    time_vanishing: float = 0.2  # a per-step gradient factor through time below this vanishes
    time_exploding: float = 1.1  # … above this explodes (over many steps: 1.1¹⁰⁰ ≈ 10⁴)
    residual_growth: float = 3.0  # the residual stream's rms grows by more than this
    attention_entropy: float = 0.2  # attention whose mean entropy (0 to 1) is below this
    update_low: float = 1e-5  # ‖ΔW‖/‖W‖ per step below this (100× under the 1e-3 guide)
    update_high: float = 0.5  # … or above this (a step rewrites half the layer)
    diverging: float = 2.0  # Watch: the last loss above this × the first, and rising

    def __post_init__(self) -> None:
        fn = "Thresholds"
        for name in ("tanh_saturation", "saturated", "dead", "symmetric"):
            check_real(fn, name, getattr(self, name), low=0.0, high=1.0)
        check_real(fn, "sigmoid_saturation", self.sigmoid_saturation, low=0.0, high=0.5)
        check_real(fn, "vanishing", self.vanishing, low=0.0, high=1.0, low_open=True)
        check_real(fn, "exploding", self.exploding, low=1.0)
        check_real(fn, "depth_change", self.depth_change, low=1.0)
        check_real(fn, "symmetry_tolerance", self.symmetry_tolerance, low=0.0)
        for name in ("high_loss", "weight_scale", "residual_growth", "diverging"):
            check_real(fn, name, getattr(self, name), low=1.0)
        check_real(fn, "time_vanishing", self.time_vanishing, low=0.0, high=1.0)
        check_real(fn, "time_exploding", self.time_exploding, low=1.0)
        check_real(fn, "attention_entropy", self.attention_entropy, low=0.0, high=1.0)
        check_real(fn, "update_low", self.update_low, low=0.0)
        check_real(fn, "update_high", self.update_high, low=self.update_low)


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
    if len(values) < _PATH or not (factor < t.vanishing and total < 1.0 / t.depth_change):
        return None
    if not _along(values, lambda r: r < t.vanishing):
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
    if len(trend.values) < _PATH or not (factor > t.exploding and total > t.depth_change):
        return None
    if not _along(trend.values, lambda r: r > t.exploding):
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


def high_loss(
    output: OutputStats | None, t: Thresholds, layers: Sequence[LayerStats] = ()
) -> Verdict | None:
    """A classifier's loss far above the value it should start from.

    Logits near 0 give every class probability 1/C: the cross-entropy starts at ln C (ln 2
    for one logit). Logits of rms r spread the softmax and the loss grows as ≈ r·√(2 ln C)
    once r ≫ 1 (Karpathy 2019, "A recipe for training neural networks": "verify loss @
    init"). Above ``t.high_loss`` × ln C the network is confidently wrong before it has
    learnt anything: the first steps spend themselves shrinking the logits, and weights
    that large (e.g. N(0, 1) in a wide layer) also make every relative update tiny.

    References:
        Karpathy 2019; He et al. 2019, "Bag of tricks for image classification" (a zero-γ
        and small-head start).
    """
    if output is None or output.classes is None or not math.isfinite(output.natural_loss):
        return None
    ce, natural = output.cross_entropy, output.natural_loss
    if not (ce > t.high_loss * natural):  # nan (the labels did not fit) passes
        return None
    return Verdict(
        "high_loss",
        (),
        ce / natural,
        f"the cross-entropy is {ce:.3g}, {ce / natural:.1f}× its natural value ln "
        f"{output.classes} = {natural:.3g}: the logits have rms {output.rms:.3g} (≈ 1 or "
        "less at a healthy start).",
        _loss_fix(layers),
    )


def weight_scale(
    layers: Sequence[LayerStats], t: Thresholds, *, normalized: bool = False
) -> Verdict | None:
    """Weights far larger than any standard init for their fan-in.

    Every standard init keeps std·√fan_in near 1 (LeCun 1, He √2, torch's default 1/√3,
    Xavier and orthogonal ≤ √2 for the usual shapes, tanh's gain 5/3). A layer at
    ``t.weight_scale`` or more times that (N(0, 1) weights in a layer of fan-in 25 or
    more) multiplies its output by as much: a problem. Behind batch norm
    (``normalized=True``: the layers whose output batch norm rescales) the signal
    survives, which is batch norm's lesson, but a step then changes the weights
    relatively ``t.weight_scale``× less, so the layer learns that much slower (the
    update:weight ratio falls 30× on a ResNet-18 drawn from N(0, 1)): advice. Embeddings
    are lookups (fan-in 1, N(0, 1) by default): they are not judged; nor are attention and
    recurrent layers, whose pooled std mixes matrices of different scales (their own rules
    judge them).

    References:
        LeCun et al. 1998; Glorot & Bengio 2010; He et al. 2015; van Laarhoven 2017, "L2
        regularization versus batch and weight normalization" (the effective step of a
        normalized layer is ∝ 1/‖W‖²).
    """
    found = [
        s
        for s in layers
        if s.kind not in _POOLED
        and (s.batch_norm == "before") == normalized
        and s.weight_std * math.sqrt(s.fan_in) > t.weight_scale
    ]
    if not found:
        return None
    gains = [s.weight_std * math.sqrt(s.fan_in) for s in found]
    worst = found[gains.index(max(gains))]
    evidence = (
        f"{_ranges(_indices(found))}: the weights' std·√fan_in is up to {max(gains):.3g} "
        f"(layer {worst.index}, {worst.name}: std {worst.weight_std:.3g} at fan-in "
        f"{worst.fan_in}), where standard inits give 0.6–1.7"
    )
    if normalized:
        return Verdict(
            "weight_scale",
            _indices(found),
            max(gains),
            evidence + ". Batch norm rescues the signal, but each step moves these "
            "weights relatively that much less: they learn slower.",
            _init_advice(_main_activation(found), found, _names(found))
            + ", or raise their learning rate",
            severity="advice",
        )
    return Verdict(
        "weight_scale",
        _indices(found),
        max(gains),
        evidence + ".",
        _init_advice(_main_activation(found), found, _names(found)),
    )


def vanishing_in_time(recurrent: Sequence[RecurrentStats], t: Thresholds) -> Verdict | None:
    """The gradient sent back through a recurrent layer dies within a few steps.

    Going back one step multiplies the gradient by ∂h_t/∂h_{t−1}: for an LSTM mostly the
    forget gate f_t, for a tanh RNN W_hhᵀ·diag(1 − h²). Its per-step factor (fitted over
    the sequence) below ``t.time_vanishing`` — a 10× loss every 1.4 steps — or a gradient
    that is exactly 0 at the first step means the layer cannot learn anything that
    depends on more than the last step or two. A default-initialized LSTM, GRU or tanh
    RNN decays 0.55–0.65× per step (its gates sit near σ(0) = 0.5): a short memory, not a
    broken one, and it passes; a forget-gate bias of −3 (0.18× per step) does not.

    References:
        Bengio, Simard & Frasconi 1994; Hochreiter & Schmidhuber 1997; Pascanu, Mikolov &
        Bengio 2013; Jozefowicz, Zaremba & Sutskever 2015 (forget-gate bias 1).
    """
    found = []
    for r in recurrent:
        f, values = r.time_factor, r.grad_through_time
        if math.isnan(f) or len(values) < 2:
            continue
        total = f ** (len(values) - 1)
        if f == 0.0 or (f < t.time_vanishing and total < 1.0 / t.depth_change):
            found.append(r)
    if not found:
        return None
    r = min(found, key=lambda r: r.time_factor)
    first = r.grad_through_time[0]
    if r.time_factor == 0.0:
        back = next(t for t in range(r.steps - 1, -1, -1) if r.grad_through_time[t] == 0.0)
        how = f"is exactly 0 from step {back} back (of {r.steps}): nothing before it is learnt"
    else:
        how = (
            f"shrinks {r.time_factor:.3g}× per step going back in time, to {first:.3g} at "
            f"step 0 of {r.steps}"
        )
    return Verdict(
        "vanishing_in_time",
        (),
        r.time_factor,
        f"{r.name} ({r.kind}): the gradient of the last step {how} (from "
        f"{r.grad_through_time[-1]:.3g} at the last); gates: {_gates(r)}.",
        "re-initialize the recurrent weights (initlab.init.apply(model, weight="
        "'xavier_uniform', recurrent='orthogonal', forget_bias=1.0, include=['recurrent']))"
        "; for a plain RNN, use an LSTM or GRU",
    )


def exploding_in_time(recurrent: Sequence[RecurrentStats], t: Thresholds) -> Verdict | None:
    """The gradient sent back through a recurrent layer grows step after step.

    The mirror of :func:`vanishing_in_time`: a per-step factor above ``t.time_exploding``
    over a total beyond ``t.depth_change`` (W_hh's spectral radius above 1 for a ReLU RNN:
    1.18× per step with 1.5·orthogonal, 120× over 30 steps) makes the gradient of early
    steps overflow: clip it, and make W_hh orthogonal. Sequences are longer than nets
    are deep, so the per-step threshold is lower than the per-layer one.

    References:
        Pascanu, Mikolov & Bengio 2013; Le, Jaitly & Hinton 2015 (identity init for ReLU
        RNNs).
    """
    found = [
        r
        for r in recurrent
        if r.time_factor > t.time_exploding
        and math.isfinite(r.time_factor)
        and r.time_factor ** (len(r.grad_through_time) - 1) > t.depth_change
    ]
    if not found:
        return None
    r = max(found, key=lambda r: r.time_factor)
    return Verdict(
        "exploding_in_time",
        (),
        r.time_factor,
        f"{r.name} ({r.kind}): the gradient of the last step grows {r.time_factor:.3g}× per "
        f"step going back in time, to {r.grad_through_time[0]:.3g} at step 0 of {r.steps}.",
        "re-initialize W_hh orthogonal (initlab.init.apply(model, weight='xavier_uniform', "
        "recurrent='orthogonal', include=['recurrent'])) and clip gradients "
        "(initlab.clip.clip_by_global_norm_)",
    )


def residual_growth(residuals: Sequence[ResidualStats], t: Thresholds) -> Verdict | None:
    """The residual stream grows block after block.

    Each block adds its branch to the stream: y = x + f(x). Branches of rms b on a stream
    of rms s grow its variance by b² per block; with branches as large as the stream the
    rms doubles every few blocks, the last blocks' inputs dwarf the first blocks'
    contributions, and (pre-norm) each norm divides its branch's gradient by a growing
    rms. Beyond ``t.residual_growth`` over the blocks the branches are too large: scale
    each branch's last layer by 1/√(2L) (GPT-2) or start it at 0 (zero-γ, Fixup).

    References:
        Radford et al. 2019 (GPT-2); Goyal et al. 2017 (zero-γ); Zhang, Dauphin & Ma 2019
        (Fixup); De & Smith 2020, "Batch normalization biases residual blocks towards the
        identity function in deep networks".
    """
    if len(residuals) < 2:
        return None
    first, last = residuals[0], residuals[-1]
    if not (first.stream_in_rms > 0 and math.isfinite(last.stream_out_rms)):
        return None
    growth = last.stream_out_rms / first.stream_in_rms
    if not growth > t.residual_growth:
        return None
    ratios = [
        r.branch_rms / r.stream_in_rms
        for r in residuals
        if r.stream_in_rms > 0 and math.isfinite(r.branch_rms)
    ]
    branch = f"; the largest branch is {max(ratios):.3g}× the stream's rms" if ratios else ""
    return Verdict(
        "residual_growth",
        (),
        growth,
        f"the residual stream grows from rms {first.stream_in_rms:.3g} into {first.name} to "
        f"{last.stream_out_rms:.3g} out of {last.name} ({growth:.3g}× over "
        f"{len({r.name for r in residuals})} blocks){branch}.",
        "scale each branch's last layer down: initlab.init.scale_residual(model, branches) "
        "(zero γ on a last norm, 1/√(2L) on an output projection; "
        "initlab.probe.fix(model, batch) does it)",
    )


def attention_collapse(attention: Sequence[AttentionStats], t: Thresholds) -> Verdict | None:
    """Attention whose softmax puts (nearly) all weight on one key.

    With q, k of rms r the logits q·k/√d have std ≈ r² (Vaswani et al.'s 1/√d keeps it ≈ 1
    for unit q, k). Logits spread far beyond 1 make the softmax one-hot: each query copies
    one key's value, and the softmax's gradient, p(1 − p), is ≈ 0 everywhere. Entropy
    (normalized by ln of the keys: 1 uniform, 0 one-hot) below ``t.attention_entropy`` is
    that collapse, at init typically from q/k projections drawn far too large.

    References:
        Vaswani et al. 2017, "Attention is all you need" (§3.2.1); Zhai et al. 2023,
        "Stabilizing transformer training by preventing attention entropy collapse".
    """
    found = [a for a in attention if a.entropy < t.attention_entropy]
    if not found:
        return None
    a = min(found, key=lambda a: a.entropy)
    return Verdict(
        "attention_collapse",
        (),
        a.entropy,
        f"{', '.join(x.name for x in found)}: the attention's entropy is down to "
        f"{a.entropy:.3g} of its maximum ({a.name}: logits std {a.logit_std:.3g}, q rms "
        f"{a.q_rms:.3g}, k rms {a.k_rms:.3g}, the largest weight {a.max_weight:.0%} on "
        "average): each query attends to one key.",
        "re-initialize q, k, v as separate E × E matrices: initlab.init.apply(model, "
        "weight='xavier_uniform', include=['attention'])",
    )


def update_ratio(layers: Sequence[LayerStats], t: Thresholds) -> Verdict | None:
    """Optimizer steps that change the weights far too little or far too much.

    ‖ΔW‖/‖W‖ per step near 1e-3 is the rule of thumb of a healthy run (Karpathy, CS231n).
    Below ``t.update_low`` the layer barely moves (a too-small learning rate, or weights
    so large that steps are relatively tiny); above ``t.update_high`` each step rewrites
    half the layer or more, which ends in oscillation or divergence. Small nets early in
    training sit well above 1e-3 and train (a 64-64-64-10 MLP on digits at SGD lr 0.5:
    0.07–0.23, its loss 2.3 → 0.46 in 25 steps); at lr 2 it reads 0.71 five steps before
    its loss explodes, hence the threshold. Read only where
    steps were taken (``probe(steps=…)``, or a :class:`Watch` report after
    ``optimizer.step()``).

    References:
        Karpathy, CS231n "Neural networks part 3: learning and evaluation"; You, Gitman &
        Ginsburg 2017, "Large batch training of convolutional networks" (LARS).
    """
    # An embedding's step moves only the rows of the batch's ids: not read against the table.
    measured = [s for s in layers if math.isfinite(s.update_weight_ratio) and s.kind not in _LOOKUP]
    high = [s for s in measured if s.update_weight_ratio > t.update_high]
    low = [s for s in measured if 0 < s.update_weight_ratio < t.update_low]
    if not (high or low):
        return None
    if high:
        worst = max(s.update_weight_ratio for s in high)
        return Verdict(
            "update_ratio",
            _indices(high),
            worst,
            f"{_ranges(_indices(high))}: a step changes the weights by up to {worst:.2g} of "
            "their norm (≈ 1e-3 is healthy).",
            f"lower the learning rate about {worst / 1e-3:.0f}× or clip gradients "
            "(initlab.clip.clip_by_global_norm_)",
        )
    worst = min(s.update_weight_ratio for s in low)
    return Verdict(
        "update_ratio",
        _indices(low),
        worst,
        f"{_ranges(_indices(low))}: a step changes the weights by only {worst:.2g} of their "
        "norm (≈ 1e-3 is healthy): they barely learn.",
        "raise the learning rate, or, if the weights are far larger than their init should "
        "be, re-initialize them (initlab.probe.fix(model, batch))",
    )


def diverging(losses: Sequence[float], t: Thresholds) -> Verdict | None:
    """The loss rises across a Watch's reports instead of falling.

    A stochastic loss wobbles; one that ends above ``t.diverging`` × the first loss the
    Watch saw, and above the report before, is climbing (read for losses that start
    above 0: a negative log-likelihood may be negative, and a ratio to it means nothing):
    the learning rate is too large for the curvature (each step overshoots), or the
    gradient exploded. A non-finite loss
    after finite ones has diverged.

    References:
        LeCun, Bottou, Orr & Müller 1998, "Efficient BackProp" (η > 2/λ_max diverges);
        Goodfellow, Bengio & Courville 2016, §8.2.
    """
    if len(losses) < 2 or not math.isfinite(losses[0]):
        return None
    if losses[0] <= 0 and math.isfinite(losses[-1]):
        return None  # a log-likelihood or ELBO loss: "twice the first" means nothing
    last, before, first = losses[-1], losses[-2], losses[0]
    if math.isfinite(last) and not (last > t.diverging * first and last > before):
        return None
    if not math.isfinite(last) and not math.isfinite(before):
        return None  # said once, when it happened (and the nonfinite verdict says it)
    trail = " → ".join(f"{v:.3g}" for v in losses[-6:])
    return Verdict(
        "diverging",
        (),
        last / first if first else math.inf,
        f"the loss rises over the reports: {trail}"
        + (" (earlier ones left out)" if len(losses) > 6 else "")
        + ".",
        "lower the learning rate (about 10×) or clip gradients "
        "(initlab.clip.clip_by_global_norm_); check the input for outliers",
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
        + _init_advice(found[0].activation, found)
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
        "build these layers with bias=False: the model trains the same, with fewer parameters",
        severity="advice",
    )


def judge(
    layers: Sequence[LayerStats],
    t: Thresholds,
    bias_discarded: Sequence[bool],
    *,
    output: OutputStats | None = None,
    attention: Sequence[AttentionStats] = (),
    recurrent: Sequence[RecurrentStats] = (),
    residuals: Sequence[ResidualStats] = (),
    losses: Sequence[float] = (),
) -> tuple[Verdict, ...]:
    """Every rule, in the order a report lists its verdicts.

    First what the loss says (non-finite values, a climbing loss, a loss far above its
    start); then the signal's depth verdict and the gradient's; the weights' scale; the
    per-layer rules (saturated, dead, symmetric); the parts that are not a chain of layers
    (through time, the residual stream, attention); the update steps; last the advice
    (redundant biases).

    Args:
        layers: the statistics of one member, in index order.
        t: the thresholds.
        bias_discarded: per layer, whether batch norm directly follows it and it has a bias.
        output: the model's output against its natural loss (classifiers).
        attention: the attention modules' statistics.
        recurrent: the recurrent modules' statistics.
        residuals: the residual blocks' statistics, in the order they ran.
        losses: the losses a :class:`~initlab.probe.Watch` saw, oldest first.

    Returns:
        The verdicts; none of severity "problem" for a healthy model.
    """
    found: list[Verdict | None] = [
        nonfinite(layers, t),
        diverging(losses, t),
        high_loss(output, t, layers),
    ]
    for trend in trends(layers):
        found += [vanishing(trend, t), exploding(trend, t)]
    found.append(weight_scale(layers, t))
    found += [rule(layers, t) for rule in (saturated, dead, symmetric)]
    found += [vanishing_in_time(recurrent, t), exploding_in_time(recurrent, t)]
    found += [gates_saturated(recurrent, t), residual_growth(residuals, t)]
    found += [attention_collapse(attention, t), update_ratio(layers, t)]
    found += [weight_scale(layers, t, normalized=True), redundant_bias(layers, bias_discarded)]
    return tuple(v for v in found if v is not None)


def gates_saturated(recurrent: Sequence[RecurrentStats], t: Thresholds) -> Verdict | None:
    """A recurrent layer's gates pinned in their flat tails.

    A gate's sigmoid (or the cell's tanh) beyond the saturation thresholds passes almost
    no gradient; a forget gate stuck at 0 forgets every step, one stuck at 1 never takes
    anything in. More than ``t.saturated`` of a gate's activations there is the
    :func:`saturated` verdict of a recurrent layer.

    References:
        Hochreiter & Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000; Chung et al.
        2014 (GRU).
    """
    found = [
        (r, gate, share)
        for r in recurrent
        for gate, share in r.gate_saturation.items()
        if share > t.saturated
    ]
    if not found:
        return None
    r, gate, share = max(found, key=lambda x: x[2])
    return Verdict(
        "saturated",
        (),
        share,
        f"{r.name} ({r.kind}): {share:.0%} of its {gate} gate's activations sit in the flat "
        f"tails (gate means: {_gates(r)}).",
        "the recurrent weights or biases are too large: initlab.init.apply(model, "
        "weight='xavier_uniform', recurrent='orthogonal', include=['recurrent'])",
    )


# ------------------------------------------------------------------- the measurements


# A depth verdict needs at least this many layers on the path (three steps): one or two
# layers' change is their scale (the weight_scale verdict), not a trend with depth.
_PATH = 4
# Lookups and recurrent layers are on no depth path: an embedding's scale is a free choice
# (N(0, 1) by default), a recurrent layer's depth runs through time (its own verdicts).
_LOOKUP = ("Embedding", "EmbeddingBag")
_OFF_PATH = (*_LOOKUP, "RNN", "LSTM", "GRU")
# Layers whose weight_std pools several matrices of other scales (attention's in_proj with
# its out_proj, a recurrent layer's W_ih with W_hh): std·√fan_in of the pool says nothing
# of any one; their own rules (attention collapse, saturated gates, through time) judge them.
_POOLED = (*_OFF_PATH, "MultiheadAttention")


def trends(layers: Sequence[LayerStats]) -> tuple[Trend, Trend]:
    """The signal's trend (the RMS of h going forward) and the gradient's (of ∂loss/∂h,
    from the top layer down), over the layers on the depth path.

    The signal is read per unit (an init for the fan-in keeps E[h²] per unit across
    widths); the gradient per example, ‖∂loss/∂h‖ = RMS·√size, over all of h's values of
    an example (the same init keeps that norm across widths and strides, while its
    per-unit RMS follows fan_out/fan_in: a narrow head alone would read as a vanishing
    gradient, a strided conv as a vanishing one too).
    """
    path = tuple(s for s in layers if s.kind not in _OFF_PATH)
    forward = tuple(s.preact_rms for s in path)
    backward = tuple(s.grad_rms * math.sqrt(s.size or s.units) for s in reversed(path))
    return (
        Trend("signal", forward, per_layer_factor(forward), path),
        Trend("gradient", backward, per_layer_factor(backward), path),
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


def _loss_fix(layers: Sequence[LayerStats]) -> str:
    """The fix for a loss far above ln C: the weights for their fan-in (unless they follow
    their scheme already) and a small last layer."""
    head = f"include=[{layers[-1].name!r}]" if layers else "include=[<the last layer>]"
    small = f"initlab.init.apply(model, weight='xavier_normal(gain=0.1)', {head})"
    activation = _main_activation(layers) if layers else None
    if layers and current_scheme(activation, layers[:-1] or layers) is not None:
        return (
            "the weights already follow a standard init for their fan-in, so the logits "
            f"grow elsewhere (a residual stream, unscaled inputs): start the last layer small "
            f"({small}; initlab.probe.fix(model, batch) does it)"
        )
    return (
        "re-initialize the weights for their fan-in ("
        + _init_advice(activation, layers).split(": ", 1)[-1]
        + f") and start the last layer small ({small}); initlab.probe.fix(model, batch) "
        "does both"
    )


def _gates(r: RecurrentStats) -> str:
    return ", ".join(f"{g} {m:.2f}" for g, m in r.gate_mean.items())


def _depth_fix(layers: Sequence[LayerStats]) -> str:
    """The fix for a vanishing or exploding net."""
    return (
        _init_advice(_main_activation(layers), layers)
        + ", or add batch norm, or run initlab.lsuv.lsuv(model, batch)"
    )


# std·√fan_in of the scheme each activation's advice names (Xavier with tanh's gain at
# equal fans), and how close a layer's must be to count as already following it.
_SCHEME_GAIN = {"relu": math.sqrt(2.0), "leaky_relu": math.sqrt(2.0), "tanh": 5.0 / 3.0}
_FOLLOWS = 0.2


def current_scheme(activation: str | None, layers: Sequence[LayerStats]) -> str | None:
    """The advised init, if the layers already follow it: their median std·√fan_in is
    within 20 % of the scheme's (He √2 for ReLU, Xavier·5/3 for tanh, LeCun 1 otherwise).
    None when they do not (or when no layer tells)."""
    base = (activation or "").split("(")[0]
    target = _SCHEME_GAIN.get(base, 1.0)
    gains = sorted(
        s.weight_std * math.sqrt(s.fan_in)
        for s in layers
        if s.kind not in _POOLED and math.isfinite(s.weight_std) and s.weight_std > 0
    )
    if not gains:
        return None
    median = gains[len(gains) // 2]
    if abs(median / target - 1.0) > _FOLLOWS:
        return None
    return {"relu": "He", "leaky_relu": "He", "tanh": "Xavier (tanh gain)"}.get(base, "LeCun")


def _along(values: Sequence[float], beyond: Callable[[float], bool]) -> bool:
    """Whether the change runs along the path: at least half of the layer-to-layer steps
    are themselves beyond the per-layer threshold. One step alone (a global-average pool
    before the head divides the gradient's norm by √(H·W)) is not a trend with depth."""
    steps = [b / a for a, b in itertools.pairwise(values) if a > 0]
    return 2 * sum(1 for r in steps if beyond(r)) >= len(steps)


def _names(layers: Sequence[LayerStats]) -> list[str]:
    return [s.name for s in layers]


def _init_advice(
    activation: str | None, layers: Sequence[LayerStats] = (), include: list[str] | None = None
) -> str:
    """The init to try for a vanishing or exploding net, as a runnable call; when the
    layers already follow it, what to try instead (never the init they have)."""
    already = current_scheme(activation, layers) if layers else None
    if already is not None:
        return (
            f"the weights already follow {already} init for their fan-in, so the init is "
            "not the cause: add batch norm, scale the residual branches "
            "(initlab.init.scale_residual), or run initlab.lsuv.lsuv(model, batch)"
        )
    selected = f", include={include!r}" if include else ""
    apply = (
        "initlab.init.apply(model, weight={!r}"
        + selected.replace("{", "{{").replace("}", "}}")
        + ")"
    )
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
