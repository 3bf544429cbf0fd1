"""Overhead of initlab.init over torch.nn.init, measured in the same run.

initlab validates every argument and computes its draw description before filling;
this prints how much that costs per call, as a ratio to torch's own function on the
same tensor (best of several repeats, so background noise inflates neither side).

    .venv/bin/python benchmarks/init_overhead.py
"""

from __future__ import annotations

import functools
import timeit
from collections.abc import Callable

import torch
from torch import nn

from initlab import init


def best_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=7)) / number * 1e6


def main() -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    cases: list[
        tuple[
            str, tuple[int, ...], Callable[[torch.Tensor], object], Callable[[torch.Tensor], object]
        ]
    ] = [
        (
            "kaiming_normal_",
            (64, 32),
            lambda t: init.kaiming_normal_(t, generator=g),
            lambda t: nn.init.kaiming_normal_(t, generator=g),
        ),
        (
            "kaiming_normal_",
            (1024, 1024),
            lambda t: init.kaiming_normal_(t, generator=g),
            lambda t: nn.init.kaiming_normal_(t, generator=g),
        ),
        (
            "xavier_uniform_",
            (64, 32),
            lambda t: init.xavier_uniform_(t, generator=g),
            lambda t: nn.init.xavier_uniform_(t, generator=g),
        ),
        (
            "trunc_normal_ (absolute)",
            (1024, 1024),
            lambda t: init.trunc_normal_(t, bounds="absolute", generator=g),
            lambda t: nn.init.trunc_normal_(t, generator=g),
        ),
        (
            "orthogonal_",
            (256, 256),
            lambda t: init.orthogonal_(t, generator=g),
            lambda t: nn.init.orthogonal_(t, generator=g),
        ),
    ]
    print(f"{'scheme':26} {'shape':>12} {'initlab µs':>11} {'torch µs':>9} {'ratio':>6}")
    for name, shape, ours, theirs in cases:
        t = torch.empty(shape)
        number = max(1, int(2e5 // t.numel()))
        a = best_us(functools.partial(ours, t), number)
        b = best_us(functools.partial(theirs, t), number)
        print(f"{name:26} {'x'.join(map(str, shape)):>12} {a:11.1f} {b:9.1f} {a / b:6.2f}")
    model = nn.Sequential(*[nn.Linear(256, 256) for _ in range(20)])
    a = best_us(lambda: init.apply(model, "he_normal", generator=g), 3)
    b = best_us(
        lambda: [
            (nn.init.kaiming_normal_(m.weight, generator=g), nn.init.zeros_(m.bias))
            for m in model
            if isinstance(m, nn.Linear)
        ],
        3,
    )
    print(f"{'apply (20x Linear 256)':26} {'':>12} {a:11.1f} {b:9.1f} {a / b:6.2f}")


if __name__ == "__main__":
    main()
