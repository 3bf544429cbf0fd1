"""Figures a person would rather look at than read: loss curves, decision boundaries.

Every function draws with matplotlib's off-screen Agg backend, saves a PNG, and returns
its path. Nothing is shown on screen. A figure is saved to a hidden temporary file
beside its path (``.NAME.XXXX.png.part``) and renamed into place, so a run killed while
saving leaves the old file or none, never a truncated one (see :mod:`initlab._io`); it may
leave the hidden temporary, which nothing reads (see :mod:`initlab.report.html`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from initlab._io import atomic_path

if TYPE_CHECKING:
    from initlab.probe import Probe
    from initlab.surfaces import DecisionMap

__all__ = [
    "OKABE_ITO",
    "decision_boundaries",
    "draw_decision_boundaries",
    "draw_loss_curves",
    "draw_probe",
    "loss_curves",
    "probe_figure",
]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: str | Path) -> Path:
    """Save ``fig`` to ``path`` atomically and close it; the format is ``path``'s suffix
    (none: PNG, with ".png" added, as matplotlib does)."""
    path = Path(path)
    if not path.suffix:
        path = path.with_name(path.name.rstrip(".") + ".png")
    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            # The temporary name ends in ".part": name the format, or matplotlib would
            # take "part" for it.
            fig.savefig(tmp, format=path.suffix[1:].lower())
    finally:
        plt.close(fig)
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
    return _save(_pyplot(), draw_loss_curves(steps, loss, labels, title, xlabel, log), path)


def draw_loss_curves(
    steps: Tensor,
    loss: Tensor,
    labels: Sequence[str],
    title: str = "cost",
    xlabel: str = "step",
    log: bool = True,
) -> Any:
    """One cost curve per member: (S,) steps against (S, M) costs.

    Non-finite costs (a diverged member, or log(0) in a cost) are left out of the line.

    Args:
        steps: (S,) the x values (steps, epochs, iterations).
        loss: (S, M) one column per member.
        labels: one legend entry per member.
        title: the y axis's label.
        xlabel: the x axis's label.
        log: a log y scale when every finite cost is positive.

    Returns:
        A matplotlib figure (for :meth:`initlab.report.html.Report.figure`).

    Example:
        >>> fig = draw_loss_curves(torch.arange(3), torch.tensor([[1.0], [0.5], [0.2]]), ["sgd"])
        >>> fig.axes[0].get_yscale()
        'log'
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    x = steps.double().numpy()
    for m, label in enumerate(labels):
        y = loss[:, m].double()
        ax.plot(x, torch.where(torch.isfinite(y), y, torch.nan).numpy(), label=label, linewidth=1.6)
    if log and bool((loss[torch.isfinite(loss)] > 0).all()):
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=9)
    return fig


def decision_boundaries(
    grid: DecisionMap, x: Tensor, y: Tensor, labels: Sequence[str], path: str | Path
) -> Path:
    """:func:`draw_decision_boundaries`, saved to ``path`` (PNG, or the suffix's format)."""
    return _save(_pyplot(), draw_decision_boundaries(grid, x, y, labels), path)


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
    plt = _pyplot()
    members = grid.prob.shape[0]
    if len(labels) != members:
        raise ValueError(
            f"draw_decision_boundaries needs one label per member ({members}). Got {len(labels)}."
        )
    cols = min(members, 4)
    rows = math.ceil(members / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.1 * rows), dpi=120, squeeze=False)
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


def probe_figure(report: Probe, path: str | Path, *, title: str = "", rows: int = 10) -> Path:
    """:func:`draw_probe`, saved to ``path`` (PNG, or the suffix's format); returns it."""
    return _save(_pyplot(), draw_probe(report, title=title, rows=rows), path)


def draw_probe(report: Probe, *, title: str = "", rows: int = 10) -> Any:
    """The probe as a picture: RMS of h and of ∂loss/∂h against depth, measured (solid)
    and forecast by the theory (dashed), and a ridge of per-layer histograms of the
    activations and of the gradients.

    Args:
        report: one member's probe (``initlab.probe.probe(model, x)[0]``), with histograms.
        title: the figure's title.
        rows: at most this many layers in the ridges, evenly spaced.

    Returns:
        A matplotlib figure of three panels.

    Example:
        >>> from initlab import models, probe
        >>> net = models.mlp([8, 16, 16, 4], "tanh")
        >>> fig = draw_probe(probe.probe(net, torch.randn(64, 8))[0])
        >>> len(fig.axes) >= 3
        True
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), dpi=120, width_ratios=[1.2, 1, 1])
    depth = [s.index for s in report.layers]
    ax = axes[0]
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
    ax.set_title("scale of signal and gradient by depth")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    step = max(1, math.ceil(len(report.layers) / rows))
    chosen = report.layers[::step]
    panels = ((axes[1], "act_hist", "activations"), (axes[2], "grad_hist", "∂loss/∂h"))
    for ax, attr, what in panels:
        for k, s in enumerate(chosen):
            hist = getattr(s, attr)
            if hist is None or hist.counts.sum() == 0:
                continue
            centres = (hist.edges[:-1] + hist.edges[1:]) / 2
            height = hist.counts / hist.counts.max() * 0.9
            colour = OKABE_ITO[k % len(OKABE_ITO)]
            # Each layer on its own baseline, x in units of that layer's own RMS, so a
            # shrinking layer keeps its shape on the page; the RMS is printed beside it.
            spread = math.hypot(s.act_mean, s.act_std) if attr == "act_hist" else s.grad_rms
            spread = spread if spread > 0 and math.isfinite(spread) else 1.0
            ax.fill_between(centres / spread, -k, -k + height, color=colour, alpha=0.6)
            ax.text(
                1.02, -k + 0.2, f"rms {spread:.2g}", fontsize=7, transform=ax.get_yaxis_transform()
            )
        ax.set_yticks([-k for k in range(len(chosen))], [f"layer {s.index}" for s in chosen])
        ax.set_xlabel(f"{what} ÷ the layer's RMS")
        ax.set_title(f"histograms of {what}")
        ax.set_xlim(-4, 4)
    verdicts = ", ".join(sorted({v.kind for v in report.verdicts})) or "healthy"
    fig.suptitle(f"{title + ': ' if title else ''}{verdicts}", fontsize=11)
    return fig
