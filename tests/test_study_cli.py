"""The study commands end to end through typer's runner, and the pre-flight checks.

Each command runs a tiny study (a 2-6-1 net on 100 circles, a few hundred steps) in
tmp_path; what a command stored is compared with what :func:`run_study` stores for the
same study when called directly, and what it prints with the library's own answers.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from study_checks import CtrlCInSecondStack
from typer.testing import CliRunner

import initlab.studies
from initlab.cli import app
from initlab.store import Store, load
from initlab.studies import load_toml, parse_overrides, plan, run_study
from initlab.studies.check import check_points

runner = CliRunner()

_TINY = ["data=circles(n=100)", "model=2,6,1", "activation=tanh", "steps=100"]
_EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "studies"


def _sweep(store: Path, *fields: str, options: tuple[str, ...] = ()) -> Any:
    return runner.invoke(
        app, ["sweep", "--store", str(store), *_TINY, *fields, "--max-members", "3", *options]
    )


def _comparable(path: Path) -> pd.DataFrame:
    """The stored runs without their timings (which differ between two trainings)."""
    return load(path).drop(columns=["seconds", "finished"])


def test_sweep_stores_what_run_study_stores_and_a_rerun_skips_done_runs(tmp_path: Path) -> None:
    result = _sweep(tmp_path / "cli.db", "lr=0.1,0.5", "seed=range(3)", options=("--no-progress",))
    assert result.exit_code == 0, result.output
    assert "6 runs: 0 already done (skipped), 6 trained in 2 of 2 stacks" in result.output
    study = parse_overrides([*_TINY, "lr=0.1,0.5", "seed=range(3)"])
    run_study(study, tmp_path / "direct.db", max_members=3, progress=False)
    pd.testing.assert_frame_equal(
        _comparable(tmp_path / "cli.db"), _comparable(tmp_path / "direct.db")
    )

    again = _sweep(tmp_path / "cli.db", "lr=0.1,0.5,1.0", "seed=range(3)")
    assert again.exit_code == 0, again.output
    assert "9 runs: 6 already done (skipped), 3 trained in 1 of 1 stacks" in again.output
    with Store(tmp_path / "cli.db", readonly=True) as store:
        assert store.status() == {"runs": 9, "done": 9, "diverged": 0, "failed": 0, "pending": 0}


def test_study_run_from_a_toml_file_then_status_counts_per_stack_key(tmp_path: Path) -> None:
    spec = tmp_path / "study.toml"
    spec.write_text(
        '[fixed]\ndata = "circles(n=100)"\nmodel = [2, 6, 1]\nsteps = 100\n'
        '[axes]\nactivation = ["tanh", "relu"]\nlr = [0.1, 1e6]\nseed = "range(2)"\n'
    )
    store = tmp_path / "runs.db"
    result = runner.invoke(app, ["study", "run", str(spec), "--store", str(store)])
    assert result.exit_code == 0, result.output
    frame = load(store)
    assert len(frame) == 8 and set(frame["status"]) <= {"done", "diverged"}

    status = runner.invoke(app, ["study", "status", str(store)], env={"COLUMNS": "200"})
    assert status.exit_code == 0, status.output
    counts = frame["status"].value_counts()
    done, diverged = int(counts.get("done", 0)), int(counts.get("diverged", 0))
    assert f"8 runs: {done} done, {diverged} diverged, 0 failed, 0 pending" in status.output
    # One row per stack key: the activation is the field that tells them apart.
    for activation, rows in frame.groupby("activation"):
        by = rows["status"].value_counts()
        row = next(line.split() for line in status.output.splitlines() if activation in line)
        assert row == [
            activation,
            "4",
            str(int(by.get("done", 0))),
            str(int(by.get("diverged", 0))),
            "0",
            "0",
        ]


def test_study_plan_prints_the_planners_plan_and_runs_nothing(tmp_path: Path) -> None:
    fields = [*_TINY, "lr=0.1,0.5", "seed=range(3)", "activation=tanh,relu"]
    fields.remove("activation=tanh")
    result = runner.invoke(app, ["study", "plan", *fields, "--max-members", "4"])
    assert result.exit_code == 0, result.output
    expected = plan(parse_overrides(fields), max_members=4).describe()
    assert result.output.strip() == expected
    assert not list(tmp_path.iterdir())

    store = tmp_path / "runs.db"
    assert _sweep(store, "lr=0.1", "seed=range(3)").exit_code == 0
    rest = runner.invoke(
        app, ["study", "plan", *_TINY, "lr=0.1,0.5", "seed=range(3)", "--store", str(store)]
    )
    assert rest.exit_code == 0, rest.output
    assert "3 of 6 runs already done" in rest.output
    assert rest.output.splitlines()[1].startswith("3 runs in 1 stack")


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_study_export_writes_the_stores_table(tmp_path: Path, suffix: str) -> None:
    store = tmp_path / "runs.db"
    assert _sweep(store, "seed=range(2)").exit_code == 0
    out = tmp_path / f"runs.{suffix}"
    result = runner.invoke(app, ["study", "export", str(store), str(out), "--format", suffix])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out) if suffix == "csv" else pd.read_parquet(out)
    frame = load(store)
    assert list(written["run_id"]) == list(frame["run_id"])
    assert written["final_loss"].tolist() == frame["final_loss"].tolist()

    wrong = runner.invoke(app, ["study", "export", str(store), str(out), "--format", "xlsx"])
    assert wrong.exit_code == 2 and "parquet, csv" in wrong.output


def test_a_bad_spec_exits_2_with_the_message_and_touches_nothing(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    result = _sweep(store, "stpes=100")
    assert result.exit_code == 2
    assert "unknown field 'stpes'" in result.output and "Did you mean 'steps'" in result.output
    empty = runner.invoke(app, ["sweep", "--store", str(store), *_TINY, "seed=range(0)"])
    assert empty.exit_code == 2 and "empty axis makes no runs" in " ".join(empty.output.split())
    bad_init = _sweep(store, "init=he_normall")
    assert bad_init.exit_code == 2 and "he_normal" in bad_init.output
    spec = tmp_path / "study.toml"
    spec.write_text("[fixed]\nsteps = 10\n[axis]\nlr = [0.1]\n")
    toml = runner.invoke(app, ["study", "run", str(spec), "--store", str(store)])
    assert toml.exit_code == 2 and "unknown key 'axis'" in toml.output
    missing = runner.invoke(app, ["study", "run", str(tmp_path / "no.toml"), "--store", str(store)])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert not store.exists()


def test_a_study_file_given_to_sweep_or_with_samples_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "study.toml"
    spec.write_text("[fixed]\nsteps = 10\n")
    store = str(tmp_path / "runs.db")
    as_sweep = runner.invoke(app, ["sweep", "--store", store, str(spec)])
    assert as_sweep.exit_code == 2 and "initlab study run" in as_sweep.output
    with_samples = runner.invoke(app, ["study", "plan", str(spec), "--samples", "3"])
    assert with_samples.exit_code == 2 and "samples = N" in with_samples.output


def test_a_bad_pre_flight_exits_2_before_anything_runs(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    result = _sweep(store, "batch_size=64,128")
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "batch_size (1 of 2 runs): expected at most the 80 training examples" in message
    assert "Got 128" in message and "batch_size=full" in message
    assert not store.exists()  # nothing ran, and no store was made

    features = runner.invoke(
        app, ["study", "plan", "data=digits", "model=2,10,10", "steps=10", "lr=0.1,0.2"]
    )
    message = " ".join(features.output.split())
    assert features.exit_code == 2
    assert "model: expected the first width to be 64" in message and "model=64,10,10" in message


def test_random_search_takes_samples(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    result = _sweep(store, "lr=loguniform(1e-3,1)", options=("--samples", "4"))
    assert result.exit_code == 0, result.output
    expected = parse_overrides([*_TINY, "lr=loguniform(1e-3,1)"], samples=4).points()
    assert sorted(load(store)["lr"]) == sorted(p["lr"] for p in expected)


def test_ctrl_c_exits_230_says_what_was_kept_and_the_same_command_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "runs.db"
    real = initlab.studies.run_study

    def pressed(*args: Any, **kwargs: Any) -> Any:
        return real(*args, **kwargs, observers=[CtrlCInSecondStack()])

    monkeypatch.setattr(initlab.studies, "run_study", pressed)
    cut = _sweep(store, "seed=range(6)", options=("--no-progress",))
    assert cut.exit_code == 130, cut.output
    message = " ".join(cut.output.split())
    assert "kept the 3 runs of 1 finished stacks; 3 runs pending" in message
    words = ["initlab", "sweep", "--store", str(store), *_TINY, "seed=range(6)"]
    command = shlex.join([*words, "--max-members", "3", "--no-progress"])
    assert f"Resume with: {command}" in message

    monkeypatch.setattr(initlab.studies, "run_study", real)
    rest = _sweep(store, "seed=range(6)")
    assert rest.exit_code == 0, rest.output
    assert "6 runs: 3 already done (skipped), 3 trained" in rest.output


@pytest.mark.parametrize(
    "name, runs",
    [("glorot_bengio_2010", 18), ("schoenholz_2017", 48), ("ioffe_szegedy_2015", 16)],
)
def test_each_example_study_parses_passes_pre_flight_and_plans(name: str, runs: int) -> None:
    path = _EXAMPLES / f"{name}.toml"
    text = path.read_text()
    assert text.startswith("# ") and f"initlab study run examples/studies/{name}.toml" in text
    study = load_toml(path)
    assert len(study) == runs and study.description
    datasets = check_points(study.points())
    the_plan = plan(study, n_train={k: d.n_train for k, d in datasets.items()})
    assert the_plan.runs == runs
    result = runner.invoke(app, ["study", "plan", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{runs} runs in {len(the_plan)} stacks")


# ----------------------------------------------------------------------------- pre-flight


def _problem(*fields: str) -> str:
    with pytest.raises(ValueError) as error:
        check_points(parse_overrides(["steps=10", *fields]).points())
    return str(error.value)


def test_pre_flight_names_field_expected_got_and_fix() -> None:
    message = _problem("data=digits", "model=64,10,3")
    assert "model: expected the last width to be at least 10" in message
    assert "Got 3 in 64,10,3. Use model=64,10,10." in message
    message = _problem("data=digits", "model=64,10,1")
    assert "loss: expected a loss for the 10 classes of digits. Got bce" in message
    message = _problem("data=circles", "model=2,10,2", "loss=mse")
    assert "model: expected one output (loss mse" in message and "model=2,10,1" in message
    message = _problem("data=xor", "model=3,10,1", "batch_size=801")
    assert message.startswith("2 problems before anything ran:")
    assert "the features of xor. Got 3" in message and "Got 801" in message
    message = _problem("data=mnist(root='/nonexistent/mnist')", "model=784,10")
    assert message.startswith("data: expected a data set that loads.")


def test_pre_flight_returns_each_data_set_once_and_passes_good_points() -> None:
    study = parse_overrides(
        ["steps=10", "data=circles(n=100),moons(n=50)", "batch_size=full,40", "seed=0,1"]
    )
    datasets = check_points(study.points())
    assert {k: d.n_train for k, d in datasets.items()} == {"circles(n=100)": 80, "moons(n=50)": 40}


def test_backend_options_are_checked_before_anything_runs(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    unknown = _sweep(store, "seed=0,1", options=("--backend", "dask"))
    assert unknown.exit_code == 2 and "expected one of local, ray" in unknown.output
    local = _sweep(store, "seed=0,1", options=("--address", "auto"))
    assert local.exit_code == 2 and "address" in local.output
    assert not store.exists()
