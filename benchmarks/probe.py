"""Overhead of probing a model during training, measured in the same run.

A 20-layer ReLU MLP (width 256, batch 128, He init) trains with SGD on random data;
(A) plain steps, (B) the same steps with every 10th one run inside ``initlab.probe.Watch``
and its report computed (statistics, verdicts, the theory's forecast; no histograms).
Prints time per step and the ratio B / A (target ≤ 1.10×). A and B alternate, repeated;
the ratio is that of the medians, so background noise weighs on both alike.

    .venv/bin/python benchmarks/probe.py [--steps 200] [--repeats 7] [--every 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F

from initlab.probe import Watch


def build(depth: int, width: int) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(width, 10))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return model


def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, every: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    start = time.perf_counter()
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        if every and step % every == 0:
            with Watch(model) as watch:
                F.cross_entropy(model(x), y).backward()
            watch.report()
        else:
            F.cross_entropy(model(x), y).backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, args.width, generator=g)
    y = torch.randint(0, 10, (args.batch,), generator=g)
    plain, probed = [], []
    run(build(args.depth, args.width), x, y, 20, args.every)  # warm-up
    for _ in range(args.repeats):
        plain.append(run(build(args.depth, args.width), x, y, args.steps, 0))
        probed.append(run(build(args.depth, args.width), x, y, args.steps, args.every))
    a, b = statistics.median(plain), statistics.median(probed)
    print(
        f"{args.depth}-layer MLP, width {args.width}, batch {args.batch}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"(A) plain step:                  {a * 1e3:8.3f} ms")
    print(f"(B) probed every {args.every:<3d} steps:      {b * 1e3:8.3f} ms")
    print(f"overhead B / A: {b / a:.3f}×  (target ≤ 1.10×)")


if __name__ == "__main__":
    main()
