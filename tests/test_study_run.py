"""The planner and the local runner: stacked runs equal runs alone, resume, Ctrl-C, kill -9."""

from __future__ import annotations

import itertools
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
from study_checks import CtrlCInSecondStack

from initlab import data, models
from initlab.store import Store, history, load
from initlab.studies import Study, parse_overrides, plan, run_id, run_study
from initlab.train import TrainConfig, train

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


@pytest.mark.numerics
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


def _comparable(path: Path) -> pd.DataFrame:
    return load(path).drop(columns=["seconds", "finished"])


def test_ctrl_c_keeps_finished_stacks_and_a_rerun_completes_the_same_store(
    tmp_path: Path,
) -> None:
    study = parse_overrides([*_SMALL, "seed=range(6)", "lr=0.1,0.3", "steps=60"])
    cut = run_study(
        study, tmp_path / "cut.db", max_members=4, progress=False, observers=[CtrlCInSecondStack()]
    )
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


# --------------------------------------------------------------------------- layer probe

_PROBED = [
    "data=circles",
    "model=2,16,16,16,1",
    "activation=tanh",
    "init='normal(std=0.1)',he_normal",
    "lr=0.1",
    "dtype=float64",
    "probe_every=50",
    "steps=100",
]


def _sequential(config: dict[str, Any]) -> torch.nn.Sequential:
    """The run as a plain float64 nn.Sequential, with the initial weights a one-member
    stack of its config gets (the runner's init, read once; nothing else shared)."""
    stack = models.mlp(config["model"], config["activation"], members=1, dtype=torch.float64)
    models.init_members(stack, config["init"], config["bias_init"], seeds=config["seed"])
    stacked = [m for m in stack.modules() if isinstance(m, models.StackedLinear)]
    layers: list[torch.nn.Module] = []
    for i, s in enumerate(stacked):
        linear = torch.nn.Linear(s.in_features, s.out_features, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(s.weight[0])
            linear.bias.copy_(s.bias[0])  # type: ignore[index]
        layers += [linear] if i == len(stacked) - 1 else [linear, torch.nn.Tanh()]
    return torch.nn.Sequential(*layers)


def _reference_stats(net: torch.nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> list[Any]:
    """Per Linear: rms of its output h, rms of ∂loss/∂h, ‖∂loss/∂W‖/‖W‖, by autograd."""
    outputs: list[torch.Tensor] = []
    h = x
    for module in net:
        h = module(h)
        if isinstance(module, torch.nn.Linear):
            h.retain_grad()
            outputs.append(h)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(h[:, 0], y.double())
    net.zero_grad()
    loss.backward()  # type: ignore[no-untyped-call]
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    return [
        (
            out.square().mean().sqrt().item(),
            out.grad.square().mean().sqrt().item(),  # type: ignore[union-attr]
            (lin.weight.grad.norm() / lin.weight.norm()).item(),  # type: ignore[union-attr]
        )
        for out, lin in zip(outputs, linears, strict=True)
    ]


@pytest.mark.numerics
def test_layer_probe_equals_an_independent_autograd_computation(tmp_path: Path) -> None:
    from initlab.store import layers

    study = parse_overrides(_PROBED)
    path = tmp_path / "runs.db"
    run_study(study, path, progress=False)
    got = layers(path)
    ds = data.load("circles")
    x, y = ds.x_train[:256].double(), ds.y_train[:256]
    assert ds.n_train > 256  # the probe batch is the first 256 examples
    for config in study.points():
        rid = run_id(config)
        net = _sequential(config)
        opt = torch.optim.SGD(net.parameters(), lr=config["lr"])
        expected = {}
        # The run replayed in plain torch: full-batch SGD on the mean BCE, 100 steps.
        for step in range(config["steps"] + 1):
            if step % config["probe_every"] == 0:
                expected[step] = _reference_stats(net, x, y)
            if step == config["steps"]:
                break
            opt.zero_grad()
            out = net(ds.x_train.double())
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                out[:, 0], ds.y_train.double()
            )
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
        mine = got[got["run_id"] == rid]
        assert sorted(set(mine["step"])) == [0, 50, 100]
        assert list(mine["depth"]) == [1, 2, 3, 4] * 3
        for row in mine.itertuples(index=False):
            want = expected[row.step][row.depth - 1]
            # float64; the stacked engine's bmm sums in another order than nn.Linear.
            tolerance = 1e-10 if row.step == 0 else 1e-9
            assert (row.h_rms, row.grad_rms, row.grad_ratio) == pytest.approx(
                want, rel=tolerance
            ), (config["init"], row)


@pytest.mark.numerics
def test_layer_stats_do_not_depend_on_how_runs_were_packed(tmp_path: Path) -> None:
    from initlab.store import layers

    study = parse_overrides(_PROBED)
    one, two = tmp_path / "one.db", tmp_path / "two.db"
    assert run_study(study, one, progress=False).stacks == 1
    assert run_study(study, two, progress=False, max_members=1).stacks == 2
    a, b = layers(one), layers(two)
    assert len(a) == 2 * 3 * 4
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)


def test_small_init_vanishes_with_depth_and_he_does_not(tmp_path: Path) -> None:
    from initlab.store import layers

    study = parse_overrides(_PROBED)
    path = tmp_path / "runs.db"
    run_study(study, path, progress=False)
    frame = layers(path)
    small, he = (run_id(c) for c in study.points())
    for step, rows in frame[frame["run_id"] == small].groupby("step"):
        h = rows["h_rms"].tolist()
        assert all(a > b for a, b in itertools.pairwise(h)), (step, h)
        assert h[-1] < 0.1 * h[0]
    at_start = frame[(frame["run_id"] == he) & (frame["step"] == 0)]["h_rms"].tolist()
    assert min(at_start) > 0.5 * max(at_start)


def test_without_probe_every_there_is_no_probe_and_no_layer_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from initlab.store import layers
    from initlab.studies import run as run_module

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a layer probe was made for a study without probe_every")

    monkeypatch.setattr(run_module, "_LayerProbe", refuse)
    study = parse_overrides([*_SMALL, "steps=20", "seed=0,1"])
    path = tmp_path / "runs.db"
    summary = run_study(study, path, progress=False)
    assert summary.done == 2
    assert layers(path).empty
    assert not history(path)["name"].str.startswith("layer.").any()


def test_a_member_keeps_the_probes_of_the_steps_it_trained(tmp_path: Path) -> None:
    from initlab.store import layers

    # lr=10 on the mse of a relu net: its loss goes non-finite within a few steps (14
    # here) and it is frozen while the other member trains on (steps 0, 10, …, 100).
    study = parse_overrides(
        [
            "data=circles(n=120)",
            "model=2,6,1",
            "activation=relu",
            "loss=mse",
            "lr=0.01,10",
            "probe_every=10",
            "steps=100",
        ]
    )
    path = tmp_path / "runs.db"
    run_study(study, path, progress=False)
    runs = load(path).set_index("run_id")
    frame = layers(path)
    calm, wild = (run_id(c) for c in study.points())
    assert runs.loc[calm, "status"] == "done" and runs.loc[wild, "status"] == "diverged"
    assert sorted(set(frame[frame["run_id"] == calm]["step"])) == list(range(0, 101, 10))
    taken = int(runs.loc[wild, "steps"])
    assert taken < 100
    assert sorted(set(frame[frame["run_id"] == wild]["step"])) == list(range(0, taken + 1, 10))


def test_each_data_set_is_loaded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[tuple[str, dict[str, Any]]] = []
    real = data.load

    def counted(name: str, **options: Any) -> Any:
        loads.append((name, options))
        return real(name, **options)

    monkeypatch.setattr(data, "load", counted)
    study = parse_overrides(
        ["data=circles(n=120),circles(n=100)", "model=2,6,1", "steps=5", "seed=0,1"]
    )
    summary = run_study(study, tmp_path / "runs.db", progress=False)
    assert summary.done == 4
    assert loads == [("circles", {"n": 120}), ("circles", {"n": 100})]


def test_configs_given_by_hand_must_have_every_field(tmp_path: Path) -> None:
    (config,) = parse_overrides([*_SMALL, "steps=5"]).points()
    del config["history_every"]
    with pytest.raises(ValueError, match="Got none for history_every"):
        run_study([config], tmp_path / "runs.db", progress=False)
    assert not (tmp_path / "runs.db").exists()


def test_a_config_given_by_hand_with_probe_every_none_is_the_same_run(tmp_path: Path) -> None:
    (config,) = parse_overrides([*_SMALL, "steps=5"]).points()
    assert "probe_every" not in config  # left out when None: the ids of old stores hold
    path = tmp_path / "runs.db"
    assert run_study([config], path, progress=False).trained == 1
    again = run_study([{**config, "probe_every": None}], path, progress=False)
    assert (again.skipped, again.trained) == (1, 0)
