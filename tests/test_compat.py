"""The legacy toy data: the very numbers scikit-learn draws after ``numpy.random.seed``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_circles, make_moons

from initlab.lessons.compat import legacy_make_circles, legacy_make_moons


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(legacy_make_circles, make_circles), (legacy_make_moons, make_moons)],
)
@pytest.mark.parametrize(("n", "noise", "seed"), [(300, 0.05, 1), (301, 0.2, 3), (2, 0.0, 0)])
def test_the_same_numbers_as_scikit_learn(
    ours: Callable[..., Any], theirs: Callable[..., Any], n: int, noise: float, seed: int
) -> None:
    state = np.random.get_state()
    x, y = ours(n, noise, seed)
    after = np.random.get_state()
    np.random.seed(seed)
    x_ref, y_ref = theirs(n_samples=n, noise=noise)
    np.random.set_state(state)
    assert np.array_equal(x, x_ref) and np.array_equal(y, y_ref)
    assert x.dtype == np.float64 and y.dtype == np.int64 and x.shape == (n, 2)
    assert np.array_equal(after[1], state[1]) and after[2] == state[2]  # state restored


@pytest.mark.parametrize("fn", [legacy_make_circles, legacy_make_moons])
def test_bad_arguments_say_what_was_expected(fn: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="noise"):
        fn(10, -0.1, 0)
    with pytest.raises(ValueError, match="seed"):
        fn(10, 0.1, -1)
    with pytest.raises(ValueError, match="n"):
        fn(1, 0.1, 0)
