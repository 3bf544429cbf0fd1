"""Figures a person would rather look at than read: loss curves, decision boundaries, the
probe, and the probe's history under :class:`~initlab.probe.Watch`.

Every ``draw_*`` function returns a :class:`matplotlib.figure.Figure` built directly (not
through pyplot), so the library never switches or touches the user's matplotlib backend:
a notebook shows the figure inline, and ``savefig`` renders it off-screen. The other
functions save a figure and return its path. Nothing is shown on screen. A figure is
saved to a hidden temporary file beside its path (``.NAME.XXXX.png.part``) and renamed
into place, so a run killed while saving leaves the old file or none, never a truncated
one (see :mod:`initlab._io`); it may leave the hidden temporary, which nothing reads
(see :mod:`initlab.report.html`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor

from initlab._io import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from initlab.probe import Probe, ProbeReport
    from initlab.surfaces import DecisionMap

__all__ = [
    "OKABE_ITO",
    "decision_boundaries",
    "draw_decision_boundaries",
    "draw_histogram_heatmap",
    "draw_loss_curves",
    "draw_probe",
    "draw_update_ratios",
    "loss_curves",
    "probe_figure",
    "subplots",
]

DPI = 110  # the figures' resolution: a page's 960 px column holds WIDTH inches at it
WIDTH = 8.7  # the widest figure, in inches, so that its text stays readable on a page


def subplots(
    nrows: int = 1,
    ncols: int = 1,
    *,
    figsize: tuple[float, float] = (7.0, 4.2),
    dpi: float = DPI,
    layout: Literal["constrained", "compressed", "tight"] | None = None,
    **kwargs: Any,
) -> tuple[Figure, Any]:
    """A :class:`~matplotlib.figure.Figure` and its axes, as ``pyplot.subplots`` returns
    them, built without pyplot: no backend is chosen or switched, and nothing is kept in
    pyplot's list of open figures (so nothing needs closing).

    Args:
        nrows, ncols, kwargs: as for :meth:`matplotlib.figure.Figure.subplots`
            (``sharex``, ``squeeze``, ``width_ratios``, ``gridspec_kw`` …).
        figsize: width and height in inches (at most :data:`WIDTH` wide for a page).
        dpi: dots per inch.
        layout: the Figure's layout engine (``"constrained"`` makes room for a legend
            placed ``"outside"`` the axes); none: the page tightens the layout when saving.

    Example:
        >>> fig, axes = subplots(1, 2, figsize=(6, 3))
        >>> type(fig).__name__, len(axes)
        ('Figure', 2)
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout=layout)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _save(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` to ``path`` atomically; the format is ``path``'s suffix (none: PNG,
    with ".png" added, as matplotlib does). A Figure not made by pyplot needs no closing."""
    path = Path(path)
    if not path.suffix:
        path = path.with_name(path.name.rstrip(".") + ".png")
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    with atomic_path(path) as tmp:
        # The temporary name ends in ".part": name the format, or matplotlib would
        # take "part" for it.
        fig.savefig(tmp, format=path.suffix[1:].lower())
    return path


def loss_curves(
    steps: Tensor,
    loss: Tensor,
    labels: Sequence[str],
    path: str | Path,
    *,
    title: str = "cost",
    xlabel: str = "step",
    log: bool = True,
) -> Path:
    """:func:`draw_loss_curves`, saved to ``path`` (PNG, or the suffix's format).

    Args:
        steps, loss, labels, title, xlabel, log: as for :func:`draw_loss_curves`.
        path: where to save; the suffix names the format (none: ``.png`` is added).

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> loss_curves(torch.arange(3), torch.rand(3, 2) + 0.1, ["a", "b"],
        ...             folder / "cost").name
        'cost.png'
    """
    return _save(draw_loss_curves(steps, loss, labels, title, xlabel, log), path)


def draw_loss_curves(
    steps: Tensor,
    loss: Tensor,
    labels: Sequence[str],
    title: str = "cost",
    xlabel: str = "step",
    log: bool = True,
    *,
    heading: str = "",
) -> Figure:
    """One cost curve per member: (S,) steps against (S, M) costs, in Okabe & Ito's
    colour-blind-safe colours (and a dash pattern per cycle of them), the legend beside
    the panel so it covers no curve.

    Non-finite costs (a diverged member, or log(0) in a cost) are left out of the line.

    Args:
        steps: (S,) the x values (steps, epochs, iterations).
        loss: (S, M) one column per member.
        labels: one legend entry per member.
        title: the y axis's label.
        xlabel: the x axis's label.
        log: a log y scale when every finite cost is positive.
        heading: the panel's title.

    Returns:
        A matplotlib figure (for :meth:`initlab.report.html.Report.figure`).

    Example:
        >>> fig = draw_loss_curves(torch.arange(3), torch.tensor([[1.0], [0.5], [0.2]]), ["sgd"])
        >>> fig.axes[0].get_yscale()
        'log'
    """
    fig, ax = subplots(figsize=(8.0 if len(labels) > 1 else 7.0, 4.2))
    x = steps.double().numpy()
    # Yellow (the palette's last) reads poorly on white: six colours, then dashes.
    colours, dashes = OKABE_ITO[:6], ("-", "--", ":", "-.")
    for m, label in enumerate(labels):
        y = loss[:, m].double()
        ax.plot(
            x,
            torch.where(torch.isfinite(y), y, torch.nan).numpy(),
            label=label,
            linewidth=1.6,
            color=colours[m % len(colours)],
            linestyle=dashes[(m // len(colours)) % len(dashes)],
        )
    if log and bool((loss[torch.isfinite(loss)] > 0).all()):
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(title)
    ax.grid(alpha=0.3)
    if heading:
        ax.set_title(heading, fontsize=11)
    if len(labels) > 1:
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(frameon=False, fontsize=9)
    return fig


def decision_boundaries(
    grid: DecisionMap, x: Tensor, y: Tensor, labels: Sequence[str], path: str | Path
) -> Path:
    """:func:`draw_decision_boundaries`, saved to ``path`` (PNG, or the suffix's format)."""
    return _save(draw_decision_boundaries(grid, x, y, labels), path)


def draw_decision_boundaries(grid: DecisionMap, x: Tensor, y: Tensor, labels: Sequence[str]) -> Any:
    """For a 2-D binary problem: each member's decision regions with the points on top.

    Args:
        grid: each member's probability of class 1 over the plane
            (:func:`initlab.surfaces.decision_map`).
        x: (N, 2) the points to show; y: (N,) their labels 0/1.
        labels: one panel title per member.

    Returns:
        A matplotlib figure, one panel per member (orange: class 1), four to a row.

    Example:
        >>> from initlab import models, surfaces
        >>> net = models.mlp([2, 4, 1], "tanh", members=2)
        >>> x, y = torch.randn(30, 2), torch.randint(0, 2, (30,))
        >>> fig = draw_decision_boundaries(surfaces.decision_map(net, x, resolution=20),
        ...                                x, y, ["a", "b"])
        >>> len(fig.axes)
        2
    """
    members = grid.prob.shape[0]
    if len(labels) != members:
        raise ValueError(
            f"draw_decision_boundaries needs one label per member ({members}). Got {len(labels)}."
        )
    cols = min(members, 4)
    rows = math.ceil(members / cols)
    # Four panels to a row at most, within the page's width.
    side = min(3.1, WIDTH / cols)
    fig, axes = subplots(rows, cols, figsize=(side * cols, (side - 0.2) * rows), squeeze=False)
    for m in range(rows * cols):
        ax = axes[m // cols][m % cols]
        ax.axis("off")
        if m >= members:
            continue
        ax.contourf(
            grid.gx.numpy(),
            grid.gy.numpy(),
            (grid.prob[m] > 0.5).double().numpy(),
            levels=[-0.5, 0.5, 1.5],
            colors=["#a9c9ec", "#f4c7a1"],
            alpha=0.8,
        )
        ax.scatter(
            x[:, 0].numpy(),
            x[:, 1].numpy(),
            c=y.numpy(),
            cmap="coolwarm",
            s=7,
            edgecolors="k",
            linewidths=0.2,
        )
        ax.set_title(labels[m], fontsize=9)
    return fig


# Okabe & Ito's colour-blind-safe palette.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")


def probe_figure(
    report: Probe, path: str | Path, *, title: str = "", rows: int = 10, shared: bool = True
) -> Path:
    """:func:`draw_probe`, saved to ``path`` (PNG, or the suffix's format); returns it."""
    return _save(draw_probe(report, title=title, rows=rows, shared=shared), path)


def _chosen(layers: Sequence[Any], rows: int) -> list[Any]:
    """At most ``rows`` of ``layers``, evenly spaced, the first always among them."""
    if rows < 1:
        raise ValueError(f"rows must be a positive number of layers. Got {rows!r}.")
    return list(layers[:: max(1, math.ceil(len(layers) / rows))])


def draw_probe(report: Probe, *, title: str = "", rows: int = 10, shared: bool = True) -> Figure:
    """The probe as a picture: RMS of h and of ∂loss/∂h against depth, measured (solid)
    and forecast by the theory (dashed), and each layer's histogram of its activations and
    of its gradients, one small panel per layer.

    Args:
        report: one member's probe (``initlab.probe.probe(model, x)[0]``), with histograms.
        title: the figure's title.
        rows: at most this many layers in the histogram columns, evenly spaced.
        shared: every layer's histogram on one x axis, in the values' own units, so a
            layer whose signal or gradient vanishes shows as a spike at 0 beside the
            others. False: each layer's values divided by its own RMS (printed beside it),
            which shows each layer's shape but hides how the scale changes with depth.

    Returns:
        A matplotlib figure: the RMS panel on the left, the histograms in two columns.

    Example:
        >>> from initlab import models, probe
        >>> net = models.mlp([8, 16, 16, 4], "tanh")
        >>> fig = draw_probe(probe.probe(net, torch.randn(64, 8))[0])
        >>> len(fig.axes) >= 3
        True
    """
    from matplotlib.figure import Figure

    chosen = _chosen(report.layers, rows)
    n = len(chosen)
    fig = Figure(figsize=(WIDTH, max(4.4, 0.42 * n + 1.4)), dpi=DPI)
    grid = fig.add_gridspec(n, 3, width_ratios=[1.25, 1, 1], hspace=0.12)
    ax = fig.add_subplot(grid[:, 0])
    depth = [s.index for s in report.layers]
    for key, forecast, label, colour in (
        ("preact_rms", "forecast_preact_rms", "activations h", OKABE_ITO[0]),
        ("grad_rms", "forecast_grad_rms", "gradients ∂loss/∂h", OKABE_ITO[3]),
    ):
        values = [getattr(s, key) for s in report.layers]
        ax.plot(depth, values, "o-", color=colour, label=f"{label}, measured", markersize=3)
        expected = [getattr(s, forecast) for s in report.layers]
        if all(v is not None for v in expected):
            ax.plot(depth, expected, "--", color=colour, label=f"{label}, theory", linewidth=1.2)
    finite = [v for s in report.layers for v in (s.preact_rms, s.grad_rms) if v == v and v > 0]
    if finite and max(finite) / min(finite) > 20:
        ax.set_yscale("log")
    ax.set_xlabel("layer (depth)")
    ax.set_ylabel("root mean square")
    ax.set_title("signal and gradient by depth", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=7)
    for col, (attr, what) in enumerate((("act_hist", "activations"), ("grad_hist", "∂loss/∂h"))):
        panels = [fig.add_subplot(grid[k, col + 1]) for k in range(n)]
        spreads = [_spread(s, attr) for s in chosen]
        for k, (s, panel) in enumerate(zip(chosen, panels, strict=True)):
            hist = getattr(s, attr)
            panel.set_yticks([])
            panel.set_ylim(0, 1.05)
            panel.set_ylabel(f"layer {s.index}", rotation=0, ha="right", va="center", fontsize=7)
            if k < n - 1:
                panel.tick_params(labelbottom=False)
            if hist is None or hist.counts.sum() == 0:
                continue
            centres = (hist.edges[:-1] + hist.edges[1:]) / 2
            scale = 1.0 if shared else spreads[k]
            panel.fill_between(
                centres / scale, 0, hist.counts / hist.counts.max(), color=OKABE_ITO[col * 3]
            )
            if not shared:
                panel.text(
                    1.01, 0.3, f"rms {spreads[k]:.2g}", fontsize=6, transform=panel.transAxes
                )
        if shared:
            # One range for every layer: the widest layer's, so the scale shows.
            drawn = [getattr(s, attr) for s in chosen if getattr(s, attr) is not None]
            low = min((float(h.edges[0]) for h in drawn), default=-1.0)
            high = max((float(h.edges[-1]) for h in drawn), default=1.0)
            limits = (low, high) if high > low else (low - 0.5, high + 0.5)
        else:
            limits = (-4.0, 4.0)
        for panel in panels:
            panel.set_xlim(*limits)
            panel.tick_params(labelsize=7)
        panels[0].set_title(f"histograms of {what}", fontsize=10)
        panels[-1].set_xlabel(what if shared else f"{what} ÷ the layer's RMS", fontsize=8)
    verdicts = ", ".join(sorted({v.kind for v in report.verdicts})) or "healthy"
    fig.suptitle(f"{title + ': ' if title else ''}{verdicts}", fontsize=11)
    return fig


def _spread(s: Any, attr: str) -> float:
    """A layer's RMS of its activations (``act_hist``) or of its gradients, 1 where none."""
    spread = math.hypot(s.act_mean, s.act_std) if attr == "act_hist" else s.grad_rms
    return float(spread) if spread > 0 and math.isfinite(spread) else 1.0


def _steps_and_probes(
    history: Mapping[int, Probe | ProbeReport], fn: str
) -> tuple[list[int], list[Any]]:
    """The history's steps, in order, and each step's probe (a one-member report's member)."""
    if not history:
        raise ValueError(
            f"{fn} needs a history of at least one step: {{step: watch.report()}}. Got none."
        )
    steps = sorted(history)
    probes = []
    for step in steps:
        report = history[step]
        members = getattr(report, "members", None)
        if members is not None:
            if len(members) != 1:
                raise ValueError(
                    f"{fn} draws one member: the report at step {step} holds {len(members)}. "
                    "Pass {step: report[m]} for member m."
                )
            report = members[0]
        probes.append(report)
    depth = len(probes[0].layers)
    for step, p in zip(steps, probes, strict=True):
        if len(p.layers) != depth:
            raise ValueError(
                f"{fn} needs the same layers at every step: {depth} at step {steps[0]}, "
                f"{len(p.layers)} at step {step}."
            )
    return steps, probes


UPDATE_GUIDE = 1e-3  # ‖ΔW‖/‖W‖ per step near which a layer learns at a healthy pace


def draw_update_ratios(history: Mapping[int, Probe | ProbeReport], *, title: str = "") -> Figure:
    """Each layer's update-to-weight ratio ‖ΔW‖/‖W‖ against the training step, on a log
    scale, with the 1e-3 guide: far below it a layer barely moves, far above it the step
    is too large for it.

    Args:
        history: step → the report a ``Watch(model, updates=True)`` gave after that step's
            ``optimizer.step()`` (a one-member report, or one member's :class:`Probe`).
        title: the figure's title.

    Returns:
        A matplotlib figure of one panel: one line per layer, coloured by depth.

    Raises:
        ValueError: an empty history, a report of several members, layers that change
            between steps, or no step with a measured ratio (the Watch needs
            ``updates=True`` and its report must come after ``optimizer.step()``).

    Example:
        >>> from torch import nn
        >>> from initlab.probe import Watch
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        >>> opt, watch, history = torch.optim.SGD(net.parameters(), lr=0.1), Watch(
        ...     net, updates=True), {}
        >>> for step in range(3):
        ...     with watch:
        ...         net(torch.randn(16, 4)).pow(2).mean().backward()
        ...     opt.step()
        ...     history[step] = watch.report()
        >>> len(draw_update_ratios(history).axes[0].lines)  # two layers and the guide
        3
    """
    steps, probes = _steps_and_probes(history, "draw_update_ratios")
    ratios = np.array([[s.update_weight_ratio for s in p.layers] for p in probes], dtype=float)
    if not (np.isfinite(ratios) & (ratios > 0)).any():
        raise ValueError(
            "draw_update_ratios found no measured ‖ΔW‖/‖W‖ in the history: make the Watch "
            "with updates=True and call watch.report() after optimizer.step()."
        )
    fig, ax = subplots(figsize=(7.2, 4.2))
    layers = probes[0].layers
    colours = _depth_colours(len(layers))
    for i, s in enumerate(layers):
        y = np.where(np.isfinite(ratios[:, i]) & (ratios[:, i] > 0), ratios[:, i], np.nan)
        ax.plot(steps, y, "o-", ms=2.5, lw=1.4, color=colours[i], label=f"layer {s.index}")
    ax.axhline(UPDATE_GUIDE, color="grey", ls=":", lw=1.2, label="1e-3 (guide)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("update : weight  ‖ΔW‖/‖W‖")
    ax.set_title(title or "How far each step moves each layer's weights", fontsize=11)
    ax.grid(alpha=0.3, which="both")
    # Beside the panel, not over the lines.
    ax.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _depth_colours(n: int) -> list[Any]:
    """Okabe–Ito for a few layers; a sequential map (shallow dark, deep light) for more."""
    if n <= len(OKABE_ITO):
        return list(OKABE_ITO[:n])
    from matplotlib import colormaps

    return [colormaps["cividis"](v) for v in np.linspace(0.0, 0.9, n)]


def draw_histogram_heatmap(
    history: Mapping[int, Probe | ProbeReport],
    *,
    kind: str = "activations",
    rows: int = 6,
    bins: int = 60,
    title: str = "",
) -> Figure:
    """Each layer's histogram over the training steps: one panel per layer (rows), the
    step across, the value up, the colour the share of the layer's values in that bin.
    Every panel has the same value axis, so a layer whose values shrink or spread shows.

    Each step's histogram is re-binned onto ``bins`` common bins, its counts spread
    evenly within each of its own bins (exact for the mass in every bin of the original).

    Args:
        history: step → the report a ``Watch(model, histograms=True)`` gave at that step.
        kind: ``"activations"`` (the blocks' outputs) or ``"gradients"`` (∂loss/∂h).
        rows: at most this many layers, evenly spaced.
        bins: the common bins of the value axis.
        title: the figure's title.

    Returns:
        A matplotlib figure, one panel per chosen layer and a colour bar.

    Raises:
        ValueError: a bad ``kind``, ``rows`` or ``bins``, an empty history, or a history
            without histograms (make the Watch with ``histograms=True``).
    """
    from matplotlib.colors import LogNorm

    attrs = {"activations": "act_hist", "gradients": "grad_hist"}
    if kind not in attrs:
        raise ValueError(
            f"The 'kind' parameter of draw_histogram_heatmap must be one of {sorted(attrs)}. "
            f"Got {kind!r} instead."
        )
    if not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an integer ≥ 2. Got {bins!r}.")
    steps, probes = _steps_and_probes(history, "draw_histogram_heatmap")
    attr = attrs[kind]
    indices = _chosen(range(len(probes[0].layers)), rows)
    hists = [[getattr(p.layers[i], attr) for p in probes] for i in indices]
    present = [h for row in hists for h in row if h is not None and h.counts.sum() > 0]
    if not present:
        raise ValueError(
            f"draw_histogram_heatmap found no histogram of the {kind} in the history: make "
            "the Watch with histograms=True."
        )
    low = min(float(h.edges[0]) for h in present)
    high = max(float(h.edges[-1]) for h in present)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    x = np.array(steps, dtype=float)
    gaps = np.diff(x) if len(x) > 1 else np.array([1.0])
    x_edges = np.concatenate(([x[0] - gaps[0] / 2], (x[:-1] + x[1:]) / 2, [x[-1] + gaps[-1] / 2]))
    shares = [
        np.stack([_rebin(h, edges) for h in row], axis=1)  # (bins, steps)
        for row in hists
    ]
    positive = [v for share in shares for v in share[share > 0].ravel()]
    norm = LogNorm(vmin=max(min(positive), 1e-4), vmax=max(positive))
    from matplotlib.figure import Figure

    n = len(indices)
    fig = Figure(figsize=(7.6, min(1.0 * n + 1.3, 9.0)), dpi=DPI)
    grid = fig.add_gridspec(n, 2, width_ratios=[1, 0.025], hspace=0.15)
    axes: list[Any] = []
    for k, (i, share) in enumerate(zip(indices, shares, strict=True)):
        ax = fig.add_subplot(grid[k, 0], sharex=axes[0] if axes else None)
        axes.append(ax)
        masked = np.ma.masked_less_equal(share, 0.0)
        image = ax.pcolormesh(x_edges, edges, masked, cmap="viridis", norm=norm, shading="flat")
        ax.set_ylim(low, high)
        ax.set_ylabel(f"layer {probes[0].layers[i].index}", fontsize=8)
        ax.tick_params(labelsize=7, labelbottom=k == n - 1)
    axes[-1].set_xlabel("step")
    what = "activations" if kind == "activations" else "gradients ∂loss/∂h"
    axes[0].set_title(title or f"Histograms of the {what}, layer by layer, over the steps")
    fig.colorbar(image, cax=fig.add_subplot(grid[:, 1]), label="share of the layer's values")
    return fig


def _rebin(hist: Any, edges: np.ndarray) -> np.ndarray:
    """A histogram's share of its values in each of ``edges``' bins (zeros for None)."""
    if hist is None or hist.counts.sum() == 0:
        return np.zeros(len(edges) - 1)
    cumulative = np.concatenate(([0.0], np.cumsum(hist.counts, dtype=float)))
    # Linear between the original edges: counts spread evenly within each original bin.
    at = np.interp(edges, hist.edges.astype(float), cumulative)
    return np.asarray(np.diff(at) / cumulative[-1])
