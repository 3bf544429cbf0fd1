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

The quick size runs 300 steps on the first 6,000 training images with one seed, and a
3 × 3 grid of 100 steps.

Example:
    >>> from initlab.lessons import Env
    >>> tiny = Size(limit=300, steps=4, seeds=1, probe_every=2, probe_examples=50,
    ...             test_examples=100, gains=(1.0,), lrs=(0.3,), grid_steps=3, grid_train=120,
    ...             grid_test=60, batches=3)
    >>> facts = compute(tiny, Env())  # no figure drawn; SIZES["quick"] is the lesson's
    >>> sorted(facts.nets), facts.grid.cells, facts.modes.batches
    (['with BN', 'without BN'], 1, 3)
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Literal

import torch
from torch import Tensor, nn

from initlab import data, models
from initlab.lessons._lesson import Env
from initlab.norm import StackedBatchNorm
from initlab.report import OKABE_ITO
from initlab.report.figures import WIDTH, subplots
from initlab.report.html import Report
from initlab.train import Observer, Run, TrainConfig

__all__ = ["NAME", "QUESTION", "SIZES", "TITLE", "Facts", "Size", "compute", "draw", "findings"]
__all__ += ["FirstParts", "Grid", "Modes", "Net", "TwoModes"]  # the parts of the facts

NAME = "batchnorm"
TITLE = "Batch normalization: faster, steadier, forgiving"
QUESTION = (
    "Does batch normalization make a sigmoid net on MNIST learn faster, keep the inputs "
    "to its units steady, and forgive a poor init scale or learning rate, and how do its "
    "training and inference modes differ?"
)

WIDTHS = [784, 100, 100, 100, 10]  # Ioffe & Szegedy §4.1: 3 hidden layers of 100
ACTIVATION = "sigmoid"
BATCH = 60  # §4.1: 60 examples per mini-batch
LR = 0.5  # plain SGD, the same for both nets
PERCENTILES = (0.15, 0.50, 0.85)  # §4.1, Fig. 1b–c
UNIT = 0  # the unit of the last hidden layer whose input is followed
FIRST_PROBE = 1  # the first measurement after training began (0 is the initial weights)
WORSE_THAN_CHANCE = 3.0  # grid colours stop here (chance is ln 10 ≈ 2.30)
TRAINED_LOSS = 1.0  # a grid cell "trained" below this loss (chance is ln 10 ≈ 2.30)
TARGET_ACCURACY = 0.90  # steps to reach this test accuracy are reported
#: the two nets compared throughout: label → where batch norm goes
SETTINGS: tuple[tuple[str, models.BatchNormPlacement], ...] = (
    ("without BN", None),
    ("with BN", "before"),
)


@dataclass(frozen=True)
class Size:
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


SIZES = {
    "quick": Size(
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
    ),
    "default": Size(
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
    ),
}


@dataclass(frozen=True)
class Net:
    """One net of §4.1 (without or with BN), a stack of seeds: what it measured at step 0
    and every ``probe_every`` steps."""

    steps: tuple[int, ...]  # the step of each measurement, 0 first
    accuracy: Tensor  # (T, M) test accuracy, in inference mode
    quantiles: (
        Tensor  # (T, 3, M, units) the 15th/50th/85th percentiles of each last sigmoid's input
    )

    @property
    def mean_accuracy(self) -> Tensor:
        """(T,) test accuracy, the mean over the seeds."""
        return self.accuracy.mean(dim=1)

    @property
    def band(self) -> Tensor:
        """(T, 3) the percentiles of the followed unit's input, member 0."""
        return self.quantiles[:, :, 0, UNIT]

    @property
    def drift_unit(self) -> float:
        """How far the followed unit's percentiles moved over training."""
        return float(_drift(self.band))

    @property
    def drift_all(self) -> float:
        """The same, the mean over every unit of every seed."""
        return float(_drift(self.quantiles).mean())

    @property
    def drift_late(self) -> float:
        """The same from the first measurement after training began (step 0 left out)."""
        return float(_drift(self.quantiles[FIRST_PROBE:]).mean())

    @property
    def band_width(self) -> float:
        """The 15th–85th band's width, the mean over training, units and seeds."""
        return float((self.quantiles[:, 2] - self.quantiles[:, 0]).mean())

    @property
    def steps_to_target(self) -> int | None:
        """The first measured step at TARGET_ACCURACY (mean over seeds); None: never."""
        hits = [
            s
            for s, a in zip(self.steps, self.mean_accuracy.tolist(), strict=True)
            if a >= TARGET_ACCURACY
        ]
        return hits[0] if hits else None


def _drift(quantiles: Tensor) -> Tensor:
    """How far the percentiles moved over training: for each percentile its range over
    the probes (max − min), averaged over the three percentiles. (T, 3, …) → (…)."""
    return (quantiles.amax(dim=0) - quantiles.amin(dim=0)).mean(dim=0)


@dataclass(frozen=True)
class Modes:
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

    @property
    def spread(self) -> float:
        """The std of the example's true-class probability over the batches."""
        return float(self.one_train.std())


@dataclass(frozen=True)
class TwoModes:
    """BN's training and inference modes, at initialization and after training."""

    batch: Tensor  # (B, 784) the test images shown in both modes
    batches: int  # the batches the one example is put in
    early: Modes  # at initialization (running mean 0, variance 1)
    late: Modes  # after training
    hand_error: float  # max |inference mode − the formula written out by hand|
    eps: float  # batch norm's ε
    member_state: dict[str, Tensor]  # member 0 of the trained BN net: parameters, buffers


@dataclass(frozen=True)
class Grid:
    """The init scale × learning rate grid, one stack per BN setting."""

    gains: tuple[float, ...]  # weight std = gain/√fan_in
    lrs: tuple[float, ...]
    steps: int  # of every run
    train_examples: int
    loss: dict[str, Tensor]  # label → (gains, lrs) final training loss, NaN: diverged

    def _worse(self, label: str) -> Tensor:
        return torch.nan_to_num(self.loss[label], nan=math.inf)  # diverged: the worst

    @property
    def cells(self) -> int:
        return len(self.gains) * len(self.lrs)

    @property
    def bn_wins(self) -> int:
        """Cells where BN ended with the lower training loss."""
        return int((self._worse("with BN") < self._worse("without BN")).sum())

    @property
    def plain_wins(self) -> int:
        return int((self._worse("without BN") < self._worse("with BN")).sum())

    @property
    def trained_bn(self) -> int:
        """BN cells below TRAINED_LOSS."""
        return int((self._worse("with BN") < TRAINED_LOSS).sum())

    @property
    def trained_plain(self) -> int:
        return int((self._worse("without BN") < TRAINED_LOSS).sum())


@dataclass(frozen=True)
class FirstParts:
    """§4.1 and the two modes: what the lesson knows before its grid."""

    steps: int  # §4.1's training steps
    seeds: int  # per §4.1 stack
    probe_every: int  # steps between §4.1's measurements
    test_examples: int  # test images of §4.1's accuracy
    nets: dict[str, Net]  # "without BN", "with BN"
    modes: TwoModes

    @property
    def plain(self) -> Net:
        return self.nets["without BN"]

    @property
    def bn(self) -> Net:
        return self.nets["with BN"]


@dataclass(frozen=True)
class Facts(FirstParts):
    grid: Grid


def setup(size: Size) -> str:
    return (
        "Ioffe & Szegedy 2015 §4.1 on MNIST, scaled to a laptop: 3 × 100 sigmoid units, "
        f"batch {BATCH}, {size.steps} steps; an init × learning-rate grid; train vs "
        "inference mode."
    )


def compute(size: Size, env: Env) -> Facts:
    """§4.1 with and without BN, the two modes of the trained BN net, then the grid."""
    env.stage("loading MNIST")
    full = data.load("mnist") if size.limit is None else data.load("mnist", limit=size.limit)
    ds = full.to(env.device)
    nets, initial, trained = _section_41(size, env, ds)
    first = FirstParts(
        steps=size.steps,
        seeds=size.seeds,
        probe_every=size.probe_every,
        test_examples=len(ds.x_test[: size.test_examples]),
        nets=nets,
        modes=_two_modes(size, env, ds, initial, trained),
    )
    env.part_done(lambda report: _draw_first(first, report))  # kept if the grid is cut short
    return Facts(
        **{f.name: getattr(first, f.name) for f in fields(first)}, grid=_grid(size, env, ds)
    )


def _lecun_scaled(gain: float) -> str:
    """Weights N(0, gain²/fan_in): gain 1 is LeCun's normal init."""
    return f"variance_scaling(scale={gain * gain!r}, mode='fan_in', distribution='normal')"


# --------------------------------------------------------------------------- §4.1


def _section_41(
    size: Size, env: Env, ds: data.Dataset
) -> tuple[dict[str, Net], models.Stack, models.Stack]:
    """The same seeds with and without BN, each a stack of seeds. Returns what each net
    measured, and the BN stack as it started (running mean 0, variance 1) and trained."""
    test_x, test_y = ds.x_test[: size.test_examples], ds.y_test[: size.test_examples]
    probe_x = ds.x_train[: size.probe_examples]
    nets: dict[str, Net] = {}
    initial = trained = None
    for label, placement in SETTINGS:
        env.stage(f"§4.1: training {label}")
        net = models.mlp(WIDTHS, ACTIVATION, placement, members=size.seeds, device=env.device)
        models.init_members(net, _lecun_scaled(1.0), seeds=0)
        if placement is not None:
            initial, trained = copy.deepcopy(net), net
        trace = _Trace(net, probe_x, test_x, test_y)
        config = TrainConfig(
            lr=LR, batch_size=BATCH, steps=size.steps, seeds=0, check_every=size.probe_every
        )
        env.train(net, ds, config, observers=[trace])
        nets[label] = trace.net_facts()
    if initial is None or trained is None:
        raise RuntimeError(f"expected a setting with batch norm among {SETTINGS}.")
    return nets, initial, trained


class _Trace(Observer):
    """At step 0 and every stopping check: the test accuracy (inference mode) and the
    percentiles of the input to every sigmoid of the last hidden layer, over a fixed
    batch of training images."""

    def __init__(self, net: models.Stack, probe_x: Tensor, x: Tensor, y: Tensor) -> None:
        self.net, self.probe_x, self.x, self.y = net, probe_x, x, y
        self.steps: list[int] = []
        self.accuracy: list[Tensor] = []  # (M,) each
        self.quantiles: list[Tensor] = []  # (3, M, units) each
        self._measure(0)

    def on_step(self, run: Run) -> None:
        self._measure(run.step)

    def _measure(self, step: int) -> None:
        q = torch.tensor(PERCENTILES, dtype=self.probe_x.dtype, device=self.probe_x.device)
        self.steps.append(step)
        self.accuracy.append(_accuracy(self.net, self.x, self.y))
        self.quantiles.append(
            torch.quantile(_sigmoid_input(self.net, self.probe_x), q, dim=2).cpu()
        )

    def net_facts(self) -> Net:
        return Net(tuple(self.steps), torch.stack(self.accuracy), torch.stack(self.quantiles))


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


# --------------------------------------------------------------------------- two modes


def _two_modes(
    size: Size, env: Env, ds: data.Dataset, initial: models.Stack, trained: models.Stack
) -> TwoModes:
    """One batch of test images in both modes, before and after training; one of its
    examples in other batches; inference mode against the formula by hand."""
    env.stage("train vs inference mode")
    batch_x, batch_y = ds.x_test[:BATCH], ds.y_test[:BATCH]
    pool = ds.x_train[size.probe_examples :]
    # The example of the batch the trained net is least sure of (true-class probability
    # nearest 1/2): where the batch it comes in can tip the output.
    late = _modes(trained, batch_x, batch_y, pool, size.batches, 0)
    sure = late.eval.softmax(dim=1)[torch.arange(BATCH), batch_y.cpu()]
    example = int((sure - 0.5).abs().argmin())
    early = _modes(initial, batch_x, batch_y, pool, size.batches, example)
    late = _modes(trained, batch_x, batch_y, pool, size.batches, example)
    member = models.to_module(trained, 0).eval()
    return TwoModes(
        batch=batch_x.cpu(),
        batches=size.batches,
        early=early,
        late=late,
        hand_error=float((_by_hand(member, batch_x).cpu() - late.eval).abs().max()),
        eps=next(m for m in trained.modules() if isinstance(m, StackedBatchNorm)).eps,
        member_state={k: v.detach().cpu().clone() for k, v in member.state_dict().items()},
    )


def _modes(
    net: models.Stack, x: Tensor, y: Tensor, pool: Tensor, batches: int, example: int
) -> Modes:
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
    return Modes(train_out.cpu(), eval_out.cpu(), torch.stack(probs).cpu(), one_eval)


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


def _grid(size: Size, env: Env, ds: data.Dataset) -> Grid:
    """Every (gain, lr) cell trained with and without BN, on a subset of MNIST."""
    grid_ds = dataclasses.replace(
        ds,
        x_train=ds.x_train[: size.grid_train],
        y_train=ds.y_train[: size.grid_train],
        x_test=ds.x_test[: size.grid_test],
        y_test=ds.y_test[: size.grid_test],
    )
    loss: dict[str, Tensor] = {}
    for label, placement in SETTINGS:
        env.stage(f"grid: {len(size.gains)}×{len(size.lrs)} cells {label}")
        loss[label] = _grid_loss(env, grid_ds, size, placement)
    return Grid(size.gains, size.lrs, size.grid_steps, size.grid_train, loss)


def _grid_loss(
    env: Env, ds: data.Dataset, size: Size, batch_norm: models.BatchNormPlacement
) -> Tensor:
    """One stack: every (gain, lr) cell a member, all from the same draw of weights
    (scaled by the gain). Returns the final training loss, (gains, lrs), NaN where a
    run diverged."""
    cells = [(g, lr) for g in size.gains for lr in size.lrs]
    net = models.mlp(WIDTHS, ACTIVATION, batch_norm, members=len(cells), device=env.device)
    models.init_members(net, [_lecun_scaled(g) for g, _ in cells], seeds=[0] * len(cells))
    config = TrainConfig(
        lr=[lr for _, lr in cells],
        batch_size=BATCH,
        steps=size.grid_steps,
        check_every=max(1, size.grid_steps // 10),
    )
    result = env.train(net, ds, config)
    tail = max(1, len(result.loss) // 10)  # the mean of the last tenth of the batch losses
    final = result.loss[-tail:].double().mean(dim=0)
    diverged = torch.tensor([m.status == "diverged" for m in result.members])
    final = torch.where(diverged | ~torch.isfinite(final), math.nan, final)
    return final.reshape(len(size.gains), len(size.lrs))


# --------------------------------------------------------------------------- drawing


def draw(facts: Facts, report: Report) -> None:
    """§4.1's curves and tables, the two modes, the grid."""
    _draw_first(facts, report)
    grid = facts.grid
    report.section(
        "Forgiving of the init scale and the learning rate",
        f"Every cell of the grid is one run of {grid.steps} steps on {grid.train_examples} "
        f"training images; each BN setting is one stack of {grid.cells} members. Weights "
        "N(0, g²/fan_in), one draw scaled by each g.",
    )
    _draw_grid(report, grid)


def _draw_first(facts: FirstParts, report: Report) -> None:
    """§4.1's curves and tables, then the two modes."""
    _draw_section_41(facts, report)
    modes = facts.modes
    report.section(
        "Training mode and inference mode",
        "In training, batch norm normalizes each unit with the mean and the biased variance "
        "of the current batch and updates running averages (momentum 0.1, unbiased "
        "variance); in inference (eval()) it uses the running averages. Below: the logits "
        f"of {BATCH} test images in both modes, before training and after, and the "
        f"true-class probability of one of them (the one the trained net is least sure of) "
        f"in {modes.batches} batches of different companions.",
    )
    _draw_modes(report, modes.early, modes.late, facts.steps)
    report.text(
        "Inference mode written out by hand: h ← (h − running_mean)/√(running_var + "
        f"{modes.eps:g})·γ + β at each batch norm, with member 0's trained running averages, "
        f"gives the stack's eval() logits to within {modes.hand_error:.1e} (float32 rounding)."
    )


def _draw_section_41(facts: FirstParts, report: Report) -> None:
    plain, bn = facts.plain, facts.bn
    report.section(
        "Ioffe & Szegedy's MNIST experiment (§4.1)",
        f"Both nets: {WIDTHS} with sigmoid hidden units, weights N(0, 1/fan_in), plain SGD "
        f"at learning rate {LR}, mini-batches of {BATCH}, {facts.steps} steps, "
        f"{facts.seeds} seed{'s' if facts.seeds != 1 else ''} each; the nets of one seed start "
        f"from the same weights and see the same batches. Accuracy is measured on "
        f"{facts.test_examples} test images every {facts.probe_every} steps, in inference mode.",
    )
    _draw_accuracy(report, facts.nets, facts.seeds)
    probes = len(plain.steps)
    marks = sorted({FIRST_PROBE, probes // 4, probes // 2, probes - 1})
    acc_plain, acc_bn = plain.mean_accuracy, bn.mean_accuracy
    report.table(
        ["step", "test accuracy without BN", "with BN"],
        [[plain.steps[i], f"{acc_plain[i]:.1%}", f"{acc_bn[i]:.1%}"] for i in marks],
        caption="Test accuracy at the same steps (mean over seeds).",
    )
    _draw_percentiles(report, facts.nets)
    report.table(
        ["", "without BN", "with BN"],
        [
            [f"percentile movement, unit {UNIT}", plain.drift_unit, bn.drift_unit],
            ["percentile movement, mean of all 100 units", plain.drift_all, bn.drift_all],
            [f"the same, from step {plain.steps[FIRST_PROBE]} on", plain.drift_late, bn.drift_late],
            ["15th–85th band width, mean over training", plain.band_width, bn.band_width],
        ],
        caption=(
            "Movement: for each of the 15th, 50th and 85th percentiles, its range (max − "
            "min) over training, averaged over the three; in units of the sigmoid's input."
        ),
    )
    report.text(
        "What BN steadies is where the band sits over time, not its width: on average its "
        f"15th–85th band was {bn.band_width:.2f} wide against the plain net's "
        f"{plain.band_width:.2f} (BN sets each input's spread by γ and its centre by β, which "
        f"change slowly), and its percentiles moved "
        f"{plain.drift_all / max(bn.drift_all, 1e-12):.1f} times less."
    )


def _draw_accuracy(report: Report, nets: dict[str, Net], seeds: int) -> None:
    fig, ax = subplots(figsize=(7.2, 4.4))
    for (label, net), colour in zip(nets.items(), (OKABE_ITO[3], OKABE_ITO[0]), strict=True):
        acc = net.accuracy  # (T, M)
        steps = net.steps
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
    report.figure(
        fig,
        "accuracy",
        "Test accuracy against training steps (Ioffe & Szegedy Fig. 1a). Same initial "
        "weights, same batches, same learning rate; the only difference is batch norm "
        "before each sigmoid. Dotted: the 90 % mark.",
    )


def _draw_percentiles(report: Report, nets: dict[str, Net]) -> None:
    from matplotlib.lines import Line2D

    fig, axes = subplots(1, 2, figsize=(WIDTH, 4.4), sharey=True, layout="constrained")
    styles: tuple[tuple[str, Literal[":", "-", "--"]], ...] = (
        ("15th", ":"),
        ("50th", "-"),
        ("85th", "--"),
    )
    for ax, (label, net), colour in zip(
        axes, nets.items(), (OKABE_ITO[3], OKABE_ITO[0]), strict=True
    ):
        q = net.band  # (T, 3), member 0
        ax.fill_between(net.steps, q[:, 0], q[:, 2], color=colour, alpha=0.15)
        for i, (name, style) in enumerate(styles):
            ax.plot(net.steps, q[:, i], color=colour, linestyle=style, linewidth=1.8, label=name)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    # One legend for both panels, below them: inside it would cover the curves.
    handles = [Line2D([], [], color="0.3", linestyle=st, linewidth=1.8) for _, st in styles]
    fig.legend(
        handles,
        [f"{name} percentile" for name, _ in styles],
        loc="outside lower center",
        ncol=len(styles),
        frameon=False,
        fontsize=9,
    )
    axes[0].set_ylabel(f"input to sigmoid unit {UNIT}\nof hidden layer 3")
    fig.suptitle("The input to one sigmoid of the last hidden layer over training", fontsize=11)
    report.figure(
        fig,
        "percentiles",
        "The 15th, 50th and 85th percentiles of the input to one sigmoid of the last hidden "
        "layer, over a fixed batch of training images, as training goes on (Ioffe & "
        "Szegedy Fig. 1b–c). Without BN the distribution shifts; with BN it holds still.",
    )


def _draw_grid(report: Report, grid: Grid) -> None:
    import matplotlib.colors as mcolors
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable

    finite = torch.cat([g[torch.isfinite(g)] for g in grid.loss.values()])
    low = float(finite.min()) if len(finite) else 0.1
    # Colours stop a little above chance (ln 10): a blown-up loss would wash out the rest.
    norm = mcolors.LogNorm(vmin=min(max(low, 1e-3), 0.1), vmax=WORSE_THAN_CHANCE)
    cmap = colormaps["viridis"].with_extremes(bad="#BBBBBB", over=OKABE_ITO[3])
    fig, axes = subplots(1, 3, figsize=(8.7, 4.4), gridspec_kw={"width_ratios": [1, 1, 0.05]})
    for ax, (label, loss) in zip(axes[:2], grid.loss.items(), strict=True):
        ax.imshow(loss.numpy(), cmap=cmap, norm=norm, origin="lower", aspect="auto")
        for i in range(loss.shape[0]):
            for j in range(loss.shape[1]):
                v = float(loss[i, j])
                text = "diverged" if math.isnan(v) else f"{v:.2f}"
                dark = not math.isnan(v) and v < WORSE_THAN_CHANCE and norm(v) < 0.6
                colour = "white" if dark else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
        ax.set_xticks(range(len(grid.lrs)), [f"{lr:g}" for lr in grid.lrs])
        ax.set_yticks(range(len(grid.gains)), [f"{g:g}" for g in grid.gains])
        ax.set_xlabel("learning rate (plain SGD)")
        ax.set_ylabel("init scale g (weight std = g/√fan_in)")
        ax.set_title(f"{label}: final training loss after {grid.steps} steps")
    fig.colorbar(
        ScalarMappable(norm, cmap), cax=axes[2], extend="max", label="cross-entropy (log scale)"
    )
    report.figure(
        fig,
        "grid",
        "Final training loss (mean over the last tenth of the steps) of every init scale × "
        "learning rate, without BN (left) and with BN (right); lower is better. Every cell "
        "starts from the same draw of weights, scaled by g. Chance level is ln 10 ≈ 2.30; "
        f"vermillion: above {WORSE_THAN_CHANCE:g}, worse than chance; grey: diverged.",
    )


def _draw_modes(report: Report, early: Modes, late: Modes, steps: int) -> None:
    # Two scatter panels side by side, the one-example panel below them: a page's width.
    fig, grid = subplots(2, 2, figsize=(WIDTH, 8.0), gridspec_kw={"height_ratios": [1, 0.8]})
    for spare in grid[1]:
        spare.remove()
    axes = [grid[0][0], grid[0][1], fig.add_subplot(grid[0][0].get_gridspec()[1, :])]
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
        ax.set_title(f"Output logits {when}", fontsize=10)
        ax.legend(loc="upper left", fontsize=8)
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
    report.figure(
        fig,
        "modes",
        "Training mode normalizes with the batch's own statistics, inference mode with the "
        "running averages. At initialization the running averages are still mean 0, "
        "variance 1, so the two modes disagree; after training they nearly agree. In "
        "training mode an example's output depends on the other examples of its batch; in "
        "inference mode it does not.",
    )


# --------------------------------------------------------------------------- findings


def _share(fraction: float) -> str:
    """A fraction as a percentage a reader can say: "less than 1%" rather than "0%"."""
    return "less than 1%" if 0 < fraction < 0.005 else f"{fraction:.0%}"


def _steps_text(step: int | None, total: int) -> str:
    return f"{step} steps" if step is not None else f"more than {total} steps"


def findings(facts: Facts) -> list[str]:
    plain, bn, grid, modes = facts.plain, facts.bn, facts.grid, facts.modes
    acc_plain, acc_bn = plain.mean_accuracy, bn.mean_accuracy
    s_first, s_last = plain.steps[FIRST_PROBE], plain.steps[-1]
    hit_plain, hit_bn = plain.steps_to_target, bn.steps_to_target
    target = f"{TARGET_ACCURACY:.0%} test accuracy"
    if hit_bn is None and hit_plain is None:
        reached = f"Neither net reached {target} within {s_last} steps."
    else:
        reached = (
            f"{target[0].upper()}{target[1:]} took {_steps_text(hit_bn, s_last)} with BN and "
            f"{_steps_text(hit_plain, s_last)} without."
        )
    return [
        f"With BN the sigmoid net reached {acc_bn[FIRST_PROBE]:.1%} test accuracy at step "
        f"{s_first} and {acc_bn[-1]:.1%} at step {s_last}; without BN, "
        f"{acc_plain[FIRST_PROBE]:.1%} and {acc_plain[-1]:.1%} (same weights, same batches, "
        f"learning rate {LR}).",
        reached,
        f"The 15th/50th/85th percentiles of the input to one last-hidden-layer sigmoid moved "
        f"by {plain.drift_unit:.2f} over training without BN and by {bn.drift_unit:.2f} with "
        f"BN (mean over all 100 units: {plain.drift_all:.2f} vs {bn.drift_all:.2f}).",
        f"On the {len(grid.gains)}×{len(grid.lrs)} grid of init scale × learning rate, BN "
        f"ended with the lower training loss in {grid.bn_wins} of {grid.cells} cells, no BN "
        f"in {grid.plain_wins}; {grid.trained_bn} BN runs and {grid.trained_plain} plain runs "
        f"got below loss {TRAINED_LOSS:g}.",
        f"Training-mode and inference-mode logits differed by {_share(modes.early.gap)} of "
        f"the logits' size at initialization (running averages still 0 and 1) and by "
        f"{_share(modes.late.gap)} after training; inference mode equals the formula with "
        f"the running averages to within {modes.hand_error:.0e}.",
    ]
