"""What a model computes over a plane: its output over the input plane (decision maps) and,
next, its loss over a plane of parameter space (loss slices).

These are computed here, as tensors, and drawn by :mod:`initlab.report`: the figures never
run a model.

Example:
    >>> from initlab import models
    >>> net = models.mlp([2, 4, 1], "tanh", members=3)
    >>> grid = decision_map(net, torch.randn(50, 2), resolution=20)
    >>> grid.prob.shape  # (members, rows: y, columns: x)
    torch.Size([3, 20, 20])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from initlab._validation import check_int, param_message
from initlab.models import Stack

__all__ = ["DecisionMap", "decision_map"]


@dataclass(frozen=True)
class DecisionMap:
    """Each member's probability of class 1 on a grid over the input plane (CPU tensors)."""

    gx: Tensor  # (R,) the grid's x coordinates
    gy: Tensor  # (R,) its y coordinates
    prob: Tensor  # (M, R, R): sigmoid of the first output at (gy[i], gx[j]) is prob[m, i, j]


def decision_map(
    model: Stack, x: Tensor, *, resolution: int = 200, margin: float = 0.4
) -> DecisionMap:
    """Each member's sigmoid output over a grid covering the points ``x`` (N, 2).

    The grid spans each coordinate's range of ``x`` widened by ``margin``; the model runs in
    eval mode (batch norm on its running statistics) and is left in the mode it was in.

    Args:
        model: a stack whose first output is a logit of class 1 (a binary classifier).
        x: (N, 2) points the grid must cover.
        resolution: grid points per axis (≥ 2).
        margin: how far the grid reaches beyond the points, in input units.

    Returns:
        A :class:`DecisionMap` on the CPU.

    Raises:
        ValueError: ``x`` is not (N, 2) with N ≥ 1; a resolution below 2.
    """
    if x.dim() != 2 or x.shape[1] != 2 or not x.shape[0]:
        raise ValueError(
            param_message("decision_map", "x", "points of shape (N, 2), N ≥ 1", tuple(x.shape))
        )
    check_int("decision_map", "resolution", resolution, low=2)
    param = next(model.parameters())
    points = x.detach().to(param.dtype).cpu()
    lo, hi = points.min(0).values - margin, points.max(0).values + margin
    gx = torch.linspace(float(lo[0]), float(hi[0]), resolution, dtype=points.dtype)
    gy = torch.linspace(float(lo[1]), float(hi[1]), resolution, dtype=points.dtype)
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1).reshape(-1, 2)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(grid.to(param.device))[..., 0]
    finally:
        model.train(was_training)
    prob = torch.sigmoid(logits).reshape(model.members, resolution, resolution).cpu()
    return DecisionMap(gx, gy, prob)
