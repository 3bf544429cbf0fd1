"""The ``initlab`` command: a thin shell that prints what the library returns.

Every bad input ends the same way: one line on stderr, ``error: OPTION: …`` saying what
was expected, what was got and how to fix it, and exit code 2. Options are checked, and
every output path too, before any work starts. Text the user typed is never read as Rich
markup. Ctrl-C exits with code 130 and one line, after keeping what was computed.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import torch
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from initlab import __version__, experiments
from initlab import init as initmod
from initlab import train as train_mod
from initlab._io import check_output_file, check_output_folder, write_atomic
from initlab._spec import parse_call
from initlab._validation import did_you_mean

if TYPE_CHECKING:
    from initlab.data import Dataset
    from initlab.models import Stack
    from initlab.probe import Probe

_SHAPE = re.compile(r"^\d+([x×]\d+)*$")
_HISTORY_SUFFIXES = (".csv", ".parquet")
_FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
# A run of more steps than this would take days even for the smallest net (~10⁵ steps/s);
# past 2⁶³ the engine's counters overflow. A number this large is a typo.
_MAX_STEPS = 10**9
_MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit seed


class _OneLineErrors(TyperGroup):
    """Usage errors (an unknown option, a value of the wrong type) as one line on stderr."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            # Not standalone: typer would draw a usage panel over several lines.
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as error:
            code = error.exit_code
            # no_args_is_help: the help is already printed, and is the answer.
            if type(error).__name__ != "NoArgsIsHelpError":
                _print_error(_usage_message(error, argv))
        except typer.Abort:
            _print_error("aborted.")
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="initlab",
    help="See whether a network trains, and why not: initialization, normalization, "
    "batching, clipping, gradient diagnosis.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    cls=_OneLineErrors,
)


# ----------------------------------------------------------------------------- errors


def _one_line(text: str) -> str:
    """A message on one line: a line break becomes a space after punctuation, ". " before
    a new sentence, and "; " between the items of a list."""
    parts = [part.strip() for part in str(text).splitlines() if part.strip()]
    line = parts[0] if parts else ""
    for part in parts[1:]:
        if line.endswith((":", ".", ";", ",", "?", "!")):
            line += " " + part
        else:
            line += (". " if part[0].isupper() else "; ") + part
    return line


def _print_error(message: str) -> None:
    # soft_wrap: one line whatever the terminal's width; Text: never read as markup.
    console = Console(stderr=True, soft_wrap=True, highlight=False)
    console.print(Text.assemble(("error:", "bold red"), " ", _one_line(message)))


def _fail(message: object, option: str | None = None) -> NoReturn:
    """Print ``error: OPTION: message`` as one line on stderr and exit with code 2."""
    text = str(message) if str(message) else type(message).__name__
    _print_error(f"{option}: {text}" if option else text)
    raise typer.Exit(2)


def _usage_message(error: typer.TyperException, argv: Sequence[str]) -> str:
    message = error.format_message().rstrip()
    param = getattr(error, "param", None)
    opts = getattr(param, "opts", None) or []
    if isinstance(error, typer.BadParameter) and opts and "Got " not in message:
        for i, arg in reversed(list(enumerate(argv))):  # the last one given is the one used
            name, eq, value = arg.partition("=")
            if name in opts and (eq or i + 1 < len(argv)):
                got = value if eq else argv[i + 1]
                message += f"{_stop(message)} Got {got!r}."
                break
    ctx = getattr(error, "ctx", None)
    if ctx is not None:
        message += f"{_stop(message)} See '{ctx.command_path} --help'."
    return message


def _stop(text: str) -> str:
    """The full stop ``text`` needs before another sentence, if any."""
    return "" if text.endswith((".", "?", "!")) else "."


def _interrupted(message: str) -> NoReturn:
    Console(stderr=True, soft_wrap=True, highlight=False).print(
        Text.assemble(("interrupted:", "yellow"), " ", message)
    )
    raise typer.Exit(130)


def _raised_in(error: BaseException, module: str) -> bool:
    """Whether ``error`` was raised inside ``module`` (a frame of its traceback is there)."""
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") == module:
            return True
        tb = tb.tb_next
    return False


def _memory() -> int | None:
    """The machine's physical memory in bytes, where the OS tells."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def _path(path: Path | str) -> str:
    """A path to print: as it is, or quoted with escapes if it holds a control character
    (which a terminal would act on or drop)."""
    return str(path) if str(path).isprintable() else repr(str(path))


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB"


# ----------------------------------------------------------------------------- options


def _version(value: bool) -> None:
    if value:
        typer.echo(f"initlab {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """initlab: weight init, batch norm, batching, clipping, and why a network will not train."""


def parse_shape(text: str, option: str = "--shape") -> tuple[int, ...]:
    """``"256x128"`` → (256, 128); ``"64x3x3x3"`` → (64, 3, 3, 3)."""
    cleaned = text.strip().lower()
    if not _SHAPE.match(cleaned):
        _fail(
            f"expected OUTxIN (a Linear weight) or OUTxINxKxK (a conv weight), e.g. 256x128 "
            f"or 64x3x3x3. Got {text!r}.",
            option,
        )
    shape = tuple(int(part) for part in re.split("[x×]", cleaned))
    if any(s == 0 for s in shape):
        _fail(f"every dimension must be at least 1. Got {text!r}.", option)
    if math.prod(shape) > 2**63 - 1:
        _fail(
            f"expected a shape torch can hold, at most 2^63 - 1 values. Got {text!r} "
            f"({math.prod(shape):.3g} values).",
            option,
        )
    return shape


def split_list(text: str) -> list[str]:
    """Split on top-level commas: ``"he_normal,normal(0, 1)"`` → two items (empty ones too)."""
    items, depth, current = [], 0, ""
    for ch in text:
        depth += {"(": 1, ")": -1, "[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth <= 0:
            items.append(current.strip())
            current = ""
        else:
            current += ch
    items.append(current.strip())
    return items


def _items(text: str, option: str, what: str, example: str) -> list[str]:
    """The comma-separated items of ``option``: at least one, none empty."""
    items = split_list(text)
    if not any(items):
        _fail(f"expected {what} separated by commas, e.g. {example}. Got {text!r}.", option)
    if not all(items):
        where = items.index("") + 1
        _fail(
            f"expected {what} separated by commas, e.g. {example}. Got {text!r}, whose item "
            f"{where} is empty: remove the extra comma.",
            option,
        )
    return items


def _numbers(text: str, option: str, example: str) -> list[float]:
    """Positive finite numbers separated by commas."""
    values = []
    for item in _items(text, option, "positive numbers", example):
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            _fail(
                f"expected positive finite numbers separated by commas, e.g. {example}. "
                f"Got {item!r}" + (f" in {text!r}." if item != text.strip() else "."),
                option,
            )
        values.append(value)
    return values


def _choice(value: str, choices: Sequence[str], option: str) -> str:
    if value in choices:
        return value
    _fail(
        f"expected one of {', '.join(choices)}. Got {value!r}.{did_you_mean(value, choices)}",
        option,
    )


def _choices(text: str, choices: Sequence[str], option: str, what: str) -> list[str]:
    return [
        _choice(item, choices, option) for item in _items(text, option, what, ",".join(choices[:2]))
    ]


def _count(value: int | None, option: str, low: int = 1, high: int = _MAX_STEPS) -> None:
    if value is not None and not low <= value <= high:
        _fail(f"expected an integer from {low:,} to {high:,}. Got {value:,}.", option)


def _spec(text: str, option: str, what: str) -> initmod.InitSpec:
    try:
        return initmod.parse_spec(text)
    except (ValueError, TypeError, ArithmeticError) as error:
        _fail(f"{error} (in {what} {text!r})" if text not in str(error) else error, option)


def _device(device: str) -> torch.device:
    try:
        return experiments.resolve_device(device)
    except ValueError as error:
        _fail(error, "--device")


def _output_file(path: Path | None, suffixes: Sequence[str], option: str) -> None:
    if path is not None:
        try:
            check_output_file(path, suffixes, option)
        except ValueError as error:
            _fail(error)


def _data_spec(text: str, option: str = "--data") -> tuple[str, dict[str, Any]]:
    """``name`` or ``name(key=value, …)``: the data set and its loader's options."""
    from initlab import data as data_mod

    name, _, rest = text.partition("(")
    name = name.strip()
    _choice(name, data_mod.DATASETS, option)
    if not rest:
        return name, {}
    example = "'circles(n=400, noise=0.1, test_size=0.5)'"
    try:
        _, args, options = parse_call("d(" + rest, option, example)
        if args:
            raise ValueError
    except ValueError:
        _fail(f"expected a name or name(key=value, …), e.g. {example}. Got {text!r}.", option)
    return name, options


def _load_data(text: str, option: str = "--data") -> Any:
    from initlab import data as data_mod

    name, options = _data_spec(text, option)
    try:
        return data_mod.load(name, **options)
    except (FileNotFoundError, ValueError, TypeError) as error:
        _fail(error, option)


# ----------------------------------------------------------------------------- schemes


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _bounds(draw: initmod.Draw) -> str:
    if draw.low is None or draw.high is None:
        return "—"
    if draw.distribution == "constant":
        return _fmt(draw.low)
    if draw.low == -draw.high:
        return f"±{_fmt(draw.high)}"
    return f"[{_fmt(draw.low)}, {_fmt(draw.high)}]"


def _fans(draw: initmod.Draw) -> str:
    if draw.fan is None or draw.fan_in is None:
        return "—"
    if draw.fan == "fan_in" or draw.fan_out is None:
        return f"in={draw.fan_in}"
    if draw.fan == "fan_out":
        return f"out={draw.fan_out}"
    if draw.fan == "fan_avg":
        return f"avg={(draw.fan_in + draw.fan_out) / 2:g}"
    return f"geo={(draw.fan_in * draw.fan_out) ** 0.5:.4g}"


@app.command()
def schemes(
    shape: Annotated[
        str | None,
        typer.Option(help="A weight shape, OUTxIN or OUTxINxKxK: show the std and bounds drawn."),
    ] = None,
    activation: Annotated[
        str | None,
        typer.Option(help="An activation (relu, tanh, …): its gain goes to xavier, kaiming, …"),
    ] = None,
) -> None:
    """Every init scheme: its formula, the fans it uses and, for --shape, its std and bounds."""
    dims = parse_shape(shape) if shape is not None else None
    if activation is not None:
        try:
            gain = initmod.calculate_gain(activation)
        except (ValueError, TypeError) as error:
            _fail(error, "--activation")
    title = "init schemes"
    if dims is not None:
        title += f" for a {'x'.join(map(str, dims))} weight"
        if len(dims) >= 2:
            fan_in, fan_out = initmod.calculate_fans(dims)
            title += f" (fan_in {fan_in}, fan_out {fan_out})"
    if activation is not None:
        title += f"\ngain g = {gain:.4g} ({activation}) for xavier, kaiming, orthogonal"
    table = Table(title=escape(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("scheme", style="bold cyan", no_wrap=True)
    table.add_column("draws")
    table.add_column("fan", no_wrap=True)
    if dims is not None:
        table.add_column("std", justify="right")
        table.add_column("bounds", justify="right")
    for name, scheme in initmod.schemes().items():
        kwargs = dict(scheme.example)
        if activation is not None and scheme.activation_arg is not None:
            kwargs[scheme.activation_arg] = activation
        spec = initmod.InitSpec(name, kwargs)
        style = "dim" if scheme.alias_of else None
        label = (
            f"{name}({', '.join(map(repr, scheme.example.values()))})" if scheme.example else name
        )
        cells = [Text(label), Text(scheme.formula)]
        if dims is None:
            table.add_row(*cells, Text(scheme.fans), style=style)
            continue
        try:
            draw = spec.describe(dims)
        except (ValueError, TypeError, ArithmeticError):
            table.add_row(*cells, Text(scheme.fans), "n/a", "wrong dims", style=style)
            continue
        table.add_row(*cells, _fans(draw), _fmt(draw.std), _bounds(draw), style=style)
    console = Console()
    console.print(table)
    if dims is None:
        console.print(
            "Add --shape 256x128 (or 64x3x3x3) to see the std and bounds each draws with."
        )


@app.command()
def gains() -> None:
    """Every activation's gain: torch's table value, the measured 1/√E[φ(z)²], and why."""
    table = Table(title="gains (calculate_gain)", title_justify="left")
    table.add_column("activation", style="bold cyan", no_wrap=True)
    table.add_column("table", justify="right")
    table.add_column("measured", justify="right")
    table.add_column("where the table value comes from")
    from initlab import activations

    # The registry's names, aliases too; torch's layer names (conv1d, …: gain 1) are not
    # activations and are not listed.
    for name, act in activations.by_name().items():
        table_gain = initmod.calculate_gain(name)
        measured = initmod.calculate_gain(name, method="measured")
        style = "yellow" if abs(table_gain - measured) > 1e-9 else None
        table.add_row(
            Text(name), f"{table_gain:.4f}", f"{measured:.4f}", Text(act.note), style=style
        )
    Console().print(table)


# ----------------------------------------------------------------------------- train


class _Bar(train_mod.Observer):
    """A rich progress bar: it hears a run at each stopping check (an engine observer),
    and draws any :class:`~initlab.train.Progress` it is called with (the lessons' runner
    calls it so)."""

    def __init__(self, label: str) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            transient=True,
        )
        self.task = self.progress.add_task(escape(label), total=None, info="")

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_step(self, run: train_mod.Run) -> None:
        # At a stopping check the engine has just read the device: this read is free.
        self(run.progress())

    def __call__(self, p: train_mod.Progress) -> None:
        info = (
            f"{p.active}/{p.members} training · {p.steps_per_second:,.0f} steps/s · "
            f"loss {p.best_loss:.4g}…{p.worst_loss:.4g}"
        )
        self.progress.update(self.task, completed=p.step, total=p.total, info=info)


def _widths(text: str, option: str = "--model") -> list[int]:
    example = "2,10,5,1 (inputs, hidden widths…, outputs)"
    widths = []
    for item in _items(text, option, "layer widths", example):
        try:
            width = int(item)
        except ValueError:
            width = 0
        if width < 1:
            _fail(
                f"expected widths (integers >= 1) separated by commas, e.g. {example}. "
                f"Got {item!r}" + (f" in {text!r}." if item != text.strip() else "."),
                option,
            )
        widths.append(width)
    if len(widths) < 2:
        _fail(
            f"expected at least two widths, the inputs and the outputs, e.g. {example}. "
            f"Got {text!r}.",
            option,
        )
    return widths


def _batch_size(text: str, option: str = "--batch-size") -> int | None:
    """None for "full"."""
    cleaned = text.strip().lower()
    if cleaned == "full":
        return None
    try:
        size = int(cleaned)
    except ValueError:
        size = 0
    if size < 1:
        _fail(
            f"expected 'full' (batch GD), 1 (SGD) or an integer k >= 1 (mini-batch). Got {text!r}.",
            option,
        )
    return size


def _check_memory(widths: Sequence[int], members: int, rows: int, itemsize: int) -> None:
    """Refuse, before allocating, a stack that cannot fit in this machine's memory."""
    available = _memory()
    if available is None:
        return
    need = experiments.training_bytes(widths, members, rows, itemsize)
    if need > available:
        _fail(
            f"expected a stack that fits in memory. Got {members:,} member(s) of "
            f"{','.join(map(str, widths))} on {rows:,} examples per step: about "
            f"{_gb(need)} to train, and this machine has {_gb(available)}. Use smaller widths, "
            "fewer members or a smaller --batch-size.",
            "--model",
        )


@dataclass(frozen=True)
class _TrainOptions:
    """The options of ``initlab train``, as typed."""

    data: str
    model: str
    activation: str
    batch_norm: str
    init: str
    bias_init: str
    seeds: int
    seed: int
    lr: str
    optimizer: str
    loss: str
    batch_size: str
    drop_last: bool
    steps: int | None
    epochs: int | None
    schedule: str
    clip: str
    clip_threshold: str
    tol: float | None
    window: int | None
    dtype: str
    device: str
    save_history: Path | None
    figure: Path | None


@dataclass(frozen=True)
class _TrainPlan:
    """The options checked and parsed: everything the run needs but its data."""

    options: _TrainOptions
    widths: list[int]
    grid: experiments.Grid  # the members: --init × --seeds × --lr × --optimizer × thresholds
    size: int | None  # examples per step; None for the full batch
    loss: str  # --loss, with auto resolved
    dtype: torch.dtype

    @property
    def clipped(self) -> bool:
        return self.options.clip != "none"

    @property
    def axes(self) -> list[str]:
        """The grid's axes that mean something: the thresholds only with --clip."""
        return [axis for axis in self.grid.axes if axis != "clip_threshold" or self.clipped]


def _check_model(o: _TrainOptions) -> tuple[list[int], list[str]]:
    """The data, the network and its init: the widths and the init specs."""
    from initlab import models

    _data_spec(o.data)
    widths = _widths(o.model)
    # The registry's activations that have a module: what the builders make.
    _choice(o.activation, tuple(models.ACTIVATIONS), "--activation")
    _choice(o.batch_norm, ("none", "before", "after"), "--batch-norm")
    inits = _items(o.init, "--init", "init specs", "he_normal,xavier_normal")
    for spec in inits:
        _spec(spec, "--init", "init spec")
    _spec(o.bias_init, "--bias-init", "bias init spec")
    return widths, inits


def _check_budget(o: _TrainOptions) -> list[float]:
    """The budget, the schedule, clipping and stopping: the clipping thresholds."""
    if o.steps is None and o.epochs is None:
        _fail("expected a budget: --steps N or --epochs N (with --tol a member may stop sooner).")
    _count(o.steps, "--steps")
    _count(o.epochs, "--epochs")
    try:
        train_mod.schedule_factor(o.schedule, 0)
    except (ValueError, TypeError, ArithmeticError) as error:
        _fail(error, "--schedule")
    _choice(o.clip, ("none", "value", "norm", "agc"), "--clip")
    thresholds = _numbers(o.clip_threshold, "--clip-threshold", "0.5,1,5")
    if o.tol is not None and not (math.isfinite(o.tol) and o.tol >= 0):
        _fail(f"expected a finite number >= 0, e.g. 1e-6. Got {o.tol}.", "--tol")
    if o.window is not None and o.tol is None:
        _fail(
            "expected --tol with --window: the window is where --tol compares the cost. "
            f"Got --window {o.window} alone. Add --tol, e.g. --tol 1e-6.",
            "--window",
        )
    _count(o.window, "--window")
    return thresholds


def _check_dtype(o: _TrainOptions, rates: list[float], thresholds: list[float]) -> torch.dtype:
    """--dtype, and that it can hold the learning rates and thresholds."""
    if o.dtype not in ("float32", "float64"):
        why = " (the engine trains in float32 or float64 only)" if "16" in o.dtype else ""
        _fail(f"expected float32 or float64{why}. Got {o.dtype!r}.", "--dtype")
    dtype: torch.dtype = getattr(torch, o.dtype)
    largest = torch.finfo(dtype).max
    for option, text, values in (
        ("--lr", o.lr, rates),
        ("--clip-threshold", o.clip_threshold, thresholds),
    ):
        if max(values) > largest:
            _fail(
                f"expected numbers a {o.dtype} can hold (at most {largest:.4g}). Got {text!r}. "
                "Give a smaller number, or --dtype float64.",
                option,
            )
    return dtype


def _parse_train(o: _TrainOptions) -> _TrainPlan:
    """Every option and output checked, in the order of the options, before any work."""
    widths, inits = _check_model(o)
    _count(o.seeds, "--seeds", high=1_000_000)
    if not 0 <= o.seed <= 2**32 - o.seeds:
        _fail(f"expected a seed from 0 to 2³² − 1 − --seeds. Got {o.seed}.", "--seed")
    rates = _numbers(o.lr, "--lr", "0.01,0.1")
    optimizers = _choices(o.optimizer, train_mod.OPTIMIZERS, "--optimizer", "optimizers")
    _choice(o.loss, ("auto", *train_mod.LOSSES), "--loss")
    size = _batch_size(o.batch_size)
    thresholds = _check_budget(o)
    dtype = _check_dtype(o, rates, thresholds)
    _device(o.device)
    _output_file(o.save_history, _HISTORY_SUFFIXES, "--save-history")
    _output_file(o.figure, _FIGURE_SUFFIXES, "--figure")
    grid = experiments.member_grid(
        init=inits,
        seed=range(o.seed, o.seed + o.seeds),
        lr=rates,
        optimizer=optimizers,
        clip_threshold=thresholds,
    )
    loss = experiments.infer_loss(o.loss, outputs=widths[-1])
    return _TrainPlan(o, widths, grid, size, loss, dtype)


def _check_data(plan: _TrainPlan, ds: Dataset) -> None:
    """What the options ask of the data: examples, features, steps and memory."""
    o, widths, size = plan.options, plan.widths, plan.size
    if size is not None and size > ds.n_train:
        _fail(
            f"expected at most the {ds.n_train:,} training examples of {o.data}. Got {size:,}. "
            "Use --batch-size full for all of them.",
            "--batch-size",
        )
    features = tuple(ds.x_train.shape[1:])
    if features != (widths[0],):
        n = math.prod(features)
        _fail(
            f"expected the first width to be {n}, the number of features of {o.data}. Got "
            f"{widths[0]} in {o.model!r}. Use --model {','.join(map(str, [n, *widths[1:]]))}.",
            "--model",
        )
    total = experiments.step_budget(o.steps, o.epochs, ds.n_train, size or "full", o.drop_last)
    if total > _MAX_STEPS:
        _fail(
            f"expected a run of at most {_MAX_STEPS:,} steps. Got {o.epochs:,} epochs of "
            f"{ds.n_train:,} examples in batches of {size or ds.n_train:,}: {total:,} steps.",
            "--epochs",
        )
    if o.tol is not None and (o.window or 100) >= total:
        _fail(
            f"expected a window shorter than the run ({total:,} steps), or --tol could "
            f"never stop a member. Got {o.window or 100:,}"
            f"{'' if o.window else ' (the default)'}. Give a smaller --window.",
            "--window",
        )
    itemsize = torch.empty((), dtype=plan.dtype).element_size()
    _check_memory(widths, len(plan.grid), size or ds.n_train, itemsize)


def _train_config(plan: _TrainPlan) -> train_mod.TrainConfig:
    o = plan.options
    return train_mod.TrainConfig(
        loss=plan.loss,  # type: ignore[arg-type]
        schedule=o.schedule,
        batch_size="full" if plan.size is None else plan.size,
        drop_last=o.drop_last,
        clip=None if o.clip == "none" else o.clip,  # type: ignore[arg-type]
        steps=o.steps,
        epochs=o.epochs,
        tol=o.tol,
        window=o.window or 100,
        log_every=max(1, (o.steps or 1000) // 1000),
        check_every=100,
        **plan.grid.train_fields(),  # optimizer, lr, seeds and clip_threshold per member
    )


def _stack(plan: _TrainPlan) -> Stack:
    """The MLP stack of the grid's members, each initialized with its spec and seed."""
    from initlab import models

    o = plan.options
    stack = models.mlp(
        plan.widths,
        o.activation,
        None if o.batch_norm == "none" else o.batch_norm,  # type: ignore[arg-type]
        members=len(plan.grid),
        dtype=plan.dtype,
        device=o.device,
    )
    models.init_members(stack, bias=o.bias_init, **plan.grid.init_fields())
    return stack


_Data = Annotated[
    str,
    typer.Option(
        help="circles, moons, xor, blobs, spiral, digits, mnist, fashion-mnist, mnist1d; "
        "options in brackets, e.g. 'circles(n=400, noise=0.1)'"
    ),
]
_Model = Annotated[str, typer.Option(help="MLP widths, e.g. 2,10,5,1")]
_Activation = Annotated[str, typer.Option(help="relu, tanh, sigmoid, …")]
_BatchNorm = Annotated[str, typer.Option(help="none, before or after the activation")]
_Init = Annotated[str, typer.Option(help="init specs, comma-separated: each is a member")]
_BiasInit = Annotated[str, typer.Option(help="the bias init spec")]
_Seeds = Annotated[
    int, typer.Option(help="seeds per setting (--seed … --seed + n − 1): init and shuffle")
]
_Seed = Annotated[int, typer.Option(help="the first seed")]
_Lr = Annotated[str, typer.Option(help="learning rates, comma-separated")]
_Optimizer = Annotated[
    str, typer.Option(help="sgd, momentum, nesterov, rmsprop, adam, adamw; comma-separated")
]
_Loss = Annotated[str, typer.Option(help="auto, cross_entropy, bce or mse")]
_BatchSize = Annotated[str, typer.Option(help="full, 1 or k")]
_DropLast = Annotated[bool, typer.Option(help="drop each epoch's last, smaller batch")]
_Steps = Annotated[int | None, typer.Option(help="step budget")]
_Epochs = Annotated[int | None, typer.Option(help="epoch budget")]
_Schedule = Annotated[
    str, typer.Option(help="constant, step_decay(1000), exponential(0.99), cosine(100)")
]
_Clip = Annotated[str, typer.Option(help="none, value, norm or agc")]
_Thresholds = Annotated[str, typer.Option(help="thresholds, comma-separated")]
_Tol = Annotated[
    float | None,
    typer.Option(help="stop a member when its cost changes less than this over --window steps"),
]
_Window = Annotated[
    int | None, typer.Option(help="steps over which --tol compares the cost (default 100)")
]
_Dtype = Annotated[str, typer.Option(help="float32 or float64")]
_Device = Annotated[str, typer.Option(help="cpu or cuda")]
_History = Annotated[Path | None, typer.Option(help="write the history (.csv or .parquet)")]
_LossFigure = Annotated[
    Path | None, typer.Option(help="write the loss curves (.png, .pdf or .svg)")
]


@app.command("train")
def train_command(
    data: _Data = "circles",
    model: _Model = "2,10,5,1",
    activation: _Activation = "relu",
    batch_norm: _BatchNorm = "none",
    init: _Init = "he_normal",
    bias_init: _BiasInit = "zeros",
    seeds: _Seeds = 1,
    seed: _Seed = 0,
    lr: _Lr = "0.01",
    optimizer: _Optimizer = "sgd",
    loss: _Loss = "auto",
    batch_size: _BatchSize = "full",
    drop_last: _DropLast = False,
    steps: _Steps = None,
    epochs: _Epochs = None,
    schedule: _Schedule = "constant",
    clip: _Clip = "none",
    clip_threshold: _Thresholds = "1.0",
    tol: _Tol = None,
    window: _Window = None,
    dtype: _Dtype = "float32",
    device: _Device = "cpu",
    save_history: _History = None,
    figure: _LossFigure = None,
) -> None:
    """Train every combination of --init × --seeds × --lr × --optimizer × --clip-threshold
    as one stack, and print a table per member."""
    plan = _parse_train(_TrainOptions(**locals()))  # the locals are the options, here only
    stage = "before training began: nothing was computed"
    try:
        ds = _load_data(data)
        _check_data(plan, ds)
        config = _train_config(plan)
        stack = _stack(plan)
        with _Bar(f"{len(plan.grid)} members") as bar:
            result = train_mod.train(stack, ds, config, observers=[bar])
        stage = "while writing the outputs; each file is either complete or not written"
        _print_train(ds.name, plan.grid, plan.axes, result)
        if save_history is not None:
            _save_history(result, plan.grid, plan.axes, save_history)
        if figure is not None:
            _loss_figure(result, plan.grid, plan.axes, figure)
    except (ValueError, TypeError, ArithmeticError) as error:
        _fail(error)
    except torch.OutOfMemoryError as error:
        _fail(f"out of memory: {error} Use smaller widths, fewer members or a smaller batch.")
    except KeyboardInterrupt:
        _interrupted(stage)
    if result.interrupted:
        kept = [o for o, p in (("--save-history", save_history), ("--figure", figure)) if p]
        every = config.log_every
        _interrupted(
            f"stopped after step {result.total_steps:,}; the table"
            + (f" and {' and '.join(kept)}" if kept else "")
            + " hold the run up to it"
            + (f" (the history logs every {every:,} steps)." if kept and every > 1 else ".")
        )


def _show(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


_HEADINGS = {"clip_threshold": "clip"}  # an axis's column heading, where not its name


def _print_train(name: str, grid: experiments.Grid, axes: list[str], result: Any) -> None:
    # Columns only for what varies across members; what is fixed goes in the title.
    varying = [axis for axis in grid.varying() if axis in axes]
    fixed = [
        f"{_HEADINGS.get(axis, axis)} {_show(grid[0][axis])}"
        for axis in axes
        if axis not in varying
    ]
    title = f"{name}: {len(grid)} members, {result.total_steps} steps in {result.seconds:.1f} s"
    title += " (interrupted)" if result.interrupted else ""
    title += f"\n{', '.join(fixed)}" if fixed else ""
    table = Table(title=escape(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right")
    for axis in varying:
        table.add_column(_HEADINGS.get(axis, axis), no_wrap=axis == "init")
    for column in ("stopped", "final loss", "train acc", "test acc"):
        table.add_column(column, justify="right", no_wrap=True)
    styles = {"diverged": "red", "converged": "green", "interrupted": "yellow"}
    for member, m in zip(grid, result.members, strict=True):
        acc = [f"{a:.4f}" if a is not None else "—" for a in (m.train_accuracy, m.test_accuracy)]
        cells = [Text(_show(member[axis])) for axis in varying]
        table.add_row(
            str(m.member),
            *cells,
            f"{m.status} {m.stopped_step}",
            f"{m.final_loss:.4g}",
            *acc,
            style=styles.get(m.status),
        )
    Console().print(table)


def _save_history(result: Any, grid: experiments.Grid, axes: list[str], path: Path) -> None:
    frame = experiments.labelled_history(result, grid, axes)
    if path.suffix.lower() == ".parquet":
        write: Callable[[Path], object] = frame.to_parquet
    else:
        write = lambda tmp: frame.to_csv(tmp, index=False)  # noqa: E731
    try:
        write_atomic(path, write)
    except OSError as error:
        _fail(f"cannot write {str(path)!r}: {error}. Choose another path.", "--save-history")
    Console().print(f"history: {_path(path)}", markup=False, highlight=False, soft_wrap=True)


def _loss_figure(result: Any, grid: experiments.Grid, axes: list[str], path: Path) -> None:
    from initlab.report import loss_curves

    try:
        written = loss_curves(result.steps, result.loss, grid.labels(axes), path)
    except OSError as error:
        _fail(f"cannot write {str(path)!r}: {error}. Choose another path.", "--figure")
    Console().print(f"figure: {_path(written)}", markup=False, highlight=False, soft_wrap=True)


# ----------------------------------------------------------------------------- lessons


class _LessonBar(_Bar):
    """The progress bar of a lesson: its stage on the left, the engine's numbers after."""

    def stage(self, text: str) -> None:
        self.progress.reset(self.task, description=escape(text), total=None, info="")


@app.command("lessons")
def lessons_command() -> None:
    """List the lessons: each is one command, `initlab lesson NAME`."""
    from initlab.lessons import LESSONS

    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("lesson", style="bold")
    table.add_column("what it shows")
    for name, summary in LESSONS.items():
        table.add_row(Text(name), Text(summary))
    console = Console()
    console.print(table)
    console.print(
        Text("Run one with: initlab lesson NAME [--quick] [--device cuda] [--out DIR]", "dim")
    )


@app.command("lesson")
def lesson_command(
    name: Annotated[str, typer.Argument(help="the lesson: see `initlab lessons`")],
    out: Annotated[
        Path | None, typer.Option(help="the report's folder [default: ./initlab-reports/NAME]")
    ] = None,
    quick: Annotated[bool, typer.Option(help="a short run (seconds), same lesson")] = False,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
) -> None:
    """Run a lesson as one stack, print its findings, write its HTML report and figures."""
    from initlab.lessons import LESSONS, run

    if name not in LESSONS:
        _fail(
            f"expected one of {', '.join(LESSONS)} (see `initlab lessons`). Got {name!r}."
            + did_you_mean(name, LESSONS),
            "NAME",
        )
    _device(device)
    folder = out if out is not None else Path("initlab-reports") / name
    try:
        check_output_folder(folder, "--out")
    except ValueError as error:
        _fail(error)
    console = Console()
    try:
        bar = _LessonBar(f"lesson {name}")
        with bar:
            lesson = run(name, folder, quick=quick, device=device, progress=bar)
    except KeyboardInterrupt:
        report = folder / "index.html"
        _interrupted(
            f"the report so far: {_path(report)}" if report.exists() else "no report written."
        )
    except (FileNotFoundError, ValueError) as error:
        # The data loader's messages say where it looked and how to point it at the data.
        if isinstance(error, FileNotFoundError) or _raised_in(error, "initlab.data"):
            _fail(error, f"lesson {name}")
        raise
    for line in lesson.lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(f"\n{lesson.title}", style="bold", markup=False, highlight=False, soft_wrap=True)
    for finding in lesson.findings:
        console.print(f" • {finding}", markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"{lesson.seconds:.1f} s; report: {_path(lesson.report or '')} "
        f"({len(lesson.figures)} figures beside it)",
        style="dim",
        markup=False,
        highlight=False,
    )


# ----------------------------------------------------------------------------- probe


def _failed(what: str, error: BaseException, debug: bool) -> NoReturn:
    """A user's code raised: one line naming it, or its traceback with --debug."""
    if debug:
        raise error
    _fail(
        f"{what} raised {type(error).__name__}: {error}. Fix it, or add --debug for its traceback."
    )


def _load_factory(target: str, debug: bool) -> torch.nn.Module:
    """The model of :func:`initlab.experiments.load_factory`; its errors in one line."""
    try:
        return experiments.load_factory(target)
    except experiments.FactoryError as error:
        if not debug:
            _failed(error.what, error.error, debug)
        own: BaseException = error.error
    except ImportError as error:
        if not debug or error.__cause__ is None:
            _fail(error, "MODEL")
        own = error.__cause__
    except (FileNotFoundError, ValueError, TypeError) as error:
        _fail(error, "MODEL")
    # --debug: the user's own error, raised outside this handler so that its traceback
    # and chain are what their code made.
    raise own


_VERDICT_STYLE = {
    "vanishing": "bold red",
    "exploding": "bold red",
    "nonfinite": "bold red",
    "saturated": "yellow",
    "dead": "yellow",
    "symmetric": "magenta",
    "redundant_bias": "cyan",
}


@dataclass(frozen=True)
class _ProbeOptions:
    """The options of ``initlab probe``, as typed."""

    model: str
    input_shape: str | None
    data: str | None
    batch_size: int
    init: str | None
    bias_init: str
    loss: str
    steps: int
    lr: float
    seed: int
    figure: Path | None
    debug: bool


def _parse_probe(o: _ProbeOptions) -> tuple[tuple[int, ...] | None, str]:
    """Every option and the figure's path checked before any work: the random batch's
    shape (None with --data) and the loss, auto resolved."""
    if (o.input_shape is None) == (o.data is None):
        _fail(
            "expected exactly one of --input-shape (random input) or --data (real data). "
            f"Got {'both' if o.data is not None else 'neither'}.",
            "--input-shape / --data",
        )
    _choice(o.loss, ("auto", "cross_entropy", "mse", "none"), "--loss")
    _count(o.batch_size, "--batch-size", high=10**8)
    _count(o.steps, "--steps", low=0, high=10**6)
    if not (math.isfinite(o.lr) and o.lr > 0):
        _fail(f"expected a positive finite number, e.g. 0.01. Got {o.lr}.", "--lr")
    _count(o.seed, "--seed", low=0, high=_MAX_SEED)
    shape = parse_shape(o.input_shape, "--input-shape") if o.input_shape is not None else None
    if shape is not None:
        available = _memory()
        if available is not None and 8 * math.prod(shape) > available:
            _fail(
                f"expected a batch that fits in memory. Got {o.input_shape!r}: "
                f"{math.prod(shape):,} values, and this machine has {_gb(available)}.",
                "--input-shape",
            )
    if o.init is not None:
        _spec(o.init, "--init", "init spec")
        _spec(o.bias_init, "--bias-init", "bias init spec")
    _output_file(o.figure, _FIGURE_SUFFIXES, "--figure")
    chosen = experiments.infer_loss(o.loss, labelled=o.data is not None)
    if chosen != "none" and o.data is None:
        _fail(
            f"expected --data with --loss {chosen}: it needs labels. Or use --loss none.", "--loss"
        )
    if o.steps > 0 and chosen == "none":
        _fail("expected a loss with --steps: use --data, whose labels give one.", "--steps")
    return shape, chosen


def _probe_batch(
    o: _ProbeOptions, shape: tuple[int, ...] | None, generator: torch.Generator
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """A random N(0, 1) batch of ``shape``, or the first examples of --data and labels."""
    if shape is not None:
        return torch.randn(shape, generator=generator)
    assert o.data is not None  # one of the two, checked by _parse_probe
    ds = _load_data(o.data)
    if o.batch_size > ds.n_train:
        _fail(
            f"expected at most the {ds.n_train:,} training examples of {o.data}. "
            f"Got {o.batch_size:,}.",
            "--batch-size",
        )
    return ds.x_train[: o.batch_size], ds.y_train[: o.batch_size]


def _run_probe(o: _ProbeOptions, net: torch.nn.Module, batch: Any, loss: str) -> list[Probe]:
    """Each member's probe (one for a plain model)."""
    from initlab import probe as probe_mod

    loss_fn = experiments.loss_function(loss)
    try:
        result = probe_mod.probe(net, batch, loss_fn, o.steps, lr=o.lr, seed=o.seed)
    except (ValueError, TypeError):
        raise
    except Exception as error:  # the model's own forward pass failed
        _failed(f"the model {o.model!r}", error, o.debug)
    return list(result)


def _print_reports(o: _ProbeOptions, reports: list[Probe]) -> None:
    """Each report's table and verdicts, and its figure with --figure."""
    console = Console()
    if not console.is_terminal:  # a pipe or a file: room for the whole table
        console.width = max(console.width, 120)
    for report in reports:
        _print_probe(console, report, o.model, o.steps > 0)
        if o.figure is None:
            continue
        from initlab.report import probe_figure

        path = (
            o.figure
            if report.member is None
            else o.figure.with_stem(f"{o.figure.stem}-member{report.member}")
        )
        try:
            written = probe_figure(report, path, title=o.model)
        except OSError as error:
            _fail(f"cannot write {str(path)!r}: {error}. Choose another path.", "--figure")
        console.print(f"figure: {_path(written)}", markup=False, highlight=False, soft_wrap=True)


@app.command("probe")
def probe_command(
    model: Annotated[
        str, typer.Argument(help="MODULE:FACTORY or file.py:FACTORY(args): builds the model")
    ],
    input_shape: Annotated[
        str | None, typer.Option(help="a random N(0, 1) batch of this shape, e.g. 256x784")
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="or a batch of real data: mnist, digits, circles, …")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="examples taken from --data")] = 256,
    init: Annotated[
        str | None, typer.Option(help="re-initialize the weights first, e.g. he_normal")
    ] = None,
    bias_init: Annotated[str, typer.Option(help="the bias init spec, with --init")] = "zeros",
    loss: Annotated[
        str, typer.Option(help="auto, cross_entropy, mse or none (∂loss/∂output ~ N(0, 1))")
    ] = "auto",
    steps: Annotated[int, typer.Option(help="SGD steps on a copy, for the update ratio")] = 0,
    lr: Annotated[float, typer.Option(help="their learning rate")] = 0.01,
    seed: Annotated[int, typer.Option(help="seeds the batch, the init and the probe")] = 0,
    figure: Annotated[
        Path | None, typer.Option(help="write histograms and std against depth (.png, .pdf, .svg)")
    ] = None,
    debug: Annotated[
        bool, typer.Option(help="show the traceback of an error in the model's own code")
    ] = False,
) -> None:
    """Why a model will not train: per-layer statistics beside the theory's forecast,
    verdicts and the fix to try."""
    o = _ProbeOptions(**locals())  # the locals are the options, here only
    shape, chosen = _parse_probe(o)
    try:
        net = _load_factory(model, debug)
        generator = torch.Generator().manual_seed(seed)
        batch = _probe_batch(o, shape, generator)
        if init is not None:
            initmod.apply(net, weight=init, bias=bias_init, generator=generator)
        _print_reports(o, _run_probe(o, net, batch, chosen))
    except (ValueError, TypeError) as error:
        if debug:
            raise
        _fail(error)
    except KeyboardInterrupt:
        _interrupted("the probe stopped; nothing was printed for it.")


def _print_probe(console: Console, report: Probe, model: str, steps: bool) -> None:
    def cell(value: float | None) -> str:
        return "—" if value is None or value != value else f"{value:.3g}"

    title = f"probe of {model}" + (f", member {report.member}" if report.member is not None else "")
    title += f" — loss {report.loss:.4g}" if report.loss == report.loss else ""
    table = Table(title=escape(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    columns = ["#", "layer", "φ", "h rms", "theory", "∂h rms", "theory", "satur.", "dead"]
    columns += ["copies", "∇W/W"] + (["ΔW/W"] if steps else []) + ["verdict"]
    for c in columns:
        table.add_column(c, justify="left" if c in ("layer", "φ", "verdict") else "right")
    marks: dict[int, list[str]] = {}
    for v in report.verdicts:
        if v.kind in ("vanishing", "exploding"):
            continue
        for i in v.layers:
            marks.setdefault(i, []).append(v.kind)
    for s in report.layers:
        row: list[str | Text] = [
            str(s.index),
            Text(str(s.name)),
            Text(s.activation or "?"),
            cell(s.preact_rms),
            cell(s.forecast_preact_rms),
            cell(s.grad_rms),
            cell(s.forecast_grad_rms),
            "—" if s.saturated != s.saturated else f"{s.saturated:.0%}",
            f"{s.dead:.0%}",
            f"{s.symmetry:.0%}",
            cell(s.grad_weight_ratio),
        ]
        row += [cell(s.update_weight_ratio)] if steps else []
        row.append(", ".join(f"[{_VERDICT_STYLE[k]}]{k}[/]" for k in marks.get(s.index, [])))
        table.add_row(*row)
    console.print(table)
    console.print(
        f"per layer: signal ×{report.forward_factor:.3g} forward, "
        f"gradient ×{report.backward_factor:.3g} backward"
        + (f"; no forecast: {report.forecast_note}" if report.forecast_note else ""),
        markup=False,
        highlight=False,
    )
    if report.healthy:
        console.print("[bold green]healthy:[/] no verdict.")
    for v in report.verdicts:
        console.print(
            f"[{_VERDICT_STYLE[v.kind]}]{v.kind}[/]: {escape(v.evidence)}\n"
            f"  [bold]fix:[/] {escape(v.advice)}",
            highlight=False,
        )


# ----------------------------------------------------------------------------- playground


@app.command("playground")
def playground_command(
    host: Annotated[
        str, typer.Option(help="address to listen on; other than loopback prints a warning")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port; 0 picks a free one")] = 8765,
    browser: Annotated[bool, typer.Option(help="open the page in the browser")] = True,
) -> None:
    """Train configurations side by side in the browser, live: init, batch norm, batch
    size, optimizer, clipping, and what the probe says of each."""
    if not 0 <= port <= 65535:
        _fail(f"expected a port from 0 to 65535 (0: any free one). Got {port}.", "--port")
    from initlab.playground.server import serve

    try:
        serve(host, port, open_browser=browser)
    except OSError as error:
        _fail(
            f"cannot listen on {host}:{port}: {error.strerror or error}. Choose another "
            "--port (0 picks a free one) or --host.",
            "--port",
        )
    except KeyboardInterrupt:
        pass


def main() -> None:
    """Entry point of the ``initlab`` console script (see :mod:`initlab._entry`)."""
    app()
