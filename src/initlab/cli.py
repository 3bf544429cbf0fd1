"""The ``initlab`` command: a thin shell that prints what the library returns."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Annotated, Any, NoReturn

import torch
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from initlab import __version__
from initlab import init as initmod
from initlab import train as train_mod

app = typer.Typer(
    name="initlab",
    help="See whether a network trains, and why not: initialization, normalization, "
    "batching, clipping, gradient diagnosis.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)

_SHAPE = re.compile(r"^\d+([x×]\d+)*$")


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


def parse_shape(text: str) -> tuple[int, ...]:
    """``"256x128"`` → (256, 128); ``"64x3x3x3"`` → (64, 3, 3, 3)."""
    cleaned = text.strip().lower()
    if not _SHAPE.match(cleaned):
        raise typer.BadParameter(
            f"expected OUTxIN (a Linear weight) or OUTxINxKxK (a conv weight), e.g. 256x128 "
            f"or 64x3x3x3. Got {text!r}."
        )
    shape = tuple(int(part) for part in re.split("[x×]", cleaned))
    if any(s == 0 for s in shape):
        raise typer.BadParameter(f"every dimension must be at least 1. Got {text!r}.")
    return shape


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
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--activation") from error
    title = "init schemes"
    if dims is not None:
        title += f" for a {'x'.join(map(str, dims))} weight"
        if len(dims) >= 2:
            fan_in, fan_out = initmod.calculate_fans(dims)
            title += f" (fan_in {fan_in}, fan_out {fan_out})"
    if activation is not None:
        title += f"\ngain g = {gain:.4g} ({activation}) for xavier, kaiming, orthogonal"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
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
        if dims is None:
            table.add_row(label, scheme.formula, scheme.fans, style=style)
            continue
        try:
            draw = spec.describe(dims)
        except ValueError:
            table.add_row(label, scheme.formula, scheme.fans, "n/a", "wrong dims", style=style)
            continue
        table.add_row(
            label, scheme.formula, _fans(draw), _fmt(draw.std), _bounds(draw), style=style
        )
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
    for name, act in initmod.ACTIVATIONS.items():
        if name.startswith("conv"):
            continue
        table_gain = initmod.calculate_gain(name)
        measured = initmod.calculate_gain(name, method="measured")
        style = "yellow" if abs(table_gain - measured) > 1e-9 else None
        table.add_row(name, f"{table_gain:.4f}", f"{measured:.4f}", act.note, style=style)
    Console().print(table)


def split_list(text: str) -> list[str]:
    """Split on top-level commas: ``"he_normal,normal(0, 1)"`` → two items."""
    items, depth, current = [], 0, ""
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += ch
    items.append(current.strip())
    return [item for item in items if item]


def _numbers(text: str, option: str) -> list[float]:
    try:
        return [float(item) for item in split_list(text)]
    except ValueError as error:
        raise typer.BadParameter(
            f"expected numbers separated by commas. Got {text!r}.", param_hint=option
        ) from error


def _fail(error: Exception) -> NoReturn:
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {error}")
    raise typer.Exit(2)


class _Bar:
    """A rich progress bar fed by the engine's progress reports."""

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
        self.task = self.progress.add_task(label, total=None, info="")

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, p: train_mod.Progress) -> None:
        info = (
            f"{p.active}/{p.members} training · {p.steps_per_second:,.0f} steps/s · "
            f"loss {p.best_loss:.4g}…{p.worst_loss:.4g}"
        )
        self.progress.update(self.task, completed=p.step, total=p.total, info=info)


@app.command("train")
def train_command(
    data: Annotated[
        str,
        typer.Option(
            help="circles, moons, xor, blobs, spiral, digits, mnist, fashion-mnist, mnist1d"
        ),
    ] = "circles",
    model: Annotated[str, typer.Option(help="MLP widths, e.g. 2,10,5,1")] = "2,10,5,1",
    activation: Annotated[str, typer.Option(help="relu, tanh, sigmoid, …")] = "relu",
    batch_norm: Annotated[str, typer.Option(help="none, before or after the activation")] = "none",
    init: Annotated[
        str, typer.Option(help="init specs, comma-separated: each is a member")
    ] = "he_normal",
    bias_init: Annotated[str, typer.Option(help="the bias init spec")] = "zeros",
    seeds: Annotated[int, typer.Option(help="seeds per setting (0…n−1): init and shuffle")] = 1,
    lr: Annotated[str, typer.Option(help="learning rates, comma-separated")] = "0.01",
    optimizer: Annotated[
        str, typer.Option(help="sgd, momentum, nesterov, rmsprop, adam, adamw; comma-separated")
    ] = "sgd",
    loss: Annotated[str, typer.Option(help="auto, cross_entropy, bce or mse")] = "auto",
    batch_size: Annotated[str, typer.Option(help="full, 1 or k")] = "full",
    drop_last: Annotated[bool, typer.Option(help="drop each epoch's last, smaller batch")] = False,
    steps: Annotated[int | None, typer.Option(help="step budget")] = None,
    epochs: Annotated[int | None, typer.Option(help="epoch budget")] = None,
    schedule: Annotated[
        str, typer.Option(help="constant, step_decay(1000), exponential(0.99), cosine(100)")
    ] = "constant",
    clip: Annotated[str, typer.Option(help="none, value, norm or agc")] = "none",
    clip_threshold: Annotated[str, typer.Option(help="thresholds, comma-separated")] = "1.0",
    tol: Annotated[
        float | None,
        typer.Option(help="stop a member when its cost changes less than this over --window steps"),
    ] = None,
    window: Annotated[int, typer.Option(help="steps for --tol")] = 100,
    dtype: Annotated[str, typer.Option(help="float32 or float64")] = "float32",
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    save_history: Annotated[
        Path | None, typer.Option(help="write the history (.csv or .parquet)")
    ] = None,
    figure: Annotated[Path | None, typer.Option(help="write the loss curves (.png)")] = None,
) -> None:
    """Train every combination of --init × --seeds × --lr × --optimizer × --clip-threshold
    as one stack, and print a table per member."""
    from initlab import data as data_mod
    from initlab import models

    try:
        widths = [int(w) for w in split_list(model)]
    except ValueError:
        raise typer.BadParameter(
            f"expected widths like 2,10,5,1. Got {model!r}.", param_hint="--model"
        ) from None
    if dtype not in ("float32", "float64"):
        raise typer.BadParameter(
            f"expected float32 or float64. Got {dtype!r}.", param_hint="--dtype"
        )
    size: data_mod.BatchSize = "full" if batch_size == "full" else _int(batch_size, "--batch-size")
    if seeds < 1:
        raise typer.BadParameter(f"expected at least 1. Got {seeds}.", param_hint="--seeds")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise typer.BadParameter(
            f"{device!r} asked for, but this torch build sees no CUDA device. Use --device cpu.",
            param_hint="--device",
        )
    grid = list(
        itertools.product(
            split_list(init),
            range(seeds),
            _numbers(lr, "--lr"),
            split_list(optimizer),
            _numbers(clip_threshold, "--clip-threshold"),
        )
    )
    try:
        ds = data_mod.load(data)
        loss_name = loss if loss != "auto" else ("bce" if widths[-1] == 1 else "cross_entropy")
        config = train_mod.TrainConfig(
            loss=loss_name,  # type: ignore[arg-type]
            optimizer=[g[3] for g in grid],
            lr=[g[2] for g in grid],
            schedule=schedule,
            batch_size=size,
            drop_last=drop_last,
            seeds=[g[1] for g in grid],
            clip=None if clip == "none" else clip,  # type: ignore[arg-type]
            clip_threshold=[g[4] for g in grid],
            steps=steps,
            epochs=epochs,
            tol=tol,
            window=window,
            log_every=max(1, (steps or 1000) // 1000),
            check_every=100,
        )
        stack = models.mlp(
            widths,
            activation,
            None if batch_norm == "none" else batch_norm,  # type: ignore[arg-type]
            members=len(grid),
            dtype=getattr(torch, dtype),
            device=device,
        )
        models.init_members(stack, [g[0] for g in grid], bias_init, seeds=[g[1] for g in grid])
        with _Bar(f"{len(grid)} members") as bar:
            result = train_mod.train(stack, ds, config, progress=bar)
    except (ValueError, TypeError) as error:
        _fail(error)
    # Columns only for what varies across members; what is fixed goes in the title.
    dims = ["init", "seed", "lr", "optimizer", "clip"]
    shown = [d for d in dims if d != "clip" or clip != "none"]
    varying = [d for d in shown if len({g[dims.index(d)] for g in grid}) > 1]
    fixed = [f"{d} {_show(grid[0][dims.index(d)])}" for d in shown if d not in varying]
    title = f"{ds.name}: {len(grid)} members, {result.total_steps} steps in {result.seconds:.1f} s"
    title += " (interrupted)" if result.interrupted else ""
    title += f"\n{', '.join(fixed)}" if fixed else ""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right")
    for d in varying:
        table.add_column(d, no_wrap=d == "init")
    for column in ("stopped", "final loss", "train acc", "test acc"):
        table.add_column(column, justify="right", no_wrap=True)
    styles = {"diverged": "red", "converged": "green", "interrupted": "yellow"}
    for g, m in zip(grid, result.members, strict=True):
        acc = [f"{a:.4f}" if a is not None else "—" for a in (m.train_accuracy, m.test_accuracy)]
        cells = [_show(g[dims.index(d)]) for d in varying]
        table.add_row(
            str(m.member),
            *cells,
            f"{m.status} {m.stopped_step}",
            f"{m.final_loss:.4g}",
            *acc,
            style=styles.get(m.status),
        )
    Console().print(table)
    if save_history is not None:
        frame = result.to_frame()
        keys = ["init", "seed", "lr", "optimizer"] + (["clip_threshold"] if clip != "none" else [])
        for k, key in enumerate(keys):
            frame[key] = frame["member"].map(lambda i, k=k: grid[i][k])
        save_history.parent.mkdir(parents=True, exist_ok=True)
        if save_history.suffix == ".parquet":
            frame.to_parquet(save_history)
        else:
            frame.to_csv(save_history, index=False)
        Console().print(f"history: {save_history}")
    if figure is not None:
        from initlab.report import loss_curves

        clipped = clip != "none"
        names = [
            f"{g[0]} s{g[1]} lr{g[2]:g} {g[3]}" + (f" clip{g[4]:g}" if clipped else "")
            for g in grid
        ]
        Console().print(f"figure: {loss_curves(result.steps, result.loss, names, figure)}")


def _show(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _int(text: str, option: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise typer.BadParameter(
            f"expected 'full' or an integer. Got {text!r}.", param_hint=option
        ) from None


class _LessonBar(_Bar):
    """The progress bar of a lesson: its stage on the left, the engine's numbers after."""

    def stage(self, text: str) -> None:
        self.progress.reset(self.task, description=text, total=None, info="")


@app.command("lessons")
def lessons_command() -> None:
    """List the lessons: each is one command, `initlab lesson NAME`."""
    from initlab.lessons import LESSONS

    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("lesson", style="bold")
    table.add_column("what it shows")
    for name, summary in LESSONS.items():
        table.add_row(name, summary)
    console = Console()
    console.print(table)
    console.print("[dim]Run one with: initlab lesson NAME [--quick] [--device cuda] [--out DIR][/]")


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
    from initlab.lessons import LESSONS, resolve_device, run

    if name not in LESSONS:
        raise typer.BadParameter(
            f"expected one of {', '.join(LESSONS)} (see `initlab lessons`). Got {name!r}.",
            param_hint="NAME",
        )
    try:
        resolve_device(device)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--device") from None
    folder = out if out is not None else Path("initlab-reports") / name
    console = Console()
    try:
        bar = _LessonBar(f"lesson {name}")
        with bar:
            lesson = run(name, folder, quick=quick, device=device, progress=bar)
    except KeyboardInterrupt:
        report = folder / "index.html"
        where = f"; the report so far: {report}" if report.exists() else ""
        console.print(f"[yellow]interrupted{where}[/]")
        raise typer.Exit(130) from None
    for line in lesson.lines:
        console.print(line, highlight=False)
    console.print(f"\n[bold]{lesson.title}[/]")
    for finding in lesson.findings:
        console.print(f" • {finding}", highlight=False)
    console.print(
        f"[dim]{lesson.seconds:.1f} s; report: {lesson.report} "
        f"({len(lesson.figures)} figures beside it)[/]"
    )


def load_factory(target: str) -> torch.nn.Module:
    """Build the model named by ``MODULE:FACTORY`` or ``path/to/file.py:FACTORY(arg=1)``.

    MODULE is imported (the current directory is on the path); FACTORY is an attribute of
    it: an ``nn.Module``, or a callable returning one, called with the literal arguments
    given in parentheses.
    """
    import importlib
    import importlib.util
    import sys

    from initlab._spec import parse_call

    where, sep, call = target.rpartition(":")
    if not sep or not where or not call:
        raise typer.BadParameter(
            f"expected MODULE:FACTORY, e.g. mypackage.models:build or nets.py:deep(depth=30). "
            f"Got {target!r}.",
            param_hint="MODEL",
        )
    name = call.split("(", 1)[0].strip()
    try:
        _, args, kwargs = parse_call(call, "Factory call", "'deep_mlp(depth=30)'")
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="MODEL") from error
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise FileNotFoundError(f"no file {where!r}")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(where)
    except (ImportError, FileNotFoundError) as error:
        raise typer.BadParameter(
            f"cannot import {where!r}: {error}. Give a module importable from here or a .py file.",
            param_hint="MODEL",
        ) from error
    if not name.isidentifier() or not hasattr(module, name):
        public = sorted(n for n in vars(module) if not n.startswith("_"))
        raise typer.BadParameter(
            f"{where!r} has no attribute {name!r}. It has: {', '.join(public[:20])}.",
            param_hint="MODEL",
        )
    factory = getattr(module, name)
    built = factory if isinstance(factory, torch.nn.Module) else None
    if built is None and callable(factory):
        built = factory(*args, **kwargs)
    if not isinstance(built, torch.nn.Module):
        raise typer.BadParameter(
            f"{target!r} must be an nn.Module or return one. Got {type(built).__name__}.",
            param_hint="MODEL",
        )
    return built


_VERDICT_STYLE = {
    "vanishing": "bold red",
    "exploding": "bold red",
    "nonfinite": "bold red",
    "saturated": "yellow",
    "dead": "yellow",
    "symmetric": "magenta",
    "redundant_bias": "cyan",
}


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
        Path | None, typer.Option(help="write histograms and std against depth (.png)")
    ] = None,
) -> None:
    """Why a model will not train: per-layer statistics beside the theory's forecast,
    verdicts and the fix to try."""
    from torch.nn import functional as F

    from initlab import data as data_mod
    from initlab import probe as probe_mod

    if (input_shape is None) == (data is None):
        raise typer.BadParameter(
            "give exactly one of --input-shape (random input) or --data (real data).",
            param_hint="--input-shape / --data",
        )
    if loss not in ("auto", "cross_entropy", "mse", "none"):
        raise typer.BadParameter(
            f"expected auto, cross_entropy, mse or none. Got {loss!r}.", param_hint="--loss"
        )
    net = load_factory(model)
    generator = torch.Generator().manual_seed(seed)
    target: torch.Tensor | None = None
    try:
        if input_shape is not None:
            x = torch.randn(parse_shape(input_shape), generator=generator)
        else:
            assert data is not None
            ds = data_mod.load(data)
            if batch_size < 1:
                raise ValueError(f"--batch-size must be at least 1. Got {batch_size}.")
            x, target = ds.x_train[:batch_size], ds.y_train[:batch_size]
        if init is not None:
            initmod.apply(net, weight=init, bias=bias_init, generator=generator)
        chosen = loss if loss != "auto" else ("cross_entropy" if target is not None else "none")
        if chosen != "none" and target is None:
            raise ValueError(f"--loss {chosen} needs labels: use --data, or --loss none.")
        loss_fn = {"cross_entropy": F.cross_entropy, "mse": _mse, "none": None}[chosen]
        batch = x if target is None else (x, target)
        result = probe_mod.probe(net, batch, loss_fn, steps, lr=lr, seed=seed)
    except (ValueError, TypeError) as error:
        _fail(error)
    reports = result if isinstance(result, list) else [result]
    console = Console()
    if not console.is_terminal:  # a pipe or a file: room for the whole table
        console.width = max(console.width, 120)
    for report in reports:
        _print_probe(console, report, model, steps > 0)
        if figure is not None:
            from initlab.report import probe_figure

            path = (
                figure
                if report.member is None
                else figure.with_stem(f"{figure.stem}-member{report.member}")
            )
            console.print(f"figure: {probe_figure(report, path, title=model)}")


def _mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    from torch.nn import functional as F

    if target.dtype == torch.int64 and output.shape[-1] > 1:
        return F.mse_loss(output, F.one_hot(target, output.shape[-1]).to(output.dtype))
    return F.mse_loss(output.reshape(target.shape), target.to(output.dtype))


def _print_probe(console: Console, report: Any, model: str, steps: bool) -> None:
    def cell(value: float | None) -> str:
        return "—" if value is None or value != value else f"{value:.3g}"

    title = f"probe of {model}" + (f", member {report.member}" if report.member is not None else "")
    title += f" — loss {report.loss:.4g}" if report.loss == report.loss else ""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
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
        row = [
            str(s.index),
            s.name,
            s.activation or "?",
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
        highlight=False,
    )
    if report.healthy:
        console.print("[bold green]healthy:[/] no verdict.")
    for v in report.verdicts:
        console.print(
            f"[{_VERDICT_STYLE[v.kind]}]{v.kind}[/]: {v.evidence}\n  [bold]fix:[/] {v.advice}",
            highlight=False,
        )


def main() -> None:
    """Entry point of the ``initlab`` console script."""
    app()
