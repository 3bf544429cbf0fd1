"""A member's numbers never depend on its neighbours (issue 13, section 2).

Member m's loss history and final weights (batch norm's running averages included) are
compared with ``torch.equal``, no tolerance:

- in one stack, against the same member beside other neighbours: other rates, other
  optimizers, one that diverges at its first step and is held, or one that does not.
  Same stack size, same kernels: this holds by construction, on any CPU;
- against the member alone (M = 1), when each member draws its own batches: each
  member's matrix products then have the same shape at any M (a batched product),
  and MKL computes them alike. With one batch shared by all members, the product of
  all M·out rows is one matrix product whose shape grows with M: MKL's AVX2 kernels
  round a 26-row product's rows otherwise than a 13-row one's (its AVX-512 ones did not,
  at these sizes), so that case is compared at a fixed M only, and
  ``test_products_across_stack_sizes_stay_within_the_rounding_bound`` bounds the rest.

Measured under both CPU kernel families (the default AVX-512 dispatch and
``ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2``), each with OMP_NUM_THREADS=1
and 2: every exact comparison here holds in all four.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from initlab import data, models
from initlab.train import OPTIMIZERS, TrainConfig, train

# Every test here is a member-equivalence test: make test runs them under AVX2 too.
pytestmark = pytest.mark.numerics

WIDTHS = [5, 13, 7, 3]
N = 40  # examples; batches of 8: five steps an epoch, so step_decay(1) changes lr
STEPS = 12
LR = 0.05  # the watched members' rate
DIVERGE_LR = 1e300  # a rate that sends a member's weights to ±inf at its first step

#: A stack's layout: an optimizer's name is a watched member (the same weights, rate and
#: batch order wherever it sits); None a neighbour of its own (weights, order, optimizer,
#: rate); "twin" a neighbour with the watched members' optimizer and rate but its own
#: weights and order; "diverge" a neighbour that diverges at its first step.
Layout = list[str | None]


def _data(dtype: torch.dtype) -> data.Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, WIDTHS[0], generator=g, dtype=dtype)
    y = torch.randint(0, WIDTHS[-1], (N,), generator=g)
    return data.Dataset("toy", x, y, x[:6], y[:6], WIDTHS[-1])


def _member(
    seed: int, dtype: torch.dtype, activation: str, batch_norm: str | None
) -> nn.Sequential:
    stack = models.mlp(WIDTHS, activation, batch_norm, members=1, dtype=dtype)  # type: ignore[arg-type]
    models.init_members(stack, "he_normal", "normal(std=0.1)", seeds=seed)
    return models.to_module(stack, 0)


def _diverging(layout: Layout, variant: int) -> set[int]:
    """The neighbours that diverge: those marked so; in an odd variant, the first
    "diverge" is healthy instead and the first other neighbour (None) diverges."""
    marked = {m for m, slot in enumerate(layout) if slot == "diverge"}
    if variant % 2 == 0:
        return marked
    first = [layout.index(s) for s in ("diverge", None) if s in layout]
    return marked ^ set(first)


def _one(values: list[object]) -> object:
    return values[0] if len(set(values)) == 1 else values


def _run(
    layout: Layout,
    dtype: torch.dtype,
    own_order: bool,
    clip: str | None = None,
    weight_decay: float = 0.0,
    schedule: str = "constant",
    activation: str = "relu",
    batch_norm: str | None = None,
    variant: int = 0,
) -> tuple[torch.Tensor, list[torch.Tensor], list[str]]:
    """Train a stack laid out as ``layout``; ``variant`` changes every neighbour (its
    weights, order, optimizer and rate, and a diverging one for a healthy one and back).
    Returns the loss history, the final state (weights, running averages) and statuses."""
    watched = [slot for slot in layout if slot in OPTIMIZERS]
    modules, optimizers, lrs, seeds = [], [], [], []
    for m, slot in enumerate(layout):
        k = m + 50 * variant
        if slot in OPTIMIZERS:
            modules.append(_member(OPTIMIZERS.index(str(slot)), dtype, activation, batch_norm))
            optimizers.append(str(slot))
            lrs.append(LR)
            seeds.append(3)
            continue
        modules.append(_member(100 + k, dtype, activation, batch_norm))
        seeds.append(10 + k if own_order else 3)
        if slot == "twin":
            optimizers.append(watched[0])
            lrs.append(LR)
            continue
        optimizers.append(OPTIMIZERS[k % len(OPTIMIZERS)])
        lrs.append(DIVERGE_LR if m in _diverging(layout, variant) else (0.01, 0.2, 0.003)[k % 3])
    stack = models.from_modules(modules)
    config = TrainConfig(
        optimizer=_one(optimizers),  # type: ignore[arg-type]
        lr=_one(lrs),  # type: ignore[arg-type]
        seeds=_one(seeds),  # type: ignore[arg-type]
        batch_size=8,
        steps=STEPS,
        clip=clip,  # type: ignore[arg-type]
        clip_threshold=0.05 if clip == "agc" else 0.3,
        weight_decay=weight_decay,
        schedule=schedule,
        check_every=3,
    )
    result = train(stack, _data(dtype), config)
    state = [t.detach().clone() for t in stack.state_dict().values() if t.dim()]
    return result.loss, state, [m.status for m in result.members]


def _assert_same_member(
    a: tuple[torch.Tensor, list[torch.Tensor], list[str]],
    m: int,
    b: tuple[torch.Tensor, list[torch.Tensor], list[str]],
    n: int,
    where: str,
) -> None:
    assert a[2][m] == b[2][n] == "budget", where
    assert torch.equal(a[0][:, m], b[0][:, n]), where
    assert len(a[1]) == len(b[1]), where
    for p, q in zip(a[1], b[1], strict=True):
        assert torch.equal(p[m], q[n]), where


# Stacks of 2, 3, 5 and 17; each optimizer's watched member at the front, in the middle,
# at the end; neighbours with other rates and optimizers; a diverging neighbour in each
# (in the first, in its variant only).
LAYOUTS: list[Layout] = [
    ["sgd", None],
    [None, "adam", "diverge"],
    ["momentum", "diverge", "rmsprop", None, "adamw"],
    [
        "nesterov",
        None,
        "sgd",
        "adam",
        None,
        None,
        "diverge",
        "rmsprop",
        "adamw",
        None,
        "momentum",
        None,
        "adam",
        None,
        "sgd",
        None,
        "nesterov",
    ],
]
SETTINGS = [  # (clip, weight decay, schedule): each clipper, decay and an lr schedule
    (None, 0.0, "constant"),
    ("value", 0.01, "step_decay(1)"),
    ("norm", 0.0, "step_decay(1)"),
    ("agc", 0.01, "constant"),
]
CASES = [
    pytest.param(
        dtype,
        own,
        *setting,
        id=f"{setting[0]}-{'own' if own else 'shared'}-batches-{str(dtype)[-7:]}",
    )
    for dtype, own, setting in itertools.product(
        (torch.float32, torch.float64), (False, True), SETTINGS
    )
]


@pytest.mark.numerics
@pytest.mark.parametrize(("dtype", "own_order", "clip", "weight_decay", "schedule"), CASES)
def test_a_member_is_bit_identical_whatever_its_neighbours(
    dtype: torch.dtype, own_order: bool, clip: str | None, weight_decay: float, schedule: str
) -> None:
    settings = (dtype, own_order, clip, weight_decay, schedule)
    alone = {opt: _run([opt], *settings) for opt in OPTIMIZERS} if own_order else {}
    for layout in LAYOUTS:
        first = _run(layout, *settings)
        other = _run(layout, *settings, variant=1)  # every neighbour changed
        assert _diverging(layout, 0) | _diverging(layout, 1)  # beside a held member, once
        for variant, run in enumerate((first, other)):  # the diverging ones did, and no other
            diverged = {m for m, status in enumerate(run[2]) if status == "diverged"}
            assert diverged == _diverging(layout, variant)
        for m, slot in enumerate(layout):
            if slot in OPTIMIZERS:
                where = f"{slot} at {m} of {len(layout)}"
                _assert_same_member(first, m, other, m, where + ", other neighbours")
                if own_order:
                    _assert_same_member(first, m, alone[str(slot)], 0, where + ", alone")


@pytest.mark.numerics
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("activation", "batch_norm"), [("tanh", None), ("relu", "before")])
def test_one_rate_for_all_takes_the_same_route_as_one_rate_each(
    dtype: torch.dtype, activation: str, batch_norm: str | None
) -> None:
    # The member alone; beside twins (one optimizer and one rate for the whole stack);
    # beside neighbours with their own: the same bits. With batch norm, its running
    # averages too.
    for opt in OPTIMIZERS:
        runs = [
            _run(layout, dtype, True, activation=activation, batch_norm=batch_norm)
            for layout in ([opt], ["twin", opt, "twin"], [None, opt, None])
        ]
        assert (len(runs[0][1]) > 6) == bool(batch_norm)  # the running averages are compared
        for run, what in zip(runs[1:], ("twins", "neighbours"), strict=True):
            _assert_same_member(run, 1, runs[0], 0, f"{opt} beside {what}")


@pytest.mark.numerics
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_a_diverging_neighbour_changes_nothing_in_a_larger_net(optimizer: str) -> None:
    # Float32, at a size where the products run through MKL's blocked kernels: members 0
    # and 2 beside a healthy member 1 and beside one that diverges at its first step.
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 64, generator=g)
    y = torch.randint(0, 10, (200,), generator=g)
    ds = data.Dataset("toy", x, y, x[:8], y[:8], 10)

    def run(middle_lr: float) -> tuple[torch.Tensor, list[torch.Tensor], str]:
        stack = models.mlp([64, 96, 48, 10], "relu", members=3)
        models.init_members(stack, "he_normal", seeds=[1, 2, 3])
        config = TrainConfig(
            optimizer=optimizer,
            lr=[0.01, middle_lr, 0.02],
            batch_size=32,
            seeds=[4, 5, 6],
            steps=15,
            check_every=4,
        )
        result = train(stack, ds, config)
        kept = [p.detach()[[0, 2]] for p in stack.parameters()]
        return result.loss[:, [0, 2]], kept, result.members[1].status

    healthy, diverging = run(0.05), run(DIVERGE_LR)
    assert healthy[2] == "budget" and diverging[2] == "diverged"
    assert torch.equal(healthy[0], diverging[0])
    for a, b in zip(healthy[1], diverging[1], strict=True):
        assert torch.equal(a, b)


@pytest.mark.numerics
@pytest.mark.parametrize("loss", ["cross_entropy", "bce", "mse"])
@pytest.mark.parametrize("batch", [8, 40_000])
@pytest.mark.parametrize("shared", [True, False], ids=["shared-targets", "own-targets"])
def test_the_loss_and_the_norms_of_a_member_do_not_depend_on_the_stack(
    loss: str, batch: int, shared: bool
) -> None:
    # 40,000 examples: torch sums a lone row of ≥ 32,768 in per-thread pieces, several rows
    # one per thread; the engine's loss must not follow it (it did at M = 1, 2 threads).
    from initlab.train import _member_losses, _per_member_norm

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        g = torch.Generator().manual_seed(0)
        classes = 3 if loss == "cross_entropy" else 1
        logits = torch.randn(17, classes, batch, generator=g)
        y = torch.randint(0, max(classes, 2), (17, batch), generator=g)
        if loss != "cross_entropy":
            y = y.float() if loss == "bce" else torch.randn(17, batch, generator=g)
        grads = [torch.randn(17, *shape, generator=g) for shape in ((13, 5), (13,), (3, 40_000))]

        def member(m: int, members: int) -> tuple[torch.Tensor, torch.Tensor]:
            pick = list(range(m, m + members))  # member m first, its neighbours after
            z = logits[pick].clone().requires_grad_()
            t = y[[m]] if shared else y[pick]
            losses = _member_losses(z, t, loss)
            losses.backward(torch.ones(members))  # type: ignore[no-untyped-call]
            assert z.grad is not None
            norm = _per_member_norm([gr[pick] for gr in grads], members)
            return torch.cat([losses[:1].detach(), norm[:1], z.grad[0].flatten()]), norm

        for m in (0, 4):
            alone, _ = member(m, 1)
            for members in (2, 3, 13):
                assert torch.equal(member(m, members)[0], alone), (m, members)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.numerics
@pytest.mark.parametrize("name", list(models.ACTIVATIONS))
def test_activations_compute_an_element_the_same_wherever_it_sits(name: str) -> None:
    # The bound stated in initlab.train's docstring: torch's relu, leaky_relu, tanh and
    # hardtanh kernels (and the identity) give an element the same bits whether it falls
    # in their vector or scalar code, i.e. wherever its member sits; the others round some
    # elements differently there. Measured over offsets 0-36 and lengths 5-33,333 of
    # 400,000 normal values ×3, both kernel families, float32 and float64: sigmoid 2 ulp,
    # mish 3, elu, selu, silu, softplus, gelu 1 (float32 gelu: exact).
    exact = {"relu", "leaky_relu", "tanh", "hardtanh", "identity", "linear"}
    f = models.ACTIVATIONS[name]()
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(100_000, dtype=dtype, generator=torch.Generator().manual_seed(0)) * 3
        whole = f(x)
        ulp = torch.nextafter(whole.abs(), torch.tensor(math.inf, dtype=dtype)) - whole.abs()
        for start, length in itertools.product((0, 1, 5, 13), (5, 31, 1000, 33_333)):
            part = f(x[start : start + length].clone())
            apart = (part - whole[start : start + length]).abs()
            if name in exact:
                assert torch.equal(part, whole[start : start + length])
            else:
                assert (apart <= 3 * ulp[start : start + length]).all()


@pytest.mark.numerics
def test_products_across_stack_sizes_stay_within_the_rounding_bound() -> None:
    # Where the kernels themselves change with the stack size, the difference is rounding.
    # A member's outputs and gradients in stacks of 2, 17 and 64 against alone, for a
    # 784-100-100-10 tanh net on a batch of 64 (MKL blocks and threads the product of
    # M·100 rows, or a batch of M, otherwise than that of 100). Each element stays within
    # c·u·Σ|aᵢbᵢ| of its product (u = 2⁻²⁴; the sum over the product's own terms, from the
    # member alone), with c = 16: measured c ≤ 7.3 with 2 threads (AVX-512 and AVX2), and
    # 0 with 1 thread (then the same bits).
    from initlab.train import _member_losses

    torch.manual_seed(0)
    x = torch.randn(64, 784)
    y = torch.randint(0, 10, (64,))
    plains = [models.to_module(models.mlp([784, 100, 100, 10], "tanh"), 0) for _ in range(64)]
    me = plains[37]

    # the scale Σ|aᵢbᵢ| of every element, from the member alone in plain torch
    pre, ins, h = [], [x], x
    for layer in me:
        h = layer(h)
        if isinstance(layer, nn.Linear):
            h.retain_grad()
            pre.append(h)
        else:
            ins.append(h)
    torch.nn.functional.cross_entropy(h, y).backward()  # type: ignore[no-untyped-call]
    linears = [layer for layer in me if isinstance(layer, nn.Linear)]
    out_scale = (ins[-1].abs() @ linears[-1].weight.abs().T + linears[-1].bias.abs()).T
    scales = []
    for z, a in zip(pre, ins, strict=True):
        assert z.grad is not None
        dz = z.grad.abs()
        scales += [dz.T @ a.abs(), dz.sum(dim=0)]  # weight and bias gradients

    def member(stack: models.Stack, m: int) -> list[torch.Tensor]:
        out = stack.logits(x)
        _member_losses(out, y.unsqueeze(0), "cross_entropy").sum().backward()  # type: ignore[no-untyped-call]
        return [out[m].detach()] + [p.grad[m] for p in stack.parameters()]  # type: ignore[index]

    alone = member(models.from_modules([me]), 0)
    u = 2.0**-24
    for members in (2, 17, 64):
        group = plains[38 - members : 38] if members <= 38 else plains[:members]
        ours = member(models.from_modules(group), group.index(me))
        for a, b, scale in zip(ours, alone, [out_scale, *scales], strict=True):
            assert ((a - b).abs() <= 16 * u * scale.detach()).all(), members


@pytest.mark.numerics
def test_a_members_products_do_not_depend_on_where_it_sits() -> None:
    # initlab._blas puts MKL in strict mode when initlab is imported: before it, on an
    # AMD EPYC, 130 of 6,720 member products of these sizes differed in the last bit from
    # the member's product alone. Alone means on fresh (aligned) copies, and on copies
    # placed one element off a 64-byte boundary.
    if torch.backends.mkl.is_available():
        assert os.environ.get("MKL_CBWR", "").endswith("STRICT")
    g = torch.Generator().manual_seed(0)
    for dtype, (m, k, n), members in itertools.product(
        (torch.float32, torch.float64), ((3, 13, 13), (7, 13, 8), (13, 5, 7)), (2, 3, 5)
    ):
        a = torch.randn(members, m, k, generator=g, dtype=dtype)
        b = torch.randn(members, k, n, generator=g, dtype=dtype)
        for bt in (b, b.transpose(1, 2).contiguous().transpose(1, 2)):
            stacked = torch.bmm(a, bt)
            for i in range(members):
                fresh = torch.bmm(a[i : i + 1].clone(), bt[i : i + 1].clone())[0]
                assert torch.equal(stacked[i], fresh)
                off_a = torch.empty(m * k + 1, dtype=dtype)[1:].view(1, m, k)
                off_b = torch.empty(k * n + 1, dtype=dtype)[1:]  # bt's own layout:
                row_major = bt.stride(2) == 1
                off_b = off_b.view(1, k, n) if row_major else off_b.view(1, n, k).mT
                off_a.copy_(a[i : i + 1])
                off_b.copy_(bt[i : i + 1])
                assert torch.equal(stacked[i], torch.bmm(off_a, off_b)[0])


def test_mkl_is_put_in_strict_mode_or_the_user_is_told() -> None:
    code = "import torch, os; {before}import initlab.models; print(os.environ.get('MKL_CBWR'))"
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "INITLAB_MKL_STRICT")}
    run = functools.partial(subprocess.run, capture_output=True, text=True, check=True, env=env)
    if not torch.backends.mkl.is_available():  # nothing to set
        return
    done = run([sys.executable, "-c", code.format(before="")])
    assert done.stdout.strip() == "AUTO,STRICT" and "RuntimeWarning" not in done.stderr
    mm = "torch.mm(torch.ones(64, 64), torch.ones(64, 64)); "  # MKL ran: too late, and said so
    late = run([sys.executable, "-c", code.format(before=mm)])
    assert "could not put MKL in its strict reproducible mode" in late.stderr
    assert late.stdout.strip() == "None"
    done = run(
        [sys.executable, "-c", code.format(before="")], env={**env, "INITLAB_MKL_STRICT": "0"}
    )
    assert done.stdout.strip() == "None"
