"""The architectures practitioners train, built from ``torch.nn`` alone, small enough for
a 2-core CPU, with the data each learns from (offline: scikit-learn's digits, and
synthetic token tasks), for the probe's acceptance tests (tests/test_probe_zoo.py).

Each builder takes a seed and returns a model at its default (torch) init; the
pathologies are made by the tests from these, as a user would by hand.
"""

from __future__ import annotations

import itertools
import math

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


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: two 3×3 convs with batch norm, a skip connection
    (a 1×1 conv with batch norm where the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet18(nn.Module):
    """ResNet-18's layout (a stem, four stages of two BasicBlocks, pooling, a linear head),
    at a quarter of its width for 8×8 digits (He et al. 2016)."""

    def __init__(self, classes: int = 10, width: int = 16, channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        stages, cin = [], width
        for i, cout in enumerate([width, 2 * width, 4 * width, 8 * width]):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class TokenTransformer(nn.Module):
    """A pre-norm transformer encoder classifier over token ids: embedding + learned
    positions, ``nn.TransformerEncoder``, the first position's output to a linear head."""

    def __init__(
        self, vocab: int = 16, dim: int = 32, heads: int = 4, depth: int = 2, classes: int = 4,
        length: int = 12, norm_first: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(1, length, dim))
        layer = nn.TransformerEncoderLayer(
            dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=norm_first
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, ids: Tensor) -> Tensor:
        h = self.encoder(self.embed(ids) + self.pos[:, : ids.shape[1]])
        return self.head(h[:, 0])


class RecurrentLM(nn.Module):
    """A language model: embedding, an LSTM or GRU, a linear head per step; returns
    (B·T, vocab) logits for a flat cross-entropy."""

    def __init__(self, cell: str = "LSTM", vocab: int = 8, dim: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.rnn = getattr(nn, cell)(dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, ids: Tensor) -> Tensor:
        out, _ = self.rnn(self.embed(ids))
        return self.head(out).reshape(-1, self.head.out_features)


class EmbeddingClassifier(nn.Module):
    """A bag of embeddings, averaged, then an MLP: the text classifier of fastText's kind."""

    def __init__(self, vocab: int = 16, dim: int = 32, hidden: int = 64, classes: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, ids: Tensor) -> Tensor:
        return self.mlp(self.embed(ids).mean(dim=1))


class ViTBlock(nn.Module):
    """A pre-norm ViT block: x + attn(norm(x)), x + mlp(norm(x))."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """A ViT for 8×8 digits: 2×2 patches by a strided conv, a class token, learned
    positions, pre-norm blocks, a norm and a linear head on the class token (Dosovitskiy
    et al. 2021)."""

    def __init__(self, classes: int = 10, dim: int = 32, heads: int = 4, depth: int = 4) -> None:
        super().__init__()
        self.patch = nn.Conv2d(1, dim, 2, 2)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 17, dim) * 0.02)
        self.blocks = nn.Sequential(*(ViTBlock(dim, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: Tensor) -> Tensor:
        p = self.patch(x).flatten(2).transpose(1, 2)
        p = torch.cat([self.cls_token.expand(len(p), -1, -1), p], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(p))[:, 0])


def mlp(widths: list[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths[:-1]):
        layers += [nn.Linear(a, b), activation()]
    return nn.Sequential(*layers, nn.Linear(widths[-2], widths[-1]))


def normal_(model: nn.Module, std: float = 1.0, *, seed: int = 0) -> nn.Module:
    """Every parameter that is a matrix or larger re-drawn from N(0, std²), as a user who
    writes ``nn.init.normal_(p)`` over ``model.parameters()`` does (biases and norms kept)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


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
