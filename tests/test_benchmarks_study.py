"""benchmarks/study.py, at a tiny size: the three ways of running the study compute the
same final losses, and the table has its three rows (Ray Tune's only where it imports).

A smoke test of the script, not of its speed: the timings are printed, never asserted.
The script runs in a subprocess, as a person runs it (Ray Tune then pickles its trainable
from ``__main__``, and no Ray is left in this process). The plain-PyTorch reference
(``plain_run``) is also checked against the engine on its own, in float32 and in-process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from initlab import data, models
from initlab.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "study.py"


def _tune_available() -> bool:
    try:
        import ray.tune  # noqa: F401
    except ImportError:  # make test installs the ray extra: under CI its absence is a failure
        if os.environ.get("CI") == "true":
            raise
        return False
    return True


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmarks_study", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plain_run_matches_the_engine() -> None:
    """The benchmark's torch.nn.init + torch.optim loop trains what initlab trains: each
    init spec it maps, one member of a stack against the loop alone (float32; the
    tolerance is rounding of a 50-step run, the ReLU net far from a kink)."""
    bench = _script()
    ds = data.load("circles")
    x, y = ds.x_train.float(), ds.y_train.float()
    specs = ["he_normal", "lecun_normal", "xavier_normal(gain=2.0)", "normal(std=0.3)"]
    lrs, seeds = [0.1, 0.05, 0.2, 0.01], [3, 4, 5, 6]
    net = models.mlp([2, 10, 5, 1], "relu", members=len(specs))
    models.init_members(net, specs, seeds=seeds)
    result = train(net, ds, TrainConfig(loss="bce", lr=lrs, seeds=seeds, steps=50))
    for m, (spec, lr, seed) in enumerate(zip(specs, lrs, seeds, strict=True)):
        ours = bench.plain_run([2, 10, 5, 1], spec, lr, seed, 50, x, y)
        engine = result.members[m].final_loss
        assert ours == pytest.approx(engine, rel=1e-5), spec
    with pytest.raises(ValueError, match="orthogonal"):
        bench.torch_init("orthogonal")


def test_relative_difference_of_diverged_runs() -> None:
    bench = _script()
    assert bench.relative(float("nan"), float("inf")) == 0.0  # both diverged: they agree
    assert bench.relative(float("nan"), 0.5) == float("inf")
    assert bench.relative(1.0, 2.0) == 0.5


def test_the_script_at_a_tiny_size(tmp_path: Path) -> None:
    """8 runs of 20 steps; (B) times 2 of them and (C) 4 trials on a local Ray (3 asked,
    rounded up to whole waves of 2 CPUs)."""
    tune = _tune_available()
    out = tmp_path / "table.json"
    args = [
        *("--inits", "he_normal", "normal(std=0.5)"),
        *("--lrs", "0.1", "0.01"),
        *("--seeds", "2", "--steps", "20", "--sample", "2", "--tune-sample", "3"),
        *("--cpus", "2", "--json", str(out)),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = json.loads(out.read_text())
    assert table["runs"] == 8 and table["steps"] == 20
    agreement = table["agreement"]
    assert agreement["passed"] is True
    names = [row["name"][0] for row in table["rows"]]
    assert names == (["A", "B", "C"] if tune else ["A", "B"])
    assert set(agreement["max_relative_difference"]) == set(names[1:])
    # float32, the same loop: rounding only (B here is bit for bit; Ray's one thread a
    # worker may sum in another order).
    assert all(d < 1e-5 for d in agreement["max_relative_difference"].values())
    a, b = table["rows"][0], table["rows"][1]
    assert a["measured_runs"] == 8 and not a["extrapolated"]
    assert b["measured_runs"] == 2 and b["extrapolated"] and b["target"] == 30
    assert b["ratio"] == pytest.approx(b["seconds"] / a["seconds"])
    assert "extrapolated from 2 runs" in done.stdout
    if tune:
        c = table["rows"][2]
        assert c["measured_runs"] == 4 and c["target"] == 10 and c["ray_startup_seconds"] > 0
        assert "Ray start-up" in done.stdout
    else:
        assert "Ray Tune skipped" in done.stdout
    assert torch.isfinite(torch.tensor([r["seconds"] for r in table["rows"]])).all()
