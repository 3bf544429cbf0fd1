"""The study store: one SQLite file per study that survives kill -9 and loads into pandas.

A study's runs, their results and their histories live in one SQLite file in WAL mode,
written by one process (the driver) and read by any number of others:

- ``runs(id, config, created)``: every run the study plans, its config as JSON text;
- ``results(run_id, status, reason, final_loss, …, extra)``: a run is done exactly when
  its result row exists;
- ``history(run_id, step, name, value)``: the long table of values over steps; a run's
  per-layer statistics are rows named ``layer.<depth>.<stat>`` (:data:`LAYER_STATS`);
- ``schema(version)``: the layout's version, checked on every open.

Each stack's results and history are written in ONE transaction, so a process killed at
any moment leaves whole stacks or none: rerunning skips :meth:`Store.done_ids` and
repeats nothing that finished. Only JSON text and numbers are stored, never pickles.

- :class:`Store`: open (or create) a store; :meth:`~Store.add_runs`,
  :meth:`~Store.write_stack`, :meth:`~Store.done_ids`, :meth:`~Store.status`.
- :class:`Result`: one run's outcome, as the runner fills it.
- :func:`load`, :func:`history`, :func:`layers`, :func:`export`: the runs as a
  DataFrame (one column per config field, plus the results), the long history, the
  per-layer statistics (one row per run, step and depth), a Parquet or CSV file.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.db"
    >>> with Store(path) as store:
    ...     store.add_runs({"a": {"lr": 0.1, "seed": 0}, "b": {"lr": 0.01, "seed": 0}})
    ...     store.write_stack(
    ...         [Result("a", "done", final_loss=0.25, best_loss=0.2, steps=10, seconds=1.5)],
    ...         [("a", 0, "loss", 0.7), ("a", 10, "loss", 0.25)],
    ...     )
    ...     store.status()
    2
    {'runs': 2, 'done': 1, 'diverged': 0, 'failed': 0, 'pending': 1}
    >>> load(path)[["run_id", "lr", "status", "final_loss"]]
      run_id    lr   status  final_loss
    0      a  0.10     done        0.25
    1      b  0.01  pending         NaN
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from initlab._io import atomic_path, check_output_file

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "LAYER_COLUMNS",
    "LAYER_STATS",
    "RESULT_COLUMNS",
    "SCHEMA_VERSION",
    "HistoryRow",
    "Result",
    "Status",
    "Store",
    "export",
    "history",
    "layers",
    "load",
]

#: The layout this code writes; a store with a higher version is refused on open.
SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of every initlab store ("ilab"): tells it from other SQLite files.
_APPLICATION_ID = 0x696C6162

Status: TypeAlias = Literal["done", "diverged", "failed"]
_STATUSES: tuple[str, ...] = ("done", "diverged", "failed")
#: One history value: (run id, step, name, value).
HistoryRow: TypeAlias = tuple[str, int, str, float]

#: The result columns of :func:`load`, after ``run_id`` and the config's fields.
RESULT_COLUMNS: tuple[str, ...] = (
    "status",
    "reason",
    "final_loss",
    "best_loss",
    "train_acc",
    "test_acc",
    "steps",
    "seconds",
    "finished",
)
#: The per-layer statistics a run may store, as history rows ``layer.<depth>.<stat>``:
#: the rms of the layer's output h, of ∂loss/∂h, and ‖∇W‖/‖W‖ of its weight.
LAYER_STATS: tuple[str, ...] = ("h_rms", "grad_rms", "grad_ratio")
#: The columns of :func:`layers`.
LAYER_COLUMNS: tuple[str, ...] = ("run_id", "step", "depth", *LAYER_STATS)
_FLOAT_FIELDS = ("final_loss", "best_loss", "train_acc", "test_acc", "seconds", "finished")

_TABLES = """
CREATE TABLE schema (version INTEGER NOT NULL);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    config TEXT NOT NULL,  -- canonical JSON
    created REAL NOT NULL
);
CREATE TABLE results (
    run_id TEXT PRIMARY KEY REFERENCES runs(id),
    status TEXT NOT NULL CHECK (status IN ('done', 'diverged', 'failed')),
    reason TEXT NOT NULL,
    final_loss REAL,
    best_loss REAL,
    train_acc REAL,
    test_acc REAL,
    steps INTEGER NOT NULL,
    seconds REAL NOT NULL,
    finished REAL NOT NULL,
    extra TEXT NOT NULL  -- JSON object
);
-- Clustered by run: one run's history is one contiguous range (the index on run_id),
-- and a (run, name, step) is written once.
CREATE TABLE history (
    run_id TEXT NOT NULL REFERENCES runs(id),
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, name, step)
) WITHOUT ROWID;
"""

#: SQLite's bound on parameters per statement was 999 before 3.32; stay under it.
_CHUNK = 900


def _json(value: object, what: str) -> str:
    """Canonical JSON text (sorted keys, no spaces, no NaN): equal configs, equal text."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False
        )
    except ValueError as err:  # NaN or infinity
        raise ValueError(
            f"{what} must be JSON without NaN or infinity ({err}). Got {value!r}. "
            "Use None, or a string such as 'inf'."
        ) from None
    except TypeError as err:
        raise TypeError(
            f"{what} must hold only JSON values (dicts with string keys, lists, strings, "
            f"numbers, booleans, None). {err}. Got {value!r}."
        ) from None


def _optional_float(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"Result.{name} must be a number or None. Got {value!r} instead.")
    return float(value)


@dataclass(frozen=True)
class Result:
    """One run's outcome: why it stopped, its losses and accuracies, its cost.

    Every number loads back exactly (float64), but for two things SQLite does: NaN is
    stored as NULL, so a NaN loss (a diverged run's) loads back as NaN, the same as a
    missing one; and -0.0 loads back as 0.0.

    Args:
        run_id: the run's id, as given to :meth:`Store.add_runs`.
        status: ``"done"`` (ran to its budget or converged), ``"diverged"`` (a non-finite
            loss froze it) or ``"failed"`` (an error stopped it).
        reason: why it stopped, in words (``"budget"``, ``"converged"``, ``"nan at step
            41"``, an error message).
        final_loss: the loss at the last step, or None.
        best_loss: the lowest loss seen, or None.
        train_acc: accuracy on the training set at the end, or None (regression).
        test_acc: accuracy on the test set at the end, or None.
        steps: steps run.
        seconds: wall time of the run (its share of its stack's).
        finished: when it finished, seconds since the epoch.
        extra: anything else, as a JSON object.

    Example:
        >>> Result("a", "diverged", "nan at step 41", steps=41).status
        'diverged'
    """

    run_id: str
    status: Status
    reason: str = ""
    final_loss: float | None = None
    best_loss: float | None = None
    train_acc: float | None = None
    test_acc: float | None = None
    steps: int = 0
    seconds: float = 0.0
    finished: float = field(default_factory=time.time)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.run_id, str) or not self.run_id:
            raise TypeError(f"Result.run_id must be a non-empty string. Got {self.run_id!r}.")
        if self.status not in _STATUSES:
            raise ValueError(
                f"Result.status must be one of {', '.join(map(repr, _STATUSES))}. "
                f"Got {self.status!r} instead."
            )
        if not isinstance(self.reason, str):
            raise TypeError(f"Result.reason must be a string. Got {self.reason!r} instead.")
        steps: object = self.steps
        if isinstance(steps, bool) or not isinstance(steps, Integral):
            raise TypeError(f"Result.steps must be an integer. Got {self.steps!r} instead.")
        for name in _FLOAT_FIELDS:
            _optional_float(getattr(self, name), name)
        if self.seconds is None or self.finished is None:
            raise TypeError("Result.seconds and Result.finished must be numbers, not None.")
        if not isinstance(self.extra, Mapping):
            raise TypeError(f"Result.extra must be a mapping. Got {self.extra!r} instead.")

    def _row(self) -> tuple[object, ...]:
        floats = {name: _optional_float(getattr(self, name), name) for name in _FLOAT_FIELDS}
        return (
            self.run_id,
            self.status,
            self.reason,
            floats["final_loss"],
            floats["best_loss"],
            floats["train_acc"],
            floats["test_acc"],
            int(self.steps),
            floats["seconds"],
            floats["finished"],
            _json(dict(self.extra), f"Result.extra of run {self.run_id!r}"),
        )


def _not_a_store(path: Path, found: str) -> ValueError:
    return ValueError(
        f"{str(path)!r} is not an initlab store: {found}. Give the path of a store "
        "initlab wrote, or a path that does not exist yet (a new store is created there)."
    )


def _check(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse anything but an initlab store whose schema this code reads."""
    try:
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    except sqlite3.DatabaseError as err:
        raise _not_a_store(path, f"it is not an SQLite database ({err})") from None
    if app != _APPLICATION_ID:
        shown = ", ".join(sorted(tables)) if tables else "none"
        raise _not_a_store(path, f"it is an SQLite database of other tables ({shown})")
    try:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema")]
    except sqlite3.DatabaseError:
        versions = []
    if len(versions) != 1 or not isinstance(versions[0], int):
        raise _not_a_store(path, f"its schema table is missing or damaged ({versions!r})")
    if versions[0] > SCHEMA_VERSION:
        raise ValueError(
            f"{str(path)!r} is an initlab store of schema version {versions[0]}, newer than "
            f"this initlab reads (up to {SCHEMA_VERSION}). Upgrade initlab "
            "(pip install -U initlab) to read it."
        )
    if versions[0] < 1:
        raise _not_a_store(path, f"its schema version is {versions[0]}")


def _create(path: Path) -> None:
    """Build an empty store beside ``path`` and link it into place: ``path`` is then either
    absent or a whole store, even if this process is killed while creating it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        # mkstemp makes the file 0600; give it the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent: recorded in the file
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"PRAGMA application_id={_APPLICATION_ID}")
            for statement in _TABLES.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema (version) VALUES (?)", (SCHEMA_VERSION,))
            conn.execute("COMMIT")
        finally:
            conn.close()  # the last connection checkpoints the WAL into the file
        try:
            os.link(tmp, path)  # fails if another process created it meanwhile: keep theirs
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(tmp, path)
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)


class Store:
    """A study's SQLite store, opened for writing (the driver) or read-only (readers).

    Opening a path that does not exist creates an empty store there (not when
    ``readonly``). Opening anything else checks that it is an initlab store of a schema
    this code reads. One process writes; readers never block it, nor it them (WAL).

    Args:
        path: the store's file.
        readonly: open with SQLite's ``mode=ro``: every write raises.

    Raises:
        ValueError: ``path`` is a folder, an empty file, not an SQLite database, another
            SQLite database, an initlab store of a newer schema, or (``readonly``) missing.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.db"
        >>> Store(path).close()
        >>> with Store(path, readonly=True) as store:
        ...     store.status()
        {'runs': 0, 'done': 0, 'diverged': 0, 'failed': 0, 'pending': 0}
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise ValueError(
                f"{str(self.path)!r} is a folder. Give the store's file, e.g. "
                f"{str(self.path / 'runs.db')!r}."
            )
        if not self.path.exists():
            if readonly:
                raise ValueError(
                    f"No store at {str(self.path)!r}. Check the path, or run the study first."
                )
            _create(self.path)
        elif self.path.stat().st_size == 0:
            raise _not_a_store(self.path, "it is an empty file")
        if readonly:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
        else:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            _check(conn, self.path)  # reads only: nothing is written into a foreign file
            if not readonly:
                conn.execute("PRAGMA journal_mode=WAL")
                # FULL: a committed stack survives a power cut too, at one fsync per stack.
                conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = ", readonly=True" if self.readonly else ""
        return f"Store({str(self.path)!r}{mode})"

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (Ctrl-C included)."""
        if self.readonly:
            raise RuntimeError(f"{self!r} was opened read-only. Open it without readonly.")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def add_runs(self, configs: Mapping[str, Mapping[str, Any]]) -> int:
        """Record planned runs, in one transaction; runs already present are kept as they are.

        Args:
            configs: each run's id and its config (JSON values only, no NaN).

        Returns:
            How many runs were new.

        Raises:
            ValueError: an id already in the store with a different config (two configs
                hashed alike, or an id reused), or a config with NaN or infinity.
            TypeError: an id that is not a non-empty string, or a config that is not JSON.

        Example:
            >>> import tempfile, pathlib
            >>> store = Store(pathlib.Path(tempfile.mkdtemp()) / "runs.db")
            >>> store.add_runs({"a": {"lr": 0.1}}), store.add_runs({"a": {"lr": 0.1}})
            (1, 0)
        """
        rows = []
        for run_id, config in configs.items():
            if not isinstance(run_id, str) or not run_id:
                raise TypeError(f"A run id must be a non-empty string. Got {run_id!r} instead.")
            if not isinstance(config, Mapping):
                raise TypeError(
                    f"The config of run {run_id!r} must be a mapping. Got {config!r} instead."
                )
            rows.append((run_id, _json(config, f"The config of run {run_id!r}")))
        now = time.time()
        added = 0
        with self._transaction() as conn:
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                stored = dict(
                    conn.execute(
                        f"SELECT id, config FROM runs WHERE id IN ({marks})",
                        [run_id for run_id, _ in chunk],
                    ).fetchall()
                )
                for run_id, text in chunk:
                    if run_id in stored and stored[run_id] != text:
                        raise ValueError(
                            f"Run {run_id!r} is already in {str(self.path)!r} with another "
                            f"config: {stored[run_id]} (stored) against {text} (given). "
                            "Give each config its own id (a hash of the canonical config)."
                        )
                new = [(run_id, text, now) for run_id, text in chunk if run_id not in stored]
                conn.executemany("INSERT OR IGNORE INTO runs VALUES (?, ?, ?)", new)
                added += len({run_id for run_id, _, _ in new})
        return added

    def write_stack(self, results: Sequence[Result], history: Iterable[HistoryRow] = ()) -> None:
        """Write one stack's results and history in ONE transaction: all of it, or none.

        A process killed before the commit leaves no row of the stack; after it, every row.

        Args:
            results: one :class:`Result` per run of the stack.
            history: (run id, step, name, value) rows of those runs; consumed lazily.

        Raises:
            ValueError: a run id twice, a run that is not in the store or is already done,
                a history row of a run outside ``results``, or a (run, name, step) twice.
            TypeError: a result that is not a :class:`Result`, or a malformed history row.
            RuntimeError: the store was opened read-only.
        """
        ids: set[str] = set()
        rows = []
        for result in results:
            if not isinstance(result, Result):
                raise TypeError(f"write_stack takes Result objects. Got {result!r} instead.")
            if result.run_id in ids:
                raise ValueError(f"Run {result.run_id!r} has two results in one stack.")
            ids.add(result.run_id)
            rows.append(result._row())
        with self._transaction() as conn:
            ordered = [row[0] for row in rows]
            for start in range(0, len(ordered), _CHUNK):
                chunk = ordered[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                known = {
                    r[0] for r in conn.execute(f"SELECT id FROM runs WHERE id IN ({marks})", chunk)
                }
                if missing := [run_id for run_id in chunk if run_id not in known]:
                    raise ValueError(
                        f"Runs {missing[:5]!r} are not in {str(self.path)!r}. "
                        "Add them with add_runs first."
                    )
                done = conn.execute(
                    f"SELECT run_id FROM results WHERE run_id IN ({marks})", chunk
                ).fetchall()
                if done:
                    raise ValueError(
                        f"Runs {[r[0] for r in done][:5]!r} are already done in "
                        f"{str(self.path)!r}; a result is never overwritten. Skip "
                        "Store.done_ids() when planning (is a second driver writing here?)."
                    )
            conn.executemany("INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            try:
                conn.executemany(
                    "INSERT INTO history VALUES (?, ?, ?, ?)", _checked_history(history, ids)
                )
            except sqlite3.IntegrityError as err:
                raise ValueError(
                    f"A history row was given twice for one (run, name, step) ({err})."
                ) from None

    def done_ids(self) -> set[str]:
        """The ids of every run with a result (done, diverged or failed)."""
        return {r[0] for r in self._conn.execute("SELECT run_id FROM results")}

    def status(self) -> dict[str, int]:
        """How many runs there are, by status; ``pending`` ones have no result yet.

        Returns:
            ``{"runs", "done", "diverged", "failed", "pending"}``; the last four sum to runs.
        """
        # One statement: one snapshot, so the counts agree even while the driver commits.
        total, *counts = self._conn.execute(
            "SELECT (SELECT count(*) FROM runs), "
            + ", ".join(f"(SELECT count(*) FROM results WHERE status = '{s}')" for s in _STATUSES)
        ).fetchone()
        out = {"runs": total, **dict(zip(_STATUSES, counts, strict=True))}
        out["pending"] = total - sum(counts)
        return out

    def frame(self) -> pd.DataFrame:
        """The runs as a DataFrame: see :func:`load`."""
        import pandas as pd

        records = self._conn.execute(
            "SELECT runs.id, runs.config, results.status, results.reason, results.final_loss,"
            " results.best_loss, results.train_acc, results.test_acc, results.steps,"
            " results.seconds, results.finished, results.extra"
            " FROM runs LEFT JOIN results ON results.run_id = runs.id ORDER BY runs.id"
        ).fetchall()
        configs = pd.json_normalize([json.loads(r[1]) for r in records], sep=".")
        extras = pd.json_normalize([json.loads(r[11]) if r[11] else {} for r in records], sep=".")
        extras.columns = [f"extra.{c}" for c in extras.columns]
        results = pd.DataFrame(
            [r[2:11] for r in records], columns=list(RESULT_COLUMNS), dtype=object
        )
        results["status"] = results["status"].fillna("pending")
        for name in _FLOAT_FIELDS:
            results[name] = results[name].astype("float64")
        results["steps"] = results["steps"].astype("Int64")
        taken = {"run_id", *RESULT_COLUMNS, *extras.columns}
        configs.columns = [f"config.{c}" if c in taken else c for c in configs.columns]
        for column in configs.columns:  # lists as tuples: hashable, so groupby works
            if configs[column].dtype == object:
                configs[column] = configs[column].map(_tuples)
        ids = pd.DataFrame({"run_id": pd.Series([r[0] for r in records], dtype=object)})
        # pandas' own dtypes for the object columns (str for text under pandas 3).
        return pd.concat([ids, configs, results, extras], axis=1).infer_objects()

    def history(
        self, run_ids: Iterable[str] | None = None, names: Iterable[str] | None = None
    ) -> pd.DataFrame:
        """The long history table: see :func:`history`."""
        import pandas as pd

        id_list = None if run_ids is None else list(dict.fromkeys(run_ids))
        name_list = None if names is None else list(dict.fromkeys(names))
        rows: list[tuple[Any, ...]] = []
        sql = "SELECT run_id, step, name, value FROM history"
        if id_list is None and name_list is None:
            rows = self._conn.execute(sql).fetchall()
        else:
            # Chunked IN lists (SQLite bounds a statement's parameters), in one snapshot.
            id_chunks = _chunks(id_list)
            name_chunks = _chunks(name_list)
            self._conn.execute("BEGIN")
            try:
                for ids in id_chunks:
                    for nms in name_chunks:
                        where, args = [], []
                        if ids is not None:
                            where.append(f"run_id IN ({','.join('?' * len(ids))})")
                            args += ids
                        if nms is not None:
                            where.append(f"name IN ({','.join('?' * len(nms))})")
                            args += nms
                        rows += self._conn.execute(f"{sql} WHERE {' AND '.join(where)}", args)
            finally:
                self._conn.execute("COMMIT")
        frame = pd.DataFrame(rows, columns=["run_id", "step", "name", "value"])
        frame = frame.astype(
            {"run_id": object, "step": "int64", "name": object, "value": "float64"}
        )
        return frame.sort_values(["run_id", "name", "step"], ignore_index=True)

    def layers(self, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """The per-layer statistics: see :func:`layers`."""
        import pandas as pd

        id_list = None if run_ids is None else list(dict.fromkeys(run_ids))
        sql = "SELECT run_id, step, name, value FROM history WHERE name GLOB 'layer.*'"
        rows: list[tuple[Any, ...]] = []
        self._conn.execute("BEGIN")  # chunked IN lists, in one snapshot
        try:
            for ids in _chunks(id_list):
                if ids is None:
                    rows += self._conn.execute(sql)
                else:
                    marks = ",".join("?" * len(ids))
                    rows += self._conn.execute(f"{sql} AND run_id IN ({marks})", ids)
        finally:
            self._conn.execute("COMMIT")
        table: dict[tuple[str, int, int], dict[str, float]] = {}
        for run_id, step, name, value in rows:
            depth, _, stat = name.partition(".")[2].partition(".")
            if stat in LAYER_STATS and depth.isdigit():
                cell = table.setdefault((run_id, step, int(depth)), {})
                cell[stat] = math.nan if value is None else value
        records = [
            (*key, *(stats.get(s, math.nan) for s in LAYER_STATS))
            for key, stats in sorted(table.items())
        ]
        frame = pd.DataFrame(records, columns=list(LAYER_COLUMNS))
        types = {"run_id": object, "step": "int64", "depth": "int64"}
        return frame.astype({**types, **dict.fromkeys(LAYER_STATS, "float64")})


def _chunks(items: list[str] | None) -> list[list[str] | None]:
    if items is None:
        return [None]
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def _tuples(value: object) -> object:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _checked_history(rows: Iterable[object], ids: set[str]) -> Iterator[HistoryRow]:
    """Each row checked and made plain (numpy and torch scalars to int and float)."""
    for row in rows:
        if not isinstance(row, tuple | list) or len(row) != 4:
            raise TypeError(
                f"A history row must be (run_id, step, name, value). Got {row!r} instead."
            )
        run_id, step, name, value = row
        if type(step) is int and type(name) is str and type(value) is float and run_id in ids:
            yield (run_id, step, name, value)  # the common case, without the ABC checks
            continue
        if run_id not in ids:
            raise ValueError(
                f"History row {row!r} is of run {run_id!r}, which is not in this stack's "
                "results. Write a run's history with its result."
            )
        if isinstance(step, bool) or not isinstance(step, Integral):
            raise TypeError(f"A history step must be an integer. Got {step!r} in {row!r}.")
        if not isinstance(name, str):
            raise TypeError(f"A history name must be a string. Got {name!r} in {row!r}.")
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"A history value must be a number. Got {value!r} in {row!r}.")
        yield (run_id, int(step), name, float(value))


def load(path: str | Path) -> pd.DataFrame:
    """A study's runs as a pandas DataFrame, in one call: one row per run.

    Columns: ``run_id``; one per config field (nested fields flattened as ``a.b``; a
    field named like a result column is prefixed ``config.``, e.g. ``config.steps`` for
    a budget beside ``steps`` run; lists as tuples, so they can be grouped by); then
    :data:`RESULT_COLUMNS` (``status`` is ``"pending"`` for a run without a result, its
    other results NaN); then ``extra.*``. Rows are ordered by run id.

    Args:
        path: the store.

    Returns:
        A DataFrame.

    Raises:
        ValueError: ``path`` is not an initlab store this code reads (see :class:`Store`).
    """
    with Store(path, readonly=True) as store:
        return store.frame()


def history(
    path: str | Path,
    run_ids: Iterable[str] | None = None,
    names: Iterable[str] | None = None,
) -> pd.DataFrame:
    """A study's history as a long table: columns ``run_id``, ``step``, ``name``, ``value``.

    Args:
        path: the store.
        run_ids: only these runs (all if None).
        names: only these values, e.g. ``["loss"]`` (all if None).

    Returns:
        A DataFrame ordered by run, name and step.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.db"
        >>> with Store(path) as store:
        ...     _ = store.add_runs({"a": {}})
        ...     rows = [("a", 5, "loss", 0.5), ("a", 0, "loss", 1.0)]
        ...     store.write_stack([Result("a", "done")], rows)
        >>> history(path, names=["loss"])
          run_id  step  name  value
        0      a     0  loss    1.0
        1      a     5  loss    0.5
    """
    with Store(path, readonly=True) as store:
        return store.history(run_ids, names)


def layers(path: str | Path, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """A study's per-layer statistics: one row per run, step and weight layer.

    Runs of a study with ``probe_every`` store, every so many steps, each weight layer's
    statistics as history rows ``layer.<depth>.<stat>`` (``depth`` counts weight layers
    from 1, in forward order); this gathers them into one table.

    Args:
        path: the store.
        run_ids: only these runs (all if None).

    Returns:
        A DataFrame with the columns :data:`LAYER_COLUMNS`: ``run_id``, ``step``,
        ``depth`` (int, 1-based), ``h_rms`` (rms of the layer's output), ``grad_rms``
        (rms of ∂loss/∂output), ``grad_ratio`` (‖∇W‖/‖W‖), ordered by run, step and
        depth; a statistic not stored is NaN. Empty, with these columns, when no run
        has any.

    Raises:
        ValueError: ``path`` is not an initlab store this code reads (see :class:`Store`).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.db"
        >>> with Store(path) as store:
        ...     _ = store.add_runs({"a": {}})
        ...     rows = [("a", 0, f"layer.{d}.{s}", d + 0.5) for d in (2, 1) for s in LAYER_STATS]
        ...     store.write_stack([Result("a", "done")], rows)
        >>> layers(path)
          run_id  step  depth  h_rms  grad_rms  grad_ratio
        0      a     0      1    1.5       1.5         1.5
        1      a     0      2    2.5       2.5         2.5
    """
    with Store(path, readonly=True) as store:
        return store.layers(run_ids)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns that are not all strings (or all booleans) as JSON text.

    A config field may mix types (``batch_size`` = ``"full"`` or ``64``) or hold lists;
    Parquet needs one type per column and CSV would write Python's repr.
    """
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        values = [v for v in frame[column] if v is not None and not _is_nan(v)]
        kinds = {type(v) for v in values}
        if kinds <= {str} or kinds == {bool}:
            continue
        frame[column] = [
            None if v is None or _is_nan(v) else _json(v, f"column {column!r}")
            for v in frame[column]
        ]
    return frame


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def export(
    path: str | Path, out: str | Path, format: Literal["parquet", "csv"] = "parquet"
) -> Path:
    """Write :func:`load`'s table to a Parquet or CSV file, atomically.

    The file is written beside ``out`` and renamed into place: a reader (or a process
    killed half way) sees the old file, the new one or none. Object columns that are not
    all strings (a field mixing ``"full"`` and ``64``, tuples) are written as JSON text.

    Args:
        path: the store.
        out: the file to write, ending in ``.parquet`` or ``.csv`` as ``format`` says.
        format: ``"parquet"`` or ``"csv"``.

    Returns:
        ``out``, as a Path.

    Raises:
        ValueError: an unknown format, an ``out`` that does not match it or cannot be
            written, or a ``path`` that is not an initlab store.
    """
    suffixes = {"parquet": (".parquet",), "csv": (".csv",)}
    if format not in suffixes:
        raise ValueError(
            f"The 'format' parameter of export must be 'parquet' or 'csv'. Got {format!r} instead."
        )
    out = check_output_file(out, suffixes[format], "the export file")
    frame = _plain(load(path))
    with atomic_path(out) as tmp:
        if format == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return out
