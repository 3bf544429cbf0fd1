"""The architectures practitioners train, built from ``torch.nn`` alone, for `initlab probe`.

A ResNet-18, a pre-norm transformer encoder, LSTM and GRU language models, an embedding
classifier and a ViT, each small enough for a CPU. Every factory builds its model at
torch's default init and then, when asked, makes one pathology by hand, as a user does
who writes ``nn.init.normal_(p)`` over the parameters; the probe should call the
default healthy and name each pathology (``--fix`` repairs it):

    initlab probe "examples/architectures.py:resnet18(init='normal')" --data digits --fix
    initlab probe "examples/architectures.py:transformer(in_proj='normal')" \
        --input-shape 64x12 --tokens 16 --fix
    initlab probe "examples/architectures.py:lstm_lm(state='zeros')" \
        --input-shape 64x16 --tokens 8 --fix
    initlab probe "examples/architectures.py:vit(init='normal')" --data digits
    initlab probe examples/architectures.py:embedding_classifier --input-shape 64x12 --tokens 16

The image models take scikit-learn's 8×8 digits (``--data digits``, which the command
lays out as (N, 1, 8, 8) for their conv stems); the token models take ids
(``--tokens VOCAB`` with ``--input-shape N×T``: VOCAB 16 and T ≤ 12 for the transformer
and the embedding classifier, VOCAB 8 for the language models). The test suite's zoo
(tests/zoo.py) imports these classes.
"""

from __future__ import annotations

import itertools
from typing import Literal

import torch
from torch import Tensor, nn

# ------------------------------------------------------------------------ the models


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: two 3×3 convs with batch norm, a skip connection
    (a 1×1 conv with batch norm where the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, inplace: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=inplace)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def branch(self, x: Tensor) -> Tensor:
        """The residual branch alone, f(x), computed again (a reference for tests)."""
        return self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))

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
    """Linear layers of the given widths with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths[:-1]):
        layers += [nn.Linear(a, b), activation()]
    return nn.Sequential(*layers, nn.Linear(widths[-2], widths[-1]))


def normal_(model: nn.Module, std: float = 1.0, *, seed: int | None = 0) -> nn.Module:
    """Every parameter that is a matrix or larger re-drawn from N(0, std²), as a user who
    writes ``nn.init.normal_(p)`` over ``model.parameters()`` does (biases and norms kept).

    The draws come from a generator seeded with ``seed``, or from torch's global one for
    ``seed=None`` (as ``nn.init.normal_`` draws: ``initlab probe --seed`` seeds it)."""
    g = None if seed is None else torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


# ------------------------------------------------- factories for `initlab probe FILE:FACTORY`

Init = Literal["default", "normal"]
State = Literal["default", "zeros", "normal"]


def _choice(name: str, value: str, known: tuple[str, ...]) -> None:
    if value not in known:
        raise ValueError(
            f"The '{name}' argument must be one of {', '.join(map(repr, known))}. "
            f"Got {value!r} instead."
        )


def resnet18(init: Init = "default", width: int = 16) -> ResNet18:
    """A ResNet-18 for 8×8 digits (``--data digits``).

    ``init="normal"``: every conv and linear weight re-drawn from N(0, 1), which is
    std·√fan_in = 3 in the stem and up to 34 in the last stage (torch's default gives
    0.58). Batch norm rescues the signal, but the logits start large (a cross-entropy
    about 10× ln 10) and each step moves the weights relatively far less: the probe says
    ``high_loss``, ``weight_scale`` on the head and, as advice, on the convolutions
    behind batch norm.
    """
    _choice("init", init, ("default", "normal"))
    model = ResNet18(width=width)
    return normal_(model, seed=None) if init == "normal" else model


def transformer(in_proj: Init = "default") -> TokenTransformer:
    """A two-layer pre-norm transformer classifier over 16 token ids (``--tokens 16``,
    sequences of at most 12).

    ``in_proj="normal"``: each layer's attention ``in_proj_weight`` (q, k, v stacked)
    re-drawn from N(0, 1), std·√fan_in = 5.7 where torch's Xavier gives 0.71: the
    attention logits q·k/√d grow some 50-fold (std 0.44 → 24), the softmax collapses
    onto one key (``attention_collapse``) and the attention branches grow the residual
    stream (``residual_growth``).
    """
    _choice("in_proj", in_proj, ("default", "normal"))
    model = TokenTransformer()
    if in_proj == "normal":
        with torch.no_grad():
            for layer in model.encoder.layers:
                nn.init.normal_(layer.self_attn.in_proj_weight)
    return model


def _recurrent_lm(cell: str, state: State) -> RecurrentLM:
    _choice("state", state, ("default", "zeros", "normal"))
    model = RecurrentLM(cell)
    with torch.no_grad():
        if state == "zeros":
            nn.init.zeros_(model.rnn.weight_hh_l0)
        elif state == "normal":
            nn.init.normal_(model.rnn.weight_hh_l0)
    return model


def lstm_lm(state: State = "default") -> RecurrentLM:
    """An LSTM language model over 8 token ids (``--tokens 8``).

    ``state`` is the init of the recurrent weights W_hh (how h_{t−1} enters step t):
    ``"zeros"`` cuts the recurrence, so the gradient the last step sends back reaches
    every earlier step as exactly 0 (``vanishing_in_time``); ``"normal"`` draws it from
    N(0, 1), std·√hidden = 8: the gradient grows going back in time
    (``exploding_in_time``) and the cell's tanh sits in its flat tails (``saturated``).
    """
    return _recurrent_lm("LSTM", state)


def gru_lm(state: State = "default") -> RecurrentLM:
    """A GRU language model over 8 token ids (``--tokens 8``); ``state`` as for
    :func:`lstm_lm`.

    ``"normal"`` saturates the update gate and makes the gradient grow going back in
    time (``exploding_in_time``, ``saturated``). ``"zeros"`` is no pathology for a GRU:
    h_t = (1 − z_t)·n_t + z_t·h_{t−1} carries h_{t−1} through the update gate whatever
    W_hh, so the gradient still reaches step 0 (about 0.55× per step) and the probe
    reads it healthy.
    """
    return _recurrent_lm("GRU", state)


def vit(init: Init = "default") -> ViT:
    """A four-block ViT for 8×8 digits (``--data digits``).

    ``init="normal"``: every weight matrix re-drawn from N(0, 1), the class token and
    positions included: the logits start large (``high_loss``), the attention collapses
    onto one key (``attention_collapse``), the residual stream grows block by block
    (``residual_growth``), and the gradient grows going back (``exploding``,
    ``weight_scale``).
    """
    _choice("init", init, ("default", "normal"))
    model = ViT()
    return normal_(model, seed=None) if init == "normal" else model


def embedding_classifier() -> EmbeddingClassifier:
    """A bag-of-embeddings classifier over 16 token ids (``--tokens 16``) at torch's
    default init: healthy."""
    return EmbeddingClassifier()
