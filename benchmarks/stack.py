"""Member-steps per second: initlab's stack against a loop and against torch.func.

For each model and number of members M, one run of this script measures:

(A) a plain loop: M separate ``nn.Sequential`` models, each with its own ``torch.optim.SGD``;
(B) the ``torch.func`` recipe: ``stack_module_state`` + ``vmap(grad(functional_call))``,
    then one SGD update over the stacked parameters;
(C) initlab: ``initlab.train.train`` on a stack of M members, eager and with
    ``compile=True`` (compilation excluded: it happens in a warm-up run).

All train with SGD on cross-entropy; each member draws its own mini-batch (the 784 net)
or sees the whole set (the tiny net, full batch). Times are the best of several
repeats, per step, after a warm-up. It prints member-steps/s and the ratios C/A and
C/B, and initlab's GFLOP/s next to ``torch.mm`` on 2048×2048 matrices.

    .venv/bin/python benchmarks/stack.py            # the whole table (a few minutes)
    .venv/bin/python benchmarks/stack.py --quick    # fewer members, fewer steps
    .venv/bin/python benchmarks/stack.py --tiny --members 1 1024   # some rows only
"""

from __future__ import annotations

import argparse
import copy
import itertools
import time
from collections.abc import Callable

import torch
from torch.func import functional_call, grad, stack_module_state, vmap
from torch.nn import functional as F

from initlab import data, models
from initlab.train import TrainConfig, train


def best(fn: Callable[[], object], repeats: int = 3) -> float:
    """Best wall time of fn over repeats (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def plain_loop(
    widths: list[int], members: int, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int
) -> float:
    """(A) seconds per step of M separate models and optimizers.

    The members of (A) share nothing, so its time is M times one member's: it is timed
    on min(M, 16) of them for ``steps`` steps and scaled to M. (Timing all 1024 tiny
    models for 2 steps was noise; 16 models also sit in cache where 256 copies of the
    784 net would not, so the scaling can only flatter (A).)
    """
    timed = min(members, 16)
    nets = [models.to_module(models.mlp(widths, "relu"), 0) for _ in range(timed)]
    opts = [torch.optim.SGD(n.parameters(), lr=0.01) for n in nets]
    n = x.shape[0]
    idx = [torch.randint(0, n, (steps, batch)) for _ in range(timed)] if batch < n else None

    def run() -> None:
        for s in range(steps):
            for m, (net, opt) in enumerate(zip(nets, opts, strict=True)):
                xb, yb = (x, y) if idx is None else (x[idx[m][s]], y[idx[m][s]])
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(net(xb), yb).backward()
                opt.step()

    return best(run) / steps * members / timed


def func_recipe(
    widths: list[int], members: int, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int
) -> float:
    """(B) seconds per step of the torch.func recipe."""
    nets = [models.to_module(models.mlp(widths, "relu"), 0) for _ in range(members)]
    params, buffers = stack_module_state(nets)  # type: ignore[no-untyped-call]
    base = copy.deepcopy(nets[0]).to("meta")
    n = x.shape[0]

    def loss(
        p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor
    ) -> torch.Tensor:
        return F.cross_entropy(functional_call(base, (p, b), (xb,)), yb)

    step_grad = vmap(grad(loss), in_dims=(0, 0, 0 if batch < n else None, 0 if batch < n else None))
    idx = torch.randint(0, n, (steps, members, batch)) if batch < n else None

    def run() -> None:
        for s in range(steps):
            xb, yb = (x, y) if idx is None else (x[idx[s]], y[idx[s]])
            grads = step_grad(params, buffers, xb, yb)
            with torch.no_grad():
                torch._foreach_add_(list(params.values()), list(grads.values()), alpha=-0.01)

    return best(run) / steps


def initlab_stack(
    widths: list[int],
    members: int,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    steps: int,
    compiled: bool = False,
) -> float:
    """(C) seconds per step of initlab's engine: its own loop time (setup excluded)."""
    ds = data.Dataset("bench", x, y, x[:1], y[:1], int(y.max()) + 1)
    size = "full" if batch >= x.shape[0] else batch
    stack = models.mlp(widths, "relu", members=members)
    # The history is logged every 10 steps (the loss, the gradient norm); stopping
    # checks read the device every 1000.
    config = TrainConfig(
        lr=0.01,
        batch_size=size,
        seeds=list(range(members)),  # type: ignore[arg-type]
        steps=steps,
        check_every=1000,
        log_every=10,
        compile=compiled,
    )
    train(stack, ds, config)  # warm-up (and, with compile=True, the compilation)
    return min(train(stack, ds, config).seconds for _ in range(3)) / steps


def gflops_mm() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    seconds = best(lambda: torch.mm(a, b), repeats=5)
    return 2 * 2048**3 / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer members and steps")
    parser.add_argument(
        "--members", type=int, nargs="+", help="only these M (e.g. --members 1 1024)"
    )
    parser.add_argument("--tiny", action="store_true", help="only the tiny 2-10-5-1 net")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"torch.mm 2048²: {gflops_mm():.1f} GFLOP/s"
    )
    mnist_like = (torch.randn(6000, 784), torch.randint(0, 10, (6000,)))
    circles = data.load("circles", n=375, noise=0.05, seed=1, test_size=75)
    cases = [
        (
            "784-100-100-10, batch 64",
            [784, 100, 100, 10],
            *mnist_like,
            64,
            [1, 8] if args.quick else [1, 8, 64, 256],
        ),
        (
            "2-10-5-1 (2 logits), full batch 300",
            [2, 10, 5, 2],
            circles.x_train,
            circles.y_train,
            300,
            [1, 64] if args.quick else [1, 64, 1024],
        ),
    ]
    print(
        f"{'model':36} {'M':>5} {'A loop':>9} {'B func':>9} {'C initlab':>10} "
        f"{'C compiled':>10} {'C/A':>6} {'C/B':>6} {'Cc/A':>6} {'Cc/B':>6} {'GFLOP/s':>8}"
    )
    for name, widths, x, y, batch, member_counts in cases[1:] if args.tiny else cases:
        flops = 6 * batch * sum(a * b for a, b in itertools.pairwise(widths))
        for m in args.members or member_counts:
            steps = max(4, min(100, 2000 // m)) if not args.quick else 4
            loop_steps = 4 if args.quick else max(20, 400 // min(m, 16))
            a = plain_loop(widths, m, x, y, batch, loop_steps)
            b = func_recipe(widths, m, x, y, batch, steps)
            c = initlab_stack(widths, m, x, y, batch, steps)
            cc = initlab_stack(widths, m, x, y, batch, steps, compiled=True)
            r = [m / t for t in (a, b, c, cc)]
            print(
                f"{name:36} {m:5d} {r[0]:9,.0f} {r[1]:9,.0f} {r[2]:10,.0f} {r[3]:10,.0f} "
                f"{r[2] / r[0]:5.1f}x {r[2] / r[1]:5.1f}x {r[3] / r[0]:5.1f}x {r[3] / r[1]:5.1f}x "
                f"{max(r[2], r[3]) * flops / 1e9:8.2f}"
            )


if __name__ == "__main__":
    main()
