"""What the probe returns: per-layer statistics, one member's report, and the report.

:class:`LayerStats` holds what was measured at one weight layer, :class:`Probe` one
member's layers, verdicts and loss, and :class:`ProbeReport` (what :func:`probe` and
:meth:`Watch.report` return) one :class:`Probe` per member: one for a plain model, M for
an initlab ``Stack`` of M members.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Literal, overload

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from initlab.probe.verdicts import Verdict, VerdictKind

__all__ = [
    "AttentionStats",
    "Histogram",
    "LayerStats",
    "NormStats",
    "OutputStats",
    "Probe",
    "ProbeReport",
    "RecurrentStats",
    "ResidualStats",
]


@dataclass(frozen=True, eq=False)
class Histogram:
    """Counts of values in ``len(counts)`` equal bins between ``edges[0]`` and ``edges[-1]``."""

    counts: np.ndarray
    edges: np.ndarray


@dataclass(frozen=True)
class LayerStats:
    """What the probe measured at one weight layer (one member of a stack)."""

    index: int  # 1-based depth among the weight layers
    name: str  # the module's qualified name in the model
    kind: str  # the layer's class, e.g. "Linear", "Conv2d", "StackedLinear"
    activation: str | None  # the φ after it ("relu", "tanh", …, "linear"); None: unknown
    batch_norm: Literal["before", "after"] | None  # batch norm after the layer, where
    units: int  # output features or channels
    fan_in: int
    fan_out: int
    preact_rms: float  # √E[h²] of the layer's output h, over units and examples
    act_mean: float  # mean of the block's output (after φ and any batch norm)
    act_std: float  # its std
    saturated: float  # fraction of φ's outputs in its flat tails (nan: φ cannot saturate)
    dead: float  # fraction of units whose φ output is 0 for every example
    always_positive: float  # fraction of units whose h is > 0 for every example
    grad_rms: float  # √E[(∂loss/∂h)²]
    grad_std: float  # std of ∂loss/∂h
    weight_std: float
    weight_grad_norm: float  # ‖∂loss/∂W‖
    weight_grad_std: float
    grad_weight_ratio: float  # ‖∂loss/∂W‖ / ‖W‖ (inf for W = 0)
    update_weight_ratio: float  # mean ‖ΔW‖/‖W‖ per optimizer step (nan without steps)
    symmetry: float  # fraction of units that duplicate another unit's output
    distinct_units: int  # how many different functions the units compute on the batch
    nonfinite: str  # which of h, ∂h, W, ∂W, b hold NaN or Inf ("" for none)
    forecast_preact_rms: float | None  # the theory's √q for h; None where it does not apply
    forecast_grad_rms: float | None  # the theory's RMS of ∂loss/∂h
    size: int = 0  # values of h per example (C·H·W for a conv): ‖∂loss/∂h‖ = RMS·√size
    act_hist: Histogram | None = field(default=None, compare=False, repr=False)
    grad_hist: Histogram | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class AttentionStats:
    """What the probe measured in one attention module (``nn.MultiheadAttention``): the
    scale of the q, k, v projections, of the attention logits q·k/√d, and how peaked the
    softmax is. Averaged over heads, queries and examples; masked keys do not count."""

    name: str  # the module's qualified name
    heads: int
    keys: int  # the number of keys attended over (the source length)
    q_rms: float  # √E[q²] of the projected queries (before the 1/√d scaling)
    k_rms: float
    v_rms: float
    logit_std: float  # std of q·k/√d over the keys of a query, averaged over queries
    entropy: float  # the softmax's entropy over the keys / ln(unmasked keys): 1 uniform, 0 one-hot
    max_weight: float  # the mean over queries of the largest attention weight
    q_weight_std: float  # the q, k, v projection matrices' std (in_proj split in three)
    k_weight_std: float
    v_weight_std: float


@dataclass(frozen=True)
class RecurrentStats:
    """What the probe measured in one recurrent module (``nn.RNN``, ``nn.LSTM``,
    ``nn.GRU``), from an unrolled replay of its recorded pass (checked against the
    module's own output).

    ``grad_through_time[t]`` is the RMS of ∂(g·h_T)/∂h_t for the top layer: the gradient
    that the last step's ∂loss/∂h_T sends back to step t through the recurrence alone
    (Pascanu et al. 2013). Its per-step factor says how far back the net can learn:
    below 1 it vanishes through time, above 1 it explodes. ``loss_grad`` is the loss's
    own ∂loss/∂h_t per step (direct and recurrent paths together)."""

    name: str
    kind: str  # "LSTM", "GRU", "RNN_TANH" or "RNN_RELU"
    layers: int
    hidden: int
    steps: int  # the sequence length T
    grad_through_time: tuple[float, ...]  # t = 0 … T − 1 (the last equals the seed's RMS)
    time_factor: float  # the fitted change per step going back (nan for T < 2)
    loss_grad: tuple[float, ...]  # RMS of ∂loss/∂h_t of the top layer, t = 0 … T − 1
    gate_saturation: dict[str, float]  # per gate ("input", "forget", "cell", "output";
    # "reset", "update", "new"; "hidden" for a plain RNN): the fraction of its activations
    # in the flat tails of its sigmoid or tanh, over all layers, steps and examples
    gate_mean: dict[str, float]  # per gate, its mean activation (e.g. forget ≈ 0.5 at init)
    hidden_rms: float  # √E[h_t²] of the top layer over all steps


@dataclass(frozen=True)
class NormStats:
    """One normalization layer (BatchNorm, LayerNorm, GroupNorm, RMSNorm, …): the scale
    it receives and passes on, and its affine γ."""

    name: str
    kind: str  # the class name
    in_rms: float  # √E[x²] of its input
    out_rms: float  # √E[y²] of its output
    gamma_rms: float  # √E[γ²] (nan without an affine weight)


@dataclass(frozen=True)
class ResidualStats:
    """One residual addition (a module whose output adds its input back: x + f(x), perhaps
    followed by an activation or a norm): the stream's scale against the branch's. A block
    with two additions (a transformer layer: attention, then the MLP) gives two, in the
    order they run, under the block's name; the second's stream is the first's output."""

    name: str
    stream_in_rms: float  # √E[x²] of the stream the branch is added to (the skip path)
    stream_out_rms: float  # √E[y²] after the addition (the block's output, for its last)
    branch_rms: float  # √E[f(x)²] of the branch added to the stream (nan: not found)
    # The module whose output is the branch (its last weight layer, norm or attention
    # module, found by walking back from the addition), "" when not found: what a
    # residual scaling (zero γ, 1/√(2L)) acts on.
    branch_source: str = ""


@dataclass(frozen=True)
class OutputStats:
    """The model's output on the batch, against what it should be at the start.

    For a classifier (integer labels and one score per class), the cross-entropy of the
    logits and its natural value at init, ln C: logits near 0 give every class 1/C."""

    shape: tuple[int, ...]
    rms: float  # √E[z²] of the output (the logits of a classifier)
    classes: int | None  # C for a classifier, None otherwise
    cross_entropy: float  # of the logits against the labels (nan: not a classifier)
    natural_loss: float  # ln C (ln 2 for one logit with binary labels); nan otherwise


_COLUMNS = [f.name for f in fields(LayerStats) if not f.name.endswith("_hist")]


@dataclass(frozen=True)
class Probe:
    """One member's report: per-layer statistics, the model's verdicts, the loss.

    :class:`ProbeReport` holds one per member. ``verdicts`` is empty for a healthy model.
    ``forward_factor`` and ``backward_factor`` are the fitted change per layer of the RMS
    of h going forward, and of ∂loss/∂h's norm per example going backward (toward the
    input), over the depth path as the depth verdicts read them (embeddings and recurrent
    layers left out): 1 keeps the scale.
    """

    layers: tuple[LayerStats, ...]
    verdicts: tuple[Verdict, ...]
    loss: float  # the loss on the batch (nan when no loss_fn was given)
    loss_after_steps: float  # after ``steps`` optimizer steps on a copy (nan without steps)
    forward_factor: float
    backward_factor: float
    forecast_note: str  # why the forecast is missing, or "" where it is there
    member: int | None = None  # which member of a stack, or None for a plain model
    attention: tuple[AttentionStats, ...] = ()
    recurrent: tuple[RecurrentStats, ...] = ()
    norms: tuple[NormStats, ...] = ()
    residuals: tuple[ResidualStats, ...] = ()
    output: OutputStats | None = None
    # What the probe could not see, each with the reason: "name (Kind): why".
    unseen: tuple[str, ...] = ()
    loss_history: tuple[float, ...] = ()  # Watch: the losses of its earlier reports, then this one

    @property
    def healthy(self) -> bool:
        """No verdict of severity "problem" (advice may remain)."""
        return not self.problems

    @property
    def problems(self) -> tuple[Verdict, ...]:
        """The verdicts of severity "problem": why the network will not train well."""
        return tuple(v for v in self.verdicts if v.severity == "problem")

    def verdict(self, kind: VerdictKind) -> Verdict | None:
        """The first verdict of this kind, or None."""
        return next((v for v in self.verdicts if v.kind == kind), None)

    def to_frame(self) -> pd.DataFrame:
        """One row per layer, one column per statistic."""
        import pandas as pd

        return pd.DataFrame([{c: getattr(s, c) for c in _COLUMNS} for s in self.layers])

    def __repr__(self) -> str:
        from initlab._repr import MAX_REPR, number, short_list

        head = f"Probe(member={self.member}, layers={len(self.layers)}, loss={number(self.loss)}"
        kinds = [repr(k) for k in dict.fromkeys(v.kind for v in self.problems)]
        return head + ", problems=" + short_list(kinds, MAX_REPR - len(head) - 12) + ")"

    def _repr_html_(self) -> str:
        """The report in a notebook: the verdicts with their fixes, then the layers."""
        from initlab._repr import box

        title = "Probe" if self.member is None else f"Probe of member {self.member}"
        return box(title, _probe_html(self))


@dataclass(frozen=True)
class ProbeReport(Sequence[Probe]):
    """The probe's report: one :class:`Probe` per member, in order.

    A plain model has one member (its ``member`` is None); an initlab ``Stack`` of M
    members has M (``member`` 0 to M − 1). The report is a sequence of its members:
    ``len(report)``, ``report[m]``, ``for p in report``. With one member it also reads as
    that member: ``report.layers``, ``report.verdicts``, ``report.verdict("dead")``,
    ``report.to_frame()`` and the other fields of :class:`Probe`; with several, these raise
    a ValueError that says to read ``report[m]``.

    Example:
        >>> import torch
        >>> from initlab.models import mlp
        >>> from initlab.probe import probe
        >>> report = probe(mlp([4, 8, 1], "relu", members=3), torch.randn(16, 4))
        >>> len(report), [p.member for p in report]
        (3, [0, 1, 2])
        >>> report[2].layers[0].units
        8
        >>> report.layers  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: ... holds 3 members, ... Read report[m].layers for member m ...
    """

    members: tuple[Probe, ...]  # one per member of a stack; one (member None) for a model

    def __post_init__(self) -> None:
        if not isinstance(self.members, tuple) or not all(
            isinstance(p, Probe) for p in self.members
        ):
            got = type(self.members).__name__
            if isinstance(self.members, tuple):
                got = "a tuple of " + ", ".join(sorted({type(p).__name__ for p in self.members}))
            raise TypeError(
                f"The 'members' of a ProbeReport must be a tuple of Probe. Got {got} instead."
            )
        if not self.members:
            raise ValueError(
                "The 'members' of a ProbeReport must hold at least one Probe. Got () instead."
            )

    # -- a sequence of its members
    def __len__(self) -> int:
        return len(self.members)

    @overload
    def __getitem__(self, index: int) -> Probe: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Probe, ...]: ...

    def __getitem__(self, index: int | slice) -> Probe | tuple[Probe, ...]:
        if isinstance(index, slice):
            return self.members[index]
        try:
            return self.members[index]
        except IndexError:
            n = len(self.members)
            raise IndexError(
                f"The report has no member {index}: it holds {n} member{'s' if n > 1 else ''}"
                f", report[0] to report[{n - 1}] (or report[-{n}] to report[-1])."
            ) from None

    def __iter__(self) -> Iterator[Probe]:
        return iter(self.members)

    @property
    def healthy(self) -> bool:
        """No verdict for any member."""
        return all(p.healthy for p in self.members)

    # -- the one member's report, where there is one
    def _only(self, name: str) -> Probe:
        if len(self.members) == 1:
            return self.members[0]
        n = len(self.members)
        raise ValueError(
            f"report.{name} reads a report with one member (a plain model's); this report "
            f"holds {n} members, one per member of the stack. Read report[m].{name} for "
            f"member m in 0–{n - 1}, or iterate: for member in report: member.{name}."
        )

    @property
    def layers(self) -> tuple[LayerStats, ...]:
        """The one member's per-layer statistics."""
        return self._only("layers").layers

    @property
    def verdicts(self) -> tuple[Verdict, ...]:
        """The one member's verdicts (empty when healthy)."""
        return self._only("verdicts").verdicts

    @property
    def loss(self) -> float:
        """The loss on the batch (nan when no loss_fn was given)."""
        return self._only("loss").loss

    @property
    def loss_after_steps(self) -> float:
        """The loss after the optimizer steps (nan without steps)."""
        return self._only("loss_after_steps").loss_after_steps

    @property
    def forward_factor(self) -> float:
        """The one member's per-layer change of the RMS of h, going forward."""
        return self._only("forward_factor").forward_factor

    @property
    def backward_factor(self) -> float:
        """The one member's per-layer change of the RMS of ∂loss/∂h, going back."""
        return self._only("backward_factor").backward_factor

    @property
    def forecast_note(self) -> str:
        """Why the forecast is missing, or "" where it is there."""
        return self._only("forecast_note").forecast_note

    @property
    def problems(self) -> tuple[Verdict, ...]:
        """The one member's verdicts of severity "problem"."""
        return self._only("problems").problems

    @property
    def attention(self) -> tuple[AttentionStats, ...]:
        """The one member's attention modules."""
        return self._only("attention").attention

    @property
    def recurrent(self) -> tuple[RecurrentStats, ...]:
        """The one member's recurrent modules."""
        return self._only("recurrent").recurrent

    @property
    def norms(self) -> tuple[NormStats, ...]:
        """The one member's normalization layers."""
        return self._only("norms").norms

    @property
    def residuals(self) -> tuple[ResidualStats, ...]:
        """The one member's residual blocks."""
        return self._only("residuals").residuals

    @property
    def output(self) -> OutputStats | None:
        """The one member's output against its natural loss."""
        return self._only("output").output

    @property
    def unseen(self) -> tuple[str, ...]:
        """What the probe could not see in the model, each with why."""
        return self._only("unseen").unseen

    @property
    def loss_history(self) -> tuple[float, ...]:
        """The losses a Watch was given, oldest first."""
        return self._only("loss_history").loss_history

    def verdict(self, kind: VerdictKind) -> Verdict | None:
        """The one member's first verdict of this kind, or None."""
        return self._only("verdict(kind)").verdict(kind)

    def to_frame(self) -> pd.DataFrame:
        """The one member's table: one row per layer, one column per statistic."""
        return self._only("to_frame()").to_frame()

    def __repr__(self) -> str:
        from initlab._repr import MAX_REPR, short_list

        depth = max(len(p.layers) for p in self.members)  # the same for every member
        head = f"ProbeReport(members={len(self.members)}, layers={depth}"
        kinds = [repr(k) for k in dict.fromkeys(v.kind for p in self for v in p.problems)]
        return head + ", problems=" + short_list(kinds, MAX_REPR - len(head) - 12) + ")"

    def _repr_html_(self) -> str:
        """The report in a notebook: for one member its verdicts and layers; for a stack a
        line per member, then each member's report folded (the first few)."""
        from initlab._repr import box, esc, number, table

        n = len(self.members)
        if n == 1:
            return box("ProbeReport", _probe_html(self.members[0]))
        rows = [
            [
                p.member,
                "healthy" if p.healthy else ", ".join(dict.fromkeys(v.kind for v in p.problems)),
                number(p.loss),
                number(p.forward_factor),
                number(p.backward_factor),
            ]
            for p in self.members
        ]
        sick = sum(not p.healthy for p in self.members)
        body = f"<p>{n} members, {sick} with problems.</p>" + table(
            ["member", "problems", "loss", "forward ×/layer", "backward ×/layer"], rows
        )
        shown = _FOLDED_MEMBERS
        for p in self.members[:shown]:
            body += f"<details><summary>member {esc(p.member)}</summary>{_probe_html(p)}</details>"
        if n > shown:
            body += f"<p>Members {shown}–{n - 1}: read report[m] for member m.</p>"
        return box("ProbeReport", body)


#: How many members of a stack a ProbeReport's HTML view details.
_FOLDED_MEMBERS = 8

# The per-layer columns of the HTML view: (header, field, its forecast field or None).
_HTML_COLUMNS = (
    ("h rms", "preact_rms", "forecast_preact_rms"),
    ("∂h rms", "grad_rms", "forecast_grad_rms"),
    ("saturated", "saturated", None),
    ("dead", "dead", None),
    ("symmetric", "symmetry", None),
    ("‖∇W‖/‖W‖", "grad_weight_ratio", None),
    ("‖ΔW‖/‖W‖", "update_weight_ratio", None),
)


def _probe_html(p: Probe) -> str:
    """One member's verdicts (each with its evidence and fix) and its per-layer table."""
    from initlab._repr import esc, number, table

    if p.verdicts:
        items = "".join(
            f"<li><b>{esc(v.kind)}</b>{' (advice)' if v.severity != 'problem' else ''}: "
            f"{esc(v.evidence)} <i>Fix:</i> {esc(v.advice)}</li>"
            for v in p.verdicts
        )
        verdicts = f"<ul>{items}</ul>"
    else:
        verdicts = "<p><b>healthy</b>: no verdict.</p>"
    lines = []
    if p.loss == p.loss:
        lines.append(f"loss {number(p.loss)}")
    if p.loss_after_steps == p.loss_after_steps:
        lines.append(f"after the steps {number(p.loss_after_steps)}")
    lines.append(
        f"per layer, the signal changes ×{number(p.forward_factor)} going forward, the "
        f"gradient ×{number(p.backward_factor)} going back"
    )
    summary = f"<p>{esc('; '.join(lines))}.</p>"
    forecasts = any(s.forecast_preact_rms is not None for s in p.layers)
    header = ["layer", "name", "kind", "φ", "units"]
    for title, _, forecast in _HTML_COLUMNS:
        header.append(title)
        if forecast is not None and forecasts:
            header.append(f"{title} (theory)")
    rows = []
    for s in p.layers:
        row: list[object] = [s.index, s.name, s.kind, s.activation or "?", s.units]
        for _, name, forecast in _HTML_COLUMNS:
            row.append(number(getattr(s, name), nan="–"))
            if forecast is not None and forecasts:
                row.append(number(getattr(s, forecast), nan="–"))
        rows.append(row)
    note = f"<p>{esc(p.forecast_note)}</p>" if p.forecast_note else ""
    unseen = f"<p>Not measured: {esc('; '.join(p.unseen))}</p>" if p.unseen else ""
    return verdicts + summary + table(header, rows, limit=60) + note + unseen
