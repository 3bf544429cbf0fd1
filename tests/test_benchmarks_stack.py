"""benchmarks/stack.py's JAX peer (D), at tiny sizes: D computes what initlab (C)
computes, and the table has D's column (or, without JAX, says in one line that D is left
out and shows a dash).

A smoke test of the script, not of its speed: the timings are printed, never asserted.
``make test`` installs the bench extra, so under CI JAX's absence is a failure, not a skip.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch.nn import functional as F

from initlab import models

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "stack.py"
# The script's smallest run: the tiny net, M = 2, 4 steps, no torch.compile.
TINY_ARGS = ["--tiny", "--quick", "--members", "2", "--no-compiled"]


def _jax_available() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:  # make test installs the bench extra: under CI its absence is a failure
        if os.environ.get("CI") == "true":
            raise
        return False
    return True


needs_jax = pytest.mark.skipif(not _jax_available(), reason="jax is not installed (bench extra)")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_stack", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*prefix: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, *prefix, *TINY_ARGS],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@needs_jax
@pytest.mark.parametrize(
    "widths", [[2, 10, 5, 2], [20, 16, 16, 4]], ids=["tiny", "two-hidden-layers"]
)
def test_d_agrees_with_c(widths: list[int]) -> None:
    # Seeded: the check draws the initial weights from the global generator.
    torch.manual_seed(0)
    x = torch.randn(64, widths[0])
    y = torch.randint(0, widths[-1], (64,))
    assert _script().check_jax(widths, x, y) < 1e-5  # float32 rounding: ~1e-7 seen


@needs_jax
def test_check_catches_other_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A D that computes something else (tanh for ReLU) is stopped, with the figure."""
    import jax
    import jax.numpy as jnp

    script = _script()

    def tanh_loss(
        params: list[tuple[jax.Array, jax.Array]], x: jax.Array, y: jax.Array
    ) -> jax.Array:
        h = x
        for w, b in params[:-1]:
            h = jnp.tanh(h @ w.T + b)
        w, b = params[-1]
        log_p = jax.nn.log_softmax(h @ w.T + b)
        return -jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1))

    monkeypatch.setattr(script, "jax_member_loss", tanh_loss)
    torch.manual_seed(0)
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    with pytest.raises(RuntimeError, match="does not compute what C"):
        script.check_jax([6, 8, 3], x, y)


@needs_jax
def test_d_minibatch_step_against_torch() -> None:
    """D's mini-batch path (each member its own draw, as the 784 rows time it): one step's
    losses and updated weights equal torch's, on the examples D drew, in float32."""
    import jax
    import numpy as np

    script = _script()
    torch.manual_seed(0)
    members, n, batch, lr = 3, 50, 7, 0.1
    x, y = torch.randn(n, 6), torch.randint(0, 3, (n,))
    stack = models.mlp([6, 8, 3], "relu", members=members)
    xj, yj = script._to_jax(x, y)
    key = jax.random.key(1)
    run = script.jax_trainer(members, n, batch, 1, lr)
    final, losses = run(script.jax_params(stack), xj, yj, key)
    # The examples the scan's one step drew, from the same key split.
    idx = torch.tensor(
        np.asarray(jax.random.randint(jax.random.split(key, 1)[0], (members, batch), 0, n))
    ).long()
    assert len(set(map(tuple, idx.tolist()))) == members  # each member its own draw
    for m in range(members):
        net = models.to_module(stack, m)
        loss = F.cross_entropy(net(x[idx[m]]), y[idx[m]])
        loss.backward()  # type: ignore[no-untyped-call]
        torch.testing.assert_close(float(losses[0, m]), loss.item(), rtol=1e-5, atol=0)
        linears = [layer for layer in net if isinstance(layer, torch.nn.Linear)]
        for (w, b), layer in zip(final, linears, strict=True):
            assert layer.weight.grad is not None and layer.bias.grad is not None
            want_w = layer.weight - lr * layer.weight.grad
            want_b = layer.bias - lr * layer.bias.grad
            torch.testing.assert_close(torch.tensor(np.asarray(w[m])), want_w.detach())
            torch.testing.assert_close(torch.tensor(np.asarray(b[m])), want_b.detach())


@needs_jax
def test_table_has_d() -> None:
    out = _run(str(SCRIPT))
    assert "D agrees with C, largest relative difference in loss" in out
    header = next(line for line in out.splitlines() if line.startswith("model"))
    assert " D jax " in header
    assert header.split()[-8:] == ["C/A", "C/B", "C/D", "Cc/A", "Cc/B", "Cc/D", "GFLOP/s", "%mm"]
    row = next(
        line for line in out.splitlines() if line.startswith("2-10-5-1") and "agrees" not in line
    )
    cells = row.split()
    # … M, A, B, C, C compiled (left out: —), D, C/A, C/B, C/D, …, GFLOP/s, %mm
    d, c_over_d = cells[-9], cells[-6]
    assert float(d.replace(",", "")) > 0
    assert c_over_d.endswith("x") and float(c_over_d[:-1]) >= 0


def test_without_jax_d_is_left_out() -> None:
    """With jax unimportable the script says so in one line and shows dashes for D."""
    hide = (
        "import runpy, sys; sys.modules['jax'] = None; "
        f"sys.argv = [{str(SCRIPT)!r}, *sys.argv[1:]]; "
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    )
    out = _run("-c", hide)
    lines = out.splitlines()
    assert sum("D (JAX) left out: jax is not installed" in line for line in lines) == 1
    assert not any("D agrees with C" in line for line in lines)
    row = next(line for line in lines if line.startswith("2-10-5-1") and "agrees" not in line)
    assert row.split()[-9] == "—"  # D
    assert row.split()[-6] == "—"  # C/D


def test_step_limits_plain_step_is_an_sgd_step() -> None:
    # benchmarks/step_limits.py times a compiled loop of plain_step as "the same step,
    # captured": it must be the step the engine takes, an SGD step on cross-entropy.
    spec = importlib.util.spec_from_file_location(
        "step_limits", ROOT / "benchmarks" / "step_limits.py"
    )
    assert spec is not None and spec.loader is not None
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 2, (30,), generator=gen)
    shapes = [(10, 2), (5, 10), (2, 5)]
    w = [torch.randn(s, generator=gen, dtype=torch.float64, requires_grad=True) for s in shapes]
    b = [torch.randn(s[0], generator=gen, dtype=torch.float64, requires_grad=True) for s in shapes]
    h = x
    for i in range(3):
        h = h @ w[i].T + b[i]
        h = torch.relu(h) if i < 2 else h
    F.cross_entropy(h, y).backward()
    onehot = F.one_hot(y, 2).to(x.dtype)
    new_w, new_b = module.plain_step(
        [t.detach() for t in w], [t.detach() for t in b], x, onehot, 0.1
    )
    for new, old in zip([*new_w, *new_b], [*w, *b], strict=True):
        assert old.grad is not None
        # float64, another order of the same sums: 6e-15 relative at most over 20 seeds,
        # under the AVX-512 and the AVX2 kernels
        torch.testing.assert_close(new, old.detach() - 0.1 * old.grad, rtol=1e-12, atol=1e-12)
