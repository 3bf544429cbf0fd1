"""The architectures practitioners train, built from ``torch.nn`` alone, small enough for
a 2-core CPU, with the data each learns from (offline: scikit-learn's digits, and
synthetic token tasks), for the probe's acceptance tests (tests/test_probe_zoo.py).

The models are examples/architectures.py's (imported from there, so the examples the
README runs are the models the tests judge), each at its default (torch) init; the
pathologies are made by the tests from these, as a user would by hand.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn

# ----------------------------------------------------------------------------- data


def digits(n: int = 512, *, image: bool = True) -> tuple[Tensor, Tensor]:
    """scikit-learn's 8×8 digits, standardized: (n, 1, 8, 8) images (or (n, 64)), labels."""
    d = load_digits()
    x = torch.tensor(d.data[:n], dtype=torch.float32)
    x = (x - x.mean()) / x.std()
    y = torch.tensor(d.target[:n], dtype=torch.long)
    return (x.reshape(-1, 1, 8, 8) if image else x), y


def token_task(
    n: int = 512, length: int = 12, vocab: int = 16, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Sequences of ids; the label is the id at position 0 modulo 4 (4 classes): a model
    must carry the first token to its output."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (n, length), generator=g)
    return x, x[:, 0] % 4


def copy_task(
    n: int = 256, length: int = 16, vocab: int = 8, delay: int = 3, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Language-model data whose next token is the one ``delay`` steps back: (ids, targets)
    of shape (n, length); the first ``delay`` targets are the ids themselves."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (n, length), generator=g)
    y = torch.cat([x[:, :delay], x[:, :-delay]], dim=1)
    return x, y


# ------------------------------------------------------------------------ the models
# The classes live in examples/architectures.py, where `initlab probe` runs them too.

_EXAMPLES = str(Path(__file__).resolve().parents[1] / "examples")
if _EXAMPLES not in sys.path:
    sys.path.insert(0, _EXAMPLES)

from architectures import (  # noqa: E402
    BasicBlock,
    EmbeddingClassifier,
    RecurrentLM,
    ResNet18,
    TokenTransformer,
    ViT,
    ViTBlock,
    mlp,
    normal_,
)

__all__ = [
    "BasicBlock",
    "EmbeddingClassifier",
    "RecurrentLM",
    "ResNet18",
    "TokenTransformer",
    "ViT",
    "ViTBlock",
    "copy_task",
    "digits",
    "mean",
    "mlp",
    "normal_",
    "token_task",
    "train",
]


def train(model: nn.Module, x: Tensor, y: Tensor, steps: int, lr: float, *, batch: int = 64,
          optimizer: str = "sgd", seed: int = 0) -> list[float]:  # fmt: skip
    """Mini-batch training with cross-entropy (SGD with momentum 0.9, or Adam); returns
    the loss of every step's batch, before its update (inf once it is not finite)."""
    g = torch.Generator().manual_seed(seed)
    opt: torch.optim.Optimizer = (
        torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        if optimizer == "sgd"
        else torch.optim.Adam(model.parameters(), lr=lr)
    )
    model.train()
    losses = []
    for _ in range(steps):
        i = torch.randint(0, len(x), (batch,), generator=g)
        loss = nn.functional.cross_entropy(model(x[i]), y[i].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        value = float(loss.detach())
        losses.append(value if math.isfinite(value) else math.inf)
    return losses


def mean(values: list[float]) -> float:
    return sum(values) / len(values)
