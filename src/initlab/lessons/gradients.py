"""Lesson "gradients": vanishing and exploding gradients, by depth, activation and init.

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
   subset, Xavier against He init (two seeds each in the default size), trained together
   as one stack by SGD with momentum 0.9.

Sources. X. Glorot & Y. Bengio, "Understanding the difficulty of training deep
feedforward neural networks", AISTATS 2010, §4.2 (eqs. 12–16, Figs. 6–7); K. He, X.
Zhang, S. Ren & J. Sun, "Delving Deep into Rectifiers", ICCV 2015, §2.2 (eqs. 10, 14) and
Fig. 3 (a 30-layer net that Xavier init stalls and He init trains); S. Schoenholz et al.,
"Deep Information Propagation", ICLR 2017, §4 (the backward mean-field recursion).

Example:
    >>> from initlab.lessons import Env
    >>> tiny = Size(probe_batch=16, glorot_width=16, he_train=100, he_steps=2, he_seeds=1)
    >>> facts = compute(tiny, Env())  # no figure drawn; SIZES["quick"] is the lesson's
    >>> len(facts.profiles["relu"]["He"].grad), facts.he_training.members
    (30, ('Xavier', 'He'))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor
from torch.nn import functional as F

from initlab import data, models
from initlab.lessons._lesson import Env
from initlab.probe import Histogram, Probe, probe
from initlab.probe.verdicts import per_layer_factor
from initlab.report import OKABE_ITO
from initlab.report.figures import WIDTH as PAGE_WIDTH
from initlab.report.figures import subplots
from initlab.report.html import Report
from initlab.train import TrainConfig

__all__ = [
    "KNOBS",
    "NAME",
    "QUESTION",
    "SIZES",
    "TITLE",
    "Facts",
    "HeTraining",
    "Profile",
    "Size",
    "compute",
    "draw",
    "findings",
    "setup",
]

NAME = "gradients"
TITLE = "Vanishing and exploding gradients"
QUESTION = (
    "How much of the gradient does each layer of a deep net pass back, for each activation "
    "and init, and does that decide whether a 30-layer ReLU net trains?"
)

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
# label → init spec; biases are 0 throughout, as in Glorot & Bengio and He et al.
INITS: dict[str, str] = {
    "standard": "torch_default",  # U[±1/√fan_in]: Glorot & Bengio's "standard" heuristic
    "Xavier": "xavier_uniform",  # U[±√(6/(fan_in + fan_out))]: their "normalized" init
    "He": "he_normal",  # N(0, 2/fan_in)
}
INIT_COLOURS = {"standard": OKABE_ITO[2], "Xavier": OKABE_ITO[0], "He": OKABE_ITO[3]}
DEPTH = 30  # hidden layers of the probed nets and of He et al.'s trained net (by default)
WIDTH = 128  # their width
PROBE_SEED = 0  # the initial weights of the probed nets (member m gets seed + m)
GLOROT_DEPTH = 5  # Glorot & Bengio's nets: 5 hidden layers ...
GLOROT_WIDTH = 1000  # ... of 1000 units
HE_LR = 0.003  # SGD with momentum 0.9, as He et al. train; fast for He init yet stable
HE_BATCH = 64
SMOOTH = 20  # steps in the moving average of the loss curves and of the start/end loss


KNOBS = {
    "depth": f"hidden layers of the probed nets and of the trained net (default {DEPTH})",
    "activation": "the trained net's activation, also probed beside the four (default relu)",
}


@dataclass(frozen=True)
class Size:
    probe_batch: int  # digits in the probe's batch
    glorot_width: int  # units per hidden layer of Glorot's net (theirs: GLOROT_WIDTH)
    he_train: int  # MNIST training (and test) examples, for He's net and the probe's batch
    he_steps: int  # SGD steps of He's net
    he_seeds: int  # seeds per init of He's net
    depth: int = DEPTH  # hidden layers of the probed nets and of the trained net
    activation: str = "relu"  # the trained net's (He et al.'s: ReLU)

    def __post_init__(self) -> None:
        # A knob: the per-layer factors fit a slope over layers 2 .. depth.
        if not isinstance(self.depth, int) or isinstance(self.depth, bool) or self.depth < 3:
            raise ValueError(
                "The 'depth' option of lesson gradients must be an integer ≥ 3 (hidden "
                f"layers). Got {self.depth!r} instead."
            )
        if self.activation not in models.ACTIVATIONS:
            raise ValueError(
                "The 'activation' option of lesson gradients must be one of "
                f"{', '.join(sorted(models.ACTIVATIONS))}. Got {self.activation!r} instead."
            )


SIZES = {
    "quick": Size(probe_batch=128, glorot_width=256, he_train=1000, he_steps=100, he_seeds=1),
    "default": Size(
        probe_batch=256, glorot_width=GLOROT_WIDTH, he_train=3000, he_steps=400, he_seeds=2
    ),
}


@dataclass(frozen=True)
class Profile:
    """One probed net: per hidden layer (layer 1 next to the input), the measured and
    forecast RMS of h and of ∂loss/∂h, and the histograms where the probe drew them."""

    preact: tuple[float, ...]
    preact_forecast: tuple[float, ...]  # NaN where the forecast does not apply
    grad: tuple[float, ...]
    grad_forecast: tuple[float, ...]
    act_hist: tuple[Histogram | None, ...]  # of φ(h); None without histograms
    grad_hist: tuple[Histogram | None, ...]  # of ∂loss/∂h

    @classmethod
    def of(cls, report: Probe, hidden: int) -> Profile:
        layers = report.layers[:hidden]
        return cls(
            preact=tuple(s.preact_rms for s in layers),
            preact_forecast=tuple(_number(s.forecast_preact_rms) for s in layers),
            grad=tuple(s.grad_rms for s in layers),
            grad_forecast=tuple(_number(s.forecast_grad_rms) for s in layers),
            act_hist=tuple(s.act_hist for s in layers),
            grad_hist=tuple(s.grad_hist for s in layers),
        )

    # Backward factors run from the top hidden layer down; forward ones skip layer 1,
    # whose weights meet the data (784 inputs) rather than a layer of the same width.
    @property
    def backward(self) -> float:
        """The gradient's per-layer factor going backward (1 = level)."""
        return per_layer_factor(self.grad[::-1])

    @property
    def backward_forecast(self) -> float:
        return per_layer_factor(self.grad_forecast[::-1])

    @property
    def forward(self) -> float:
        """The signal's per-layer factor going forward, from layer 2 on."""
        return per_layer_factor(self.preact[1:])

    @property
    def forward_forecast(self) -> float:
        return per_layer_factor(self.preact_forecast[1:])

    @property
    def grad_ratio(self) -> float:
        """RMS of ∂loss/∂h at the first hidden layer over that at the last."""
        return self.grad[0] / self.grad[-1] if self.grad[-1] > 0 else math.nan


@dataclass(frozen=True)
class HeTraining:
    """He et al.'s deep net (30 ReLU layers by default), Xavier against He, trained as
    one stack."""

    steps: int  # SGD steps
    depth: int  # hidden layers
    activation: str  # their activation
    seeds: int  # seeds per init
    members: tuple[str, ...]  # each member's init: "Xavier" or "He"
    n_train: int  # MNIST training examples
    n_test: int  # held-out examples of the test accuracy
    window: int  # steps of the moving average, and of the start and end losses
    step: Tensor  # (S,) the recorded steps
    loss: Tensor  # (S, M) float64, the training loss at those steps
    loss_start: dict[str, float]  # per init: the mean over the first window and the seeds
    loss_end: dict[str, float]  # per init: the mean over the last window and the seeds
    test_accuracy: dict[str, float]  # per init, the mean over the seeds


@dataclass(frozen=True)
class Facts:
    probe_batch: int  # digits in the probe's batch
    glorot_width: int  # units per hidden layer of Glorot's nets
    profiles: dict[str, dict[str, Profile]]  # activation → init label → the probed net
    glorot: dict[str, Profile]  # "standard" and "normalized" → Glorot's probed tanh net
    he_training: HeTraining
    depth: int = DEPTH  # hidden layers of the probed nets
    activations: tuple[str, ...] = ACTIVATIONS  # the probed nets' activations, in order


def setup(size: Size) -> str:
    return (
        f"Depth × activation × init ({size.depth} hidden layers of {WIDTH}), probed at init "
        "on MNIST beside the mean-field forecast; Glorot & Bengio 2010's tanh nets; He et "
        f"al. 2015's {size.depth}-layer {_name(size.activation)} net, trained as one stack. "
        "Options: --depth (hidden layers) and --activation (the trained net's)."
    )


def _name(activation: str) -> str:
    """'ReLU', 'leaky ReLU', 'tanh': an activation as the text names it."""
    return activation.replace("_", " ").replace("relu", "ReLU")


def _activations(size: Size) -> tuple[str, ...]:
    """The probed activations: the four, and the trained net's where it is another."""
    return ACTIVATIONS if size.activation in ACTIVATIONS else (*ACTIVATIONS, size.activation)


def compute(size: Size, env: Env) -> Facts:
    """Probe depth × activation × init and Glorot's nets; train He's net."""
    env.stage("loading MNIST")
    mnist, _ = data.scale(data.load("mnist", limit=size.he_train), per_feature=False)
    batch_x = mnist.x_train[: size.probe_batch].to(env.device)
    batch_y = mnist.y_train[: size.probe_batch].to(env.device)
    activations = _activations(size)
    profiles = {a: _probe_inits(env, a, batch_x, size.depth) for a in activations}
    env.stage("probing Glorot & Bengio's tanh nets")
    glorot_inits = {"standard": INITS["standard"], "normalized": INITS["Xavier"]}
    widths = [batch_x.shape[1], *[size.glorot_width] * GLOROT_DEPTH, 10]
    net = models.mlp(widths, "tanh", members=len(glorot_inits), device=env.device)
    models.init_members(net, list(glorot_inits.values()), "zeros", seeds=PROBE_SEED)
    reports = probe(net, (batch_x, batch_y), _stack_cross_entropy)
    glorot = {
        label: Profile.of(report, GLOROT_DEPTH)
        for label, report in zip(glorot_inits, reports, strict=True)
    }
    probed = _Probed(size.probe_batch, size.glorot_width, profiles, glorot, size.depth, activations)
    env.part_done(lambda report: _draw_probed(probed, report))  # kept if He's net is cut
    return Facts(
        probe_batch=size.probe_batch,
        glorot_width=size.glorot_width,
        profiles=profiles,
        glorot=glorot,
        he_training=_train_he(size, env, mnist),
        depth=size.depth,
        activations=activations,
    )


@dataclass(frozen=True)
class _Probed:
    """What the probing parts found: all the first three figures read (Facts has it too)."""

    probe_batch: int
    glorot_width: int
    profiles: dict[str, dict[str, Profile]]
    glorot: dict[str, Profile]
    depth: int
    activations: tuple[str, ...]


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _stack_cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    """Sum over the members of each member's mean cross-entropy (a stack's probe loss)."""
    members, batch, classes = output.shape
    return (
        F.cross_entropy(output.reshape(-1, classes), target.repeat(members), reduction="sum")
        / batch
    )


def _probe_inits(env: Env, activation: str, x: Tensor, depth: int) -> dict[str, Profile]:
    """One activation's stack of inits, probed at init: init label → profile."""
    env.stage(f"probing the {depth}-layer {activation} net at init, {len(INITS)} inits")
    widths = [x.shape[1], *[WIDTH] * depth, 10]
    net = models.mlp(widths, activation, members=len(INITS), device=env.device)
    models.init_members(net, list(INITS.values()), "zeros", seeds=PROBE_SEED)
    reports = probe(net, x, histograms=False)
    return {label: Profile.of(report, depth) for label, report in zip(INITS, reports, strict=True)}


def _train_he(size: Size, env: Env, mnist: data.Dataset) -> HeTraining:
    """He et al.'s net from Xavier and from He init, ``he_seeds`` members each."""
    env.stage(f"training the {size.depth}-layer {_name(size.activation)} net: Xavier against He")
    members = tuple(label for label in ("Xavier", "He") for _ in range(size.he_seeds))
    widths = [mnist.x_train.shape[1], *[WIDTH] * size.depth, 10]
    net = models.mlp(widths, size.activation, members=len(members), device=env.device)
    models.init_members(net, [INITS[label] for label in members], "zeros", seeds=PROBE_SEED)
    config = TrainConfig(
        optimizer="momentum", momentum=0.9, lr=HE_LR, batch_size=HE_BATCH, steps=size.he_steps
    )
    result = env.train(net, mnist, config)
    loss = result.loss.double().cpu()
    window = min(SMOOTH, max(1, loss.shape[0] // 5))
    start = [float(v) for v in loss[:window].mean(dim=0)]
    end = [float(v) for v in loss[-window:].mean(dim=0)]
    accuracy = [m.test_accuracy for m in result.members]

    def mean_over(values: Sequence[float | None]) -> dict[str, float]:
        """Per init, the mean over its seeds (NaN where none has a value)."""
        means = {}
        for label in ("Xavier", "He"):
            picked = [
                float(v)
                for v, lab in zip(values, members, strict=True)
                if lab == label and v is not None
            ]
            means[label] = sum(picked) / len(picked) if picked else math.nan
        return means

    return HeTraining(
        steps=size.he_steps,
        depth=size.depth,
        activation=size.activation,
        seeds=size.he_seeds,
        members=members,
        n_train=mnist.n_train,
        n_test=mnist.n_test,
        window=window,
        step=result.steps.cpu(),
        loss=loss,
        loss_start=mean_over(start),
        loss_end=mean_over(end),
        test_accuracy=mean_over(accuracy),
    )


def draw(facts: Facts, report: Report) -> None:
    _draw_probed(facts, report)
    _draw_he(facts.he_training, report)


def _draw_probed(facts: Facts | _Probed, report: Report) -> None:
    _draw_profiles(facts, report)
    _draw_factors(facts, report)
    _draw_glorot(facts, report)


def _draw_profiles(facts: Facts | _Probed, report: Report) -> None:
    from matplotlib.lines import Line2D

    layers = np.arange(1, facts.depth + 1)
    columns = facts.activations
    fig, axes = subplots(2, len(columns), figsize=(8.7, 6.2), sharex=True)
    for col, activation in enumerate(columns):
        for label, prof in facts.profiles[activation].items():
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
    handles.append(Line2D([], [], color="grey", ls="--"))
    labels.append("mean-field forecast")
    axes[1, 0].legend(handles, labels, fontsize=8, loc="lower right")
    fig.suptitle(
        f"Signal (top) and gradient (bottom), {facts.depth} layers of {WIDTH} at init:\n"
        "measured by the probe (solid) and forecast (dashed)",
        fontsize=11,
    )
    report.section(
        "Depth × activation × init, at initialization",
        f"Each activation is one stack of {len(INITS)} members, {facts.depth} hidden layers of "
        f"{WIDTH} units on a batch of {facts.probe_batch} standardized MNIST digits. The probe "
        "measures the RMS of every hidden layer's pre-activation h and of the gradient "
        "∂loss/∂h (for an N(0, 1) output gradient, the theory's assumption); the dashed "
        "lines are the mean-field forecast for the same weights. Read the gradient panels "
        "from right to left: that is the way the gradient travels.",
    )
    report.figure(
        fig,
        "profiles",
        "Per-layer RMS of h and of ∂loss/∂h at init, per activation (columns) and init "
        "(colours). A straight line on this log scale is a constant per-layer factor.",
    )


def _draw_factors(facts: Facts | _Probed, report: Report) -> None:
    from matplotlib.colors import LogNorm

    fig, ax = subplots(figsize=(7.5, 4.2))
    grid = facts.profiles
    rows = facts.activations
    matrix = np.array([[grid[a][i].backward for i in INITS] for a in rows])
    image = ax.imshow(matrix, cmap="PuOr", norm=LogNorm(vmin=0.1, vmax=10.0), aspect="auto")
    for r, activation in enumerate(rows):
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
    ax.set_yticks(range(len(rows)), [a.replace("_", " ") for a in rows])
    ax.set_xlabel("init")
    ax.set_ylabel("activation")
    fig.colorbar(image, ax=ax, label="per-layer gradient factor (1 = level)")
    ax.set_title("How much the gradient keeps per layer, going backward")
    report.figure(
        fig,
        "factors",
        "The back-propagated gradient's per-layer factor, measured over the hidden layers "
        "(the mean-field forecast in brackets). Orange: it shrinks toward the input "
        "(vanishes); purple: it grows (explodes); white: it stays level.",
    )
    head = ["activation", "init", "gradient factor", "forecast", "signal factor", "forecast"]
    report.table(
        [*head, f"gradient layer 1 / layer {facts.depth}"],
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
            for activation in rows
            for label, prof in grid[activation].items()
        ],
        caption="Per-layer factors of the RMS of ∂loss/∂h (backward) and of h (forward, "
        "from layer 2 on), measured and forecast.",
    )


def _draw_glorot(facts: Facts | _Probed, report: Report) -> None:
    report.section(
        "Glorot & Bengio 2010: standard against normalized init",
        f"Their tanh net ({GLOROT_DEPTH} hidden layers of {facts.glorot_width}), probed on "
        f"{facts.probe_batch} MNIST digits with the cross-entropy loss. With the standard "
        "init U[±1/√n] (variance 1/(3n)) a layer can pass back at most 1/√3 of the gradient "
        "it receives (tanh′ ≤ 1), so Glorot & Bengio saw the gradients narrow toward the "
        "input (their Fig. 7, top); the normalized init (variance 2/(fan_in + fan_out), "
        "1/n between equal layers) removes that factor, and what shrinking is left comes "
        "from tanh′ < 1 where the units saturate (bottom). The table gives the measured "
        "widths.",
    )
    report.figure(
        _glorot_figure(facts),
        "glorot",
        "Histograms (as densities) of every hidden layer's tanh outputs (left) and "
        "back-propagated gradients (right), standard init (top) and normalized init "
        "(bottom): the style of Glorot & Bengio's Figs. 6 and 7.",
    )
    standard, normalized = facts.glorot["standard"].grad, facts.glorot["normalized"].grad
    report.table(
        ["hidden layer", "gradient RMS, standard", "gradient RMS, normalized"],
        [
            [i + 1, f"{a:.3e}", f"{b:.3e}"]
            for i, (a, b) in enumerate(zip(standard, normalized, strict=True))
        ],
        caption="RMS of ∂loss/∂h per hidden layer (layer 1 next to the input).",
    )


def _glorot_figure(facts: Facts | _Probed) -> Any:
    """Glorot & Bengio's Figs. 6 and 7: per-layer histograms of tanh(h) and ∂loss/∂h."""
    fig, axes = subplots(2, 2, figsize=(PAGE_WIDTH, 7.6))
    for row, (label, prof) in enumerate(facts.glorot.items()):
        for col, hists in enumerate((prof.act_hist, prof.grad_hist)):
            ax = axes[row, col]
            for i, hist in enumerate(hists):
                if hist is None:
                    continue
                width = np.diff(hist.edges)
                density = hist.counts / max(hist.counts.sum(), 1) / width
                centres = (hist.edges[:-1] + hist.edges[1:]) / 2
                ax.plot(centres, density, color=OKABE_ITO[i], lw=1.5, label=f"layer {i + 1}")
            ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            init_name = "standard U[±1/√n]" if label == "standard" else "normalized (Xavier)"
            kind = "activations tanh(h)" if col == 0 else "gradients ∂loss/∂h"
            ax.set_title(f"{kind},\n{init_name} init", fontsize=9)
            ax.set_xlabel("tanh(h)" if col == 0 else "∂loss/∂h")
            if col == 0:
                ax.set_ylabel("density (normalized count)")
        axes[row, 0].legend(fontsize=8, loc="lower center")
    # One x-range for both inits' gradients, so their widths compare at a glance.
    low = min(ax.get_xlim()[0] for ax in axes[:, 1])
    high = max(ax.get_xlim()[1] for ax in axes[:, 1])
    for ax in axes[:, 1]:
        ax.set_xlim(low, high)
    fig.suptitle(
        f"Glorot & Bengio's {GLOROT_DEPTH} × {facts.glorot_width} tanh net at init:\n"
        "activations and back-propagated gradients per layer",
        fontsize=10,
    )
    return fig


def _draw_he(he: HeTraining, report: Report) -> None:
    report.section(
        f"He et al. 2015: a {he.depth}-layer {_name(he.activation)} net",
        f"{he.depth} hidden {_name(he.activation)} layers of {WIDTH} units on {he.n_train} "
        f"MNIST digits, trained for {he.steps} steps of SGD (momentum 0.9, learning rate "
        f"{HE_LR:g}, batch {HE_BATCH}); every run is a member of one stack. "
        + (
            "Xavier's variance 1/n halves the signal's and the gradient's second moment at "
            f"every ReLU layer, so the gradient reaching the first layers is "
            f"~2^-{he.depth // 2} of the last's; He's 2/n keeps it."
            if he.activation == "relu"
            else "The init that keeps the gradient level is the one with n·v·E[φ′²] = 1 "
            "for this activation: the factors above say which of the two comes nearer."
        ),
    )
    report.figure(
        _he_figure(he),
        "he_training",
        f"Training loss per step (faint) and its {he.window}-step moving average (bold), per "
        "member of the stack.",
    )
    report.table(
        ["init", "loss at start", "loss at end", "start / end", "test accuracy"],
        [
            [
                label,
                he.loss_start[label],
                he.loss_end[label],
                he.loss_start[label] / he.loss_end[label],
                f"{he.test_accuracy[label]:.1%}",
            ]
            for label in ("Xavier", "He")
        ],
        caption=f"Losses averaged over the first and last {he.window} steps (and over seeds); "
        f"test accuracy on {he.n_test} held-out digits.",
    )


def _he_figure(he: HeTraining) -> Any:
    """Each member's loss per step, faint, and its moving average, bold."""
    fig, ax = subplots(figsize=(8.5, 4.6))
    steps = he.step.numpy()
    kernel = np.ones(he.window) / he.window
    for m, label in enumerate(he.members):
        curve = he.loss[:, m].numpy()
        smooth = np.convolve(curve, kernel, mode="valid")
        colour = INIT_COLOURS[label]
        ax.plot(steps, curve, color=colour, alpha=0.18, lw=0.8)
        first = he.members.index(label) == m
        seeds = f" ({he.seeds} seeds)" if he.seeds > 1 else ""
        legend = f"{label} init{seeds}" if first else None
        ax.plot(steps[he.window - 1 :], smooth, color=colour, lw=2, label=legend)
    ax.axhline(math.log(10), color="grey", ls=":", lw=1, label="ln 10 (chance)")
    ax.set_xlabel("SGD step")
    ax.set_ylabel("training loss (cross-entropy, nats)")
    ax.set_title(
        f"A {he.depth}-layer {_name(he.activation)} net trained from Xavier and from He init"
    )
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


def _change(factor: float) -> str:
    """'shrinks it 0.58×', 'grows it 1.05×' or 'keeps it level (1.00×)', per layer."""
    if round(factor, 2) == 1.0:
        return f"keeps it level ({factor:.2f}×)"
    return f"{'grows' if factor > 1 else 'shrinks'} it {factor:.2f}×"


def findings(facts: Facts) -> list[str]:
    relu, sigmoid, tanh = (facts.profiles[a] for a in ("relu", "sigmoid", "tanh"))
    std_prof, norm_prof = facts.glorot["standard"], facts.glorot["normalized"]
    he = facts.he_training
    start, end, accuracy = he.loss_start, he.loss_end, he.test_accuracy
    best_sigmoid = max(INITS, key=lambda label: sigmoid[label].backward)
    sigmoid_vanishing = [label for label in INITS if sigmoid[label].backward < 1.0]
    sigmoid_verb = (
        "vanishes under every init tried"
        if len(sigmoid_vanishing) == len(INITS)
        else f"vanishes under {', '.join(sigmoid_vanishing) or 'none of the inits'}"
    )
    tanh_level = min(INITS, key=lambda label: abs(math.log(tanh[label].backward)))
    xavier_verb = "it stalled" if end["Xavier"] > 0.95 * start["Xavier"] else "its loss fell too"
    return [
        f"In the {facts.depth}-layer ReLU net at init, Xavier shrinks the back-propagated gradient "
        f"by {relu['Xavier'].backward:.3f}× per layer (theory 1/√2 = {math.sqrt(0.5):.3f}) "
        f"and He by {relu['He'].backward:.3f}× (theory 1): across the {facts.depth} layers "
        f"Xavier's gradient falls to {relu['Xavier'].grad_ratio:.1e} of its value at the top, "
        f"He's to {relu['He'].grad_ratio:.2f}.",
        f"Glorot & Bengio's {GLOROT_DEPTH}-layer tanh net: with the standard init U[±1/√n] "
        f"the first hidden layer receives {std_prof.grad_ratio:.2f}× the gradient RMS of the "
        f"last ({std_prof.backward:.2f}× per layer); with the normalized init, "
        f"{norm_prof.grad_ratio:.2f}× ({norm_prof.backward:.2f}× per layer).",
        f"Trained {he.steps} steps as one stack, the {he.depth}-layer "
        f"{_name(he.activation)} net with He init "
        f"cut its loss from {start['He']:.2f} to {end['He']:.2f} "
        f"({start['He'] / end['He']:.1f}× lower, test accuracy {accuracy['He']:.0%}); with "
        f"Xavier {xavier_verb}, from {start['Xavier']:.3f} to {end['Xavier']:.3f} (test "
        f"accuracy {accuracy['Xavier']:.0%}).",
        f"Sigmoid's gradient {sigmoid_verb} (σ′ ≤ 1/4): at best "
        f"{sigmoid[best_sigmoid].backward:.2f}× per layer ({best_sigmoid}). Tanh's comes "
        f"nearest to level with {tanh_level}: the standard init "
        f"{_change(tanh['standard'].backward)}, Xavier {_change(tanh['Xavier'].backward)}, He "
        f"{_change(tanh['He'].backward)} per layer.",
    ]
