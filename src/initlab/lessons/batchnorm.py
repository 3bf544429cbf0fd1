"""Lesson 4, batch norm: Ioffe & Szegedy's MNIST experiment, an init × lr grid, two modes.

What it teaches. Batch normalization standardizes each unit's input over the mini-batch,
(a − mean)/√(var + ε), then scales it by γ and shifts it by β. Three things follow, each
shown by a run of this lesson:

1. A net with BN learns faster: at every step its test accuracy is higher than the same
   net's without BN, trained from the same weights at the same learning rate.
2. The distribution of each unit's input stays put. Ioffe & Szegedy (§4.1, Fig. 1b–c)
   plot the 15th, 50th and 85th percentiles of the input to one sigmoid of the last hidden
   layer over training: without BN they wander (the "internal covariate shift"), with BN
   they hold still. Here the input to unit 0 of the last hidden layer is measured on a
   fixed batch of training images at regular steps (in training mode, so the BN net
   normalizes with that batch's statistics; its running averages are left untouched).
3. Training becomes forgiving of the init scale and of the learning rate. A grid of
   weight scales (std = g/√fan_in, g from 0.1 to 10) × learning rates is trained with and
   without BN, one stack per setting (every cell is a member), and the final training
   loss of every cell is drawn as a heatmap.

Finally, the two modes of BN. In training a unit is normalized with the statistics of the
batch it came in, so an example's output depends on its batch companions; running
averages of the mean and the (unbiased) variance are kept as it trains. In inference
(``eval()``) the running averages are used instead, so the output of an example is
deterministic. The lesson shows the outputs of one batch in both modes at initialization
(running mean 0, variance 1: far apart) and after training (close), the spread of one
example's training-mode output over different batches, and checks the inference output
against the formula with the running averages written out by hand.

The setup (§4.1 scaled to two CPU cores). MNIST, pixels in [0, 1]; a 784–100–100–100–10
MLP with sigmoid hidden units, BN before each nonlinearity (``batch_norm="before"``, which
drops the now redundant Linear bias: β replaces it), weights N(0, 1/fan_in) ("small
random Gaussian values"; the paper gives no scale), biases 0, plain SGD at learning rate
0.5 (the paper gives none either), mini-batches of 60, cross-entropy, a few thousand steps
instead of the paper's 50,000, two seeds. The BN net and the plain net cannot share a
stack (a stack has one architecture), so each is its own stack of seeds; the nets of the
same seed start from the same weights and see the same batches.

Sources. S. Ioffe and C. Szegedy, "Batch Normalization: Accelerating Deep Network
Training by Reducing Internal Covariate Shift", ICML 2015, §3.1 (training and inference
modes, Alg. 1–2) and §4.1 with Fig. 1 (the MNIST experiment); Y. LeCun, L. Bottou, G. Orr
and K.-R. Müller, "Efficient BackProp", 1998 (the 1/fan_in weight variance).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from initlab import data, models
from initlab.lessons._lesson import Context, Lesson, LessonProgress, pyplot
from initlab.norm import StackedBatchNorm
from initlab.report import OKABE_ITO
from initlab.train import Progress, TrainConfig

__all__ = ["run"]

NAME = "batchnorm"
TITLE = "Batch normalization: faster, steadier, forgiving"

WIDTHS = [784, 100, 100, 100, 10]  # Ioffe & Szegedy §4.1: 3 hidden layers of 100
ACTIVATION = "sigmoid"
BATCH = 60  # §4.1: 60 examples per mini-batch
LR = 0.5  # plain SGD, the same for both nets
PERCENTILES = (0.15, 0.50, 0.85)  # §4.1, Fig. 1b–c
UNIT = 0  # the unit of the last hidden layer whose input is followed
WORSE_THAN_CHANCE = 3.0  # grid colours stop here (chance is ln 10 ≈ 2.30)
TRAINED_LOSS = 1.0  # a grid cell "trained" below this loss (chance is ln 10 ≈ 2.30)
TARGET_ACCURACY = 0.90  # steps to reach this test accuracy are reported
#: the two nets compared throughout: label → where batch norm goes
SETTINGS: tuple[tuple[str, models.BatchNormPlacement], ...] = (
    ("without BN", None),
    ("with BN", "before"),
)


def _lecun_scaled(gain: float) -> str:
    """Weights N(0, gain²/fan_in): gain 1 is LeCun's normal init."""
    return f"variance_scaling(scale={gain * gain!r}, mode='fan_in', distribution='normal')"


@dataclass(frozen=True)
class _Plan:
    """The sizes of a run: the default lesson, or the quick one for the tests."""

    limit: int | None  # MNIST examples loaded per split (None: all 60,000 + 10,000)
    steps: int  # §4.1 steps
    seeds: int  # members of each §4.1 stack
    probe_every: int  # steps between accuracy and percentile measurements
    probe_examples: int  # the fixed batch of training images for the percentiles
    test_examples: int  # test images for the accuracy curve
    gains: tuple[float, ...]  # grid: weight std = gain/√fan_in
    lrs: tuple[float, ...]  # grid: learning rates
    grid_steps: int  # steps of every grid run
    grid_train: int  # training images of the grid runs
    grid_test: int  # and test images (their final evaluation)
    batches: int  # random batches one example is put in, to show batch dependence


_DEFAULT = _Plan(
    limit=None,
    steps=4000,
    seeds=2,
    probe_every=200,
    probe_examples=1000,
    test_examples=10000,
    gains=(0.1, 0.3, 1.0, 3.0, 10.0),
    lrs=(0.03, 0.1, 0.3, 1.0, 3.0),
    grid_steps=400,
    grid_train=10000,
    grid_test=2000,
    batches=40,
)
_QUICK = _Plan(
    limit=6000,
    steps=300,
    seeds=1,
    probe_every=50,
    probe_examples=500,
    test_examples=2000,
    gains=(0.1, 1.0, 10.0),
    lrs=(0.03, 0.3, 3.0),
    grid_steps=100,
    grid_train=3000,
    grid_test=500,
    batches=20,
)


# --------------------------------------------------------------------------- §4.1


@dataclass
class _Trace:
    """What one §4.1 stack measured at each probe (step 0 included)."""

    steps: list[int] = dataclasses.field(default_factory=list)
    accuracy: list[Tensor] = dataclasses.field(default_factory=list)  # (M,) test accuracy
    quantiles: list[Tensor] = dataclasses.field(default_factory=list)  # (3, M, units)


def _last_sigmoid(net: models.Stack) -> nn.Module:
    return [layer for layer in net.layers if isinstance(layer, nn.Sigmoid)][-1]


def _sigmoid_input(net: models.Stack, x: Tensor) -> Tensor:
    """The input to every unit of the last hidden layer's sigmoid, (M, units, B), in
    training mode (BN uses this batch's statistics) without touching running averages."""
    seen: list[Tensor] = []
    hook = _last_sigmoid(net).register_forward_pre_hook(
        lambda _module, inputs: seen.append(inputs[0].detach())
    )
    try:
        with torch.no_grad():
            net.logits(x, torch.zeros(net.members, dtype=torch.bool, device=x.device))
    finally:
        hook.remove()
    return seen[0]


def _accuracy(net: models.Stack, x: Tensor, y: Tensor) -> Tensor:
    """Test accuracy of every member, (M,), in inference mode (running averages)."""
    was_training = net.training
    net.eval()
    with torch.no_grad():
        correct = (net.logits(x).argmax(dim=1) == y).double().mean(dim=1)
    net.train(was_training)
    return correct.cpu()


def _measure(
    trace: _Trace, step: int, net: models.Stack, probe_x: Tensor, x: Tensor, y: Tensor
) -> None:
    q = torch.tensor(PERCENTILES, dtype=probe_x.dtype, device=probe_x.device)
    trace.steps.append(step)
    trace.accuracy.append(_accuracy(net, x, y))
    trace.quantiles.append(torch.quantile(_sigmoid_input(net, probe_x), q, dim=2).cpu())


def _drift(quantiles: Tensor) -> Tensor:
    """How far the percentiles moved over training: for each percentile its range over
    the probes (max − min), averaged over the three percentiles. (T, 3, …) → (…)."""
    return (quantiles.amax(dim=0) - quantiles.amin(dim=0)).mean(dim=0)


@dataclass
class _Modes:
    """Training-mode and inference-mode outputs of one batch, and of one of its examples
    put in many batches, for member 0 of the BN stack."""

    train: Tensor  # (B, 10) logits of the batch in training mode (batch statistics)
    eval: Tensor  # (B, 10) in inference mode (running averages)
    one_train: Tensor  # (K,) true-class probability of the example in K different batches
    one_eval: float  # and in inference mode

    @property
    def gap(self) -> float:
        """Mean |training − inference| logit, relative to the mean |training| logit."""
        return float((self.train - self.eval).abs().mean() / self.train.abs().mean())


def _modes(
    net: models.Stack, x: Tensor, y: Tensor, pool: Tensor, batches: int, example: int
) -> _Modes:
    no_update = torch.zeros(net.members, dtype=torch.bool, device=x.device)
    generator = torch.Generator().manual_seed(1)  # which companions: fixed, any would do
    was_training = net.training
    with torch.no_grad():
        net.train()
        train_out = net.logits(x, no_update)[0].T
        net.eval()
        eval_out = net.logits(x)[0].T
        one_eval = float(eval_out[example].softmax(dim=0)[y[example]])
        net.train()
        probs = []
        for _ in range(batches):
            idx = torch.randperm(len(pool), generator=generator)[: len(x) - 1].to(x.device)
            batch = torch.cat([x[example : example + 1], pool[idx]])
            out = net.logits(batch, no_update)[0][:, 0]
            probs.append(out.softmax(dim=0)[y[example]])
    net.train(was_training)
    return _Modes(train_out.cpu(), eval_out.cpu(), torch.stack(probs).cpu(), one_eval)


def _by_hand(plain: nn.Sequential, x: Tensor) -> Tensor:
    """Member 0 in inference mode, with each batch norm written out:
    (a − running_mean)/√(running_var + ε)·γ + β."""
    h = x
    with torch.no_grad():
        for layer in plain:
            if isinstance(layer, nn.BatchNorm1d):
                assert layer.running_mean is not None and layer.running_var is not None
                h = (h - layer.running_mean) / torch.sqrt(layer.running_var + layer.eps)
                h = h * layer.weight + layer.bias
            else:
                h = layer(h)
    return h


# --------------------------------------------------------------------------- the grid


def _grid(
    ctx: Context, ds: data.Dataset, plan: _Plan, batch_norm: models.BatchNormPlacement
) -> Tensor:
    """One stack: every (gain, lr) cell a member, all from the same draw of weights
    (scaled by the gain). Returns the final training loss, (gains, lrs), NaN where a
    run diverged."""
    cells = [(g, lr) for g in plan.gains for lr in plan.lrs]
    net = models.mlp(WIDTHS, ACTIVATION, batch_norm, members=len(cells), device=ctx.device)
    models.init_members(net, [_lecun_scaled(g) for g, _ in cells], seeds=[0] * len(cells))
    config = TrainConfig(
        lr=[lr for _, lr in cells],
        batch_size=BATCH,
        steps=plan.grid_steps,
        check_every=max(1, plan.grid_steps // 10),
    )
    result = ctx.train(net, ds, config)
    tail = max(1, len(result.loss) // 10)  # the mean of the last tenth of the batch losses
    final = result.loss[-tail:].double().mean(dim=0)
    diverged = torch.tensor([m.status == "diverged" for m in result.members])
    final = torch.where(diverged | ~torch.isfinite(final), math.nan, final)
    return final.reshape(len(plan.gains), len(plan.lrs))


# --------------------------------------------------------------------------- figures


def _draw_accuracy(ctx: Context, traces: dict[str, _Trace], seeds: int) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 4.4), dpi=120)
    for (label, trace), colour in zip(traces.items(), (OKABE_ITO[3], OKABE_ITO[0]), strict=True):
        acc = torch.stack(trace.accuracy)  # (T, M)
        steps = trace.steps
        for m in range(acc.shape[1]):
            ax.plot(steps, acc[:, m] * 100, color=colour, linewidth=0.8, alpha=0.45)
        ax.plot(steps, acc.mean(dim=1) * 100, color=colour, linewidth=2.2, label=label)
    ax.axhline(TARGET_ACCURACY * 100, color="#777777", linestyle=":", linewidth=1.0)
    ax.set_ylim(0, 100)
    ax.set_xlabel("training step (mini-batches of 60)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("MNIST, 3 × 100 sigmoid units: test accuracy with and without BN")
    title = f"mean of {seeds} seeds; thin: each" if seeds > 1 else "one seed"
    ax.legend(title=title, loc="lower right")
    ax.grid(alpha=0.3)
    ctx.figure(
        fig,
        "accuracy",
        "Test accuracy against training steps (Ioffe & Szegedy Fig. 1a). Same initial "
        "weights, same batches, same learning rate; the only difference is batch norm "
        "before each sigmoid. Dotted: the 90 % mark.",
    )


def _draw_percentiles(ctx: Context, traces: dict[str, _Trace]) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120, sharey=True)
    styles = (("15th", ":"), ("50th", "-"), ("85th", "--"))
    for ax, (label, trace), colour in zip(
        axes, traces.items(), (OKABE_ITO[3], OKABE_ITO[0]), strict=True
    ):
        q = torch.stack(trace.quantiles)[:, :, 0, UNIT]  # (T, 3), member 0
        ax.fill_between(trace.steps, q[:, 0], q[:, 2], color=colour, alpha=0.15)
        for i, (name, style) in enumerate(styles):
            ax.plot(trace.steps, q[:, i], color=colour, linestyle=style, linewidth=1.8, label=name)
        ax.set_title(label)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(title="percentile", loc="upper left")
    axes[0].set_ylabel(f"input to sigmoid unit {UNIT} of hidden layer 3")
    fig.suptitle("The input to one sigmoid of the last hidden layer over training")
    ctx.figure(
        fig,
        "percentiles",
        "The 15th, 50th and 85th percentiles of the input to one sigmoid of the last hidden "
        "layer, over a fixed batch of training images, as training goes on (Ioffe & "
        "Szegedy Fig. 1b–c). Without BN the distribution shifts; with BN it holds still.",
    )


def _draw_grid(ctx: Context, grids: dict[str, Tensor], plan: _Plan) -> None:
    import matplotlib.colors as mcolors

    plt = pyplot()
    finite = torch.cat([g[torch.isfinite(g)] for g in grids.values()])
    low = float(finite.min()) if len(finite) else 0.1
    # Colours stop a little above chance (ln 10): a blown-up loss would wash out the rest.
    norm = mcolors.LogNorm(vmin=min(max(low, 1e-3), 0.1), vmax=WORSE_THAN_CHANCE)
    cmap = plt.get_cmap("viridis").with_extremes(bad="#BBBBBB", over=OKABE_ITO[3])
    fig, axes = plt.subplots(
        1, 3, figsize=(11.5, 4.6), dpi=120, gridspec_kw={"width_ratios": [1, 1, 0.05]}
    )
    image = None
    for ax, (label, grid) in zip(axes[:2], grids.items(), strict=True):
        image = ax.imshow(grid.numpy(), cmap=cmap, norm=norm, origin="lower", aspect="auto")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                v = float(grid[i, j])
                text = "diverged" if math.isnan(v) else f"{v:.2f}"
                dark = not math.isnan(v) and v < WORSE_THAN_CHANCE and norm(v) < 0.6
                colour = "white" if dark else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
        ax.set_xticks(range(len(plan.lrs)), [f"{lr:g}" for lr in plan.lrs])
        ax.set_yticks(range(len(plan.gains)), [f"{g:g}" for g in plan.gains])
        ax.set_xlabel("learning rate (plain SGD)")
        ax.set_ylabel("init scale g (weight std = g/√fan_in)")
        ax.set_title(f"{label}: final training loss after {plan.grid_steps} steps")
    fig.colorbar(image, cax=axes[2], extend="max", label="cross-entropy (log scale)")
    ctx.figure(
        fig,
        "grid",
        "Final training loss (mean over the last tenth of the steps) of every init scale × "
        "learning rate, without BN (left) and with BN (right); lower is better. Every cell "
        "starts from the same draw of weights, scaled by g. Chance level is ln 10 ≈ 2.30; "
        f"vermillion: above {WORSE_THAN_CHANCE:g}, worse than chance; grey: diverged.",
    )


def _draw_modes(ctx: Context, early: _Modes, late: _Modes, steps: int) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3), dpi=120)
    for ax, modes, when, colour in (
        (axes[0], early, "at initialization", OKABE_ITO[1]),
        (axes[1], late, f"after {steps} steps", OKABE_ITO[0]),
    ):
        a, b = modes.train.flatten(), modes.eval.flatten()
        ax.scatter(a, b, s=7, color=colour, alpha=0.6, label="one logit of one example")
        lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=1.0, linestyle="--", label="equal")
        ax.set_xlabel("training mode (batch statistics)")
        ax.set_ylabel("inference mode (running averages)")
        ax.set_title(f"Output logits {when}")
        ax.legend(loc="upper left")
        ax.grid(alpha=0.3)
    ax = axes[2]
    generator = torch.Generator().manual_seed(2)  # horizontal jitter only
    for x0, modes, colour in ((0.0, early, OKABE_ITO[1]), (1.0, late, OKABE_ITO[0])):
        jitter = (torch.rand(len(modes.one_train), generator=generator) - 0.5) * 0.25
        ax.scatter(x0 + jitter, modes.one_train, s=14, color=colour, alpha=0.7)
        ax.plot([x0 - 0.25, x0 + 0.25], [modes.one_eval] * 2, color="black", linewidth=2.2)
    ax.plot([], [], "o", color="#777777", label="training mode, each dot a batch")
    ax.plot([], [], color="black", linewidth=2.2, label="inference mode")
    ax.set_xticks([0, 1], ["at initialization", f"after {steps} steps"])
    ax.set_xlim(-0.6, 1.6)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("probability of the true class")
    ax.set_title("One example in different batches")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    ctx.figure(
        fig,
        "modes",
        "Training mode normalizes with the batch's own statistics, inference mode with the "
        "running averages. At initialization the running averages are still mean 0, "
        "variance 1, so the two modes disagree; after training they nearly agree. In "
        "training mode an example's output depends on the other examples of its batch; in "
        "inference mode it does not.",
    )


# --------------------------------------------------------------------------- the lesson


def _first_at(steps: list[int], accuracy: Tensor, target: float) -> int | None:
    hits = [s for s, a in zip(steps, accuracy.tolist(), strict=True) if a >= target]
    return hits[0] if hits else None


def _steps_text(step: int | None, total: int) -> str:
    return f"{step} steps" if step is not None else f"more than {total} steps"


def run(
    out: str | Path | None = None,
    *,
    quick: bool = False,
    device: str = "cpu",
    progress: LessonProgress | None = None,
) -> Lesson:
    """Run the batch-norm lesson; write its report into ``out`` (when given).

    Args:
        out: the folder for ``index.html`` and the PNG figures, or None for none.
        quick: a short run (seconds) on a subset of MNIST, for the tests.
        device: ``"cpu"`` or ``"cuda"``.
        progress: a progress display (the CLI's bar), or None.

    Returns:
        The :class:`~initlab.lessons.Lesson`, its ``facts`` holding the numbers behind
        each finding.

    Raises:
        ValueError: a device that is not available.
        FileNotFoundError: MNIST is not on disk (see :func:`initlab.data.locate`).
    """
    plan = _QUICK if quick else _DEFAULT
    ctx = Context(
        NAME,
        TITLE,
        out,
        quick=quick,
        device=device,
        progress=progress,
        subtitle=(
            "Ioffe & Szegedy 2015 §4.1 on MNIST, scaled to a laptop: 3 × 100 sigmoid units, "
            f"batch {BATCH}, {plan.steps} steps; an init × learning-rate grid; train vs "
            "inference mode."
        ),
    )
    ctx.stage("loading MNIST")
    full = data.load("mnist") if plan.limit is None else data.load("mnist", limit=plan.limit)
    ds = full.to(ctx.device)
    test_x, test_y = ds.x_test[: plan.test_examples], ds.y_test[: plan.test_examples]
    probe_x = ds.x_train[: plan.probe_examples]

    # ---- §4.1: the same seeds with and without BN, each a stack of seeds
    traces: dict[str, _Trace] = {}
    nets: dict[str, models.Stack] = {}
    initial: models.Stack | None = None
    batch_x, batch_y = ds.x_test[:BATCH], ds.y_test[:BATCH]
    pool = ds.x_train[plan.probe_examples :]
    for label, placement in SETTINGS:
        ctx.stage(f"§4.1: training {label}")
        net = models.mlp(WIDTHS, ACTIVATION, placement, members=plan.seeds, device=ctx.device)
        models.init_members(net, _lecun_scaled(1.0), seeds=0)
        if placement is not None:  # as it starts: running mean 0, variance 1
            initial = copy.deepcopy(net)
        trace = _Trace()
        _measure(trace, 0, net, probe_x, test_x, test_y)

        def at_check(report: Progress, net: models.Stack = net, trace: _Trace = trace) -> None:
            _measure(trace, report.step, net, probe_x, test_x, test_y)
            if ctx.progress is not None:
                ctx.progress(report)

        config = TrainConfig(
            lr=LR, batch_size=BATCH, steps=plan.steps, seeds=0, check_every=plan.probe_every
        )
        ctx.train(net, ds, config, progress=at_check)
        traces[label], nets[label] = trace, net
    assert initial is not None

    plain, bn = traces["without BN"], traces["with BN"]
    acc_plain = torch.stack(plain.accuracy).mean(dim=1)  # (T,) mean over seeds
    acc_bn = torch.stack(bn.accuracy).mean(dim=1)
    q_plain, q_bn = torch.stack(plain.quantiles), torch.stack(bn.quantiles)  # (T, 3, M, U)
    first_probe = 1  # the first measurement after training began
    ctx.report.section(
        "Ioffe & Szegedy's MNIST experiment (§4.1)",
        f"Both nets: {WIDTHS} with sigmoid hidden units, weights N(0, 1/fan_in), plain SGD "
        f"at learning rate {LR}, mini-batches of {BATCH}, {plan.steps} steps, "
        f"{plan.seeds} seed{'s' if plan.seeds != 1 else ''} each; the nets of one seed start "
        f"from the same weights and see the same batches. Accuracy is measured on "
        f"{len(test_x)} test images every {plan.probe_every} steps, in inference mode.",
    )
    _draw_accuracy(ctx, traces, plan.seeds)
    marks = sorted(
        {first_probe, len(plain.steps) // 4, len(plain.steps) // 2, len(plain.steps) - 1}
    )
    ctx.report.table(
        ["step", "test accuracy without BN", "with BN"],
        [[plain.steps[i], f"{acc_plain[i]:.1%}", f"{acc_bn[i]:.1%}"] for i in marks],
        caption="Test accuracy at the same steps (mean over seeds).",
    )
    _draw_percentiles(ctx, traces)
    drift_unit_plain = float(_drift(q_plain[:, :, 0, UNIT]))
    drift_unit_bn = float(_drift(q_bn[:, :, 0, UNIT]))
    drift_all_plain = float(_drift(q_plain).mean())  # every unit of every seed
    drift_all_bn = float(_drift(q_bn).mean())
    width_plain = float((q_plain[:, 2] - q_plain[:, 0]).mean())
    width_bn = float((q_bn[:, 2] - q_bn[:, 0]).mean())
    # the same movement from the first measurement after training began (step 0 left out)
    drift_late_plain = float(_drift(q_plain[first_probe:]).mean())
    drift_late_bn = float(_drift(q_bn[first_probe:]).mean())
    ctx.report.table(
        ["", "without BN", "with BN"],
        [
            [f"percentile movement, unit {UNIT}", drift_unit_plain, drift_unit_bn],
            ["percentile movement, mean of all 100 units", drift_all_plain, drift_all_bn],
            [
                f"the same, from step {plain.steps[first_probe]} on",
                drift_late_plain,
                drift_late_bn,
            ],
            ["15th–85th band width, mean over training", width_plain, width_bn],
        ],
        caption=(
            "Movement: for each of the 15th, 50th and 85th percentiles, its range (max − "
            "min) over training, averaged over the three; in units of the sigmoid's input."
        ),
    )

    ctx.report.text(
        "What BN steadies is where the band sits over time, not its width: on average its "
        f"15th–85th band was {width_bn:.2f} wide against the plain net's {width_plain:.2f} "
        "(BN sets each input's spread by γ and its centre by β, which change slowly), and "
        f"its percentiles moved {drift_all_plain / max(drift_all_bn, 1e-12):.1f} times less."
    )

    # ---- train vs inference mode
    ctx.stage("train vs inference mode")
    bn_net = nets["with BN"]
    # The example of the batch the trained net is least sure of (true-class probability
    # nearest 1/2): where the batch it comes in can tip the output.
    late = _modes(bn_net, batch_x, batch_y, pool, plan.batches, 0)
    sure = late.eval.softmax(dim=1)[torch.arange(BATCH), batch_y.cpu()]
    example = int((sure - 0.5).abs().argmin())
    early = _modes(initial, batch_x, batch_y, pool, plan.batches, example)
    late = _modes(bn_net, batch_x, batch_y, pool, plan.batches, example)
    member = models.to_module(bn_net, 0).eval()
    hand_error = float((_by_hand(member, batch_x).cpu() - late.eval).abs().max())
    gap_early, gap_late = early.gap, late.gap
    spread_early = float(early.one_train.std())
    spread_late = float(late.one_train.std())
    ctx.report.section(
        "Training mode and inference mode",
        "In training, batch norm normalizes each unit with the mean and the biased variance "
        "of the current batch and updates running averages (momentum 0.1, unbiased "
        "variance); in inference (eval()) it uses the running averages. Below: the logits "
        f"of {BATCH} test images in both modes, before training and after, and the "
        f"true-class probability of one of them (the one the trained net is least sure of) "
        f"in {plan.batches} batches of different companions.",
    )
    _draw_modes(ctx, early, late, plan.steps)
    eps = next(m for m in bn_net.modules() if isinstance(m, StackedBatchNorm)).eps
    ctx.report.text(
        "Inference mode written out by hand: h ← (h − running_mean)/√(running_var + "
        f"{eps:g})·γ + β at each batch norm, with member 0's trained running averages, gives "
        f"the stack's eval() logits to within {hand_error:.1e} (float32 rounding)."
    )

    # ---- the init scale × learning rate grid
    grid_ds = dataclasses.replace(
        ds,
        x_train=ds.x_train[: plan.grid_train],
        y_train=ds.y_train[: plan.grid_train],
        x_test=ds.x_test[: plan.grid_test],
        y_test=ds.y_test[: plan.grid_test],
    )
    grids: dict[str, Tensor] = {}
    for label, placement in SETTINGS:
        ctx.stage(f"grid: {len(plan.gains)}×{len(plan.lrs)} cells {label}")
        grids[label] = _grid(ctx, grid_ds, plan, placement)
    g_plain, g_bn = grids["without BN"], grids["with BN"]
    worse_plain = torch.nan_to_num(g_plain, nan=math.inf)  # a diverged cell is the worst
    worse_bn = torch.nan_to_num(g_bn, nan=math.inf)
    bn_wins = int((worse_bn < worse_plain).sum())
    plain_wins = int((worse_plain < worse_bn).sum())
    cells = g_bn.numel()
    trained_plain = int((worse_plain < TRAINED_LOSS).sum())
    trained_bn = int((worse_bn < TRAINED_LOSS).sum())
    ctx.report.section(
        "Forgiving of the init scale and the learning rate",
        f"Every cell of the grid is one run of {plan.grid_steps} steps on {plan.grid_train} "
        f"training images; each BN setting is one stack of {cells} members. Weights "
        "N(0, g²/fan_in), one draw scaled by each g.",
    )
    _draw_grid(ctx, grids, plan)

    # ---- findings, from the numbers above
    s_first, s_last = plain.steps[first_probe], plain.steps[-1]
    hit_plain = _first_at(plain.steps, acc_plain, TARGET_ACCURACY)
    hit_bn = _first_at(bn.steps, acc_bn, TARGET_ACCURACY)
    target = f"{TARGET_ACCURACY:.0%} test accuracy"
    if hit_bn is None and hit_plain is None:
        reached = f"Neither net reached {target} within {s_last} steps."
    else:
        reached = (
            f"{target[0].upper()}{target[1:]} took {_steps_text(hit_bn, s_last)} with BN and "
            f"{_steps_text(hit_plain, s_last)} without."
        )
    findings = [
        f"With BN the sigmoid net reached {acc_bn[first_probe]:.1%} test accuracy at step "
        f"{s_first} and {acc_bn[-1]:.1%} at step {s_last}; without BN, "
        f"{acc_plain[first_probe]:.1%} and {acc_plain[-1]:.1%} (same weights, same batches, "
        f"learning rate {LR}).",
        reached,
        f"The 15th/50th/85th percentiles of the input to one last-hidden-layer sigmoid moved "
        f"by {drift_unit_plain:.2f} over training without BN and by {drift_unit_bn:.2f} with "
        f"BN (mean over all 100 units: {drift_all_plain:.2f} vs {drift_all_bn:.2f}).",
        f"On the {len(plan.gains)}×{len(plan.lrs)} grid of init scale × learning rate, BN "
        f"ended with the lower training loss in {bn_wins} of {cells} cells, no BN in "
        f"{plain_wins}; {trained_bn} BN runs and {trained_plain} plain runs got below loss "
        f"{TRAINED_LOSS:g}.",
        f"Training-mode and inference-mode logits differed by {gap_early:.0%} of their size "
        f"at initialization (running averages still 0 and 1) and by {gap_late:.0%} after "
        f"training; inference mode equals the formula with the running averages to within "
        f"{hand_error:.0e}.",
    ]
    facts: dict[str, Any] = {
        "steps": list(plain.steps),
        "accuracy_plain": acc_plain.tolist(),
        "accuracy_bn": acc_bn.tolist(),
        "steps_to_target_plain": hit_plain,
        "steps_to_target_bn": hit_bn,
        "percentiles_plain": q_plain[:, :, 0, UNIT].tolist(),  # (T, 3) member 0, unit 0
        "percentiles_bn": q_bn[:, :, 0, UNIT].tolist(),
        "drift_unit_plain": drift_unit_plain,
        "drift_unit_bn": drift_unit_bn,
        "drift_all_plain": drift_all_plain,
        "drift_all_bn": drift_all_bn,
        "drift_late_plain": drift_late_plain,
        "drift_late_bn": drift_late_bn,
        "band_width_plain": width_plain,
        "band_width_bn": width_bn,
        "grid_gains": list(plan.gains),
        "grid_lrs": list(plan.lrs),
        "grid_loss_plain": g_plain.tolist(),
        "grid_loss_bn": g_bn.tolist(),
        "grid_bn_wins": bn_wins,
        "grid_plain_wins": plain_wins,
        "grid_trained_plain": trained_plain,
        "grid_trained_bn": trained_bn,
        "mode_gap_init": gap_early,
        "mode_gap_trained": gap_late,
        "one_example_spread_init": spread_early,
        "one_example_spread_trained": spread_late,
        "by_hand_error": hand_error,
        # member 0 of the trained BN net, for an independent check of inference mode:
        # its parameters and buffers, a batch, and the stack's outputs in both modes
        "bn_member_state": {k: v.detach().cpu().clone() for k, v in member.state_dict().items()},
        "bn_eps": eps,
        "mode_batch": batch_x.cpu(),
        "mode_train_logits": late.train,
        "mode_eval_logits": late.eval,
    }
    return ctx.finish(findings, facts)
