"""The probe's fixes, carried out: re-initialize what each verdict names, and probe again.

:func:`fix` reads a report's verdicts as a plan of changes to the weights — the scheme
each flagged layer's activation calls for, q/k/v as separate matrices for collapsed
attention, orthogonal recurrent weights and a forget-gate bias of 1 for a recurrent layer
whose gradient dies in time, a smaller last layer for a loss far above ln C, the
residual branches scaled down for a growing stream — applies it in place with
:func:`initlab.init.apply` and :func:`initlab.init.scale_residual`, and probes again. What
an init cannot fix (a learning rate too large, a NaN in the data, a bias that batch norm
discards) is left, and said.

Example:
    >>> import torch
    >>> from torch import nn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> layers = []
    >>> for _ in range(10):
    ...     layers += [nn.Linear(64, 64), nn.Tanh()]
    >>> model = nn.Sequential(*layers, nn.Linear(64, 10))
    >>> for p in model.parameters():
    ...     _ = nn.init.normal_(p)  # every weight and bias from N(0, 1)
    >>> batch = torch.randn(128, 64), torch.randint(0, 10, (128,))
    >>> result = fix(model, batch, nn.functional.cross_entropy)
    >>> result.before.healthy, result.after.healthy
    (False, True)
    >>> for call in result.applied:  # the first layer's input has been through no tanh
    ...     print(call)
    initlab.init.apply(model, weight='lecun_normal', bias='zeros', include=['0'])
    initlab.init.apply(model, weight="xavier_normal(gain='tanh')", bias='zeros', include=['2', '4', '6', '8', '10', '12', '14', '16', '18'])
    initlab.init.apply(model, weight='xavier_normal(gain=0.1)', bias='zeros', include=['20'])
"""  # noqa: E501

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from initlab import init
from initlab._validation import param_message
from initlab.models import Stack
from initlab.probe.results import LayerStats, Probe, ProbeReport
from initlab.probe.run import probe
from initlab.probe.verdicts import Verdict

__all__ = ["FixResult", "fix"]


@dataclass(frozen=True)
class FixResult:
    """What :func:`fix` did: the report before, the changes, the report after."""

    before: ProbeReport
    after: ProbeReport
    applied: tuple[str, ...]  # each change, as the call that makes it
    left: tuple[Verdict, ...]  # the verdicts before that no init change addresses

    @property
    def healthy(self) -> bool:
        """The model is healthy after the fix."""
        return self.after.healthy

    def __str__(self) -> str:
        lines = [f"before: {_summary(self.before[0])}"]
        lines += [f"applied: {call}" for call in self.applied] or ["applied: nothing"]
        lines += [f"left: {v.kind}: {v.advice}" for v in self.left]
        lines.append(f"after: {_summary(self.after[0])}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"FixResult(before={_summary(self.before[0])!r}, applied={len(self.applied)}, "
            f"left={len(self.left)}, after={_summary(self.after[0])!r})"
        )

    def _repr_html_(self) -> str:
        """In a notebook: what was wrong, each change as its call, what is left, and the
        report after the fix (its verdicts and layers)."""
        from initlab._repr import box, esc, paragraphs

        changes = "".join(f"<li><code>{esc(call)}</code></li>" for call in self.applied)
        left = "".join(f"<li>{esc(v.kind)}: {esc(v.advice)}</li>" for v in self.left)
        body = (
            paragraphs([f"Before: {_summary(self.before[0])}."])
            + (
                f"<p>Applied:</p><ul>{changes}</ul>"
                if changes
                else paragraphs(["Applied: nothing."])
            )
            + (f"<p>Left (no init change addresses these):</p><ul>{left}</ul>" if left else "")
            + paragraphs([f"After: {_summary(self.after[0])}."])
            + self.after._repr_html_()
        )
        return box("FixResult", body)


def _summary(p: Probe) -> str:
    kinds = sorted({v.kind for v in p.problems})
    return "healthy" if not kinds else ", ".join(kinds)


# Verdicts an init change addresses, and those it cannot (the learning rate, the data, the
# architecture): these are left, and said.
_NOT_INIT = frozenset({"nonfinite", "diverging", "redundant_bias"})
# std·√fan_in clearly above every standard init (at most 1.7: Xavier with tanh's gain).
_ABOVE_STANDARD = 2.5


def fix(
    model: nn.Module,
    batch: Tensor | tuple[Tensor, Any],
    loss_fn: Callable[..., Tensor] | None = None,
    *,
    generator: torch.Generator | None = None,
    **options: Any,
) -> FixResult:
    """Apply every verdict's fix to ``model`` in place, and probe it again.

    Probes ``model`` on ``batch`` (as :func:`~initlab.probe.probe` does, with ``options``
    passed on), turns each verdict into a change of the weights, makes the changes, and
    probes again. The changes, per verdict:

    * weight_scale, vanishing, exploding, saturated, dead, symmetric: the flagged layers
      get the init their activation calls for (He for ReLU, Xavier with tanh's gain for
      tanh, LeCun otherwise; attention layers Xavier on q, k, v separately; recurrent
      layers Xavier per gate, orthogonal W_hh, forget-gate bias 1), biases 0. A layer
      that already follows that scheme is not touched: its cause is elsewhere.
    * high_loss: the last weight layer starts small (Xavier with gain 0.1), so the
      logits start near 0 and the loss near ln C.
    * attention_collapse: the attention layers as above.
    * vanishing_in_time, exploding_in_time, saturated gates: the recurrent layers as above.
    * residual_growth: each branch's last module scaled (zero γ on a norm, 1/√(branches)
      on a projection; :func:`initlab.init.scale_residual`), and the token parameters
      (cls_token, pos_embed) drawn from N(0, 0.02²) truncated.
    * update_ratio: re-initializing the weights named by weight_scale is its fix; a
      learning rate is not changed here.
    * nonfinite, diverging, redundant_bias: left (in :attr:`FixResult.left`).

    Args:
        model: a plain ``nn.Module`` (not an initlab ``Stack``: use its ``init_members``).
        batch: x, or (x, target), as for :func:`~initlab.probe.probe`.
        loss_fn: the loss, as for :func:`~initlab.probe.probe`.
        generator: the generator every re-draw comes from.
        **options: further keyword arguments of :func:`~initlab.probe.probe`.

    Returns:
        A :class:`FixResult` with both reports and the calls that were made.

    Raises:
        TypeError: ``model`` is an initlab ``Stack`` or not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module) or isinstance(model, Stack):
        got = type(model).__name__
        raise TypeError(
            param_message("fix", "model", "a plain nn.Module (for a Stack: init_members)", got)
        )
    before = probe(model, batch, loss_fn, **options)
    steps, left = _plan(before[0], model)
    applied = []
    for call, run in steps:
        run(model, generator)
        applied.append(call)
    after = probe(model, batch, loss_fn, **options)
    return FixResult(before, after, tuple(applied), tuple(left))


_Step = tuple[str, Callable[[nn.Module, "torch.Generator | None"], object]]


def _plan(report: Probe, model: nn.Module) -> tuple[list[_Step], list[Verdict]]:
    """The changes the report's verdicts call for, grouped by scheme, and the verdicts
    left to other fixes."""
    layers = {s.index: s for s in report.layers}
    chosen: dict[str, LayerStats] = {}  # name → the layer to re-initialize
    broken: set[str] = set()  # dead or symmetric: re-drawn whatever their scale
    head_small = False
    recurrent: set[str] = set()
    attention: set[str] = set()
    residual = False
    left = []
    for v in report.verdicts:
        if v.kind in _NOT_INIT:
            left.append(v)
        elif v.kind in ("weight_scale", "vanishing", "exploding", "saturated", "dead", "symmetric"):
            for i in v.layers:
                chosen[layers[i].name] = layers[i]
                if v.kind in ("dead", "symmetric"):
                    broken.add(layers[i].name)
        elif v.kind == "high_loss" and report.layers:
            head_small = True
        elif v.kind == "update_ratio" and not report.verdict("weight_scale"):
            left.append(v)
        if v.kind in ("vanishing_in_time", "exploding_in_time") or (
            v.kind == "saturated" and not v.layers
        ):
            recurrent.update(r.name for r in report.recurrent)
        if v.kind == "attention_collapse":
            attention.update(a.name for a in report.attention)
        if v.kind == "residual_growth":
            residual = True
    if report.verdict("weight_scale"):
        # Drawn from the same wrong scale, usually: every layer clearly above the standard
        # inits (std·√fan_in 0.6–1.7) goes with the flagged ones, so that none is left
        # behind just under the verdict's threshold (a ResNet's stem at fan-in 9).
        for s in report.layers:
            if s.weight_std * math.sqrt(s.fan_in) > _ABOVE_STANDARD:
                chosen.setdefault(s.name, s)
    for name, s in list(chosen.items()):
        if s.kind == "MultiheadAttention":
            attention.add(name)
            del chosen[name]
        elif s.kind in ("RNN", "LSTM", "GRU"):
            recurrent.add(name)
            del chosen[name]
        elif s.kind in ("Embedding", "EmbeddingBag"):
            del chosen[name]  # a lookup's scale is a free choice: N(0, 1) stays
    if head_small:
        chosen.pop(report.layers[-1].name, None)  # drawn small below, once
    steps: list[_Step] = []
    by_scheme: dict[str, list[str]] = {}
    for name, s in chosen.items():
        if name not in broken and _follows(s):
            continue  # already the scheme its activation calls for: the cause is elsewhere
        # tanh's gain 5/3 makes up for what tanh takes from the layer's input; the first
        # layer's input has been through no tanh, so it gets LeCun's (gain 1).
        first = s.index == report.layers[0].index and (s.activation or "").startswith("tanh")
        by_scheme.setdefault("lecun_normal" if first else _scheme(s.activation), []).append(name)
    for scheme, names in by_scheme.items():
        steps.append(_apply(names, weight=scheme, bias="zeros"))
    if head_small:
        head = report.layers[-1].name
        steps.append(_apply([head], weight="xavier_normal(gain=0.1)", bias="zeros"))
    if attention:
        steps.append(_apply(sorted(attention), weight="xavier_uniform", bias="zeros"))
    if recurrent:
        steps.append(
            _apply(
                sorted(recurrent),
                weight="xavier_uniform",
                bias="zeros",
                recurrent="orthogonal",
                forget_bias=1.0,
            )
        )
    if residual:
        steps += _residual_steps(report, model)
    return steps, left


def _apply(names: Sequence[str], **kwargs: Any) -> _Step:
    """init.apply on the named modules only, as a step and the call that makes it."""
    chosen = list(names)
    shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    call = f"initlab.init.apply(model, {shown}, include={chosen!r})"
    wanted = set(chosen)
    options = dict(kwargs)
    weight = options.pop("weight", None)

    def inside(name: str, module: nn.Module) -> bool:
        # The named modules and what they hold (an attention layer's out_proj); the model
        # itself, when it is the layer, is named by its class in the report.
        name = name or type(module).__name__
        return name in wanted or any(name.startswith(w + ".") for w in wanted)

    def run(model: nn.Module, generator: torch.Generator | None) -> object:
        return init.apply(model, weight, generator=generator, include=inside, **options)

    return call, run


def _residual_steps(report: Probe, model: nn.Module) -> list[_Step]:
    """Scale every branch down: the one each block's output adds (its branch_source), and
    the attention inside each block (a transformer block adds two branches, the attention's
    first, whose output projection is scaled too); re-draw the token parameters."""
    branches = [r.branch_source for r in report.residuals if r.branch_source]
    blocks = [r.name for r in report.residuals]
    for name, module in model.named_modules():
        inside = any(name.startswith(b + ".") for b in blocks)
        if inside and isinstance(module, nn.MultiheadAttention) and name not in branches:
            branches.append(name)
    steps = [_scale(branches)] if branches else []
    token = re.compile("|".join(f"(?:{p})" for p in init.TOKEN_PATTERNS), re.IGNORECASE)
    tokens = [n for n, _ in model.named_parameters() if token.fullmatch(n.rsplit(".", 1)[-1])]
    if tokens:
        steps.append(_tokens())
    return steps


def _scale(branches: list[str]) -> _Step:
    def run(model: nn.Module, generator: torch.Generator | None) -> object:
        return init.scale_residual(model, branches)

    return f"initlab.init.scale_residual(model, {branches!r})", run


def _tokens() -> _Step:
    call = "initlab.init.apply(model, weight=None, bias=None, include=['token'])"

    def run(model: nn.Module, generator: torch.Generator | None) -> object:
        # The loose parameters it does not know are in the report's "unseen" already.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return init.apply(model, None, None, generator=generator, include=["token"])

    return call, run


def _scheme(activation: str | None) -> str:
    """The init an activation calls for, as a spec."""
    base = (activation or "").split("(")[0]
    if base == "relu":
        return "he_normal"
    if base == "leaky_relu":
        slope = (activation or "leaky_relu(0.01)")[len("leaky_relu(") : -1] or "0.01"
        return f"kaiming_normal(a={slope}, nonlinearity='leaky_relu')"
    if base == "tanh":
        return "xavier_normal(gain='tanh')"
    if base == "sigmoid":
        return "xavier_normal"
    return "lecun_normal"


def _follows(s: LayerStats) -> bool:
    """The layer's std·√fan_in is within 20 % of its activation's scheme already."""
    from initlab.probe.verdicts import current_scheme

    return current_scheme(s.activation, [s]) is not None
