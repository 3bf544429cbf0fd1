"""Argument checks shared by every public function: one message template.

Every check raises with the same shape of message, after scikit-learn:
"The 'std' parameter of normal_ must be a finite number >= 0. Got -1.0 instead."
followed, where it helps, by how to fix it. ``ValueError`` is for a bad value,
``TypeError`` for a bad type.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from numbers import Integral, Real

__all__ = [
    "DtypeError",
    "OutOfRangeError",
    "RuntimeValueError",
    "TypeValueError",
    "check_choice",
    "check_int",
    "check_real",
    "did_you_mean",
    "nearest",
    "param_message",
]


class TypeValueError(TypeError, ValueError):
    """A bad argument type where ``torch.nn.init`` raises ``ValueError``.

    ``calculate_gain("leaky_relu", [1])`` is a ``ValueError`` in torch and a
    ``TypeError`` by our convention: deriving from both keeps code written for either
    working when ``initlab.init`` replaces ``torch.nn.init``.
    """


class DtypeError(TypeError, NotImplementedError):
    """A tensor of a dtype the operation cannot fill (e.g. random draws into int64).

    torch raises ``NotImplementedError`` from its kernels ("normal_kernel_cpu" not
    implemented for 'Long'); deriving from it too keeps torch-style handlers working.
    """


class RuntimeValueError(ValueError, RuntimeError):
    """A bad value that torch reports as ``RuntimeError``: catch either."""


class OutOfRangeError(RuntimeValueError):
    """A value the tensor's dtype cannot hold (overflow, or a fraction into an integer).

    torch raises ``RuntimeError`` where it notices ("value cannot be converted to type
    int8_t without overflow"); deriving from it too keeps torch-style handlers working.
    """


def param_message(fn: str, name: str, expected: str, got: object, fix: str = "") -> str:
    """The one message template: what was expected, what was got, how to fix it."""
    shown = repr(got)
    if isinstance(got, int) and len(shown) > 40:  # 10**400 would print 401 digits
        shown = f"an integer of {len(shown.lstrip('-'))} digits ({shown[:6]}…)"
    message = f"The {name!r} parameter of {fn} must be {expected}. Got {shown} instead."
    return f"{message} {fix}" if fix else message


def nearest(word: str, options: Iterable[str]) -> str | None:
    """The closest option to ``word`` by edit similarity, or None if nothing is close."""
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return matches[0] if matches else None


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """ " Did you mean 'x'?" for the nearest option, or "" if nothing is close."""
    guess = nearest(word, options)
    return f" Did you mean {guess!r}?" if guess else ""


def check_real(
    fn: str,
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    type_error: type[TypeError] = TypeError,
) -> float:
    """Check that ``value`` is a finite real number within the given bounds.

    ``type_error`` is the class raised for a bad type: :class:`TypeValueError` where
    torch raises ``ValueError`` for it.

    Raises:
        TypeError: ``value`` is not a real number (bools are rejected).
        ValueError: ``value`` is NaN, infinite, or outside the bounds.
    """
    expected = "a finite number"
    if low is not None:
        expected += f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        expected += f"{' and' if low is not None else ''} {'<' if high_open else '<='} {high:g}"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise type_error(param_message(fn, name, expected, value))
    try:
        number = float(value)
    except OverflowError:  # an int beyond a double's range, e.g. 10**400
        number = math.inf
    bad = not math.isfinite(number)
    if low is not None:
        bad = bad or number < low or (low_open and number == low)
    if high is not None:
        bad = bad or number > high or (high_open and number == high)
    if bad:
        raise ValueError(param_message(fn, name, expected, value))
    return number


def check_int(fn: str, name: str, value: object, *, low: int | None = None) -> int:
    """Check that ``value`` is an integer (not a bool), at least ``low`` if given."""
    expected = "an integer" + (f" >= {low}" if low is not None else "")
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(param_message(fn, name, expected, value))
    if low is not None and value < low:
        raise ValueError(param_message(fn, name, expected, value))
    return int(value)


def check_choice(fn: str, name: str, value: object, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of ``choices``; the error lists them and the nearest."""
    options = list(choices)
    if isinstance(value, str) and value in options:
        return value
    expected = "one of " + ", ".join(repr(o) for o in options)
    guess = nearest(value, options) if isinstance(value, str) else None
    fix = f"Did you mean {guess!r}?" if guess else ""
    error = ValueError if isinstance(value, str) else TypeError
    raise error(param_message(fn, name, expected, value, fix))
