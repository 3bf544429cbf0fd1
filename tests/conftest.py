"""Deterministic tests: every test starts from the same global seed and settings."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    # Seeds are fixed so that statistical tests (KS p-values) give the same verdict on
    # every run; the thresholds are chosen so a correct sampler passes with margin.
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float32)


@pytest.fixture
def gen() -> torch.Generator:
    """A CPU generator at a fixed state."""
    return torch.Generator().manual_seed(1234)
