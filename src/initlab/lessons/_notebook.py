"""What the deeplearning.ai notebooks' lessons share: their cost formula and data."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from initlab.data import Dataset

__all__ = ["notebook_cost", "notebook_dataset"]


def notebook_cost(out: Tensor, y: Tensor) -> Tensor:
    """The notebooks' binary cross-entropy, in probability space, per member:
    a = 1/(1 + e⁻ᶻ), cost = (1/m)·nansum(−y·log a − (1−y)·log(1 − a)).

    Unlike the logit form used for training, a sigmoid that saturates to exactly 1 makes
    this inf — which is what the notebook prints for its "large random" init.

    Example:
        >>> notebook_cost(torch.tensor([[[0.0], [40.0]]], dtype=torch.float64),
        ...               torch.tensor([[1.0, 0.0]], dtype=torch.float64))
        tensor([inf], dtype=torch.float64)
    """
    a = 1 / (1 + torch.exp(-out[..., 0]))
    y = y.to(a.dtype)
    logprobs = torch.mul(-torch.log(a), y) + torch.mul(-torch.log(1 - a), 1 - y)
    return torch.nansum(logprobs, dim=1) / out.shape[1]


def notebook_dataset(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray] | None,
) -> Dataset:
    """Two classes from the notebook's NumPy arrays (float64 points, int64 labels)."""
    x, y = (torch.from_numpy(a) for a in train)
    xt, yt = (torch.from_numpy(a) for a in test) if test else (x[:0], y[:0])
    return Dataset(name, x, y, xt, yt, 2)
