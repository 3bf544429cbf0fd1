"""The planner and the local runner: stacked runs equal runs alone, resume, Ctrl-C, kill -9."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from initlab import data, models
from initlab.store import Store, history, load
from initlab.studies import Study, parse_overrides, plan, run_id, run_study
from initlab.train import Observer, Run, TrainConfig, train

_SMALL = ["data=circles(n=120)", "model=2,6,1", "activation=tanh", "history_every=10"]


def _alone(config: dict[str, Any]) -> Any:
    """One run trained by itself (M = 1), built from its config by hand: the reference."""
    ds = data.load("circles", n=120)
    net = models.mlp(config["model"], config["activation"], members=1, dtype=torch.float64)
    models.init_members(net, config["init"], config["bias_init"], seeds=config["seed"])
    clip = None if config["clip"] == "none" else config["clip"]
    tc = TrainConfig(
        loss=config["loss"],
        optimizer=config["optimizer"],
        lr=config["lr"],
        momentum=config["momentum"] if config["momentum"] is not None else 0.9,
        batch_size=config["batch_size"],
        seeds=config["seed"],
        clip=clip,
        clip_threshold=config["clip_threshold"] if clip else 1.0,
        steps=config["steps"],
        tol=config["tol"],
        window=config["window"] or 100,
        log_every=config["history_every"],
        check_every=100,
    )
    return train(net, ds, tc)


def test_stacked_runs_equal_each_run_alone(tmp_path: Path) -> None:
    study = parse_overrides(
        [
            *_SMALL,
            "dtype=float64",
            "init=he_normal,'normal(std=3)'",
            "optimizer=sgd,momentum",
            "lr=0.05,0.5",
            "seed=0,1",
            "batch_size=32",
            "clip=norm",
            "clip_threshold=0.5,100",
            "steps=250",
            "tol=0.03",
            "window=50",
        ]
    )
    summary = run_study(study, tmp_path / "runs.db", max_members=5, progress=False)
    assert summary.runs == summary.trained == 32
    assert summary.stacks == 7 and not summary.interrupted  # 32 runs, 5 at most: 7 stacks
    frame = load(tmp_path / "runs.db").set_index("run_id")
    hist = history(tmp_path / "runs.db", names=["loss"])
    reasons = set()
    for config in study.points():
        rid = run_id(config)
        ref = _alone(config)
        member = ref.members[0]
        row = frame.loc[rid]
        reasons.add(row["reason"])
        assert row["steps"] == member.stopped_step
        assert row["final_loss"] == pytest.approx(member.final_loss, rel=1e-10)
        assert row["train_acc"] == pytest.approx(member.train_accuracy, rel=1e-10)
        assert row["test_acc"] == pytest.approx(member.test_accuracy, rel=1e-10)
        # Its history: every 10th step it trained (and its last), as recorded alone.
        steps, losses = ref.steps.tolist(), ref.loss[:, 0].tolist()
        kept = [
            (s, v)
            for s, v in zip(steps, losses, strict=True)
            if s < member.stopped_step and (s % 10 == 0 or member.status == "budget")
        ]
        if member.status != "budget" and kept[-1][0] != member.stopped_step - 1:
            kept.append((member.stopped_step - 1, member.final_loss))
        mine = hist[hist.run_id == rid]
        assert mine.step.tolist() == [s for s, _ in kept]
        assert mine.value.tolist() == pytest.approx([v for _, v in kept], rel=1e-10)
        assert row["best_loss"] == pytest.approx(min(v for _, v in kept), rel=1e-10)
    assert reasons >= {"budget", "converged"}  # both ways of finishing are covered


def test_resume_skips_done_runs_and_a_grown_axis_reuses_them(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    base = [*_SMALL, "seed=range(2)", "steps=40"]
    first = run_study(parse_overrides([*base, "lr=0.1,0.2"]), path, progress=False)
    assert (first.skipped, first.trained) == (0, 4)
    again = run_study(parse_overrides([*base, "lr=0.1,0.2"]), path, progress=False)
    assert (again.skipped, again.trained, again.stacks) == (4, 0, 0)
    grown = run_study(parse_overrides([*base, "lr=0.1,0.2,0.3"]), path, progress=False)
    assert (grown.skipped, grown.trained) == (4, 2)
    before = load(path).set_index("run_id")
    # A changed fixed value is other runs: new rows, the old ones untouched.
    changed = run_study(
        parse_overrides([*base[:-1], "steps=41", "lr=0.1,0.2"]),
        path,
        progress=False,
    )
    assert (changed.skipped, changed.trained) == (0, 4)
    after = load(path).set_index("run_id")
    assert len(after) == 10 and (after.status == "done").all()
    pd.testing.assert_frame_equal(after.loc[before.index], before)


def test_plan_groups_what_can_share_a_stack_and_sizes_to_memory() -> None:
    study = parse_overrides(
        [
            "steps=10",
            "optimizer=sgd,momentum,adam",
            "momentum=0.5",
            "lr=0.1,0.2",
            "activation=relu,tanh",
            "clip=none,norm",
        ]
    )
    p = plan(study, n_train={"circles": 800})
    # activation × clip kind make 4 groups; optimizer and lr vary inside each.
    assert [len(s) for s in p.stacks] == [6, 6, 6, 6]
    assert sorted(p.stacks[0].varying()) == ["lr", "optimizer"]
    assert {s.shared["momentum"] for s in p.stacks} == {0.5}
    assert p.runs == len(study) == 24 and "24 runs in 4 stacks" in p.describe()
    # Memory: each member of a full-batch 2-10-5-1 run on 800 examples needs this much.
    each = plan(Study(fixed={"steps": 10}), n_train={"circles": 800}).stacks[0].bytes
    sized = plan(
        parse_overrides(["steps=10", "seed=range(10)"]), memory=3 * each, n_train={"circles": 800}
    )
    assert [len(s) for s in sized.stacks] == [3, 3, 2, 2]  # ⌈10/3⌉ = 4 stacks, balanced
    assert [len(s) for s in plan(study, max_members=4, n_train=lambda _: 800).stacks] == [3] * 8
    # Two momentum values: two stacks.
    two = plan(
        parse_overrides(
            ["steps=10", "'zip(optimizer=sgd,momentum,momentum; momentum=0.9,0.5,0.9)'"]
        ),
        n_train={"circles": 800},
    )
    # (sgd's config holds momentum None; it joins the first momentum seen, 0.5)
    assert [(s.shared["momentum"], s.column("optimizer")) for s in two.stacks] == [
        (0.5, ["sgd", "momentum"]),
        (0.9, ["momentum"]),
    ]
    with pytest.raises(ValueError, match="max_members"):
        plan(study, max_members=0, n_train={"circles": 800})


class _CtrlC(Observer):
    """Presses Ctrl-C in the second stack, at step 20."""

    every = 1

    def __init__(self) -> None:
        self.stacks = 0

    def on_start(self, run: Run) -> None:
        self.stacks += 1

    def on_step(self, run: Run) -> None:
        if self.stacks == 2 and run.step == 20:
            os.kill(os.getpid(), signal.SIGINT)


def _comparable(path: Path) -> pd.DataFrame:
    return load(path).drop(columns=["seconds", "finished"])


def test_ctrl_c_keeps_finished_stacks_and_a_rerun_completes_the_same_store(
    tmp_path: Path,
) -> None:
    study = parse_overrides([*_SMALL, "seed=range(6)", "lr=0.1,0.3", "steps=60"])
    cut = run_study(study, tmp_path / "cut.db", max_members=4, progress=False, observers=[_CtrlC()])
    assert cut.interrupted and cut.stacks_trained == 1 and cut.trained == 4
    with Store(tmp_path / "cut.db", readonly=True) as store:
        assert store.status()["pending"] == 8
    rest = run_study(study, tmp_path / "cut.db", max_members=4, progress=False)
    assert (rest.skipped, rest.trained, rest.interrupted) == (4, 8, False)
    whole = run_study(study, tmp_path / "whole.db", max_members=12, progress=False)
    assert whole.stacks == 1
    pd.testing.assert_frame_equal(
        _comparable(tmp_path / "cut.db"), _comparable(tmp_path / "whole.db")
    )
    pd.testing.assert_frame_equal(history(tmp_path / "cut.db"), history(tmp_path / "whole.db"))


_KILLED = """
import sys
from initlab.studies import parse_overrides, run_study
from initlab.train import Observer

class Tell(Observer):  # a line at each stack's start and every 50 steps: the parent's clock
    every = 50
    def on_start(self, run):
        print("start", flush=True)
    def on_step(self, run):
        print("step", run.step, flush=True)

study = parse_overrides(sys.argv[2:])
run_study(study, sys.argv[1], max_members=3, progress=False, observers=[Tell()])
"""


def test_kill_9_at_random_moments_then_rerun_equals_an_uninterrupted_study(
    tmp_path: Path,
) -> None:
    tokens = [*_SMALL, "dtype=float64", "seed=range(25)", "lr=0.05,0.1,0.2,0.4", "steps=300"]
    study = parse_overrides(tokens)
    assert len(study) == 100
    path = tmp_path / "killed.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    draw = random.Random(17)  # fixed: the same kill points on every run of the test
    done = []
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_KILLED), str(path), *tokens],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        # Killed after a random number of its lines: mid-stack, or as a stack is written.
        for _ in range(draw.randint(1, 15)):
            proc.stdout.readline()
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        proc.stdout.close()
        with Store(path, readonly=True) as store:
            done.append(store.status()["runs"] - store.status()["pending"])
    # The first kill comes after the second stack started, so the first was written.
    assert done[0] >= 3 and done == sorted(done) and done[-1] < 100  # kept, never lost
    summary = run_study(study, path, max_members=7, progress=False)
    assert summary.skipped == done[-1] and summary.trained == 100 - done[-1]
    whole = tmp_path / "whole.db"
    run_study(study, whole, max_members=100, progress=False)
    a, b = _comparable(path), _comparable(whole)
    assert a.run_id.is_unique and len(a) == 100
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(history(path), history(whole))
