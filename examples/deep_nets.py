"""Deep MLPs for `initlab probe`: the classic cases of a network that will not train.

    initlab probe examples/deep_nets.py:deep_mlp --input-shape 512x256 --init xavier_normal
    initlab probe "examples/deep_nets.py:deep_mlp(activation='tanh')" --input-shape 512x256 \
        --init "normal(std=0.01)"
    initlab probe "examples/deep_nets.py:deep_mlp(inputs=784)" --data mnist --init he_normal
"""

from __future__ import annotations

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "linear": nn.Identity}


def deep_mlp(
    depth: int = 30,
    width: int = 256,
    activation: str = "relu",
    inputs: int = 256,
    outputs: int = 10,
    batch_norm: bool = False,
) -> nn.Sequential:
    """``depth`` hidden layers Linear(width) → [BatchNorm] → activation, then Linear(outputs)."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(inputs if i == 0 else width, width, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(ACTIVATIONS[activation]())
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)
