"""The one reader of call-like spec strings: ``name`` or ``name(arg, key=value)``.

Init schemes (``"normal(std=0.01)"``) and learning-rate schedules
(``"step_decay(1000)"``) are written this way, in Python, TOML and on the command line.
Arguments must be literals. By default a bare identifier is read as a string (so
``xavier_normal(gain=tanh)`` needs no quotes in a shell), except ``nan`` and ``inf``;
``bare_names=False`` refuses it instead (a factory call, where ``inputs=x`` is more likely
a variable than the string ``'x'``).
"""

from __future__ import annotations

import ast
import math
import sys
from typing import Any

__all__ = ["parse_call"]

_NUMBERS = {"nan": math.nan, "inf": math.inf}
# Longer specs are refused before parsing: Python's parser runs out of memory or stack on
# some of them (100,000 nested unary minus signs), and no spec needs this many characters.
_MAX_LENGTH = 10_000


def _shown(text: str) -> str:
    """``text`` quoted for a message, cut short if it is long."""
    return repr(text) if len(text) <= 200 else f"{text[:200]!r}… ({len(text):,} characters)"


def _value(node: ast.expr, what: str, text: str, bare_names: bool) -> Any:
    if isinstance(node, ast.Name):
        number = _NUMBERS.get(node.id.lower())
        if number is not None:
            return number
        if bare_names:
            return node.id
        raise ValueError(
            f"{what} {_shown(text)}: arguments must be literals (numbers, strings in quotes, "
            f"True/False). Got the bare name {node.id}, which is not looked up. Write "
            f"{node.id!r} in quotes if you meant the string."
        )
    segment = ast.get_source_segment(text.strip(), node) or "an argument"
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as error:
        raise ValueError(
            f"{what} {_shown(text)}: arguments must be literals (numbers, strings, "
            f"True/False). Got {_shown(segment)}."
        ) from error
    if _too_large(value):
        raise ValueError(
            f"{what} {_shown(text)}: {_shown(segment)} holds an integer beyond the range of a "
            f"float (±{sys.float_info.max:.4g}). Give a smaller number."
        )
    return value


def _too_large(value: Any) -> bool:
    """An int no float can hold (every number in a spec ends up as one)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) > sys.float_info.max
    if isinstance(value, tuple | list | set | frozenset):
        return any(_too_large(v) for v in value)
    if isinstance(value, dict):
        return any(_too_large(k) or _too_large(v) for k, v in value.items())
    return False


def parse_call(
    text: str, what: str, example: str, *, bare_names: bool = True
) -> tuple[str, list[Any], dict[str, Any]]:
    """Split ``text`` into a lower-case name, positional and keyword literal arguments.

    Args:
        text: the spec, e.g. ``"normal(0, std=0.01)"``.
        what: what the spec is, for messages (e.g. ``"Init spec"``).
        example: a valid example, for messages.
        bare_names: read a bare identifier argument as a string (``gain=tanh`` →
            ``'tanh'``); False makes it an error that asks for quotes.

    Returns:
        ``(name, args, kwargs)``.

    Raises:
        TypeError: ``text`` is not a string.
        ValueError: not of the form name or name(…), non-literal arguments (or, with
            ``bare_names=False``, a bare name), an integer beyond a float's range, ``**``,
            an argument given twice, or a text over 10,000 characters.

    Example:
        >>> parse_call("Normal(0, std=0.01)", "Init spec", "'normal(std=0.01)'")
        ('normal', [0], {'std': 0.01})
        >>> parse_call("mlp(inputs=x)", "Factory call", "'mlp(inputs=3)'", bare_names=False)
        Traceback (most recent call last):
        ...
        ValueError: Factory call 'mlp(inputs=x)': arguments must be literals (...
    """
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a string, e.g. {example}. Got {type(text).__name__}.")
    form = f"is not of the form name or name(arg, key=value). Example: {example}."
    if len(text) > _MAX_LENGTH:
        raise ValueError(f"{what} {_shown(text)} {form}")
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError) as error:
        raise ValueError(f"{what} {_shown(text)} {form}") from error
    call = node if isinstance(node, ast.Call) else None
    head = call.func if call is not None else node
    if not isinstance(head, ast.Name):
        raise ValueError(f"{what} {_shown(text)} must start with a name, e.g. {example}.")
    if call is None:
        return head.id.lower(), [], {}
    if any(k.arg is None for k in call.keywords):
        raise ValueError(f"{what} {_shown(text)}: write arguments out as key=value, not **mapping.")
    kwargs = {k.arg: _value(k.value, what, text, bare_names) for k in call.keywords if k.arg}
    if len(kwargs) < len(call.keywords):
        raise ValueError(f"{what} {_shown(text)}: an argument is given twice.")
    return head.id.lower(), [_value(a, what, text, bare_names) for a in call.args], kwargs
