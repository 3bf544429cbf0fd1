"""The stacked engine against each member trained alone with torch.optim, in float64."""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from initlab import data, models
from initlab.train import (
    Evaluation,
    LogRow,
    MemberStopped,
    Observer,
    Progress,
    ProgressObserver,
    Run,
    TrainConfig,
    TrainResult,
    _member_losses,
    schedule_factor,
    train,
)

REL = 1e-10  # float64: the stack sums in another order and scales updates by lr


def _toy(n: int = 24, features: int = 4, classes: int = 3, seed: int = 0) -> data.Dataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g)
    return data.Dataset("toy", x, y, x[:6] + 0.1, y[:6], classes)


def _reference(
    plain: nn.Module,
    ds: data.Dataset,
    config: TrainConfig,
    m: int,
    lr: float,
    optimizer: str,
    schedule: str,
    threshold: float,
) -> tuple[list[float], nn.Module]:
    """Member m alone: a plain module, torch.optim at its own lr, torch's clipping."""
    params = list(plain.parameters())
    wd = config.weight_decay
    if optimizer in ("sgd", "momentum", "nesterov"):
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params,
            lr=lr,
            momentum=0.0 if optimizer == "sgd" else config.momentum,
            nesterov=optimizer == "nesterov",
            weight_decay=wd,
        )
    elif optimizer == "rmsprop":
        opt = torch.optim.RMSprop(
            params, lr=lr, alpha=config.alpha, eps=config.eps, weight_decay=wd
        )
    else:
        cls = torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW
        opt = cls(params, lr=lr, betas=config.betas, eps=config.eps, weight_decay=wd)
    n = ds.n_train
    seeds = config.seeds if isinstance(config.seeds, int) else config.seeds[m]
    batcher = None if config.batch_size == "full" else data.Batcher(n, config.batch_size, seeds)
    losses: list[float] = []
    assert config.steps is not None
    epoch = 0
    while len(losses) < config.steps:
        for group in opt.param_groups:
            group["lr"] = lr * schedule_factor(schedule, epoch)
        for idx in batcher.epoch(epoch) if batcher else [torch.arange(n)]:
            if len(losses) == config.steps:
                break
            out = plain(ds.x_train[idx])
            if config.loss == "cross_entropy":
                loss = F.cross_entropy(out, ds.y_train[idx])
            elif config.loss == "bce":
                loss = F.binary_cross_entropy_with_logits(out[:, 0], ds.y_train[idx].double())
            else:
                loss = F.mse_loss(out[:, 0], ds.y_train[idx].double())
            opt.zero_grad()
            loss.backward()
            if config.clip == "norm":
                nn.utils.clip_grad_norm_(params, threshold)
            elif config.clip == "value":
                nn.utils.clip_grad_value_(params, threshold)
            opt.step()
            losses.append(loss.item())
        epoch += 1
    return losses, plain


def _compare(stack: models.Stack, ds: data.Dataset, config: TrainConfig) -> float:
    """Train the stack and every member alone; the worst relative difference seen."""
    M = stack.members
    plains = [models.to_module(stack, m) for m in range(M)]
    result = train(stack, ds, config)
    lrs = config.per_member("lr", M)
    opts = config.per_member("optimizer", M)
    scheds = config.per_member("schedule", M)
    thr = config.per_member("clip_threshold", M)
    worst = 0.0
    for m in range(M):
        losses, plain = _reference(plains[m], ds, config, m, lrs[m], opts[m], scheds[m], thr[m])
        ours = result.loss[:, m]
        theirs = torch.tensor(losses, dtype=torch.float64)
        worst = max(worst, ((ours - theirs).abs() / theirs.abs().clamp(min=1e-300)).max().item())
        for a, b in zip(models.to_module(stack, m).parameters(), plain.parameters(), strict=True):
            worst = max(worst, ((a - b).abs().max() / b.abs().max().clamp(min=1e-300)).item())
    return worst


# Batch norm needs more than one example per batch, so SGD (batch size 1) runs without it.
ENGINE_CASES = [
    (opt, bn, bs)
    for opt in ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")
    for bn in (None, "before", "after")
    for bs in ("full", 1, 5)
    if not (bs == 1 and bn is not None)
]


@pytest.mark.numerics
@pytest.mark.parametrize(("optimizer", "batch_norm", "batch_size"), ENGINE_CASES)
def test_stack_equals_members_trained_alone(
    optimizer: str, batch_norm: str | None, batch_size: str | int
) -> None:
    torch.manual_seed(1)
    stack = models.mlp([4, 6, 3], "tanh", batch_norm, members=3, dtype=torch.float64)  # type: ignore[arg-type]
    models.init_members(stack, ["he_normal", "xavier_normal", "normal(std=0.3)"], "zeros", seeds=1)
    config = TrainConfig(
        optimizer=optimizer,
        lr=[0.05, 0.01, 0.2],
        batch_size=batch_size,  # type: ignore[arg-type]
        seeds=[3, 4, 5],
        steps=30,
        weight_decay=0.01 if optimizer == "adamw" else 0.0,
        schedule="step_decay(2)",
        check_every=7,
    )
    assert _compare(stack, _toy(), config) < REL


@pytest.mark.numerics
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_one_lr_for_all_members_takes_the_direct_path_and_agrees(optimizer: str) -> None:
    stack = models.mlp([4, 5, 3], "relu", members=2, dtype=torch.float64)
    models.init_members(stack, "he_normal", seeds=2)
    config = TrainConfig(optimizer=optimizer, lr=0.05, batch_size=6, seeds=0, steps=25)
    assert _compare(stack, _toy(), config) < REL


@pytest.mark.numerics
@pytest.mark.parametrize("slice_elements", [2**20, 1000])
def test_a_large_nets_sgd_slice_by_slice_equals_members_trained_alone(
    monkeypatch: pytest.MonkeyPatch, slice_elements: int
) -> None:
    # Over 256k parameters in all, plain SGD updates each tensor a slice of members at a
    # time (one slice here; with 1,000 elements, one member a slice).
    from initlab import train as engine

    monkeypatch.setattr(engine, "_SGD_SLICE", slice_elements)
    taken: list[bool] = []
    original = engine._Rule.sgd_in_place

    def spy(self: engine._Rule, *args: object) -> bool:
        taken.append(original(self, *args))  # type: ignore[arg-type]
        return taken[-1]

    monkeypatch.setattr(engine._Rule, "sgd_in_place", spy)
    torch.manual_seed(3)
    stack = models.mlp([4, 300, 300, 3], "relu", members=3, dtype=torch.float64)
    config = TrainConfig(lr=[0.05, 0.01, 0.2], batch_size=5, seeds=[3, 4, 5], steps=12)
    assert _compare(stack, _toy(), config) < REL
    assert taken and all(taken)


@pytest.mark.numerics
@pytest.mark.parametrize("clip", ["norm", "value"])
def test_per_member_clipping_equals_torch_clipping_alone(clip: str) -> None:
    stack = models.mlp([4, 6, 3], "relu", members=3, dtype=torch.float64)
    models.init_members(stack, "normal(std=2)", seeds=5)
    config = TrainConfig(
        optimizer="momentum",
        lr=0.1,
        clip=clip,
        clip_threshold=[0.05, 0.5, 50.0],  # type: ignore[arg-type]
        steps=20,
    )
    assert _compare(stack, _toy(), config) < REL
    result = train(models.mlp([4, 6, 3], members=3, dtype=torch.float64), _toy(), config)
    # a tight threshold fires on most steps, a loose one never
    assert result.clipped[:, 0].double().mean() > 0.5 and not result.clipped[:, 2].any()
    fired = result.grad_norm[:, 2] > 50.0
    assert not fired.any()


@pytest.mark.numerics
def test_mixed_optimizers_in_one_stack() -> None:
    stack = models.mlp([4, 6, 3], "tanh", members=3, dtype=torch.float64)
    models.init_members(stack, "xavier_normal", seeds=3)
    config = TrainConfig(
        optimizer=["sgd", "momentum", "adam"], lr=[0.1, 0.05, 0.01], batch_size=8, seeds=1, steps=30
    )
    assert _compare(stack, _toy(), config) < REL


@pytest.mark.numerics
@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_other_losses(loss: str) -> None:
    ds = _toy(classes=2)
    stack = models.mlp([4, 5, 1], "relu", members=2, dtype=torch.float64)
    models.init_members(stack, "he_normal", seeds=4)
    config = TrainConfig(loss=loss, optimizer="adam", lr=[0.01, 0.03], steps=15)  # type: ignore[arg-type]
    assert _compare(stack, ds, config) < REL


@pytest.mark.numerics
def test_a_diverging_member_leaves_the_others_bit_identical() -> None:
    ds = _toy()
    config = TrainConfig(
        optimizer="sgd",
        lr=[0.1, 1e6, 0.05],
        batch_size=6,
        seeds=[1, 2, 3],
        steps=40,
        check_every=10,
    )
    full = models.mlp([4, 6, 3], "relu", members=3, dtype=torch.float64)
    models.init_members(full, ["he_normal", "normal(std=100)", "xavier_normal"], seeds=[7, 8, 9])
    pair = models.from_modules([models.to_module(full, 0), models.to_module(full, 2)])
    result = train(full, ds, config)
    alone = train(
        pair,
        ds,
        TrainConfig(
            optimizer="sgd", lr=[0.1, 0.05], batch_size=6, seeds=[1, 3], steps=40, check_every=10
        ),
    )
    assert [m.status for m in result.members] == ["budget", "diverged", "budget"]
    assert result.members[1].stopped_step < 40
    assert torch.equal(result.loss[:, [0, 2]], alone.loss)
    for a, b in zip(full.parameters(), pair.parameters(), strict=True):
        assert torch.equal(a[[0, 2]], b)
    assert torch.isfinite(result.loss[:, [0, 2]]).all()


def test_convergence_stops_a_member_and_records_when() -> None:
    stack = models.mlp([4, 6, 3], "tanh", members=2, dtype=torch.float64)
    models.init_members(stack, "xavier_normal", seeds=0)
    config = TrainConfig(
        optimizer="adam", lr=[0.05, 1e-12], steps=2000, tol=1e-7, window=50, check_every=50
    )
    result = train(stack, _toy(), config)
    slow = result.members[1]  # lr 1e-12: its cost hardly moves, so it converges at once
    assert slow.status == "converged" and slow.stopped_step == 100  # steps taken: 0…99
    loss = result.loss[:, 1]
    assert abs(loss[99] - loss[49]) < 1e-7
    weights = models.to_module(stack, 1)[0].weight.clone()
    assert result.members[0].stopped_step > slow.stopped_step
    # frozen after converging: the weights it has are those it had when it stopped
    assert torch.equal(models.to_module(stack, 1)[0].weight, weights)


def test_history_and_frames() -> None:
    stack = models.mlp([4, 5, 3], members=2, dtype=torch.float64)
    config = TrainConfig(lr=0.1, batch_size=10, steps=9, log_every=2, eval_every=3)
    result = train(stack, _toy(), config)
    assert result.steps.tolist() == [0, 2, 4, 6, 8]
    assert result.epoch_loss.shape == (3, 2)  # 24 examples, batches 10, 10, 4
    assert result.eval_steps.tolist() == [3, 6, 9]  # the end, once
    frame = result.to_frame()
    assert len(frame) == 10 and set(frame.columns) >= {"member", "step", "loss", "lr", "grad_norm"}
    summary = result.summary_frame()
    assert list(summary["status"]) == ["budget", "budget"]
    assert 0 <= summary["train_accuracy"][0] <= 1


def test_epoch_loss_is_the_batch_weighted_mean() -> None:
    stack = models.mlp([4, 5, 3], members=1, dtype=torch.float64)
    result = train(stack, _toy(), TrainConfig(lr=1e-12, batch_size=10, epochs=1))
    weights = torch.tensor([10.0, 10.0, 4.0], dtype=torch.float64)
    expected = (result.loss[:, 0] * weights).sum() / 24
    assert result.epoch_loss[0, 0].item() == pytest.approx(expected.item(), rel=1e-12)


def test_accuracy_matches_a_direct_evaluation() -> None:
    ds = _toy()
    stack = models.mlp([4, 8, 3], "relu", "before", members=2, dtype=torch.float64)
    result = train(stack, ds, TrainConfig(optimizer="adam", lr=0.01, steps=30))
    stack.eval()
    for m in range(2):
        plain = models.to_module(stack, m).eval()
        acc = (plain(ds.x_test).argmax(1) == ds.y_test).double().mean().item()
        assert result.members[m].test_accuracy == pytest.approx(acc)


def test_ctrl_c_stops_at_a_step_boundary_and_keeps_the_history() -> None:
    def interrupt(p: Progress) -> None:
        if p.step == 20:
            os.kill(os.getpid(), signal.SIGINT)

    stack = models.mlp([4, 5, 3], members=2, dtype=torch.float64)
    result = train(
        stack,
        _toy(),
        TrainConfig(lr=0.1, steps=1000, check_every=10),
        observers=[ProgressObserver(interrupt)],
    )
    assert result.interrupted and result.total_steps == 20
    assert [m.status for m in result.members] == ["interrupted", "interrupted"]
    assert len(result.loss) == 20 and torch.isfinite(result.loss).all()


def _interrupt_at(step: int) -> Callable[[Progress], None]:
    def interrupt(p: Progress) -> None:
        if p.step == step:
            os.kill(os.getpid(), signal.SIGINT)

    return interrupt


def test_an_interrupted_history_ends_with_the_stop_step_and_its_loss_is_final() -> None:
    # The CLI logs every steps//1000 steps: a run of 100,000 steps stopped after 54 once
    # reported its step-0 loss as final, with a history of step 0 alone. Here log_every=25,
    # Ctrl-C at the check after step 54; the reference is each member alone with torch.optim.
    ds = _toy()
    stack = models.mlp([4, 6, 3], "tanh", members=2, dtype=torch.float64)
    models.init_members(stack, "xavier_normal", seeds=3)
    plains = [models.to_module(stack, m) for m in range(2)]
    config = TrainConfig(
        optimizer="adam", lr=[0.01, 0.05], batch_size=6, steps=100_000, log_every=25, check_every=9
    )
    result = train(stack, ds, config, observers=[ProgressObserver(_interrupt_at(54))])
    assert result.interrupted and result.total_steps == 54
    assert result.steps.tolist() == [0, 25, 50, 53]  # every logged step, then the stop step
    alone = TrainConfig(optimizer="adam", batch_size=6, steps=54)
    for m, lr in enumerate([0.01, 0.05]):
        losses, _ = _reference(plains[m], ds, alone, m, lr, "adam", "constant", 1.0)
        assert result.members[m].status == "interrupted"
        assert result.members[m].final_loss == result.loss[-1, m]
        assert abs(result.members[m].final_loss - losses[53]) <= REL * losses[53]
        ours = result.loss[:, m]
        theirs = torch.tensor([losses[s] for s in (0, 25, 50, 53)], dtype=torch.float64)
        assert ((ours - theirs).abs() <= REL * theirs.abs()).all()
    # the last row's gradient norm is that step's, measured as on any logged step
    assert result.grad_norm[-1].gt(0).all() and torch.isfinite(result.grad_norm[-1]).all()


@pytest.mark.parametrize("clip", [None, "norm"])
def test_log_every_beyond_the_budget_still_records_the_last_step(clip: str | None) -> None:
    ds = _toy()
    stack = models.mlp([4, 6, 3], "relu", members=2, dtype=torch.float64)
    models.init_members(stack, "he_normal", seeds=1)
    plains = [models.to_module(stack, m) for m in range(2)]
    again = models.from_modules(plains)  # a copy, trained below with log_every=1
    config = TrainConfig(lr=[0.1, 0.2], steps=5, log_every=100, clip=clip)  # type: ignore[arg-type]
    result = train(stack, ds, config)
    assert result.steps.tolist() == [0, 4]
    for m, lr in enumerate([0.1, 0.2]):
        losses, _ = _reference(plains[m], ds, config, m, lr, "sgd", "constant", 1.0)
        assert result.members[m].final_loss == result.loss[-1, m]
        assert abs(result.loss[-1, m] - losses[4]) <= REL * losses[4]
    # the gradient norm recorded for step 4 is that step's: the same as with log_every=1
    every = train(again, ds, TrainConfig(lr=[0.1, 0.2], steps=5, clip=clip))  # type: ignore[arg-type]
    assert torch.allclose(result.grad_norm[-1], every.grad_norm[4], rtol=REL, atol=0)
    assert torch.equal(result.lr[-1], every.lr[4])


def test_a_stopped_members_final_loss_is_that_of_its_last_step() -> None:
    # Member 1 (lr 1e-12) converges at step 99, member 2 (lr 1e300) diverges at once; both
    # are held from then on while member 0 trains on. Logged every 7th step: neither stop
    # step is logged.
    ds = _toy()
    stack = models.mlp([4, 6, 3], "relu", members=3, dtype=torch.float64)
    models.init_members(stack, "he_normal", seeds=0)
    plains = [models.to_module(stack, m) for m in range(3)]
    config = TrainConfig(
        lr=[0.05, 1e-12, 1e300], steps=300, tol=1e-7, window=50, check_every=50, log_every=7
    )
    result = train(stack, ds, config)
    ran, converged, diverged = result.members
    assert result.steps[-1] == 299 and ran.status == "budget"
    assert ran.final_loss == result.loss[-1, 0]
    assert converged.status == "converged" and converged.stopped_step == 100
    losses, _ = _reference(plains[1], ds, config, 1, 1e-12, "sgd", "constant", 1.0)
    assert abs(converged.final_loss - losses[99]) <= REL * losses[99]
    assert converged.final_loss != result.loss[-1, 1]  # not the last logged (step 299) cost
    assert diverged.status == "diverged" and diverged.stopped_step == 2
    assert math.isfinite(result.loss[0, 2]) and not math.isfinite(diverged.final_loss)


def test_progress_reports() -> None:
    seen: list[Progress] = []
    train(
        models.mlp([4, 5, 3], members=3),
        _toy(),
        TrainConfig(lr=0.1, steps=30, check_every=10),
        observers=[ProgressObserver(seen.append)],
    )
    assert [p.step for p in seen] == [10, 20, 30]
    assert seen[-1].active == 3 and seen[-1].best_loss <= seen[-1].worst_loss


class _Recorder(Observer):
    """Writes down every event, in order."""

    every = 7

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_start(self, run: Run) -> None:
        self.events.append(("start", run.step, run.total, run.members))

    def on_step(self, run: Run) -> None:
        self.events.append(("step", run.step, run.last_loss.clone()))

    def on_log(self, run: Run, row: LogRow) -> None:
        # the run as it stands after the step the row records
        assert run.step == row.step + 1 and run.last_loss is row.loss
        self.events.append(("log", row.step, row.loss.clone(), row.grad_norm.clone(), row.lr))

    def on_eval(self, run: Run, evaluation: Evaluation) -> None:
        assert run.step == evaluation.step
        self.events.append(("eval", evaluation.step, evaluation.train_accuracy))

    def on_member_stopped(self, run: Run, event: MemberStopped) -> None:
        assert run.step >= event.step and not run.active[event.member]
        self.events.append(("stopped", event.member, event.status, event.step, event.final_loss))

    def on_end(self, run: Run, result: TrainResult) -> None:
        self.events.append(("end", result))


def test_observers_hear_every_event_as_the_result_records_it() -> None:
    # Member 2's rate makes it diverge; log_every=3 and a budget of 30 (no multiple of 3).
    stack = models.mlp([4, 5, 3], members=3, dtype=torch.float64)
    models.init_members(stack, "he_normal", seeds=1)
    config = TrainConfig(lr=[0.1, 0.05, 1e6], steps=30, log_every=3, eval_every=10, check_every=5)
    recorder = _Recorder()
    result = train(stack, _toy(), config, observers=[recorder])
    kinds = [e[0] for e in recorder.events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("start") == 1
    assert recorder.events[0][1:] == (0, 30, 3)
    assert recorder.events[-1][1] is result
    assert [e[1] for e in recorder.events if e[0] == "step"] == [7, 14, 21, 28]
    logs = [e for e in recorder.events if e[0] == "log"]
    assert [e[1] for e in logs] == result.steps.tolist() == [*range(0, 30, 3), 29]
    for i, (_, _, loss, norm, lr) in enumerate(logs):
        torch.testing.assert_close(loss, result.loss[i], rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(norm, result.grad_norm[i], rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(lr, result.lr[i], rtol=0, atol=0)
    evals = [e for e in recorder.events if e[0] == "eval"]
    assert [e[1] for e in evals] == result.eval_steps.tolist() == [10, 20, 30]
    torch.testing.assert_close(evals[-1][2], result.train_accuracy[-1], equal_nan=True)
    stopped = [e for e in recorder.events if e[0] == "stopped"]
    diverged = result.members[2]
    assert diverged.status == "diverged"
    assert stopped == [("stopped", 2, "diverged", diverged.stopped_step, diverged.final_loss)]
    # after 28 steps, an on_step observer reads the cost of step 27 (0-based), row 9
    step_28 = next(e for e in recorder.events if e[0] == "step" and e[1] == 28)
    torch.testing.assert_close(step_28[2], result.loss[9], rtol=0, atol=0, equal_nan=True)


def test_an_observer_stops_the_run_at_a_step_boundary() -> None:
    class StopAt(Observer):
        every = 1

        def on_step(self, run: Run) -> None:
            if run.step == 13:
                run.stop("the playground's pause")

    stack = models.mlp([4, 5, 3], members=2, dtype=torch.float64)
    config = TrainConfig(lr=0.1, steps=100, log_every=5)
    result = train(stack, _toy(), config, observers=[StopAt()])
    assert result.total_steps == 13 and not result.interrupted
    assert result.stop_reason == "the playground's pause"
    assert [m.status for m in result.members] == ["stopped", "stopped"]
    assert [m.stopped_step for m in result.members] == [13, 13]
    assert result.steps.tolist() == [0, 5, 10, 12]  # the history ends with the stop step
    assert result.eval_steps.tolist() == [13]


def test_observers_change_no_number_and_add_no_device_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An observer that reads nothing costs the run no device read (Tensor.tolist/item are
    # how the engine reads the device), and the numbers are the same bits as without it.
    def run(observers: list[Observer]) -> tuple[TrainResult, int]:
        stack = models.mlp([4, 5, 3], members=3, dtype=torch.float64)
        models.init_members(stack, "he_normal", seeds=2)
        reads = 0
        real_tolist, real_item = torch.Tensor.tolist, torch.Tensor.item

        def tolist(self: torch.Tensor) -> Any:
            nonlocal reads
            reads += 1
            return real_tolist(self)

        def item(self: torch.Tensor) -> Any:
            nonlocal reads
            reads += 1
            return real_item(self)

        with monkeypatch.context() as patch:
            patch.setattr(torch.Tensor, "tolist", tolist)
            patch.setattr(torch.Tensor, "item", item)
            config = TrainConfig(lr=[0.1, 0.2, 0.3], batch_size=8, steps=60, check_every=20)
            result = train(stack, _toy(), config, observers=observers)
        return result, reads

    class Silent(Observer):
        every = 1

        def on_step(self, run: Run) -> None:
            pass

        def on_log(self, run: Run, row: LogRow) -> None:
            pass

    plain, plain_reads = run([])
    heard, heard_reads = run([Silent()])
    assert heard_reads == plain_reads
    torch.testing.assert_close(heard.loss, plain.loss, rtol=0, atol=0)
    torch.testing.assert_close(heard.grad_norm, plain.grad_norm, rtol=0, atol=0)


def test_schedules() -> None:
    assert schedule_factor("constant", 10) == 1.0
    assert schedule_factor("step_decay(interval=2, rate=0.5)", 5) == pytest.approx(1 / 2)
    assert schedule_factor("cosine(total=10)", 5) == pytest.approx(0.5)
    assert schedule_factor("cosine(10)", 20) == pytest.approx(0.0)
    assert schedule_factor(lambda e: 0.1 * e, 3) == pytest.approx(0.3)


# ----------------------------------------------------------------------------- bad input


def _net() -> models.Stack:
    return models.mlp([4, 5, 3], members=2)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: TrainConfig(optimizer="adma", steps=1), r"Did you mean 'adam'"),
        (lambda: TrainConfig(loss="crossentropy", steps=1), r"'loss' parameter.*cross_entropy"),  # type: ignore[arg-type]
        (lambda: TrainConfig(schedule="step_dekay(10)", steps=1), r"Did you mean 'step_decay'"),
        (lambda: TrainConfig(schedule="exponential(0.9, 2)", steps=1), "takes gamma"),
        (lambda: TrainConfig(lr=0.0, steps=1), r"'lr' parameter .* > 0"),
        (lambda: TrainConfig(lr=[0.1, -1.0], steps=1), r"'lr' parameter"),
        (lambda: TrainConfig(clip="global", steps=1), r"'clip' parameter"),  # type: ignore[arg-type]
        (lambda: TrainConfig(), "needs a budget"),
        (lambda: TrainConfig(steps=0), r"'steps' parameter"),
    ],
)
def test_bad_config(make: Callable[[], TrainConfig], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_data_that_does_not_fit_the_model() -> None:
    ds = _toy(features=3)
    with pytest.raises(ValueError, match="4 features"):
        train(_net(), ds, TrainConfig(steps=1))


def test_per_member_list_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match=r"one value or 2 \(one per member\)"):
        train(_net(), _toy(), TrainConfig(lr=[0.1, 0.2, 0.3], steps=1))


def test_batch_size_larger_than_the_set_names_both_numbers() -> None:
    with pytest.raises(ValueError, match=r"at most the 24 training examples.*Got 25"):
        train(_net(), _toy(), TrainConfig(batch_size=25, steps=1))


def test_non_finite_data_is_rejected() -> None:
    x = torch.randn(10, 4)
    x[3, 2] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        train(_net(), (x, torch.zeros(10, dtype=torch.long)), TrainConfig(steps=1))


def test_a_frozen_member_keeps_its_batch_norm_statistics() -> None:
    stack = models.mlp([4, 6, 3], "tanh", "before", members=2, dtype=torch.float64)
    config = TrainConfig(
        optimizer="adam", lr=[0.05, 1e-12], steps=400, tol=1e-7, window=5, check_every=10
    )
    result = train(stack, _toy(), config)
    assert result.members[1].status == "converged"
    bn = models.to_module(stack, 1)[1]
    assert isinstance(bn, nn.BatchNorm1d)
    assert bn.num_batches_tracked.item() == result.members[1].stopped_step
    alone = models.to_module(stack, 0)[1]
    assert alone.num_batches_tracked.item() == 400


def test_training_starts_in_train_mode() -> None:
    stack = models.mlp([4, 6, 3], "relu", "before", members=1, dtype=torch.float64).eval()
    result = train(stack, _toy(), TrainConfig(lr=0.1, steps=3))
    assert stack.training and result.total_steps == 3
    assert models.to_module(stack, 0)[1].num_batches_tracked.item() == 3


@pytest.mark.parametrize(
    ("widths", "loss", "classes", "match"),
    [
        ([4, 5, 2], "cross_entropy", 3, "labels go up to 2"),
        ([4, 5, 2], "bce", 2, "bce needs one output"),
        ([4, 5, 1], "bce", 3, r"labels in \[0, 2\]"),
        ([4, 5, 3], "mse", 3, "mse compares one output"),
    ],
)
def test_outputs_that_do_not_fit_the_loss(
    widths: list[int], loss: str, classes: int, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        train(models.mlp(widths), _toy(classes=classes), TrainConfig(loss=loss, steps=1))  # type: ignore[arg-type]


def test_a_last_batch_of_one_with_batch_norm_is_refused_up_front() -> None:
    net = models.mlp([4, 5, 3], batch_norm="before")
    with pytest.raises(ValueError, match="drop_last"):
        train(net, _toy(n=25), TrainConfig(batch_size=8, steps=10))
    result = train(net, _toy(n=25), TrainConfig(batch_size=8, steps=10, drop_last=True))
    assert result.total_steps == 10


@pytest.mark.numerics
def test_compiled_step_equals_the_eager_one() -> None:
    # torch.compile fuses kernels, so sums may round differently: 1e-10, as for the stack.
    def run(compiled: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        stack = models.mlp([4, 6, 3], "relu", members=3, dtype=torch.float64)
        models.init_members(stack, "he_normal", seeds=4)
        config = TrainConfig(optimizer="adam", lr=[0.01, 0.02, 0.05], steps=8, compile=compiled)
        return train(stack, _toy(), config).loss, [p.detach() for p in stack.parameters()]

    eager_loss, eager_params = run(False)
    compiled_loss, compiled_params = run(True)
    assert torch.allclose(compiled_loss, eager_loss, rtol=1e-10, atol=0)
    for a, b in zip(compiled_params, eager_params, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-14)


@pytest.mark.numerics
def test_per_member_schedules_are_each_their_own() -> None:
    # Equal schedules are evaluated once per epoch and shared; a callable is kept as is.
    stack = models.mlp([4, 5, 3], "relu", members=4, dtype=torch.float64)
    models.init_members(stack, "he_normal", seeds=6)

    def halving(epoch: int) -> float:
        return 0.5**epoch

    config = TrainConfig(
        optimizer="sgd",
        lr=[0.1, 0.1, 0.05, 0.2],
        schedule=["step_decay(1)", "constant", "step_decay(1)", halving],
        batch_size=8,
        seeds=[1, 2, 3, 4],
        steps=12,
    )
    assert _compare(stack, _toy(), config) < REL


@pytest.mark.numerics
@pytest.mark.parametrize("members", [1, 3])
@pytest.mark.parametrize("shared", [True, False])
def test_member_losses_equal_torch_cross_entropy(members: int, shared: bool) -> None:
    # Shared targets take a one-hot matrix-vector product, the rest torch's own loss.
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(members, 4, 7, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randint(0, 4, (1 if shared else members, 7), generator=g)
    ours = _member_losses(logits, y, "cross_entropy")
    ours.sum().backward()  # type: ignore[no-untyped-call]
    assert logits.grad is not None
    for m in range(members):
        z = logits.detach()[m].T.clone().requires_grad_()  # (B, classes), as torch wants
        theirs = F.cross_entropy(z, y[0 if shared else m])
        theirs.backward()  # type: ignore[no-untyped-call]
        assert z.grad is not None
        assert abs(ours[m].item() - theirs.item()) < 1e-14
        assert torch.allclose(logits.grad[m], z.grad.T, rtol=0, atol=1e-15)


def test_a_non_finite_member_keeps_its_loss_to_itself() -> None:
    logits = torch.randn(3, 2, 5, dtype=torch.float64)
    logits[1, 0, 2] = math.nan
    losses = _member_losses(logits, torch.tensor([[0, 1, 1, 0, 1]]), "cross_entropy")
    assert math.isnan(losses[1]) and torch.isfinite(losses[[0, 2]]).all()


def test_freed_memory_is_recycled_only_during_a_cpu_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from initlab import train as train_mod

    calls: list[tuple[str, int, int]] = []

    class FakeLibc:
        def mallopt(self, option: int, value: int) -> int:
            calls.append(("mallopt", option, value))
            return 1

    monkeypatch.setattr(train_mod._RecycledMemory, "_glibc", staticmethod(lambda: FakeLibc()))
    stack = models.mlp([4, 5, 3], "relu", members=2, dtype=torch.float64)
    seen: list[list[tuple[str, int, int]]] = []
    config = TrainConfig(lr=0.1, steps=3, check_every=1)
    train(stack, _toy(), config, observers=[ProgressObserver(lambda p: seen.append(list(calls)))])
    big = 2**31 - 1
    # raised for the run (mmap threshold −3, trim threshold −1), set back after (no trim:
    # FakeLibc has no malloc_trim)
    assert seen[0] == [("mallopt", -3, big), ("mallopt", -1, big)]
    assert calls[2:] == [("mallopt", -3, 128 * 1024), ("mallopt", -1, 128 * 1024)]
    assert train_mod._RecycledMemory._depth == 0
    calls.clear()
    with train_mod._RecycledMemory(torch.device("meta")):  # not the CPU: nothing is touched
        pass
    assert calls == []


def test_users_malloc_settings_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from initlab import train as train_mod

    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert train_mod._RecycledMemory._glibc() is None


def test_an_observer_with_a_bad_every_is_refused_before_the_run_starts() -> None:
    started: list[int] = []

    class Starts(Observer):
        def on_start(self, run: Run) -> None:
            started.append(run.step)

    class Bad(Observer):
        every = 0

        def on_step(self, run: Run) -> None:
            pass

    stack = models.mlp([4, 5, 3], members=1, dtype=torch.float64)
    with pytest.raises(ValueError, match="every"):
        train(stack, _toy(), TrainConfig(lr=0.1, steps=5), observers=[Starts(), Bad()])
    assert started == []  # nothing heard a run that never started


def test_time_spent_in_observers_is_kept_out_of_the_runs_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A clock that moves only when an observer works (5 s a call): the run's own clock
    # (Run.elapsed) stays at 0 for every observer, the wall time counts it all.
    from initlab import train as train_mod

    clock = [0.0]
    monkeypatch.setattr(train_mod.time, "perf_counter", lambda: clock[0])
    seen: list[float] = []

    class Busy(Observer):
        every = 1

        def on_step(self, run: Run) -> None:
            seen.append(run.elapsed)
            clock[0] += 5.0

    stack = models.mlp([4, 5, 3], members=1, dtype=torch.float64)
    result = train(stack, _toy(), TrainConfig(lr=0.1, steps=6), observers=[Busy(), Busy()])
    assert seen == [0.0] * 12 and result.seconds == 60.0


def test_ctrl_c_at_the_last_step_leaves_the_run_whole_but_says_so() -> None:
    def interrupt(p: Progress) -> None:
        if p.step == p.total:
            os.kill(os.getpid(), signal.SIGINT)

    stack = models.mlp([4, 5, 3], members=2, dtype=torch.float64)
    config = TrainConfig(lr=0.1, steps=30, check_every=10)
    result = train(stack, _toy(), config, observers=[ProgressObserver(interrupt)])
    assert result.interrupted and result.total_steps == 30
    assert [m.status for m in result.members] == ["budget", "budget"]


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("loss", ["cross_entropy", "bce"])
# 20 of 96 training examples: every fifth batch is a smaller one of 16, so the step's
# buffers shrink and grow again (a bce logits buffer once kept stale numbers there).
@pytest.mark.parametrize("batch_size", ["full", 20])
@pytest.mark.parametrize("members", [3, 1])  # 1: a shared batch, on the per-member route
def test_mlp_step_without_autograd_matches_autograd_bit_for_bit(
    activation: str, loss: str, batch_size: str | int, members: int
) -> None:
    # A plain MLP stack takes its gradients without autograd; a forward hook on a layer
    # sends the same run through autograd. Both must give the same bits (float32, where
    # any reordering would show).
    ds = data.load("circles", n=120, noise=0.05, seed=1)
    widths = [2, 7, 5, 2 if loss == "cross_entropy" else 1]
    config = TrainConfig(
        loss=loss,  # type: ignore[arg-type]
        lr=[0.1, 0.5, 1.0][:members],
        steps=25,
        batch_size=batch_size,  # type: ignore[arg-type]
        seeds=[0, 1, 2] if members > 1 else 0,
        optimizer="adam",
        clip="norm",
        clip_threshold=0.5,
        log_every=4,
    )
    runs = []
    for hooked in (False, True):
        torch.manual_seed(0)
        net = models.mlp(widths, activation, members=members)
        handle = net.layers[0].register_forward_hook(lambda m, i, o: None) if hooked else None
        result = train(net, ds, config)
        if handle is not None:
            handle.remove()
        runs.append((result, [p.detach().clone() for p in net.parameters()]))
    (fast, fast_params), (ref, ref_params) = runs
    for name in ("loss", "grad_norm", "clipped", "epoch_loss"):
        assert torch.equal(getattr(fast, name), getattr(ref, name)), name
    # bits, not values: torch.equal takes −0.0 for +0.0
    assert all(
        torch.equal(_bits(a), _bits(b)) for a, b in zip(fast_params, ref_params, strict=True)
    )


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32 if t.dtype == torch.float32 else torch.int64)


class _Tripled(models.Stack):
    def logits(self, x: torch.Tensor, update: torch.Tensor | None = None) -> torch.Tensor:
        return super().logits(x, update) * 3.0


def _tie(net: models.Stack) -> None:
    net.layers[4].weight = net.layers[2].weight


def _hook_on_weight(net: models.Stack) -> None:
    net.layers[0].weight.register_hook(lambda g: g * 0)


@pytest.mark.parametrize("change", ["subclass", "tied", "weight_hook", "labels_in_place"])
def test_what_the_step_without_autograd_cannot_see_goes_through_autograd(change: str) -> None:
    # Each case as autograd trains it (a forward hook forces that route): a Stack subclass
    # with its own logits, a weight shared by two layers, a hook on a parameter tensor,
    # labels changed in place by an observer mid-run (the cached d loss/d log p).
    class Flip(Observer):
        every = 10

        def on_step(self, run: Run) -> None:
            if change == "labels_in_place":
                ds.y_train.copy_(1 - ds.y_train)

    runs = []
    for hooked in (False, True):
        ds = data.load("circles", n=120, noise=0.05, seed=1)
        torch.manual_seed(0)
        net = models.mlp([2, 5, 5, 5, 2], "tanh", members=3)
        if change == "subclass":
            net.__class__ = _Tripled
        elif change == "tied":
            _tie(net)
        elif change == "weight_hook":
            _hook_on_weight(net)
        handle = net.layers[0].register_forward_hook(lambda m, i, o: None) if hooked else None
        config = TrainConfig(loss="cross_entropy", lr=0.5, steps=25, seeds=0, log_every=1)
        result = train(net, ds, config, observers=[Flip()])
        if handle is not None:
            handle.remove()
        runs.append((result.loss, [p.detach().clone() for p in net.parameters()]))
    (fast, fast_params), (ref, ref_params) = runs
    assert torch.equal(fast, ref)
    assert all(torch.equal(a, b) for a, b in zip(fast_params, ref_params, strict=True))
