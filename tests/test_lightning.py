"""initlab.lightning.ProbeCallback in a real Lightning Trainer (CPU, a few dozen steps).

Each test trains a small LightningModule on initlab's "circles" data and reads back what
the callback kept, what it logged (a CSVLogger under tmp_path) and what it said.
"""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F

try:
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger
except ImportError:  # make test installs the extra: under CI=true its absence is a failure
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(
        "PyTorch Lightning is not installed: pip install -c constraints.txt -e '.[lightning]'",
        allow_module_level=True,
    )
from initlab import data
from initlab.lightning import KINDS, ProbeCallback

# The default log_every_n_steps (50) is left as it is on purpose: the probe's steps must
# reach the logger whatever it is.
pytestmark = pytest.mark.filterwarnings("ignore:The number of training batches")

STEPS = 30


def _mlp(depth: int, width: int, activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    fan_in = 2
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), activation()]
        fan_in = width
    return nn.Sequential(*layers, nn.Linear(fan_in, 2))


class Classifier(L.LightningModule):
    """Cross-entropy on the circles; SGD at ``lr``."""

    def __init__(self, net: nn.Module, lr: float = 0.1) -> None:
        super().__init__()
        self.net, self.lr = net, lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class ManualClassifier(Classifier):
    """The same, with manual optimization (one optimizer step per batch)."""

    def __init__(self, net: nn.Module, lr: float = 0.1) -> None:
        super().__init__(net, lr)
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        opt = self.optimizers()
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        return {"loss": loss}


def healthy() -> nn.Sequential:
    return _mlp(2, 16, nn.Tanh)


def saturating() -> nn.Sequential:
    """20 tanh layers with N(0, 1) weights: √32 per layer, so nearly every unit saturates."""
    net = _mlp(20, 32, nn.Tanh)
    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=1.0)
    return net


def loader(batch_size: int = 32) -> torch.utils.data.DataLoader[Any]:
    ds = data.load("circles", n=400, seed=0)
    pairs = torch.utils.data.TensorDataset(ds.x_train, ds.y_train)
    return torch.utils.data.DataLoader(pairs, batch_size=batch_size, shuffle=False)


def fit(
    module: L.LightningModule, callback: ProbeCallback, tmp_path: Path, **options: Any
) -> L.Trainer:
    options = {"max_steps": STEPS, **options}
    trainer = L.Trainer(
        callbacks=[callback],
        logger=CSVLogger(tmp_path, name="run", version=0),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        **options,
    )
    trainer.fit(module, loader())
    assert optimizer_hooks() == 0  # whatever Watch set up to measure a step is gone
    return trainer


def optimizer_hooks() -> int:
    """How many global optimizer step hooks are registered (Watch's ΔW/W uses them)."""
    from torch.optim import optimizer

    return len(optimizer._global_optimizer_pre_hooks) + len(optimizer._global_optimizer_post_hooks)


def logged(tmp_path: Path) -> list[dict[str, str]]:
    """The rows of metrics.csv that carry probe metrics."""
    with open(tmp_path / "run" / "version_0" / "metrics.csv", newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("probe/problems")]


def hooks(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in module.modules())


# ----------------------------------------------------------------------------- behaviour


def test_reports_every_k_steps_and_every_report_reaches_the_logger(tmp_path: Path) -> None:
    module = Classifier(healthy())
    callback = ProbeCallback(every=10)
    fit(module, callback, tmp_path)  # log_every_n_steps is 50: no probe step is one of its

    assert [step for step, _ in callback.reports] == [0, 10, 20]
    for _, report in callback.reports:
        assert len(report.layers) == 3 and report.healthy
    rows = logged(tmp_path)
    assert [int(r["step"]) for r in rows] == [0, 10, 20]  # each once, at the probe's step
    for row, (_, report) in zip(rows, callback.reports, strict=True):
        assert {f"probe/{k}" for k in KINDS} <= row.keys()
        assert all(float(row[f"probe/{k}"]) == 0.0 for k in KINDS)
        assert float(row["probe/problems"]) == 0.0
        expected = max(s.grad_weight_ratio for s in report.layers)
        assert float(row["probe/grad_weight_ratio_max"]) == pytest.approx(expected, rel=1e-6)
    assert hooks(module) == 0  # the hooks came off after each recorded step


def test_logging_every_step_writes_each_probe_once(tmp_path: Path) -> None:
    callback = ProbeCallback(every=7)
    trainer = fit(Classifier(healthy()), callback, tmp_path, log_every_n_steps=1)
    assert [int(r["step"]) for r in logged(tmp_path)] == [0, 7, 14, 21, 28]
    assert trainer.callback_metrics["probe/problems"].item() == 0.0  # monitorable


def test_the_report_reads_the_steps_loss_labels_and_update(tmp_path: Path) -> None:
    class Logging(Classifier):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            loss = super().training_step(batch, batch_idx)
            self.log("train_loss", loss)
            return loss

    callback = ProbeCallback(every=10)
    fit(Logging(healthy()), callback, tmp_path, log_every_n_steps=1)
    with open(tmp_path / "run" / "version_0" / "metrics.csv", newline="") as f:
        losses = {
            int(r["step"]): float(r["train_loss"]) for r in csv.DictReader(f) if r["train_loss"]
        }
    reports = [report for _, report in callback.reports]
    assert [r.loss for r in reports] == pytest.approx([losses[0], losses[10], losses[20]])
    # One Watch for the whole fit: it keeps the losses of its earlier reports.
    assert reports[-1][0].loss_history == pytest.approx(tuple(r.loss for r in reports))
    output = reports[0][0].output  # the batch's integer labels were given as the target
    assert output is not None and output.classes == 2
    assert output.cross_entropy == pytest.approx(reports[0].loss, rel=1e-5)


def test_the_update_ratio_is_that_of_the_recorded_step(tmp_path: Path) -> None:
    callback = ProbeCallback(every=10, log=False)
    fit(Classifier(healthy(), lr=0.1), callback, tmp_path)
    for _, report in callback.reports:
        for layer in report.layers:
            # Plain SGD: ΔW = −lr·∇W, so ‖ΔW‖/‖W‖ = lr·‖∇W‖/‖W‖ (‖W‖ before or after the
            # step, which differ by about that ratio: 2 % here).
            assert layer.update_weight_ratio == pytest.approx(
                0.1 * layer.grad_weight_ratio, rel=0.05
            )


def test_a_saturated_net_logs_probe_saturated_and_says_it_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    callback = ProbeCallback(every=10)
    with caplog.at_level(logging.INFO, logger="initlab.lightning"):
        fit(Classifier(saturating()), callback, tmp_path)

    assert [step for step, _ in callback.reports] == [0, 10, 20]
    for _, report in callback.reports:
        assert report.verdict("saturated") is not None
    rows = logged(tmp_path)
    assert [float(r["probe/saturated"]) for r in rows] == [1.0, 1.0, 1.0]
    assert all(float(r["probe/problems"]) >= 1 for r in rows)
    said = [r.getMessage() for r in caplog.records if r.name == "initlab.lightning"]
    saturated = [m for m in said if ": saturated:" in m]
    assert len(saturated) == 1, said  # said when found, not again while it lasts
    assert saturated[0].startswith("initlab probe at step 0: saturated:")
    assert "Fix:" in saturated[0]


def test_stop_on_stops_training_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    callback = ProbeCallback(every=10, stop_on=("saturated", "nonfinite"))
    with caplog.at_level(logging.WARNING, logger="initlab.lightning"):
        trainer = fit(Classifier(saturating()), callback, tmp_path)
    assert trainer.global_step == 1  # stopped after the probed step 0
    assert [step for step, _ in callback.reports] == [0]
    assert callback.stop_reason is not None
    assert callback.stop_reason.startswith("the probe found saturated at step 0: ")
    assert any("stops training" in r.getMessage() for r in caplog.records)
    assert [float(r["probe/saturated"]) for r in logged(tmp_path)] == [1.0]


def test_stop_on_a_kind_not_found_trains_to_the_end(tmp_path: Path) -> None:
    callback = ProbeCallback(every=10, stop_on=("nonfinite",), log=False)
    trainer = fit(Classifier(healthy()), callback, tmp_path)
    assert trainer.global_step == STEPS and callback.stop_reason is None


def test_with_gradient_accumulation_the_report_waits_for_the_optimizer_step(
    tmp_path: Path,
) -> None:
    module = Classifier(healthy())
    weights: list[torch.Tensor] = []

    class Spy(ProbeCallback):
        def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
            before = len(self.reports)
            super().on_train_batch_end(trainer, pl_module, *args)
            if len(self.reports) > before:
                weights.append(pl_module.net[0].weight.detach().clone())

    callback = Spy(every=4, log=False)
    start = module.net[0].weight.detach().clone()
    x, y = list(loader())[1]
    with torch.no_grad():  # the micro-batch recorded: the last of step 0, from the start
        last = F.cross_entropy(module(x), y).item()
    fit(module, callback, tmp_path, max_steps=10, accumulate_grad_batches=2)
    assert [step for step, _ in callback.reports] == [0, 4, 8]
    assert callback.reports[0][1].loss == pytest.approx(last, rel=1e-6)
    assert not torch.equal(weights[0], start)  # reported after step 0's update, not before


def test_manual_optimization(tmp_path: Path) -> None:
    module = ManualClassifier(healthy())
    callback = ProbeCallback(every=10)
    fit(module, callback, tmp_path)
    assert [step for step, _ in callback.reports] == [0, 10, 20]
    assert [int(r["step"]) for r in logged(tmp_path)] == [0, 10, 20]
    assert hooks(module) == 0


def test_an_error_in_the_training_step_leaves_no_hook(tmp_path: Path) -> None:
    class Failing(Classifier):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            self.net(batch[0])
            raise RuntimeError("boom")

    module = Failing(healthy())
    with pytest.raises(RuntimeError, match="boom"):
        fit(module, ProbeCallback(every=1, log=False), tmp_path)
    assert hooks(module) == 0 and optimizer_hooks() == 0


# ------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"every": 0}, ValueError, "'every' parameter of ProbeCallback must be an integer >= 1"),
        ({"every": 2.5}, TypeError, "must be an integer >= 1. Got 2.5"),
        ({"log": "yes"}, TypeError, "'log' parameter of ProbeCallback must be True or False"),
        ({"histograms": 1}, TypeError, "'histograms' parameter"),
        ({"thresholds": {"dead": 0.5}}, TypeError, "a Thresholds or None. Got 'dict'"),
        ({"stop_on": "saturated"}, TypeError, r"Write stop_on=\('saturated',\) for one kind"),
        ({"stop_on": ("saturatd",)}, ValueError, "Got 'saturatd' instead.*saturated"),
        ({"stop_on": 3}, TypeError, "a collection of verdict kinds. Got .int. instead"),
    ],
)
def test_bad_arguments_are_refused_with_the_fix(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ProbeCallback(**options)


# ------------------------------------------------------------------------ optional extra


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_import_initlab_never_imports_lightning() -> None:
    done = _python(
        "import sys, initlab, initlab.probe\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'lightning', 'pytorch_lightning'}))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_lightning_the_import_error_names_the_extra() -> None:
    done = _python(
        "import sys\n"
        "sys.modules['lightning'] = None  # as if it were not installed\n"
        "import initlab.lightning"
    )
    assert done.returncode != 0
    assert "ImportError" in done.stderr
    assert "pip install 'initlab[lightning]'" in done.stderr
