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
(:func:`circles`): 300 circles points, the net [2, 10, 5, 1] (ReLU, ReLU, sigmoid),
full-batch gradient descent at lr 0.01 for 15,000 iterations, float64, with its three
inits (zeros, large random ×10, He) drawn as the notebook draws them after
``numpy.random.seed(3)``. Four further inits join them as further members of the *same*
stack, drawn the notebook's way from the same seed: ones, small random ×0.01 and Xavier
(the notebook's standard-normal draws times 0.01 and √(2/(fan_in + fan_out))), and uniform
U(±1/√fan_in). The notebook's three runs print what the notebook prints: the same
accuracies, the costs of zeros and He to ~15 digits (NumPy and torch sum in other
orders). Part 2 is the deep net of the deeplearning.ai note "Initializing neural
networks": [784, 300, 300, 300, 300, 10], tanh, on MNIST, with six inits (zeros, small
×0.01, uniform, Xavier, He, large ×10; biases zero) as one stack, trained by plain SGD (lr
0.1, batches of 32) on the first 2,000 training images for 200 steps; its tanh outputs are
recorded on the first 1,000 test images at init and during training.
Symmetry is measured twice: on the weights (the largest difference between two units'
incoming weights and biases) and on the units' outputs (the probe's count of distinct
units). The quick size runs 1,500 iterations on circles and 40 steps on MNIST.

The large random run is chaotic: its saturated start amplifies the rounding of the sums,
so its costs depend on the CPU's kernels. Measured with torch 2.13 (float64; 1 and 2
threads give the same numbers): the AVX-512 and AVX2 kernels agree bit for bit up to
iteration 44 (the cost is inf at about 100 of the first 270 iterations), differ by 4e-12
at iteration 79, 7e-4 at 215, and near 280 one cost is 7 times the other; at iteration
1000 the cost is 0.62593 with AVX-512, 0.62306 with AVX2, and the notebook (NumPy) printed
0.62479. The runs then settle on one descent (at iterations 2000–6000 and 8000–14000 each
is within 5e-4 of the notebook's printed costs) except around the sharp drop near
iteration 7000, whose timing shifts (0.4749 with AVX-512, 0.4697 with AVX2, notebook
0.4716). The accuracies are the notebook's, 0.83 train and 0.86 test, on each.

Sources. deeplearning.ai, "Improving Deep Neural Networks", course 2, week 1, programming
exercise "Initialization"; deeplearning.ai AI Notes, "Initializing neural networks"
(Katanforoosh & Kunin, 2019); X. Glorot & Y. Bengio, "Understanding the difficulty of
training deep feedforward neural networks", AISTATS 2010 (§4.2, the standard and the
normalized init); K. He et al., "Delving Deep into Rectifiers", ICCV 2015 (§2.2).

Example:
    >>> part = circles(1000)  # the notebook's three inits alone, 1000 iterations
    >>> part.labels, part.runs["he"].costs[0]
    (('zeros', 'random', 'he'), (0, 0.8830537463419...))
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import torch
from torch import Tensor, nn

from initlab import data
from initlab._io import write_atomic
from initlab._validation import check_int, param_message
from initlab.data import Dataset
from initlab.lessons._lesson import Env
from initlab.lessons._notebook import notebook_cost, notebook_dataset
from initlab.lessons.compat import legacy_make_circles, legacy_randn_weights, load_weights
from initlab.models import Stack, StackedLinear, init_members, mlp
from initlab.probe import Thresholds, probe
from initlab.report import OKABE_ITO
from initlab.report.figures import WIDTH, draw_decision_boundaries, subplots
from initlab.report.html import Report
from initlab.surfaces import DecisionMap, decision_map
from initlab.train import TrainConfig, TrainResult

__all__ = [
    "INIT_WIDTHS",
    "NAME",
    "QUESTION",
    "SIZES",
    "TITLE",
    "Circles",
    "CirclesRun",
    "Facts",
    "Mnist",
    "MnistRun",
    "Size",
    "Snapshot",
    "circles",
    "compute",
    "draw",
    "findings",
    "init_data",
    "init_weights",
    "printed",
    "setup",
]

NAME = "init"
TITLE = "Initialization: zeros, ones, small, large, uniform, Xavier and He"
QUESTION = (
    "Which ways of starting the weights let a network train — and why do zeros and ones "
    "never break symmetry, small weights vanish and large ones saturate, while Xavier and "
    "He keep the signal alive?"
)


@dataclass(frozen=True)
class Size:
    circles_steps: int  # full-batch iterations on circles (the notebook runs 15,000)
    snapshots: tuple[int, ...]  # MNIST steps at which the tanh outputs are recorded (last: end)


SIZES = {
    "quick": Size(circles_steps=1_500, snapshots=(0, 10, 40)),
    "default": Size(circles_steps=15_000, snapshots=(0, 40, 200)),
}

# Part 1: the notebook's circles. Its own runs first (their printed lines are the
# notebook's), then the further inits, in the same stack. Run label → name on the page.
NOTEBOOK_LABELS = ("zeros", "random", "he")  # the notebook's own runs, in its order
CIRCLES_NAMES = {
    "zeros": "zeros",
    "random": "large ×10",
    "he": "He",
    "ones": "ones",
    "small": "small ×0.01",
    "uniform": "uniform",
    "xavier": "Xavier",
}
#: The notebook's net for "Initialization": [2, 10, 5, 1], ReLU, ReLU, sigmoid output.
INIT_WIDTHS: tuple[int, ...] = (2, 10, 5, 1)
CIRCLES_LR = 0.01  # the notebook's full-batch gradient descent
CIRCLES_PRINT_EVERY = 1000  # the notebook prints its cost every 1000 iterations
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
BINS = 41  # histogram bins over tanh's range [−1, 1] (odd: one bin centred on 0)

# Okabe & Ito without its yellow (faint on white), with its black: seven distinct lines.
PALETTE = (*(c for c in OKABE_ITO if c != "#F0E442"), "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")

#: (W, b) per layer, as NumPy arrays: a notebook's initial weights for one run.
Weights: TypeAlias = Sequence[tuple[np.ndarray, np.ndarray]]


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class CirclesRun:
    """One init on circles: what it printed and how its units ended."""

    name: str  # the init's name on the page
    costs: tuple[tuple[int, float], ...]  # (iteration, notebook cost), every 1000
    train_accuracy: float
    test_accuracy: float
    first_cost: float
    final_cost: float  # at the last printed iteration
    unit_spread: tuple[float, ...]  # per hidden layer, after training (see _unit_spread)
    weight_scale: tuple[float, ...]  # the largest |w| per hidden layer, after training
    distinct_units: tuple[int, ...]  # the probe's count per hidden layer, after training
    act_rms_init: tuple[float, ...]  # RMS of each hidden layer's ReLU outputs at init
    act_rms_end: tuple[float, ...]  # … and after training
    weights: tuple[Tensor, ...]  # per hidden layer, rows [W_i, b_i] per unit, after training


@dataclass(frozen=True)
class Circles:
    """Part 1: the notebook's circles, every init a member of one stack."""

    steps: int
    labels: tuple[str, ...]  # one per member: the notebook's three, then the further ones
    runs: dict[str, CirclesRun]  # by label
    widths: tuple[int, ...]  # the hidden layers' widths
    lines: tuple[str, ...]  # the printed output (the notebook's three runs as it prints them)
    x: Tensor  # (300, 2) the training points
    y: Tensor  # (300,)
    boundaries: DecisionMap  # each member's classifier over the plane, after training
    units: Tensor  # (M, units, 2): layer 1's incoming weights per unit, after training
    act_init: tuple[Tensor, ...]  # per hidden layer, (M, units, 300) ReLU outputs at init
    act_end: tuple[Tensor, ...]  # … after training


@dataclass(frozen=True)
class Snapshot:
    """The tanh outputs of the MNIST net at one step, summarized per member and layer."""

    step: int
    hist: Tensor  # (M, L, BINS): fraction of the layer's outputs in each bin of [−1, 1]
    std: Tensor  # (M, L): std of the layer's outputs
    saturated: Tensor  # (M, L): fraction with |a| > the probe's tanh threshold
    accuracy: Tensor  # (M,): on the recorded test images
    loss: Tensor  # (M,): cross-entropy there


@dataclass(frozen=True)
class MnistRun:
    """One init of the deep tanh net on MNIST."""

    spec: str  # the init scheme (initlab.init's spec)
    train_accuracy: float | None  # on the training images, at the end
    test_accuracy: float  # on the recorded test images, at the end
    test_accuracy_init: float
    first_loss: float  # the first step's batch loss
    final_loss: float  # on the test images, at the end
    tail_loss_min: float  # the batch loss over the last half
    tail_loss_max: float  # of the last segment's logged steps
    tail_steps: int
    std_init: tuple[float, ...]  # per hidden layer, std of the tanh outputs at init
    std_end: tuple[float, ...]
    std_factor_init: float  # the geometric-mean change of the std per layer, at init
    saturated_init: tuple[float, ...]  # per hidden layer, the fraction saturated
    saturated_end: tuple[float, ...]
    unit_spread: tuple[float, ...]  # per hidden layer, after training
    distinct_units: tuple[int, ...]  # the probe's count per hidden layer, after training
    status: str  # the engine's status of the member


@dataclass(frozen=True)
class Mnist:
    """Part 2: the deep tanh net on MNIST, every init a member of one stack."""

    steps: int
    snapshots: tuple[int, ...]  # the steps of ``shots``
    saturation_threshold: float  # |tanh| beyond this is saturated (the probe's)
    runs: dict[str, MnistRun]  # by name
    shots: tuple[Snapshot, ...]
    loss_steps: Tensor  # (S,) the logged steps of the whole run
    loss: Tensor  # (S, M) the batch loss at those steps


@dataclass(frozen=True)
class Facts:
    circles: Circles
    mnist: Mnist


def setup(size: Size) -> str:
    return (
        f"Part 1: the deeplearning.ai notebook 'Initialization' (circles, [2, 10, 5, 1] "
        f"ReLU, {size.circles_steps:,} full-batch iterations, float64): its three inits and "
        f"four more in one stack. Part 2: the note 'Initializing neural networks' (MNIST, "
        f"[784, 300, 300, 300, 300, 10] tanh): six inits in one stack, {size.snapshots[-1]} "
        "SGD steps."
    )


def compute(size: Size, env: Env) -> Facts:
    """Both parts: the circles stack (the notebook's inits and four more), then MNIST."""
    part_1 = circles(size.circles_steps, _circles_extra(), env)
    env.part_done(lambda report: _draw_circles(part_1, report))  # kept if MNIST is cut short
    return Facts(circles=part_1, mnist=_mnist(size.snapshots, env))


# --------------------------------------------------------------------------- part 1: circles


def init_data() -> Dataset:
    """The notebook's circles: ``numpy.random.seed(1); make_circles(300, noise=0.05)`` for
    training and seed 2, 100 points, for the test (float64)."""
    return notebook_dataset(
        "circles (notebook)",
        legacy_make_circles(300, 0.05, seed=1),
        legacy_make_circles(100, 0.05, seed=2),
    )


def init_weights() -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """The notebook's three initial weights, (W, b) per layer of :data:`INIT_WIDTHS`:
    ``"zeros"``, ``"random"`` (``randn·10`` after ``numpy.random.seed(3)``) and ``"he"``
    (``randn·√(2/n_{l−1})`` after the same seed); biases zero.

    Example:
        >>> w = init_weights()
        >>> list(w), float(abs(w["zeros"][0][0]).max())
        (['zeros', 'random', 'he'], 0.0)
    """
    scales: dict[str, tuple[int | None, Callable[[int], float]]] = {
        "zeros": (None, lambda fan_in: 0.0),
        "random": (3, lambda fan_in: 10.0),
        "he": (3, lambda fan_in: math.sqrt(2.0 / fan_in)),
    }
    return {k: legacy_randn_weights(INIT_WIDTHS, seed, f) for k, (seed, f) in scales.items()}


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


def circles(
    steps: int, extra: Mapping[str, Weights] | None = None, env: Env | None = None
) -> Circles:
    """The notebook "Initialization": zeros, large random (×10) and He init on circles,
    and any further inits as further members of the same stack.

    Data: ``numpy.random.seed(1); make_circles(300, noise=0.05)`` for training and seed 2,
    100 points for the test. Net [2, 10, 5, 1], ReLU, ReLU, sigmoid; full-batch gradient
    descent at lr 0.01 (15,000 iterations in the notebook), float64; weights
    ``randn·{0, 10, √(2/n_{l−1})}`` after ``numpy.random.seed(3)``, biases zero. The cost
    is the notebook's own formula (:func:`~initlab.lessons._notebook.notebook_cost`),
    recorded every 1000 iterations as the notebook prints it.

    Args:
        steps: iterations (15,000 in the notebook; fewer for a quick look).
        extra: further initial weights, label → (W, b) per layer of :data:`INIT_WIDTHS`,
            trained beside the notebook's three (so at almost no extra cost; a member's
            numbers do not depend on its neighbours). The printed ``lines`` show the
            notebook's three runs as the notebook prints them, then one line per further
            run.
        env: where to train and whom to tell (default: the CPU, no display).

    Returns:
        The costs, accuracies, symmetry measures, decision map and activations of every
        member.

    Raises:
        ValueError: an ``extra`` label that is one of the notebook's, weights of the
            wrong shapes, ``steps`` < 1.
        KeyboardInterrupt: Ctrl-C during training.
    """
    steps = check_int("circles", "steps", steps, low=1)
    env = env if env is not None else Env()
    inits: dict[str, Weights] = dict(init_weights())
    for label, weights in (extra or {}).items():
        if label in inits:
            raise ValueError(
                param_message(
                    "circles",
                    "extra",
                    f"labels other than the notebook's {', '.join(map(repr, inits))}",
                    label,
                    "Rename the extra run.",
                )
            )
        inits[label] = weights
    stack = mlp(list(INIT_WIDTHS), "relu", bias=True, members=len(inits), dtype=torch.float64)
    for m, weights in enumerate(inits.values()):
        load_weights(stack, m, weights)
    stack.to(env.device)
    ds = init_data()
    act_init, _ = _activations(stack, ds.x_train.to(env.device))
    config = TrainConfig(
        loss="bce",
        optimizer="sgd",
        lr=CIRCLES_LR,
        batch_size="full",
        steps=steps,
        log_every=CIRCLES_PRINT_EVERY,
        check_every=CIRCLES_PRINT_EVERY,
    )
    env.stage(f"circles: {len(inits)} inits × {steps:,} iterations, one stack")
    result = env.train(stack, ds, config, cost=notebook_cost)
    return _circles_facts(stack, ds, result, tuple(inits), act_init, steps)


def _circles_facts(
    stack: Stack,
    ds: Dataset,
    result: TrainResult,
    labels: tuple[str, ...],
    act_init: list[Tensor],
    steps: int,
) -> Circles:
    """What the trained circles stack printed, and how its units ended."""
    x = ds.x_train.to(next(stack.parameters()).device)
    act_end, _ = _activations(stack, x)
    spread, scale = _unit_spread(stack), _weight_scale(stack)
    distinct = _distinct_units(stack, x)
    runs = {}
    for m, label in enumerate(labels):
        costs = tuple(
            (int(s), float(c))
            for s, c in zip(result.steps, result.loss[:, m], strict=True)
            if int(s) % CIRCLES_PRINT_EVERY == 0  # the notebook's prints, not the last step
        )
        runs[label] = CirclesRun(
            name=CIRCLES_NAMES.get(label, label),
            costs=costs,
            train_accuracy=result.members[m].train_accuracy or 0.0,
            test_accuracy=result.members[m].test_accuracy or 0.0,
            first_cost=costs[0][1],
            final_cost=costs[-1][1],
            unit_spread=tuple(spread[m].tolist()),
            weight_scale=tuple(scale[m].tolist()),
            distinct_units=tuple(distinct[m]),
            act_rms_init=tuple(_rms(a[m]) for a in act_init),
            act_rms_end=tuple(_rms(a[m]) for a in act_end),
            weights=tuple(
                torch.cat([layer.weight[m], layer.bias[m].unsqueeze(-1)], dim=-1)
                .detach()
                .double()
                .cpu()
                for layer in _hidden_layers(stack)
                if layer.bias is not None
            ),
        )
    return Circles(
        steps=steps,
        labels=labels,
        runs=runs,
        widths=tuple(layer.out_features for layer in _hidden_layers(stack)),
        lines=tuple(_circles_lines(runs)),
        x=ds.x_train,
        y=ds.y_train,
        boundaries=decision_map(stack, ds.x_train),
        units=_hidden_layers(stack)[0].weight.detach().double().cpu(),
        act_init=tuple(a.cpu() for a in act_init),
        act_end=tuple(a.cpu() for a in act_end),
    )


def _circles_lines(runs: Mapping[str, CirclesRun]) -> list[str]:
    """The notebook's printed output for its own three runs, then the further runs apart
    (not in the notebook's format)."""
    lines: list[str] = []
    for label in NOTEBOOK_LABELS:
        run = runs[label]
        lines.append(f"initialization = {label!r}")
        lines += [f"Cost after iteration {i}: {c}" for i, c in run.costs]
        lines += ["On the train set:", f"Accuracy: {run.train_accuracy}"]
        lines += ["On the test set:", f"Accuracy: {run.test_accuracy}", ""]
    further = [label for label in runs if label not in NOTEBOOK_LABELS]
    if further:
        lines.append("Further inits in the same stack (not in the notebook):")
    for label in further:
        lines.append(
            f"initialization = {label!r}: train accuracy {runs[label].train_accuracy}, "
            f"test accuracy {runs[label].test_accuracy}"
        )
    return lines


# --------------------------------------------------------------------------- part 2: MNIST


def _mnist(snapshots: Sequence[int], env: Env) -> Mnist:
    """Train the MNIST stack in segments between the snapshot steps; its facts."""
    stack, shots, results, x_test, threshold = _train_mnist(env, snapshots)
    spread = _unit_spread(stack)
    distinct = _distinct_units(stack, x_test[:256])
    last = results[-1]
    half = last.loss.shape[0] // 2
    runs = {}
    for m, (name, spec) in enumerate(MNIST_INITS.items()):
        tail = last.loss[half:, m].double()
        std = shots[0].std[m].tolist()
        runs[name] = MnistRun(
            spec=spec,
            train_accuracy=last.members[m].train_accuracy,
            test_accuracy=float(shots[-1].accuracy[m]),
            test_accuracy_init=float(shots[0].accuracy[m]),
            first_loss=float(results[0].loss[0, m]),
            final_loss=float(shots[-1].loss[m]),
            tail_loss_min=float(tail.min()),
            tail_loss_max=float(tail.max()),
            tail_steps=len(tail),
            std_init=tuple(std),
            std_end=tuple(shots[-1].std[m].tolist()),
            std_factor_init=(std[-1] / std[0]) ** (1 / (len(std) - 1)) if std[0] > 0 else 0.0,
            saturated_init=tuple(shots[0].saturated[m].tolist()),
            saturated_end=tuple(shots[-1].saturated[m].tolist()),
            unit_spread=tuple(spread[m].tolist()),
            distinct_units=tuple(distinct[m]),
            status=last.members[m].status,
        )
    return Mnist(
        steps=snapshots[-1],
        snapshots=tuple(snapshots),
        saturation_threshold=threshold,
        runs=runs,
        shots=tuple(shots),
        loss_steps=torch.cat([r.steps + s for r, s in zip(results, snapshots, strict=False)]),
        loss=torch.cat([r.loss for r in results]).double(),
    )


def _train_mnist(
    env: Env, snapshots: Sequence[int]
) -> tuple[Stack, list[Snapshot], list[TrainResult], Tensor, float]:
    """The MNIST stack trained in segments between the snapshot steps (plain SGD keeps no
    state, so a segmented run is one run whose batches are reshuffled per segment)."""
    full = data.load("mnist", limit=max(MNIST_TRAIN, MNIST_TEST))
    x_test = full.x_test[:MNIST_TEST].to(env.device)
    y_test = full.y_test[:MNIST_TEST].to(env.device)
    # no test split for the engine: its end-of-segment evaluation is then the training
    # accuracy alone; the test accuracy comes with the snapshots
    train_set = (full.x_train[:MNIST_TRAIN], full.y_train[:MNIST_TRAIN])
    stack = mlp(list(MNIST_WIDTHS), "tanh", members=len(MNIST_INITS), device=env.device)
    init_members(stack, list(MNIST_INITS.values()), seeds=MNIST_SEED)
    threshold = Thresholds().tanh_saturation
    shots = [_snapshot(stack, x_test, y_test, 0, threshold)]
    results = []
    # One stage for the segments: the progress bar counts their steps together, to the
    # total it says.
    env.stage(
        f"MNIST: {len(MNIST_INITS)} inits, one stack: {snapshots[-1]} SGD steps",
        total=snapshots[-1],
    )
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
        results.append(env.train(stack, train_set, config))
        shots.append(_snapshot(stack, x_test, y_test, stop, threshold))
    return stack, shots, results, x_test, threshold


def _snapshot(stack: Stack, x: Tensor, y: Tensor, step: int, threshold: float) -> Snapshot:
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
    return Snapshot(
        step=step,
        hist=(hist.view(members, layers, BINS).double() / n).cpu(),
        std=std.double().cpu(),
        saturated=(flat.abs() > threshold).sum(dim=-1).double().div(n).cpu(),
        accuracy=(logits.argmax(dim=1) == target).double().mean(dim=-1).cpu(),
        loss=loss.double().cpu(),
    )


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


def _distinct_units(stack: Stack, x: Tensor) -> list[list[int]]:
    """The probe's count of distinct functions per hidden layer, per member."""
    report = probe(stack, x, histograms=False, forecast=False)
    return [[s.distinct_units for s in member.layers[:-1]] for member in report]


def _rms(t: Tensor) -> float:
    return float(t.double().square().mean().sqrt())


# --------------------------------------------------------------------------- drawing


def draw(facts: Facts, report: Report) -> None:
    """Both parts' figures, tables and printed output; ``output.txt`` beside the page."""
    _draw_circles(facts.circles, report)
    _draw_mnist(facts.mnist, report)


def _draw_circles(c: Circles, report: Report) -> None:
    names = [c.runs[k].name for k in c.labels]
    report.section(
        "Part 1 — circles, the notebook's net",
        "The deeplearning.ai notebook 'Initialization' run exactly: its three inits (zeros, "
        "large random ×10, He) print what the notebook prints. Ones, small random ×0.01, "
        "uniform U(±1/√fan_in) and Xavier train beside them as further members of the same "
        "stack. The cost is the notebook's own formula, which is inf when the output "
        "sigmoid rounds to exactly 1.",
    )
    runs = c.runs
    best = min(c.labels, key=lambda k: runs[k].final_cost)
    flat = [runs[k].name for k in c.labels if abs(runs[k].final_cost - math.log(2)) < 1e-4]
    infinite = [runs[k].name for k in c.labels if not math.isfinite(runs[k].first_cost)]
    report.figure(
        _draw_circles_cost(c),
        "circles-cost",
        f"The cost every 1000 iterations. Ended within 1e-4 of log 2 = {math.log(2):.4f} "
        f"(the cost of answering ½ everywhere): {', '.join(flat) or 'none'}. Started at inf: "
        f"{', '.join(infinite) or 'none'}. Lowest at the end: {runs[best].name}, "
        f"{runs[best].final_cost:.3g}.",
    )
    boundaries = draw_decision_boundaries(c.boundaries, c.x, c.y, names)
    boundaries.suptitle(
        f"Circles: each init's decision regions after {c.steps:,} iterations "
        "(blue: predicts 0, orange: predicts 1), with the training points",
        fontsize=10,
    )
    report.figure(
        boundaries,
        "circles-boundaries",
        "Each init's classifier after training, on the training points.",
    )
    report.figure(
        _draw_units(c, names),
        "circles-units",
        "Symmetry after training: the units of layer 1 as points. Spread: the largest "
        "difference between two units' incoming weights and biases (0: all units are copies).",
    )
    report.figure(
        _draw_relu_histograms(c.act_init, c.act_end, names),
        "circles-activations",
        "Per-layer activation histograms at init (orange) and after training (blue); the "
        "RMS of layer 2's outputs at init: "
        + ", ".join(f"{runs[k].name} {runs[k].act_rms_init[-1]:.2g}" for k in c.labels)
        + ".",
    )
    _circles_table(c, report)
    report.text("The printed output (the notebook's three runs as the notebook prints them):")
    report.preformatted(c.lines)
    if report.out is not None:
        text = "\n".join(c.lines) + "\n"
        write_atomic(report.out / "output.txt", lambda tmp: tmp.write_text(text))


def _circles_table(c: Circles, report: Report) -> None:
    last = c.runs[c.labels[0]].costs[-1][0]
    report.table(
        [
            "init",
            "train accuracy",
            "test accuracy",
            f"cost at iteration {last}",
            "unit spread, layers 1 / 2",
            "distinct units, layers 1 / 2",
        ],
        [
            [
                r.name,
                r.train_accuracy,
                r.test_accuracy,
                r.final_cost,
                " / ".join(f"{v:.2g}" for v in r.unit_spread),
                " / ".join(f"{d} of {w}" for d, w in zip(r.distinct_units, c.widths, strict=True)),
            ]
            for r in c.runs.values()
        ],
        caption=(
            "Circles after training. Unit spread: the largest difference between two units' "
            "incoming weights and biases. Distinct units: how many different functions the "
            "layer's units compute on the training points (the probe)."
        ),
    )


def _draw_mnist(mn: Mnist, report: Report) -> None:
    names, r = list(mn.runs), mn.runs
    report.section(
        "Part 2 — a deep tanh net on MNIST",
        f"The net of the deeplearning.ai note 'Initializing neural networks': "
        f"[784, 300, 300, 300, 300, 10], tanh, trained by plain SGD (lr {MNIST_LR}, batches "
        f"of {MNIST_BATCH}) on the first {MNIST_TRAIN:,} training images; the six inits are "
        f"six members of one stack. The tanh outputs were recorded on the first "
        f"{MNIST_TEST:,} test images at steps {', '.join(map(str, mn.snapshots))}.",
    )
    report.figure(
        _draw_tanh_histograms(mn.shots, names),
        "mnist-activations",
        "Per-layer histograms of the tanh outputs. At init the std of layer 4's outputs was "
        + ", ".join(f"{k} {v.std_init[-1]:.2g}" for k, v in r.items())
        + f"; {min(r['large ×10'].saturated_init):.0%} or more of large random's outputs "
        f"were beyond ±{mn.saturation_threshold} in every layer.",
    )
    report.figure(
        _draw_layer_stats(mn.shots, names, mn.saturation_threshold),
        "mnist-layers",
        "Left: the std of each layer's tanh outputs; at init it changed per layer by a factor "
        + ", ".join(f"{k} {v.std_factor_init:.2g}" for k, v in r.items() if k != "zeros")
        + ". Right: the fraction of saturated outputs.",
    )
    report.figure(
        _draw_mnist_training(mn, names),
        "mnist-training",
        "Left: the training loss of the step's batch (every 2nd step). Right: test accuracy "
        "at the recorded steps.",
    )
    report.table(
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
                v.train_accuracy,
                v.test_accuracy,
                v.final_loss,
                f"{v.std_init[0]:.2g} → {v.std_init[-1]:.2g}",
                f"{min(v.saturated_init):.0%}–{max(v.saturated_init):.0%}",
                " / ".join(str(d) for d in v.distinct_units),
            ]
            for name, v in r.items()
        ],
        caption=f"MNIST after {mn.steps} steps.",
    )


def _draw_circles_cost(c: Circles) -> Any:
    fig, ax = subplots(figsize=(7.5, 4.2))
    for k, label in enumerate(c.labels):
        points = c.runs[label].costs
        x = [s for s, _ in points]
        y = [v if math.isfinite(v) else math.nan for _, v in points]
        ax.plot(
            x,
            y,
            marker=MARKERS[k % len(MARKERS)],
            markersize=4,
            color=PALETTE[k % len(PALETTE)],
            label=c.runs[label].name,
            # zeros' flat cost would hide under the others: drawn on top, dashed, thicker
            linewidth=2.4 if label == "zeros" else 1.5,
            linestyle="--" if label == "zeros" else "-",
            zorder=5 if label == "zeros" else 2,
        )
    ax.set_xlabel("iteration (full-batch gradient descent step)")
    ax.set_ylabel("cost (cross-entropy, notebook formula)")
    ax.set_title("Circles: cost per init (a missing point: cost = inf)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, ncol=2)
    return fig


def _draw_units(c: Circles, names: Sequence[str]) -> Any:
    """Each member's layer-1 units as points (w₁, w₂): copies fall on one point."""
    weights = c.units  # (M, units, 2)
    members, units = weights.shape[:2]
    cols = min(members, 4)  # a page's width holds four panels with readable text
    rows = -(-members // cols)
    fig, axes = subplots(rows, cols, figsize=(WIDTH, 2.3 * rows + 0.5), squeeze=False)
    for ax in axes.flat[members:]:
        ax.set_visible(False)
    for m in range(members):
        ax = axes[m // cols][m % cols]
        ax.scatter(weights[m, :, 0], weights[m, :, 1], s=14, color=PALETTE[0], alpha=0.7)
        spread = c.runs[c.labels[m]].unit_spread[0]
        ax.set_title(f"{names[m]}\nspread {spread:.1g}", fontsize=8)
        ax.set_xlabel("w₁ (from x₁)", fontsize=7)
        if m % cols == 0:
            ax.set_ylabel("w₂ (from x₂)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.locator_params(nbins=3)  # few tick labels: half the drawing time
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"Circles, after training: the {units} units of layer 1 as points (w₁, w₂);\n"
        "identical units are one point",
        fontsize=9,
    )
    return fig


def _draw_relu_histograms(
    before: Sequence[Tensor], after: Sequence[Tensor], names: Sequence[str]
) -> Any:
    """Per member (row) and hidden layer (column): the ReLU outputs at init and after,
    on one x-axis per layer shared by every member, so a scale that exploded or vanished
    shows as a wide or a collapsed histogram rather than in the tick labels."""
    members, layers = len(names), len(before)
    fig, axes = subplots(
        members,
        layers,
        figsize=(min(WIDTH, 3.6 * layers + 1.2), 1.25 * members + 0.9),
        squeeze=False,
        sharex="col",
    )
    for layer in range(layers):
        values = [
            [t[m].reshape(-1).double().cpu() for m in range(members)]
            for t in (before[layer], after[layer])
        ]
        top = max((float(v.max()) for vs in values for v in vs if v.numel()), default=0.0)
        top = top if top > 0 else 1.0
        edges = torch.linspace(0.0, top, 61)  # the same bins for every member
        for m in range(members):
            ax = axes[m][layer]
            for v, colour, when in (
                (values[0][m], PALETTE[1], "at init"),
                (values[1][m], PALETTE[0], "trained"),
            ):
                counts = torch.histc(v, bins=60, min=0.0, max=top) / max(v.numel(), 1)
                ax.stairs(counts.numpy(), edges.numpy(), color=colour, label=when)
            ax.set_xlim(0.0, top)
            ax.tick_params(labelsize=6)
            ax.locator_params(axis="y", nbins=3)
            if m == 0:
                ax.set_title(f"layer {layer + 1}", fontsize=9)
            if m == members - 1:
                ax.set_xlabel(f"ReLU output of layer {layer + 1}", fontsize=7)
            if layer == 0:
                ax.set_ylabel(f"{names[m]}\nfraction", fontsize=7)
    axes[0][-1].legend(frameon=False, fontsize=6, loc="upper right")
    fig.suptitle(
        "Circles: each hidden layer's ReLU outputs on the training points, at init and\n"
        "after training (one x-axis per layer, shared by every init)",
        fontsize=9,
    )
    return fig


def _draw_tanh_histograms(shots: Sequence[Snapshot], names: Sequence[str]) -> Any:
    """Rows: inits; columns: snapshots; in each panel one histogram per hidden layer."""
    rows, cols = len(names), len(shots)
    layers = shots[0].hist.shape[1]
    # One y scale per row (per init): a log scale, or one scale per panel, costs seconds
    # of drawing here.
    fig, axes = subplots(
        rows,
        cols,
        figsize=(min(WIDTH, 2.6 * cols + 0.8), 1.55 * rows + 0.8),
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
        f"MNIST, {layers} × {MNIST_WIDTHS[1]} tanh: histograms of each hidden layer's outputs\n"
        f"on {MNIST_TEST:,} test images",
        fontsize=10,
    )
    return fig


def _draw_layer_stats(shots: Sequence[Snapshot], names: Sequence[str], threshold: float) -> Any:
    """Per-layer std and saturated fraction, at init (solid) and at the end (dashed). A std
    of exactly 0 (the zeros init) has no place on a log axis: it is drawn on a floor line a
    decade below the smallest positive std, and the floor is labelled "0"."""
    from matplotlib.lines import Line2D

    fig, axes = subplots(1, 2, figsize=(WIDTH, 4.6), layout="constrained")
    first, last = shots[0], shots[-1]
    layers = list(range(1, first.std.shape[1] + 1))
    positive = [v for shot in (first, last) for v in shot.std.flatten().tolist() if v > 0]
    floor = min(positive, default=1.0) / 10
    for m, name in enumerate(names):
        # zeros (std 0, nothing saturated) lies under the others' points: drawn on top
        zeros = name == "zeros"
        line: dict[str, Any] = {"color": PALETTE[m % len(PALETTE)], "markersize": 4}
        line.update(linewidth=2.4 if zeros else 1.5, zorder=5 if zeros else 2)
        for shot, style in ((first, "o-"), (last, "s--")):
            std = [v if v > 0 else floor for v in shot.std[m].tolist()]
            axes[0].plot(layers, std, style, **line)
            axes[1].plot(layers, shot.saturated[m].tolist(), style, **line)
    if any(v <= 0 for shot in (first, last) for v in shot.std.flatten().tolist()):
        axes[0].axhline(floor, color="0.6", linewidth=0.8, zorder=0)
        axes[0].annotate(
            "std 0",
            (1.0, floor),
            xycoords=("axes fraction", "data"),
            xytext=(-3, 3),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=7,
            color="0.4",
        )
    axes[0].set_yscale("log")
    axes[0].set_ylabel("std of the tanh outputs")
    axes[0].set_title("Signal scale by depth", fontsize=10)
    axes[1].set_ylabel(f"fraction with |tanh| > {threshold}")
    axes[1].set_title("Saturated units by depth", fontsize=10)
    axes[1].set_ylim(-0.03, 1.03)
    for ax in axes:
        ax.set_xlabel("hidden layer")
        ax.set_xticks(layers)
        ax.grid(alpha=0.3)
    # Colour names the init, the line style the time: two short legends, not twelve lines.
    inits = [Line2D([], [], color=PALETTE[m % len(PALETTE)], label=n) for m, n in enumerate(names)]
    times = [
        Line2D([], [], color="0.3", linestyle="-", marker="o", markersize=4, label="at init"),
        Line2D(
            [], [], color="0.3", linestyle="--", marker="s", markersize=4, label=f"step {last.step}"
        ),
    ]
    fig.legend(
        handles=inits + times,
        loc="outside lower center",
        ncol=len(inits) + 2,
        frameon=False,
        fontsize=7,
        handlelength=1.8,
        columnspacing=1.0,
    )
    return fig


def _draw_mnist_training(mn: Mnist, names: Sequence[str]) -> Any:
    fig, axes = subplots(1, 2, figsize=(WIDTH, 4.4), layout="constrained")
    for m, name in enumerate(names):
        colour = PALETTE[m % len(PALETTE)]
        # zeros' flat curves would hide under the others: drawn on top, dashed, thicker
        zeros = name == "zeros"
        line = {
            "linestyle": "--" if zeros else "-",
            "zorder": 5 if zeros else 2,
        }
        y = torch.where(torch.isfinite(mn.loss[:, m]), mn.loss[:, m], torch.nan)
        axes[0].plot(
            mn.loss_steps.numpy(),
            y.numpy(),
            color=colour,
            label=name,
            linewidth=2.2 if zeros else 1.2,
            **line,
        )
        axes[1].plot(
            [s.step for s in mn.shots],
            [float(s.accuracy[m]) for s in mn.shots],
            marker=MARKERS[m % len(MARKERS)],
            color=colour,
            label=name,
            linewidth=2.4 if zeros else 1.5,
            **line,
        )
    axes[0].set_yscale("log")
    axes[0].set_xlabel(f"SGD step (batch of {MNIST_BATCH})")
    axes[0].set_ylabel("training loss on the batch (cross-entropy)")
    axes[0].set_title("MNIST: cost per init", fontsize=10)
    axes[1].set_xlabel("SGD step")
    axes[1].set_ylabel(f"test accuracy ({MNIST_TEST:,} images)")
    axes[1].set_title("MNIST: test accuracy during training", fontsize=10)
    axes[1].set_ylim(0, 1)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.legend(
        handles=axes[1].get_lines(),
        loc="outside lower center",
        ncol=len(names),
        frameon=False,
        fontsize=7,
    )
    return fig


# --------------------------------------------------------------------------- findings


def findings(facts: Facts) -> list[str]:
    """The lesson's findings, as sentences formatted from the facts; each verdict word
    (identical, vanished, saturated) is chosen by the numbers, not assumed."""
    c, mn = facts.circles.runs, facts.mnist.runs
    he, zeros, ones, small_c, large_c = (c[k] for k in ("he", "zeros", "ones", "small", "random"))
    xs, hs, zs, ss, ls, us = (
        mn[k] for k in ("Xavier", "He", "zeros", "small ×0.01", "large ×10", "uniform")
    )
    steps, iters = facts.mnist.steps, facts.circles.steps
    log2 = math.log(2)
    zeros_cost = f"{zeros.final_cost:.4f}" + (
        " = log 2" if abs(zeros.final_cost - log2) < 1e-12 else ""
    )
    zeros_same = max(zeros.unit_spread) == 0.0
    ones_rel = max(
        s / w if w > 0 else 0.0 for s, w in zip(ones.unit_spread, ones.weight_scale, strict=True)
    )
    ones_same = ones_rel < 1e-12 and max(ones.distinct_units) == 1
    shrink = ss.std_init[-1] / ss.std_init[0]
    saturated = min(ls.saturated_init)
    random_1000 = dict(large_c.costs).get(1000)
    chaos = (
        ""
        if random_1000 is None
        else " From there the run is chaotic: its cost depends on the CPU's rounding — at "
        f"iteration 1,000 here {random_1000:.3g}, the notebook printed "
        f"{RANDOM_COST_1000_PUBLISHED:.3g}."
    )
    return [
        f"On circles He reached {he.train_accuracy:.1%} train and {he.test_accuracy:.0%} "
        f"test accuracy after {iters:,} iterations; zero init stayed at "
        f"{zeros.train_accuracy:.0%} (cost {zeros_cost}) and its hidden units "
        + ("stayed identical" if zeros_same else "drifted apart")
        + f" (largest difference between two units' weights: {max(zeros.unit_spread):.3g}).",
        "Ones "
        + ("did not break symmetry either" if ones_same else "broke symmetry")
        + ": after training "
        + _units_apart(ones_rel)
        + f"; the probe found {' and '.join(map(str, ones.distinct_units))} distinct units "
        f"in layers 1 and 2, and it reached {ones.train_accuracy:.1%} train accuracy.",
        "Small random (×0.01) "
        + ("vanished" if shrink < 0.05 else "kept its signal")
        + f": in the MNIST tanh net the activations' std fell from {ss.std_init[0]:.2g} at "
        f"layer 1 to {ss.std_init[-1]:.2g} at layer {len(ss.std_init)} at init "
        f"({shrink:.1g}×); {ss.test_accuracy:.0%} test accuracy after {steps} steps; on "
        f"circles its cost was {small_c.final_cost:.4f} after {iters:,} iterations.",
        "Large random (×10) "
        + ("saturated" if saturated > 0.5 else "did not saturate")
        + f": at init {saturated:.0%} or more of every MNIST layer's tanh outputs had "
        f"|a| > {facts.mnist.saturation_threshold}; its loss started at {ls.first_loss:.3g} "
        f"and still jumped between {ls.tail_loss_min:.3g} and {ls.tail_loss_max:.3g} "
        f"over its last {ls.tail_steps} logged steps ({ls.test_accuracy:.0%} test "
        f"accuracy); on circles the notebook's cost started at {large_c.first_cost}"
        + (" (the output sigmoid rounded to exactly 1)." if large_c.first_cost == math.inf else ".")
        + chaos,
        f"On MNIST after {steps} steps: Xavier {xs.test_accuracy:.1%} and He "
        f"{hs.test_accuracy:.1%} test accuracy; uniform U(±1/√fan_in) "
        f"{us.test_accuracy:.1%} (its signal shrank {1 / us.std_factor_init:.2g}× per "
        f"layer at init); zeros {zs.test_accuracy:.1%} with "
        f"{_units(max(zs.distinct_units))} per layer; small "
        f"{ss.test_accuracy:.1%}; large {ls.test_accuracy:.1%}.",
    ]


def _units_apart(rel: float) -> str:
    """How far apart a layer's units ended, ``rel`` being the largest difference between
    two units' weights over the weights' size, said in words a reader can check."""
    if rel == 0.0:
        return "its units were exact copies of one another (no two differed at all)"
    if rel < 1e-12:
        return f"its units differed only by rounding (at most {rel:.1g} times the weights' size)"
    return f"its units differed by up to {rel:.2g} times the weights' size"


def _units(n: int) -> str:
    return f"{n} distinct unit" + ("" if n == 1 else "s")


def printed(facts: Facts) -> Sequence[str]:
    """The printed output: the notebook's three runs as it prints them, then the rest."""
    return facts.circles.lines
