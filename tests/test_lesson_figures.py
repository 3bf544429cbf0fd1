"""The figures: drawn on Figure objects without pyplot, the probe's shared axis, and the
figures of a Watch's history, checked against the numbers they draw."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from initlab.probe import Probe, Watch, probe
from initlab.report.figures import (
    DPI,
    WIDTH,
    draw_histogram_heatmap,
    draw_probe,
    draw_update_ratios,
)


def _vanishing_probe() -> Probe:
    # Weights of std 0.3/√fan_in: the signal shrinks ~0.3× per tanh layer, so the
    # last layer's activations are far narrower than the first's.
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for fan_in in (16, 32, 32, 32, 32, 32):
        linear = nn.Linear(fan_in, 32)
        nn.init.normal_(linear.weight, std=0.3 / math.sqrt(fan_in))
        nn.init.zeros_(linear.bias)
        layers += [linear, nn.Tanh()]
    net = nn.Sequential(*layers, nn.Linear(32, 4))
    return probe(net, torch.randn(256, 16), histograms=True)[0]


def _histogram_panels(fig: object) -> list[object]:
    # The RMS panel spans every row; the others are one layer each.
    return [ax for ax in fig.axes[1:]]  # type: ignore[attr-defined]


def test_probe_histograms_share_one_axis_so_vanishing_shows() -> None:
    report = _vanishing_probe()
    fig = draw_probe(report)
    panels = _histogram_panels(fig)
    n = len(report.layers)
    assert len(panels) == 2 * n
    for column in (panels[:n], panels[n:]):
        assert len({ax.get_xlim() for ax in column}) == 1  # type: ignore[attr-defined]
        assert len({ax.get_ylim() for ax in column}) == 1  # type: ignore[attr-defined]
    # In the values' own units: the first layer's histogram spans its own edges, and the
    # last's is far narrower (it vanished), on the same axis.
    acts = panels[:n]
    spans = []
    for ax, s in zip(acts, report.layers, strict=True):
        (poly,) = ax.collections  # type: ignore[attr-defined]
        x = poly.get_paths()[0].vertices[:, 0]
        centres = (s.act_hist.edges[:-1] + s.act_hist.edges[1:]) / 2
        assert x.min() == pytest.approx(centres.min()) and x.max() == pytest.approx(centres.max())
        spans.append(x.max() - x.min())
    assert spans[-1] < 0.2 * spans[0]
    low, high = acts[0].get_xlim()  # type: ignore[attr-defined]
    assert low <= min(float(s.act_hist.edges[0]) for s in report.layers)
    assert high >= max(float(s.act_hist.edges[-1]) for s in report.layers)


def test_probe_per_layer_normalisation_divides_by_each_rms() -> None:
    report = _vanishing_probe()
    fig = draw_probe(report, shared=False)
    panels = _histogram_panels(fig)
    n = len(report.layers)
    for ax, s in zip(panels[n:], report.layers, strict=True):
        (poly,) = ax.collections  # type: ignore[attr-defined]
        x = poly.get_paths()[0].vertices[:, 0]
        centres = (s.grad_hist.edges[:-1] + s.grad_hist.edges[1:]) / 2
        assert x.max() == pytest.approx(centres.max() / s.grad_rms)
        assert ax.get_xlim() == (-4.0, 4.0)  # type: ignore[attr-defined]
    assert fig.get_figwidth() * fig.dpi <= 960


def _watched(steps: int, **options: bool) -> dict[int, object]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    x, y = torch.randn(64, 6), torch.randn(64, 1)
    watch, history = Watch(net, **options), {}
    for step in range(steps):
        with watch:
            opt.zero_grad()
            loss = F.mse_loss(net(x), y)
            loss.backward()
        opt.step()
        history[step * 5] = watch.report(loss=loss)
    return history


def test_update_ratio_lines_are_the_recorded_ratios() -> None:
    history = _watched(4, updates=True)
    fig = draw_update_ratios(history)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    lines = ax.get_lines()
    layers = 3
    assert len(lines) == layers + 1
    for i, line in enumerate(lines[:layers]):
        assert list(line.get_xdata()) == [0, 5, 10, 15]
        recorded = [history[s].layers[i].update_weight_ratio for s in (0, 5, 10, 15)]  # type: ignore[attr-defined]
        assert all(r > 0 for r in recorded)
        np.testing.assert_array_equal(line.get_ydata(), recorded)
    guide = lines[-1]
    assert set(guide.get_ydata()) == {1e-3}
    assert fig.get_figwidth() * fig.dpi <= 960


def test_update_ratios_without_updates_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="updates=True"):
        draw_update_ratios(_watched(2))
    with pytest.raises(ValueError, match="at least one step"):
        draw_update_ratios({})


def test_histogram_heatmap_keeps_each_steps_mass_per_layer() -> None:
    history = _watched(3, histograms=True)
    fig = draw_histogram_heatmap(history, kind="gradients", bins=30)
    panels, colourbar = fig.axes[:-1], fig.axes[-1]
    assert len(panels) == 3 and colourbar.get_ylabel() == "share of the layer's values"
    assert len({ax.get_ylim() for ax in panels}) == 1  # one value axis for every layer
    for i, ax in enumerate(panels):
        (mesh,) = ax.collections
        shares = np.ma.filled(mesh.get_array(), 0.0).reshape(30, 3)
        # Every step's column holds all of that layer's values, once.
        np.testing.assert_allclose(shares.sum(axis=0), 1.0, rtol=1e-12)
        # The re-binned mean equals the recorded histogram's (values spread evenly in bins).
        low, high = ax.get_ylim()
        centres = np.linspace(low, high, 31)[:-1] + (high - low) / 60
        for k, step in enumerate((0, 5, 10)):
            hist = history[step].layers[i].grad_hist  # type: ignore[attr-defined]
            own = ((hist.edges[:-1] + hist.edges[1:]) / 2 * hist.counts).sum() / hist.counts.sum()
            assert (centres * shares[:, k]).sum() == pytest.approx(own, abs=(high - low) / 30)
    with pytest.raises(ValueError, match="histograms=True"):
        draw_histogram_heatmap(_watched(1))
    with pytest.raises(ValueError, match="'kind'"):
        draw_histogram_heatmap(history, kind="weights")


def test_drawing_never_imports_pyplot() -> None:
    # A fresh interpreter: draw every kind of figure, save it, and pyplot is never loaded
    # (so the user's backend is never touched).
    code = textwrap.dedent(
        """
        import io, sys, torch
        from initlab import models
        from initlab.probe import probe
        from initlab.report.figures import draw_loss_curves, draw_probe
        from initlab.lessons import optimizers
        from initlab.lessons._lesson import Env
        from initlab.report.html import Report
        net = models.mlp([4, 8, 8, 2], "relu")
        figs = [draw_probe(probe(net, torch.randn(32, 4))[0]),
                draw_loss_curves(torch.arange(3), torch.rand(3, 2) + 0.1, ["a", "b"])]
        for fig in figs:
            fig.savefig(io.BytesIO(), format="png")
        facts = optimizers.compute(optimizers.Size(epochs=2), Env())
        optimizers.draw(facts, Report("optimizers", "t", None, ""))
        print("matplotlib.pyplot" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_figure_width_fits_a_page_column() -> None:
    assert WIDTH * DPI <= 960


def test_every_figure_saves_within_a_page_column(tmp_path: Path) -> None:
    # Drawn from small inputs; the PNG as a page embeds it, read back from its header.
    from lesson_checks import png_size

    from initlab.report.figures import _save, draw_loss_curves

    labels = [f"member {i}" for i in range(9)]  # more than the palette: dashes too
    figures = {
        "loss": draw_loss_curves(torch.arange(5), torch.rand(5, 9) + 0.1, labels),
        "probe": draw_probe(_vanishing_probe()),
        "ratios": draw_update_ratios(_watched(4, updates=True)),  # type: ignore[arg-type]
        "heatmap": draw_histogram_heatmap(_watched(4, histograms=True)),  # type: ignore[arg-type]
    }
    for name, fig in figures.items():
        width, _ = png_size(_save(fig, tmp_path / name).read_bytes())
        assert width <= round(WIDTH * DPI) <= 960, (name, width)
