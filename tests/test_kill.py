"""kill -9 at any moment leaves every output whole: the history (CSV, Parquet), the
figures (PNG) and a lesson's report (HTML with its PNGs), or no file at all.

Each test starts the real command, as a user would, and kills it with SIGKILL: at
moments drawn uniformly over the run's measured duration (seeded), and once at the very
moment an output starts being written (the parent watches the folder and kills as soon
as a temporary file appears or the target changes). A killed writer may leave its
hidden temporary file (".NAME.XXXX.EXT.part"); every other file must parse in full.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import io
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import html5lib
import pandas as pd
from PIL import Image

# The venv's own `initlab` script, as a user runs it (or the same entry point without it).
_SCRIPT = Path(sys.executable).with_name("initlab")
INITLAB = (
    [str(_SCRIPT)]
    if _SCRIPT.exists()
    else [sys.executable, "-c", "from initlab.cli import main; main()"]
)
# One thread per run: the machine's cores are shared, and torch's spinning worker
# threads under contention would stretch a run many times over.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# A short training run whose history is big enough (20 members x 200 logged steps,
# 300 kB of CSV) that its write takes a noticeable time, so a kill at the write lands
# inside it.
STEPS, SEEDS = 200, 20
TRAIN = ["train", "--data", "circles", "--model", "2,10,5,1", "--steps", str(STEPS)]
TRAIN += ["--seeds", str(SEEDS)]
# The quickest lesson that writes several figures (6 PNGs, index.html rewritten after
# each part of the page): about 12 s against 45 s for init --quick, on 2 busy cores.
LESSON = ["lesson", "landscape", "--quick"]


def _start(args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([*INITLAB, *args], stdout=out, stderr=out, env=ENV)


def _run(args: Sequence[str], log: Path) -> float:
    """Run to the end; returns its wall time in seconds."""
    started = time.perf_counter()
    proc = _start(args, log)
    assert proc.wait(timeout=600) == 0, log.read_text()
    return time.perf_counter() - started


def _kill_after(args: Sequence[str], seconds: float, log: Path) -> bool:
    """Start, kill -9 after ``seconds`` (unless it ended before); True if killed."""
    proc = _start(args, log)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    code = proc.wait(timeout=60)
    assert code in (0, -signal.SIGKILL), log.read_text()
    return code == -signal.SIGKILL


def _state(target: Path) -> tuple[int, int, int] | None:
    try:
        st = target.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _temporaries(target: Path) -> set[Path]:
    if not target.parent.is_dir():
        return set()
    return {
        p
        for p in target.parent.iterdir()
        if p.name.startswith(f".{target.stem}.") and p.name.endswith(".part")
    }


def _kill_at_write(args: Sequence[str], target: Path, log: Path) -> None:
    """Start, and kill -9 the moment ``target`` starts being written: a temporary file
    for it appears, or the target itself changes."""
    before, temps = _state(target), _temporaries(target)
    proc = _start(args, log)
    while proc.poll() is None:
        if _temporaries(target) - temps or _state(target) != before:
            proc.send_signal(signal.SIGKILL)
            break
        with contextlib.suppress(subprocess.TimeoutExpired):  # look again in 1 ms
            proc.wait(timeout=0.001)
    # The kill must have landed at the write (not after the run ended by itself),
    # or this test would check nothing.
    assert proc.wait(timeout=60) == -signal.SIGKILL, log.read_text()


def _check_history(path: Path) -> None:
    """The whole history: every member, every logged step from 0, each row complete."""
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    assert {"member", "step", "loss", "grad_norm"} <= set(frame.columns), frame.columns
    assert not frame[["member", "step", "loss", "grad_norm"]].isna().any().any()
    every = max(1, STEPS // 1000)  # initlab train logs every steps//1000 steps
    assert sorted(frame["member"].unique()) == list(range(SEEDS))
    for member, rows in frame.groupby("member"):
        steps = rows["step"].tolist()
        # the last logged step may be the budget itself or the one before it
        assert steps == list(range(0, steps[-1] + 1, every)), member
        assert steps[-1] >= STEPS - every, (member, steps[-1])
    assert len(frame) == SEEDS * len(steps)


def _check_png(data: bytes) -> None:
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")
    with Image.open(io.BytesIO(data)) as image:
        image.verify()  # chunk structure and checksums
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # every pixel decodes
        assert image.width > 0 and image.height > 0


def _check_report(page: Path) -> int:
    """A complete, strictly valid page whose every embedded figure decodes; returns
    how many figures it embeds."""
    text = page.read_text(encoding="utf-8")
    assert text.endswith("</html>\n") and "<footer>" in text
    html5lib.HTMLParser(strict=True).parse(text)  # raises on any parse error
    embedded = re.findall(r'<img src="data:image/png;base64,([^"]+)"', text)
    assert len(embedded) == text.count("<img")
    for data in embedded:
        _check_png(base64.b64decode(data, validate=True))
    return len(embedded)


CHECKS: dict[str, Callable[[Path], object]] = {
    ".csv": _check_history,
    ".parquet": _check_history,
    ".png": lambda p: _check_png(p.read_bytes()),
    ".html": _check_report,
}


def _check_folder(folder: Path) -> list[str]:
    """Every file is whole, or a writer's hidden temporary; returns the whole ones."""
    whole = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") and path.name.endswith(".part"):
            continue  # a temporary of a writer that was killed: never read by anyone
        assert path.suffix in CHECKS, f"unexpected file {path.name}"
        CHECKS[path.suffix](path)
        whole.append(path.name)
    return whole


def _train_kills(suffix: str, folder: Path, log: Path, rng: random.Random) -> None:
    history, figure = folder / f"h{suffix}", folder / "loss.png"
    args = [*TRAIN, "--save-history", str(history), "--figure", str(figure)]
    # Killed the moment the history starts being written, into an empty folder.
    _kill_at_write(args, history, log)
    _check_folder(folder)
    # A whole run: both outputs complete (so the checks are not vacuous).
    duration = _run(args, log)
    assert _check_folder(folder) == sorted([history.name, figure.name])
    # Killed the moment the figure is rewritten (after the history), and at a random
    # moment: each output is the last run's or the new one, whole.
    _kill_at_write(args, figure, log)
    assert _check_folder(folder) == sorted([history.name, figure.name])
    if suffix == ".csv":
        _kill_after(args, rng.uniform(0, duration), log)
        assert _check_folder(folder) == sorted([history.name, figure.name])


def test_train_killed_at_any_moment_leaves_whole_outputs(tmp_path: Path) -> None:
    rng = random.Random(13)
    # The CSV and the Parquet runs side by side (each run is one thread), to halve the
    # test's time on two cores.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = [
            pool.submit(
                _train_kills, suffix, tmp_path / suffix[1:], tmp_path / f"{suffix}.log", rng
            )
            for suffix in (".csv", ".parquet")
        ]
        for run in runs:
            run.result()


def test_a_lesson_killed_at_any_moment_leaves_a_whole_report(tmp_path: Path) -> None:
    rng = random.Random(7)
    log = tmp_path / "log.txt"
    folder = tmp_path / "report"
    duration = _run([*LESSON, "--out", str(folder)], log)
    figures = _check_report(folder / "index.html")
    assert figures >= 4 and len(list(folder.glob("*.png"))) == figures
    assert _check_folder(folder) == sorted(["index.html", *(p.name for p in folder.glob("*.png"))])

    # One kill into a fresh folder, then kills over the whole report of the run above.
    moments = [rng.uniform(0, duration) for _ in range(3)]
    fresh = tmp_path / "fresh"
    killed = [_kill_after([*LESSON, "--out", str(fresh)], moments[0], log)]
    if fresh.exists():
        _check_folder(fresh)
    for seconds in moments[1:]:
        killed.append(_kill_after([*LESSON, "--out", str(folder)], seconds, log))
        assert "index.html" in _check_folder(folder)
    assert any(killed)
