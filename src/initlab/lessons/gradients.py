"""Lesson 6, gradients: vanishing and exploding gradients, by depth, activation and init.

What it teaches. Going backward, each layer multiplies the gradient ∂loss/∂h by its
Jacobian: in a wide net of width n with weights of variance v, the gradient's root mean
square changes per layer by √(n·v·E[φ'(h)²]) (the backward mean-field recursion). Where
that factor is below 1 the gradient vanishes exponentially with depth, above 1 it
explodes; only an init that sets n·v·E[φ'²] = 1 keeps it level. For tanh (φ' ≈ 1 near
0) that is v = 1/n — Glorot & Bengio's *normalized* init, 2/(fan_in + fan_out) —
whereas their *standard* heuristic U[±1/√n] has v = 1/(3n) and shrinks the gradient by
≈ 1/√3 per layer. For ReLU (E[φ'²] = 1/2) it is v = 2/n, He et al.'s init; Xavier's
1/n shrinks it by 1/√2 per layer, 2⁻¹⁵ over 30 layers. Sigmoid (φ' ≤ 1/4) vanishes
under all of them. The forward signal h follows the same rule with E[φ(h)²]/q in place
of E[φ'²].

The setup. Three studies, each run as one stack:

1. *Depth × activation × init, at init.* A 784–128×30–10 MLP on MNIST (a batch of
   standardized digits), for sigmoid, tanh, ReLU and leaky ReLU (one stack per
   activation), each with three members: the standard init U[±1/√fan_in], Xavier
   (uniform, normalized) and He (normal, 2/fan_in); biases 0. :func:`initlab.probe.probe`
   measures every hidden layer's RMS of h and of ∂loss/∂h (with the N(0, 1) output
   gradient the theory assumes) beside the mean-field forecast for the same weights.
   The per-layer factor is the exponential of the least-squares slope of log RMS against
   depth over the hidden layers, whose weights are square (n × n).
2. *Glorot & Bengio 2010, §4.2.2, Figs. 6–7.* Their 5 × 1000 tanh net with the standard
   and the normalized init, probed on a batch of MNIST with the cross-entropy loss:
   histograms of every hidden layer's activations and back-propagated gradients.
3. *He et al. 2015, §2.2 and Fig. 3.* A 30-layer ReLU MLP (width 128) on an MNIST
   subset, Xavier against He init (two seeds each in the full run), trained together as
   one stack by SGD with momentum 0.9.

Sources. X. Glorot & Y. Bengio, "Understanding the difficulty of training deep
feedforward neural networks", AISTATS 2010, §4.2 (eqs. 12–16, Figs. 6–7); K. He, X.
Zhang, S. Ren & J. Sun, "Delving Deep into Rectifiers", ICCV 2015, §2.2 (eqs. 10, 14) and
Fig. 3 (a 30-layer net that Xavier init stalls and He init trains); S. Schoenholz et al.,
"Deep Information Propagation", ICLR 2017, §4 (the backward mean-field recursion).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor
from torch.nn import functional as F

from initlab import data, models
from initlab.lessons._lesson import Context, Lesson, LessonProgress, pyplot
from initlab.probe import Probe, probe
from initlab.report import OKABE_ITO
from initlab.train import TrainConfig

__all__ = ["run"]

NAME = "gradients"
TITLE = "Vanishing and exploding gradients"

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
# label → init spec; biases are 0 throughout, as in Glorot & Bengio and He et al.
INITS: dict[str, str] = {
    "standard": "torch_default",  # U[±1/√fan_in]: Glorot & Bengio's "standard" heuristic
    "Xavier": "xavier_uniform",  # U[±√(6/(fan_in + fan_out))]: their "normalized" init
    "He": "he_normal",  # N(0, 2/fan_in)
}
INIT_COLOURS = {"standard": OKABE_ITO[2], "Xavier": OKABE_ITO[0], "He": OKABE_ITO[3]}
DEPTH = 30  # hidden layers of the probed nets and of He et al.'s trained net
WIDTH = 128  # their width
PROBE_SEED = 0  # the initial weights of the probed nets (member m gets seed + m)
GLOROT_DEPTH = 5  # Glorot & Bengio's nets: 5 hidden layers ...
GLOROT_WIDTH = 1000  # ... of 1000 units
HE_LR = 0.003  # SGD with momentum 0.9, as He et al. train; fast for He init yet stable
HE_BATCH = 64
SMOOTH = 20  # steps in the moving average of the loss curves and of the start/end loss


@dataclass(frozen=True)
class _Size:
    """How big each study is: the full run, or the quick one for tests."""

    probe_batch: int  # digits in the probe's batch
    glorot_width: int  # units per hidden layer of Glorot's net
    he_train: int  # MNIST training (and test) examples for He's net
    he_steps: int  # SGD steps
    he_seeds: int  # seeds per init


FULL = _Size(probe_batch=256, glorot_width=GLOROT_WIDTH, he_train=3000, he_steps=400, he_seeds=2)
QUICK = _Size(probe_batch=128, glorot_width=256, he_train=1000, he_steps=100, he_seeds=1)


def _factor(values: Sequence[float]) -> float:
    """The per-layer factor: exp of the least-squares slope of log(values) against depth.

    NaN where a value is not finite (a missing forecast); 0 where one is 0 (the signal died).
    """
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2 or not np.all(np.isfinite(v)):
        return math.nan
    if np.any(v <= 0):
        return 0.0
    return float(np.exp(np.polyfit(np.arange(len(v)), np.log(v), 1)[0]))


@dataclass(frozen=True)
class _Profile:
    """One probed net: per hidden layer, measured and forecast RMS of h and ∂loss/∂h."""

    preact: list[float]
    preact_forecast: list[float]
    grad: list[float]
    grad_forecast: list[float]

    @classmethod
    def of(cls, report: Probe, hidden: int) -> _Profile:
        layers = report.layers[:hidden]
        return cls(
            preact=[s.preact_rms for s in layers],
            preact_forecast=[_number(s.forecast_preact_rms) for s in layers],
            grad=[s.grad_rms for s in layers],
            grad_forecast=[_number(s.forecast_grad_rms) for s in layers],
        )

    # Backward factors run from the top hidden layer down; forward ones skip layer 1,
    # whose weights meet the data (784 inputs) rather than a layer of the same width.
    @property
    def backward(self) -> float:
        return _factor(self.grad[::-1])

    @property
    def backward_forecast(self) -> float:
        return _factor(self.grad_forecast[::-1])

    @property
    def forward(self) -> float:
        return _factor(self.preact[1:])

    @property
    def forward_forecast(self) -> float:
        return _factor(self.preact_forecast[1:])

    @property
    def grad_ratio(self) -> float:
        """RMS of ∂loss/∂h at the first hidden layer over that at the last."""
        return self.grad[0] / self.grad[-1] if self.grad[-1] > 0 else math.nan


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _stack_cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    """Sum over the members of each member's mean cross-entropy (a stack's probe loss)."""
    members, batch, classes = output.shape
    return (
        F.cross_entropy(output.reshape(-1, classes), target.repeat(members), reduction="sum")
        / batch
    )


def _probe_grid(ctx: Context, x: Tensor) -> dict[str, dict[str, _Profile]]:
    """Every activation's stack of inits, probed at init: activation → init → profile."""
    grid: dict[str, dict[str, _Profile]] = {}
    widths = [x.shape[1], *[WIDTH] * DEPTH, 10]
    for activation in ACTIVATIONS:
        ctx.stage(f"probing the {DEPTH}-layer {activation} net at init, {len(INITS)} inits")
        net = models.mlp(widths, activation, members=len(INITS), device=ctx.device)
        models.init_members(net, list(INITS.values()), "zeros", seeds=PROBE_SEED)
        reports = probe(net, x, histograms=False)
        assert isinstance(reports, list)  # a stack gives one report per member
        grid[activation] = {
            label: _Profile.of(report, DEPTH) for label, report in zip(INITS, reports, strict=True)
        }
    return grid


def _change(factor: float) -> str:
    """'shrinks it 0.58×', 'grows it 1.05×' or 'keeps it level (1.00×)', per layer."""
    if round(factor, 2) == 1.0:
        return f"keeps it level ({factor:.2f}×)"
    return f"{'grows' if factor > 1 else 'shrinks'} it {factor:.2f}×"


def run(
    out: str | Path | None = None,
    *,
    quick: bool = False,
    device: str = "cpu",
    progress: LessonProgress | None = None,
) -> Lesson:
    """Run the lesson: probe depth × activation × init, Glorot's histograms, He's training.

    Args:
        out: the folder for the report and figures; None keeps them in memory.
        quick: a smaller Glorot net, fewer digits and fewer training steps (for tests).
        device: ``"cpu"`` or ``"cuda"``.
        progress: a progress display, told each stage and fed the engine's reports.

    Returns:
        The :class:`~initlab.lessons.Lesson`; ``facts`` holds the per-layer factors
        (measured and forecast) per activation and init, Glorot's first-to-last gradient
        ratios, and He's start and end losses.

    Raises:
        ValueError: a device that is not there (e.g. ``"cuda"`` without a GPU).
    """
    size = QUICK if quick else FULL
    ctx = Context(
        NAME,
        TITLE,
        out,
        quick=quick,
        device=device,
        progress=progress,
        subtitle=(
            f"Depth × activation × init, probed at init on MNIST beside the mean-field "
            f"forecast; Glorot & Bengio 2010's tanh nets; He et al. 2015's {DEPTH}-layer "
            "ReLU net, trained as one stack."
        ),
    )
    plt = pyplot()

    ctx.stage("loading MNIST")
    mnist, _ = data.scale(data.load("mnist", limit=size.he_train), per_feature=False)
    batch_x = mnist.x_train[: size.probe_batch].to(ctx.device)
    batch_y = mnist.y_train[: size.probe_batch].to(ctx.device)

    # ------------------------------------------------------------ 1. the probe grid
    grid = _probe_grid(ctx, batch_x)
    layers = np.arange(1, DEPTH + 1)
    fig, axes = plt.subplots(2, len(ACTIVATIONS), figsize=(15, 7.2), sharex=True)
    for col, activation in enumerate(ACTIVATIONS):
        for label, prof in grid[activation].items():
            colour = INIT_COLOURS[label]
            for row, (measured, forecast) in enumerate(
                [(prof.preact, prof.preact_forecast), (prof.grad, prof.grad_forecast)]
            ):
                ax = axes[row, col]
                ax.plot(layers, measured, "o-", ms=3, lw=1.6, color=colour, label=label)
                ax.plot(layers, forecast, "--", lw=1.2, color=colour, alpha=0.9)
        axes[0, col].set_title(activation.replace("_", " "))
        axes[1, col].set_xlabel("hidden layer (1 = next to the input)")
        for ax in axes[:, col]:
            ax.set_yscale("log")
            ax.grid(True, which="major", alpha=0.3)
    axes[0, 0].set_ylabel("RMS of the pre-activation h")
    axes[1, 0].set_ylabel("RMS of the gradient ∂loss/∂h")
    handles, labels = axes[1, 0].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], color="grey", ls="--"))
    labels.append("mean-field forecast")
    axes[1, 0].legend(handles, labels, fontsize=8, loc="lower right")
    fig.suptitle(
        f"Signal (top) and gradient (bottom) through a {DEPTH}-layer, width-{WIDTH} net at "
        "init: measured by the probe (solid) and forecast (dashed)"
    )
    ctx.report.section(
        "Depth × activation × init, at initialization",
        f"Each activation is one stack of {len(INITS)} members, {DEPTH} hidden layers of "
        f"{WIDTH} units on a batch of {size.probe_batch} standardized MNIST digits. The probe "
        "measures the RMS of every hidden layer's pre-activation h and of the gradient "
        "∂loss/∂h (for an N(0, 1) output gradient, the theory's assumption); the dashed "
        "lines are the mean-field forecast for the same weights. Read the gradient panels "
        "from right to left: that is the way the gradient travels.",
    )
    ctx.figure(
        fig,
        "profiles",
        "Per-layer RMS of h and of ∂loss/∂h at init, per activation (columns) and init "
        "(colours). A straight line on this log scale is a constant per-layer factor.",
    )

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    matrix = np.array([[grid[a][i].backward for i in INITS] for a in ACTIVATIONS])
    from matplotlib.colors import LogNorm

    image = ax.imshow(matrix, cmap="PuOr", norm=LogNorm(vmin=0.1, vmax=10.0), aspect="auto")
    for r, activation in enumerate(ACTIVATIONS):
        for c, label in enumerate(INITS):
            prof = grid[activation][label]
            shade = abs(math.log10(prof.backward)) if prof.backward > 0 else 1.0
            ax.text(
                c,
                r,
                f"{prof.backward:.3f}\n(theory {prof.backward_forecast:.3f})",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if shade > 0.55 else "black",
            )
    ax.set_xticks(range(len(INITS)), list(INITS))
    ax.set_yticks(range(len(ACTIVATIONS)), [a.replace("_", " ") for a in ACTIVATIONS])
    ax.set_xlabel("init")
    ax.set_ylabel("activation")
    fig.colorbar(image, ax=ax, label="per-layer gradient factor (1 = level)")
    ax.set_title("How much the gradient keeps per layer, going backward")
    ctx.figure(
        fig,
        "factors",
        "The back-propagated gradient's per-layer factor, measured over the hidden layers "
        "(the mean-field forecast in brackets). Purple: it shrinks toward the input "
        "(vanishes); orange: it grows (explodes).",
    )
    ctx.report.table(
        [
            "activation",
            "init",
            "gradient factor",
            "forecast",
            "signal factor",
            "forecast",
            "gradient layer 1 / layer " + str(DEPTH),
        ],
        [
            [
                activation,
                label,
                prof.backward,
                prof.backward_forecast,
                prof.forward,
                prof.forward_forecast,
                f"{prof.grad_ratio:.2e}",
            ]
            for activation in ACTIVATIONS
            for label, prof in grid[activation].items()
        ],
        caption="Per-layer factors of the RMS of ∂loss/∂h (backward) and of h (forward, "
        "from layer 2 on), measured and forecast.",
    )

    # ------------------------------------------------------------ 2. Glorot & Bengio
    ctx.stage("probing Glorot & Bengio's tanh nets")
    glorot_inits = {"standard": INITS["standard"], "normalized": INITS["Xavier"]}
    widths = [batch_x.shape[1], *[size.glorot_width] * GLOROT_DEPTH, 10]
    net = models.mlp(widths, "tanh", members=len(glorot_inits), device=ctx.device)
    models.init_members(net, list(glorot_inits.values()), "zeros", seeds=PROBE_SEED)
    reports = probe(net, (batch_x, batch_y), _stack_cross_entropy)
    assert isinstance(reports, list)
    glorot = {label: r for label, r in zip(glorot_inits, reports, strict=True)}
    glorot_profiles = {label: _Profile.of(r, GLOROT_DEPTH) for label, r in glorot.items()}

    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for row, (label, report) in enumerate(glorot.items()):
        for col, what in enumerate(("act_hist", "grad_hist")):
            ax = axes[row, col]
            for i, stats in enumerate(report.layers[:GLOROT_DEPTH]):
                hist = getattr(stats, what)
                if hist is None:
                    continue
                width = np.diff(hist.edges)
                density = hist.counts / max(hist.counts.sum(), 1) / width
                centres = (hist.edges[:-1] + hist.edges[1:]) / 2
                ax.plot(centres, density, color=OKABE_ITO[i], lw=1.5, label=f"layer {i + 1}")
            ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            init_name = "standard U[±1/√n]" if label == "standard" else "normalized (Xavier)"
            kind = "activation values tanh(h)" if what == "act_hist" else "gradients ∂loss/∂h"
            ax.set_title(f"{kind}, {init_name} init")
            ax.set_xlabel("tanh(h)" if what == "act_hist" else "∂loss/∂h")
            ax.set_ylabel("density (normalized count)")
        axes[row, 0].legend(fontsize=8, loc="lower center")
    # One x-range for both inits' gradients, so their widths compare at a glance.
    low = min(ax.get_xlim()[0] for ax in axes[:, 1])
    high = max(ax.get_xlim()[1] for ax in axes[:, 1])
    for ax in axes[:, 1]:
        ax.set_xlim(low, high)
    fig.suptitle(
        f"Glorot & Bengio's {GLOROT_DEPTH} × {size.glorot_width} tanh net at init: "
        "activations and back-propagated gradients per layer"
    )
    std_prof, norm_prof = glorot_profiles["standard"], glorot_profiles["normalized"]
    ctx.report.section(
        "Glorot & Bengio 2010: standard against normalized init",
        f"Their tanh net ({GLOROT_DEPTH} hidden layers of {size.glorot_width}), probed on "
        f"{size.probe_batch} MNIST digits with the cross-entropy loss. With the standard "
        "init U[±1/√n] (variance 1/(3n)) a layer can pass back at most 1/√3 of the gradient "
        "it receives (tanh′ ≤ 1), so Glorot & Bengio saw the gradients narrow toward the "
        "input (their Fig. 7, top); the normalized init (variance 2/(fan_in + fan_out), "
        "1/n between equal layers) removes that factor, and what shrinking is left comes "
        "from tanh′ < 1 where the units saturate (bottom). The table gives the measured "
        "widths.",
    )
    ctx.figure(
        fig,
        "glorot",
        "Histograms (as densities) of every hidden layer's tanh outputs (left) and "
        "back-propagated gradients (right), standard init (top) and normalized init "
        "(bottom): the style of Glorot & Bengio's Figs. 6 and 7.",
    )
    ctx.report.table(
        ["hidden layer", "gradient RMS, standard", "gradient RMS, normalized"],
        [
            [i + 1, f"{a:.3e}", f"{b:.3e}"]
            for i, (a, b) in enumerate(zip(std_prof.grad, norm_prof.grad, strict=True))
        ],
        caption="RMS of ∂loss/∂h per hidden layer (layer 1 next to the input).",
    )

    # ------------------------------------------------------------ 3. He et al.
    ctx.stage(f"training the {DEPTH}-layer ReLU net: Xavier against He")
    he_inits = [label for label in ("Xavier", "He") for _ in range(size.he_seeds)]
    widths = [mnist.x_train.shape[1], *[WIDTH] * DEPTH, 10]
    net = models.mlp(widths, "relu", members=len(he_inits), device=ctx.device)
    models.init_members(net, [INITS[label] for label in he_inits], "zeros", seeds=PROBE_SEED)
    result = ctx.train(
        net,
        mnist,
        TrainConfig(
            optimizer="momentum",
            momentum=0.9,
            lr=HE_LR,
            batch_size=HE_BATCH,
            steps=size.he_steps,
        ),
    )
    loss = result.loss.double()
    window = min(SMOOTH, max(1, loss.shape[0] // 5))
    start = loss[:window].mean(dim=0)
    end = loss[-window:].mean(dim=0)

    def mean_over(label: str, values: Tensor) -> float:
        picked = [float(values[m]) for m, lab in enumerate(he_inits) if lab == label]
        return sum(picked) / len(picked)

    def accuracy(label: str) -> float:
        picked = [
            float(m.test_accuracy)
            for m, lab in zip(result.members, he_inits, strict=True)
            if lab == label and m.test_accuracy is not None
        ]
        return sum(picked) / len(picked) if picked else math.nan

    he_start, he_end = mean_over("He", start), mean_over("He", end)
    xa_start, xa_end = mean_over("Xavier", start), mean_over("Xavier", end)

    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    steps = result.steps.numpy()
    kernel = np.ones(window) / window
    for m, label in enumerate(he_inits):
        curve = loss[:, m].numpy()
        smooth = np.convolve(curve, kernel, mode="valid")
        colour = INIT_COLOURS[label]
        ax.plot(steps, curve, color=colour, alpha=0.18, lw=0.8)
        first = he_inits.index(label) == m
        ax.plot(
            steps[window - 1 :],
            smooth,
            color=colour,
            lw=2,
            label=f"{label} init" + (f" ({size.he_seeds} seeds)" if size.he_seeds > 1 else "")
            if first
            else None,
        )
    ax.axhline(math.log(10), color="grey", ls=":", lw=1, label="ln 10 (chance)")
    ax.set_xlabel("SGD step")
    ax.set_ylabel("training loss (cross-entropy, nats)")
    ax.set_title(f"A {DEPTH}-layer ReLU net trained from Xavier and from He init")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ctx.report.section(
        f"He et al. 2015: a {DEPTH}-layer ReLU net",
        f"{DEPTH} hidden ReLU layers of {WIDTH} units on {mnist.n_train} MNIST digits, "
        f"trained for {size.he_steps} steps of SGD (momentum 0.9, learning rate {HE_LR:g}, "
        f"batch {HE_BATCH}); every run is a member of one stack. Xavier's variance 1/n "
        "halves the signal's and the gradient's second moment at every ReLU layer, so the "
        f"gradient reaching the first layers is ~2^-{DEPTH // 2} of the last's; He's 2/n "
        "keeps it.",
    )
    ctx.figure(
        fig,
        "he_training",
        f"Training loss per step (faint) and its {window}-step moving average (bold), per "
        "member of the stack.",
    )
    ctx.report.table(
        ["init", "loss at start", "loss at end", "start / end", "test accuracy"],
        [
            [
                label,
                mean_over(label, start),
                mean_over(label, end),
                mean_over(label, start) / mean_over(label, end),
                f"{accuracy(label):.1%}",
            ]
            for label in ("Xavier", "He")
        ],
        caption=f"Losses averaged over the first and last {window} steps (and over seeds); "
        f"test accuracy on {mnist.n_test} held-out digits.",
    )

    # ------------------------------------------------------------ findings
    relu = grid["relu"]
    sigmoid = grid["sigmoid"]
    tanh = grid["tanh"]
    best_sigmoid = max(INITS, key=lambda label: sigmoid[label].backward)
    sigmoid_vanishing = [label for label in INITS if sigmoid[label].backward < 1.0]
    sigmoid_verb = (
        "vanishes under every init tried"
        if len(sigmoid_vanishing) == len(INITS)
        else f"vanishes under {', '.join(sigmoid_vanishing) or 'none of the inits'}"
    )
    tanh_level = min(INITS, key=lambda label: abs(math.log(tanh[label].backward)))
    xavier_verb = "it stalled" if xa_end > 0.95 * xa_start else "its loss fell too"
    findings = [
        f"In the {DEPTH}-layer ReLU net at init, Xavier shrinks the back-propagated gradient "
        f"by {relu['Xavier'].backward:.3f}× per layer (theory 1/√2 = {math.sqrt(0.5):.3f}) "
        f"and He by {relu['He'].backward:.3f}× (theory 1): across the {DEPTH} layers "
        f"Xavier's gradient falls to {relu['Xavier'].grad_ratio:.1e} of its value at the top, "
        f"He's to {relu['He'].grad_ratio:.2f}.",
        f"Glorot & Bengio's {GLOROT_DEPTH}-layer tanh net: with the standard init U[±1/√n] "
        f"the first hidden layer receives {std_prof.grad_ratio:.2f}× the gradient RMS of the "
        f"last ({std_prof.backward:.2f}× per layer); with the normalized init, "
        f"{norm_prof.grad_ratio:.2f}× ({norm_prof.backward:.2f}× per layer).",
        f"Trained {size.he_steps} steps as one stack, the {DEPTH}-layer ReLU net with He init "
        f"cut its loss from {he_start:.2f} to {he_end:.2f} ({he_start / he_end:.1f}× lower, "
        f"test accuracy {accuracy('He'):.0%}); with Xavier {xavier_verb}, from {xa_start:.3f} to "
        f"{xa_end:.3f} (test accuracy {accuracy('Xavier'):.0%}).",
        f"Sigmoid's gradient {sigmoid_verb} (σ′ ≤ 1/4): at best "
        f"{sigmoid[best_sigmoid].backward:.2f}× per layer ({best_sigmoid}). Tanh's comes "
        f"nearest to level with {tanh_level}: the standard init "
        f"{_change(tanh['standard'].backward)}, Xavier {_change(tanh['Xavier'].backward)}, He "
        f"{_change(tanh['He'].backward)} per layer.",
    ]
    facts: dict[str, Any] = {
        "depth": DEPTH,
        "width": WIDTH,
        "factors": {
            activation: {
                label: {
                    "backward": prof.backward,
                    "backward_forecast": prof.backward_forecast,
                    "forward": prof.forward,
                    "forward_forecast": prof.forward_forecast,
                    "grad_ratio": prof.grad_ratio,
                }
                for label, prof in grid[activation].items()
            }
            for activation in ACTIVATIONS
        },
        "glorot": {
            label: {
                "grad_ratio": prof.grad_ratio,
                "backward": prof.backward,
                "grad_rms": list(prof.grad),
            }
            for label, prof in glorot_profiles.items()
        },
        "he_training": {
            "steps": size.he_steps,
            "members": he_inits,
            "loss_start": {"Xavier": xa_start, "He": he_start},
            "loss_end": {"Xavier": xa_end, "He": he_end},
            "test_accuracy": {"Xavier": accuracy("Xavier"), "He": accuracy("He")},
        },
    }
    return ctx.finish(findings, facts)
