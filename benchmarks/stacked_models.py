"""Forward + backward of M stacked members against a loop over M plain nn.Sequential.

Both compute the same numbers (tests/test_models.py checks it to 1e-12 in float64); this
prints the time per step of each and their ratio, measured in the same run (best of
several repeats). Ratios above 1 mean the stack is faster.

    .venv/bin/python benchmarks/stacked_models.py
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

import torch
from torch import nn

from initlab.models import cnn, mlp, to_module


def best_ms(fn: Callable[[], object], number: int = 5) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e3


def step(model: nn.Module, x: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    model(x).square().mean().backward()


def main() -> None:
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':34} {'M':>5} {'stack ms':>9} {'loop ms':>9} {'speed-up':>9}")
    cases = [
        ("mlp [2,10,5,1] relu, B=300", lambda m: mlp([2, 10, 5, 1], "relu", members=m), (300, 2)),
        ("mlp [784,100,10] tanh+BN, B=64",
         lambda m: mlp([784, 100, 10], "tanh", "before", members=m), (64, 784)),
        ("cnn 1x40 (8,16) relu, B=64", lambda m: cnn((1, 40), members=m), (64, 1, 40)),
    ]  # fmt: skip
    for name, build, shape in cases:
        for members in (1, 16, 128):
            stack = build(members)
            plains = [to_module(stack, m) for m in range(members)]
            x = torch.randn(members, *shape)
            t_stack = best_ms(lambda s=stack, x=x: step(s, x))
            t_loop = best_ms(lambda p=plains, x=x: [step(q, x[i]) for i, q in enumerate(p)])
            print(f"{name:34} {members:5d} {t_stack:9.2f} {t_loop:9.2f} {t_loop / t_stack:8.1f}x")


if __name__ == "__main__":
    main()
