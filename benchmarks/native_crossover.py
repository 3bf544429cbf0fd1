"""Where ``compile=True``'s C kernel (``initlab.native``) beats the eager engine: the
rate of each route, member-steps/s, on MLPs from 80 to 89,400 weights per member
(Σ in·out), at M = 1, 8 and 64, plain SGD, cross-entropy, ReLU. The kernel is forced
here on every net; ``train._NATIVE_ANY_M``, ``_NATIVE_LARGEST`` and ``_NATIVE_WORK``,
the nets the engine gives it, were chosen from this table. The last column says
whether the engine takes the kernel for that row.

    .venv/bin/python benchmarks/native_crossover.py
"""

from __future__ import annotations

import itertools

import torch

from initlab import train as trainmod

try:
    from stack import initlab_run, initlab_seconds
except ImportError:  # run from elsewhere than benchmarks/
    from benchmarks.stack import initlab_run, initlab_seconds

NETS = [
    ([2, 10, 5, 2], 300),  # the tiny net, full batch
    ([2, 16, 16, 2], 300),
    ([2, 32, 32, 2], 300),
    ([2, 64, 64, 2], 64),
    ([40, 100, 100, 10], 64),  # MNIST-1D's
    ([784, 32, 10], 64),
    ([784, 100, 100, 10], 64),
]


def takes(size: int, members: int, any_m: int, largest: int, work: int) -> bool:
    """Whether the engine's rule gives this net and M to the kernel."""
    return size <= any_m or (size <= largest and members * size <= work)


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    head = f"{'net':22} {'Σ in·out':>9} {'batch':>5} {'M':>3} {'eager':>9} {'kernel':>9}"
    print(f"{head} {'ratio':>6} engine")
    rule = (trainmod._NATIVE_ANY_M, trainmod._NATIVE_LARGEST, trainmod._NATIVE_WORK)
    trainmod._NATIVE_ANY_M = 10**9  # the kernel on every net
    torch.manual_seed(0)
    for widths, batch in NETS:
        n = 300 if batch == 300 else 4000
        x, y = torch.randn(n, widths[0]), torch.randint(0, widths[-1], (n,))
        size = sum(a * b for a, b in itertools.pairwise(widths))
        for members in (1, 8, 64):
            steps = max(10, min(300, 3_000_000 // (members * size)))
            eager = initlab_seconds(*initlab_run(widths, members, x, y, batch, steps))
            kernel = initlab_seconds(*initlab_run(widths, members, x, y, batch, steps, True))
            print(
                f"{'-'.join(map(str, widths)):22} {size:9,} {batch:5} {members:3} "
                f"{members / eager:9,.0f} {members / kernel:9,.0f} {eager / kernel:5.2f}× "
                f"{'kernel' if takes(size, members, *rule) else 'eager'}",
                flush=True,
            )


if __name__ == "__main__":
    main()
