"""Where a step's time goes, for the rows of ``benchmarks/stack.py`` that miss a target.

Three questions, each answered by measurement in this run:

1. **The tiny net at M = 1** (2-10-5-2, full batch 300): how many aten calls one eager
   step of initlab's engine makes and how long they take; what capturing many steps at
   once gives in PyTorch (``torch.compile`` of a K-step loop of the same step written as
   plain tensor code, no engine features; compilation excluded); the engine with
   ``compile=True`` (initlab's C kernel, K steps a call); and JAX's ``lax.scan``
   (``benchmarks/stack.py``'s D) when JAX is installed.
2. **The tiny net at M = 1,024**: the eager step's operations by time, and the rate at
   M = 128, where the step's tensors stay in cache (where the two rates match, the limit
   is the kernels on these skinny products, k = 2, 5, 10, and the elementwise passes,
   not memory); then the rate with ``compile=True``.
3. **784-100-100-10 at M = 1, 8, 64, 256** (batch 64): the share of the step spent in
   matrix products, their GFLOP/s, and ``torch.mm``'s on 2048² matrices; then the rate
   with ``compile=True``, where the kernel calls MKL's gemm for the products itself (no
   dispatch, nothing else between them), against the same products alone.

    .venv/bin/python benchmarks/step_limits.py
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections import defaultdict
from collections.abc import Callable

import torch
from torch.nn import functional as F
from torch.profiler import profile

from initlab import data, models
from initlab.train import TrainConfig, train

try:  # stack.py's C and D (D when the bench extra is installed)
    from stack import HAVE_JAX, best, gflops_mm, initlab_run, initlab_seconds, jax_stack
except ImportError:  # run from elsewhere than benchmarks/
    from benchmarks.stack import HAVE_JAX, best, gflops_mm, initlab_run, initlab_seconds, jax_stack

GEMMS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def _profiled(stack: models.Stack, ds: data.Dataset, config: TrainConfig) -> dict[str, float]:
    with profile() as prof:
        train(stack, ds, config)
    times: dict[str, float] = defaultdict(float)
    for event in prof.events():
        if event.cpu_parent is None and event.name.startswith("aten::"):
            times[event.name] += event.cpu_time_total
            times["calls"] += 1
    return times


def products_alone(members: int) -> float:
    """Seconds for the products of one step of 784-100-100-10 (batch 64) at M members,
    as the kernel lays them out (activations feature-major, (width, B); weights (out, in)),
    through torch.mm: on all threads for one member (MKL's own), else each member's on one
    thread, the members split over the threads."""
    b, widths = 64, [784, 100, 100, 10]
    x = torch.randn(b, 784)
    ws = [torch.randn(o, i) for i, o in itertools.pairwise(widths)]
    hs = [torch.randn(o, b) for o in widths[1:]]

    def step() -> None:
        for k, w in enumerate(ws):
            h_in = x.T if k == 0 else hs[k - 1]
            torch.mm(w, h_in)  # forward
            torch.mm(hs[k], h_in.T)  # weight gradient (the delta has the output's shape)
            if k:
                torch.mm(w.T, hs[k])  # the delta below

    threads = torch.get_num_threads()
    if members > 1:
        torch.set_num_threads(1)
    try:
        seconds = best(step, repeats=20)
    finally:
        torch.set_num_threads(threads)
    return seconds if members == 1 else seconds * members / min(members, threads)


def op_table(stack: models.Stack, ds: data.Dataset, config: TrainConfig) -> dict[str, float]:
    """µs per step of each top-level aten operation (under the profiler), and "calls" per
    step: a run of 2n steps less a run of n, so that what train() does once (the set-up,
    the final evaluation) drops out."""
    once = _profiled(stack, ds, config)
    twice = _profiled(stack, ds, dataclasses.replace(config, steps=2 * config.steps))
    return {k: (v - once.get(k, 0.0)) / config.steps for k, v in twice.items()}


Params = tuple[list[torch.Tensor], list[torch.Tensor]]


def plain_step(
    w: list[torch.Tensor], b: list[torch.Tensor], x: torch.Tensor, onehot: torch.Tensor, lr: float
) -> Params:
    """One SGD step of a 3-layer ReLU MLP on cross-entropy, backward written out (what
    autograd computes; tests/test_benchmarks_stack.py checks it against autograd)."""
    h1 = torch.relu(x @ w[0].T + b[0])
    h2 = torch.relu(h1 @ w[1].T + b[1])
    logp = F.log_softmax(h2 @ w[2].T + b[2], 1)
    g = (logp.exp() - onehot) / x.shape[0]
    gw2, gb2, g = g.T @ h2, g.sum(0), (g @ w[2]) * (h2 > 0)
    gw1, gb1, g = g.T @ h1, g.sum(0), (g @ w[1]) * (h1 > 0)
    gw0, gb0 = g.T @ x, g.sum(0)
    new_w = [a - lr * d for a, d in zip(w, (gw0, gw1, gw2), strict=True)]
    return new_w, [a - lr * d for a, d in zip(b, (gb0, gb1, gb2), strict=True)]


def captured_steps(x: torch.Tensor, y: torch.Tensor, k: int) -> float:
    """Seconds per step of a K-step loop of :func:`plain_step`, under torch.compile."""
    torch.manual_seed(0)
    w = [torch.randn(10, 2) * 0.5, torch.randn(5, 10) * 0.3, torch.randn(2, 5) * 0.3]
    b = [torch.zeros(10), torch.zeros(5), torch.zeros(2)]
    onehot = F.one_hot(y, 2).to(x.dtype)

    def loop(w: list[torch.Tensor], b: list[torch.Tensor]) -> Params:
        for _ in range(k):
            w, b = plain_step(w, b, x, onehot, 0.01)
        return w, b

    fn: Callable[..., Params] = torch.compile(loop, fullgraph=True)
    fn(w, b)  # compilation
    calls = max(1, 600 // k)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        ws, bs = w, b
        for _ in range(calls):
            ws, bs = fn(ws, bs)
        best = min(best, (time.perf_counter() - started) / (calls * k))
    return best


def main() -> None:
    mm = gflops_mm()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, torch.mm {mm:.0f} GFLOP/s"
    )
    circles = data.load("circles", n=375, noise=0.05, seed=1, test_size=75)
    x, y = circles.x_train, circles.y_train  # as stack.py's tiny net

    print("\n1. 2-10-5-2, full batch 300, M = 1")
    run = initlab_run([2, 10, 5, 2], 1, x, y, 300, 200)
    ops = op_table(*run)
    aten = sum(v for k, v in ops.items() if k != "calls")
    print(f"  initlab: {initlab_seconds(*run) * 1e6:.1f} µs/step")
    print(f"  its aten calls: {ops['calls']:.1f} per step, {aten:.1f} µs (under the profiler)")
    for k in (1, 10, 50):
        seconds = captured_steps(x.float(), y, k)
        print(f"  torch.compile of {k:2d} plain steps: {seconds * 1e6:.1f} µs/step")
    run = initlab_run([2, 10, 5, 2], 1, x, y, 300, 3000, compiled=True)
    print(f"  initlab, compile=True (its C kernel): {initlab_seconds(*run) * 1e6:.1f} µs/step")
    if HAVE_JAX:
        seconds = jax_stack([2, 10, 5, 2], 1, x, y, 300, 200)
        print(f"  JAX jit(lax.scan): {seconds * 1e6:.1f} µs/step")

    print("\n2. 2-10-5-2, full batch 300, M = 1024")
    run = initlab_run([2, 10, 5, 2], 1024, x, y, 300, 20)
    seconds = initlab_seconds(*run)
    ops = op_table(*run)
    print(f"  initlab: {seconds * 1e3:.2f} ms/step, {1024 / seconds:,.0f} member-steps/s")
    for name, us in sorted(ops.items(), key=lambda kv: -kv[1])[:8]:
        if name != "calls":
            print(f"    {name:32} {us / 1e3:6.2f} ms/step (profiler)")
    # Memory or the kernels? At M = 128 the hidden (M, width, 300) tensors are 2.3 MB and
    # stay in the caches; at 1,024 they are 18 MB.
    rate = 128 / initlab_seconds(*initlab_run([2, 10, 5, 2], 128, x, y, 300, 100))
    print(f"  at M = 128 (hidden tensors 2.3 MB, in cache): {rate:,.0f} member-steps/s")
    seconds = initlab_seconds(*initlab_run([2, 10, 5, 2], 1024, x, y, 300, 100, compiled=True))
    print(f"  compile=True (its C kernel): {1024 / seconds:,.0f} member-steps/s")

    xs, ys = torch.randn(6000, 784), torch.randint(0, 10, (6000,))
    sizes = [784 * 100, 100 * 100, 100 * 10]
    for members in (1, 8, 64, 256):
        print(f"\n3. 784-100-100-10, batch 64, M = {members}")
        steps = max(4, min(30, 2000 // members))
        run = initlab_run([784, 100, 100, 10], members, xs, ys, 64, steps)
        seconds = initlab_seconds(*run)
        ops = op_table(*run)
        total = sum(v for k, v in ops.items() if k != "calls")
        gemm = sum(v for k, v in ops.items() if k in GEMMS)
        # The products the engine runs: forward, weight gradients, and the input gradients
        # of every layer but the first (the data needs none), 2 FLOPs a multiply-add
        # (stack.py's count).
        ran = 2 * 64 * members * (2 * sum(sizes) + sum(sizes[1:]))
        print(
            f"  initlab: {seconds * 1e3:.2f} ms/step, {ran / seconds / 1e9:.0f} GFLOP/s "
            f"= {ran / seconds / 1e9 / mm:.0%} of torch.mm"
        )
        print(
            f"  matrix products: {gemm / total:.0%} of the aten time, at "
            f"{ran / (gemm / 1e6) / 1e9:.0f} GFLOP/s on the products they run (profiler); "
            f"the rest, {(total - gemm) / 1e3:.2f} ms/step in {ops['calls']:.0f} calls"
        )
        for name, us in sorted(ops.items(), key=lambda kv: -kv[1])[:6]:
            if name != "calls":
                print(f"    {name:32} {us / 1e3:6.2f} ms/step (profiler)")
        many = max(20, min(300, 6000 // members))
        fast = initlab_seconds(*initlab_run([784, 100, 100, 10], members, xs, ys, 64, many, True))
        print(
            f"  compile=True (the kernel; its products in MKL): {fast * 1e3:.2f} ms/step, "
            f"{ran / fast / 1e9:.0f} GFLOP/s on the products it runs = "
            f"{ran / fast / 1e9 / mm:.0%} of torch.mm; {products_alone(members) / fast:.0%} "
            "of its step is those products alone"
        )


if __name__ == "__main__":
    main()
