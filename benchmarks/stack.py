"""Member-steps per second: initlab's stack against a loop, torch.func and JAX.

For each model and number of members M, one run of this script measures:

(A) a plain loop: M separate ``nn.Sequential`` models, each with its own ``torch.optim.SGD``;
(B) the ``torch.func`` recipe: ``stack_module_state`` + ``vmap(grad(functional_call))``,
    then one SGD update over the stacked parameters;
(C) initlab: ``initlab.train.train`` on a stack of M members, eager and with
    ``compile=True`` (compilation excluded: it happens in a warm-up run);
(D) JAX, the recipe a researcher would pick instead: the parameters stacked on a member
    axis, ``jax.vmap(jax.value_and_grad(loss))``, and the whole loop of ``steps`` SGD
    steps in one ``jax.jit`` of ``lax.scan`` (compilation excluded: a warm-up call), from
    the same initial weights (initlab's stacked init, copied). Only with the ``bench``
    extra (``pip install -c constraints.txt -e '.[bench]'``); without JAX the script says
    so in one line and leaves D out.

All train with SGD on cross-entropy; each member draws its own mini-batch (the 784 net)
or sees the whole set (the tiny net, full batch). Times are the best of several
repeats, per step, after a warm-up. It prints member-steps/s and the ratios C/A, C/B
and C/D, and the GFLOP/s of initlab's faster route (C or Cc), counted on the matrix
products a step runs (forward, weight gradients, and the input gradients of every layer
but the first: 2·B·(2·Σ in·out + Σ over the later layers), 2 FLOPs a multiply-add),
also as a share of ``torch.mm`` on 2048×2048 matrices. Before the rows of each net it
checks that D computes what C computes: from the same weights, on the same full batch,
their losses over a few steps agree to float32 rounding (the largest relative
difference is printed; over 1e-4 the script stops with an error).

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
from typing import Literal, TypeAlias

import numpy as np
import torch
from torch.func import functional_call, grad, stack_module_state, vmap
from torch.nn import functional as F

from initlab import data, models
from initlab.train import TrainConfig, train

try:  # the bench extra: D is measured only where JAX imports
    import jax
    import jax.numpy as jnp
    from jax import lax

    HAVE_JAX = True
except ImportError:
    HAVE_JAX = False

# D and C agree when their largest relative difference in loss is below this: float32
# rounding, summed in another order by another library, over a few steps.
AGREEMENT = 1e-4

# D's parameters, one (weight (M, out, in), bias (M, out)) per layer; a string, since
# the script also runs without JAX.
JaxParams: TypeAlias = "list[tuple[jax.Array, jax.Array]]"


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
                F.cross_entropy(net(xb), yb).backward()  # type: ignore[no-untyped-call]
                opt.step()

    return best(run) / steps * members / timed


def func_recipe(
    widths: list[int], members: int, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int
) -> float:
    """(B) seconds per step of the torch.func recipe."""
    nets = [models.to_module(models.mlp(widths, "relu"), 0) for _ in range(members)]
    params, buffers = stack_module_state(nets)
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


def initlab_run(
    widths: list[int],
    members: int,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    steps: int,
    compiled: bool = False,
) -> tuple[models.Stack, data.Dataset, TrainConfig]:
    """(C)'s stack, data and config, after a warm-up run (and, with ``compiled``, the
    compilation). ``benchmarks/step_limits.py`` profiles the same runs."""
    ds = data.Dataset("bench", x, y, x[:1], y[:1], int(y.max()) + 1)
    size: int | Literal["full"] = "full" if batch >= x.shape[0] else batch
    stack = models.mlp(widths, "relu", members=members)
    # The history is logged every 10 steps (the loss, the gradient norm); stopping
    # checks read the device every 1000.
    config = TrainConfig(
        lr=0.01,
        batch_size=size,
        seeds=list(range(members)),
        steps=steps,
        check_every=1000,
        log_every=10,
        compile=compiled,
    )
    train(stack, ds, config)
    return stack, ds, config


def initlab_seconds(stack: models.Stack, ds: data.Dataset, config: TrainConfig) -> float:
    """Seconds per step of ``train``: its own loop time (setup excluded), best of 3."""
    assert config.steps is not None
    return min(train(stack, ds, config).seconds for _ in range(3)) / config.steps


def initlab_stack(
    widths: list[int],
    members: int,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    steps: int,
    compiled: bool = False,
) -> float:
    """(C) seconds per step of initlab's engine."""
    return initlab_seconds(*initlab_run(widths, members, x, y, batch, steps, compiled))


def jax_params(stack: models.Stack) -> JaxParams:
    """The stack's weights as JAX arrays: [(weight (M, out, in), bias (M, out)), …]."""
    params = []
    for layer in stack.layers:
        if isinstance(layer, models.StackedLinear):
            if layer.bias is None:
                raise ValueError("jax_params: D's nets have a bias in every layer; got none.")
            params.append(
                (
                    jnp.asarray(layer.weight.detach().numpy()),
                    jnp.asarray(layer.bias.detach().numpy()),
                )
            )
    return params


def jax_member_loss(params: JaxParams, x: jax.Array, y: jax.Array) -> jax.Array:
    """One member's mean cross-entropy: ReLU hidden layers, a linear output (logits)."""
    h = x
    for w, b in params[:-1]:
        h = jax.nn.relu(h @ w.T + b)
    w, b = params[-1]
    log_p = jax.nn.log_softmax(h @ w.T + b)
    return -jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1))


# (params, x, y, key) → (params, losses): see jax_trainer.
JaxRun: TypeAlias = (
    "Callable[[JaxParams, jax.Array, jax.Array, jax.Array], tuple[JaxParams, jax.Array]]"
)


def jax_trainer(members: int, n: int, batch: int, steps: int, lr: float = 0.01) -> JaxRun:
    """(D) ``steps`` SGD steps of M members as one compiled function.

    (params, x, y, key) → (the final params, the losses (steps, M) before each update).
    Full batch (batch ≥ n): every member sees all of x; otherwise each member draws its
    own ``batch`` examples per step (with replacement, from ``key``) inside the scan.
    """
    full = batch >= n
    member_grads = jax.vmap(
        jax.value_and_grad(jax_member_loss), in_axes=(0, None, None) if full else 0
    )

    @jax.jit
    def run(
        params: JaxParams, x: jax.Array, y: jax.Array, key: jax.Array
    ) -> tuple[JaxParams, jax.Array]:
        def step(params: JaxParams, key: jax.Array) -> tuple[JaxParams, jax.Array]:
            if full:
                xb, yb = x, y
            else:
                idx = jax.random.randint(key, (members, batch), 0, n)
                xb, yb = x[idx], y[idx]
            losses, grads = member_grads(params, xb, yb)
            return jax.tree.map(lambda p, g: p - lr * g, params, grads), losses

        return lax.scan(step, params, jax.random.split(key, steps))

    return run


def _to_jax(x: torch.Tensor, y: torch.Tensor) -> tuple[jax.Array, jax.Array]:
    # JAX's default integers are 32-bit: the labels are converted here, not silently.
    return jnp.asarray(x.numpy()), jnp.asarray(y.to(torch.int32).numpy())


def jax_stack(
    widths: list[int], members: int, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int
) -> float:
    """(D) seconds per step of the JAX recipe, from initlab's initial weights (compilation
    excluded: ``best`` calls it once first, with the same shapes)."""
    params = jax_params(models.mlp(widths, "relu", members=members))
    run = jax_trainer(members, x.shape[0], batch, steps)
    xj, yj = _to_jax(x, y)
    key = jax.random.key(0)
    return best(lambda: jax.block_until_ready(run(params, xj, yj, key))) / steps  # type: ignore[no-untyped-call]


def check_jax(
    widths: list[int],
    x: torch.Tensor,
    y: torch.Tensor,
    members: int = 4,
    steps: int = 5,
    lr: float = 0.1,
) -> float:
    """The largest relative difference between C's and D's losses, from the same initial
    weights on the same full batch: the loss before each of ``steps`` updates and after
    the last, for every member.

    Raises:
        RuntimeError: the difference is over :data:`AGREEMENT` (D does not compute what C
            computes, so its timings would compare different work).
    """
    stack = models.mlp(widths, "relu", members=members)
    params = jax_params(stack)
    ds = data.Dataset("check", x, y, x[:1], y[:1], int(y.max()) + 1)
    config = TrainConfig(lr=lr, batch_size="full", steps=steps, log_every=1)
    c_steps = train(stack, ds, config).loss.double()
    with torch.no_grad():
        logits = stack(x).transpose(1, 2)  # (M, classes, B)
        c_end = F.cross_entropy(logits, y.expand(members, -1), reduction="none").mean(1)
    c = torch.cat([c_steps, c_end.double()[None]])
    xj, yj = _to_jax(x, y)
    final, d_steps = jax_trainer(members, x.shape[0], x.shape[0], steps, lr)(
        params, xj, yj, jax.random.key(0)
    )
    d_end = jax.vmap(jax_member_loss, in_axes=(0, None, None))(final, xj, yj)
    d = torch.cat([torch.tensor(np.asarray(d_steps)), torch.tensor(np.asarray(d_end))[None]])
    difference = ((c - d.double()).abs() / c.abs()).max().item()
    if not difference <= AGREEMENT:
        raise RuntimeError(
            f"D (JAX) does not compute what C (initlab) computes: relative difference in loss "
            f"{difference:.2e} over {AGREEMENT:.0e} (widths {widths}, {members} members, "
            f"{steps} steps)."
        )
    return difference


def gflops_mm() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    seconds = best(lambda: torch.mm(a, b), repeats=5)
    return 2 * 2048**3 / seconds / 1e9


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer members and steps")
    parser.add_argument(
        "--members", type=int, nargs="+", help="only these M (e.g. --members 1 1024)"
    )
    parser.add_argument("--tiny", action="store_true", help="only the tiny 2-10-5-1 net")
    parser.add_argument(
        "--no-compiled",
        action="store_true",
        help="leave out C compiled (its compilation takes seconds per row)",
    )
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    mm = gflops_mm()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"torch.mm 2048²: {mm:.1f} GFLOP/s"
    )
    if HAVE_JAX:
        print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}")
    else:
        print(
            "D (JAX) left out: jax is not installed (pip install -c constraints.txt -e '.[bench]')"
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
    cases = cases[1:] if args.tiny else cases
    if HAVE_JAX:
        for name, widths, x, y, *_ in cases:
            check = x[:300]  # the full batch of the check: a few hundred examples
            difference = check_jax(widths, check, y[: len(check)])
            print(
                f"{name}: D agrees with C, largest relative difference in loss "
                f"{difference:.1e} (5 SGD steps, 4 members, full batch of {len(check)})"
            )
    print(
        f"{'model':36} {'M':>5} {'A loop':>9} {'B func':>9} {'C initlab':>10} "
        f"{'C compiled':>10} {'D jax':>9} {'C/A':>6} {'C/B':>6} {'C/D':>6} "
        f"{'Cc/A':>6} {'Cc/B':>6} {'Cc/D':>6} {'GFLOP/s':>8} {'%mm':>5}"
    )
    for name, widths, x, y, batch, member_counts in cases:
        sizes = [a * b for a, b in itertools.pairwise(widths)]
        flops = 2 * batch * (2 * sum(sizes) + sum(sizes[1:]))  # the products run
        for m in args.members or member_counts:
            steps = max(4, min(100, 2000 // m)) if not args.quick else 4
            loop_steps = 4 if args.quick else max(20, 400 // min(m, 16))
            a = plain_loop(widths, m, x, y, batch, loop_steps)
            b = func_recipe(widths, m, x, y, batch, steps)
            c = initlab_stack(widths, m, x, y, batch, steps)
            cc = None if args.no_compiled else initlab_stack(widths, m, x, y, batch, steps, True)
            d = jax_stack(widths, m, x, y, batch, steps) if HAVE_JAX else None
            ra, rb, rc = m / a, m / b, m / c
            rcc, rd = (None if t is None else m / t for t in (cc, d))
            print(
                f"{name:36} {m:5d} {_rate(ra, 9)} {_rate(rb, 9)} {_rate(rc, 10)} "
                f"{_rate(rcc, 10)} {_rate(rd, 9)} {_ratio(rc, ra)} {_ratio(rc, rb)} "
                f"{_ratio(rc, rd)} {_ratio(rcc, ra)} {_ratio(rcc, rb)} {_ratio(rcc, rd)} "
                f"{max(rc, rcc or 0.0) * flops / 1e9:8.2f} "
                f"{max(rc, rcc or 0.0) * flops / 1e9 / mm:5.0%}",
                flush=True,
            )


def _rate(r: float | None, width: int) -> str:
    return f"{'—':>{width}}" if r is None else f"{r:{width},.0f}"


def _ratio(r: float | None, over: float | None) -> str:
    return f"{'—':>6}" if r is None or over is None else f"{r / over:5.1f}x"


if __name__ == "__main__":
    main()
