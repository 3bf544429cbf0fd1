"""A study on a local Ray cluster: the store equals the local backend's, and a Ray worker
killed mid-task loses and repeats nothing.

One Ray for the module (``ray.init(num_cpus=2)``), shut down after it. The reference is
the same study trained by the local backend, which tests/test_study_run.py checks against
each run trained alone.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from initlab.store import Store, history, load
from initlab.studies import parse_overrides, run_id, run_study
from initlab.studies.backends import RayExecutor, executor
from initlab.train import Observer, Run

try:
    import ray
    from ray import cloudpickle
except ImportError:  # make test installs the extra: under CI=true its absence is a failure
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(
        "Ray is not installed: pip install -c constraints.txt -e '.[ray]'",
        allow_module_level=True,
    )

_SMALL = ["data=circles(n=120)", "model=2,6,1", "activation=tanh", "history_every=10"]
# 16 runs, 4 a stack: 4 stacks, float64 so "identical" is a strong claim.
_STUDY = [*_SMALL, "dtype=float64", "seed=range(4)", "lr=0.05,0.1,0.2,0.4", "steps=200"]


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    # This module's observers run in the workers, which cannot import it: pickle by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]
    ray.shutdown()


def _comparable(path: Path) -> pd.DataFrame:
    return load(path).drop(columns=["seconds", "finished"]).sort_values("run_id")


def _assert_same_store(a: Path, b: Path) -> None:
    fa, fb = _comparable(a), _comparable(b)
    assert fa.run_id.is_unique
    pd.testing.assert_frame_equal(fa.reset_index(drop=True), fb.reset_index(drop=True))
    ha, hb = history(a), history(b)
    assert not ha.duplicated(["run_id", "name", "step"]).any()
    key = ["run_id", "name", "step"]
    pd.testing.assert_frame_equal(
        ha.sort_values(key).reset_index(drop=True), hb.sort_values(key).reset_index(drop=True)
    )


@pytest.fixture(scope="module")
def local_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("local") / "local.db"
    summary = run_study(parse_overrides(_STUDY), path, max_members=4, progress=False)
    assert (summary.trained, summary.stacks) == (16, 4)
    return path


def test_ray_store_equals_the_local_backends(local_store: Path, tmp_path: Path) -> None:
    study = parse_overrides(_STUDY)
    path = tmp_path / "ray.db"
    summary = run_study(study, path, max_members=4, progress=False, backend="ray")
    assert (summary.trained, summary.stacks, summary.stacks_trained) == (16, 4, 4)
    assert (summary.done, summary.interrupted) == (16, False)
    assert set(load(path).run_id) == {run_id(p) for p in study.points()}
    _assert_same_store(path, local_store)
    # Rerun: everything is done, nothing is sent to Ray again.
    again = run_study(study, path, max_members=4, progress=False, backend="ray")
    assert (again.skipped, again.trained, again.stacks) == (16, 0, 0)


class _KillOnce(Observer):
    """At step 50, the first task to get here writes its worker's pid and SIGKILLs it."""

    every = 10

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def on_step(self, run: Run) -> None:
        if run.step != 50:
            return
        try:  # O_EXCL: exactly one attempt of one task, across all workers, wins
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_mid_task_loses_and_repeats_nothing(
    local_store: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "killed.pid"
    path = tmp_path / "ray.db"
    summary = run_study(
        parse_overrides(_STUDY),
        path,
        max_members=4,
        progress=False,
        observers=[_KillOnce(marker)],
        backend=RayExecutor(max_in_flight=2, max_retries=2),
    )
    killed = int(marker.read_text())
    assert killed != os.getpid()  # a worker died, not the driver
    assert (summary.trained, summary.done, summary.stacks_trained) == (16, 16, 4)
    with Store(path, readonly=True) as store:
        assert store.status()["pending"] == 0
    _assert_same_store(path, local_store)  # the killed stack, run again, stored once


def test_a_worker_killed_on_every_try_fails_its_stack_only(tmp_path: Path) -> None:
    class KillAlways(Observer):
        every = 10

        def on_step(self, run: Run) -> None:
            if run.step == 20 and run.config.lr == [0.4, 0.4]:  # one of the two stacks
                os.kill(os.getpid(), signal.SIGKILL)

    study = parse_overrides([*_SMALL, "lr=0.1,0.4", "seed=0,1", "steps=60"])
    summary = run_study(
        study,
        tmp_path / "ray.db",
        max_members=2,
        progress=False,
        observers=[KillAlways()],
        backend=RayExecutor(max_retries=1),
    )
    assert (summary.trained, summary.done, summary.failed) == (4, 2, 2)
    frame = load(tmp_path / "ray.db").set_index("run_id")
    failed = frame[frame.status == "failed"]
    assert {c["lr"] for c in study.points() if run_id(c) in failed.index} == {0.4}
    assert failed.reason.str.contains("WorkerCrashedError").all()


class _Running(Observer):
    """Each stack, as it starts, leaves a marker and notes how many are running (markers
    left by stacks that have not ended)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_start(self, run: Run) -> None:
        # A name of its own: id(run) can come back for the next stack in the same worker
        # once this run is collected (two stacks then left one "seen" file).
        name = f"{os.getpid()}-{uuid.uuid4().hex}"
        self.mine = self.folder / f"running-{name}"
        self.mine.touch()
        seen = sum(1 for p in self.folder.iterdir() if p.name.startswith("running-"))
        (self.folder / f"seen-{name}").write_text(str(seen))

    def on_end(self, run: Run, result: object) -> None:
        self.mine.unlink()


def test_tasks_in_flight_stay_within_the_bound(local_store: Path, tmp_path: Path) -> None:
    # Two CPUs could run two stacks at once; one in flight lets only one run at a time.
    path = tmp_path / "ray.db"
    summary = run_study(
        parse_overrides(_STUDY),
        path,
        max_members=4,
        progress=False,
        observers=[_Running(tmp_path)],
        backend=RayExecutor(max_in_flight=1),
    )
    assert summary.stacks_trained == 4
    seen = [int(p.read_text()) for p in tmp_path.glob("seen-*")]
    assert seen == [1, 1, 1, 1]
    _assert_same_store(path, local_store)


def test_bad_backend_arguments_are_errors_before_anything_runs(tmp_path: Path) -> None:
    study = parse_overrides([*_SMALL, "steps=10"])
    with pytest.raises(ValueError, match="'backend' parameter of run_study must be"):
        run_study(study, tmp_path / "x.db", backend="dask")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="local backend takes no address"):
        run_study(study, tmp_path / "x.db", address="auto")
    assert not (tmp_path / "x.db").exists()
    with pytest.raises(ValueError, match="'max_in_flight' parameter of RayExecutor"):
        RayExecutor(max_in_flight=0)
    with pytest.raises(ValueError, match="'num_cpus_per_task' parameter"):
        RayExecutor(num_cpus_per_task=-1)
    with pytest.raises(ValueError, match="executor object takes its address"):
        executor(RayExecutor(), address="auto")
