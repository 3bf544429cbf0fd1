"""Lesson 1, init: how the weights start decides whether a network trains at all.

What it teaches. Seven ways to start, each with its own fate:

* **Zeros and ones** (any constant) never break symmetry. Every hidden unit of a layer
  starts with the same incoming weights, so it computes the same output, receives the
  same gradient and takes the same step: it stays a copy of its neighbours for ever, and
  the layer works as a single unit. (With all weights zero even that gradient is zero:
  only the output bias learns, and the net predicts the majority class.)
* **Small random** (N(0, 1)·0.01): each tanh layer multiplies the scale of the signal by
  about σ_w·√fan_in = 0.01·√300 ≈ 0.17, so four layers shrink it about a thousandfold,
  and the back-propagated gradient shrinks the same way: nothing learns.
* **Large random** (N(0, 1)·10): pre-activations in the tens or hundreds, so tanh and
  sigmoid units sit in their flat tails (the notebook's output sigmoid rounds to exactly
  1, hence its cost of inf), their slopes are near zero, and the cost starts huge and
  jumps about instead of falling.
* **Uniform** U(±1/√fan_in), PyTorch's layer default and Glorot & Bengio's "standard"
  init: Var(w) = 1/(3·fan_in), so a tanh net's signal shrinks by about 1/√3 per layer.
* **Xavier/Glorot** (Var = 2/(fan_in + fan_out)) keeps the scale of a tanh net's signal
  and gradient from layer to layer; **He** (Var = 2/fan_in) does so for ReLU.

The setup. Part 1 is the deeplearning.ai notebook "Initialization", run exactly
(:func:`initlab.lessons.notebooks.lesson_init`): 300 circles points, the net [2, 10, 5, 1]
(ReLU, ReLU, sigmoid), full-batch gradient descent at lr 0.01 for 15,000 iterations,
float64, with its three inits (zeros, large random ×10, He) drawn as the notebook draws
them after ``numpy.random.seed(3)``. Four further inits join them as further members of
the *same* stack, drawn the notebook's way from the same seed: ones, small random ×0.01
and Xavier (the notebook's standard-normal draws times 0.01 and √(2/(fan_in + fan_out))),
and uniform U(±1/√fan_in). The notebook's three runs print what the notebook prints: the
same accuracies, the costs of zeros and He to ~15 digits (NumPy and torch sum in other
orders). Part 2 is the deep net of the deeplearning.ai note "Initializing neural
networks": [784, 300, 300, 300, 300, 10], tanh, on MNIST, with six inits (zeros, small
×0.01, uniform, Xavier, He, large ×10; biases zero) as one stack, trained by plain SGD (lr
0.1, batches of 32) on the first 2,000 training images for 200 steps; its tanh outputs are
recorded on the first 1,000 test images at init and during training.
Symmetry is measured twice: on the weights (the largest difference between two units'
incoming weights and biases) and on the units' outputs (the probe's count of distinct
units). ``quick`` runs 1,500 iterations on circles and 40 steps on MNIST.

The large random run is chaotic: its saturated start amplifies the rounding of the sums,
so its costs depend on the CPU's kernels. Measured with torch 2.13 (float64; 1 and 2
threads give the same numbers): the AVX-512 and AVX2 kernels agree bit for bit up to
iteration 44 (the cost is inf at about 100 of the first 270 iterations), differ by 1e-12
at iteration 79, 1e-3 at 215, and near 280 one cost is 8 times the other; at iteration
1000 the cost is 0.62299 with AVX-512, 0.62430 with AVX2, and the notebook (NumPy) printed
0.62479. The runs then settle on one descent (at iterations 2000–6000 and 8000–14000 each
is within 4e-4 of the notebook's printed costs) except around the sharp drop near
iteration 7000, whose timing shifts (0.4697 with AVX-512, 0.4760 with AVX2, notebook
0.4716). The accuracies are the notebook's, 0.83 train and 0.86 test, on each.

Sources. deeplearning.ai, "Improving Deep Neural Networks", course 2, week 1, programming
exercise "Initialization"; deeplearning.ai AI Notes, "Initializing neural networks"
(Katanforoosh & Kunin, 2019); X. Glorot & Y. Bengio, "Understanding the difficulty of
training deep feedforward neural networks", AISTATS 2010 (§4.2, the standard and the
normalized init); K. He et al., "Delving Deep into Rectifiers", ICCV 2015 (§2.2).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from initlab import data
from initlab.lessons._lesson import Context, Lesson, LessonProgress, pyplot
from initlab.lessons.compat import legacy_randn_weights, load_weights
from initlab.lessons.notebooks import INIT_WIDTHS, init_data, init_weights, lesson_init
from initlab.models import Stack, StackedLinear, init_members, mlp
from initlab.probe import Probe, Thresholds, probe
from initlab.report import OKABE_ITO
from initlab.report.figures import draw_decision_boundaries
from initlab.train import TrainConfig, TrainResult

__all__ = ["run"]

NAME = "init"
TITLE = "Initialization: zeros, ones, small, large, uniform, Xavier and He"

# Part 1: the notebook's circles. Its own runs first (their printed lines are the
# notebook's), then the further inits, in the same stack. Run label → name on the page.
CIRCLES_NAMES = {
    "zeros": "zeros",
    "random": "large ×10",
    "he": "He",
    "ones": "ones",
    "small": "small ×0.01",
    "uniform": "uniform",
    "xavier": "Xavier",
}
CIRCLES_STEPS = 15_000  # the notebook's iterations
CIRCLES_QUICK_STEPS = 1_500
# What the notebook printed for large random at iteration 1000 (deeplearning.ai,
# "Initialization"), to set beside this machine's cost: the run is chaotic there.
RANDOM_COST_1000_PUBLISHED = 0.6247924745506072

# Part 2: the deep tanh net of the deeplearning.ai note, on MNIST. Name → init spec.
MNIST_WIDTHS = (784, 300, 300, 300, 300, 10)
MNIST_INITS = {
    "zeros": "zeros",
    "small ×0.01": "small_random",  # N(0, 0.01²)
    "uniform": "torch_default",  # U(±1/√fan_in)
    "Xavier": "xavier_normal",  # N(0, 2/(fan_in + fan_out))
    "He": "he_normal",  # N(0, 2/fan_in)
    "large ×10": "large_random",  # N(0, 10²)
}
MNIST_TRAIN = 2_000  # training images (the first ones of the file)
MNIST_TEST = 1_000  # test images: accuracy and the recorded activations
MNIST_BATCH = 32
MNIST_LR = 0.1
MNIST_SEED = 0  # members are seeded MNIST_SEED, MNIST_SEED + 1, …
MNIST_SNAPSHOTS = (0, 40, 200)  # steps at which the tanh outputs are recorded (last: end)
MNIST_QUICK_SNAPSHOTS = (0, 10, 40)
BINS = 41  # histogram bins over tanh's range [−1, 1] (odd: one bin centred on 0)


# --------------------------------------------------------------------------- measuring


def _hidden_layers(stack: Stack) -> list[StackedLinear]:
    """The stack's weight layers that feed an activation (all but the output layer)."""
    return [layer for layer in stack.layers if isinstance(layer, StackedLinear)][:-1]


def _unit_spread(stack: Stack) -> Tensor:
    """How far apart a layer's units are: per member and hidden layer, the largest
    difference between two units' incoming weights and biases, max_{i,j} ‖r_i − r_j‖_∞
    over the rows r = [W_i, b_i]. Zero exactly when every unit of the layer is a copy.

    Returns:
        (M, hidden layers), float64.
    """
    spreads = []
    for layer in _hidden_layers(stack):
        rows = layer.weight.detach().double()
        if layer.bias is not None:
            rows = torch.cat([rows, layer.bias.detach().double().unsqueeze(-1)], dim=-1)
        # the largest pairwise difference is, per column, the largest minus the smallest
        spreads.append((rows.amax(dim=1) - rows.amin(dim=1)).amax(dim=-1))
    return torch.stack(spreads, dim=1).cpu()


def _weight_scale(stack: Stack) -> Tensor:
    """(M, hidden layers): the largest |w| of each layer, to read a spread against."""
    return torch.stack(
        [layer.weight.detach().double().abs().amax(dim=(1, 2)) for layer in _hidden_layers(stack)],
        dim=1,
    ).cpu()


def _activations(stack: Stack, x: Tensor) -> tuple[list[Tensor], Tensor]:
    """Each hidden layer's activation outputs (M, units, B) on x, and the logits (M, out, B).

    Hooks on the activation modules also make the stack run them as modules, not fused
    in place, so what is kept is the output itself.
    """
    kept: list[Tensor] = []

    def keep(module: nn.Module, args: Any, output: Tensor) -> None:
        kept.append(output.detach())

    activations = [m for m in stack.layers if isinstance(m, nn.Tanh | nn.ReLU)]
    handles = [m.register_forward_hook(keep) for m in activations]
    was_training = stack.training
    stack.eval()
    try:
        with torch.no_grad():
            logits = stack.logits(x)
    finally:
        for handle in handles:
            handle.remove()
        stack.train(was_training)
    return kept, logits


@dataclass(frozen=True)
class _Snapshot:
    """The tanh outputs of the MNIST net at one step, summarized per member and layer."""

    step: int
    hist: Tensor  # (M, L, BINS): fraction of the layer's outputs in each bin of [−1, 1]
    std: Tensor  # (M, L): std of the layer's outputs
    saturated: Tensor  # (M, L): fraction with |a| > the probe's tanh threshold
    accuracy: Tensor  # (M,): on the recorded test images
    loss: Tensor  # (M,): cross-entropy there


def _snapshot(stack: Stack, x: Tensor, y: Tensor, step: int, threshold: float) -> _Snapshot:
    acts, logits = _activations(stack, x)
    flat = torch.stack(acts, dim=1).flatten(2)  # (M, L, units·B)
    members, layers, n = flat.shape
    # one bincount over (member, layer, bin) instead of a histogram per panel
    bins = ((flat + 1.0) * (BINS / 2.0)).long().clamp_(0, BINS - 1)
    bins += torch.arange(members * layers, device=flat.device).view(members, layers, 1) * BINS
    hist = torch.bincount(bins.flatten(), minlength=members * layers * BINS)
    std, _ = torch.std_mean(flat, dim=-1)
    # logits (M, classes, B): cross-entropy reads the classes from dim 1
    target = y.expand(members, -1)
    loss = nn.functional.cross_entropy(logits, target, reduction="none").mean(dim=1)
    return _Snapshot(
        step=step,
        hist=(hist.view(members, layers, BINS).double() / n).cpu(),
        std=std.double().cpu(),
        saturated=(flat.abs() > threshold).sum(dim=-1).double().div(n).cpu(),
        accuracy=(logits.argmax(dim=1) == target).double().mean(dim=-1).cpu(),
        loss=loss.double().cpu(),
    )


def _distinct_units(stack: Stack, x: Tensor) -> list[list[int]]:
    """The probe's count of distinct functions per hidden layer, per member."""
    report = probe(stack, x, histograms=False, forecast=False)
    probes: list[Probe] = report if isinstance(report, list) else [report]
    return [[s.distinct_units for s in p.layers[:-1]] for p in probes]


# --------------------------------------------------------------------------- the runs


def _circles_extra() -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """The further circles inits, drawn as the notebook draws (``numpy.random.seed(3)``,
    layer by layer): ones; the notebook's standard-normal draws times 0.01 (small) and
    times √(2/(fan_in + fan_out)) (Xavier); uniform U(±1/√fan_in). Biases zero."""
    z = legacy_randn_weights(INIT_WIDTHS, 3, lambda fan_in: 1.0)
    uniform = np.random.RandomState(3)
    return {
        "ones": [(np.ones_like(w), b) for w, b in z],
        "small": [(w * 0.01, b) for w, b in z],
        "uniform": [(uniform.uniform(-1.0, 1.0, w.shape) / math.sqrt(w.shape[1]), b) for w, b in z],
        "xavier": [(w * math.sqrt(2.0 / (w.shape[0] + w.shape[1])), b) for w, b in z],
    }


def _initial_circles_stack(extra: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> Stack:
    """The circles stack as it starts (to record its activations at init)."""
    inits = {**init_weights(), **extra}
    stack = mlp(list(INIT_WIDTHS), "relu", bias=True, members=len(inits), dtype=torch.float64)
    for m, weights in enumerate(inits.values()):
        load_weights(stack, m, weights)
    return stack


def _train_mnist(
    ctx: Context, snapshots: Sequence[int]
) -> tuple[Stack, list[_Snapshot], list[TrainResult], Tensor, float]:
    """The MNIST stack trained in segments between the snapshot steps (plain SGD keeps no
    state, so a segmented run is one run whose batches are reshuffled per segment)."""
    full = data.load("mnist", limit=max(MNIST_TRAIN, MNIST_TEST))
    x_test = full.x_test[:MNIST_TEST].to(ctx.device)
    y_test = full.y_test[:MNIST_TEST].to(ctx.device)
    # no test split for the engine: its end-of-segment evaluation is then the training
    # accuracy alone; the test accuracy comes with the snapshots
    train_set = (full.x_train[:MNIST_TRAIN], full.y_train[:MNIST_TRAIN])
    stack = mlp(list(MNIST_WIDTHS), "tanh", members=len(MNIST_INITS), device=ctx.device)
    init_members(stack, list(MNIST_INITS.values()), seeds=MNIST_SEED)
    threshold = Thresholds().tanh_saturation
    shots = [_snapshot(stack, x_test, y_test, 0, threshold)]
    results = []
    for k, (start, stop) in enumerate(itertools.pairwise(snapshots)):
        config = TrainConfig(
            loss="cross_entropy",
            optimizer="sgd",
            lr=MNIST_LR,
            batch_size=MNIST_BATCH,
            steps=stop - start,
            seeds=MNIST_SEED + k,  # a fresh order per segment
            log_every=2,
            check_every=stop - start,
        )
        results.append(ctx.train(stack, train_set, config))
        shots.append(_snapshot(stack, x_test, y_test, stop, threshold))
    return stack, shots, results, x_test, threshold


# --------------------------------------------------------------------------- figures

# Okabe & Ito without its yellow (faint on white), with its black: seven distinct lines.
PALETTE = (*(c for c in OKABE_ITO if c != "#F0E442"), "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _draw_circles_cost(costs: dict[str, list[tuple[int, float]]]) -> Any:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=100)
    for k, (label, points) in enumerate(costs.items()):
        x = [s for s, _ in points]
        y = [c if math.isfinite(c) else math.nan for _, c in points]
        ax.plot(
            x,
            y,
            marker=MARKERS[k % len(MARKERS)],
            markersize=4,
            color=PALETTE[k % len(PALETTE)],
            label=CIRCLES_NAMES[label],
            linewidth=1.5,
        )
    ax.set_xlabel("iteration (full-batch gradient descent step)")
    ax.set_ylabel("cost (cross-entropy, notebook formula)")
    ax.set_title("Circles: cost per init (a missing point: cost = inf)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, ncol=2)
    return fig


def _draw_units(stack: Stack, names: Sequence[str], spread: Tensor) -> Any:
    """Each member's layer-1 units as points (w₁, w₂): copies fall on one point."""
    plt = pyplot()
    weights = _hidden_layers(stack)[0].weight.detach().double().cpu()  # (M, units, 2)
    members, units = weights.shape[:2]
    fig, axes = plt.subplots(1, members, figsize=(2.1 * members, 2.6), dpi=100, squeeze=False)
    for m in range(members):
        ax = axes[0][m]
        ax.scatter(weights[m, :, 0], weights[m, :, 1], s=14, color=PALETTE[0], alpha=0.7)
        ax.set_title(f"{names[m]}\nspread {float(spread[m, 0]):.1g}", fontsize=8)
        ax.set_xlabel("w₁ (from x₁)", fontsize=7)
        if m == 0:
            ax.set_ylabel("w₂ (from x₂)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.locator_params(nbins=3)  # few tick labels: half the drawing time
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"Circles, after training: the {units} units of layer 1 as points (w₁, w₂); "
        "identical units are one point",
        fontsize=9,
    )
    return fig


def _draw_relu_histograms(before: list[Tensor], after: list[Tensor], names: Sequence[str]) -> Any:
    """Per member (column) and hidden layer (row): the ReLU outputs at init and after."""
    plt = pyplot()
    members, layers = len(names), len(before)
    fig, axes = plt.subplots(
        layers, members, figsize=(2.1 * members, 2.0 * layers + 0.6), dpi=100, squeeze=False
    )
    for layer in range(layers):
        for m in range(members):
            ax = axes[layer][m]
            for values, colour, when in (
                (before[layer][m], PALETTE[1], "at init"),
                (after[layer][m], PALETTE[0], "trained"),
            ):
                v = values.reshape(-1).double().cpu()
                top = float(v.max()) if v.numel() and float(v.max()) > 0 else 1.0
                counts = torch.histc(v, bins=30, min=0.0, max=top) / v.numel()
                edges = torch.linspace(0.0, top, 31)
                ax.stairs(counts.numpy(), edges.numpy(), color=colour, label=when)
            ax.tick_params(labelsize=6)
            ax.locator_params(nbins=3)
            if layer == 0:
                ax.set_title(names[m], fontsize=8)
            if layer == layers - 1:
                ax.set_xlabel("ReLU output", fontsize=7)
            if m == 0:
                ax.set_ylabel(f"layer {layer + 1}\nfraction of outputs", fontsize=7)
    axes[0][0].legend(frameon=False, fontsize=6)
    fig.suptitle(
        "Circles: histograms of each hidden layer's ReLU outputs on the training points, "
        "at init and after training (x in each panel's own units)",
        fontsize=9,
    )
    return fig


def _draw_tanh_histograms(shots: Sequence[_Snapshot], names: Sequence[str]) -> Any:
    """Rows: inits; columns: snapshots; in each panel one histogram per hidden layer."""
    plt = pyplot()
    rows, cols = len(names), len(shots)
    layers = shots[0].hist.shape[1]
    # One y scale per row (per init): a log scale, or one scale per panel, costs seconds
    # of drawing here.
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(2.9 * cols + 0.8, 1.55 * rows + 0.8),
        dpi=100,
        squeeze=False,
        sharex=True,
        sharey="row",
    )
    edges = torch.linspace(-1.0, 1.0, BINS + 1).numpy()
    for r in range(rows):
        for c, shot in enumerate(shots):
            ax = axes[r][c]
            for layer in range(layers):
                ax.stairs(
                    shot.hist[r, layer].numpy(),
                    edges,
                    color=PALETTE[layer % len(PALETTE)],
                    label=f"layer {layer + 1}",
                )
            ax.set_ylim(bottom=0)
            ax.tick_params(labelsize=6)
            ax.locator_params(nbins=3)
            if r == 0:
                ax.set_title(
                    f"step {shot.step}" + (" (init)" if shot.step == 0 else ""), fontsize=9
                )
            if c == 0:
                ax.set_ylabel(f"{names[r]}\nfraction", fontsize=8)
            if r == rows - 1:
                ax.set_xlabel("tanh output", fontsize=8)
    axes[0][-1].legend(frameon=False, fontsize=6, loc="upper right")
    fig.suptitle(
        f"MNIST, {layers} × {MNIST_WIDTHS[1]} tanh: histograms of each hidden layer's outputs "
        f"on {MNIST_TEST:,} test images",
        fontsize=10,
    )
    return fig


def _draw_layer_stats(shots: Sequence[_Snapshot], names: Sequence[str], threshold: float) -> Any:
    """Per-layer std and saturated fraction, at init (solid) and at the end (dashed)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0), dpi=100)
    first, last = shots[0], shots[-1]
    layers = list(range(1, first.std.shape[1] + 1))
    for m, name in enumerate(names):
        colour = PALETTE[m % len(PALETTE)]
        for shot, style, when in ((first, "o-", "init"), (last, "s--", f"step {last.step}")):
            std = [v if v > 0 else math.nan for v in shot.std[m].tolist()]
            axes[0].plot(layers, std, style, color=colour, markersize=4, label=f"{name}, {when}")
            axes[1].plot(layers, shot.saturated[m].tolist(), style, color=colour, markersize=4)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("std of the tanh outputs")
    axes[0].set_title("Signal scale by depth (a std of 0 is not drawn)")
    axes[1].set_ylabel(f"fraction with |tanh| > {threshold}")
    axes[1].set_title("Saturated units by depth")
    axes[1].set_ylim(-0.03, 1.03)
    for ax in axes:
        ax.set_xlabel("hidden layer")
        ax.set_xticks(layers)
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False, fontsize=6.5, ncol=2)
    return fig


def _draw_mnist_training(
    results: Sequence[TrainResult],
    snapshots: Sequence[int],
    shots: Sequence[_Snapshot],
    names: Sequence[str],
) -> Any:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0), dpi=100)
    steps = torch.cat([r.steps + start for r, start in zip(results, snapshots, strict=False)])
    loss = torch.cat([r.loss for r in results]).double()
    for m, name in enumerate(names):
        colour = PALETTE[m % len(PALETTE)]
        y = torch.where(torch.isfinite(loss[:, m]), loss[:, m], torch.nan)
        axes[0].plot(steps.numpy(), y.numpy(), color=colour, label=name, linewidth=1.2)
        axes[1].plot(
            [s.step for s in shots],
            [float(s.accuracy[m]) for s in shots],
            marker=MARKERS[m % len(MARKERS)],
            color=colour,
            label=name,
        )
    axes[0].set_yscale("log")
    axes[0].set_xlabel(f"SGD step (batch of {MNIST_BATCH})")
    axes[0].set_ylabel("training loss on the batch (cross-entropy)")
    axes[0].set_title("MNIST: cost per init")
    axes[1].set_xlabel("SGD step")
    axes[1].set_ylabel(f"test accuracy ({MNIST_TEST:,} images)")
    axes[1].set_title("MNIST: test accuracy during training")
    axes[1].set_ylim(0, 1)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=7)
    return fig


# --------------------------------------------------------------------------- the lesson


def _rms(t: Tensor) -> float:
    return float(t.double().square().mean().sqrt())


def _circles_part(ctx: Context, steps: int) -> tuple[dict[str, Any], list[str]]:
    """Part 1: train the circles stack, report it; return its facts and printed lines."""
    ctx.stage(f"circles: {len(CIRCLES_NAMES)} inits × {steps:,} iterations, one stack")
    extra = _circles_extra()
    circles = init_data()
    x = circles.x_train.to(ctx.device)
    acts_init, _ = _activations(_initial_circles_stack(extra).to(ctx.device), x)
    notebook = lesson_init(None, progress=ctx.progress, extra=extra, steps=steps, device=ctx.device)
    if notebook.result.interrupted:
        raise KeyboardInterrupt
    trained = notebook.model.to(ctx.device)
    labels = list(notebook.runs)
    names = [CIRCLES_NAMES[k] for k in labels]
    acts_end, _ = _activations(trained, x)
    spread, scale = _unit_spread(trained), _weight_scale(trained)
    distinct = _distinct_units(trained, x)
    widths = [layer.out_features for layer in _hidden_layers(trained)]

    runs: dict[str, dict[str, Any]] = {}
    for m, (label, name) in enumerate(zip(labels, names, strict=True)):
        costs = [c for _, c in notebook.costs[label]]
        runs[label] = {
            "name": name,
            "train_accuracy": notebook.train_accuracy[label],
            "test_accuracy": notebook.test_accuracy[label],
            "first_cost": costs[0],
            "final_cost": costs[-1],
            "unit_spread": spread[m].tolist(),  # per hidden layer
            "weight_scale": scale[m].tolist(),  # the largest |w| per hidden layer
            "distinct_units": distinct[m],  # the probe's, per hidden layer
            "act_rms_init": [_rms(a[m]) for a in acts_init],
            "act_rms_end": [_rms(a[m]) for a in acts_end],
        }
    # the trained hidden layers, rows [W_i, b_i] per unit, for an independent look
    weights = {
        label: [
            torch.cat([layer.weight[m], layer.bias[m].unsqueeze(-1)], dim=-1)
            .detach()
            .double()
            .cpu()
            .tolist()
            for layer in _hidden_layers(trained)
            if layer.bias is not None
        ]
        for m, label in enumerate(labels)
    }
    lines = list(notebook.lines)
    lines.append("Further inits in the same stack (not in the notebook):")
    for label in labels[3:]:
        lines.append(
            f"initialization = {label!r}: train accuracy {notebook.train_accuracy[label]}, "
            f"test accuracy {notebook.test_accuracy[label]}"
        )

    ctx.report.section(
        "Part 1 — circles, the notebook's net",
        "The deeplearning.ai notebook 'Initialization' run exactly: its three inits (zeros, "
        "large random ×10, He) print what the notebook prints. Ones, small random ×0.01, "
        "uniform U(±1/√fan_in) and Xavier train beside them as further members of the same "
        "stack. The cost is the notebook's own formula, which is inf when the output "
        "sigmoid rounds to exactly 1.",
    )
    best = min(labels, key=lambda k: runs[k]["final_cost"])
    flat = [CIRCLES_NAMES[k] for k in labels if abs(runs[k]["final_cost"] - math.log(2)) < 1e-4]
    infinite = [CIRCLES_NAMES[k] for k in labels if not math.isfinite(runs[k]["first_cost"])]
    ctx.figure(
        _draw_circles_cost(notebook.costs),
        "circles-cost",
        f"The cost every 1000 iterations. Ended within 1e-4 of log 2 = {math.log(2):.4f} "
        f"(the cost of answering ½ everywhere): {', '.join(flat) or 'none'}. Started at inf: "
        f"{', '.join(infinite) or 'none'}. Lowest at the end: {CIRCLES_NAMES[best]}, "
        f"{runs[best]['final_cost']:.3g}.",
    )
    boundaries = draw_decision_boundaries(trained.cpu(), circles.x_train, circles.y_train, names)
    boundaries.suptitle(
        f"Circles: each init's decision regions after {steps:,} iterations "
        "(blue: predicts 0, orange: predicts 1), with the training points",
        fontsize=10,
    )
    ctx.figure(
        boundaries,
        "circles-boundaries",
        "Each init's classifier after training, on the training points.",
    )
    trained.to(ctx.device)
    ctx.figure(
        _draw_units(trained, names, spread),
        "circles-units",
        "Symmetry after training: the units of layer 1 as points. Spread: the largest "
        "difference between two units' incoming weights and biases (0: all units are copies).",
    )
    ctx.figure(
        _draw_relu_histograms(acts_init, acts_end, names),
        "circles-activations",
        "Per-layer activation histograms at init (orange) and after training (blue); the "
        "RMS of layer 2's outputs at init: "
        + ", ".join(f"{runs[k]['name']} {runs[k]['act_rms_init'][-1]:.2g}" for k in labels)
        + ".",
    )
    ctx.report.table(
        [
            "init",
            "train accuracy",
            "test accuracy",
            f"cost at iteration {notebook.costs[labels[0]][-1][0]}",
            "unit spread, layers 1 / 2",
            "distinct units, layers 1 / 2",
        ],
        [
            [
                r["name"],
                r["train_accuracy"],
                r["test_accuracy"],
                r["final_cost"],
                " / ".join(f"{v:.2g}" for v in r["unit_spread"]),
                " / ".join(f"{d} of {w}" for d, w in zip(r["distinct_units"], widths, strict=True)),
            ]
            for r in runs.values()
        ],
        caption=(
            "Circles after training. Unit spread: the largest difference between two units' "
            "incoming weights and biases. Distinct units: how many different functions the "
            "layer's units compute on the training points (the probe)."
        ),
    )
    ctx.report.text("The printed output (the notebook's three runs as the notebook prints them):")
    ctx.report.preformatted(lines)
    facts = {"steps": steps, "runs": runs, "costs": notebook.costs, "weights": weights}
    return facts, lines


def _mnist_part(ctx: Context, snapshots: Sequence[int]) -> dict[str, Any]:
    """Part 2: train the MNIST stack in segments, report it; return its facts."""
    names = list(MNIST_INITS)
    ctx.stage(f"MNIST: {len(names)} inits × {snapshots[-1]} SGD steps, one stack")
    stack, shots, results, x_test, threshold = _train_mnist(ctx, snapshots)
    spread = _unit_spread(stack)
    distinct = _distinct_units(stack, x_test[:256])
    last = results[-1]
    half = last.loss.shape[0] // 2
    runs: dict[str, dict[str, Any]] = {}
    for m, name in enumerate(names):
        tail = last.loss[half:, m].double()
        std = shots[0].std[m].tolist()
        runs[name] = {
            "spec": MNIST_INITS[name],
            "train_accuracy": last.members[m].train_accuracy,
            "test_accuracy": float(shots[-1].accuracy[m]),
            "test_accuracy_init": float(shots[0].accuracy[m]),
            "first_loss": float(results[0].loss[0, m]),
            "final_loss": float(shots[-1].loss[m]),  # on the test images
            "tail_loss_min": float(tail.min()),  # the batch loss over the last half
            "tail_loss_max": float(tail.max()),  # of the last segment's logged steps
            "tail_steps": len(tail),
            "std_init": std,  # per hidden layer
            "std_end": shots[-1].std[m].tolist(),
            # the geometric-mean change of the std per layer, at init
            "std_factor_init": (std[-1] / std[0]) ** (1 / (len(std) - 1)) if std[0] > 0 else 0.0,
            "saturated_init": shots[0].saturated[m].tolist(),
            "saturated_end": shots[-1].saturated[m].tolist(),
            "unit_spread": spread[m].tolist(),
            "distinct_units": distinct[m],
            "status": last.members[m].status,
        }

    ctx.report.section(
        "Part 2 — a deep tanh net on MNIST",
        f"The net of the deeplearning.ai note 'Initializing neural networks': "
        f"[784, 300, 300, 300, 300, 10], tanh, trained by plain SGD (lr {MNIST_LR}, batches "
        f"of {MNIST_BATCH}) on the first {MNIST_TRAIN:,} training images; the six inits are "
        f"six members of one stack. The tanh outputs were recorded on the first "
        f"{MNIST_TEST:,} test images at steps {', '.join(map(str, snapshots))}.",
    )
    r = runs
    ctx.figure(
        _draw_tanh_histograms(shots, names),
        "mnist-activations",
        "Per-layer histograms of the tanh outputs. At init the std of layer 4's outputs was "
        + ", ".join(f"{k} {v['std_init'][-1]:.2g}" for k, v in r.items())
        + f"; {min(r['large ×10']['saturated_init']):.0%} or more of large random's outputs "
        f"were beyond ±{threshold} in every layer.",
    )
    ctx.figure(
        _draw_layer_stats(shots, names, threshold),
        "mnist-layers",
        "Left: the std of each layer's tanh outputs; at init it changed per layer by a factor "
        + ", ".join(f"{k} {v['std_factor_init']:.2g}" for k, v in r.items() if k != "zeros")
        + ". Right: the fraction of saturated outputs.",
    )
    ctx.figure(
        _draw_mnist_training(results, snapshots, shots, names),
        "mnist-training",
        "Left: the training loss of the step's batch (every 2nd step). Right: test accuracy "
        "at the recorded steps.",
    )
    ctx.report.table(
        [
            "init",
            f"train accuracy ({MNIST_TRAIN:,})",
            f"test accuracy ({MNIST_TEST:,})",
            "test loss",
            "std at init, layer 1 → 4",
            "saturated at init, min–max",
            "distinct units, layers 1–4",
        ],
        [
            [
                name,
                v["train_accuracy"],
                v["test_accuracy"],
                v["final_loss"],
                f"{v['std_init'][0]:.2g} → {v['std_init'][-1]:.2g}",
                f"{min(v['saturated_init']):.0%}–{max(v['saturated_init']):.0%}",
                " / ".join(str(d) for d in v["distinct_units"]),
            ]
            for name, v in runs.items()
        ],
        caption=f"MNIST after {snapshots[-1]} steps.",
    )
    return {
        "steps": snapshots[-1],
        "snapshots": list(snapshots),
        "saturation_threshold": threshold,
        "runs": runs,
    }


def _findings(circles: dict[str, Any], mnist: dict[str, Any]) -> list[str]:
    """The lesson's findings, as sentences formatted from the facts; each verdict word
    (identical, vanished, saturated) is chosen by the numbers, not assumed."""
    c, mn = circles["runs"], mnist["runs"]
    he, zeros, ones, small_c, large_c = (c[k] for k in ("he", "zeros", "ones", "small", "random"))
    xs, hs, zs, ss, ls, us = (
        mn[k] for k in ("Xavier", "He", "zeros", "small ×0.01", "large ×10", "uniform")
    )
    steps, iters = mnist["steps"], circles["steps"]
    log2 = math.log(2)
    zeros_cost = f"{zeros['final_cost']:.4f}" + (
        " = log 2" if abs(zeros["final_cost"] - log2) < 1e-12 else ""
    )
    zeros_same = max(zeros["unit_spread"]) == 0.0
    ones_rel = max(
        s / w if w > 0 else 0.0
        for s, w in zip(ones["unit_spread"], ones["weight_scale"], strict=True)
    )
    ones_same = ones_rel < 1e-12 and max(ones["distinct_units"]) == 1
    shrink = ss["std_init"][-1] / ss["std_init"][0]
    saturated = min(ls["saturated_init"])
    random_1000 = dict(circles["costs"]["random"]).get(1000)
    chaos = (
        ""
        if random_1000 is None
        else " From there the run is chaotic: its cost depends on the CPU's rounding — at "
        f"iteration 1,000 here {random_1000:.3g}, the notebook printed "
        f"{RANDOM_COST_1000_PUBLISHED:.3g}."
    )
    return [
        f"On circles He reached {he['train_accuracy']:.1%} train and {he['test_accuracy']:.0%} "
        f"test accuracy after {iters:,} iterations; zero init stayed at "
        f"{zeros['train_accuracy']:.0%} (cost {zeros_cost}) and its hidden units "
        + ("stayed identical" if zeros_same else "drifted apart")
        + f" (largest difference between two units' weights: {max(zeros['unit_spread']):.3g}).",
        "Ones "
        + ("did not break symmetry either" if ones_same else "broke symmetry")
        + f": after training its units differed by at most {ones_rel:.1g} of the weights' size"
        + (" (rounding)" if ones_rel < 1e-12 else "")
        + f", the probe found {'/'.join(map(str, ones['distinct_units']))} distinct units in "
        f"layers 1/2, and it reached {ones['train_accuracy']:.1%} train accuracy.",
        "Small random (×0.01) "
        + ("vanished" if shrink < 0.05 else "kept its signal")
        + f": in the MNIST tanh net the activations' std fell from {ss['std_init'][0]:.2g} at "
        f"layer 1 to {ss['std_init'][-1]:.2g} at layer {len(ss['std_init'])} at init "
        f"({shrink:.1g}×); {ss['test_accuracy']:.0%} test accuracy after {steps} steps; on "
        f"circles its cost was {small_c['final_cost']:.4f} after {iters:,} iterations.",
        "Large random (×10) "
        + ("saturated" if saturated > 0.5 else "did not saturate")
        + f": at init {saturated:.0%} or more of every MNIST layer's tanh outputs had "
        f"|a| > {mnist['saturation_threshold']}; its loss started at {ls['first_loss']:.3g} "
        f"and still jumped between {ls['tail_loss_min']:.3g} and {ls['tail_loss_max']:.3g} "
        f"over its last {ls['tail_steps']} logged steps ({ls['test_accuracy']:.0%} test "
        f"accuracy); on circles the notebook's cost started at {large_c['first_cost']}"
        + (
            " (the output sigmoid rounded to exactly 1)."
            if large_c["first_cost"] == math.inf
            else "."
        )
        + chaos,
        f"On MNIST after {steps} steps: Xavier {xs['test_accuracy']:.1%} and He "
        f"{hs['test_accuracy']:.1%} test accuracy; uniform U(±1/√fan_in) "
        f"{us['test_accuracy']:.1%} (its signal shrank {1 / us['std_factor_init']:.2g}× per "
        f"layer at init); zeros {zs['test_accuracy']:.1%} with "
        f"{max(zs['distinct_units'])} distinct unit(s) per layer; small "
        f"{ss['test_accuracy']:.1%}; large {ls['test_accuracy']:.1%}.",
    ]


def run(
    out: str | Path | None = None,
    *,
    quick: bool = False,
    device: str = "cpu",
    progress: LessonProgress | None = None,
) -> Lesson:
    """Run the lesson (see the module's doc); write its report into ``out``."""
    steps = CIRCLES_QUICK_STEPS if quick else CIRCLES_STEPS
    snapshots = MNIST_QUICK_SNAPSHOTS if quick else MNIST_SNAPSHOTS
    ctx = Context(
        NAME,
        TITLE,
        out,
        quick=quick,
        device=device,
        progress=progress,
        subtitle=(
            f"Part 1: the deeplearning.ai notebook 'Initialization' (circles, [2, 10, 5, 1] "
            f"ReLU, {steps:,} full-batch iterations, float64): its three inits and four more "
            f"in one stack. Part 2: the note 'Initializing neural networks' (MNIST, "
            f"[784, 300, 300, 300, 300, 10] tanh): six inits in one stack, {snapshots[-1]} "
            "SGD steps."
        ),
    )
    circles, lines = _circles_part(ctx, steps)
    mnist = _mnist_part(ctx, snapshots)
    return ctx.finish(_findings(circles, mnist), {"circles": circles, "mnist": mnist}, lines)
