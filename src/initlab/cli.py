"""The ``initlab`` command: a thin shell that prints what the library returns."""

from __future__ import annotations

import re
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from initlab import __version__
from initlab import init as initmod

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


def main() -> None:
    """Entry point of the ``initlab`` console script."""
    app()
