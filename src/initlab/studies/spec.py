"""What a study runs: fixed fields, grid axes, zipped axes and random draws, from a
command line (``key=value`` tokens) or a TOML file, checked before anything runs.

A study expands into run configs (:meth:`Study.points`): plain JSON dicts with every known
field (:data:`FIELDS`) filled (``probe_every`` only when set), so that one config means
one run whatever way it was written. A run's id (:func:`run_id`) is a hash of its
canonical JSON: the same config gives the same id in every study, so a study that grows
an axis reuses the runs it has done.

The command-line grammar (one token per field, as Hydra's multirun):

==================================================  =========================================
token                                               means
==================================================  =========================================
``lr=0.1``                                          a fixed field (one value)
``lr=0.1,0.01,0.001``                               a grid axis: commas outside (), [] and
                                                    quotes separate values
``init=he_normal,'normal(std=0.01)'``               parentheses (and quotes) keep commas
``seed=range(5)``, ``steps=range(100,1001,300)``    ``range(a, b[, step])``: integers, b excluded
``model=2,10,5,1``                                  one net (a width list: inputs, hidden…,
                                                    outputs): without brackets, the commas of
                                                    ``model`` are its widths
``model=[2,10,1],[2,10,5,1]``                       an axis of nets: each in brackets
``'zip(lr=0.1,0.01; batch_size=64,32)'``            axes that move together: ``;`` between
                                                    fields, the same number of values each
``lr=loguniform(1e-4,1)``, ``momentum=uniform(0,1)``  random draws, one per sample (``samples``)
``seed=randint(0,1000)``                            a random integer in [a, b)
``init=choice(he_normal,xavier_normal)``            a random one of the values
==================================================  =========================================

A value is read as an integer, else a number, else ``true``/``false``, else text; a value
in quotes is always text (``data='3'``). ``uniform(…)`` is a random draw only on a number
field: on ``init`` and ``bias_init`` it is the init scheme. Quote a token that holds
parentheses or ``;`` in a shell.

The points are the product of the grid axes (in the order given), then of the zip groups,
then the samples, the last varying fastest; duplicates are dropped (first kept). Sample
``i`` draws each random field from its own stream, seeded by (``seed``, ``i``, field), so
more samples keep the first ones, and a new random field leaves the others' draws alone.

Example:
    >>> study = parse_overrides(["lr=0.1,0.01", "seed=range(2)", "steps=100"])
    >>> [(p["lr"], p["seed"]) for p in study.points()]
    [(0.1, 0), (0.1, 1), (0.01, 0), (0.01, 1)]
    >>> run_id(study.points()[0])  # doctest: +SKIP
    '…16 hex digits…'
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import math
import random
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from initlab._spec import parse_call
from initlab._validation import did_you_mean

__all__ = [
    "FIELDS",
    "Distribution",
    "Field",
    "Study",
    "canonical_json",
    "load_toml",
    "parse_overrides",
    "run_id",
]

# The most points a study may expand into: more is a typo (range(10**9)), and the list of
# configs alone would fill memory.
MAX_POINTS = 1_000_000
_MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit; torch's take these too
_MAX_STEPS = 10**9  # as the CLI: more steps would take days even for the smallest net

# --------------------------------------------------------------------------- field checks


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:120] + "…"


def _expect(
    expected: str, got: object, fix: str = "", *, kind: type[Exception] = ValueError
) -> Exception:
    message = f"expected {expected}. Got {_shown(got)}."
    return kind(f"{message} {fix}" if fix else message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_check(low: int, high: int, what: str = "", optional: bool = False) -> Callable[[Any], Any]:
    expected = f"an integer from {low:,} to {high:,}" + (" or none" if optional else "")
    expected = f"{what}: {expected}" if what else expected

    def check(value: Any) -> Any:
        if optional and (value is None or value == "none"):
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 3e3 on a command line, or in TOML
        if not _is_int(value):
            raise _expect(expected, value, kind=TypeError)
        if not low <= value <= high:
            raise _expect(expected, value)
        return value

    return check


def _real_check(
    low: float, *, low_open: bool = False, high: float | None = None, optional: bool = False
) -> Callable[[Any], Any]:
    expected = f"a finite number {'>' if low_open else '>='} {low:g}"
    expected += f" and <= {high:g}" if high is not None else ""
    expected += " or none" if optional else ""

    def check(value: Any) -> Any:
        if optional and (value is None or value == "none"):
            return None
        if not _is_real(value):
            raise _expect(expected, value, kind=TypeError)
        number = float(value)  # 1 and 1.0 are one run
        bad = not math.isfinite(number) or number < low or (low_open and number == low)
        if bad or (high is not None and number > high):
            raise _expect(expected, value)
        return number

    return check


def _choice_check(choices: Sequence[str]) -> Callable[[Any], Any]:
    expected = "one of " + ", ".join(map(repr, choices))

    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise _expect(expected, value, kind=TypeError)
        if value not in choices:
            raise _expect(expected, value, did_you_mean(value, choices).strip())
        return value

    return check


def _lazy_choice(choices: Callable[[], Sequence[str]]) -> Callable[[Any], Any]:
    """A choice among names read from a module that imports torch, on first use."""
    return lambda value: _choice_check(choices())(value)


def _bool_check(value: Any) -> Any:
    if not isinstance(value, bool):
        raise _expect("true or false", value, kind=TypeError)
    return value


def _widths_check(value: Any) -> Any:
    expected = "a list of at least two widths (integers >= 1): inputs, hidden…, outputs"
    fix = "e.g. model=2,10,5,1 (one net) or model=[2,10,1],[2,10,5,1] (an axis of nets)."
    if not isinstance(value, list | tuple) or not all(_is_int(w) for w in value):
        raise _expect(expected, value, fix, kind=TypeError)
    if len(value) < 2 or min(value) < 1:
        raise _expect(expected, value, fix)
    return list(value)


def _batch_check(value: Any) -> Any:
    expected = "'full' (batch GD), 1 (SGD) or an integer k >= 1 (mini-batch)"
    if value == "full":
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not _is_int(value):
        raise _expect(expected, value, kind=TypeError if not isinstance(value, str) else ValueError)
    if value < 1:
        raise _expect(expected, value)
    return value


def _call_text(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """``name(a, k=v)``, keyword arguments sorted: one text for one call."""
    shown = [repr(a) for a in args] + [f"{k}={kwargs[k]!r}" for k in sorted(kwargs)]
    return f"{name}({', '.join(shown)})" if shown else name


def _init_check(value: Any) -> Any:
    from initlab.init import parse_spec

    if not isinstance(value, str):
        raise _expect(
            "an init spec (text), e.g. 'he_normal' or 'normal(std=0.01)'", value, kind=TypeError
        )
    spec = parse_spec(value)  # its errors name the scheme or argument and the nearest
    return _call_text(spec.name, [], spec.kwargs)


def _schedule_check(value: Any) -> Any:
    from initlab.train import schedule_factor

    expected = "a schedule: constant, step_decay(1000), exponential(0.99) or cosine(100)"
    if not isinstance(value, str):
        raise _expect(expected, value, kind=TypeError)
    schedule_factor(value, 0)  # checks the spec; its errors say what is wrong
    name, args, kwargs = parse_call(value, "Schedule", "'step_decay(1000)'")
    return _call_text(name, args, kwargs)


def _data_check(value: Any) -> Any:
    from initlab import data as data_mod

    expected = "a data set, name or name(key=value, …), e.g. 'circles(n=400, noise=0.1)'"
    if not isinstance(value, str):
        raise _expect(expected, value, kind=TypeError)
    name, paren, _ = value.partition("(")
    name = name.strip()
    _choice_check(data_mod.DATASETS)(name)
    if not paren:
        return name
    _, args, options = parse_call(value, "Data spec", "'circles(n=400, noise=0.1)'")
    if args:
        raise _expect(expected, value, "Name each option: key=value.")
    known = data_mod._options(data_mod._LOADERS[name])
    for key in options:
        if key not in known:
            raise ValueError(
                f"unknown option {key!r} for the data set {name!r}.{did_you_mean(key, known)} "
                f"Known: {', '.join(known)}."
            )
    return _call_text(name, [], options)


def _loss_check(value: Any) -> Any:
    from initlab.train import LOSSES

    return _choice_check(("auto", *LOSSES))(value)


def _optimizers() -> Sequence[str]:
    from initlab.train import OPTIMIZERS

    return OPTIMIZERS


def _activations() -> Sequence[str]:
    from initlab.models import ACTIVATIONS

    return tuple(ACTIVATIONS)


Kind = Literal["text", "int", "real", "bool", "widths", "batch"]


@dataclass(frozen=True)
class Field:
    """One field of a run config: its default, what it takes, and its check."""

    default: Any  # the value of a run that does not set it (plain JSON)
    kind: Kind  # what sweep functions apply: range/randint on int, uniform on real
    help: str  # what it is, for messages and documentation
    check: Callable[[Any], Any] = field(repr=False)  # value → canonical value, or raises


#: Every field a run config has, with its default (what the engine takes; see
#: :class:`initlab.train.TrainConfig`, :func:`initlab.models.mlp` and ``initlab train``).
FIELDS: Mapping[str, Field] = {
    "data": Field(
        "circles", "text", "data set, with options: 'circles(n=400, noise=0.1)'", _data_check
    ),
    "model": Field([2, 10, 5, 1], "widths", "MLP widths: inputs, hidden…, outputs", _widths_check),
    "activation": Field(
        "relu", "text", "hidden activation: relu, tanh, …", _lazy_choice(_activations)
    ),
    "batch_norm": Field(
        "none",
        "text",
        "none, before or after the activation",
        _choice_check(("none", "before", "after")),
    ),
    "init": Field("he_normal", "text", "weight init spec", _init_check),
    "bias_init": Field("zeros", "text", "bias init spec", _init_check),
    "optimizer": Field(
        "sgd", "text", "sgd, momentum, nesterov, rmsprop, adam, adamw", _lazy_choice(_optimizers)
    ),
    "lr": Field(0.01, "real", "initial learning rate", _real_check(0.0, low_open=True)),
    # Only momentum and nesterov read it: other optimizers' configs hold None.
    "momentum": Field(0.9, "real", "β of momentum and nesterov", _real_check(0.0, high=1.0)),
    "weight_decay": Field(0.0, "real", "L2 (AdamW: decoupled)", _real_check(0.0)),
    "schedule": Field("constant", "text", "learning-rate schedule per epoch", _schedule_check),
    "batch_size": Field("full", "batch", "'full', 1 or k examples a step", _batch_check),
    "drop_last": Field(False, "bool", "drop each epoch's last, smaller batch", _bool_check),
    "loss": Field("auto", "text", "auto, cross_entropy, bce or mse", _loss_check),
    "clip": Field(
        "none", "text", "none, value, norm or agc", _choice_check(("none", "value", "norm", "agc"))
    ),
    # Read only with a clip: unclipped configs hold None.
    "clip_threshold": Field(1.0, "real", "the clipping threshold", _real_check(0.0, low_open=True)),
    "steps": Field(
        None,
        "int",
        "step budget (steps or epochs, or both)",
        _int_check(1, _MAX_STEPS, optional=True),
    ),
    "epochs": Field(None, "int", "epoch budget", _int_check(1, _MAX_STEPS, optional=True)),
    "tol": Field(
        None,
        "real",
        "converged when the cost changes less over window",
        _real_check(0.0, optional=True),
    ),
    # Read only with tol: configs without hold None.
    "window": Field(
        100, "int", "steps over which tol compares the cost", _int_check(1, _MAX_STEPS)
    ),
    "seed": Field(0, "int", "init and shuffle seed", _int_check(0, _MAX_SEED)),
    "dtype": Field("float32", "text", "float32 or float64", _choice_check(("float32", "float64"))),
    "history_every": Field(
        10, "int", "record the history every k steps", _int_check(1, _MAX_STEPS)
    ),
    # None (off) is left out of a config, so the ids of runs without a probe are those
    # of the stores written before this field existed.
    "probe_every": Field(
        None,
        "int",
        "record each layer's h rms, ∂h rms and ‖∇W‖/‖W‖ every k steps, or none",
        _int_check(1, _MAX_STEPS, optional=True),
    ),
}

#: Fields a config leaves out when None (fields added after stores were written: a run
#: that does not set one keeps the id it had before).
_OMITTED_WHEN_NONE: tuple[str, ...] = ("probe_every",)


def _unknown(key: str, where: str) -> ValueError:
    return ValueError(
        f"{where}: unknown field {key!r}.{did_you_mean(key, FIELDS)} Known: {', '.join(FIELDS)}."
    )


def _checked(key: str, value: Any, where: str) -> Any:
    """``value`` checked for field ``key`` and made canonical; errors say where."""
    if key not in FIELDS:
        raise _unknown(key, where)
    try:
        return FIELDS[key].check(value)
    except (ValueError, TypeError) as error:
        fix = f" ({key}: {FIELDS[key].help}; default {FIELDS[key].default!r})"
        raise type(error)(f"{where}: {error}{fix}") from None


# --------------------------------------------------------------------------- random draws

DistributionKind = Literal["uniform", "loguniform", "randint", "choice"]
_DRAWS: Mapping[str, tuple[Kind, ...]] = {
    "uniform": ("real",),
    "loguniform": ("real",),
    "randint": ("int", "batch"),
    "choice": ("text", "int", "real", "bool", "widths", "batch"),
}


@dataclass(frozen=True)
class Distribution:
    """A random field's law: ``uniform(a, b)``, ``loguniform(a, b)`` (0 < a < b),
    ``randint(a, b)`` (integers in [a, b)) or ``choice(v1, v2, …)``.

    Each draw is a function of one number u in [0, 1) (Python's ``random()``, whose
    sequence for a seed is guaranteed across Python versions).

    Example:
        >>> Distribution("loguniform", (1e-4, 1.0)).draw(0.5)
        0.01
        >>> Distribution("choice", ("a", "b", "c")).draw(0.9)
        'c'
    """

    kind: DistributionKind
    args: tuple[Any, ...]

    def draw(self, u: float) -> Any:
        """The value at ``u`` ∈ [0, 1)."""
        if self.kind == "choice":
            return self.args[min(int(u * len(self.args)), len(self.args) - 1)]
        a, b = self.args
        if self.kind == "uniform":
            return a + (b - a) * u
        if self.kind == "loguniform":
            value = math.exp(math.log(a) + (math.log(b) - math.log(a)) * u)
            return float(f"{value:.12g}")  # 0.01, not 0.010000000000000002, in every config
        return min(a + int(u * (b - a)), b - 1)


def _uniform_draw(seed: int, sample: int, key: str) -> float:
    digest = hashlib.sha256(f"initlab-study:{seed}:{sample}:{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big")).random()


# --------------------------------------------------------------------------- the study


@dataclass(frozen=True)
class Study:
    """A study: fixed fields, grid axes, zip groups and random fields over ``samples``.

    Build one with :func:`parse_overrides` or :func:`load_toml`; a study built directly
    is checked the same way (values are made canonical: ``lr=1`` is 1.0).

    Example:
        >>> study = Study(fixed={"steps": 10}, axes={"init": ("he_normal", "zeros")})
        >>> [p["init"] for p in study.points()]
        ['he_normal', 'zeros']
    """

    fixed: Mapping[str, Any] = field(default_factory=dict)  # field → its one value
    axes: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)  # grid: field → values
    zips: tuple[Mapping[str, tuple[Any, ...]], ...] = ()  # groups whose fields move together
    random: Mapping[str, Distribution] = field(default_factory=dict)  # drawn per sample
    samples: int | None = None  # random draws (random search); needs random fields
    seed: int = 0  # the random draws' seed (not a run's seed: that is the field "seed")
    description: str = ""  # what the study is for (not part of any run's config)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}

        def claim(key: str, where: str) -> None:
            if key in seen:
                raise ValueError(
                    f"{where}: {key!r} is set twice ({seen[key]} and {where}). Give each "
                    "field once: a fixed value, one axis, one zip group or one random draw."
                )
            seen[key] = where

        fixed = {}
        for key, value in self.fixed.items():
            claim(key, "fixed")
            fixed[key] = _checked(key, value, f"fixed {key}")
        axes = {}
        for key, values in self.axes.items():
            claim(key, "axes")
            axes[key] = _axis_values(key, values, f"axis {key}")
        zips = []
        for number, group in enumerate(self.zips, 1):
            where = f"zip group {number}"
            if not group:
                raise ValueError(f"{where}: expected at least one field. Got none.")
            checked = {}
            for key, values in group.items():
                claim(key, where)
                checked[key] = _axis_values(key, values, f"{where}, {key}")
            lengths = {key: len(v) for key, v in checked.items()}
            if len(set(lengths.values())) > 1:
                raise ValueError(
                    f"{where}: expected fields with the same number of values (they move "
                    f"together). Got {lengths}. Give each the same number."
                )
            zips.append(checked)
        draws = {}
        for key, law in self.random.items():
            claim(key, "random")
            draws[key] = _checked_law(key, law, f"random {key}")
        if self.samples is not None:
            _int_check(1, MAX_POINTS, "samples")(self.samples)
            if not draws:
                raise ValueError(
                    f"expected a random field with samples={self.samples} (e.g. "
                    "lr=loguniform(1e-4,1)). Got none: every sample would be the same run. "
                    "Drop samples, or make a field random."
                )
        elif draws:
            raise ValueError(
                f"{', '.join(draws)} {'is' if len(draws) == 1 else 'are'} drawn at random: "
                "expected samples (how many draws), e.g. --samples 20. Got none."
            )
        _int_check(0, _MAX_SEED, "the study's seed (of the random draws)")(self.seed)
        if not isinstance(self.description, str):
            raise _expect("description: text", self.description, kind=TypeError)
        size = math.prod(len(v) for v in axes.values()) * math.prod(
            len(next(iter(g.values()))) for g in zips
        )
        if size * (self.samples or 1) > MAX_POINTS:
            raise ValueError(
                f"expected at most {MAX_POINTS:,} runs. Got {size * (self.samples or 1):,} "
                "(the product of the axes' lengths and the samples). Use fewer values."
            )
        object.__setattr__(self, "fixed", fixed)
        object.__setattr__(self, "axes", axes)
        object.__setattr__(self, "zips", tuple(zips))
        object.__setattr__(self, "random", draws)
        # Every config is made and checked now, before anything runs.
        object.__setattr__(self, "_configs", self._expand())

    def points(self) -> list[dict[str, Any]]:
        """The canonical run configs, in order, without duplicates.

        Each is a dict of every field of :data:`FIELDS` (plain JSON values): the default,
        the fixed value, then the point's own values; but ``probe_every`` is there only
        when set (a run without it has the id it had before the field existed).
        ``loss="auto"`` is resolved (bce for one output, cross_entropy for more), and a
        field that cannot change the run is None (``clip_threshold`` without a clip,
        ``momentum`` for an optimizer without one, ``window`` without ``tol``), so two
        configs that train alike are one run.

        Returns:
            A new list of new dicts (the caller may change them).

        Example:
            >>> study = Study(fixed={"steps": 5}, axes={"clip": ("none", "norm")})
            >>> [(p["clip"], p["clip_threshold"]) for p in study.points()]
            [('none', None), ('norm', 1.0)]
        """
        configs: tuple[dict[str, Any], ...] = self.__dict__["_configs"]
        return [dict(p, model=list(p["model"])) for p in configs]

    def __len__(self) -> int:
        return len(self.__dict__["_configs"])

    def _expand(self) -> tuple[dict[str, Any], ...]:
        base = {key: f.default for key, f in FIELDS.items()}
        base.update(self.fixed)
        grids: list[list[dict[str, Any]]] = [
            [{key: value} for value in values] for key, values in self.axes.items()
        ]
        grids += [
            [dict(zip(group, row, strict=True)) for row in zip(*group.values(), strict=True)]
            for group in self.zips
        ]
        grids.append(
            [
                {
                    key: law.draw(_uniform_draw(self.seed, i, key))
                    for key, law in self.random.items()
                }
                for i in range(self.samples or 1)
            ]
        )
        points: dict[str, dict[str, Any]] = {}
        for combination in itertools.product(*grids):
            point = {key: value for part in combination for key, value in part.items()}
            try:
                config = _resolved({**base, **point})
            except ValueError as error:
                shown = ", ".join(f"{k}={v!r}" for k, v in point.items())
                raise ValueError(f"the run {shown}: {error}" if shown else str(error)) from None
            points.setdefault(run_id(config), config)
        return tuple(points.values())

    def as_dict(self) -> dict[str, Any]:
        """The study as plain data (its spec, not its points)."""
        return {
            "fixed": dict(self.fixed),
            "axes": {k: list(v) for k, v in self.axes.items()},
            "zips": [{k: list(v) for k, v in g.items()} for g in self.zips],
            "random": {k: [law.kind, *law.args] for k, law in self.random.items()},
            "samples": self.samples,
            "seed": self.seed,
        }


def _axis_values(key: str, values: Any, where: str) -> tuple[Any, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise _expect(f"a list of values for {key}", values, kind=TypeError)
    if not values:
        raise ValueError(
            f"{where}: expected at least one value. Got an empty axis, which would make no "
            "runs. Give values, or drop the field."
        )
    if key == "model" and all(_is_int(w) for w in values):
        raise TypeError(
            f"{where}: expected a list of nets, each a list of widths, e.g. "
            f"[[2, 10, 1], [2, 10, 5, 1]]. Got {_shown(values)}: write [{_shown(values)}] "
            "for one net."
        )
    return tuple(_checked(key, value, where) for value in values)


def _checked_law(key: str, law: Distribution, where: str) -> Distribution:
    if key not in FIELDS:
        raise _unknown(key, where)
    if not isinstance(law, Distribution):
        raise _expect("a Distribution", law, kind=TypeError)
    kind = FIELDS[key].kind
    if kind not in _DRAWS.get(law.kind, ()):
        raise ValueError(
            f"{where}: {law.kind}(…) does not apply to {key} ({FIELDS[key].help}). "
            + _draw_help(kind)
        )
    args = tuple(law.args)
    if law.kind == "choice":
        if not args:
            raise ValueError(f"{where}: expected choice(v1, v2, …) with a value. Got none.")
        return Distribution("choice", tuple(_checked(key, v, where) for v in args))
    if len(args) != 2:
        raise ValueError(f"{where}: expected {law.kind}(a, b), two bounds. Got {len(args)}.")
    a, b = (_checked(key, v, where) for v in args)
    if law.kind == "randint" and not (_is_int(a) and _is_int(b)):
        raise _expect(f"{where}: randint(a, b) with integer bounds", args, kind=TypeError)
    if not a < b:
        raise ValueError(f"{where}: expected {law.kind}(a, b) with a < b. Got {args}.")
    if law.kind == "loguniform" and a <= 0:
        raise ValueError(f"{where}: expected loguniform(a, b) with 0 < a. Got {args}.")
    return Distribution(law.kind, (a, b))


def _draw_help(kind: Kind) -> str:
    return {
        "real": "A number field takes uniform(a,b), loguniform(a,b) or choice(…).",
        "int": "An integer field takes randint(a,b) or choice(…) (and range(…) for a grid).",
        "batch": "batch_size takes randint(a,b) or choice(…) (and range(…) for a grid).",
    }.get(kind, "Use choice(v1, v2, …).")


def _resolved(config: dict[str, Any]) -> dict[str, Any]:
    """Cross-field rules: the loss resolved, fields without effect set to None."""
    from initlab.experiments import infer_loss

    outputs = config["model"][-1]
    config["loss"] = infer_loss(config["loss"], outputs=outputs)
    if config["loss"] == "bce" and outputs != 1:
        raise ValueError(
            f"loss 'bce' takes one output (a logit). Got the model {config['model']}, with "
            f"{outputs}. Use loss=cross_entropy, or one output."
        )
    if config["loss"] == "cross_entropy" and outputs < 2:
        raise ValueError(
            f"loss 'cross_entropy' takes one output per class (at least 2). Got the model "
            f"{config['model']}, with {outputs}. Use loss=bce, or more outputs."
        )
    if config["steps"] is None and config["epochs"] is None:
        raise ValueError(
            "expected a budget: steps=N or epochs=N (with tol a run may stop sooner). Got "
            "neither. Add e.g. steps=3000."
        )
    if config["clip"] == "none":
        config["clip_threshold"] = None
    if config["optimizer"] not in ("momentum", "nesterov"):
        config["momentum"] = None
    if config["tol"] is None:
        config["window"] = None
    for key in _OMITTED_WHEN_NONE:
        if config.get(key) is None:
            config.pop(key, None)
    return config


# --------------------------------------------------------------------------- run ids


def canonical_json(config: Mapping[str, Any]) -> str:
    """The one JSON text of ``config``: sorted keys, no spaces, floats by ``repr``.

    Raises:
        ValueError: a NaN or infinite number.
        TypeError: a value JSON cannot hold.

    Example:
        >>> canonical_json({"lr": 0.1, "init": "he_normal", "model": [2, 1]})
        '{"init":"he_normal","lr":0.1,"model":[2,1]}'
    """
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_id(config: Mapping[str, Any]) -> str:
    """A run's id: the first 16 hex digits of the SHA-256 of its canonical JSON.

    Give it a config from :meth:`Study.points`: the same config has the same id in every
    study and on every machine.

    Example:
        >>> run_id({"lr": 0.1}) == run_id({"lr": 0.1}) != run_id({"lr": 0.01})
        True
        >>> len(run_id({"lr": 0.1}))
        16
    """
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- the grammar

_SWEEPS = ("range", "randint", "uniform", "loguniform", "choice")
_SWEEP_CALL = re.compile(r"^\s*([A-Za-z_]\w*)\s*\(")


def split_top(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside parentheses, brackets and quotes (items stripped).

    Example:
        >>> split_top("he_normal,'normal(0, 1)',[2,3]")
        ['he_normal', "'normal(0, 1)'", '[2,3]']
    """
    items: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == sep and depth == 0:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    items.append("".join(current).strip())
    if depth != 0 or quote:
        raise ValueError(f"expected balanced parentheses, brackets and quotes. Got {_shown(text)}.")
    return items


def _literal(item: str) -> Any:
    """A value as typed: an integer, a number, true/false, a list, else text."""
    if item[:1] in ("'", '"', "["):
        try:
            value = ast.literal_eval(item)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as error:
            raise _expect("a quoted text or a [list] of literals", item) from error
        if isinstance(value, str) or (item[:1] == "[" and isinstance(value, list)):
            return value
        raise _expect("a quoted text or a [list] of literals", item)
    for parse in (int, float):
        try:
            return parse(item)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(item.lower(), item)


def _parse_values(key: str, text: str, where: str) -> tuple[list[Any], Distribution | None]:
    """The values one field's text makes: a list (a grid axis), or a random law."""
    if key not in FIELDS:
        raise _unknown(key, where)
    kind = FIELDS[key].kind
    try:
        items = split_top(text)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    if not text.strip() or not all(items):
        raise ValueError(
            f"{where}: expected values separated by commas, e.g. {key}=a,b. Got "
            f"{_shown(text)}, with an empty value: remove the extra comma, or give a value."
        )
    if kind == "widths" and not text.strip().startswith(("[", *_SWEEPS)):
        return [[_literal(item) for item in items]], None  # model=2,10,5,1: one net
    values: list[Any] = []
    for item in items:
        match = _SWEEP_CALL.match(item)
        name = match.group(1) if match else ""
        # On a text field, uniform(…) is the init scheme and range(…) cannot apply.
        if name not in _SWEEPS or (name == "uniform" and kind == "text"):
            values.append(_literal(item))
            continue
        _, args, kwargs = parse_call(item, f"{where}: {name}", f"'{name}(…)'")
        if kwargs:
            raise ValueError(f"{where}: {name}(…) takes positional values only. Got {item!r}.")
        if name == "range":
            values.extend(_range(key, args, item, where))
            continue
        if len(items) > 1:
            raise ValueError(
                f"{where}: a random draw, {item!r}, is the whole value of a field. Got "
                f"{_shown(text)}. Put the alternatives inside choice(…)."
            )
        return [], Distribution(name, tuple(args))  # type: ignore[arg-type]
    return values, None


def _range(key: str, args: list[Any], item: str, where: str) -> range:
    if FIELDS[key].kind not in ("int", "batch"):
        raise ValueError(
            f"{where}: range(…) makes integers; {key} is not one. " + _draw_help(FIELDS[key].kind)
        )
    if not 1 <= len(args) <= 3 or not all(_is_int(a) for a in args):
        raise ValueError(
            f"{where}: expected range(stop), range(start, stop) or range(start, stop, step) "
            f"with integers. Got {item!r}."
        )
    if len(args) == 3 and args[2] == 0:
        raise ValueError(f"{where}: expected a step other than 0. Got {item!r}.")
    values = range(*args)
    if not values:
        raise ValueError(
            f"{where}: {item} is empty (no integers): an empty axis makes no runs. "
            "Give start < stop."
        )
    if len(values) > MAX_POINTS:
        raise ValueError(
            f"{where}: expected at most {MAX_POINTS:,} values. Got {item} ({len(values):,})."
        )
    return values


@dataclass
class _Builder:
    """The parts of a study, gathered with where each came from."""

    fixed: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    zips: list[dict[str, tuple[Any, ...]]] = field(default_factory=list)
    random: dict[str, Distribution] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)

    def claim(self, key: str, where: str) -> None:
        if key not in FIELDS:
            raise _unknown(key, where)
        if key in self.seen:
            raise ValueError(
                f"{where}: {key!r} is given twice (first in {self.seen[key]}). Give each "
                "field once: put every value of an axis in one list."
            )
        self.seen[key] = where

    def add(self, key: str, values: Sequence[Any], law: Distribution | None, where: str) -> None:
        self.claim(key, where)
        if law is not None:
            self.random[key] = _checked_law(key, law, where)
        elif len(values) == 1:
            self.fixed[key] = _checked(key, values[0], where)
        else:
            self.axes[key] = _axis_values(key, values, where)

    def study(self, samples: int | None, seed: int, description: str = "") -> Study:
        return Study(
            self.fixed, self.axes, tuple(self.zips), self.random, samples, seed, description
        )


def _zip_group(builder: _Builder, token: str) -> None:
    inner = token.strip()[len("zip(") : -1]
    group: dict[str, tuple[Any, ...]] = {}
    for part in split_top(inner, ";"):
        key, eq, text = part.partition("=")
        key = key.strip()
        where = f"{token!r}, {key}"
        if not eq or not key:
            raise ValueError(
                f"{token!r}: expected key=values parts separated by ';', e.g. "
                f"'zip(lr=0.1,0.01; batch_size=64,32)'. Got {part!r}."
            )
        builder.claim(key, where)
        values, law = _parse_values(key, text, where)
        if law is not None:
            raise ValueError(f"{where}: a zip group takes lists of values, not a random draw.")
        group[key] = _axis_values(key, values, where)
    builder.zips.append(group)


def parse_overrides(args: Sequence[str], *, samples: int | None = None, seed: int = 0) -> Study:
    """A study from ``key=value`` tokens (the grammar is in this module's docstring).

    Args:
        args: the tokens, e.g. ``["model=2,10,5,1", "lr=0.1,0.01", "seed=range(5)"]``.
        samples: random draws, with random fields (``loguniform(…)``, ``choice(…)``).
        seed: the random draws' seed (a run's own seed is the field ``seed``).

    Returns:
        The :class:`Study`, every value checked.

    Raises:
        ValueError: an unknown field (the known ones listed, the nearest suggested), a
            field given twice, an empty axis, a bad value or init spec, zip groups of
            unequal lengths, random fields without samples (or samples without them).
        TypeError: a value of the wrong type (text for a number, a number for text).

    Example:
        >>> s = parse_overrides(["init=he_normal,'normal(std=0.01)'", "steps=100",
        ...                      "'zip(lr=0.1,0.01; batch_size=64,32)'"])
        >>> [(p["init"], p["lr"], p["batch_size"]) for p in s.points()]
        [('he_normal', 0.1, 64), ('he_normal', 0.01, 32),
         ('normal(std=0.01)', 0.1, 64), ('normal(std=0.01)', 0.01, 32)]
        >>> parse_overrides(["lr=0.1", "stpes=100"])
        Traceback (most recent call last):
        ...
        ValueError: 'stpes=100': unknown field 'stpes'. Did you mean 'steps'? Known: ...
    """
    if isinstance(args, str):
        raise _expect(
            "a list of key=value tokens", args, "Split the line into tokens.", kind=TypeError
        )
    builder = _Builder()
    for raw in args:
        if not isinstance(raw, str):
            raise _expect("key=value tokens (text)", raw, kind=TypeError)
        token = raw.strip()
        if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
            token = token[1:-1].strip()  # a whole token in quotes: 'zip(…)'
        if token.startswith("zip(") and token.endswith(")"):
            _zip_group(builder, token)
            continue
        key, eq, text = token.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(
                f"{raw!r}: expected key=value, e.g. lr=0.1,0.01 or seed=range(5), or "
                "'zip(key=…; key=…)'."
            )
        values, law = _parse_values(key, text, repr(raw))
        builder.add(key, values, law, repr(raw))
    return builder.study(samples, seed)


_TOML_KEYS = ("description", "samples", "seed", "fixed", "axes")


def load_toml(path: str | Path) -> Study:
    """A study from a TOML file: ``[fixed]`` values, ``[axes]`` lists, optional
    ``samples``, ``seed`` and ``description``.

    An axis is a list of values, or a text in the command-line grammar (``"range(5)"``,
    ``"loguniform(1e-4, 1)"``, ``"choice(he_normal, xavier_normal)"``). ``[axes.zip]`` is
    one group of fields that move together (lists of one length); ``[[axes.zip]]`` gives
    several groups. The file's order is the order of the axes::

        samples = 8                      # random draws (with a random field)
        [fixed]
        data = "circles"
        model = [2, 10, 5, 1]
        steps = 3000
        [axes]
        init = ["he_normal", "xavier_normal", "normal(std=0.01)"]
        seed = "range(5)"
        lr = "loguniform(1e-4, 1)"
        [axes.zip]
        batch_size = ["full", 64]
        clip = ["none", "norm"]

    Args:
        path: the file.

    Returns:
        The :class:`Study`, every value checked.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not TOML, an unknown key (the known ones listed, the nearest
            suggested), or any error :func:`parse_overrides` gives.
        TypeError: a value of the wrong type.
    """
    path = Path(path)
    with path.open("rb") as file:
        try:
            table = tomllib.load(file)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(
                f"{path}: expected a TOML study file. Got a syntax error: {error}."
            ) from None
    for key in table:
        if key not in _TOML_KEYS:
            raise ValueError(
                f"{path}: unknown key {key!r}.{did_you_mean(key, _TOML_KEYS)} Known: "
                f"{', '.join(_TOML_KEYS)} (fields go in [fixed] or [axes])."
            )
    builder = _Builder()
    fixed, axes = table.get("fixed", {}), table.get("axes", {})
    for name, part in (("fixed", fixed), ("axes", axes)):
        if not isinstance(part, dict):
            raise _expect(f"{path}: [{name}], a table", part, kind=TypeError)
    for key, value in fixed.items():
        where = f"{path} [fixed] {key}"
        builder.claim(key, where)
        builder.fixed[key] = _checked(key, value, where)
    for key, value in axes.items():
        where = f"{path} [axes] {key}"
        if key == "zip":
            groups = value if isinstance(value, list) else [value]
            for group in groups:
                _toml_zip(builder, group, f"{path} [axes.zip]")
            continue
        builder.claim(key, where)
        if isinstance(value, str):
            values, law = _parse_values(key, value, where)
            if law is not None:
                builder.random[key] = _checked_law(key, law, where)
                continue
        elif isinstance(value, list):
            values = value
        else:
            raise _expect(
                f"{where}: a list of values, or a text such as 'range(5)'", value, kind=TypeError
            )
        builder.axes[key] = _axis_values(key, values, where)
    description = table.get("description", "")
    return builder.study(table.get("samples"), table.get("seed", 0), description)


def _toml_zip(builder: _Builder, group: Any, where: str) -> None:
    if not isinstance(group, dict):
        raise _expect(f"{where}: a table of lists of one length", group, kind=TypeError)
    checked = {}
    for key, values in group.items():
        builder.claim(key, f"{where} {key}")
        if isinstance(values, str):
            values, law = _parse_values(key, values, f"{where} {key}")
            if law is not None:
                raise ValueError(
                    f"{where} {key}: a zip group takes lists of values, not a random draw."
                )
        checked[key] = _axis_values(key, values, f"{where} {key}")
    builder.zips.append(checked)
