"""NumPy-legacy draws, to reproduce published notebooks bit for bit.

Many classic teaching notebooks seed NumPy's global legacy generator
(``numpy.random.seed``) and draw data, weights and mini-batch orders from it. These
helpers make the same draws — and leave NumPy's global state as they found it — so a
run of initlab starts from exactly the notebook's numbers. They are inputs to the
ordinary engine, not a second one.

Example:
    >>> x, y = legacy_make_circles(300, noise=0.05, seed=1)
    >>> x.shape, y[:5].tolist()
    ((300, 2), [1, 0, 1, 1, 0])
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from initlab._validation import check_int, check_real
from initlab.models import Stack, load_member, to_module

__all__ = [
    "LegacyMiniBatches",
    "legacy_make_circles",
    "legacy_make_moons",
    "legacy_randn_weights",
    "load_weights",
]


@contextlib.contextmanager
def _numpy_seed(seed: int | None) -> Iterator[None]:
    """Seed NumPy's global legacy generator for a block, then restore its state."""
    state = np.random.get_state()
    try:
        if seed is not None:
            np.random.seed(seed)
        yield
    finally:
        np.random.set_state(state)


def _legacy_two_classes(
    first: np.ndarray, second: np.ndarray, noise: float, seed: int, fn: str
) -> tuple[np.ndarray, np.ndarray]:
    """Points of class 0 then class 1, put in an order drawn by ``numpy.random.shuffle``
    and moved by ``numpy.random.normal(scale=noise)``, after ``numpy.random.seed(seed)``:
    the draws of scikit-learn's two-class toy generators, without importing it (which
    takes longer than drawing the data)."""
    check_real(fn, "noise", noise, low=0.0)
    x = np.concatenate([first, second]).astype(np.float64)
    y = np.concatenate([np.zeros(len(first), np.int64), np.ones(len(second), np.int64)])
    with _numpy_seed(check_int(fn, "seed", seed, low=0)):
        order = np.arange(len(x))
        np.random.shuffle(order)
        x, y = x[order], y[order]
        x += np.random.normal(scale=noise, size=x.shape)
    return x, y


def _halves(fn: str, n: int) -> tuple[int, int]:
    n = check_int(fn, "n", n, low=2)
    return n // 2, n - n // 2


def legacy_make_circles(n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.random.seed(seed); sklearn.datasets.make_circles(n, noise=noise)``: the
    same numbers (the tests compare them with scikit-learn's), drawn without it.

    Returns (x (n, 2) float64, y (n,) int64), as a notebook that seeds NumPy globally
    gets them: n // 2 points of class 0 evenly spaced on the unit circle, the rest of
    class 1 on the circle of radius 0.8, shuffled, plus N(0, noise²) noise.

    Example:
        >>> import numpy as np
        >>> state = np.random.get_state()[1][:3].tolist()
        >>> x, _ = legacy_make_circles(100, 0.05, 2)
        >>> np.random.get_state()[1][:3].tolist() == state  # the global state is restored
        True
    """
    outer, inner = _halves("legacy_make_circles", n)
    a = np.linspace(0.0, 2.0 * np.pi, outer, endpoint=False)
    b = np.linspace(0.0, 2.0 * np.pi, inner, endpoint=False)
    first = np.stack([np.cos(a), np.sin(a)], axis=1)
    second = np.stack([np.cos(b) * 0.8, np.sin(b) * 0.8], axis=1)
    return _legacy_two_classes(first, second, noise, seed, "legacy_make_circles")


def legacy_make_moons(n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.random.seed(seed); sklearn.datasets.make_moons(n, noise=noise)``: the same
    numbers, drawn without it. Class 0 is the upper half of the unit circle, class 1 the
    lower half centred at (1, 0.5).

    Example:
        >>> x, y = legacy_make_moons(300, 0.2, 3)
        >>> x.shape, int(y.sum())
        ((300, 2), 150)
    """
    upper, lower = _halves("legacy_make_moons", n)
    a, b = np.linspace(0.0, np.pi, upper), np.linspace(0.0, np.pi, lower)
    first = np.stack([np.cos(a), np.sin(a)], axis=1)
    second = np.stack([1.0 - np.cos(b), 1.0 - np.sin(b) - 0.5], axis=1)
    return _legacy_two_classes(first, second, noise, seed, "legacy_make_moons")


def legacy_randn_weights(
    widths: Sequence[int],
    seed: int | None,
    scale: Callable[[int], float],
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Weights drawn as the notebooks draw them: ``numpy.random.seed(seed)``, then per layer
    l = 1, 2, …, ``W = randn(n_l, n_{l−1}) · scale(n_{l−1})``, ``b = zeros(n_l)``.

    ``scale`` maps the fan-in to the factor: ``lambda fan_in: 0`` (zeros),
    ``lambda fan_in: 10`` (large random), ``lambda fan_in: math.sqrt(2 / fan_in)`` (He).
    With ``seed=None`` the generator is not touched (for all-zero weights).

    Example:
        >>> w = legacy_randn_weights([2, 3, 1], 3, lambda fan_in: math.sqrt(2 / fan_in))
        >>> [a.shape for a, _ in w]
        [(3, 2), (1, 3)]
    """
    layers = []
    with _numpy_seed(seed):
        for fan_in, fan_out in itertools.pairwise(widths):
            factor = scale(fan_in)
            w = (
                np.zeros((fan_out, fan_in))
                if factor == 0
                else np.random.randn(fan_out, fan_in) * factor
            )
            layers.append((w, np.zeros(fan_out)))
    return layers


def load_weights(stack: Stack, m: int, layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
    """Copy (W, b) pairs, in order, into the Linear layers of member ``m``."""
    plain = to_module(stack, m)
    linears = [layer for layer in plain if isinstance(layer, nn.Linear)]
    if len(linears) != len(layers):
        raise ValueError(
            f"load_weights: the member has {len(linears)} Linear layers, "
            f"{len(layers)} (W, b) pairs were given."
        )
    with torch.no_grad():
        for layer, (w, b) in zip(linears, layers, strict=True):
            if tuple(layer.weight.shape) != w.shape:
                raise ValueError(
                    f"load_weights: a weight of shape {w.shape} for a layer of "
                    f"{tuple(layer.weight.shape)}."
                )
            layer.weight.copy_(torch.from_numpy(w))
            if layer.bias is not None:
                layer.bias.copy_(torch.from_numpy(b))
    load_member(stack, m, plain)


class LegacyMiniBatches:
    """A notebook's mini-batch order: before epoch k (k = 0, 1, …) it calls
    ``numpy.random.seed(first_seed + 1 + k)`` and ``numpy.random.permutation(n)``, then
    cuts consecutive slices of ``batch_size``, the last one partial.

    One order for all members, so batches are (B,) index tensors. A
    :class:`~initlab.train.BatchPlan` for :func:`initlab.train.train`.

    Example:
        >>> plan = LegacyMiniBatches(300, 64, first_seed=10)
        >>> plan.steps_per_epoch, [len(i) for i in plan.epoch(0)]
        (5, [64, 64, 64, 64, 44])
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        first_seed: int = 10,
        device: torch.device | str | None = None,
    ) -> None:
        fn = "LegacyMiniBatches"
        self.n = check_int(fn, "n", n, low=1)
        self.batch_size = check_int(fn, "batch_size", batch_size, low=1)
        self.first_seed = check_int(fn, "first_seed", first_seed, low=0)
        self.device = device

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def epoch(self, epoch: int) -> Iterator[Tensor]:
        with _numpy_seed(self.first_seed + 1 + epoch):
            order = torch.from_numpy(np.random.permutation(self.n)).to(self.device)
        for start in range(0, self.n, self.batch_size):
            yield order[start : start + self.batch_size]
