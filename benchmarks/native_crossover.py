"""Where ``compile=True``'s C kernel (``initlab.native``) beats the eager engine, and
from which layer size its products go to MKL: the rate of each route, member-steps/s, on
MLPs from 80 to 89,400 weights per member (Σ in·out), at M = 1, 8 and 64, plain SGD,
cross-entropy, ReLU. Columns: eager; the kernel with every product in its own loops
("loops"); the kernel with the products of layers of at least 256, 1,024 and 4,096
weights in MKL's gemm. ``train._NATIVE_GEMM_MIN`` (1,024) was chosen from this table;
where torch has no MKL, the engine gives the kernel the nets of ``_NATIVE_ANY_M``,
``_NATIVE_LARGEST`` and ``_NATIVE_WORK`` (the "loops" column against eager).

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


GEMM_MINS = (256, 1024, 4096)


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    head = f"{'net':22} {'Σ in·out':>9} {'batch':>5} {'M':>3} {'eager':>9} {'loops':>9}"
    mkl = " ".join(f"{f'MKL≥{g}':>9}" for g in GEMM_MINS)
    print(f"{head} {mkl} best/eager")
    chosen = trainmod._NATIVE_GEMM_MIN
    trainmod._NATIVE_ANY_M = 10**9  # the kernel on every net
    torch.manual_seed(0)
    try:
        for widths, batch in NETS:
            n = 300 if batch == 300 else 4000
            x, y = torch.randn(n, widths[0]), torch.randint(0, widths[-1], (n,))
            size = sum(a * b for a, b in itertools.pairwise(widths))
            for members in (1, 8, 64):
                steps = max(20, min(300, 3_000_000 // (members * size)))
                eager = initlab_seconds(*initlab_run(widths, members, x, y, batch, steps))
                rates = []
                for gemm_min in (10**12, *GEMM_MINS):
                    trainmod._NATIVE_GEMM_MIN = gemm_min
                    run = initlab_run(widths, members, x, y, batch, steps, True)
                    rates.append(members / initlab_seconds(*run))
                print(
                    f"{'-'.join(map(str, widths)):22} {size:9,} {batch:5} {members:3} "
                    f"{members / eager:9,.0f} {' '.join(f'{r:9,.0f}' for r in rates)} "
                    f"{max(rates) * eager / members:9.2f}×",
                    flush=True,
                )
    finally:
        trainmod._NATIVE_GEMM_MIN = chosen


if __name__ == "__main__":
    main()
