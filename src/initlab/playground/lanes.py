"""A playground lane's settings: their checks and messages, the presets, the limits, and
the equivalent ``initlab train`` command.

A lane is what one configuration of the page trains. Every field is checked here, by
pydantic, with a message in the page's words: the control's label, what it takes, what
it got and how to fix it. The HTTP API and the WebSocket send the same text.

Example:
    >>> lane = Lane(init="xavier_normal", activation="tanh", lr=0.5)
    >>> lane.hidden, lane.batch_size
    ([10, 5], 'full')
    >>> check_lanes([{"lr": -1}])
    Traceback (most recent call last):
    ...
    initlab.playground.lanes.LaneErrors: Lane 1, Learning rate: expected a number > 0,
    e.g. 0.1. Got -1.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from initlab import init as initmod
from initlab.train import OPTIMIZERS, schedule_factor

__all__ = [
    "ACTIVATIONS",
    "BATCH_SIZES",
    "DATASETS",
    "INIT_MENU",
    "LABELS",
    "LIMITS",
    "PRESETS",
    "Lane",
    "LaneErrors",
    "LaneProblem",
    "Preset",
    "check_lanes",
    "command",
    "command_note",
    "options",
    "stack_key",
]

#: The data sets the page offers; the 2-D ones get a decision map.
DATASETS: tuple[str, ...] = ("circles", "moons", "xor", "spiral", "blobs", "digits", "mnist")
TWO_D: frozenset[str] = frozenset({"circles", "moons", "xor", "spiral", "blobs"})
ACTIVATIONS: tuple[str, ...] = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu", "selu", "linear")
BATCH_NORMS: tuple[str, ...] = ("none", "before", "after")
CLIPS: tuple[str, ...] = ("none", "value", "norm", "adaptive")
#: What the Batch size menu offers; the server takes any k ≥ 1.
BATCH_SIZES: tuple[str, ...] = ("full", "1", "8", "16", "32", "64", "128")
SCHEDULES: tuple[str, ...] = ("constant", "step_decay(1000)", "exponential(0.99)", "cosine(100)")
#: The Init menu: (label, spec). "custom spec…" lets the user type any spec.
INIT_MENU: tuple[tuple[str, str], ...] = (
    ("zeros", "zeros"),
    ("ones", "ones"),
    ("small ×0.01", "normal(std=0.01)"),
    ("large ×10", "normal(std=10)"),
    ("uniform U(±1/√fan_in)", "torch_default"),
    ("Xavier", "xavier_normal"),
    ("He", "he_normal"),
    ("LeCun", "lecun_normal"),
    ("orthogonal", "orthogonal"),
    ("LSUV", "lsuv"),
)


@dataclass(frozen=True)
class Limits:
    """What one page may ask of the machine."""

    lanes: int = 8
    width: int = 512
    depth: int = 12  # hidden layers
    pages: int = 4  # pages open at once
    points: tuple[int, int] = (50, 5000)


LIMITS = Limits()

#: The controls' labels, by field: every message names the control the user sees.
LABELS: dict[str, str] = {
    "data": "Data",
    "noise": "Noise",
    "points": "Points",
    "train_share": "Train share",
    "hidden": "Hidden layers",
    "activation": "Activation",
    "init": "Init",
    "bias_init": "Bias init",
    "batch_norm": "Batch norm",
    "batch_size": "Batch size",
    "optimizer": "Optimizer",
    "lr": "Learning rate",
    "schedule": "Schedule",
    "clip": "Clipping",
    "clip_threshold": "Clip threshold",
    "seed": "Seed",
}


def _shown(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "…"


class _FieldError(ValueError):
    """A bad value, with the field it belongs to (a check of several fields raises it
    where pydantic knows no field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _bad(field: str, expected: str, got: object, fix: str = "") -> ValueError:
    message = f"{LABELS[field]}: expected {expected}. Got {_shown(got)}."
    return _FieldError(field, f"{message} {fix}" if fix else message)


def _number(field: str, value: object, expected: str) -> float:
    if isinstance(value, bool):
        raise _bad(field, expected, value)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _bad(field, expected, value) from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(field, expected, value)
    return float(value)


def _integer(field: str, value: object, expected: str) -> int:
    number = _number(field, value, expected)
    if number != int(number):
        raise _bad(field, expected, value)
    return int(number)


def _within(
    field: str, value: object, expected: str, ok: Callable[[float], bool], *, whole: bool = False
) -> float:
    """``value`` as a number (a whole one with ``whole``) for which ``ok`` holds."""
    number = (_integer if whole else _number)(field, value, expected)
    if not ok(number):
        raise _bad(field, expected, value)
    return number


def _choice(field: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value.strip().lower() not in choices:
        raise _bad(field, f"one of {', '.join(choices)}", value)
    return value.strip().lower()


def _spec(field: str, value: object, extra: Sequence[str] = ()) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad(field, "an init spec such as he_normal or normal(std=0.01)", value)
    text = value.strip()
    if text.lower() in extra:
        return text.lower()
    try:
        initmod.parse_spec(text)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{LABELS[field]}: {error}") from None
    return text


class Lane(BaseModel):
    """One configuration of the playground: what it trains and how.

    Every field has a default; the checks turn any bad value into a message naming the
    control (:data:`LABELS`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Literal["circles", "moons", "xor", "spiral", "blobs", "digits", "mnist"] = "circles"
    noise: float = 0.1
    points: int = 400
    train_share: float = 0.5
    hidden: list[int] = [10, 5]
    activation: str = "relu"
    init: str = "he_normal"
    bias_init: str = "zeros"
    batch_norm: Literal["none", "before", "after"] = "none"
    batch_size: Literal["full"] | int = "full"
    optimizer: str = "sgd"
    lr: float = 0.1
    schedule: str = "constant"
    clip: Literal["none", "value", "norm", "adaptive"] = "none"
    clip_threshold: float = 1.0
    seed: int = 0

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, value: object) -> str:
        return _choice("data", value, DATASETS)

    @field_validator("noise", mode="before")
    @classmethod
    def _noise(cls, value: object) -> float:
        return _within("noise", value, "a number from 0 to 1", lambda x: 0 <= x <= 1)

    @field_validator("points", mode="before")
    @classmethod
    def _points(cls, value: object) -> int:
        low, high = LIMITS.points
        expected = f"a whole number from {low} to {high:,}"
        return int(_within("points", value, expected, lambda x: low <= x <= high, whole=True))

    @field_validator("train_share", mode="before")
    @classmethod
    def _train_share(cls, value: object) -> float:
        expected = "a fraction from 0.1 to 0.9 (the rest is the test set)"
        return _within("train_share", value, expected, lambda x: 0.1 <= x <= 0.9)

    @field_validator("hidden", mode="before")
    @classmethod
    def _hidden(cls, value: object) -> list[int]:
        expected = (
            f"up to {LIMITS.depth} widths from 1 to {LIMITS.width}, separated by commas "
            "(e.g. 10,5; empty for none)"
        )
        parts: list[object]
        if isinstance(value, str):
            parts = [p for p in value.replace(" ", "").split(",") if p]
        elif isinstance(value, list | tuple):
            parts = list(value)
        else:
            raise _bad("hidden", expected, value)
        if len(parts) > LIMITS.depth:
            raise _bad("hidden", expected, value, f"That is {len(parts)} layers.")
        widths = []
        for part in parts:
            width = _integer("hidden", part, expected) if not isinstance(part, bool) else 0
            if not 1 <= width <= LIMITS.width:
                raise _bad("hidden", expected, value)
            widths.append(width)
        return widths

    @field_validator("activation", mode="before")
    @classmethod
    def _activation(cls, value: object) -> str:
        return _choice("activation", value, ACTIVATIONS)

    @field_validator("init", mode="before")
    @classmethod
    def _init(cls, value: object) -> str:
        return _spec("init", value, extra=("lsuv",))

    @field_validator("bias_init", mode="before")
    @classmethod
    def _bias_init(cls, value: object) -> str:
        return _spec("bias_init", value)

    @field_validator("batch_norm", mode="before")
    @classmethod
    def _batch_norm(cls, value: object) -> str:
        return _choice("batch_norm", "none" if value is None else value, BATCH_NORMS)

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: object) -> str | int:
        expected = "full (batch GD), 1 (SGD) or a mini-batch size k ≥ 1"
        if isinstance(value, str) and value.strip().lower() == "full":
            return "full"
        size = _integer("batch_size", value, expected)
        if size < 1:
            raise _bad("batch_size", expected, value)
        return size

    @field_validator("optimizer", mode="before")
    @classmethod
    def _optimizer(cls, value: object) -> str:
        return _choice("optimizer", value, OPTIMIZERS)

    @field_validator("lr", mode="before")
    @classmethod
    def _lr(cls, value: object) -> float:
        return _within("lr", value, "a number > 0, e.g. 0.1", lambda x: x > 0)

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, value: object) -> str:
        expected = f"a schedule: {', '.join(SCHEDULES)}"
        if not isinstance(value, str):
            raise _bad("schedule", expected, value)
        try:
            schedule_factor(value.strip(), 0)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{LABELS['schedule']}: {error}") from None
        return value.strip()

    @field_validator("clip", mode="before")
    @classmethod
    def _clip(cls, value: object) -> str:
        return _choice("clip", "none" if value is None else value, CLIPS)

    @field_validator("clip_threshold", mode="before")
    @classmethod
    def _clip_threshold(cls, value: object) -> float:
        return _within("clip_threshold", value, "a number > 0, e.g. 1", lambda x: x > 0)

    @field_validator("seed", mode="before")
    @classmethod
    def _seed(cls, value: object) -> int:
        expected = "a whole number from 0 to 2³² − 1"
        return int(_within("seed", value, expected, lambda x: 0 <= x < 2**32, whole=True))

    @model_validator(mode="after")
    def _together(self) -> Lane:
        if self.data == "mnist" and (self.batch_size == "full" or self.batch_size > 1024):
            raise _bad(
                "batch_size",
                "a mini-batch of at most 1,024 for MNIST (60,000 examples a step would hold "
                "the page for seconds per step)",
                self.batch_size,
            )
        if self.batch_size != "full" and self.data in TWO_D:
            # as the loaders split: round(test share · n) test points, the rest train
            train = self.points - round(round(1 - self.train_share, 6) * self.points)
            if self.batch_size > train:
                raise _bad(
                    "batch_size",
                    f"at most the {train} training points",
                    self.batch_size,
                    "Choose full for batch gradient descent.",
                )
        return self

    @property
    def two_d(self) -> bool:
        """Whether the data is 2-D (the page draws its decision map)."""
        return self.data in TWO_D

    @property
    def classes(self) -> int:
        return 10 if self.data in ("digits", "mnist") else 2

    @property
    def features(self) -> int:
        return {"digits": 64, "mnist": 784}.get(self.data, 2)

    @property
    def widths(self) -> list[int]:
        """[in, hidden…, out]: one logit for two classes (binary cross-entropy)."""
        return [self.features, *self.hidden, 1 if self.classes == 2 else self.classes]

    @property
    def loss(self) -> Literal["bce", "cross_entropy"]:
        return "bce" if self.classes == 2 else "cross_entropy"

    @property
    def engine_clip(self) -> Literal["value", "norm", "agc"] | None:
        """The engine's name of the clipping kind (adaptive is AGC)."""
        kinds: dict[str, Literal["value", "norm", "agc"] | None] = {
            "none": None,
            "value": "value",
            "norm": "norm",
            "adaptive": "agc",
        }
        return kinds[self.clip]

    def data_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`initlab.data.load` for this lane's data.

        The data never depends on the lane's seed: every lane sees the same points."""
        test = round(1 - self.train_share, 6)
        if self.two_d:
            return {"n": self.points, "noise": self.noise, "test_size": test, "seed": 0}
        if self.data == "digits":
            return {"test_size": test, "seed": 0}
        return {}


@dataclass(frozen=True)
class LaneProblem:
    """One bad value: which lane (0-based; None for the page), which field, the message."""

    lane: int | None
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"lane": self.lane, "field": self.field, "message": self.message}


class LaneErrors(ValueError):
    """Bad lanes: every problem found, each with its lane, field and message."""

    def __init__(self, problems: Sequence[LaneProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            "; ".join(
                (f"Lane {p.lane + 1}, " if p.lane is not None else "") + p.message
                for p in self.problems
            )
        )


def _problems(lane: int | None, error: ValidationError) -> list[LaneProblem]:
    problems = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        field = loc[0] if loc else None
        if item["type"] == "extra_forbidden":
            message = (
                f"Unknown setting {field!r}. Known: {', '.join(LABELS)}."
                if field
                else "Unknown setting."
            )
        elif item["type"] == "value_error":
            error_ = item["ctx"]["error"]
            message = str(error_)
            field = getattr(error_, "field", field)
        else:
            label = LABELS.get(field or "", field or "the lane")
            message = f"{label}: {item['msg']}. Got {_shown(item.get('input'))}."
        problems.append(LaneProblem(lane, field if field in LABELS else None, message))
    return problems


def check_lanes(lanes: object) -> list[Lane]:
    """Check a page's lanes: a list of 1 to :attr:`Limits.lanes` objects.

    Raises:
        LaneErrors: with every problem found (each lane's).
    """
    if not isinstance(lanes, list | tuple) or not lanes:
        raise LaneErrors([LaneProblem(None, None, "Expected a list of 1 to 8 lanes.")])
    if len(lanes) > LIMITS.lanes:
        raise LaneErrors(
            [
                LaneProblem(
                    None,
                    None,
                    f"At most {LIMITS.lanes} lanes train at once. Got {len(lanes)}: "
                    "remove one before adding another.",
                )
            ]
        )
    checked, problems = [], []
    for i, lane in enumerate(lanes):
        if isinstance(lane, Lane):
            checked.append(lane)
            continue
        if not isinstance(lane, Mapping):
            problems.append(LaneProblem(i, None, f"A lane is an object. Got {_shown(lane)}."))
            continue
        try:
            checked.append(Lane.model_validate(dict(lane)))
        except ValidationError as error:
            problems += _problems(i, error)
    if problems:
        raise LaneErrors(problems)
    return checked


def stack_key(lane: Lane) -> tuple[Any, ...]:
    """What lanes must share to train as one stack (the engine varies the rest per
    member: init, bias init, optimizer, learning rate, schedule, threshold, seed)."""
    return (
        lane.data,
        tuple(sorted(lane.data_options().items())),
        tuple(lane.hidden),
        lane.activation,
        lane.batch_norm,
        lane.batch_size,
        lane.clip,
    )


def command(lane: Lane, steps: int = 1000) -> str:
    """The ``initlab train`` command that trains this lane alone.

    Example:
        >>> print(command(Lane(init="normal(std=10)", lr=0.5), steps=300))
        initlab train --data 'circles(n=400, noise=0.1, test_size=0.5)' --model 2,10,5,1
        --activation relu --init 'normal(std=10)' --bias-init zeros --lr 0.5 --optimizer sgd
        --batch-size full --steps 300
    """
    options = lane.data_options()
    options.pop("seed", None)
    data: str = lane.data
    if options:
        data += "(" + ", ".join(f"{k}={v!r}" for k, v in options.items()) + ")"
    parts = [
        "initlab train",
        f"--data {shlex.quote(data)}",
        f"--model {','.join(str(w) for w in lane.widths)}",
        f"--activation {lane.activation}",
    ]
    if lane.batch_norm != "none":
        parts.append(f"--batch-norm {lane.batch_norm}")
    parts += [
        # initlab train has no LSUV: its orthogonal start (see command_note)
        f"--init {shlex.quote('orthogonal' if lane.init == 'lsuv' else lane.init)}",
        f"--bias-init {shlex.quote(lane.bias_init)}",
        f"--lr {lane.lr!r}",
        f"--optimizer {lane.optimizer}",
        f"--batch-size {lane.batch_size}",
    ]
    if lane.schedule != "constant":
        parts.append(f"--schedule {shlex.quote(lane.schedule)}")
    if lane.engine_clip is not None:
        parts.append(f"--clip {lane.engine_clip} --clip-threshold {lane.clip_threshold!r}")
    if lane.seed:
        parts.append(f"--seed {lane.seed}")
    parts.append(f"--steps {steps}")
    return " ".join(parts)


def command_note(lane: Lane) -> str | None:
    """What :func:`command` cannot carry over, in words (None: nothing)."""
    if lane.init == "lsuv":
        return (
            "initlab train has no LSUV: this command starts from the orthogonal weights LSUV "
            "starts from, without LSUV's rescaling (initlab.lsuv.lsuv(model, batch) does it "
            "in Python)."
        )
    return None


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """One click: a title, what it shows, and its lanes (fields over the defaults)."""

    id: str
    title: str
    description: str
    lanes: tuple[dict[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        lanes = [Lane.model_validate(lane).model_dump() for lane in self.lanes]
        return {"id": self.id, "title": self.title, "description": self.description, "lanes": lanes}


_CIRCLES = {"data": "circles", "noise": 0.05, "points": 400, "train_share": 0.75}
_NOTEBOOK = {**_CIRCLES, "hidden": [10, 5], "activation": "relu", "lr": 0.1, "seed": 1}
_MNIST = {"data": "mnist", "hidden": [300, 300, 300, 300], "activation": "tanh", "lr": 0.01}
_MNIST = {**_MNIST, "batch_size": 64}

_MOONS = {**_CIRCLES, "data": "moons"}
# A [2, 32, 32, 32, 1] ReLU net on moons at learning rate 2: its plain run diverges
# within 15 steps; batch norm or gradient-norm clipping at 1 train it (measured: test
# accuracy 1.0 after 2,000 steps).
_FAST = {**_MOONS, "hidden": [32, 32, 32], "init": "he_normal", "lr": 2.0, "batch_size": 32}

PRESETS: tuple[Preset, ...] = (
    Preset(
        "notebook",
        "Zeros vs ×10 vs He",
        "The initialization notebook: zeros never break symmetry (the cost stays at ln 2), "
        "N(0, 10²) starts with an exploding signal and a huge cost, He trains.",
        (
            {**_NOTEBOOK, "init": "zeros"},
            {**_NOTEBOOK, "init": "normal(std=10)"},
            {**_NOTEBOOK, "init": "he_normal"},
        ),
    ),
    Preset(
        "scales",
        "Too small / appropriate / too large",
        "A [2, 6, 3, 1] tanh net from N(0, 0.01²) (the signal vanishes: stuck at ln 2), "
        "Xavier (trains), and N(0, 3²) (saturated tanh units: slow and worse).",
        tuple(
            {**_CIRCLES, "hidden": [6, 3], "activation": "tanh", "lr": 0.1, "init": spec}
            for spec in ("normal(std=0.01)", "xavier_normal", "normal(std=3)")
        ),
    ),
    Preset(
        "mnist-glorot",
        "MNIST tanh: zeros / uniform / Xavier / N(0, 1)",
        "A [784, 300, 300, 300, 300, 10] tanh net as in Glorot & Bengio (2010): watch the "
        "activation histograms of each layer.",
        tuple(
            {**_MNIST, "init": spec}
            for spec in ("zeros", "torch_default", "xavier_normal", "normal(std=1)")
        ),
    ),
    Preset(
        "batchnorm",
        "Batch norm vs none at a high rate",
        "At learning rate 2 the plain net diverges within a few steps; with batch norm the "
        "same net trains (Ioffe & Szegedy 2015).",
        tuple({**_FAST, "batch_norm": bn} for bn in ("none", "before")),
    ),
    Preset(
        "batching",
        "Batch GD vs mini-batch vs SGD",
        "The whole set per step is smooth and slow; one example per step is noisy and fast; "
        "mini-batches sit between.",
        tuple(
            {**_MOONS, "hidden": [16, 8], "lr": 0.05, "batch_size": size}
            for size in ("full", 16, 1)
        ),
    ),
    Preset(
        "clipping",
        "Clipping rescues a diverging run",
        "The net that diverges at learning rate 2, without and with its gradient's norm "
        "clipped at 1.",
        tuple({**_FAST, "clip": clip} for clip in ("none", "norm")),
    ),
)


def options() -> dict[str, Any]:
    """What the page's menus offer, the limits and the presets (the ``hello`` message)."""
    return {
        "limits": {
            "lanes": LIMITS.lanes,
            "width": LIMITS.width,
            "depth": LIMITS.depth,
            "pages": LIMITS.pages,
            "points": list(LIMITS.points),
        },
        "options": {
            "data": list(DATASETS),
            "activation": list(ACTIVATIONS),
            "init": [{"label": label, "spec": spec} for label, spec in INIT_MENU],
            "batch_norm": list(BATCH_NORMS),
            "batch_size": list(BATCH_SIZES),
            "optimizer": list(OPTIMIZERS),
            "schedule": list(SCHEDULES),
            "clip": list(CLIPS),
            "labels": LABELS,
        },
        "presets": [p.as_dict() for p in PRESETS],
        "default_lane": Lane().model_dump(),
    }
