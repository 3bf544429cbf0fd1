"""Pre-flight: what a study's runs ask of their data, checked before any run trains.

A study's configs are checked one by one when it is built (:mod:`.spec`); what they ask
of their data can only be checked once the data is loaded. :func:`check_points` loads each
``data`` spec once and checks every run against it:

- the data loads (a bad option, a missing file);
- the model's first width is the data's number of features;
- the model's last width fits the loss and the classes: ``cross_entropy`` one output per
  class, ``bce`` one output and two classes, ``mse`` one output;
- the batch size is at most the training examples.

Without it, such a run reaches the engine and is stored as ``failed``, after the runs
before it have trained. Every problem found is reported at once, each with the field, what
was expected, what was got, how many runs it concerns and how to fix it.

Example:
    >>> from initlab.studies import parse_overrides
    >>> study = parse_overrides(["data=circles(n=100)", "batch_size=64,128", "steps=10"])
    >>> check_points(study.points())
    Traceback (most recent call last):
    ...
    ValueError: 1 problem before anything ran: batch_size (1 of 2 runs): expected at most the 80 ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from initlab.studies.plan import load_data

if TYPE_CHECKING:
    from initlab.data import Dataset

__all__ = ["check_points"]


def _widths(widths: Sequence[int], first: int | None = None, last: int | None = None) -> str:
    fixed = list(widths)
    if first is not None:
        fixed[0] = first
    if last is not None:
        fixed[-1] = last
    return ",".join(map(str, fixed))


def _problems(config: Mapping[str, Any], ds: Dataset) -> list[tuple[str, str]]:
    """What is wrong with one run on its data: (field, message) pairs."""
    spec, widths, loss = config["data"], list(config["model"]), config["loss"]
    found: list[tuple[str, str]] = []
    features = math.prod(ds.feature_shape)
    if len(ds.feature_shape) != 1 or widths[0] != features:
        found.append(
            (
                "model",
                f"expected the first width to be {features}, the features of {spec}. Got "
                f"{widths[0]} in {_widths(widths)}. Use model={_widths(widths, first=features)}.",
            )
        )
    classes, outputs = ds.num_classes, widths[-1]
    right = _widths(widths, first=features, last=classes)
    if loss == "cross_entropy" and outputs < classes:
        found.append(
            (
                "model",
                f"expected the last width to be at least {classes}, one output per class of "
                f"{spec} (loss cross_entropy). Got {outputs} in {_widths(widths)}. Use "
                f"model={right}.",
            )
        )
    if loss == "bce" and classes > 2:
        found.append(
            (
                "loss",
                f"expected a loss for the {classes} classes of {spec}. Got bce (one output, two "
                f"classes). Use loss=cross_entropy (or auto) with model={right}.",
            )
        )
    if loss == "mse" and outputs != 1:
        found.append(
            (
                "model",
                f"expected one output (loss mse compares it with the label). Got {outputs} in "
                f"{_widths(widths)}. Use model={_widths(widths, first=features, last=1)}.",
            )
        )
    batch = config["batch_size"]
    if batch != "full" and int(batch) > ds.n_train:
        found.append(
            (
                "batch_size",
                f"expected at most the {ds.n_train:,} training examples of {spec}. Got "
                f"{batch:,}. Use batch_size=full for all of them, or a smaller size.",
            )
        )
    return found


def check_points(points: Sequence[Mapping[str, Any]]) -> dict[str, Dataset]:
    """Check every run against its data, loading each data spec once.

    Args:
        points: canonical run configs (:meth:`~initlab.studies.Study.points`).

    Returns:
        The loaded data sets, by ``data`` spec (in order of first use).

    Raises:
        ValueError: every problem found, in one message: a data set that does not load, a
            first width that is not the number of features, a last width that does not
            fit the loss and the classes, a batch larger than the training set. Each
            names the field, what was expected, what was got, the runs it concerns and
            the fix.

    Example:
        >>> from initlab.studies import parse_overrides
        >>> sets = check_points(parse_overrides(["data=circles(n=100)", "steps=10"]).points())
        >>> {spec: ds.n_train for spec, ds in sets.items()}
        {'circles(n=100)': 80}
    """
    datasets: dict[str, Dataset] = {}
    problems: dict[tuple[str, str], int] = {}  # (field, message) → runs, in order found
    for config in points:
        spec = config["data"]
        if spec not in datasets:
            try:
                datasets[spec] = load_data(spec)
            except (FileNotFoundError, ValueError, TypeError, OSError) as error:
                raise ValueError(
                    f"data: expected a data set that loads. Got {spec!r}: {error}"
                ) from None
        for problem in _problems(config, datasets[spec]):
            problems[problem] = problems.get(problem, 0) + 1
    if problems:
        total = len(points)
        shown = [
            f"{name}: {message}"
            if count == total
            else f"{name} ({count:,} of {total:,} runs): {message}"
            for (name, message), count in problems.items()
        ]
        noun = "problem" if len(shown) == 1 else "problems"
        raise ValueError(f"{len(shown)} {noun} before anything ran: " + " ".join(shown))
    return datasets
