"""The statistics engine: each recorded tensor reduced to a few numbers per member.

The probe runs during training (:class:`~initlab.probe.Watch`), where each small op's
overhead counts. So each tensor is reduced to a few sums per member as soon as it is
recorded (:class:`_Moments`, :class:`_Forward`), numbers are queued on the device and
read into Python together (:class:`_Reads`), the per-unit counts of same-width layers are
taken together (:func:`_queue_units`), and the statistics of
:class:`~initlab.probe.LayerStats` are then plain arithmetic on those numbers
(:func:`_measure`). Its names are the package's own (not public API).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from initlab.models import StackedConv, StackedLinear
from initlab.probe.layers import _Block, _block_activation, _fans, _parameters, _units
from initlab.probe.results import Histogram
from initlab.probe.verdicts import Thresholds


def _histograms(t: Tensor, bins: int = 40) -> list[Histogram | None]:
    out: list[Histogram | None] = []
    for row in t.reshape(t.shape[0], -1).double():
        finite = row[torch.isfinite(row)]
        if finite.numel() == 0:
            out.append(None)
            continue
        lo, hi = float(finite.min()), float(finite.max())
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        counts, edges = torch.histogram(finite.cpu(), bins=bins, range=(lo, hi))
        out.append(Histogram(counts.numpy(), edges.numpy()))
    return out


@functools.lru_cache(maxsize=16)
def _directions(samples: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    g = torch.Generator(device=device).manual_seed(0)
    r = torch.randn(samples, 2, generator=g, device=device, dtype=torch.float64)
    return r.T.to(dtype).contiguous()


def _projection(h: Tensor, unit_dim: int, across: int | None = None) -> Tensor:
    """Each unit's outputs projected on two random directions: (M, 2, units). ``h`` is
    (M, units, samples) or (M, samples, units), or (samples, units) with ``across`` 0."""
    if across == 0:
        r = _directions(h.shape[0], h.device, h.dtype)
        return (r @ h).unsqueeze(0)
    r = _directions(h.shape[3 - unit_dim], h.device, h.dtype)
    return r @ h if unit_dim == 2 else (h @ r.T).transpose(1, 2)


def _distinct(p: Tensor, tolerance: float) -> Tensor:
    """Distinct units per row of projections p (N, 2, units); NaN counts as distinct.

    Two units compute the same function on the batch when their outputs agree at every
    example. Comparing all pairs costs units²·samples; instead each unit's outputs are
    projected on two random directions and units whose projections agree (relative
    ``tolerance``) are counted as one. Distinct units collide by chance with probability
    about units²·tolerance², negligible at the default 1e-6. (A float32 projection is off
    by ~1e-7 of its scale, so identical units still agree.)
    """
    scale = p.nan_to_num(0.0).abs().amax(dim=(1, 2), keepdim=True)  # NaN: padding
    order = p[:, 0].argsort(dim=1)  # NaN last
    p = torch.gather(p, 2, order.unsqueeze(1).expand(-1, 2, -1))
    same = (p.diff(dim=2).abs() <= tolerance * scale).all(dim=1)
    return p.shape[2] - same.sum(dim=1)


def _saturation(post: Tensor, name: str | None, t: Thresholds) -> Tensor | None:
    """How many of φ's outputs are in its flat tails, per member of (M, units, samples) or
    (M, samples, units), or in all of (samples, units); None for a non-saturating φ."""
    if name in ("tanh", "hardtanh"):
        flat = post.abs() > t.tanh_saturation
    elif name == "sigmoid":
        flat = (post < t.sigmoid_saturation) | (post > 1.0 - t.sigmoid_saturation)
    else:
        return None
    return flat.sum(dim=(1, 2) if flat.dim() == 3 else None, dtype=torch.float64)


def _ratio(total: float, n: int) -> float:
    """total / n, nan for n = 0 (an empty batch)."""
    return total / n if n else math.nan


def _std(deviations: float, n: int) -> float:
    """The sample std (n − 1) from the sum of squared deviations from the mean."""
    if n == 0:
        return math.nan
    var = deviations / max(n - 1, 1)
    return math.sqrt(var) if var > 0 else (var if math.isnan(var) else 0.0)


class _Reads:
    """Numbers queued on the device, read into Python together: each small op, and each
    read, costs more than the arithmetic done afterwards on plain floats. On a GPU the
    report reads once (one sync); on the CPU, where a read waits for nothing, a layer's
    numbers are read as soon as they are queued, so that its tensors can go at once."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.pending: list[Tensor] = []
        self.size = 0

    def add(self, t: Tensor) -> int:
        """Queue a 0-D or 1-D tensor; returns where its first value will be."""
        start = self.size
        self.size += t.shape[0] if t.dim() else 1
        if t.is_cpu and not self.pending:  # nothing to wait for: read it now
            if t.dim():
                self.values += t.tolist()
            else:
                self.values.append(t.item())
        else:
            self.pending.append(t)
        return start

    def read(self) -> list[float]:
        """Every value queued so far."""
        if self.pending:
            parts, self.pending = self.pending, []
            device = parts[0].device
            parts = [
                p.reshape(-1) if p.device == device else p.to(device).reshape(-1) for p in parts
            ]
            self.values += torch.cat(parts).double().tolist()
        return self.values


def _sum_squares(t: Tensor) -> Tensor:
    """Σx² per row of (M, N), as (M,)."""
    rows: Tensor = torch.linalg.vecdot(t, t)
    return rows


# Below this mean square, float32 squares underflow (2⁻¹²⁶) and the sum loses precision.
_TINY_SQUARE = 2.0**-100


# A variance below this share of E[x²] is taken about the mean: E[x²] − E[x]², each
# known to ~1e-7 in float32, would leave it fewer than 5 digits.
_CANCELLATION = 0.01


class _Moments:
    """A tensor's sum, sum of squares and sum of squared deviations from its mean, per
    member: ``t`` is (M, ...) for ``members`` M > 1, any shape for one member. On the CPU
    they are read at once (nothing to wait for) and the tensor let go; elsewhere they are
    queued in ``reads`` until :meth:`settle`.

    Sums run in the tensor's own dtype (float32 for half precision), which statistics
    need no better than: about 1e-7 relative for 10⁴ values, 1e-4 for 10⁷. The deviations
    are Σx² − (Σx)²/n where that keeps 5 digits, and are summed again about the mean
    where it would not (a sigmoid's outputs near 0.5 with a small std); off the CPU, where
    the sums are not read until the report, always about the mean. ``exact`` sums in
    float64 (the input, fed to the forecast); ``total=False`` asks for Σx² only.
    """

    __slots__ = (
        "centred", "deviations", "exact", "finite", "n", "redone", "square", "squares", "t",
        "total", "totals",
    )  # fmt: skip

    def __init__(
        self, t: Tensor, reads: _Reads, members: int, *, total: bool = True, exact: bool = False
    ) -> None:
        self.n = t.numel() // max(members, 1)
        self.exact = exact or t.dtype == torch.float64
        self.centred = False  # the queued squares are the deviations'
        self.totals: list[float] = [math.nan] * members
        self.squares: list[float] = []
        self.deviations: list[float] = [math.nan] * members
        self.finite: list[bool] = [True] * members
        self.redone = False  # the sums were redone in float64
        self.t: Tensor | None = t  # until settled
        self.total = self.square = -1
        # The common case, kept short: it runs for every tensor of every layer in training.
        one = members == 1 and t.dtype == torch.float32 and t.is_cpu and not exact
        if one and self._one(t.reshape(-1), total):
            return
        d = t.reshape(-1) if members == 1 else t.reshape(members, -1)  # 1-D: a BLAS dot
        if self.exact and d.dtype != torch.float64:
            d = d.double()
        if d.dtype not in (torch.float32, torch.float64):
            d = d.float()
        sums = d.sum(dim=-1) if total else None
        if d.is_cpu:  # the common case, read at once
            square = torch.dot(d, d) if d.dim() == 1 else _sum_squares(d)
            self._take(
                sums.reshape(-1).tolist() if sums is not None else None,
                square.reshape(-1).tolist(),
            )
            return
        if sums is not None and not self.exact:
            self.centred = True
            d = d - (sums / max(self.n, 1)).unsqueeze(-1)
        square = torch.dot(d, d) if d.dim() == 1 else _sum_squares(d)
        self.total = reads.add(sums) if sums is not None else -1
        self.square = reads.add(square)

    def _one(self, v: Tensor, total: bool) -> bool:
        """One member's float32 CPU sums, as :meth:`_take` would keep them; False where
        that needs more than the plain sums (non-finite, underflow, cancellation)."""
        q = torch.dot(v, v).item()
        if not self.n * _TINY_SQUARE <= q < math.inf:
            return False
        if total:
            x = v.sum().item()
            dev = q - x * x / max(self.n, 1)
            if not dev >= _CANCELLATION * q:  # also when x is not finite
                return False
            self.totals, self.deviations = [x], [dev]
        self.squares, self.t = [q], None
        return True

    def settle(self, values: list[float]) -> None:
        """Take the queued numbers from ``values``."""
        if self.t is not None:
            m, at, start = len(self.finite), self.total, self.square
            self._take(values[at : at + m] if at >= 0 else None, values[start : start + m])

    def _take(self, totals: list[float] | None, squares: list[float]) -> None:
        """Keep per member the sum (nan when not asked for), the sums of squares, and
        whether every value is finite; then let the tensor go. ``squares`` are the
        deviations' when centred."""
        t, self.t = self.t, None
        assert t is not None
        n, m = max(self.n, 1), len(self.finite)
        low = 0.0 if self.exact else self.n * _TINY_SQUARE
        # A sum of squares is finite exactly when every value is (a sum is too, then).
        if not all(low <= s < math.inf for s in squares) or (
            totals is not None and not all(-math.inf < x < math.inf for x in totals)
        ):
            # Rare: NaN or Inf, or a float32 sum that overflowed or underflowed: float64.
            self.redone = True
            d = t.reshape(m, -1).double()
            self.squares = _sum_squares(d).tolist()
            if totals is not None:
                sums = d.sum(dim=1)
                self.totals = sums.tolist()
                self.deviations = _sum_squares(d - (sums / n).unsqueeze(1)).tolist()
            if not all(math.isfinite(s) for s in self.squares):
                self.finite = torch.isfinite(d).all(dim=1).tolist()
            return
        if totals is None:
            self.squares = squares
            return
        self.totals = totals
        if self.centred:
            self.deviations = squares
            self.squares = [q + x * x / n for q, x in zip(squares, totals, strict=True)]
            return
        self.squares = squares
        self.deviations = [q - x * x / n for q, x in zip(squares, totals, strict=True)]
        if not self.exact and any(
            v < _CANCELLATION * q for v, q in zip(self.deviations, self.squares, strict=True)
        ):
            d = t.reshape(m, -1)
            d = d if d.dtype == torch.float32 else d.float()
            centred = d - (torch.tensor(totals, device=d.device) / n).unsqueeze(1)
            self.deviations = _sum_squares(centred).tolist()


class _Forward:
    """A block's activations, measured as the forward pass leaves them: the moments of h
    and of the block's output, φ's saturation and, per unit, the extremes and the
    projection for the symmetry (layers of one width are joined at the report)."""

    def __init__(self, block: _Block, reads: _Reads, t: Thresholds, keep: bool) -> None:
        assert block.h is not None
        mm, layout, h = block.members, block.layout, block.h
        self.name, post = _block_activation(block)
        last = block.out if block.out is not None else h
        if layout == "linear" and mm == 1 and not keep:
            # (samples, units) as it lies in memory; the reductions keep a member dim. The
            # modules after the layer may change the width (e.g. GLU halves it).
            unit_dim = 2
            h_units = h if h.dim() == 2 else h.reshape(-1, h.shape[-1])
            out_units = last if last.dim() == 2 else last.reshape(-1, last.shape[-1])
            post_units = (
                out_units if post is None or post is last else post.reshape(-1, post.shape[-1])
            )
            across = 0
        else:
            out_units, unit_dim = _units(last, layout, mm)
            h_units = out_units if h is last else _units(h, layout, mm)[0]
            post_units = out_units if post is None or post is last else _units(post, layout, mm)[0]
            across = 3 - unit_dim  # the samples' dimension
        self.unit_dim, self.across, self.tolerance = unit_dim, across, t.symmetry_tolerance
        self.units = h_units.shape[unit_dim if across else 1]
        # Values of h per example (per row of the batch's leading dimension): C·H·W for a
        # conv, the features (times the positions of a sequence) for the rest.
        if layout == "stack_linear":
            self.size = h.shape[-1]
        elif layout == "stack_conv":
            self.size = h.numel() // max(h.shape[0] * mm, 1)
        else:
            self.size = h.numel() // max(h.shape[0], 1) if h.dim() >= 2 else h.numel()
        self.n_h, self.n_out = h_units.numel() // mm, out_units.numel() // mm
        self.n_post = post_units.numel() // mm
        # One member's moments need no view: the whole tensor is reduced.
        self.h = _Moments(h if mm == 1 else h_units, reads, mm, total=False)
        self.out = _Moments(last if mm == 1 else out_units, reads, mm)
        saturated = _saturation(post_units, self.name, t)
        self.saturated = reads.add(saturated) if saturated is not None else None
        if h_units.shape[across] and post_units.shape[across]:
            post_max = post_units.amax(dim=across, keepdim=not across)
            # ReLU's outputs are ≥ 0: a unit is dead when its largest output is 0.
            post_min = post_max if self.name == "relu" else post_units.amin(across, not across)
            self.extremes = (h_units.amin(dim=across, keepdim=not across), post_min, post_max)
        else:  # an empty batch tells nothing: no unit counts as positive, dead or a copy
            unknown = torch.full((mm, self.units), math.nan, device=h.device)
            self.extremes = (unknown, unknown, unknown)
        wide = h_units if h.dtype in (torch.float32, torch.float64) else h_units.float()
        self.projection = _projection(wide, unit_dim, across)  # (M, 2, units)
        if not h_units.shape[across]:
            self.projection = torch.full_like(self.projection, math.nan)
        self.distinct: list[float] | None = None  # where h needed the float64 symmetry
        self.h_units: Tensor | None = h_units  # until settled
        self.post = post_units if keep else None  # for the histogram
        if self.h.t is None:  # read already (on the CPU)
            self.settle([])

    def settle(self, values: list[float]) -> None:
        self.h.settle(values)
        self.out.settle(values)
        if self.h.redone and self.h_units is not None:  # NaN/Inf or huge values in h
            h = torch.nan_to_num(self.h_units.double())
            p = _projection(h, self.unit_dim, self.across)
            self.distinct = _distinct(p, self.tolerance).tolist()
        self.h_units = None


def _measure_forward(block: _Block, reads: _Reads, t: Thresholds, keep: bool) -> None:
    """Measure the block's activations and let them go (the first layer keeps its input,
    for the forecast)."""
    assert block.h is not None
    block.out_numel = (block.out if block.out is not None else block.h).numel()
    block.forward = _Forward(block, reads, t, keep)
    block.h = block.post = block.out = block.next_x = None
    if block.index:
        block.x = None


def _measure_grad(block: _Block, grad: Tensor, reads: _Reads, keep: bool) -> None:
    """Measure ∂loss/∂h (and let it go, unless kept for the histogram)."""
    mm = block.members
    g = _units(grad, block.layout, mm)[0] if mm > 1 or keep else grad
    block.grad = _Moments(g, reads, mm)
    block.h_grad = g if keep else None


@dataclass(eq=False)
class _Units:
    """Where the per-unit counts of one block will be in the read."""

    positive: int
    dead: int
    distinct: int
    padding: int  # units added to join a wider group, counted as distinct


def _joined(parts: Sequence[Tensor], width: int) -> Tensor:
    """``parts`` concatenated along dim 0, the last dim padded to ``width`` with NaN."""
    padded = []
    for p in parts:
        short = width - p.shape[-1]
        padded.append(F.pad(p, (0, short), value=math.nan) if short else p)
    return torch.cat(padded)


def _queue_units(blocks: list[_Block], reads: _Reads) -> list[_Units]:
    """Always-positive, dead and distinct units per block. The per-unit numbers of all
    layers are joined, narrower ones padded with NaN (neither positive, nor dead, nor
    equal to anything), so that each count costs a few ops for the whole model."""
    forwards = [b.forward for b in blocks if b.forward is not None]
    groups: dict[torch.device, list[int]] = {}
    for i, f in enumerate(forwards):
        groups.setdefault(f.projection.device, []).append(i)
    where: list[_Units] = [_Units(0, 0, 0, 0) for _ in forwards]
    for indices in groups.values():
        group = [forwards[i] for i in indices]
        # φ may change the width (GLU): pad every per-unit row to the widest.
        width = max(t.shape[-1] for f in group for t in (*f.extremes, f.projection))

        h_min, post_min, post_max = (
            _joined(parts, width) for parts in zip(*(f.extremes for f in group), strict=True)
        )
        positive = reads.add((h_min > 0).sum(dim=1))
        dead = reads.add(((post_min == 0) & (post_max == 0)).sum(dim=1))
        projection = _joined([f.projection for f in group], width)
        distinct = reads.add(_distinct(projection, group[0].tolerance))
        start = 0
        for i, f in zip(indices, group, strict=True):
            where[i] = _Units(positive + start, dead + start, distinct + start, width - f.units)
            start += f.projection.shape[0]
    return where


@dataclass(eq=False)
class _Measured:
    """The report's numbers: per block, per member, the fields of :class:`LayerStats`;
    and for the forecast, per block the weights' and biases' mean squares per member,
    and E[x²] of the first layer's input per member (one value for a shared input)."""

    rows: list[list[dict[str, Any]]]
    weight_ms: list[list[float]]
    bias_ms: list[list[float]]
    input_ms: list[float]


def _input_moments(block: _Block, reads: _Reads) -> _Moments:
    """The first layer's input, per member, or as one for a shared input."""
    x, module, mm = block.x, block.module, block.members
    assert x is not None
    if isinstance(module, StackedConv) and x.shape[1] == module.in_channels * mm:
        return _Moments(_units(x, "stack_conv", mm)[0], reads, mm, total=False, exact=True)
    if isinstance(module, StackedLinear) and x.dim() == 3:
        return _Moments(x, reads, mm, total=False, exact=True)
    return _Moments(x, reads, 1, total=False, exact=True)


def _measure(
    blocks: list[_Block], t: Thresholds, histograms: bool, reads: _Reads, inputs: bool
) -> _Measured:
    """Every statistic of :class:`LayerStats`, per block and member.

    The report runs during training (:class:`Watch`), where each small op's overhead
    counts: each tensor is reduced to a few numbers per member, the per-unit counts of
    same-width layers are taken together, and the numbers are read at once; the
    statistics are then plain arithmetic on them.
    """
    for block in blocks:
        if block.forward is None:  # the last layer, or no backward pass ran
            _measure_forward(block, reads, t, histograms)
    params = []
    with torch.no_grad():
        for block in blocks:
            # (M, …) for a stacked layer; any shape for one member: no view needed.
            weight, grad, bias = _parameters(block.module)
            mm = block.members
            params.append(
                (
                    _Moments(weight, reads, mm),
                    _Moments(grad, reads, mm) if grad is not None else None,
                    _Moments(bias, reads, mm, total=False) if isinstance(bias, Tensor) else None,
                )
            )
        x = _input_moments(blocks[0], reads) if inputs else None
        units = _queue_units(blocks, reads)
        values = reads.read()
    members = max(b.members for b in blocks)
    measured = _Measured([], [], [], [])
    if x is not None:
        x.settle(values)
        measured.input_ms = [_ratio(s, x.n) for s in x.squares]
    for i, (block, (w, wg, b), u) in enumerate(zip(blocks, params, units, strict=True)):
        for moments in (block.forward, block.grad, w, wg, b):
            if moments is not None:
                moments.settle(values)
        rows = _rows(i, block, (w, wg, b), u, values)
        mm = block.members
        weight_ms = [s / w.n for s in w.squares]
        bias_ms = [s / b.n for s in b.squares] if b is not None else [0.0] * mm
        if mm != members:  # a plain layer inside a stack's model: the same for every member
            rows, weight_ms, bias_ms = rows * members, weight_ms * members, bias_ms * members
        measured.rows.append(rows)
        measured.weight_ms.append(weight_ms)
        measured.bias_ms.append(bias_ms)
    return measured


def _rows(
    i: int,
    block: _Block,
    params: tuple[_Moments, _Moments | None, _Moments | None],
    u: _Units,
    values: list[float],
) -> list[dict[str, Any]]:
    """The fields of :class:`LayerStats` for each member of block ``i``, from its settled
    moments (weight, its gradient, bias) and the per-unit counts read into ``values``."""
    f, g = block.forward, block.grad
    w, wg, b = params
    assert f is not None
    nan = math.nan
    mm, n, n_w = block.members, f.units, w.n
    fan_in, fan_out = _fans(block.module)
    kind = type(block.module).__name__
    act_hist = _histograms(f.post) if f.post is not None else [None] * mm
    grad_hist = _histograms(block.h_grad) if block.h_grad is not None else [None] * mm
    distinct = (
        [d - u.padding for d in values[u.distinct : u.distinct + mm]]
        if f.distinct is None
        else f.distinct
    )
    rows = []
    for m in range(mm):
        g_dev, g_sq, g_ok = (g.deviations[m], g.squares[m], g.finite[m]) if g else (nan, nan, True)
        wg_dev, wg_sq, wg_ok = (
            (wg.deviations[m], wg.squares[m], wg.finite[m]) if wg else (nan, nan, True)
        )
        w_norm, wg_norm = math.sqrt(w.squares[m]), math.sqrt(wg_sq)
        o_sum = f.out.totals[m]
        ok = (
            ("h", f.h.finite[m]),
            ("∂h", g_ok),
            ("W", w.finite[m]),
            ("∂W", wg_ok),
            ("b", b.finite[m] if b else True),
        )
        sat = _ratio(values[f.saturated + m], f.n_post) if f.saturated is not None else nan
        rows.append(
            {
                "index": i + 1,
                "name": block.name,
                "kind": kind,
                "activation": f.name,
                "batch_norm": block.batch_norm,
                "units": n,
                "size": f.size,
                "fan_in": fan_in,
                "fan_out": fan_out,
                "preact_rms": math.sqrt(_ratio(f.h.squares[m], f.n_h)),
                "act_mean": _ratio(o_sum, f.n_out),
                "act_std": _std(f.out.deviations[m], f.n_out),
                "saturated": sat,
                "dead": values[u.dead + m] / n,
                "always_positive": values[u.positive + m] / n,
                "grad_rms": math.sqrt(_ratio(g_sq, f.n_h)),
                "grad_std": _std(g_dev, f.n_h),
                "weight_std": _std(w.deviations[m], n_w),
                "weight_grad_norm": wg_norm,
                "weight_grad_std": _std(wg_dev, n_w),
                "grad_weight_ratio": (
                    0.0 if wg_norm == 0 else (wg_norm / w_norm if w_norm > 0 else math.inf)
                ),
                "update_weight_ratio": nan,  # filled in by probe(steps > 0)
                "symmetry": 1.0 - distinct[m] / n,
                "distinct_units": int(distinct[m]),
                "nonfinite": ", ".join(k for k, fine in ok if not fine),
                "act_hist": act_hist[m],
                "grad_hist": grad_hist[m],
            }
        )
    return rows
