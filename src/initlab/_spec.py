"""The one reader of call-like spec strings: ``name`` or ``name(arg, key=value)``.

Init schemes (``"normal(std=0.01)"``) and learning-rate schedules
(``"step_decay(1000)"``) are written this way, in Python, TOML and on the command line.
Arguments must be literals; a bare identifier is read as a string (so
``xavier_normal(gain=tanh)`` needs no quotes in a shell), except ``nan`` and ``inf``.
"""

from __future__ import annotations

import ast
import math
from typing import Any

__all__ = ["parse_call"]


def _value(node: ast.expr, what: str, text: str) -> Any:
    if isinstance(node, ast.Name):
        return {"nan": math.nan, "inf": math.inf}.get(node.id.lower(), node.id)
    try:
        return ast.literal_eval(node)
    except ValueError as error:
        raise ValueError(
            f"{what} {text!r}: arguments must be literals (numbers, strings, True/False). "
            f"Got {ast.unparse(node)!r}."
        ) from error


def parse_call(text: str, what: str, example: str) -> tuple[str, list[Any], dict[str, Any]]:
    """Split ``text`` into a lower-case name, positional and keyword literal arguments.

    Args:
        text: the spec, e.g. ``"normal(0, std=0.01)"``.
        what: what the spec is, for messages (e.g. ``"Init spec"``).
        example: a valid example, for messages.

    Returns:
        ``(name, args, kwargs)``.

    Raises:
        ValueError: not of the form name or name(…), non-literal arguments, ``**``, or an
            argument given twice.

    Example:
        >>> parse_call("Normal(0, std=0.01)", "Init spec", "'normal(std=0.01)'")
        ('normal', [0], {'std': 0.01})
    """
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as error:
        raise ValueError(
            f"{what} {text!r} is not of the form name or name(arg, key=value). Example: {example}."
        ) from error
    call = node if isinstance(node, ast.Call) else None
    head = call.func if call is not None else node
    if not isinstance(head, ast.Name):
        raise ValueError(f"{what} {text!r} must start with a name, e.g. {example}.")
    if call is None:
        return head.id.lower(), [], {}
    if any(k.arg is None for k in call.keywords):
        raise ValueError(f"{what} {text!r}: write arguments out as key=value, not **mapping.")
    kwargs = {k.arg: _value(k.value, what, text) for k in call.keywords if k.arg}
    if len(kwargs) < len(call.keywords):
        raise ValueError(f"{what} {text!r}: an argument is given twice.")
    return head.id.lower(), [_value(a, what, text) for a in call.args], kwargs
