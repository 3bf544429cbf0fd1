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
from collections.abc import Callable, Mapping, Sequence
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
from typer.core import TyperGroup, TyperOption

from initlab import __version__, experiments
from initlab import init as initmod
from initlab import train as train_mod
from initlab._io import check_output_file, check_output_folder, write_atomic
from initlab._spec import parse_call
from initlab._validation import did_you_mean
from initlab.studies.plan import DEFAULT_MAX_MEMBERS

if TYPE_CHECKING:
    from initlab.data import Dataset
    from initlab.models import Stack
    from initlab.probe import Probe
    from initlab.studies import Study

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
        _untyped_flags(self)
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


def _untyped_flags(command: Any) -> None:
    """Leave a flag's type out of the help, for ``command`` and every command under it.

    Typer's rich help prints the type of every option, so a flag (``--quick``, ``--help``)
    shows ``<bool>`` although it takes no value (its plain help leaves it out). An empty
    metavar is what the rich help prints instead.
    """
    for param in command.get_params(typer.Context(command)):
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _untyped_flags(sub)


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


def _counted(done: int, total: int | None) -> str:
    """What a bar has counted: ``done/total steps``; while the total is unknown, ``done
    steps``, or nothing before the first step (never "None")."""
    if total is not None:
        return f"{done:,}/{total:,} steps"
    return f"{done:,} steps" if done else ""


def _loss_info(p: train_mod.Progress) -> str:
    """The engine's numbers in a few columns: the members' losses, and how many are left
    when some stopped."""
    left = f" · {p.active}/{p.members} left" if p.active < p.members else ""
    if p.members == 1 or p.best_loss == p.worst_loss:
        return f"loss {p.best_loss:.3g}{left}"
    return f"loss {p.best_loss:.3g}–{p.worst_loss:.3g}{left}"


class _Bar(train_mod.Observer):
    """A rich progress bar: it hears a run at each stopping check (an engine observer),
    and draws any :class:`~initlab.train.Progress` it is called with (the lessons' runner
    calls it so).

    One line as wide as the terminal, 80 columns included: the label, the bar, the count
    then the losses, the time left; the label and then the losses are cut with an ellipsis
    where they do not fit. The total shows as soon as it is known (from the start when
    given, else when the run starts).
    """

    _FIXED = 20  # the bar (10), the time left (5, 7 past an hour), the spaces between (3)
    _LABEL = 12  # the fewest columns the label gets

    def __init__(self, label: str, total: int | None = None, console: Console | None = None):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
        from rich.table import Column

        self.console = console if console is not None else Console(stderr=True)
        # The label takes what the count and the losses leave (set again as they change).
        self.label_column = Column(no_wrap=True, overflow="ellipsis")
        tail_column = Column(
            no_wrap=True,
            overflow="ellipsis",
            max_width=max(8, self.console.width - self._FIXED - self._LABEL),
        )
        self.progress = Progress(
            TextColumn("[bold]{task.description}", table_column=self.label_column),
            BarColumn(bar_width=10),
            TextColumn("{task.fields[tail]}", markup=False, table_column=tail_column),
            TimeRemainingColumn(compact=True),
            transient=True,
            # on stderr, so that stdout holds the results alone; drawn only on a terminal
            # (piped, a transient bar would leave blank lines)
            console=self.console,
            disable=not self.console.is_terminal,
        )
        self.task = self.progress.add_task(escape(label), total=total, tail="")
        self.show(0, total, "")

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def show(self, done: int, total: int | None, info: str) -> None:
        """Draw ``done`` of ``total`` steps, and ``info`` after them."""
        tail = "  ".join(part for part in (_counted(done, total), info) if part)
        self.label_column.max_width = max(self._LABEL, self.console.width - self._FIXED - len(tail))
        self.progress.update(self.task, completed=done, total=total, tail=tail)

    def on_start(self, run: train_mod.Run) -> None:
        self.show(0, run.total, "")

    def on_step(self, run: train_mod.Run) -> None:
        # At a stopping check the engine has just read the device: this read is free.
        self(run.progress())

    def __call__(self, p: train_mod.Progress) -> None:
        self.show(p.step, p.total, _loss_info(p))


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


# ----------------------------------------------------------------------------- data

data_app = typer.Typer(
    help="MNIST and Fashion-MNIST on this machine: fetch them once into a cache folder, "
    "where initlab finds them.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
app.add_typer(data_app, name="data")


def _cache_source() -> str:
    """Where the cache folder comes from, said to the user."""
    if os.environ.get("INITLAB_DATA"):
        return "from $INITLAB_DATA"
    return "the user cache folder; set INITLAB_DATA to use another"


@data_app.command("fetch")
def data_fetch_command(
    name: Annotated[str, typer.Argument(help="mnist or fashion-mnist")],
    folder: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            metavar="DIR",
            help="the folder to fetch into \\[default: $INITLAB_DATA, else the user cache "
            "folder: see initlab data where]",
            show_default=False,
        ),
    ] = None,
    mirrors: Annotated[
        list[str] | None,
        typer.Option(
            "--mirror",
            metavar="URL",
            help="a base URL to fetch from instead of the known mirrors; repeat to try several",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Download a data set's four standard files, each checked against its published
    checksum; rerun to resume a download cut short. Files already here are kept."""
    from initlab import fetch as fetch_mod

    _choice(name, fetch_mod.DATASETS, "NAME")
    words: list[object] = ["data", "fetch", name]
    words += ["--dir", folder] if folder is not None else []
    for mirror in mirrors or ():
        words += ["--mirror", mirror]
    try:
        where = fetch_mod.fetch(name, root=folder, mirrors=mirrors or None, progress=True)
    except KeyboardInterrupt:
        _interrupted(f"the partial download is kept. Resume with: {_command(words)}")
    except ValueError as error:  # a mirror that is not a URL or a folder
        _fail(error, "--mirror")
    except OSError as error:
        # Every mirror failed for a file (FetchError), or the folder cannot be written:
        # fetch's message says what was tried, what was kept and what to do.
        _print_error(str(error) or type(error).__name__)
        raise typer.Exit(1) from None
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"{name}: {_path(where)}", markup=False)
    if folder is None:
        found = "initlab finds it there (--data NAME, the lessons, initlab.data.load)."
    else:
        import shlex

        found = (
            f"initlab finds it with INITLAB_DATA={shlex.quote(str(folder))} set, or "
            f"initlab.data.load({name!r}, root={str(folder)!r})."
        )
    console.print(found.replace("NAME", name), markup=False, style="dim")


@data_app.command("where")
def data_where_command() -> None:
    """Print the folder initlab fetches into and reads MNIST and Fashion-MNIST from."""
    from initlab import fetch as fetch_mod

    console = Console(highlight=False, soft_wrap=True)
    console.print(_path(fetch_mod.cache_dir()), markup=False)
    console.print(f"({_cache_source()})", markup=False, style="dim")


# ----------------------------------------------------------------------------- lessons


class _LessonBar(_Bar):
    """The progress bar of a lesson: its stage on the left, the engine's numbers after.

    A stage may train several runs (the init lesson trains its MNIST stack in segments):
    the bar counts the stage's steps across them, so it counts what the stage says. The
    stage's total is the one given to :meth:`stage`; without one, the steps known so far
    (each run's budget, from its first report).
    """

    def __init__(self, label: str, console: Console | None = None) -> None:
        super().__init__(label, console=console)
        self._stage_total: int | None = None
        self._before = 0  # steps of the stage's finished runs
        self._last: tuple[int, int] | None = None  # the current run's last (step, total)

    def stage(self, text: str, total: int | None = None) -> None:
        self._stage_total, self._before, self._last = total, 0, None
        self.progress.reset(self.task, description=escape(text))
        self.show(0, total, "")

    def __call__(self, p: train_mod.Progress) -> None:
        if self._last is not None:
            step, total = self._last
            # A run reports its last step (step == total) at its end; a report after that,
            # or one that goes back or has another budget, is the stage's next run.
            if step >= total or p.step < step or p.total != total:
                self._before += step
        self._last = (p.step, p.total)
        done = self._before + p.step
        total = self._before + p.total if self._stage_total is None else self._stage_total
        self.show(done, max(total, done), _loss_info(p))


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


def _knobs(name: str) -> Mapping[str, str]:
    """The options (knobs) the lesson called ``name`` takes: option name → help."""
    from initlab.lessons import knobs, module

    return knobs(module(name))


def _lesson_options(name: str, quick: bool, given: Mapping[str, object]) -> dict[str, object]:
    """The knobs given, checked before anything runs: each one the lesson takes, each value
    one its sizes accept."""
    from initlab.lessons import LESSONS, module
    from initlab.lessons._lesson import size_of, with_options

    options = {knob: value for knob, value in given.items() if value is not None}
    knobs = _knobs(name) if options else {}
    for knob in options:
        if knob not in knobs:
            takers = [lesson for lesson in LESSONS if knob in _knobs(lesson)]
            _fail(
                f"lesson {name} takes "
                + (f"only {', '.join('--' + k for k in knobs)}" if knobs else "no options")
                + f". Got --{knob}, which "
                + (f"only {', '.join(takers)} takes" if takers else "no lesson takes")
                + (f", e.g. initlab lesson {takers[0]} --{knob} …" if takers else "")
                + ".",
                f"--{knob}",
            )
    try:  # the lesson's sizes check the values; nothing has run yet
        with_options(module(name), size_of(module(name), quick), options)
    except (ValueError, TypeError) as error:
        _fail(error, " ".join(f"--{knob}" for knob in options))
    return options


def _lesson_help() -> str:
    from initlab.lessons import LESSONS

    listed = "\n".join(f"[bold]{name}[/bold]: {escape(what)}" for name, what in LESSONS.items())
    return (
        "Run a lesson as one stack, print its findings, write its HTML report and figures.\n\n"
        f"The lessons (NAME):\n\n{listed}"
    )


@app.command("lesson", help=_lesson_help())
def lesson_command(
    name: Annotated[str, typer.Argument(help="the lesson: see `initlab lessons`")],
    out: Annotated[
        Path | None,
        # Rich markup would read "[default: …]" as a tag and drop it: escaped.
        typer.Option(help="the report's folder \\[default: ./initlab-reports/NAME]"),
    ] = None,
    quick: Annotated[bool, typer.Option(help="a short run (seconds), same lesson")] = False,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    depth: Annotated[
        int | None,
        typer.Option(help="gradients: hidden layers of its nets", show_default=False),
    ] = None,
    activation: Annotated[
        str | None,
        typer.Option(
            help="gradients: the trained net's activation (relu, tanh, …)", show_default=False
        ),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", help="print the notebook's output too (the report has it)"),
    ] = False,
) -> None:
    from initlab.lessons import LESSONS, run

    if name not in LESSONS:
        _fail(
            f"expected one of {', '.join(LESSONS)} (see `initlab lessons`). Got {name!r}."
            + did_you_mean(name, LESSONS),
            "NAME",
        )
    # Which lesson takes which knob first, then the value: the lesson's own Size checks it
    # (depth ≥ 3 for gradients); the bound here only keeps a typo from running for days.
    options = _lesson_options(name, quick, {"depth": depth, "activation": activation})
    _count(depth, "--depth", high=10_000)
    _device(device)
    folder = out if out is not None else Path("initlab-reports") / name
    try:
        check_output_folder(folder, "--out")
    except ValueError as error:
        _fail(error)
    # The command again, as the page's footer shows it: the options given, in one order.
    words: list[object] = ["lesson", name]
    words += [f"--{knob}={value}" for knob, value in options.items()]
    words += ["--quick"] if quick else []
    words += ["--device", device] if device != "cpu" else []
    words += ["--out", out] if out is not None else []
    console = Console()
    try:
        bar = _LessonBar(f"lesson {name}")
        with bar:
            lesson = run(
                name,
                folder,
                quick=quick,
                device=device,
                progress=bar,
                options=options,
                command=_command(words),
            )
    except KeyboardInterrupt:
        report = folder / "index.html"
        _interrupted(
            f"the report so far: {_path(report)}" if report.exists() else "no report written."
        )
    except (FileNotFoundError, ValueError) as error:
        # The data loader's messages say where it looked and how to fetch the data.
        if isinstance(error, FileNotFoundError) or _raised_in(error, "initlab.data"):
            _fail(error, f"lesson {name}")
        raise
    _print_lesson(console, lesson, verbose)


def _print_lesson(console: Console, lesson: Any, verbose: bool) -> None:
    """The findings first; the notebook's output (in the report too) with --verbose."""

    def say(text: str, style: str | None = None) -> None:
        console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    say(lesson.title, "bold")
    for finding in lesson.findings:
        say(f" • {finding}")
    if lesson.lines and verbose:
        say("")
        for line in lesson.lines:
            say(line)
    hint = "; --verbose prints the notebook's output" if lesson.lines and not verbose else ""
    say(
        f"{lesson.seconds:.1f} s; report: {_path(lesson.report or '')} "
        f"({len(lesson.figures)} figures beside it){hint}",
        "dim",
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


# The library names its Python parameters ("The 'loss_fn' parameter of probe must be …");
# the command names the option the user typed. (function, parameter) → option.
_OPTIONS = {
    ("probe", "model"): "MODEL",
    ("probe", "batch"): "--input-shape / --data",
    ("probe", "loss_fn"): "--loss",
    ("probe", "steps"): "--steps",
    ("probe", "lr"): "--lr",
    ("probe", "seed"): "--seed",
    ("apply", "model"): "MODEL",
    ("apply", "weight"): "--init",
    ("apply", "bias"): "--bias-init",
    ("fix", "model"): "MODEL",
    ("fix", "batch"): "--input-shape / --data",
    ("fix", "loss_fn"): "--loss",
}
# Python words that may follow in the same message, in the command's words.
_WORDS = (
    (re.compile(r"\bsteps\s*=\s*(\d+)"), r"--steps \1"),
    (re.compile(r"\bsteps\s*([<>]=?)\s*(\d+)"), r"--steps \1 \2"),
    (re.compile(r"\blr\s*=\s*"), "--lr "),
    (re.compile(r"\bPass loss_fn\b"), "Give --data (its labels give a loss)"),
    (re.compile(r"\bloss_fn\b"), "--loss"),
    (re.compile(r"Got None\b"), "Got none"),
)
_PARAMETER = re.compile(r"The '(\w+)' parameter of (\w+) must be (.*?)\. Got (.*?) instead\.")


def _in_cli_words(message: str, option: str | None = None) -> tuple[str | None, str]:
    """A library message worded for the command: the option it concerns, and the text.

    ``The 'loss_fn' parameter of probe must be E. Got G instead.`` → (``--loss``,
    ``expected E. Got G.``), the command's own template; ``The 'n' parameter of
    load_circles must be …`` → (``--data``, ``The 'n' option of circles must be …``).
    Python words after it (``steps=0``, ``loss_fn``) become options too. ``option`` is
    the one to name when the message names none."""
    match = _PARAMETER.search(message)
    if match is not None:
        name, fn, expected, got = match.groups()
        if fn.startswith("load_"):
            dataset = fn.removeprefix("load_").replace("_", "-")
            words = f"The '{name}' option of {dataset} must be {expected}. Got {got} instead."
            option = "--data"
        elif (fn, name) in _OPTIONS:
            option = _OPTIONS[fn, name]
            words = f"expected {expected}. Got {got}."
            if fn == "fix" and name == "model":
                words += " --fix takes a plain model."
        else:
            words = match.group(0)
        message = message[: match.start()] + words + message[match.end() :]
    for pattern, replacement in _WORDS:
        message = pattern.sub(replacement, message)
    if option == "--init" or option == "--bias-init":
        message = re.sub(r"^apply: ", "", message)
        # eye_, dirac_: the specs --init takes are named without the trailing _
        message = re.sub(r"\b([a-z][a-z_]*[a-z])_(?=[\s.,;:)]|$)", r"\1", message)
    return option, message


def _fail_in_cli_words(error: BaseException, option: str | None = None) -> NoReturn:
    where, message = _in_cli_words(str(error) or type(error).__name__, option)
    _fail(message, where)


_VERDICT_STYLE = {
    "vanishing": "bold red",
    "exploding": "bold red",
    "nonfinite": "bold red",
    "high_loss": "bold red",
    "diverging": "bold red",
    "vanishing_in_time": "bold red",
    "exploding_in_time": "bold red",
    "saturated": "yellow",
    "dead": "yellow",
    "weight_scale": "yellow",
    "residual_growth": "yellow",
    "attention_collapse": "yellow",
    "update_ratio": "yellow",
    "symmetric": "magenta",
    "redundant_bias": "cyan",
}
# The verdict column's short names (the verdicts below the table spell them out). Kinds
# about the whole path (depth, time, the loss) mark no single row.
_VERDICT_TAG = {
    "saturated": "satur.",
    "dead": "dead",
    "symmetric": "symm.",
    "nonfinite": "nan/inf",
    "redundant_bias": "bias",
    "weight_scale": "scale",
    "update_ratio": "update",
    "attention_collapse": "attn",
}
_LAYOUTS = ("auto", "flat", "image", "sequence")
_INPUT_DTYPES = {"float": torch.float32, "long": torch.int64, "int": torch.int32}
_FORMATS = ("table", "json", "csv")
# The image each flattened data set holds, channels first: what a conv stem takes.
_IMAGES = {
    "digits": (1, 8, 8),
    "mnist": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
    "mnist1d": (1, 40),
}
_FEW_NORMS = 4  # up to this many norm layers are listed without --verbose


@dataclass(frozen=True)
class _ProbeOptions:
    """The options of ``initlab probe``, as typed."""

    model: str
    input_shape: str | None
    data: str | None
    layout: str
    tokens: int | None
    input_dtype: str | None
    batch_size: int
    init: str | None
    bias_init: str
    loss: str
    steps: int
    lr: float
    seed: int
    fix: bool
    output_format: str
    verbose: bool
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
    _choice(o.layout, _LAYOUTS, "--layout")
    _choice(o.output_format, _FORMATS, "--format")
    if o.input_dtype is not None:
        _choice(o.input_dtype, tuple(_INPUT_DTYPES), "--input-dtype")
    if o.tokens is not None:
        _count(o.tokens, "--tokens", high=2**62)
        if o.input_dtype == "float":
            _fail(
                "expected integer token ids with --tokens: --input-dtype long or int. "
                "Got --input-dtype float.",
                "--tokens",
            )
    if o.data is not None:
        for given, option in ((o.tokens, "--tokens"), (o.input_dtype, "--input-dtype")):
            if given is not None:
                _fail(
                    f"expected {option} with --input-shape (a random batch): --data gives "
                    f"its own values. Drop {option}, or use --input-shape.",
                    option,
                )
    elif o.layout != "auto":
        _fail(
            "expected --layout with --data: it says how to lay out the data's examples. "
            "With --input-shape, the shape itself is the layout.",
            "--layout",
        )
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


# ---- what the model's first layer takes


def _first_layer(net: torch.nn.Module) -> tuple[str, torch.nn.Module] | None:
    """The model's first module (in the order they were defined) whose kind says what
    input it takes, or None: a weight layer, a recurrent core, a batch norm."""
    from torch.nn.modules.batchnorm import _NormBase
    from torch.nn.modules.conv import _ConvNd

    kinds = (
        torch.nn.Linear,
        torch.nn.Bilinear,
        torch.nn.Embedding,
        torch.nn.EmbeddingBag,
        torch.nn.RNNBase,
        _ConvNd,
        _NormBase,
    )
    for name, module in net.named_modules():
        if isinstance(module, kinds) or isinstance(getattr(module, "in_features", None), int):
            return name or "(the model)", module
        if isinstance(getattr(module, "in_channels", None), int):  # initlab's StackedConv
            return name or "(the model)", module
    return None


def _takes(module: torch.nn.Module) -> tuple[str, int | None, int | None]:
    """What ``module`` takes as the model's first layer: a layout ("flat", "image",
    "sequence", "tokens" or "" where it cannot tell), the features or channels it needs,
    and an image's spatial dimensions (1 for Conv1d, 2 for Conv2d …)."""
    from torch.nn.modules.batchnorm import _NormBase

    if isinstance(module, torch.nn.Embedding | torch.nn.EmbeddingBag):
        return "tokens", module.num_embeddings, None
    if isinstance(module, torch.nn.RNNBase):
        return "sequence", module.input_size, None
    if isinstance(module, _NormBase):
        dims = {"BatchNorm1d": None, "BatchNorm2d": 2, "BatchNorm3d": 3}.get(type(module).__name__)
        return ("flat", module.num_features, None) if dims is None else ("image", None, dims)
    channels = getattr(module, "in_channels", None)
    if isinstance(channels, int):
        kernel = getattr(module, "kernel_size", None)
        dims = len(kernel) if isinstance(kernel, tuple) else int(getattr(module, "dims", 2))
        return "image", channels, dims
    features = getattr(module, "in_features", None)
    if isinstance(features, int):
        return "flat", features, None
    return "", None, None


def _laid_out(o: _ProbeOptions, x: torch.Tensor, net: torch.nn.Module) -> torch.Tensor:
    """The data's examples ``x`` in the layout the model's first layer takes (or the one
    --layout names), checked against what that layer expects."""
    assert o.data is not None
    name = _data_spec(o.data)[0]
    n, example = x.shape[0], tuple(x.shape[1:])
    size = math.prod(example)
    image = example if len(example) > 1 else _IMAGES.get(name)
    first = _first_layer(net)
    layer_name, module = first if first is not None else ("", None)
    layout, need, dims = _takes(module) if module is not None else ("", None, None)
    what = f"the model's first layer {layer_name!r} ({type(module).__name__})"
    axes = "channels × length" if image is not None and len(image) == 2 else "channels × H × W"
    gives = f"--data {o.data} gives " + (
        f"images of {'×'.join(map(str, image))} ({axes})"
        if image is not None
        else f"{size} features per example"
    )
    if layout == "tokens":
        _fail(
            f"{what} takes integer token ids, and {gives}. Use --input-shape NxT with "
            f"--tokens {need} for a random batch of ids.",
            "--data",
        )
    chosen = o.layout if o.layout != "auto" else layout or "given"
    if chosen == "given":  # the model's kind cannot tell: the data as loaded
        return x
    if chosen == "flat":
        x = x.reshape(n, size)
        if o.layout == "auto" and need is not None and need != size:
            _fail(
                f"{what} takes {need} features per example, and {gives}. Use data with "
                f"{need} features, or a model for {size}; --layout image if the model "
                "takes images.",
                "--data",
            )
        return x
    if chosen == "image":
        if image is None:
            _fail(
                f"expected images for --layout image or a conv stem "
                f"({what if module is not None else 'the model'}), and {gives}. Use digits, "
                "mnist or fashion-mnist (mnist1d for a Conv1d), or --layout flat.",
                "--data",
            )
        x = x.reshape(n, *image)
        if o.layout == "auto" and dims is not None and dims != len(image) - 1:
            fits = {1: "mnist1d", 2: "digits, mnist or fashion-mnist"}.get(dims, "other data")
            _fail(
                f"{what} takes {dims}-D images, and {gives}. Use {fits}, or a model for this data.",
                "--data",
            )
        if o.layout == "auto" and need is not None and need != image[0]:
            _fail(
                f"{what} takes images with {need} channel{'s' * (need > 1)}, and {gives}. "
                f"Give the model's first layer in_channels={image[0]}.",
                "--data",
            )
        return x
    # sequence: an RNN reads each example as steps of input_size features.
    steps = size // need if need else 0
    if o.layout == "sequence" and need is None:
        _fail(
            f"expected a recurrent first layer (RNN, LSTM, GRU) for --layout sequence. "
            f"Got {what if module is not None else 'none'}.",
            "--layout",
        )
    if need is None or steps * need != size:
        _fail(
            f"{what} takes steps of {need} features each, and {gives}: {size} is not a "
            f"multiple of {need}. Give the model input_size dividing {size} (e.g. "
            f"{image[-1] if image else 1}).",
            "--data",
        )
    x = x.reshape(n, steps, need)
    return x if getattr(module, "batch_first", False) else x.transpose(0, 1)


def _tokens_range(o: _ProbeOptions, net: torch.nn.Module) -> int:
    """The integers of an integer batch are drawn from [0, this)."""
    first = _first_layer(net)
    module = first[1] if first is not None else None
    size = (
        module.num_embeddings
        if isinstance(module, torch.nn.Embedding | torch.nn.EmbeddingBag)
        else None
    )
    if o.tokens is None:
        if size is None:
            _fail(
                f"expected --tokens VOCAB with --input-dtype {o.input_dtype}: the integers are "
                "drawn from [0, VOCAB). (The model's first layer is not an Embedding, whose "
                "size would say.)",
                "--input-dtype",
            )
        return size
    if size is not None and o.tokens > size:
        assert first is not None
        _fail(
            f"expected at most the {size:,} ids of the model's first layer {first[0]!r} "
            f"(Embedding({size}, …)). Got {o.tokens:,}.",
            "--tokens",
        )
    return o.tokens


def _probe_data(text: str) -> Any:
    """The data set of --data; the loader's errors name its option, not its parameter."""
    from initlab import data as data_mod

    name, options = _data_spec(text)
    try:
        return data_mod.load(name, **options)
    except (FileNotFoundError, ValueError, TypeError) as error:
        _fail_in_cli_words(error, "--data")


def _probe_batch(
    o: _ProbeOptions,
    shape: tuple[int, ...] | None,
    net: torch.nn.Module,
    generator: torch.Generator,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """A random batch of ``shape`` (N(0, 1), or integer ids with --tokens or an integer
    --input-dtype), or the first examples of --data, laid out for the model, and labels."""
    if shape is not None:
        dtype = _INPUT_DTYPES[o.input_dtype or ("long" if o.tokens is not None else "float")]
        if dtype.is_floating_point:
            return torch.randn(shape, generator=generator, dtype=dtype)
        high = _tokens_range(o, net)
        return torch.randint(0, high, shape, generator=generator, dtype=dtype)
    assert o.data is not None  # one of the two, checked by _parse_probe
    ds = _probe_data(o.data)
    if o.batch_size > ds.n_train:
        _fail(
            f"expected at most the {ds.n_train:,} training examples of {o.data}. "
            f"Got {o.batch_size:,}.",
            "--batch-size",
        )
    return _laid_out(o, ds.x_train[: o.batch_size], net), ds.y_train[: o.batch_size]


def _batch_option(o: _ProbeOptions) -> str:
    if o.data is not None:
        return "--data"
    return "--tokens" if o.tokens is not None else "--input-shape"


def _batch_error(o: _ProbeOptions, message: str) -> str:
    """The probe's words on the batch (a shape, a dtype) in the command's words."""
    given = (
        f"--data {o.data}" + (f" --layout {o.layout}" if o.layout != "auto" else "")
        if o.data is not None
        else f"--input-shape {o.input_shape}"
    )
    message = message.replace(
        "Check the batch's shape against the model's first layer.",
        f"Check {given} against the model's first layer"
        + (", or give --layout." if o.data is not None else "."),
    )
    return re.sub(
        r"Convert the batch \(x\.to\([^)]*\)\)",
        "Leave out --tokens and --input-dtype for a float batch",
        message,
    )


def _probe_failed(o: _ProbeOptions, error: Exception, option: str | None = None) -> NoReturn:
    """The probe's own error (on the batch, the model, an option) in the command's words."""
    text = str(error)
    if "batch" in text or "layer" in text:
        option = _batch_option(o)
    if text.startswith("The model ") and "no parameters" in text:
        option = "MODEL"
    _fail_in_cli_words(ValueError(_batch_error(o, text)), option)


def _run_probe(o: _ProbeOptions, net: torch.nn.Module, batch: Any, loss: str) -> list[Probe]:
    """Each member's probe (one for a plain model)."""
    from initlab import probe as probe_mod

    loss_fn = experiments.loss_function(loss)
    try:
        result = probe_mod.probe(net, batch, loss_fn, o.steps, lr=o.lr, seed=o.seed)
    except (ValueError, TypeError) as error:
        if o.debug:
            raise
        _probe_failed(o, error)
    except Exception as error:  # the model's own forward pass failed
        _failed(f"the model {o.model!r}", error, o.debug)
    return list(result)


@dataclass(frozen=True)
class _Fixed:
    """What --fix did: the reports before and after, what it changed, and the verdicts
    that no change of the weights addresses (left as they were)."""

    before: list[Probe]
    after: list[Probe]
    applied: tuple[str, ...]
    left: tuple[str, ...]  # the kinds of those verdicts


def _run_fix(
    o: _ProbeOptions, net: torch.nn.Module, batch: Any, loss: str, generator: torch.Generator
) -> _Fixed:
    """:func:`initlab.probe.fix` on the model, with the probe's options (--steps, --lr,
    --seed) and the draws from ``generator``."""
    from initlab import probe as probe_mod

    fix = getattr(probe_mod, "fix", None)
    if fix is None:
        _fail("this version of initlab has no initlab.probe.fix yet.", "--fix")
    try:
        result = fix(
            net,
            batch,
            experiments.loss_function(loss),
            generator=generator,
            steps=o.steps,
            lr=o.lr,
            seed=o.seed,
        )
    except (ValueError, TypeError) as error:
        if o.debug:
            raise
        _probe_failed(o, error, "--fix")
    except Exception as error:  # the model's own forward pass failed
        _failed(f"the model {o.model!r}", error, o.debug)
    left = tuple(dict.fromkeys(v.kind for v in getattr(result, "left", ())))
    return _Fixed(list(result.before), list(result.after), tuple(result.applied), left)


# ---- machine-readable output


def _plain(value: Any) -> Any:
    """``value`` as JSON takes it: dataclasses as objects, tuples as lists, NaN as null
    and ±inf as "inf" / "-inf" (JSON has no non-finite numbers)."""
    import dataclasses

    from initlab.probe import Histogram

    if isinstance(value, Histogram):
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not f.name.endswith("_hist")
        }
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    return value


def _member_json(report: Probe) -> dict[str, Any]:
    """One member's report as a JSON object: every field, and ``healthy``."""
    obj: dict[str, Any] = _plain(report)
    obj["healthy"] = report.healthy
    return obj


def _print_json(o: _ProbeOptions, reports: list[Probe], fixed: _Fixed | None) -> None:
    """One JSON object per member, one per line, and nothing else on stdout."""
    import json

    if fixed is None:
        for report in reports:
            line = {"model": o.model, **_member_json(report)}
            typer.echo(json.dumps(line, ensure_ascii=False, allow_nan=False))
        return
    for before, after in zip(fixed.before, fixed.after, strict=True):
        line = {
            "model": o.model,
            "member": after.member,
            "before": _member_json(before),
            "applied": list(fixed.applied),
            "left": list(fixed.left),
            "after": _member_json(after),
        }
        typer.echo(json.dumps(line, ensure_ascii=False, allow_nan=False))


def _print_csv(reports: list[Probe], fixed: _Fixed | None) -> None:
    """The per-layer table (:meth:`Probe.to_frame`) with a header: a ``member`` column for
    a stack, a ``stage`` column (before, after) with --fix."""
    import pandas as pd

    stages = (
        [("", reports)] if fixed is None else [("before", fixed.before), ("after", fixed.after)]
    )
    frames = []
    for stage, members in stages:
        for report in members:
            frame = report.to_frame()
            if report.member is not None:
                frame.insert(0, "member", report.member)
            if stage:
                frame.insert(0, "stage", stage)
            frames.append(frame)
    sys.stdout.write(pd.concat(frames, ignore_index=True).to_csv(index=False))


# ---- the table and the blocks


def _num(value: float | None) -> str:
    """A number in 3 significant digits and at most 7 characters: 0.123, 45.6, 3.43e-4."""
    if value is None or value != value:
        return "—"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0 or 1e-3 <= abs(value) < 1e3:
        text = f"{value:.3g}"
        return text if "e" not in text else f"{value:.0f}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _pct(value: float) -> str:
    return "—" if value != value else f"{value:.0%}"


def _shorten(name: str, width: int) -> str:
    """``name`` in at most ``width`` characters, cut from the left: the end of a qualified
    name (``…layer4.1.conv2``) is the informative part."""
    return name if len(name) <= width else "…" + name[len(name) - width + 1 :]


def _cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut on the right: ``leaky_…``."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _common_prefix(names: Sequence[str]) -> str:
    """The dotted prefix every name shares, when it is long enough to be worth a legend
    (``encoder.layers.``), else ""."""
    if len(names) < 2:
        return ""
    parts = [n.split(".")[:-1] for n in names]  # the last part is never shared away
    common: list[str] = []
    for group in zip(*parts, strict=False):
        if len(set(group)) > 1:
            break
        common.append(group[0])
    prefix = "".join(f"{p}." for p in common)
    return prefix if len(prefix) >= 8 and all(len(n) > len(prefix) for n in names) else ""


_LEGEND = {
    "h rms": "√E[h²] of the layer's output h",
    "theory": "its forecast",
    "∂h rms": "of ∂loss/∂h",
    "satur.": "φ in its flat tails",
    "dead": "units 0 for every example",
    "copies": "units duplicating another",
    "∇W/W": "‖∂loss/∂W‖/‖W‖",
    "ΔW/W": "‖ΔW‖/‖W‖ per step (≈1e-3 healthy)",
}


def _layer_table(console: Console, report: Probe, steps: bool) -> tuple[Table, list[str]]:
    """The per-layer table, fitted to the console's width, and the legend's lines.

    Eleven columns of numbers leave a 100-column terminal little room: one space between
    columns (two after the text columns), numbers of at most 7 characters, columns with
    nothing to say left out, and the names get what remains, cut from the left."""
    marks: dict[int, list[str]] = {}
    for v in report.verdicts:
        if v.kind in _VERDICT_TAG:
            for i in v.layers:
                tags = marks.setdefault(i, [])
                # advice in parentheses: "(scale)" behind batch norm, "scale" a problem
                tag = _VERDICT_TAG[v.kind]
                tag = f"({tag})" if v.severity == "advice" else tag
                if tag not in tags:
                    tags.append(tag)
    layers = report.layers
    columns: dict[str, list[str]] = {
        "#": [str(s.index) for s in layers],
        "φ": [_cut(s.activation or "?", 7) for s in layers],
        "h rms": [_num(s.preact_rms) for s in layers],
        "theory": [_num(s.forecast_preact_rms) for s in layers],
        "∂h rms": [_num(s.grad_rms) for s in layers],
        "theory ": [_num(s.forecast_grad_rms) for s in layers],
        "satur.": [_pct(s.saturated) for s in layers],
        "dead": [_pct(s.dead) for s in layers],
        "copies": [_pct(s.symmetry) for s in layers],
        "∇W/W": [_num(s.grad_weight_ratio) for s in layers],
        "ΔW/W": [_num(s.update_weight_ratio) for s in layers] if steps else [],
    }
    # A column with nothing to say (no forecast for this model, no φ that saturates)
    # gives its room to the names.
    shown = {c: cells for c, cells in columns.items() if cells and any(x != "—" for x in cells)}
    verdicts = [", ".join(marks.get(s.index, [])) for s in layers]
    prefix = _common_prefix([s.name for s in layers])
    names = [s.name[len(prefix) :] for s in layers]
    # Each column's width and the one space before it; the text columns one more.
    used = sum(max(len(c.strip()), *map(len, cells)) + 1 for c, cells in shown.items())
    used += 1 if "φ" in shown else 0
    # Tags beyond 14 characters wrap onto a second line rather than squeeze the names.
    verdict_width = min(14, max([len("verdict"), *map(len, verdicts)])) if any(verdicts) else 0
    room = console.width - used - (verdict_width + 1 if verdict_width else 0) - 2
    width = min(max([len("layer"), *map(len, names)]), max(room, 10))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=0)
    order = ["#", "layer", *[c for c in shown if c != "#"]] + (["verdict"] if verdict_width else [])
    for c in order:
        left = c in ("layer", "φ", "verdict")
        extra = 1 if c in ("layer", "φ") else 0  # two spaces after a left-aligned text
        natural = max(len(c.strip()), *map(len, shown.get(c, [""])))
        table.add_column(
            c.strip(),
            justify="left" if left else "right",
            no_wrap=c != "verdict",
            overflow="fold" if c == "verdict" else "ellipsis",
            min_width=width + 1 if c == "layer" else natural + extra if extra else None,
            max_width=width + 1 if c == "layer" else verdict_width if c == "verdict" else None,
        )
    for i in range(len(layers)):
        row: list[str | Text] = []
        for c in order:
            if c == "layer":
                row.append(Text(_shorten(names[i], width)))
            elif c == "verdict":
                row.append(Text(verdicts[i], style="yellow"))
            elif c == "φ":
                row.append(Text(shown[c][i]))
            else:
                row.append(shown[c][i])
        table.add_row(*row)
    legend = [f"layer names start with {prefix}"] if prefix else []
    described = [f"{c}: {_LEGEND[c]}" for c in shown if c in _LEGEND]
    legend.append("; ".join(described) + ".")
    if verdict_width:
        legend.append("verdict: the findings below that name the layer (in parentheses: advice).")
    return table, legend


def _block(console: Console, title: str, header: Sequence[str], rows: list[list[str]]) -> None:
    """A compact table under the layer table: the first column a module's name, cut
    from the left to leave the numbers their room."""
    if not rows:
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    room = console.width - sum(w + 2 for w in widths[1:]) - 1
    width = max(10, min(room, widths[0]))
    _line(console, title)  # above the table, not its title: as wide as the console
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for i, h in enumerate(header):
        table.add_column(
            h,
            justify="left" if i == 0 or h in ("kind", "gate") else "right",
            no_wrap=True,
            min_width=width if i == 0 else None,
            max_width=width if i == 0 else None,
        )
    for r in rows:
        table.add_row(Text(_shorten(r[0], width)), *(Text(x) for x in r[1:]))
    console.print(table)


def _print_parts(console: Console, report: Probe, verbose: bool) -> None:
    """The parts of the report beyond the weight layers, each where it has something."""
    if report.attention:
        _block(
            console,
            "attention (entropy: 1 uniform over the keys, 0 one key)",
            ["module", "heads", "keys", "q rms", "k rms", "v rms", "logit std", "entropy",
             "max w"],
            [
                [a.name, str(a.heads), str(a.keys), _num(a.q_rms), _num(a.k_rms),
                 _num(a.v_rms), _num(a.logit_std), _num(a.entropy), _num(a.max_weight)]
                for a in report.attention
            ],
        )  # fmt: skip
    if report.recurrent:
        rows = []
        for r in report.recurrent:
            g = r.grad_through_time
            at = [_num(g[t]) if g else "—" for t in (0, len(g) // 2, len(g) - 1)]
            gate = max(r.gate_saturation.items(), key=lambda kv: kv[1], default=None)
            rows.append(
                [r.name, r.kind, str(r.steps), _num(r.time_factor), *at,
                 f"{gate[0]} {_pct(gate[1])}" if gate else "—"]
            )  # fmt: skip
        _block(
            console,
            "recurrent (∂h: the gradient reaching step t from the last; factor: per step back)",
            ["module", "kind", "T", "factor", "∂h t=0", "t=T/2", "t=T−1", "most saturated"],
            rows,
        )
    if report.residuals:
        _block(
            console,
            "residual additions (stream rms in → out; branch/stream: what the branch adds)",
            ["block", "branch", "stream in", "→ out", "branch/stream"],
            [
                [
                    _cut(r.name, 24),
                    _cut(r.branch_source.removeprefix(r.name + ".") or "?", 12),
                    _num(r.stream_in_rms),
                    f"→ {_num(r.stream_out_rms)}",
                    _num(r.branch_rms / r.stream_in_rms if r.stream_in_rms else math.nan),
                ]
                for r in report.residuals
            ],
        )
    if report.norms and (verbose or len(report.norms) <= _FEW_NORMS):
        _block(
            console,
            "norm layers",
            ["module", "kind", "in rms", "out rms", "γ rms"],
            [
                [n.name, n.kind, _num(n.in_rms), _num(n.out_rms), _num(n.gamma_rms)]
                for n in report.norms
            ],
        )
    elif report.norms:
        ins = [n.in_rms for n in report.norms if n.in_rms == n.in_rms]
        span = f", input rms {_num(min(ins))} to {_num(max(ins))}" if ins else ""
        _line(console, f"norm layers: {len(report.norms)}{span} (--verbose lists them).")
    out = report.output
    if out is not None:
        if out.classes is not None and out.cross_entropy == out.cross_entropy:
            c = 2 if out.classes == 1 else out.classes
            text = (
                f"output: loss {_num(out.cross_entropy)} (ln {c} = {out.natural_loss:#.3g} at "
                f"init), logits rms {_num(out.rms)}"
            )
        else:
            text = f"output: {'×'.join(map(str, out.shape))}, rms {_num(out.rms)}"
        _line(console, text)
    if len(report.loss_history) > 1:  # Watch: the losses of earlier reports, then this one
        _line(console, "loss history: " + " → ".join(_num(x) for x in report.loss_history))
    if report.unseen:
        _line(console, "not measured: " + "; ".join(report.unseen))


def _line(console: Console, text: str, style: str = "") -> None:
    console.print(Text(text, style=style), highlight=False)


def _print_probe(
    console: Console, report: Probe, model: str, steps: bool, verbose: bool = False, stage: str = ""
) -> None:
    title = f"probe of {model}" + (f", member {report.member}" if report.member is not None else "")
    title += f" {stage}" if stage else ""
    title += f" — loss {report.loss:.4g}" if report.loss == report.loss else ""
    table, legend = _layer_table(console, report, steps)
    _line(console, title)  # above the table, not its title: as wide as the console
    console.print(table)
    for line in legend:
        _line(console, line, "dim")
    factors = [
        f"{what} ×{value:.3g} {way}"
        for what, value, way in (
            ("signal", report.forward_factor, "forward"),
            ("gradient", report.backward_factor, "backward"),
        )
        if math.isfinite(value)
    ]
    note = f"no forecast: {report.forecast_note}" if report.forecast_note else ""
    if factors or note:
        text = ("per layer: " + ", ".join(factors)) if factors else ""
        _line(console, "; ".join(t for t in (text, note) if t))
    _print_parts(console, report, verbose)
    if report.healthy:
        advice = any(v.severity == "advice" for v in report.verdicts)
        console.print(
            "[bold green]healthy:[/] " + ("no problem; advice below." if advice else "no verdict.")
        )
    for v in report.verdicts:
        style = _VERDICT_STYLE.get(v.kind, "bold")
        head = (
            f"[cyan]advice:[/] [{style}]{v.kind}[/]"
            if v.severity == "advice"
            else f"[{style}]{v.kind}[/]"
        )
        console.print(
            f"{head}: {escape(v.evidence)}\n  [bold]fix:[/] {escape(v.advice)}", highlight=False
        )


def _print_reports(o: _ProbeOptions, reports: list[Probe], fixed: _Fixed | None) -> None:
    """Each report's table and verdicts (before and after with --fix), or JSON or CSV,
    and its figure with --figure."""
    if o.output_format == "json":
        _print_json(o, reports, fixed)
    elif o.output_format == "csv":
        _print_csv(reports, fixed)
    else:
        console = Console()
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console.width = max(console.width, 120)  # a pipe or a file: room for the table
        if fixed is None:
            for report in reports:
                _print_probe(console, report, o.model, o.steps > 0, o.verbose)
        else:
            for report in fixed.before:
                _print_probe(console, report, o.model, o.steps > 0, o.verbose, "before --fix")
            console.print("[bold]--fix applied:[/]" if fixed.applied else "[bold]--fix:[/] "
                          "nothing to change.")  # fmt: skip
            for change in fixed.applied:
                _line(console, f"  {change}")
            if fixed.left:
                _line(console, "left as they were (no init change fixes them): "
                      + ", ".join(fixed.left))  # fmt: skip
            for report in fixed.after:
                _print_probe(console, report, o.model, o.steps > 0, o.verbose, "after --fix")
    if o.figure is not None:
        for report in fixed.after if fixed is not None else reports:
            _write_figure(o, report)


def _write_figure(o: _ProbeOptions, report: Probe) -> None:
    from initlab.report import probe_figure

    assert o.figure is not None
    path = (
        o.figure
        if report.member is None
        else o.figure.with_stem(f"{o.figure.stem}-member{report.member}")
    )
    try:
        written = probe_figure(report, path, title=o.model)
    except OSError as error:
        _fail(f"cannot write {str(path)!r}: {error}. Choose another path.", "--figure")
    # JSON and CSV keep stdout to themselves.
    Console(stderr=o.output_format != "table", soft_wrap=True).print(
        f"figure: {_path(written)}", markup=False, highlight=False
    )


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
    layout: Annotated[
        str,
        typer.Option(
            help="the data's layout: auto (from the model's first layer), flat (N, features), "
            "image (N, C, H, W) or sequence (N, T, features)"
        ),
    ] = "auto",
    tokens: Annotated[
        int | None,
        typer.Option(help="a random batch of token ids in [0, VOCAB) of --input-shape's shape"),
    ] = None,
    input_dtype: Annotated[
        str | None,
        typer.Option(help="the random batch's dtype: float, long or int (integers in [0, VOCAB))"),
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
    seed: Annotated[
        int, typer.Option(help="seeds the model's construction, the batch, the init and the probe")
    ] = 0,
    fix: Annotated[
        bool, typer.Option("--fix", help="apply every verdict's fix and probe again")
    ] = False,
    output_format: Annotated[
        str, typer.Option("--format", help="table, json (one object per member) or csv")
    ] = "table",
    verbose: Annotated[bool, typer.Option("--verbose", help="list every norm layer")] = False,
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
        with torch.random.fork_rng(devices=[]):  # the caller's global RNG left as it was
            torch.manual_seed(seed)  # the factory's own init: the same model every run
            net = _load_factory(model, debug)
        generator = torch.Generator().manual_seed(seed)
        batch = _probe_batch(o, shape, net, generator)
        if init is not None:
            try:
                initmod.apply(net, weight=init, bias=bias_init, generator=generator)
            except (ValueError, TypeError) as error:
                if debug:
                    raise
                _fail_in_cli_words(error, "--init")
        fixed = _run_fix(o, net, batch, chosen, generator) if fix else None
        reports = fixed.after if fixed is not None else _run_probe(o, net, batch, chosen)
        _print_reports(o, reports, fixed)
    except (ValueError, TypeError) as error:
        if debug:
            raise
        _fail_in_cli_words(error)
    except KeyboardInterrupt:
        _interrupted("the probe stopped; nothing was printed for it.")


# ----------------------------------------------------------------------------- studies

study_app = typer.Typer(
    help="Studies kept in a store: run one from a TOML file, print its plan, count its "
    "runs, export them, write their report.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
app.add_typer(study_app, name="study")

_Overrides = Annotated[
    list[str],
    typer.Argument(
        help="key=value fields: lr=0.1,0.01 (an axis), seed='range(5)', "
        "init=he_normal,'normal(std=0.01)', 'zip(lr=0.1,0.01; batch_size=64,32)'",
        show_default=False,
    ),
]
_StudyArgs = Annotated[
    list[str],
    typer.Argument(help="a TOML study file, or key=value fields as initlab sweep takes"),
]
_StudyFile = Annotated[Path, typer.Argument(help="the TOML study file")]
_StoreOption = Annotated[
    Path, typer.Option("--store", help="the study's SQLite store (created if missing)")
]
_StoreArgument = Annotated[Path, typer.Argument(help="the study's SQLite store")]
_Samples = Annotated[
    int | None,
    typer.Option(min=1, help="random draws, with random fields: lr='loguniform(1e-4,1)'"),
]
_SampleSeed = Annotated[int, typer.Option(min=0, help="the seed of the random draws")]
_MaxMembers = Annotated[int, typer.Option(min=1, help="the most runs one stack trains")]
_StudyDevice = Annotated[str, typer.Option(help="cpu or cuda")]
_Progress = Annotated[bool, typer.Option(help="a progress bar on stderr")]
_BACKENDS = ("local", "ray")
_Backend = Annotated[
    str, typer.Option(help="local (stacks one after another here) or ray (a task per stack)")
]
_Address = Annotated[
    str | None, typer.Option(help="with --backend ray: auto or HOST:PORT (default: a local Ray)")
]


def _study_error(message: object, option: str | None = None, code: int = 2) -> NoReturn:
    """Print ``error: OPTION: message`` as one line on stderr and exit: code 2 for a study
    that cannot run (a bad spec, a pre-flight problem, a bad store), as every command's bad
    input; 1 for runs that failed."""
    text = str(message) if str(message) else type(message).__name__
    _print_error(f"{option}: {text}" if option else text)
    raise typer.Exit(code)


def _is_study_file(args: Sequence[str]) -> bool:
    """One argument without ``=``: a TOML file, not a ``key=value`` field."""
    return len(args) == 1 and "=" not in args[0]


def _study(args: Sequence[str], samples: int | None, sample_seed: int) -> Study:
    """The study of a TOML file or of ``key=value`` fields; a bad spec exits 2."""
    from initlab import studies

    if _is_study_file(args) and (samples is not None or sample_seed != 0):
        option = "--samples" if samples is not None else "--sample-seed"
        _study_error(
            f"a study file sets its own samples and seed. Got {option} with {_path(args[0])}. "
            "Write samples = N and seed = S at the top of the file.",
            option,
        )
    try:
        if not _is_study_file(args):
            return studies.parse_overrides(list(args), samples=samples, seed=sample_seed)
        return studies.load_toml(args[0])
    except FileNotFoundError:
        _study_error(
            f"expected a TOML study file or key=value fields (e.g. lr=0.1,0.01). Got "
            f"{_path(args[0])!r}, which does not exist.",
            "FILE",
        )
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as error:
        _study_error(f"expected a readable TOML study file. Got {_path(args[0])!r}: {error}.")
    except (ValueError, TypeError) as error:
        _study_error(error)


def _command(words: Sequence[object]) -> str:
    """A command line to type again (to resume)."""
    import shlex

    return shlex.join(["initlab", *map(str, words)])


@dataclass(frozen=True)
class _RunOptions:
    """How ``initlab sweep`` and ``initlab study run`` run a study, as typed."""

    max_members: int
    device: str
    progress: bool
    backend: str
    address: str | None


def _option_words(samples: int | None, sample_seed: int, o: _RunOptions) -> list[str]:
    """The options given other than their defaults, as typed: for the resume command."""
    words: list[str] = []
    if samples is not None:
        words += ["--samples", str(samples)]
    if sample_seed != 0:
        words += ["--sample-seed", str(sample_seed)]
    if o.max_members != DEFAULT_MAX_MEMBERS:
        words += ["--max-members", str(o.max_members)]
    if o.device != "cpu":
        words += ["--device", o.device]
    if o.backend != "local":
        words += ["--backend", o.backend]
    if o.address is not None:
        words += ["--address", o.address]
    return words + ([] if o.progress else ["--no-progress"])


def _run_study(study: Study, store: Path, words: Sequence[object], o: _RunOptions) -> None:
    """Run ``study`` into ``store`` and print what was done. Exit 1 if runs failed, 130
    on Ctrl-C; ``words`` is the command again, printed to resume."""
    from initlab.studies import run_study

    command = _command(words)
    try:
        s = run_study(
            study,
            store,
            max_members=o.max_members,
            device=o.device,
            progress=o.progress,
            backend=o.backend,  # type: ignore[arg-type]  # checked: local or ray
            address=o.address,
        )
    except (ValueError, TypeError, ImportError) as error:
        _study_error(error)
    except OSError as error:  # the store cannot be made or written where it was asked
        _study_error(error, "--store")
    except KeyboardInterrupt:
        _interrupted(f"stopped before any stack was written. Resume with: {command}")
    typer.echo(
        f"{s.runs:,} runs: {s.skipped:,} already done (skipped), {s.trained:,} trained in "
        f"{s.stacks_trained:,} of {s.stacks:,} stacks ({s.done:,} done, {s.diverged:,} "
        f"diverged, {s.failed:,} failed), {s.pending:,} pending · {s.seconds:,.1f} s · "
        f"store {_path(store)}"
    )
    if s.interrupted:
        _interrupted(
            f"kept the {s.trained:,} runs of {s.stacks_trained:,} finished stacks; "
            f"{s.pending:,} runs pending. Resume with: {command}"
        )
    if s.failed:
        _study_error(
            f"{s.failed:,} of the runs failed; their reasons are in the store. See: "
            + _command(["study", "status", store]),
            code=1,
        )


@app.command("sweep")
def sweep_command(
    fields: _Overrides,
    store: _StoreOption,
    samples: _Samples = None,
    sample_seed: _SampleSeed = 0,
    max_members: _MaxMembers = DEFAULT_MAX_MEMBERS,
    device: _StudyDevice = "cpu",
    progress: _Progress = True,
    backend: _Backend = "local",
    address: _Address = None,
) -> None:
    """Run a study of key=value fields into a store, stack by stack; rerun to resume.

    Comma lists make a grid (the product of the axes), e.g. initlab sweep --store runs.db
    data=circles model=2,10,5,1 init=he_normal,xavier_normal lr=0.1,0.01 seed='range(5)'
    steps=3000. Exit codes: 0 done, 1 runs failed, 2 a bad study (nothing ran), 130 interrupted.
    """
    if _is_study_file(fields):
        _study_error(
            f"expected key=value fields, e.g. lr=0.1,0.01 steps=1000. Got {fields[0]!r}. "
            "For a study file: initlab study run FILE --store DB.",
            "FIELDS",
        )
    o = _RunOptions(
        max_members, device, progress, _choice(backend, _BACKENDS, "--backend"), address
    )
    study = _study(fields, samples, sample_seed)
    words = ["sweep", "--store", store, *fields, *_option_words(samples, sample_seed, o)]
    _run_study(study, store, words, o)


@study_app.command("run")
def study_run_command(
    file: _StudyFile,
    store: _StoreOption,
    max_members: _MaxMembers = DEFAULT_MAX_MEMBERS,
    device: _StudyDevice = "cpu",
    progress: _Progress = True,
    backend: _Backend = "local",
    address: _Address = None,
) -> None:
    """Run a TOML study file into a store, stack by stack; rerun to resume.

    Exit codes: 0 done, 1 runs failed, 2 a bad study (nothing ran), 130 interrupted.
    """
    o = _RunOptions(
        max_members, device, progress, _choice(backend, _BACKENDS, "--backend"), address
    )
    study = _study([str(file)], None, 0)
    words = ["study", "run", file, "--store", store, *_option_words(None, 0, o)]
    _run_study(study, store, words, o)


@study_app.command("plan")
def study_plan_command(
    spec: _StudyArgs,
    samples: _Samples = None,
    sample_seed: _SampleSeed = 0,
    max_members: _MaxMembers = DEFAULT_MAX_MEMBERS,
    store: Annotated[
        Path | None, typer.Option(help="leave out the runs this store has done (resume)")
    ] = None,
) -> None:
    """Print the stacks a study trains, what each varies and shares; run nothing."""
    from initlab.store import Store
    from initlab.studies import plan, run_id
    from initlab.studies.check import check_points

    study = _study(spec, samples, sample_seed)
    points = study.points()
    try:
        datasets = check_points(points)
        done: set[str] = set()
        if store is not None and store.exists():
            with Store(store, readonly=True) as opened:
                done = opened.done_ids()
        pending = [p for p in points if run_id(p) not in done]
        the_plan = plan(
            pending,
            max_members=max_members,
            n_train={spec: ds.n_train for spec, ds in datasets.items()},
        )
    except (ValueError, TypeError) as error:
        _study_error(error)
    except KeyboardInterrupt:
        _interrupted("nothing was planned.")
    if store is not None:
        typer.echo(
            f"{len(points) - len(pending):,} of {len(points):,} runs already done in "
            f"{_path(store)}; the plan trains the rest."
        )
    typer.echo(the_plan.describe() if pending else "Nothing to train.")


def _shown_value(value: Any) -> str:
    """A config value in a table: lists as widths, None as none, floats short."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


@study_app.command("status")
def study_status_command(store: _StoreArgument) -> None:
    """Count a store's runs: done, pending, failed, diverged, in all and per stack key
    (the fields runs of one stack share)."""
    from initlab.store import load
    from initlab.studies import FIELDS, MEMBER_FIELDS

    try:
        frame = load(store)
    except (ValueError, OSError) as error:
        _study_error(error, "STORE")
    except KeyboardInterrupt:
        _interrupted("nothing was read.")
    statuses = ("done", "diverged", "failed", "pending")
    counts = frame["status"].value_counts()
    total = ", ".join(f"{int(counts.get(s, 0)):,} {s}" for s in statuses)
    typer.echo(f"{_path(store)}: {len(frame):,} runs: {total}")
    if frame.empty:
        return
    # The stack key: every field but the per-member ones (and momentum), as the planner.
    columns = {
        name: column
        for name in FIELDS
        if name not in MEMBER_FIELDS and name != "momentum"
        for column in (f"config.{name}", name)
        if column in frame.columns
    }
    keys = frame[list(columns.values())].map(_shown_value)
    keys.columns = list(columns)
    varying = [name for name in columns if keys[name].nunique() > 1]
    table = Table(box=box.SIMPLE_HEAD, title="per stack key" if varying else None)
    for name in varying or ["stack key"]:
        table.add_column(name)
    for status in ("runs", *statuses):
        table.add_column(status, justify="right")
    groups = frame.groupby(keys[varying].apply(" ".join, axis=1), sort=False) if varying else None
    for _, rows in groups if groups is not None else [("", frame)]:
        by = rows["status"].value_counts()
        cells = keys.loc[rows.index[0], varying].tolist() if varying else ["all runs"]
        table.add_row(
            *map(escape, cells), f"{len(rows):,}", *(f"{int(by.get(s, 0)):,}" for s in statuses)
        )
    Console(soft_wrap=True, highlight=False).print(table)
    failed = frame.loc[frame["status"] == "failed", "reason"]
    for reason, count in failed.value_counts().head(3).items():
        typer.echo(f"failed ({count:,}): {reason}")


@study_app.command("export")
def study_export_command(
    store: _StoreArgument,
    out: Annotated[Path, typer.Argument(help="the file to write: .parquet or .csv")],
    output_format: Annotated[
        str | None, typer.Option("--format", help="parquet or csv (default: from OUT's suffix)")
    ] = None,
) -> None:
    """Write a store's runs (one row per run: its config and results) to Parquet or CSV."""
    from initlab.store import export

    chosen = output_format or ("csv" if out.suffix.lower() == ".csv" else "parquet")
    _choice(chosen, ("parquet", "csv"), "--format")
    try:
        written = export(store, out, chosen)  # type: ignore[arg-type]
    except (ValueError, OSError) as error:
        _study_error(error)
    except KeyboardInterrupt:
        _interrupted("nothing was written.")
    typer.echo(f"wrote {_path(written)}")


@study_app.command("report")
def study_report_command(
    store: _StoreArgument,
    out: Annotated[
        Path | None,
        typer.Option(help="an .html file, or a folder for index.html (default: STORE-report/)"),
    ] = None,
    x: Annotated[
        str | None, typer.Option("--x", help="the heatmap's columns: an axis (a varying field)")
    ] = None,
    y: Annotated[str | None, typer.Option("--y", help="the heatmap's rows: another axis")] = None,
    metric: Annotated[
        str, typer.Option(help="final_loss, best_loss, train_acc or test_acc")
    ] = "final_loss",
    group: Annotated[
        str | None, typer.Option(help="the axis the loss curves are grouped by")
    ] = None,
) -> None:
    """Write a study's report: one self-contained HTML page (the metric as a heatmap over
    two axes with the diverged region marked, loss curves by group, scale against depth,
    the best and the diverged runs). Prints the page's path."""
    from initlab.studies.report import write_report

    try:
        written = write_report(store, out, x=x, y=y, metric=metric, group=group)
    except (ValueError, OSError) as error:
        _study_error(error)
    except KeyboardInterrupt:
        _interrupted("nothing was written.")
    typer.echo(_path(written))


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
