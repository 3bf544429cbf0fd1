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

__all__ = ["Histogram", "LayerStats", "Probe", "ProbeReport"]


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
    act_hist: Histogram | None = field(default=None, compare=False, repr=False)
    grad_hist: Histogram | None = field(default=None, compare=False, repr=False)


_COLUMNS = [f.name for f in fields(LayerStats) if not f.name.endswith("_hist")]


@dataclass(frozen=True)
class Probe:
    """One member's report: per-layer statistics, the model's verdicts, the loss.

    :class:`ProbeReport` holds one per member. ``verdicts`` is empty for a healthy model.
    ``forward_factor`` and ``backward_factor`` are the geometric-mean change of the RMS of
    h per layer going forward, and of ∂loss/∂h per layer going backward (toward the
    input): 1 keeps the scale.
    """

    layers: tuple[LayerStats, ...]
    verdicts: tuple[Verdict, ...]
    loss: float  # the loss on the batch (nan when no loss_fn was given)
    loss_after_steps: float  # after ``steps`` optimizer steps on a copy (nan without steps)
    forward_factor: float
    backward_factor: float
    forecast_note: str  # why the forecast is missing, or "" where it is there
    member: int | None = None  # which member of a stack, or None for a plain model

    @property
    def healthy(self) -> bool:
        """No verdict."""
        return not self.verdicts

    def verdict(self, kind: VerdictKind) -> Verdict | None:
        """The first verdict of this kind, or None."""
        return next((v for v in self.verdicts if v.kind == kind), None)

    def to_frame(self) -> pd.DataFrame:
        """One row per layer, one column per statistic."""
        import pandas as pd

        return pd.DataFrame([{c: getattr(s, c) for c in _COLUMNS} for s in self.layers])


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

    def verdict(self, kind: VerdictKind) -> Verdict | None:
        """The one member's first verdict of this kind, or None."""
        return self._only("verdict(kind)").verdict(kind)

    def to_frame(self) -> pd.DataFrame:
        """The one member's table: one row per layer, one column per statistic."""
        return self._only("to_frame()").to_frame()
