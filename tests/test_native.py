"""compile=True's compiled kernel (initlab.native): the engine's runs through it against
the eager engine, whose gradients are autograd's bit for bit (test_train.py), in float64.

Tolerances: the kernel sums in another order than torch's kernels (blocks of 32 lanes,
added in a tree), so its numbers differ from eager's in the last bits. Over the runs of
test_the_kernel_trains_as_the_eager_engine (lr ≤ 0.2, 40 steps, not chaotic) the largest
elementwise relative difference measured was 4.2e-13 on parameters, losses, gradient norms
and epoch costs, with 2 threads on the default kernels and with 1 thread under
ATEN_CPU_CAPABILITY=avx2 (on a 2-core AVX2 AMD EPYC, where the two families coincide);
1e-10, the stacked-equals-alone tolerance of the issue, leaves over two orders of margin.
The tests of the MKL route, of momentum, Nesterov, weight decay and clipping, of
stopping and of a hook mid-run (MKL sums in its own order too) measured up to 1.5e-12
with 2 threads on the default kernels and 2.0e-12 with 1 thread under
ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2,STRICT, on elements above 1e-4 (below, the
absolute 1e-14 governs); 1e-10 leaves 50× margin there.
"""

from __future__ import annotations

import itertools
import math
import os
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from initlab import data, models, native
from initlab.train import (
    LogRow,
    Observer,
    Progress,
    ProgressObserver,
    Run,
    TrainConfig,
    TrainResult,
    train,
)

pytestmark = pytest.mark.numerics

RTOL = 1e-10


@pytest.fixture(scope="module", autouse=True)
def _kernels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Compiled into a cache of the tests' own, once for the module.
    mp = pytest.MonkeyPatch()
    mp.setenv("INITLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    native.kernel.cache_clear()
    if native.kernel(torch.float64) is None:  # pragma: no cover - CI has gcc
        pytest.fail("no C compiler: the native kernel could not be built")
    yield
    mp.undo()
    native.kernel.cache_clear()


def _circles(loss: str) -> data.Dataset:
    ds = data.load("circles", n=150, noise=0.1, seed=3, test_size=40)
    return data.Dataset(
        "circles", ds.x_train.double(), ds.y_train, ds.x_test.double(), ds.y_test, 2
    )


def _stack(act: str, loss: str, members: int, widths: tuple[int, ...] = (2, 8, 4)) -> models.Stack:
    out = 1 if loss == "bce" else 2
    stack = models.mlp([*widths, out], act, members=members, dtype=torch.float64)
    models.init_members(stack, "xavier_normal", seeds=11)
    return stack


def _member(stack: models.Stack, m: int) -> models.Stack:
    """Member m of ``stack`` as a stack of one."""
    single = _stack("tanh", "cross_entropy", 1)
    with torch.no_grad():
        for p, q in zip(single.parameters(), stack.parameters(), strict=True):
            p.copy_(q[m : m + 1])
    return single


class _Calls:
    """Counts the kernel's calls and the steps they ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = self.steps = 0
        self.mkl: set[bool] = set()  # whether each call had MKL for its larger layers
        real = native.MlpSteps.__call__

        def spy(kernel: native.MlpSteps, *args: Any) -> Any:
            self.calls += 1
            self.steps += args[-1]
            sizes = [a * b for a, b in itertools.pairwise(kernel.widths.tolist())]
            self.mkl.add(bool(kernel.gemm) and max(sizes) >= kernel.gemm_min)
            return real(kernel, *args)

        monkeypatch.setattr(native.MlpSteps, "__call__", spy)


def _runs(
    act: str,
    loss: str,
    members: int,
    config: dict[str, Any],
    observers: tuple[list[Observer], list[Observer]] = ([], []),
    widths: tuple[int, ...] = (2, 8, 4),
) -> tuple[TrainResult, TrainResult, models.Stack, models.Stack]:
    """The same run with compile=True and eager; ``observers``: each run's own."""
    ds = _circles(loss)
    compiled, eager = _stack(act, loss, members, widths), _stack(act, loss, members, widths)
    config = {"loss": loss, **config}
    got = train(compiled, ds, TrainConfig(compile=True, **config), observers=observers[0])
    want = train(eager, ds, TrainConfig(**config), observers=observers[1])
    return got, want, compiled, eager


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=RTOL, atol=1e-14, equal_nan=True)


def _same_run(got: TrainResult, want: TrainResult, a: models.Stack, b: models.Stack) -> None:
    assert got.steps.tolist() == want.steps.tolist()
    assert got.eval_steps.tolist() == want.eval_steps.tolist()
    for name in ("loss", "grad_norm", "lr", "epoch_loss", "train_accuracy", "test_accuracy"):
        _close(getattr(got, name), getattr(want, name))
    assert torch.equal(got.clipped, want.clipped)
    assert [(m.status, m.stopped_step) for m in got.members] == [
        (m.status, m.stopped_step) for m in want.members
    ]
    assert got.total_steps == want.total_steps
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        _close(p.detach(), q.detach())
        assert p.grad is not None and q.grad is not None
        _close(p.grad, q.grad)  # the last step's gradients, left in .grad


_WIDE = (2, 40, 30)  # layers of 80, 1,200 and 60 (bce: 30) weights


def _through_mkl(monkeypatch: pytest.MonkeyPatch) -> None:
    """The products of layers of 64 weights and more go to torch's MKL."""
    if not native.gemm(torch.float64):  # pragma: no cover - x86 torch has MKL
        pytest.skip("this torch has no MKL: the kernel computes every product itself")
    monkeypatch.setattr("initlab.train._NATIVE_GEMM_MIN", 64)


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("loss", ["cross_entropy", "bce"])
@pytest.mark.parametrize(
    "batching",
    [
        {"batch_size": "full"},
        {"batch_size": 32, "seeds": 5},  # one order, shared; 110 = 3·32 + 14
        {"batch_size": 32, "seeds": [5, 6, 7]},  # an order per member
    ],
    ids=["full", "shared", "per-member"],
)
def test_the_kernel_trains_as_the_eager_engine(
    act: str, loss: str, batching: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _Calls(monkeypatch)
    config = {"lr": [0.1, 0.05, 0.2], "steps": 40, "log_every": 3, "eval_every": 17}
    config |= {"check_every": 10, **batching}
    got, want, a, b = _runs(act, loss, 3, config)
    _same_run(got, want, a, b)
    assert calls.steps == 40 and calls.calls < 40  # steps ran several to a call


def test_a_stacked_member_is_bit_for_bit_the_member_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each member's arithmetic is its own: the same bits at M = 1 and inside a stack of
    # 5, whichever thread runs it.
    calls = _Calls(monkeypatch)
    ds = _circles("cross_entropy")
    lrs = [0.05, 0.1, 0.2, 0.3, 0.15]
    config = {"batch_size": 16, "seeds": [1, 2, 3, 4, 5], "steps": 60, "compile": True}
    stack = _stack("tanh", "cross_entropy", 5)
    alone = [_member(_stack("tanh", "cross_entropy", 5), m) for m in range(5)]
    got = train(stack, ds, TrainConfig(lr=lrs, **config))
    for m, member in enumerate(alone):
        single = {**config, "seeds": config["seeds"][m]}  # type: ignore[index]
        result = train(member, ds, TrainConfig(lr=lrs[m], **single))
        assert torch.equal(result.loss[:, 0], got.loss[:, m])
        for p, q in zip(member.parameters(), stack.parameters(), strict=True):
            assert torch.equal(p.detach()[0], q.detach()[m])
    assert calls.steps == 6 * 60


class _Recorder(Observer):
    every = 7

    def __init__(self) -> None:
        self.rows: list[tuple[int, list[float]]] = []
        self.steps: list[int] = []

    def on_log(self, run: Run, row: LogRow) -> None:
        assert run.step == row.step + 1  # the run is read right after the row's step
        self.rows.append((row.step, row.loss.tolist()))

    def on_step(self, run: Run) -> None:
        self.steps.append(run.step)
        if run.step == 28:
            run.stop("enough")


def test_observers_hear_the_same_steps_as_in_the_eager_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _Calls(monkeypatch)
    config = {"lr": 0.1, "steps": 50, "log_every": 4, "batch_size": 32, "seeds": 2}
    compiled, eager = _Recorder(), _Recorder()
    got, want, a, b = _runs("relu", "cross_entropy", 2, config, ([compiled], [eager]))
    assert compiled.steps == eager.steps == [7, 14, 21, 28]
    # Rows at 0, 4, …, 24, and the last step taken (27) when the run is stopped.
    want_rows = [*range(0, 28, 4), 27]
    assert [s for s, _ in compiled.rows] == [s for s, _ in eager.rows] == want_rows
    for (_, x), (_, y) in zip(compiled.rows, eager.rows, strict=True):
        _close(torch.tensor(x), torch.tensor(y))
    assert got.stop_reason == want.stop_reason == "enough"
    _same_run(got, want, a, b)
    assert calls.steps == 28 and calls.calls >= 8  # a call ends at each row and each 7th


@pytest.mark.parametrize(
    "update",
    [
        {},
        {"optimizer": "momentum", "clip": "norm", "clip_threshold": 1.0},
        {"optimizer": "nesterov", "clip": "value", "clip_threshold": 0.5, "weight_decay": 0.01},
    ],
    ids=["sgd", "momentum-norm", "nesterov-value"],
)
def test_stopping_converged_and_diverged_members_as_the_eager_loop(
    update: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _Calls(monkeypatch)
    # Member 0 runs out of steps, member 1 (lr 1e-12) converges, member 2 (lr 1e300)
    # diverges at once; the held members' losses are still recorded. Clipped, the
    # diverged member's non-finite gradients are left as they are (and do not fire),
    # and a held member's momentum still moves, as in the eager engine.
    config = {"lr": [0.1, 1e-12, 1e300], "steps": 300, "tol": 1e-7, "window": 50}
    config |= {"check_every": 50, "log_every": 7, **update}
    for loss in ("cross_entropy", "bce"):
        got, want, a, b = _runs("relu", loss, 3, config)
        assert [m.status for m in got.members] == ["budget", "converged", "diverged"]
        _same_run(got, want, a, b)
        finals = [m.final_loss for m in want.members]
        assert [m.final_loss for m in got.members] == pytest.approx(finals, rel=RTOL, nan_ok=True)
        assert not math.isfinite(got.members[2].final_loss)
    assert calls.steps == 2 * 300


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov"])
@pytest.mark.parametrize(
    "update",
    [
        {},
        {"weight_decay": 0.05},
        {"clip": "norm", "clip_threshold": [0.15, 0.3]},
        {"clip": "value", "clip_threshold": 0.02, "weight_decay": 0.01},
    ],
    ids=["plain", "decay", "norm", "value"],
)
@pytest.mark.parametrize("mkl", [False, True], ids=["loops", "mkl"])
def test_optimizers_and_clipping_in_the_kernel_as_the_eager_engine(
    optimizer: str, update: dict[str, Any], mkl: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if mkl:
        _through_mkl(monkeypatch)
    else:
        monkeypatch.setattr("initlab.train._NATIVE_GEMM_MIN", 10**9)
    calls = _Calls(monkeypatch)
    config = {"lr": [0.1, 0.05], "steps": 40, "log_every": 1, "batch_size": 32, "seeds": 2}
    config |= {"optimizer": optimizer, "momentum": 0.8, **update}
    got, want, a, b = _runs("tanh", "cross_entropy", 2, config, widths=_WIDE)
    _same_run(got, want, a, b)  # the clipped flags of every step, exactly
    if "clip" in update:  # clipping fired on some steps, not on all
        assert bool(got.clipped.any()) and not bool(got.clipped.all())
    assert calls.steps == 40 and calls.mkl == {mkl}


class _Hooker(Observer):
    """At the first check, puts a forward hook on the first layer: it counts calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.handle: Any = None

    def on_step(self, run: Run) -> None:
        if self.handle is None:
            layer = run._engine.model.layers[0]

            def hook(module: nn.Module, args: Any, out: Any) -> None:
                self.calls += 1

            self.handle = layer.register_forward_hook(hook)


@pytest.mark.parametrize(
    "update",
    [{}, {"optimizer": "nesterov", "clip": "norm", "clip_threshold": 0.3}],
    ids=["sgd", "nesterov-clipped"],
)
def test_a_hook_put_on_mid_run_sees_every_later_step(
    update: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # After the hook, the steps through autograd go on from the kernel's momentum.
    calls = _Calls(monkeypatch)
    config = {"lr": 0.1, "steps": 30, "check_every": 10, "batch_size": 32, "seeds": 0, **update}
    hooker, eager_hooker = _Hooker(), _Hooker()
    got, want, a, b = _runs("relu", "cross_entropy", 2, config, ([hooker], [eager_hooker]))
    assert calls.steps == 10  # the steps before the hook
    assert hooker.calls == eager_hooker.calls > 20  # the 20 later steps, and evaluations
    _same_run(got, want, a, b)


def test_float32_runs_as_eager_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both against float64 (the reference): the kernel in float32 is as close to it as
    # eager float32 is, within a factor of 4.
    calls = _Calls(monkeypatch)
    ds = _circles("cross_entropy")
    ds32 = data.Dataset("c", ds.x_train.float(), ds.y_train, ds.x_test.float(), ds.y_test, 2)
    reference = _stack("tanh", "cross_entropy", 2)
    runs = []
    for compiled in (True, False):
        b = models.mlp([2, 8, 4, 2], "tanh", members=2, dtype=torch.float32)
        b.load_state_dict({k: v.float() for k, v in reference.state_dict().items()})
        runs.append(train(b, ds32, TrainConfig(lr=0.1, steps=50, compile=compiled)).loss)
    r64 = train(reference, ds, TrainConfig(lr=0.1, steps=50)).loss
    kernel, eager = ((r.double() - r64).abs().max().item() for r in runs)
    assert kernel <= 4 * eager + 1e-7, (kernel, eager)
    assert calls.steps == 50


def test_ctrl_c_stops_a_compiled_run_at_a_step_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _Calls(monkeypatch)

    def interrupt(p: Progress) -> None:
        if p.step == 20:
            os.kill(os.getpid(), signal.SIGINT)

    stack = _stack("relu", "cross_entropy", 2)
    config = TrainConfig(lr=0.1, steps=1000, check_every=10, compile=True)
    result = train(
        stack, _circles("cross_entropy"), config, observers=[ProgressObserver(interrupt)]
    )
    assert result.interrupted and result.total_steps == 20 == calls.steps
    assert [m.status for m in result.members] == ["interrupted", "interrupted"]
    assert len(result.loss) == 20 and torch.isfinite(result.loss).all()


class _Epochs(Observer):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def on_step(self, run: Run) -> None:
        self.seen.append((run.step, run.epoch))


@pytest.mark.parametrize("batch_size", ["full", 32])
@pytest.mark.parametrize("schedule", ["constant", "step_decay(2)", "exponential(0.9)"])
def test_schedules_and_epochs_as_in_the_eager_loop(
    batch_size: str | int, schedule: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _Calls(monkeypatch)
    config = {"lr": [0.1, 0.3], "steps": 45, "batch_size": batch_size, "seeds": 4}
    config |= {"schedule": schedule, "check_every": 10, "log_every": 2}
    seen = [_Epochs(), _Epochs()]
    got, want, a, b = _runs("sigmoid", "cross_entropy", 2, config, ([seen[0]], [seen[1]]))
    _same_run(got, want, a, b)
    assert seen[0].seen == seen[1].seen and len(seen[0].seen) == 5
    assert calls.steps == 45


def test_a_deep_narrow_stack_runs_in_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    # 70 layers: the kernel keeps one pointer per layer, whatever the depth.
    calls = _Calls(monkeypatch)
    config = {"lr": 0.05, "steps": 12, "batch_size": 16, "seeds": [1, 2]}
    got, want, a, b = _runs("tanh", "cross_entropy", 2, config, widths=(2, *[4] * 69))
    _same_run(got, want, a, b)
    assert calls.steps == 12


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("loss", ["cross_entropy", "bce"])
@pytest.mark.parametrize(
    "batching",
    [{"batch_size": "full"}, {"batch_size": 32, "seeds": 5}, {"batch_size": 32, "seeds": [5, 6]}],
    ids=["full", "shared", "per-member"],
)
def test_layers_through_mkl_train_as_the_eager_engine(
    act: str, loss: str, batching: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first two layers' products in MKL (the first reading the batch as rows), the
    # last in the kernel's loops.
    _through_mkl(monkeypatch)
    calls = _Calls(monkeypatch)
    config = {"lr": [0.1, 0.2], "steps": 40, "log_every": 3, "eval_every": 17, **batching}
    got, want, a, b = _runs(act, loss, 2, config, widths=_WIDE)
    _same_run(got, want, a, b)
    assert calls.steps == 40 and calls.calls < 40 and calls.mkl == {True}


@pytest.mark.parametrize("threads", [1, 2])
def test_a_stacked_member_through_mkl_is_the_member_alone(
    threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stacked, a member's products run in MKL on its own thread; alone, on MKL's
    # threads. With one thread the two are the same calls, to the bit; with two, MKL
    # may sum a product in another order (on a 2-core AMD EPYC, these members' weights
    # differed by up to 1.1e-16 after 30 steps; the tolerance is 1e-10).
    _through_mkl(monkeypatch)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ds = _circles("cross_entropy")
        lrs = [0.05, 0.1, 0.2]
        config = {"batch_size": 16, "seeds": [1, 2, 3], "steps": 30, "compile": True}
        stack = _stack("relu", "cross_entropy", 3, _WIDE)
        got = train(stack, ds, TrainConfig(lr=lrs, **config))
        for m in range(3):
            member = _stack("relu", "cross_entropy", 1, _WIDE)
            with torch.no_grad():
                for p, q in zip(
                    member.parameters(),
                    _stack("relu", "cross_entropy", 3, _WIDE).parameters(),
                    strict=True,
                ):
                    p.copy_(q[m : m + 1])
            single = {**config, "seeds": config["seeds"][m]}  # type: ignore[index]
            result = train(member, ds, TrainConfig(lr=lrs[m], **single))
            pairs = [(result.loss[:, 0], got.loss[:, m])]
            pairs += [
                (p.detach()[0], q.detach()[m])
                for p, q in zip(member.parameters(), stack.parameters(), strict=True)
            ]
            for a, b in pairs:
                if threads == 1:
                    assert torch.equal(a, b)
                else:
                    _close(a, b)
    finally:
        torch.set_num_threads(before)


class _Plan:
    """A batch plan of the user's own: int32 rows, or rows past the data's end."""

    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows

    @property
    def steps_per_epoch(self) -> int:
        return 2

    def epoch(self, epoch: int) -> Iterator[torch.Tensor]:
        yield from (self.rows, self.rows.flip(-1))


def test_a_batch_plan_of_ones_own_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _Calls(monkeypatch)
    ds = _circles("cross_entropy")
    rows = torch.arange(20, dtype=torch.int32)
    results = [
        train(
            _stack("relu", "cross_entropy", 2),
            ds,
            TrainConfig(lr=0.1, steps=6, compile=c),
            batches=_Plan(rows),
        )
        for c in (True, False)
    ]
    _close(results[0].loss, results[1].loss)
    assert calls.steps == 6
    config = TrainConfig(lr=0.1, steps=6, compile=True)
    with pytest.raises(IndexError, match="rows from 10 to 200; the training set has rows 0 to 109"):
        train(_stack("relu", "cross_entropy", 2), ds, config, batches=_Plan(rows * 10 + 10))
    with pytest.raises(ValueError, match="3 orders of rows for 2 members"):
        train(
            _stack("relu", "cross_entropy", 2),
            ds,
            config,
            batches=_Plan(rows.view(1, 20).expand(3, 20)),
        )


def test_no_compiler_warns_and_leaves_the_kernel_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INITLAB_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    native.kernel.cache_clear()
    try:
        with pytest.warns(
            RuntimeWarning, match="could not build its compiled step kernel.*install a C compiler"
        ):
            assert native.kernel(torch.float32) is None
    finally:
        native.kernel.cache_clear()


def test_the_kernel_is_compiled_once_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INITLAB_CACHE", str(tmp_path))
    native.kernel.cache_clear()
    try:
        assert native.kernel(torch.float32) is not None
        built = sorted((tmp_path / "native").glob("mlp_steps_float_*"))
        assert len(built) == 1
        native.kernel.cache_clear()

        def no_compiling(*args: Any) -> None:
            raise AssertionError("compiled again")

        monkeypatch.setattr(native, "_compile", no_compiling)  # loaded, not compiled
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert native.kernel(torch.float32) is not None
    finally:
        native.kernel.cache_clear()
    assert native.kernel(torch.int64) is None  # only float32 and float64
