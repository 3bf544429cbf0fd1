"""Overhead of probing a model during training, measured in the same run.

A 20-layer ReLU MLP (width 256, batch 128, He init) trains with SGD on random data.
Training is cut into periods of ``--every`` steps: (A) a period of plain steps, (B) a
period whose first step runs inside ``initlab.probe.Watch`` and computes its report
(statistics, verdicts, the theory's forecast; no histograms). A and B periods alternate
on the same model, many times, so that a burst of background load or a slow patch of
memory weighs on both alike; the overhead is the median, over the pairs, of a probed
period's time over the plain period's just before it (target ≤ 1.10×).

    .venv/bin/python benchmarks/probe.py [--periods 150] [--every 10] [--updates]

``--updates`` probes with ``Watch(model, updates=True)`` (the report after the step, which
also reads that step's ΔW/W from a sample of 4,096 weights per layer): its extra cost,
which the target (the default Watch) does not include.
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


def period(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    every: int,
    probed: bool,
    updates: bool = False,
) -> float:
    """Seconds for ``every`` training steps, the first one probed when ``probed``."""
    start = time.perf_counter()
    for step in range(every):
        opt.zero_grad(set_to_none=True)
        if probed and step == 0:
            with Watch(model, updates=updates) as watch:
                F.cross_entropy(model(x), y).backward()
            if updates:  # the report after the step, which it then reads
                opt.step()
                watch.report()
                continue
            watch.report()
        else:
            F.cross_entropy(model(x), y).backward()
        opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--periods", type=int, default=150, help="of each kind (A and B)")
    parser.add_argument("--every", type=int, default=10, help="steps per period")
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument(
        "--updates", action="store_true", help="Watch(updates=True): also read each ΔW/W"
    )
    args = parser.parse_args()
    if args.periods < 1 or args.every < 1:
        parser.error(f"--periods and --every must be ≥ 1, got {args.periods} and {args.every}")
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, args.width, generator=g)
    y = torch.randint(0, 10, (args.batch,), generator=g)
    model = build(args.depth, args.width)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for probed in (False, True) * 3:  # warm-up
        period(model, opt, x, y, args.every, probed, args.updates)
    plain, probed_times = [], []
    for _ in range(args.periods):
        plain.append(period(model, opt, x, y, args.every, False))
        probed_times.append(period(model, opt, x, y, args.every, True, args.updates))
    a = statistics.median(plain) / args.every
    b = statistics.median(probed_times) / args.every
    # Each probed period against the plain period just before it: a drift in the
    # machine's speed cancels within a pair.
    ratios = [q / p for p, q in zip(plain, probed_times, strict=True)]
    low, mid, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    print(
        f"{args.depth}-layer MLP, width {args.width}, batch {args.batch}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.periods} periods of {args.every} steps each"
    )
    print(f"(A) plain step:                  {a * 1e3:8.3f} ms")
    print(f"(B) probed every {args.every:<3d} steps:      {b * 1e3:8.3f} ms")
    print(
        f"overhead B / A: {mid:.3f}×  (target ≤ 1.10×; median of {len(ratios)} pairs, "
        f"quartiles {low:.3f}–{high:.3f}; ratio of medians {b / a:.3f}×)"
    )


if __name__ == "__main__":
    main()
