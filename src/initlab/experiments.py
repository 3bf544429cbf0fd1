"""Experiments: what every front end (the CLI, the lessons, the playground, studies) composes
from the library before and after a run.

- :func:`resolve_device`: a device name checked, with one wording everywhere.
- :func:`member_grid`: every combination of values along named axes (init × seed × lr ×
  optimizer × …) as a :class:`Grid` of labelled members, and the per-member
  :class:`~initlab.train.TrainConfig` fields and init specs it implies.
- :func:`step_budget` and :func:`training_bytes`: a run's size, known before it starts.
- :func:`infer_loss` and :func:`loss_function`: the loss ``"auto"`` stands for, and a
  loss by name as a function of (output, target).
- :func:`labelled_history`: a run's per-step history with one column per axis of its grid.
- :func:`load_factory`: a model named by ``MODULE:FACTORY`` or ``file.py:FACTORY(args)``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import itertools
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

import torch
from torch import Tensor, nn

from initlab._validation import check_choice, did_you_mean, param_message

if TYPE_CHECKING:
    import pandas as pd

    from initlab.data import BatchSize
    from initlab.train import TrainResult

__all__ = [
    "AXES",
    "FactoryError",
    "Grid",
    "Member",
    "infer_loss",
    "labelled_history",
    "load_factory",
    "loss_function",
    "member_grid",
    "resolve_device",
    "step_budget",
    "training_bytes",
]

_DEVICE_EXPECTED = "expected device 'cpu', 'cuda' or 'cuda:N'. Got {device!r}."


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"``, checked: a clear error without CUDA.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(_DEVICE_EXPECTED.format(device=device)) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was asked for, but this torch sees no CUDA GPU: "
            "run on 'cpu', or install a CUDA build of torch on a machine with a GPU."
        )
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(_DEVICE_EXPECTED.format(device=device))
    return resolved


# ----------------------------------------------------------------------------- the grid

#: The axes a grid may vary: each one's TrainConfig field (None: an init argument), its
#: column in a labelled history, and its prefix in a member's label.
AXES: Mapping[str, tuple[str | None, str, str]] = {
    "init": (None, "init", ""),  # the weight init spec (init_members' weight)
    "bias_init": (None, "bias_init", "bias "),  # the bias init spec (init_members' bias)
    "seed": ("seeds", "seed", "s"),  # the init seed and the shuffle seed
    # The history's own "lr" column is each step's scheduled rate; the axis is the base.
    "lr": ("lr", "base_lr", "lr"),
    "optimizer": ("optimizer", "optimizer", ""),
    "schedule": ("schedule", "schedule", ""),
    "clip_threshold": ("clip_threshold", "clip_threshold", "clip"),
}
_INIT_ARGS = {"init": "weight", "bias_init": "bias", "seed": "seeds"}


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Member:
    """One member of a :class:`Grid`: its index in the stack and its value on each axis."""

    index: int  # its place in the stack
    values: Mapping[str, Any]  # axis → this member's value, in the grid's axis order

    def __getitem__(self, axis: str) -> Any:
        return self.values[axis]

    def label(self, axes: Sequence[str] | None = None) -> str:
        """The member's values on ``axes`` (default all), each after its short prefix.

        Example:
            >>> Member(0, {"init": "he_normal", "seed": 1, "lr": 0.05}).label()
            'he_normal s1 lr0.05'
        """
        shown = self.values if axes is None else axes
        return " ".join(AXES[axis][2] + _shown(self.values[axis]) for axis in shown)


@dataclass(frozen=True)
class Grid:
    """Members over named axes: the product of each axis's values, the last axis varying
    fastest (as :func:`itertools.product`). Build one with :func:`member_grid`.

    A grid is a sequence of :class:`Member`; ``column(axis)`` gives one axis's value per
    member, ``train_fields()`` and ``init_fields()`` the per-member arguments of
    :class:`~initlab.train.TrainConfig` and :func:`~initlab.models.init_members`.
    """

    axes: Mapping[str, tuple[Any, ...]]  # axis → its values, in the order given
    members: tuple[Member, ...]  # every combination, in stack order

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[Member]:
        return iter(self.members)

    def __getitem__(self, index: int) -> Member:
        return self.members[index]

    def column(self, axis: str) -> list[Any]:
        """``axis``'s value for each member, in stack order."""
        if axis not in self.axes:
            raise ValueError(
                param_message("Grid.column", "axis", f"one of {list(self.axes)}", axis)
                + did_you_mean(axis, self.axes)
            )
        return [member.values[axis] for member in self.members]

    def varying(self) -> list[str]:
        """The axes on which members differ (an axis of one value does not)."""
        return [axis for axis, values in self.axes.items() if len(set(values)) > 1]

    def train_fields(self) -> dict[str, Any]:
        """The per-member :class:`~initlab.train.TrainConfig` fields of the grid's axes.

        Example:
            >>> member_grid(seed=range(2), lr=[0.1]).train_fields()
            {'seeds': [0, 1], 'lr': [0.1, 0.1]}
        """
        return {
            field: self.column(axis) for axis in self.axes if (field := AXES[axis][0]) is not None
        }

    def init_fields(self) -> dict[str, Any]:
        """The per-member arguments of :func:`~initlab.models.init_members` (``weight``,
        ``bias``, ``seeds``) that the grid's axes give.

        Example:
            >>> member_grid(init=["zeros", "he_normal"], seed=[3]).init_fields()
            {'weight': ['zeros', 'he_normal'], 'seeds': [3, 3]}
        """
        return {_INIT_ARGS[axis]: self.column(axis) for axis in self.axes if axis in _INIT_ARGS}

    def labels(self, axes: Sequence[str] | None = None) -> list[str]:
        """Each member's :meth:`Member.label`, in stack order."""
        return [member.label(axes) for member in self.members]


def _axis_values(name: str, values: object) -> tuple[Any, ...]:
    if name not in AXES:
        raise ValueError(
            param_message("member_grid", name, f"an axis, one of {list(AXES)}", name)
            + did_you_mean(name, AXES)
        )
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | range):
        raise TypeError(
            param_message(
                "member_grid",
                name,
                "a sequence of values, e.g. a list",
                values,
                f"Give {name}=[{values!r}] for one value.",
            )
        )
    if len(values) == 0:
        raise ValueError(
            param_message("member_grid", name, "a sequence of at least one value", values)
        )
    return tuple(values)


def member_grid(**axes: Sequence[Any]) -> Grid:
    """Every combination of the values given for each axis, as one stack of members.

    M = ∏ₐ |valuesₐ|; member m has, on each axis, the value :func:`itertools.product`
    gives at position m (the last axis varies fastest). Axes are named as in :data:`AXES`:
    ``init``, ``bias_init``, ``seed``, ``lr``, ``optimizer``, ``schedule``,
    ``clip_threshold``; they keep the order given.

    Args:
        **axes: each axis's values, a sequence (list, tuple, range) of at least one.

    Returns:
        The :class:`Grid` of M members.

    Raises:
        ValueError: an unknown axis, or an axis without values.
        TypeError: an axis given one value (a string, a number) rather than a sequence.

    Example:
        >>> grid = member_grid(init=["he_normal", "zeros"], seed=range(2), lr=[0.05])
        >>> len(grid), grid[1].values, grid.varying()
        (4, {'init': 'he_normal', 'seed': 1, 'lr': 0.05}, ['init', 'seed'])
        >>> grid.labels()[2]
        'zeros s0 lr0.05'
    """
    values = {name: _axis_values(name, given) for name, given in axes.items()}
    combos = itertools.product(*values.values())
    members = tuple(
        Member(index, dict(zip(values, combo, strict=True))) for index, combo in enumerate(combos)
    )
    return Grid(values, members)


# ----------------------------------------------------------------------------- a run's size


def step_budget(
    steps: int | None,
    epochs: int | None,
    n_train: int,
    batch_size: BatchSize = "full",
    drop_last: bool = False,
) -> int:
    """The steps a run will take: the smaller of its two budgets, whichever are given.

    The epoch budget is epochs × :attr:`~initlab.data.Batcher.steps_per_epoch` (1 for the
    full batch, ⌈n/k⌉, or ⌊n/k⌋ with ``drop_last``), as the engine counts them.

    Args:
        steps: the step budget, or None.
        epochs: the epoch budget, or None.
        n_train: the training examples.
        batch_size: ``"full"``, or k examples a step (1 ≤ k ≤ n_train).
        drop_last: whether each epoch's last, smaller batch is dropped.

    Returns:
        The step count (0 when neither budget is given).

    Raises:
        ValueError: a batch size outside [1, n_train] (from :class:`~initlab.data.Batcher`).

    Example:
        >>> step_budget(None, 3, 800, 64), step_budget(None, 3, 800, 64, drop_last=True)
        (39, 36)
        >>> step_budget(100, 3, 800)
        3
    """
    from initlab.data import Batcher
    from initlab.train import total_steps

    per_epoch = Batcher(n_train, batch_size, drop_last=drop_last).steps_per_epoch
    return total_steps(steps, epochs, per_epoch)


def training_bytes(widths: Sequence[int], members: int, rows: int, itemsize: int) -> int:
    """The memory an MLP stack needs to train, estimated before anything is allocated.

    P = M · Σ (wᵢ·wᵢ₊₁ + wᵢ₊₁) parameters; bytes ≈ (4·P + 3·M·rows·Σᵢ₌₁ wᵢ) · itemsize: the
    weights, their gradients and up to two optimizer states, and each member's activations
    (the input is shared) kept for the backward pass with their gradients.

    Args:
        widths: the layer widths, inputs first.
        members: M, the members of the stack.
        rows: examples a step.
        itemsize: bytes per number (4 for float32).

    Returns:
        The estimate in bytes.

    Example:
        >>> training_bytes([2, 10, 1], members=1, rows=100, itemsize=4)
        13856
    """
    weights = members * sum(a * b + b for a, b in itertools.pairwise(widths))
    return (4 * weights + 3 * members * rows * sum(widths[1:])) * itemsize


# ----------------------------------------------------------------------------- losses

LossChoice: TypeAlias = Literal["cross_entropy", "bce", "mse", "none"]
_LOSSES: tuple[str, ...] = ("cross_entropy", "bce", "mse", "none")


def infer_loss(
    loss: str = "auto", *, outputs: int | None = None, labelled: bool = True
) -> LossChoice:
    """The loss ``"auto"`` stands for; any other name is checked and returned.

    Without labels there is no loss (``"none"``); with them, one output is a binary
    classifier's logit (``"bce"``), and more outputs, or outputs not known yet, are
    class logits (``"cross_entropy"``).

    Args:
        loss: ``"auto"``, or one of ``cross_entropy``, ``bce``, ``mse``, ``none``.
        outputs: the model's outputs, where known.
        labelled: whether the data has labels.

    Returns:
        The loss's name.

    Raises:
        ValueError: an unknown loss name.

    Example:
        >>> infer_loss(outputs=1), infer_loss(outputs=10), infer_loss(labelled=False)
        ('bce', 'cross_entropy', 'none')
    """
    if loss != "auto":
        return cast(LossChoice, check_choice("infer_loss", "loss", loss, ("auto", *_LOSSES)))
    if not labelled:
        return "none"
    return "bce" if outputs == 1 else "cross_entropy"


def _bce(output: Tensor, target: Tensor) -> Tensor:
    from torch.nn import functional as F

    return F.binary_cross_entropy_with_logits(output.reshape(target.shape), target.to(output.dtype))


def _mse(output: Tensor, target: Tensor) -> Tensor:
    from torch.nn import functional as F

    if target.dtype == torch.int64 and output.shape[-1] > 1:
        return F.mse_loss(output, F.one_hot(target, output.shape[-1]).to(output.dtype))
    return F.mse_loss(output.reshape(target.shape), target.to(output.dtype))


def loss_function(name: str) -> Callable[[Tensor, Tensor], Tensor] | None:
    """A loss by name, as ``fn(output, target) -> scalar`` (None for ``"none"``).

    ``cross_entropy``: torch's, over class logits and int labels. ``bce``: binary cross-
    entropy on one logit per example, σ applied inside. ``mse``: mean squared error; int
    labels with several outputs are compared as one-hot rows.

    Raises:
        ValueError: an unknown name (``"auto"`` too: resolve it with :func:`infer_loss`).

    Example:
        >>> fn = loss_function("mse")
        >>> fn(torch.tensor([[1.0, 0.0]]), torch.tensor([0])).item()
        0.0
    """
    from torch.nn import functional as F

    name = check_choice("loss_function", "name", name, _LOSSES)
    table: dict[str, Callable[[Tensor, Tensor], Tensor] | None] = {
        "cross_entropy": F.cross_entropy,
        "bce": _bce,
        "mse": _mse,
        "none": None,
    }
    return table[name]


# ----------------------------------------------------------------------------- histories


def labelled_history(
    result: TrainResult, grid: Grid, axes: Sequence[str] | None = None
) -> pd.DataFrame:
    """The run's per-step history, one row per (member, step), labelled by its grid.

    The columns of :meth:`~initlab.train.TrainResult.to_frame` (member, step, loss,
    grad_norm, clipped, lr: the rate scheduled at that step), then one column per axis,
    each member's value: named after the axis, but for ``lr``, whose column is ``base_lr``
    (the member's initial rate).

    Args:
        result: the run of the grid's members.
        grid: the grid the run trained, one member per column of ``result.loss``.
        axes: the axes to label (default all, in the grid's order).

    Returns:
        A pandas DataFrame.

    Raises:
        ValueError: the grid and the run differ in members, or an axis is not the grid's.
    """
    members = result.loss.shape[1]
    if len(grid) != members:
        raise ValueError(
            f"The 'grid' parameter of labelled_history must be a grid of the run's {members} "
            f"members. Got a grid of {len(grid)} instead. Give the grid the run was built from."
        )
    frame = result.to_frame()
    for axis in grid.axes if axes is None else axes:
        values = grid.column(axis)
        frame[AXES[axis][1]] = frame["member"].map(lambda i, v=values: v[i])
    return frame


# ----------------------------------------------------------------------------- factories


class FactoryError(Exception):
    """The user's own code failed while a model was loaded: ``what`` names the step (the
    import, the factory's call), and ``__cause__`` is the error it raised."""

    def __init__(self, what: str, error: BaseException) -> None:
        super().__init__(f"{what} raised {type(error).__name__}: {error}")
        self.what = what
        self.error = error


_FORM = "expected MODULE:FACTORY, e.g. mypackage.models:build or nets.py:deep(depth=30). Got {!r}."


def _import(where: str) -> ModuleType:
    """The module ``where`` names: a .py file, or a module importable from here."""
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise FileNotFoundError(f"no file {where!r}")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"{where!r} cannot be loaded as a module")
            module = importlib.util.module_from_spec(spec)
            # Registered while it runs, as an import would: a dataclass defined in the
            # file looks its module up in sys.modules. Never over a module of that name.
            registered = sys.modules.setdefault(path.stem, module) is module
            try:
                spec.loader.exec_module(module)
            finally:
                if registered:
                    del sys.modules[path.stem]
            return module
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        return importlib.import_module(where)
    except (ImportError, FileNotFoundError) as error:
        fix = "Give a module importable from here or a .py file."
        message = f"cannot import {where!r}: {error}. {fix}"
        if isinstance(error, FileNotFoundError):
            raise FileNotFoundError(message) from error
        raise ImportError(message) from error
    except Exception as error:  # the module's own code failed: a syntax error, a NameError…
        raise FactoryError(f"importing {where!r}", error) from error


@contextlib.contextmanager
def _beside(where: str) -> Iterator[None]:
    """While loading from the file ``where``, its folder first on ``sys.path``, so that the
    file may import the files beside it (``from blocks import Block``), as Python does for
    a script it runs. Afterwards the folder leaves ``sys.path`` and the modules imported
    from it leave ``sys.modules`` (the model keeps what it uses): another file's
    ``blocks.py`` is then never taken for this one's."""
    if not where.endswith(".py"):
        yield
        return
    folder = Path(where).resolve().parent
    before = set(sys.modules)
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        if sys.path and sys.path[0] == str(folder):
            del sys.path[0]
        elif str(folder) in sys.path:  # pragma: no cover - the user's code reordered it
            sys.path.remove(str(folder))
        # Only the modules found through the folder itself: a package under another
        # sys.path entry inside it (a project's own .venv) stays imported.
        others = [
            Path(p).resolve()
            for p in sys.path
            if p and Path(p).resolve() != folder and Path(p).resolve().is_relative_to(folder)
        ]
        for name in set(sys.modules) - before:
            file = getattr(sys.modules[name], "__file__", None)
            if file is None:
                continue
            path = Path(file).resolve()
            if path.is_relative_to(folder) and not any(path.is_relative_to(o) for o in others):
                del sys.modules[name]


def load_factory(target: str) -> nn.Module:
    """Build the model named by ``MODULE:FACTORY`` or ``path/to/file.py:FACTORY(arg=1)``.

    MODULE is imported (the current directory is put on ``sys.path``), or the .py file
    run as a module, with its folder first on ``sys.path`` while it is imported and the
    factory called (so it may import the files beside it); FACTORY is an attribute of
    it: an ``nn.Module``, or a callable returning one, called with the literal arguments
    given in parentheses (strings in quotes).

    Args:
        target: ``"MODULE:FACTORY"``, ``"MODULE:FACTORY(args)"`` or ``"file.py:…"``.

    Returns:
        The model.

    Raises:
        ValueError: ``target`` not of that form, a call with non-literal arguments, or no
            attribute FACTORY in the module.
        FileNotFoundError: no such .py file.
        ImportError: the module cannot be imported (the original error is ``__cause__``).
        FactoryError: importing the module or calling the factory raised (the user's own
            code; the original error is ``__cause__``).
        TypeError: FACTORY is not an ``nn.Module`` and does not return one.

    Example:
        >>> load_factory("torch.nn:Linear(3, 2)")
        Linear(in_features=3, out_features=2, bias=True)
    """
    from initlab._spec import parse_call

    where, sep, call = target.rpartition(":")
    if not sep or not where or not call:
        raise ValueError(_FORM.format(target))
    name = call.split("(", 1)[0].strip()  # as written: parse_call lower-cases the name
    _, args, kwargs = parse_call(call, "Factory call", "'deep_mlp(depth=30)'", bare_names=False)
    with _beside(where):
        module = _import(where)
        if not name.isidentifier() or not hasattr(module, name):
            public = sorted(n for n in vars(module) if not n.startswith("_"))
            raise ValueError(
                f"{where!r} has no attribute {name!r}. It has: {', '.join(public[:20])}."
            )
        built = getattr(module, name)
        if not isinstance(built, nn.Module) and callable(built):
            try:
                built = built(*args, **kwargs)
            except Exception as error:
                raise FactoryError(f"the factory {call.strip()!r} of {where!r}", error) from error
    if not isinstance(built, nn.Module):
        raise TypeError(
            f"expected {target!r} to be an nn.Module or return one. Got {type(built).__name__}."
        )
    return built
