"""The study store: what is written loads back exactly (float64), adds are idempotent, a
stack is all or nothing even under SIGKILL, readers never see half a stack, and anything
that is not an initlab store of a readable schema is refused with a clear message.

The references are the configs and results the tests write themselves, and SQLite read
directly (``sqlite3``) where the test must not trust the module under test.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import initlab
from initlab.store import (
    LAYER_STATS,
    RESULT_COLUMNS,
    SCHEMA_VERSION,
    Result,
    Store,
    export,
    history,
    layers,
    load,
)

SRC = Path(initlab.__file__).parents[1]

# Floats whose shortest decimal form is long, tiny, huge or subnormal: a lossy step
# anywhere (JSON, SQLite REAL, CSV) would change one of them.
AWKWARD = [0.1 + 0.2, 1 / 3, 2.0**-1074, 1e-300, 1.7976931348623157e308, -0.0, math.pi]

CONFIGS: dict[str, dict[str, Any]] = {
    f"run{i:02d}": {
        "data": "circles",
        "model": {"widths": [2, 10, 5, 1], "bn": i % 2 == 0},
        "init": ["he_normal", "normal(std=0.01)"][i % 2],
        "lr": AWKWARD[i % len(AWKWARD)],
        "seed": i,
        "steps": 3000,  # the budget: a config field named like a result column
    }
    for i in range(12)
}


def _result(i: int, status: str = "done") -> Result:
    return Result(
        f"run{i:02d}",
        status,  # type: ignore[arg-type]
        reason="budget" if status == "done" else "nan at step 7",
        final_loss=AWKWARD[i % len(AWKWARD)] * 3 if status == "done" else float("inf"),
        best_loss=AWKWARD[(i + 1) % len(AWKWARD)],
        train_acc=i / 7,
        test_acc=None if i % 3 == 0 else i / 11,
        steps=3000 - i,
        seconds=i * 0.1,
        finished=1.7e9 + i / 3,
        extra={"lr_final": i * 1e-5, "note": f"n{i}"},
    )


def _history(i: int, names: tuple[str, ...] = ("loss", "acc")) -> list[tuple[str, int, str, float]]:
    return [
        (f"run{i:02d}", step, name, (step + 1) / (i + 3) + AWKWARD[step % len(AWKWARD)])
        for name in names
        for step in range(0, 50, 5)
    ]


def _filled(path: Path) -> Store:
    store = Store(path)
    store.add_runs(CONFIGS)
    store.write_stack([_result(i) for i in range(0, 4)], [r for i in range(4) for r in _history(i)])
    store.write_stack(
        [_result(4, "diverged"), _result(5, "failed"), _result(6)],
        [r for i in (4, 5, 6) for r in _history(i)],
    )
    return store


def _same(a: object, b: object) -> bool:
    """Bit-for-bit float equality (0.0 is not -0.0; NaN is NaN), else ==."""
    if isinstance(a, float) and isinstance(b, float):
        return math.copysign(1, a) == math.copysign(1, b) and (a == b or (a != a and b != b))
    return a == b


# --- round trip ----------------------------------------------------------------------


def test_load_gives_back_every_config_and_result_exactly(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    _filled(path).close()
    frame = load(path)

    assert list(frame["run_id"]) == sorted(CONFIGS)
    assert list(frame.columns[:1]) == ["run_id"]
    assert set(RESULT_COLUMNS) <= set(frame.columns)
    written = {r.run_id: r for r in [*(_result(i) for i in (0, 1, 2, 3, 6))]}
    written |= {"run04": _result(4, "diverged"), "run05": _result(5, "failed")}
    for _, row in frame.iterrows():
        config = CONFIGS[row["run_id"]]
        assert row["data"] == config["data"]
        assert row["model.widths"] == tuple(config["model"]["widths"])  # hashable
        assert row["model.bn"] == config["model"]["bn"]
        assert row["init"] == config["init"]
        assert _same(row["lr"], config["lr"]), (row["lr"], config["lr"])
        assert row["seed"] == config["seed"]
        assert row["config.steps"] == 3000  # the budget, beside the steps run
        result = written.get(row["run_id"])
        if result is None:
            assert row["status"] == "pending"
            assert all(pd.isna(row[c]) for c in RESULT_COLUMNS if c != "status")
            continue
        assert row["status"] == result.status and row["reason"] == result.reason
        for name in ("final_loss", "best_loss", "train_acc", "seconds", "finished"):
            # Exact, but SQLite keeps no sign on a REAL zero: -0.0 loads as 0.0.
            assert row[name] == getattr(result, name), name
        assert (
            pd.isna(row["test_acc"])
            if result.test_acc is None
            else row["test_acc"] == result.test_acc
        )
        assert row["steps"] == result.steps
        assert row["extra.lr_final"] == result.extra["lr_final"]
        assert row["extra.note"] == result.extra["note"]
    assert frame["lr"].dtype == "float64" and frame["final_loss"].dtype == "float64"
    assert frame.groupby("model.widths").size().tolist() == [12]


def test_history_gives_back_every_row_exactly_and_filters(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    _filled(path).close()
    expected = sorted(r for i in range(7) for r in _history(i))
    expected.sort(key=lambda r: (r[0], r[2], r[1]))
    got = history(path)
    assert list(got.columns) == ["run_id", "step", "name", "value"]
    assert [tuple(r) for r in got.itertuples(index=False)] == expected
    assert got["value"].dtype == "float64" and got["step"].dtype == "int64"

    some = history(path, run_ids=["run03", "run05", "nope"], names=["acc"])
    assert [tuple(r) for r in some.itertuples(index=False)] == [
        r for r in expected if r[0] in ("run03", "run05") and r[2] == "acc"
    ]
    assert history(path, run_ids=[]).empty


def test_history_filters_more_ids_than_one_statement_may_bind(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store(path) as store:
        store.add_runs({f"r{i:04d}": {"i": i} for i in range(2500)})
        store.write_stack(
            [Result(f"r{i:04d}", "done") for i in range(2500)],
            [(f"r{i:04d}", 0, "loss", i / 3) for i in range(2500)],
        )
    wanted = [f"r{i:04d}" for i in range(0, 2500, 2)]
    got = history(path, run_ids=wanted, names=["loss"])
    assert list(got["run_id"]) == wanted
    assert list(got["value"]) == [i / 3 for i in range(0, 2500, 2)]


def test_layers_gathers_the_layer_rows_into_one_row_per_run_step_and_depth(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.db"

    def value(run: int, step: int, depth: int, k: int) -> float:
        return (run + 1) * AWKWARD[(step + depth + k) % len(AWKWARD)] + depth / 7

    # 11 layers: depth 10 must sort after 9 (numbers, not text); steps out of order.
    stacks = {0: (0, 50, 100), 1: (100, 0), 2: (0,)}
    with Store(path) as store:
        store.add_runs({"a": {"i": 0}, "b": {"i": 1}, "c": {"i": 2}, "d": {"i": 3}})
        rows = [
            (rid, step, f"layer.{depth}.{stat}", value(run, step, depth, k))
            for run, rid in enumerate("abc")
            for step in stacks[run]
            for depth in range(11, 0, -1)
            for k, stat in enumerate(LAYER_STATS)
        ]
        rows += [("a", 0, "loss", 9.0), ("b", 0, "grad_norm", 8.0)]  # not layer rows
        first = [r for r in rows if r[0] != "c"][::-1]
        store.write_stack([Result("b", "done"), Result("a", "done")], first)
        store.write_stack(
            [Result("c", "done"), Result("d", "done")], [r for r in rows if r[0] == "c"]
        )
    got = layers(path)
    assert list(got.columns) == ["run_id", "step", "depth", "h_rms", "grad_rms", "grad_ratio"]
    assert got["depth"].dtype == "int64" and got["step"].dtype == "int64"
    assert all(got[s].dtype == "float64" for s in LAYER_STATS)
    expected = [
        (rid, step, depth, *(value(run, step, depth, k) for k in range(3)))
        for run, rid in enumerate("abc")
        for step in sorted(stacks[run])
        for depth in range(1, 12)
    ]
    assert [tuple(r) for r in got.itertuples(index=False)] == expected  # bit for bit
    some = layers(path, run_ids=["c", "d", "nope"])
    assert [tuple(r) for r in some.itertuples(index=False)] == [r for r in expected if r[0] == "c"]


def test_layers_of_a_store_without_any_is_empty_with_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    _filled(path).close()  # history, but no layer rows
    for frame in (layers(path), layers(path, run_ids=[])):
        assert frame.empty
        assert list(frame.columns) == ["run_id", "step", "depth", *LAYER_STATS]


def test_nan_is_stored_as_missing(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store(path) as store:
        store.add_runs({"a": {}})
        store.write_stack(
            [Result("a", "diverged", final_loss=float("nan"))], [("a", 3, "loss", float("nan"))]
        )
    assert math.isnan(load(path)["final_loss"][0])
    assert math.isnan(history(path)["value"][0])


def test_an_empty_store_loads_with_every_result_column(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    Store(path).close()
    frame = load(path)
    assert frame.empty and list(frame.columns) == ["run_id", *RESULT_COLUMNS]
    assert history(path).empty


def test_the_tables_hold_json_text_not_pickles(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    _filled(path).close()
    conn = sqlite3.connect(path)
    for run_id, text in conn.execute("SELECT id, config FROM runs"):
        assert isinstance(text, str) and json.loads(text) == CONFIGS[run_id]
    for (text,) in conn.execute("SELECT extra FROM results"):
        assert isinstance(text, str) and set(json.loads(text)) == {"lr_final", "note"}
    assert conn.execute("SELECT version FROM schema").fetchall() == [(SCHEMA_VERSION,)]
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


# --- adding runs and writing stacks --------------------------------------------------


def test_add_runs_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store(path) as store:
        assert store.add_runs(CONFIGS) == 12
        before = sqlite3.connect(path).execute("SELECT * FROM runs ORDER BY id").fetchall()
        # The same configs again (keys in another order: the canonical JSON is the same).
        again = {k: dict(reversed(list(v.items()))) for k, v in CONFIGS.items()}
        assert store.add_runs(again) == 0
        assert store.add_runs({**CONFIGS, "new": {"lr": 1.0}}) == 1
        after = sqlite3.connect(path).execute("SELECT * FROM runs ORDER BY id").fetchall()
        assert [r for r in after if r[0] != "new"] == before  # created times kept too
        assert store.status() == {"runs": 13, "done": 0, "diverged": 0, "failed": 0, "pending": 13}


def test_add_runs_refuses_an_id_with_another_config_and_adds_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.db") as store:
        store.add_runs({"a": {"lr": 0.1}})
        with pytest.raises(ValueError, match=r"'a' is already in .* with another config"):
            store.add_runs({"b": {"lr": 1.0}, "a": {"lr": 0.2}})
        assert store.status()["runs"] == 1  # "b" was rolled back with the rest
        with pytest.raises(ValueError, match="NaN or infinity"):
            store.add_runs({"c": {"lr": float("nan")}})
        with pytest.raises(TypeError, match="only JSON values"):
            store.add_runs({"c": {"lr": object()}})
        with pytest.raises(TypeError, match="non-empty string"):
            store.add_runs({"": {}})


def test_status_and_done_ids_count_every_kind(tmp_path: Path) -> None:
    with _filled(tmp_path / "runs.db") as store:
        assert store.status() == {"runs": 12, "done": 5, "diverged": 1, "failed": 1, "pending": 5}
        assert store.done_ids() == {f"run{i:02d}" for i in range(7)}


@pytest.mark.parametrize(
    ("results", "rows", "error", "match"),
    [
        ([Result("zz", "done")], [], ValueError, "not in .* add_runs first"),
        ([Result("run00", "done")], [], ValueError, "already done"),
        ([Result("run09", "done"), Result("run09", "done")], [], ValueError, "two results"),
        ([Result("run09", "done")], [("run10", 0, "loss", 1.0)], ValueError, "not in this stack"),
        ([Result("run09", "done")], [("run09", 0, "loss", 1.0)] * 2, ValueError, "twice"),
        ([Result("run09", "done")], [("run09", 0.5, "loss", 1.0)], TypeError, "step"),
        ([Result("run09", "done")], [("run09", 0, "loss", "1")], TypeError, "value"),
        ([Result("run09", "done")], [("run09", 0, "loss")], TypeError, "history row"),
        (["run09"], [], TypeError, "Result objects"),
    ],
)
def test_a_bad_stack_writes_nothing(
    tmp_path: Path, results: list[Result], rows: list[Any], error: type[Exception], match: str
) -> None:
    path = tmp_path / "runs.db"
    with Store(path) as store:
        store.add_runs(CONFIGS)
        store.write_stack([_result(0)], _history(0))
        # A good run first in the stack: it must not survive the bad one.
        good = Result("run08", "done", final_loss=1.0)
        with pytest.raises(error, match=match):
            store.write_stack([good, *results], [("run08", 0, "loss", 2.0), *rows])
        assert store.done_ids() == {"run00"}
    assert set(history(path)["run_id"]) == {"run00"}
    assert load(path).set_index("run_id").loc["run00", "final_loss"] == _result(0).final_loss


def test_result_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="'done', 'diverged', 'failed'"):
        Result("a", "ok")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="steps"):
        Result("a", "done", steps=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="final_loss"):
        Result("a", "done", final_loss="0.1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="run_id"):
        Result("", "done")


# --- kill -9 and readers -------------------------------------------------------------

# Commits one stack, then writes a second one (its history big enough that SQLite spills
# uncommitted pages into the WAL) and stops inside the transaction, waiting on stdin.
_WRITER = """
import sys
from initlab.store import Result, Store

store = Store(sys.argv[1])
store.add_runs({f"r{i}": {"i": i} for i in range(4)})
store.write_stack(
    [Result("r0", "done", final_loss=0.5, finished=1.0), Result("r1", "done", finished=2.0)],
    [("r0", s, "loss", s / 7) for s in range(1000)],
)

def rows():
    for s in range(200_000):
        yield ("r2", s, "loss", s / 3)
    print("inside", flush=True)
    sys.stdin.readline()  # the parent kills us here, before the commit
    yield ("r3", 0, "loss", 1.0)

store.write_stack([Result("r2", "done"), Result("r3", "done")], rows())
print("committed", flush=True)
"""


def test_a_stack_killed_before_its_commit_leaves_no_row(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    wal = Path(f"{path}-wal")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line != b"inside\n":
        proc.kill()
        pytest.fail(f"writer did not reach the transaction: {line!r} {proc.communicate()[1]!r}")
    # The committed stack and the second one's spilled pages are in the WAL, not the file.
    assert wal.stat().st_size > 1_000_000
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert wal.exists()

    # A reader first (it recovers from the WAL without writing the file), then the writer.
    with Store(path, readonly=True) as reader:
        assert reader.done_ids() == {"r0", "r1"}
    with Store(path) as store:
        assert store.status() == {"runs": 4, "done": 2, "diverged": 0, "failed": 0, "pending": 2}
        store.write_stack([Result("r2", "done"), Result("r3", "done")], [("r3", 1, "loss", 9.0)])
    got = history(path)
    assert set(got["run_id"]) == {"r0", "r3"}
    assert list(got[got["run_id"] == "r0"]["value"]) == [s / 7 for s in range(1000)]
    assert load(path)["final_loss"][0] == 0.5
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def test_a_reader_sees_whole_stacks_only_while_the_writer_writes(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    writer = _filled(path)
    reader = Store(path, readonly=True)
    seen: list[object] = []

    def rows() -> Any:
        for step in range(5000):
            yield ("run08", step, "loss", step / 9)
            if step == 2500:  # half the stack written, not committed: readers don't block
                seen.append(reader.status())
                seen.append(reader.done_ids())
                seen.append(len(load(path)))
                seen.append(len(history(path, run_ids=["run08"])))

    writer.write_stack([Result("run08", "done"), Result("run09", "failed")], rows())
    assert seen == [
        {"runs": 12, "done": 5, "diverged": 1, "failed": 1, "pending": 5},
        {f"run{i:02d}" for i in range(7)},
        12,
        0,
    ]
    assert reader.status() == {"runs": 12, "done": 6, "diverged": 1, "failed": 2, "pending": 3}
    assert len(reader.history(["run08"])) == 5000
    with pytest.raises(RuntimeError, match="read-only"):
        reader.add_runs({"x": {}})
    with pytest.raises(RuntimeError, match="read-only"):
        reader.write_stack([Result("run10", "done")])
    reader.close()
    writer.close()


# --- files that are not a store ------------------------------------------------------


def _refused(path: Path, match: str) -> None:
    before = path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(ValueError, match=match):
            Store(path, readonly=readonly)
    with pytest.raises(ValueError, match=match):
        load(path)
    assert path.read_bytes() == before  # nothing was written into someone else's file


def test_a_text_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("lr,loss\n0.1,0.5\n" * 100)
    _refused(path, r"'.*notes.db' is not an initlab store: it is not an SQLite database")


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    _refused(path, "is not an initlab store: it is an empty file.* a path that does not exist")


def test_another_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "optuna.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE trials (id INTEGER, value REAL)")
    conn.execute("CREATE TABLE schema (version INTEGER)")
    conn.execute("INSERT INTO schema VALUES (1)")
    conn.commit()
    conn.close()
    _refused(path, r"SQLite database of other tables \(schema, trials\)")


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema SET version = ?", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    _refused(path, f"schema version {SCHEMA_VERSION + 1}, newer .* Upgrade initlab")


def test_missing_and_folder_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="No store at"):
        Store(tmp_path / "none.db", readonly=True)
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(ValueError, match="is a folder"):
        Store(tmp_path)
    # A new store is created whole, in a new folder too, with nothing left beside it.
    Store(tmp_path / "sub" / "runs.db").close()
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["runs.db"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "sub" / "runs.db").stat().st_mode & 0o777 == 0o666 & ~umask


# --- export ----------------------------------------------------------------------------


def test_export_parquet_and_csv_read_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store(path) as store:
        flat = {k: {f: v for f, v in c.items() if f != "model"} for k, c in CONFIGS.items()}
        store.add_runs(flat)
        store.write_stack([_result(i) for i in range(12)])
    frame = load(path)

    assert export(path, tmp_path / "runs.parquet") == tmp_path / "runs.parquet"
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "runs.parquet"), frame, check_exact=True
    )

    export(path, tmp_path / "runs.csv", format="csv")
    back = pd.read_csv(tmp_path / "runs.csv")
    pd.testing.assert_frame_equal(back, frame, check_dtype=False, check_exact=True)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_export_writes_mixed_and_list_fields_as_json(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store(path) as store:
        store.add_runs(
            {
                "a": {"batch_size": "full", "widths": [2, 10, 1]},
                "b": {"batch_size": 64, "widths": [2, 5, 1]},
            }
        )
    for fmt in ("parquet", "csv"):
        out = export(path, tmp_path / f"runs.{fmt}", format=fmt)
        back = pd.read_parquet(out) if fmt == "parquet" else pd.read_csv(out)
        assert [json.loads(v) for v in back["batch_size"]] == ["full", 64]
        assert [json.loads(v) for v in back["widths"]] == [[2, 10, 1], [2, 5, 1]]
        assert list(back["status"]) == ["pending", "pending"]


def test_export_checks_its_arguments_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'parquet' or 'csv'"):
        export(tmp_path / "none.db", tmp_path / "x.xlsx", format="xlsx")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"must end in \.csv"):
        export(tmp_path / "none.db", tmp_path / "x.parquet", format="csv")
    with pytest.raises(ValueError, match="No store at"):
        export(tmp_path / "none.db", tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()
