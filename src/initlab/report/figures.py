"""Figures a person would rather look at than read: loss curves, decision boundaries.

Every function draws with matplotlib's off-screen Agg backend, saves a PNG, and returns
its path. Nothing is shown on screen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from initlab.models import Stack

__all__ = ["decision_boundaries", "loss_curves"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
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
    """Plot one cost curve per member, (S,) steps against (S, M) costs; save a PNG.

    Non-finite costs (a diverged member, or log(0) in a cost) are left out of the line.
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
    return _save(plt, fig, path)


def decision_boundaries(
    model: Stack,
    x: Tensor,
    y: Tensor,
    labels: Sequence[str],
    path: str | Path,
    *,
    resolution: int = 200,
) -> Path:
    """For a 2-D binary problem: each member's decision regions with the points on top."""
    plt = _pyplot()
    members = model.members
    cols = min(members, 4)
    rows = math.ceil(members / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.1 * rows), dpi=120, squeeze=False)
    lo, hi = x.min(0).values - 0.4, x.max(0).values + 0.4
    gx = torch.linspace(float(lo[0]), float(hi[0]), resolution, dtype=x.dtype)
    gy = torch.linspace(float(lo[1]), float(hi[1]), resolution, dtype=x.dtype)
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1).reshape(-1, 2)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        prob = torch.sigmoid(model(grid)[..., 0]).reshape(members, resolution, resolution)
    model.train(was_training)
    for m in range(rows * cols):
        ax = axes[m // cols][m % cols]
        ax.axis("off")
        if m >= members:
            continue
        ax.contourf(
            gx.numpy(),
            gy.numpy(),
            (prob[m] > 0.5).double().numpy(),
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
    return _save(plt, fig, path)
