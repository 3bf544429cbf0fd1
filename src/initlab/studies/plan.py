"""The planner: a study's runs packed into stacks the engine trains in one pass.

Runs share a stack when everything but the engine's per-member fields is equal: data,
model, activation, batch norm, loss, batch size, budget, clipping kind, stopping, dtype,
weight decay, history interval, probe interval (``probe_every``: the layer probe watches a
whole stack). The per-member fields are the grid axes of
:data:`initlab.experiments.AXES` — ``init``, ``bias_init``, ``seed``, ``lr``,
``optimizer``, ``schedule``, ``clip_threshold``. ``momentum`` is one per stack; a run
whose optimizer has none (its config holds None) joins a stack of any momentum.

A group of runs that can share a stack is cut into stacks of at most ``max_members``
members and at most ``memory`` bytes (:func:`initlab.experiments.training_bytes`), the
sizes as equal as they can be. The plan is deterministic: groups in the order of their
first run, runs in the study's order.

Example:
    >>> from initlab.studies import parse_overrides
    >>> study = parse_overrides(["lr=0.1,0.01", "seed=range(3)", "steps=100",
    ...                          "activation=relu,tanh"])
    >>> p = plan(study, max_members=4, n_train={"circles": 800})
    >>> [len(s) for s in p.stacks]
    [3, 3, 3, 3]
    >>> p.stacks[0].varying()
    ['seed']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from initlab._spec import parse_call
from initlab.experiments import AXES, training_bytes
from initlab.studies.spec import Study, run_id

if TYPE_CHECKING:
    from initlab.data import Dataset
    from initlab.train import TrainConfig

__all__ = ["MEMBER_FIELDS", "Plan", "StackPlan", "load_data", "plan"]

#: The config fields that may differ between the members of one stack (the engine's).
MEMBER_FIELDS: tuple[str, ...] = tuple(AXES)
#: Members per stack by default: the engine's measured sweet spot for tiny nets on CPU.
DEFAULT_MAX_MEMBERS = 1024
#: A stack's memory by default (bytes): small enough for any laptop beside the rest.
DEFAULT_MEMORY = 2 * 2**30
#: Steps between the engine's stopping checks: fixed, because when a member converges
#: is read at a check, so the check interval is part of a run's result.
CHECK_EVERY = 100
_DEFAULT_MOMENTUM = 0.9  # TrainConfig's; unused by a stack without momentum


def load_data(spec: str) -> Dataset:
    """The data set a config's ``data`` field names: ``"circles"`` or
    ``"circles(n=400, noise=0.1)"``, loaded with :func:`initlab.data.load`.

    Example:
        >>> load_data("circles(n=100)").n_train
        80
    """
    from initlab import data

    name, paren, _ = spec.partition("(")
    if not paren:
        return data.load(name.strip())
    name, _, options = parse_call(spec, "Data spec", "'circles(n=400, noise=0.1)'")
    return data.load(name, **options)


def _shared_key(config: Mapping[str, Any]) -> str:
    from initlab.studies.spec import canonical_json

    return canonical_json(
        {k: v for k, v in config.items() if k not in MEMBER_FIELDS and k != "momentum"}
    )


@dataclass(frozen=True)
class StackPlan:
    """One stack: its runs (ids and canonical configs, in stack order) and what they share."""

    shared: Mapping[str, Any]  # every field all members share (momentum resolved)
    run_ids: tuple[str, ...]  # member m's run id
    configs: tuple[Mapping[str, Any], ...]  # member m's canonical config
    rows: int  # examples a step (the batch size, or the training set)
    bytes: int  # training memory, estimated (training_bytes)

    def __len__(self) -> int:
        return len(self.run_ids)

    def column(self, name: str) -> list[Any]:
        """Field ``name``'s value for each member, in stack order."""
        return [config[name] for config in self.configs]

    def varying(self) -> list[str]:
        """The per-member fields on which members differ."""
        return [f for f in MEMBER_FIELDS if len({repr(v) for v in self.column(f)}) > 1]

    def train_config(self) -> TrainConfig:
        """The engine's :class:`~initlab.train.TrainConfig` of this stack.

        Example:
            >>> from initlab.studies import parse_overrides
            >>> s = plan(parse_overrides(["lr=0.1,0.2", "steps=50"]), n_train={"circles": 8})
            >>> s.stacks[0].train_config().lr
            [0.1, 0.2]
        """
        from initlab.train import TrainConfig

        s = self.shared
        clip = None if s["clip"] == "none" else s["clip"]
        thresholds = self.column("clip_threshold") if clip is not None else 1.0
        return TrainConfig(
            loss=s["loss"],
            optimizer=self.column("optimizer"),
            lr=self.column("lr"),
            momentum=_DEFAULT_MOMENTUM if s["momentum"] is None else s["momentum"],
            weight_decay=s["weight_decay"],
            schedule=self.column("schedule"),
            batch_size=s["batch_size"],
            seeds=self.column("seed"),
            drop_last=s["drop_last"],
            clip=clip,
            clip_threshold=thresholds,
            steps=s["steps"],
            epochs=s["epochs"],
            tol=s["tol"],
            window=s["window"] if s["window"] is not None else 100,
            log_every=s["history_every"],
            check_every=CHECK_EVERY,
        )

    def describe(self) -> str:
        """One line: members, what they vary, what they share, memory."""
        varying = ", ".join(self.varying()) or "nothing (one member)"
        shared = " ".join(
            f"{k}={_shown(v)}"
            for k, v in self.shared.items()
            if v is not None and k not in MEMBER_FIELDS
        )
        first = self.configs[0]
        same = [f for f in MEMBER_FIELDS if f not in self.varying() and first[f] is not None]
        fixed = " ".join(f"{f}={_shown(first[f])}" for f in same)
        return (
            f"{len(self):,} members varying {varying}; shared: {shared}"
            + (f" {fixed}" if fixed else "")
            + f"; ~{_bytes(self.bytes)}"
        )


@dataclass(frozen=True)
class Plan:
    """A study's runs as stacks, in the order they will train."""

    stacks: tuple[StackPlan, ...]
    max_members: int  # the most members a stack may have
    memory: int  # the most bytes a stack may need

    def __len__(self) -> int:
        return len(self.stacks)

    @property
    def runs(self) -> int:
        """How many runs the plan trains."""
        return sum(len(s) for s in self.stacks)

    def describe(self) -> str:
        """What ``initlab study plan`` prints: stacks, their members, what each shares.

        Example:
            >>> from initlab.studies import parse_overrides
            >>> p = plan(parse_overrides(["lr=0.1,0.2", "steps=50"]), n_train={"circles": 8})
            >>> print(p.describe().splitlines()[0])
            2 runs in 1 stack (at most 1,024 members and 2.0 GiB a stack)
        """
        stacks = "stack" if len(self.stacks) == 1 else "stacks"
        lines = [
            f"{self.runs:,} runs in {len(self.stacks):,} {stacks} (at most "
            f"{self.max_members:,} members and {_bytes(self.memory)} a stack)"
        ]
        width = len(str(len(self.stacks)))
        lines += [f"{i:>{width}}. {s.describe()}" for i, s in enumerate(self.stacks, 1)]
        return "\n".join(lines)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"The '{name}' parameter of plan must be an integer >= 1. Got {value!r}.")
    if value < 1:
        raise ValueError(f"The '{name}' parameter of plan must be an integer >= 1. Got {value!r}.")
    return value


def plan(
    study_or_points: Study | Sequence[Mapping[str, Any]],
    *,
    max_members: int = DEFAULT_MAX_MEMBERS,
    memory: int | None = None,
    n_train: Mapping[str, int] | Callable[[str], int] | None = None,
) -> Plan:
    """Pack a study's runs into stacks.

    Runs are grouped by every field but :data:`MEMBER_FIELDS` (and momentum, which a
    run without momentum takes from any stack); each group of G runs becomes
    n = ⌈G / C⌉ stacks of ⌊G/n⌋ or ⌈G/n⌉ members, C the most members that fit both
    ``max_members`` and ``memory``.

    Args:
        study_or_points: a :class:`~initlab.studies.Study`, or canonical configs (its
            :meth:`~initlab.studies.Study.points`, or some of them: the pending ones).
        max_members: the most members a stack may have.
        memory: the most bytes a stack may need to train (default 2 GiB); a run that alone
            needs more gets a stack of its own.
        n_train: each ``data`` spec's training examples (a mapping or a function), for
            the memory of a full-batch run; by default each data set is loaded once.

    Returns:
        The :class:`Plan`.

    Raises:
        ValueError: ``max_members`` or ``memory`` below 1.
        TypeError: either is not an integer.
    """
    max_members = _check_positive("max_members", max_members)
    memory = _check_positive("memory", DEFAULT_MEMORY if memory is None else memory)
    points = study_or_points.points() if isinstance(study_or_points, Study) else study_or_points
    sizes: dict[str, int] = {}

    def examples(spec: str) -> int:
        if spec not in sizes:
            if n_train is None:
                sizes[spec] = load_data(spec).n_train
            elif callable(n_train):
                sizes[spec] = n_train(spec)
            else:
                sizes[spec] = n_train[spec]
        return sizes[spec]

    groups: dict[str, list[Mapping[str, Any]]] = {}
    for config in points:
        groups.setdefault(_shared_key(config), []).append(config)
    stacks: list[StackPlan] = []
    for members in groups.values():
        for momentum, part in _by_momentum(members):
            first = part[0]
            shared = {k: v for k, v in first.items() if k not in MEMBER_FIELDS}
            shared["momentum"] = momentum
            batch = first["batch_size"]
            rows = examples(first["data"]) if batch == "full" else int(batch)
            itemsize = 8 if first["dtype"] == "float64" else 4
            each = training_bytes(first["model"], 1, rows, itemsize)
            cap = max(1, min(max_members, memory // each))
            count = math.ceil(len(part) / cap)
            base, extra = divmod(len(part), count)
            start = 0
            for i in range(count):
                size = base + (1 if i < extra else 0)
                chunk = part[start : start + size]
                start += size
                stacks.append(
                    StackPlan(
                        shared=dict(shared),
                        run_ids=tuple(run_id(c) for c in chunk),
                        configs=tuple(chunk),
                        rows=rows,
                        bytes=training_bytes(first["model"], len(chunk), rows, itemsize),
                    )
                )
    return Plan(tuple(stacks), max_members, memory)


def _by_momentum(
    members: list[Mapping[str, Any]],
) -> list[tuple[float | None, list[Mapping[str, Any]]]]:
    """One part per momentum value (first seen first); runs without one join the first."""
    values = list(dict.fromkeys(c["momentum"] for c in members if c["momentum"] is not None))
    if len(values) <= 1:
        return [(values[0] if values else None, list(members))]
    parts: dict[float, list[Mapping[str, Any]]] = {v: [] for v in values}
    for config in members:
        parts[values[0] if config["momentum"] is None else config["momentum"]].append(config)
    return list(parts.items())
