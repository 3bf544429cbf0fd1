"""Datasets, input scaling and batching: everything between the data on disk and a step.

Every loader returns a :class:`Dataset`: a training and a test split, float features
(float32 unless ``dtype=`` says otherwise; float64 for exact reproductions) and int64
labels, validated by :func:`check_dataset`. :func:`load` dispatches on a name:

- 2-D toys, as in the TensorFlow Playground plus moons: ``"circles"``, ``"moons"``,
  ``"blobs"`` (scikit-learn's generators), ``"xor"`` and ``"spiral"`` (written here);
  all deterministic from ``seed``.
- ``"digits"``: scikit-learn's bundled 1,797 8×8 digits, split by seed.
- ``"mnist"`` and ``"fashion-mnist"``: the IDX files (gzip or raw), checksum-verified,
  found by :func:`locate`. Loading downloads nothing: ``initlab data fetch mnist``
  (:func:`initlab.fetch.fetch`) puts the files where :func:`locate` looks.
- ``"mnist1d"``: MNIST-1D, generated offline with ``mnist1d.data.make_dataset``.

Inputs are scaled with statistics of the training split only (:class:`Standardizer`,
:class:`MinMaxScaler`, :func:`scale`). :class:`Batcher` cuts an epoch into batches for
batch GD (``"full"``), SGD (1) and mini-batch GD (k), for one run or a stack of members
with their own seeds.

Example:
    >>> from initlab import data
    >>> ds = data.load("moons", n=200, noise=0.1, seed=0)
    >>> ds
    Dataset('moons', train=(160, 2), test=(40, 2), num_classes=2, dtype=torch.float32)
    >>> ds, scaler = data.scale(ds, "standard")
    >>> batcher = data.Batcher(ds.n_train, batch_size=32, seeds=0)
    >>> [len(idx) for idx in batcher.epoch(0)]
    [32, 32, 32, 32, 32]
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import inspect
import io
import math
import os
import random
import shlex
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

import numpy as np
import torch
from torch import Tensor

from initlab import _blas
from initlab._validation import (
    check_choice,
    check_int,
    check_real,
    did_you_mean,
    nearest,
    param_message,
)
from initlab.fetch import SOURCES, cache_dir

_blas.strict()  # before MKL first runs: see initlab._blas

__all__ = [
    "DATASETS",
    "BatchSize",
    "Batcher",
    "Dataset",
    "MinMaxScaler",
    "Scaler",
    "Standardizer",
    "check_dataset",
    "epoch_permutation",
    "load",
    "load_blobs",
    "load_circles",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist1d",
    "load_moons",
    "load_spiral",
    "load_xor",
    "locate",
    "read_idx",
    "scale",
]

#: A batch size: ``"full"`` (batch GD: all n examples per step), 1 (SGD) or k (mini-batch).
BatchSize: TypeAlias = int | Literal["full"]
#: Where to look for data: a directory, or None to search (see :func:`locate`).
Root: TypeAlias = str | os.PathLike[str] | None

_MAX_SEED = 2**32 - 1  # scikit-learn's RandomState takes seeds in [0, 2³² − 1]


# --------------------------------------------------------------------------- validation


def _check_features(x: object, name: str, *, allow_empty: bool = False) -> Tensor:
    """Type, shape and finiteness of a feature tensor (n, *feature_shape)."""
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of features. Got {type(x).__name__} instead. "
            "Convert with torch.as_tensor(x, dtype=torch.float32)."
        )
    if not x.dtype.is_floating_point:
        raise TypeError(
            f"{name} must hold floating-point features. Got dtype {x.dtype} instead. "
            f"Convert with {name}.float() (pixels 0–255: {name}.float() / 255)."
        )
    if x.dim() < 2:
        raise ValueError(
            f"{name} must have shape (n, *feature_shape), at least 2 dimensions. "
            f"Got shape {tuple(x.shape)} instead. One feature per example: {name}.unsqueeze(1)."
        )
    if len(x) == 0 and not allow_empty:
        raise ValueError(
            f"{name} must hold at least one example. Got shape {tuple(x.shape)} instead "
            "(an empty set). Check the filter or split that produced it."
        )
    # A sum is finite iff every term is, unless it overflows; only then (or when a value
    # really is NaN/Inf) pay for the elementwise scan, ~15x slower on MNIST.
    if x.numel() and not bool(torch.isfinite(x.sum())):
        bad = ~torch.isfinite(x)
        count = int(bad.sum())
        if count:
            flat = int(torch.nonzero(bad.flatten())[0])
            position = np.unravel_index(flat, tuple(x.shape))
            index = ", ".join(str(int(p)) for p in position)
            value = x.flatten()[flat].item()
            raise ValueError(
                f"{name} must be finite (no NaN or Inf). Got {count} non-finite value"
                f"{'s' if count > 1 else ''}; the first is {name}[{index}] = {value} "
                f"(row {int(position[0])}). Drop or impute those rows first, e.g. "
                f"keep = torch.isfinite({name}).flatten(1).all(1)."
            )
    return x


def check_dataset(
    x: Tensor,
    y: Tensor,
    num_classes: int | None = None,
    *,
    allow_empty: bool = False,
    names: tuple[str, str] = ("x", "y"),
) -> None:
    """Check that features and labels make a usable classification set.

    The one validation every loader (through :class:`Dataset`) and every user tensor goes
    through: ``x`` is a floating-point tensor (n, *feature_shape) with n ≥ 1 and no NaN or
    Inf; ``y`` a 1-D integer tensor of n labels in [0, num_classes) (only ≥ 0 when
    ``num_classes`` is None).

    Args:
        x: features, (n, *feature_shape), floating point.
        y: labels, (n,), an integer dtype.
        num_classes: the declared number of classes, or None to check only that labels are
            non-negative.
        allow_empty: accept n = 0 (a test split may be empty).
        names: what to call ``x`` and ``y`` in messages (e.g. ``("mnist.x_train", …)``).

    Raises:
        TypeError: ``x`` is not a floating tensor, ``y`` not an integer tensor.
        ValueError: an empty set; different lengths; NaN or Inf in ``x`` (the message gives
            the count and the first position); a label out of range (the count, the first
            position and the range).

    Example:
        >>> check_dataset(torch.randn(4, 2), torch.tensor([0, 1, 1, 0]), num_classes=2)
        >>> check_dataset(torch.randn(4, 2), torch.tensor([0, 1, 2, 0]), num_classes=2)
        Traceback (most recent call last):
        ...
        ValueError: y must hold labels in [0, 2). Got 1 out of range; the first is y[2] = 2. ...
    """
    x_name, y_name = names
    if num_classes is not None:
        num_classes = check_int("check_dataset", "num_classes", num_classes, low=1)
    x = _check_features(x, x_name, allow_empty=True)
    if not isinstance(y, Tensor):
        raise TypeError(
            f"{y_name} must be a torch.Tensor of integer labels. Got {type(y).__name__} "
            "instead. Convert with torch.as_tensor(y, dtype=torch.int64)."
        )
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise TypeError(
            f"{y_name} must hold integer class labels. Got dtype {y.dtype} instead. "
            f"Convert with {y_name}.long() (after checking the values are whole numbers)."
        )
    if y.dim() != 1:
        raise ValueError(
            f"{y_name} must be 1-D, one label per example. Got shape {tuple(y.shape)} "
            "instead. For one-hot labels pass y.argmax(1)."
        )
    if len(x) != len(y):
        raise ValueError(
            f"{x_name} and {y_name} must have the same number of examples. Got "
            f"len({x_name}) = {len(x)} and len({y_name}) = {len(y)} instead. Check that "
            "both come from the same rows, in the same order."
        )
    if len(x) == 0 and not allow_empty:
        _check_features(x, x_name)  # raises the empty-set error
    if len(y) == 0:
        return
    low_bad = y < 0
    bad = low_bad if num_classes is None else low_bad | (y >= num_classes)
    count = int(bad.sum())
    if count:
        first = int(torch.nonzero(bad)[0])
        expected = "labels >= 0" if num_classes is None else f"labels in [0, {num_classes})"
        raise ValueError(
            f"{y_name} must hold {expected}. Got {count} out of range; the first "
            f"is {y_name}[{first}] = {int(y[first])}. Labels are class indices 0, 1, …, "
            "num_classes − 1: remap them (e.g. torch.unique(y, return_inverse=True)) or "
            "declare the right num_classes."
        )


def _check_dtype(fn: str, dtype: object) -> torch.dtype:
    if not isinstance(dtype, torch.dtype):
        raise TypeError(param_message(fn, "dtype", "a floating torch.dtype", dtype))
    if not dtype.is_floating_point:
        raise ValueError(
            param_message(
                fn, "dtype", "a floating torch.dtype", dtype, "Use torch.float32 or torch.float64."
            )
        )
    return dtype


def _check_seed(fn: str, seed: object) -> int:
    value = check_int(fn, "seed", seed, low=0)
    if value > _MAX_SEED:
        raise ValueError(param_message(fn, "seed", f"an integer in [0, {_MAX_SEED}]", seed))
    return value


def _check_bool(fn: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(param_message(fn, name, "True or False", value))
    return value


def _n_test(fn: str, n: int, test_size: object) -> int:
    """How many of n examples go to the test split: round(test_size·n), or the int given."""
    if isinstance(test_size, int) and not isinstance(test_size, bool):
        n_test = check_int(fn, "test_size", test_size, low=0)
    else:
        fraction = check_real(fn, "test_size", test_size, low=0.0, high=1.0, high_open=True)
        n_test = round(fraction * n)
    if n - n_test < 1:
        raise ValueError(
            param_message(
                fn,
                "test_size",
                f"a fraction in [0, 1) or a count < n = {n} (the training split must not be empty)",
                test_size,
                f"Increase n or lower test_size (it leaves {n - n_test} training examples).",
            )
        )
    return n_test


# --------------------------------------------------------------------------- the data set


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A classification data set: features and labels, split into train and test.

    Construction validates both splits with :func:`check_dataset` (the training split must
    not be empty; the test split may be) and checks that they agree in feature shape and
    dtype. Features are floating point, labels int64. Equality is identity (``eq=False``):
    tensors have no single truth value.

    Example:
        >>> ds = Dataset("toy", torch.zeros(3, 2), torch.tensor([0, 1, 1]),
        ...              torch.zeros(1, 2), torch.tensor([1]), num_classes=2)
        >>> ds.n_train, ds.n_test, ds.feature_shape, ds.classes
        (3, 1, (2,), ('0', '1'))
    """

    name: str  # the name :func:`load` knows it by, or any label of yours
    x_train: Tensor  # (n_train, *feature_shape) floating-point features
    y_train: Tensor  # (n_train,) int64 labels in [0, num_classes)
    x_test: Tensor  # (n_test, *feature_shape), same dtype as x_train; n_test may be 0
    y_test: Tensor  # (n_test,) int64 labels in [0, num_classes)
    num_classes: int  # labels are 0, 1, …, num_classes − 1
    classes: tuple[str, ...] = ()  # class names by label; () names them "0", "1", …
    params: Mapping[str, Any] = field(default_factory=dict)  # how it was made (read-only)

    def __post_init__(self) -> None:
        fn = "Dataset"
        if not isinstance(self.name, str):
            raise TypeError(param_message(fn, "name", "a string", self.name))
        num_classes = check_int(fn, "num_classes", self.num_classes, low=1)
        for split, allow_empty in (("train", False), ("test", True)):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            names = (f"{self.name}.x_{split}", f"{self.name}.y_{split}")
            check_dataset(x, y, num_classes, allow_empty=allow_empty, names=names)
            if y.dtype != torch.int64:
                raise TypeError(
                    f"{names[1]} must be int64 labels. Got dtype {y.dtype} instead. "
                    f"Convert with {names[1]}.long()."
                )
        if self.x_test.shape[1:] != self.x_train.shape[1:]:
            raise ValueError(
                f"{self.name}: x_test must have the feature shape of x_train, "
                f"{tuple(self.x_train.shape[1:])}. Got {tuple(self.x_test.shape[1:])} instead."
            )
        if self.x_test.dtype != self.x_train.dtype:
            raise TypeError(
                f"{self.name}: x_test must have the dtype of x_train, {self.x_train.dtype}. "
                f"Got {self.x_test.dtype} instead. Cast one of them with .to(dtype)."
            )
        classes = tuple(self.classes) or tuple(str(k) for k in range(num_classes))
        if len(classes) != num_classes or not all(isinstance(c, str) for c in classes):
            raise ValueError(
                param_message(fn, "classes", f"{num_classes} class names (strings)", self.classes)
            )
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return len(self.x_train)

    @property
    def n_test(self) -> int:
        """Number of test examples (may be 0)."""
        return len(self.x_test)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one example: (2,) for the toys, (784,) or (1, 28, 28) for MNIST."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_features(self) -> int:
        """Number of input features, the product of :attr:`feature_shape`."""
        return math.prod(self.feature_shape)

    @property
    def dtype(self) -> torch.dtype:
        """The features' dtype."""
        return self.x_train.dtype

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Dataset:
        """A copy with every tensor on ``device`` and the features cast to ``dtype``.

        Labels stay int64.

        Example:
            >>> load("xor", n=10).to(dtype=torch.float64).dtype
            torch.float64
        """
        dtype = self.dtype if dtype is None else _check_dtype("Dataset.to", dtype)
        return dataclasses.replace(
            self,
            x_train=self.x_train.to(device=device, dtype=dtype),
            y_train=self.y_train.to(device=device),
            x_test=self.x_test.to(device=device, dtype=dtype),
            y_test=self.y_test.to(device=device),
        )

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={tuple(self.x_train.shape)}, "
            f"test={tuple(self.x_test.shape)}, num_classes={self.num_classes}, "
            f"dtype={self.dtype})"
        )


def _from_arrays(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    n_test: int,
    dtype: torch.dtype,
    num_classes: int,
    params: Mapping[str, Any],
) -> Dataset:
    """Split already-shuffled arrays: the first n − n_test rows train, the rest test."""
    features = torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
    labels = torch.from_numpy(np.ascontiguousarray(y)).to(torch.int64)
    n_train = len(labels) - n_test
    return Dataset(
        name,
        features[:n_train],
        labels[:n_train],
        features[n_train:],
        labels[n_train:],
        num_classes=num_classes,
        params={**params, "dtype": str(dtype)},
    )


# --------------------------------------------------------------------------- 2-D toys


def _toy_args(
    fn: str, n: object, noise: object, test_size: object, seed: object, dtype: object
) -> tuple[int, float, int, int, torch.dtype]:
    count = check_int(fn, "n", n, low=2)
    return (
        count,
        check_real(fn, "noise", noise, low=0.0),
        _n_test(fn, count, test_size),
        _check_seed(fn, seed),
        _check_dtype(fn, dtype),
    )


def load_circles(
    n: int = 1000,
    *,
    noise: float = 0.05,
    factor: float = 0.5,
    test_size: float | int = 0.2,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Dataset:
    """Two concentric circles (label 0 outer, 1 inner): ``sklearn.datasets.make_circles``.

    The n points are ``make_circles(n, noise=noise, factor=factor, random_state=seed)``,
    which come shuffled; the first n − n_test are the training split, the rest the test
    split. Every toy loader splits this way.

    Args:
        n: number of points, train and test together.
        noise: std of the Gaussian noise added to each coordinate.
        factor: radius of the inner circle relative to the outer one (radius 1), in (0, 1).
        test_size: the test fraction in [0, 1) (n_test = round(test_size·n)), or a count.
        seed: the random state, in [0, 2³² − 1].
        dtype: the features' dtype.

    Returns:
        A :class:`Dataset` with 2 features and 2 classes.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: n < 2, noise < 0, factor outside (0, 1), an empty training split.

    Example:
        >>> load_circles(100, noise=0.0).x_train.norm(dim=1).round(decimals=4).unique()
        tensor([0.5000, 1.0000])
    """
    fn = "load_circles"
    n, noise, n_test, seed, dtype = _toy_args(fn, n, noise, test_size, seed, dtype)
    factor = check_real(fn, "factor", factor, low=0.0, high=1.0, low_open=True, high_open=True)
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=n, noise=noise, factor=factor, random_state=seed)
    params = {"n": n, "noise": noise, "factor": factor, "test_size": test_size, "seed": seed}
    return _from_arrays("circles", x, y, n_test, dtype, 2, params)


def load_moons(
    n: int = 1000,
    *,
    noise: float = 0.1,
    test_size: float | int = 0.2,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Dataset:
    """Two interleaving half circles: ``sklearn.datasets.make_moons``.

    The n points are ``make_moons(n, noise=noise, random_state=seed)``, split as in
    :func:`load_circles`.

    Args:
        n: number of points, train and test together.
        noise: std of the Gaussian noise added to each coordinate.
        test_size: the test fraction in [0, 1) (n_test = round(test_size·n)), or a count.
        seed: the random state, in [0, 2³² − 1].
        dtype: the features' dtype.

    Returns:
        A :class:`Dataset` with 2 features and 2 classes.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: n < 2, noise < 0, an empty training split.

    Example:
        >>> ds = load_moons(200, test_size=50)
        >>> ds.n_train, ds.n_test, ds.y_train.bincount().tolist()
        (150, 50, [75, 75])
    """
    fn = "load_moons"
    n, noise, n_test, seed, dtype = _toy_args(fn, n, noise, test_size, seed, dtype)
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    params = {"n": n, "noise": noise, "test_size": test_size, "seed": seed}
    return _from_arrays("moons", x, y, n_test, dtype, 2, params)


#: Centres of the two Gaussian blobs, as in the TensorFlow Playground's "Gaussian" set.
_BLOB_CENTERS = ((2.0, 2.0), (-2.0, -2.0))


def load_blobs(
    n: int = 1000,
    *,
    noise: float = 1.0,
    test_size: float | int = 0.2,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Dataset:
    """Two Gaussian blobs centred at (2, 2) (label 0) and (−2, −2) (label 1).

    ``sklearn.datasets.make_blobs(n, centers=[(2, 2), (-2, -2)], cluster_std=noise,
    random_state=seed)``, split as in :func:`load_circles`. With the default std 1 the
    blobs are 4√2 ≈ 5.7 std apart: linearly separable but for a few points.

    Args:
        n: number of points, train and test together.
        noise: std of each blob along each axis.
        test_size: the test fraction in [0, 1) (n_test = round(test_size·n)), or a count.
        seed: the random state, in [0, 2³² − 1].
        dtype: the features' dtype.

    Returns:
        A :class:`Dataset` with 2 features and 2 classes.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: n < 2, noise < 0, an empty training split.

    Example:
        >>> ds = load_blobs(1000, noise=0.5)
        >>> ds.x_train[ds.y_train == 0].mean(0).round().tolist()
        [2.0, 2.0]
    """
    fn = "load_blobs"
    n, noise, n_test, seed, dtype = _toy_args(fn, n, noise, test_size, seed, dtype)
    from sklearn.datasets import make_blobs

    x, y = make_blobs(
        n_samples=n,
        n_features=2,
        centers=np.array(_BLOB_CENTERS),
        cluster_std=noise,
        random_state=seed,
    )
    params = {"n": n, "noise": noise, "test_size": test_size, "seed": seed}
    return _from_arrays("blobs", x, y, n_test, dtype, 2, params)


def load_xor(
    n: int = 1000,
    *,
    noise: float = 0.05,
    test_size: float | int = 0.2,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Dataset:
    """XOR of the signs: uniform points in [−1, 1]², label 1 where x₁ and x₂ differ in sign.

    With ``rng = numpy.random.default_rng(seed)``: ``x = rng.uniform(-1, 1, (n, 2))``,
    ``y = (x₁ > 0) != (x₂ > 0)``, then Gaussian noise ``rng.normal(0, noise, (n, 2))`` is
    added to the points after labelling (so noise blurs the boundary). Points come in
    random order; split as in :func:`load_circles`. No linear model separates the classes.

    Args:
        n: number of points, train and test together.
        noise: std of the Gaussian noise added to each coordinate after labelling.
        test_size: the test fraction in [0, 1) (n_test = round(test_size·n)), or a count.
        seed: the random state, in [0, 2³² − 1].
        dtype: the features' dtype.

    Returns:
        A :class:`Dataset` with 2 features and 2 classes.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: n < 2, noise < 0, an empty training split.

    Example:
        >>> ds = load_xor(8, noise=0.0, test_size=0)
        >>> bool(((ds.x_train[:, 0] * ds.x_train[:, 1] < 0).long() == ds.y_train).all())
        True
    """
    fn = "load_xor"
    n, noise, n_test, seed, dtype = _toy_args(fn, n, noise, test_size, seed, dtype)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, 2))
    y = ((x[:, 0] > 0) != (x[:, 1] > 0)).astype(np.int64)
    x = x + rng.normal(0.0, noise, size=(n, 2))
    params = {"n": n, "noise": noise, "test_size": test_size, "seed": seed}
    return _from_arrays("xor", x, y, n_test, dtype, 2, params)


def load_spiral(
    n: int = 1000,
    *,
    noise: float = 0.05,
    num_classes: int = 2,
    turns: float = 1.75,
    test_size: float | int = 0.2,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Dataset:
    """Interleaved spirals, one arm per class (the TensorFlow Playground's has 2 arms).

    The n points are split as evenly as possible over the K = ``num_classes`` arms (the
    first n mod K arms get one more). Point i of the m on arm k has radius r = (i + 1)/m and
    angle θ = 2π·turns·r + 2πk/K, and lies at r·(sin θ, cos θ) plus Gaussian noise
    ``rng.normal(0, noise, 2)``, ``rng = numpy.random.default_rng(seed)``; the points are
    then shuffled with the same ``rng`` and split as in :func:`load_circles`.

    Args:
        n: number of points, train and test together.
        noise: std of the Gaussian noise added to each coordinate.
        num_classes: number of arms (classes), at least 2.
        turns: how many turns each arm makes from the centre to radius 1.
        test_size: the test fraction in [0, 1) (n_test = round(test_size·n)), or a count.
        seed: the random state, in [0, 2³² − 1].
        dtype: the features' dtype.

    Returns:
        A :class:`Dataset` with 2 features and ``num_classes`` classes.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: n < num_classes, noise < 0, turns ≤ 0, an empty training split.

    Example:
        >>> ds = load_spiral(300, num_classes=3)
        >>> ds.num_classes, round(ds.x_train.norm(dim=1).max().item())
        (3, 1)
    """
    fn = "load_spiral"
    n, noise, n_test, seed, dtype = _toy_args(fn, n, noise, test_size, seed, dtype)
    num_classes = check_int(fn, "num_classes", num_classes, low=2)
    if n < num_classes:
        raise ValueError(
            param_message(fn, "n", f"at least num_classes = {num_classes} (a point per arm)", n)
        )
    turns = check_real(fn, "turns", turns, low=0.0, low_open=True)
    rng = np.random.default_rng(seed)
    points, labels = [], []
    for k, arm in enumerate(np.array_split(np.arange(n), num_classes)):
        m = len(arm)
        r = np.arange(1, m + 1) / m
        theta = 2 * np.pi * turns * r + 2 * np.pi * k / num_classes
        points.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        labels.append(np.full(m, k, dtype=np.int64))
    x = np.concatenate(points) + rng.normal(0.0, noise, size=(n, 2))
    order = rng.permutation(n)
    params = {"n": n, "noise": noise, "turns": turns, "test_size": test_size, "seed": seed}
    y = np.concatenate(labels)
    return _from_arrays("spiral", x[order], y[order], n_test, dtype, num_classes, params)


# --------------------------------------------------------------------------- digits


def _image_features(images: Tensor, flatten: bool) -> Tensor:
    """(n, H, W) → (n, H·W) for an MLP, or (n, 1, H, W) channels-first for a CNN."""
    return images.reshape(len(images), -1) if flatten else images.unsqueeze(1)


def load_digits(
    *,
    test_size: float | int = 0.2,
    seed: int = 0,
    raw: bool = False,
    flatten: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Dataset:
    """scikit-learn's bundled handwritten digits: 1,797 8×8 images, 10 classes, no download.

    The split is ``sklearn.model_selection.train_test_split(X, y, test_size=n_test,
    random_state=seed)`` — a permutation of ``numpy.random.RandomState(seed)`` whose first
    n_test examples are the test split — computed here so that n_test = 0 works too.

    Args:
        test_size: the test fraction in [0, 1) (n_test = round(test_size·1797)), or a count.
        seed: the random state of the split, in [0, 2³² − 1].
        raw: keep the pixel values 0–16 (as floats); by default they are divided by 16 into
            [0, 1].
        flatten: features (n, 64); False gives images (n, 1, 8, 8).
        dtype: the features' dtype.

    Returns:
        A :class:`Dataset` with 64 features (or 1×8×8) and 10 classes.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: a bad test_size or seed.

    Example:
        >>> ds = load_digits()
        >>> ds.n_train, ds.n_test, ds.feature_shape, ds.x_train.max().item()
        (1438, 359, (64,), 1.0)
    """
    fn = "load_digits"
    seed = _check_seed(fn, seed)
    raw = _check_bool(fn, "raw", raw)
    flatten = _check_bool(fn, "flatten", flatten)
    dtype = _check_dtype(fn, dtype)
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)
    labels = np.asarray(bunch.target, dtype=np.int64)
    n_test = _n_test(fn, len(labels), test_size)
    order = np.random.RandomState(seed).permutation(len(labels))
    test, train = order[:n_test], order[n_test:]
    x = torch.from_numpy(images).to(dtype)
    if not raw:
        x = x / 16.0
    x = _image_features(x, flatten)
    y = torch.from_numpy(labels)
    params = {"test_size": test_size, "seed": seed, "raw": raw, "flatten": flatten}
    return Dataset(
        "digits",
        x[torch.from_numpy(train)],
        y[torch.from_numpy(train)],
        x[torch.from_numpy(test)],
        y[torch.from_numpy(test)],
        num_classes=10,
        params={**params, "dtype": str(dtype)},
    )


# --------------------------------------------------------------------------- IDX files

#: IDX type codes: the third byte of the magic number → the (big-endian) element type.
_IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_exactly(stream: io.BufferedIOBase, size: int, label: str, what: str) -> bytes:
    """``size`` bytes from a (possibly gzip) stream; a damaged gzip stream is a ValueError."""
    chunks, remaining = [], size
    try:
        if size < 0:
            chunks.append(stream.read())
        # In slices, so that a damaged header announcing terabytes fails on the data
        # actually there instead of allocating what it announces.
        while remaining > 0 and (piece := stream.read(min(remaining, 1 << 24))):
            chunks.append(piece)
            remaining -= len(piece)
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise ValueError(
            f"{label} is not a valid gzip file ({type(error).__name__}: {error}) while "
            f"reading its {what}: it is damaged or truncated. Copy it again from its source."
        ) from error
    chunk = b"".join(chunks)
    if size >= 0 and len(chunk) < size:
        raise ValueError(
            f"{label} is truncated: its {what} needs {size} bytes, only {len(chunk)} are left. "
            "Copy the file again from its source."
        )
    return chunk


def _parse_idx(content: bytes, label: str, limit: int | None) -> tuple[Tensor, tuple[int, ...]]:
    """Parse IDX bytes (gzip or raw, told apart by the gzip magic bytes).

    Returns the first ``limit`` records (all if None) and the dimensions in the header.
    Reading everything also checks that no byte is missing or left over (and, for gzip,
    the CRC); with a limit, only the records read are checked.
    """
    compressed = content[:2] == _GZIP_MAGIC
    stream: io.BufferedIOBase = (
        gzip.GzipFile(fileobj=io.BytesIO(content)) if compressed else io.BytesIO(content)
    )
    magic = _read_exactly(stream, 4, label, "magic number")
    zero, code, ndim = magic[:2], magic[2], magic[3]
    if zero != b"\0\0" or code not in _IDX_TYPES or ndim == 0:
        known = ", ".join(f"0x{c:02X} ({t.name})" for c, t in _IDX_TYPES.items())
        raise ValueError(
            f"{label} is not an IDX file: its magic number is 0x{magic.hex().upper()}. An "
            f"IDX file starts with two zero bytes, a type code ({known}) and the number of "
            "dimensions (≥ 1)."
        )
    dims = struct.unpack(f">{ndim}I", _read_exactly(stream, 4 * ndim, label, "dimensions"))
    item = _IDX_TYPES[code]
    record = math.prod(dims[1:]) * item.itemsize
    records = dims[0] if limit is None else min(limit, dims[0])
    body = _read_exactly(stream, records * record, label, f"{records} records of {dims[1:]}")
    if records == dims[0]:
        rest = _read_exactly(stream, -1, label, "end")
        if rest:
            raise ValueError(
                f"{label} has {len(rest)} bytes after the {math.prod(dims)} values its header "
                f"{dims} announces: it is damaged or not an IDX file."
            )
    values = np.frombuffer(body, dtype=item).reshape((records, *dims[1:]))
    return torch.from_numpy(values.astype(item.newbyteorder("="))), tuple(dims)


def read_idx(path: str | os.PathLike[str], *, limit: int | None = None) -> Tensor:
    """Read an IDX file (the MNIST format), gzip-compressed or raw, into a tensor.

    The format: a magic number (two zero bytes, a type code — 0x08 uint8, 0x09 int8,
    0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64 — and the number of dimensions),
    the dimensions as big-endian uint32, then the values, big-endian, row-major. Gzip is
    recognised by its magic bytes, not by the file name. No checksum is checked here (see
    :func:`load_mnist`).

    Args:
        path: the file.
        limit: read only the first ``limit`` records (along the first dimension); the rest
            of the file is not decompressed nor checked.

    Returns:
        A tensor of the file's dimensions (the first cut to ``limit``), in the native byte
        order: uint8, int8, int16, int32, float32 or float64.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a bad magic number, a damaged or truncated gzip stream, fewer or more
            bytes than the header announces.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.idx"
        >>> _ = path.write_bytes(bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]))
        >>> read_idx(path)
        tensor([[1, 2, 3],
                [4, 5, 6]], dtype=torch.uint8)
    """
    if limit is not None:
        limit = check_int("read_idx", "limit", limit, low=1)
    file = Path(path)
    return _parse_idx(file.read_bytes(), str(file), limit)[0]


# --------------------------------------------------------------------------- MNIST files

_IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_CHECKSUM_FILES = {"MD5SUMS": "md5", "SHA256SUMS": "sha256"}
_DIGEST_LENGTH = {"md5": 32, "sha256": 64}
_IDX_SETS: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(k) for k in range(10)),
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}
_ENV = "INITLAB_DATA"


def _fetch_command(name: str, directory: Path | None = None) -> str:
    """The command that downloads ``name`` to where it is looked for.

    Into the cache folder (``$INITLAB_DATA`` or the user cache) by default; into
    ``directory``'s parent when ``directory`` is ``<somewhere else>/<name>``.
    """
    command = f"initlab data fetch {name}"
    if directory is None:
        return command
    directory = directory.expanduser()
    base = directory.parent if directory.name == name else directory
    if base.resolve() == cache_dir().resolve():
        return command
    return f"{command} --dir {shlex.quote(str(base))}"


def _search_places(name: str, root: Root) -> tuple[list[Path], str]:
    """Directories to look in, in order, and how they were chosen."""
    if root is not None:
        bases, how = [Path(root).expanduser()], "the root argument"
    elif os.environ.get(_ENV):
        bases, how = [Path(os.environ[_ENV]).expanduser()], f"${_ENV}"
    else:
        # The cache folder `initlab data fetch` fills; then a checkout next to
        # shared/data (the tests' layout), seen from the working directory or from this
        # package, walking up to the filesystem root.
        bases = [cache_dir()]
        how = (
            f"the cache folder, then shared/data above the working directory or initlab "
            f"({_ENV} unset)"
        )
        for start in (Path.cwd(), Path(__file__).resolve().parent):
            for ancestor in (start, *start.parents):
                base = ancestor / "shared" / "data"
                if base not in bases:
                    bases.append(base)
    return [place for base in bases for place in (base / name, base)], how


def _find_file(directory: Path, stem: str) -> Path | None:
    """``stem.gz`` (the publisher's file, which the checksums list) or else ``stem``."""
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def locate(name: Literal["mnist", "fashion-mnist"], root: Root = None) -> Path:
    """The directory :func:`load_mnist` (or :func:`load_fashion_mnist`) reads.

    Where it looks, in order, stopping at the first directory holding all four files
    (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each gzipped with ``.gz`` or raw):

    1. ``root``, if given: ``<root>/<name>/``, then ``<root>`` itself;
    2. else ``$INITLAB_DATA`` (if set and non-empty), the same way;
    3. else the user cache folder that ``initlab data fetch`` fills
       (:func:`initlab.fetch.cache_dir`), the same way; then ``shared/data`` in the
       working directory and each directory above it (so ``../shared/data`` from a
       checkout), then above this package, each again as ``shared/data/<name>/`` and
       ``shared/data``.

    Only one of 1–3 is searched: an explicit directory that lacks the files is an error,
    not a reason to read other data.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"`` (the sub-directory's name).
        root: a data directory, or None to use ``$INITLAB_DATA`` or search.

    Returns:
        The directory holding the four files.

    Raises:
        ValueError: an unknown name.
        FileNotFoundError: no directory holds all four files; the message lists every
            place searched (and what each lacked), how to point initlab at the data, and
            ends with the command that downloads it (``initlab data fetch mnist``).

    Example:
        >>> locate("mnist").name  # found as ../shared/data/mnist from the checkout
        'mnist'
    """
    name = check_choice("locate", "name", name, _IDX_SETS)  # type: ignore[assignment]
    places, how = _search_places(name, root)
    looked = []
    for place in places:
        found = {stem: _find_file(place, stem) for stem in _IDX_NAMES.values()}
        if all(found.values()):
            return place
        missing = [stem for stem, path in found.items() if path is None]
        if not place.is_dir():
            looked.append(f"  {place} (no such directory)")
        elif len(missing) < len(found):
            looked.append(f"  {place} (lacks {', '.join(missing)})")
        else:
            looked.append(f"  {place} (none of the files)")
    files = ", ".join(f"{stem}.gz" for stem in _IDX_NAMES.values())
    megabytes = sum(f.size for f in SOURCES[name].files) / 1e6
    command = _fetch_command(name, None if root is None else Path(root))
    raise FileNotFoundError(
        f"No {name} data found. Looked in ({how}):\n"
        + "\n".join(looked)
        + f"\nA data directory holds {files} (gzipped or raw), in <dir>/{name}/ or <dir> "
        f"itself. Point initlab at it with root=<dir> (load({name!r}, root=...)) or the "
        f"environment variable {_ENV}=<dir>. Or download it ({megabytes:.0f} MB, "
        f"checksum-verified): {command}"
    )


def _listed_checksums(directory: Path) -> dict[str, list[tuple[str, str, Path]]]:
    """File name → [(algorithm, expected hex digest, checksum file)] in ``directory``."""
    listed: dict[str, list[tuple[str, str, Path]]] = {}
    for sums_name, algorithm in _CHECKSUM_FILES.items():
        sums = directory / sums_name
        if not sums.is_file():
            continue
        for number, line in enumerate(sums.read_text().splitlines(), start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.split(maxsplit=1)
            digest = parts[0].lower()
            if (
                len(parts) != 2
                or len(digest) != _DIGEST_LENGTH[algorithm]
                or any(c not in "0123456789abcdef" for c in digest)
            ):
                raise ValueError(
                    f"{sums}, line {number}, is not '<{algorithm} hex digest>  <file name>'. "
                    f"Got {line!r}. Fix or remove the line."
                )
            file_name = Path(parts[1].lstrip("*")).name  # '*': sha256sum's binary mode
            listed.setdefault(file_name, []).append((algorithm, digest, sums))
    return listed


def _verify(
    path: Path, content: bytes, listed: Mapping[str, list[tuple[str, str, Path]]], name: str
) -> tuple[str, ...]:
    """Check ``content`` against every checksum listed for ``path``; the algorithms used."""
    checked = []
    for algorithm, expected, sums in listed.get(path.name, []):
        got = hashlib.new(algorithm, content).hexdigest()
        if got != expected:
            raise ValueError(
                f"Checksum mismatch for {path}: {sums.name} lists {algorithm} {expected}, the "
                f"file has {got}. The file is damaged or not the one listed; it was not used. "
                f"Copy it again from its source (or, if you changed the data on purpose, "
                f"update {sums}). To download a verified copy: "
                f"{_fetch_command(name, path.parent)}"
            )
        checked.append(algorithm)
    if listed and not checked:
        warnings.warn(
            f"{path} is not listed in the checksum files beside it "
            f"({', '.join(sorted({str(s.name) for v in listed.values() for _, _, s in v}))}), "
            "so it was read unverified. List it there to have it checked.",
            UserWarning,
            stacklevel=4,
        )
    return tuple(checked)


def _load_idx_set(
    name: str,
    fn: str,
    root: Root,
    limit: int | None,
    raw: bool,
    flatten: bool,
    dtype: torch.dtype,
) -> Dataset:
    if limit is not None:
        limit = check_int(fn, "limit", limit, low=1)
    raw = _check_bool(fn, "raw", raw)
    flatten = _check_bool(fn, "flatten", flatten)
    dtype = _check_dtype(fn, dtype)
    directory = locate(name, root)  # type: ignore[arg-type]
    listed = _listed_checksums(directory)
    tensors: dict[str, Tensor] = {}
    counts: dict[str, int] = {}
    files: dict[str, str] = {}
    verified: dict[str, tuple[str, ...]] = {}
    for part, stem in _IDX_NAMES.items():
        path = _find_file(directory, stem)
        assert path is not None  # locate() found all four
        content = path.read_bytes()
        verified[path.name] = _verify(path, content, listed, name)
        tensor, dims = _parse_idx(content, str(path), limit)
        want_dims = 3 if part.startswith("x") else 1
        if tensor.dtype != torch.uint8 or len(dims) != want_dims:
            raise ValueError(
                f"{path} must hold {'images' if want_dims == 3 else 'labels'}: uint8 with "
                f"{want_dims} dimension{'s' if want_dims > 1 else ''}. Got {tensor.dtype} with "
                f"dimensions {dims} instead. Is it the right file?"
            )
        tensors[part], counts[part], files[part] = tensor, dims[0], path.name
    for split in ("train", "test"):
        if counts[f"x_{split}"] != counts[f"y_{split}"]:
            raise ValueError(
                f"{files[f'x_{split}']} holds {counts[f'x_{split}']} images but "
                f"{files[f'y_{split}']} {counts[f'y_{split}']} labels (in {directory}). "
                "The two files must come from the same release."
            )

    def features(images: Tensor) -> Tensor:
        x = images.to(dtype)
        return _image_features(x if raw else x.div_(255), flatten)

    return Dataset(
        name,
        features(tensors["x_train"]),
        tensors["y_train"].long(),
        features(tensors["x_test"]),
        tensors["y_test"].long(),
        num_classes=10,
        classes=_IDX_SETS[name],
        params={
            "root": str(directory),
            "files": files,
            "verified": verified,
            "limit": limit,
            "raw": raw,
            "flatten": flatten,
            "dtype": str(dtype),
        },
    )


def load_mnist(
    root: Root = None,
    *,
    limit: int | None = None,
    raw: bool = False,
    flatten: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Dataset:
    """MNIST from its IDX files: 60,000 training and 10,000 test 28×28 digits.

    The four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, gzipped as ``.gz`` or raw —
    told apart by the gzip magic bytes) are found by :func:`locate`. Checksums: where the
    directory has ``MD5SUMS`` and/or ``SHA256SUMS``, every file they list is hashed in full
    and must match, or the load fails naming the file, the expected and the actual digest.
    A directory without checksum files, or a file they do not list (e.g. a decompressed
    copy), is read unverified — gzip's CRC and the IDX size checks still catch damage.
    ``params["verified"]`` records which algorithms checked each file. Nothing is cached.

    Args:
        root: the data directory (see :func:`locate`), or None for ``$INITLAB_DATA`` or
            the search.
        limit: load only the first ``limit`` examples of each split (file order; fast: the
            rest is not decompressed, though checksums still cover the whole file).
        raw: keep the pixel values 0–255 (as floats); by default they are divided by 255
            into [0, 1].
        flatten: features (n, 784) for an MLP; False gives images (n, 1, 28, 28).
        dtype: the features' dtype.

    Returns:
        A :class:`Dataset` with 10 classes.

    Raises:
        FileNotFoundError: the files are not found (the message lists where it looked).
        ValueError: a checksum mismatch, a damaged gzip or IDX file, image and label files
            that disagree, a label outside 0–9.
        TypeError: an argument of the wrong type.

    Example:
        >>> ds = load_mnist(limit=100)
        >>> ds.n_train, ds.n_test, ds.feature_shape, int(ds.y_train[0])
        (100, 100, (784,), 5)
    """
    return _load_idx_set("mnist", "load_mnist", root, limit, raw, flatten, dtype)


def load_fashion_mnist(
    root: Root = None,
    *,
    limit: int | None = None,
    raw: bool = False,
    flatten: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Dataset:
    """Fashion-MNIST (Zalando) from its IDX files: 60,000 + 10,000 28×28 clothing images.

    The same files, options, checksum rules and errors as :func:`load_mnist`, in a
    ``fashion-mnist`` directory; ``classes`` holds the ten class names.

    Example:
        >>> ds = load_fashion_mnist(limit=100, flatten=False)
        >>> ds.feature_shape, ds.classes[int(ds.y_train[0])]
        ((1, 28, 28), 'Ankle boot')
    """
    return _load_idx_set("fashion-mnist", "load_fashion_mnist", root, limit, raw, flatten, dtype)


# --------------------------------------------------------------------------- MNIST-1D

#: ``mnist1d.data.get_dataset_args`` fields that :func:`load_mnist1d` passes through.
_MNIST1D_ARGS = (
    "template_len",
    "padding",
    "scale_coeff",
    "max_translation",
    "corr_noise_scale",
    "iid_noise_scale",
    "shear_scale",
    "shuffle_seq",
    "final_seq_length",
)


def load_mnist1d(
    n: int = 5000,
    *,
    test_size: float | int = 0.2,
    seed: int = 42,
    dtype: torch.dtype = torch.float32,
    **args: Any,
) -> Dataset:
    """MNIST-1D (Greydanus 2020), generated offline with ``mnist1d.data.make_dataset``.

    The data are ``make_dataset(get_dataset_args())`` with ``num_samples = n``, ``seed``
    and any of the generator's other fields given in ``args``; the first n − n_test
    examples train, the rest test. The defaults are the published set: 4,000 training and
    1,000 test sequences of length 40, 10 classes. ``make_dataset`` seeds Python's and
    NumPy's global generators; their states are restored afterwards.

    Args:
        n: number of examples, a multiple of 10 (the same number per class).
        test_size: the test fraction in [0, 1) (n_test = round(test_size·n)), or a count.
        seed: mnist1d's seed.
        dtype: the features' dtype.
        **args: other ``get_dataset_args`` fields: template_len, padding, scale_coeff,
            max_translation, corr_noise_scale, iid_noise_scale, shear_scale, shuffle_seq,
            final_seq_length.

    Returns:
        A :class:`Dataset` with ``final_seq_length`` (40) features and 10 classes.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: n not a positive multiple of 10, an unknown field in ``args``.

    References:
        Greydanus, "Scaling down deep learning", 2020 (arXiv:2011.14439).

    Example:
        >>> ds = load_mnist1d(500)
        >>> ds
        Dataset('mnist1d', train=(400, 40), test=(100, 40), num_classes=10, dtype=torch.float32)
    """
    fn = "load_mnist1d"
    n = check_int(fn, "n", n, low=10)
    if n % 10:
        raise ValueError(
            param_message(
                fn,
                "n",
                "a multiple of 10 (mnist1d makes n/10 per class)",
                n,
                f"Use {n - n % 10} or {n - n % 10 + 10}.",
            )
        )
    n_test = _n_test(fn, n, test_size)
    seed = _check_seed(fn, seed)
    dtype = _check_dtype(fn, dtype)
    for key in args:
        if key not in _MNIST1D_ARGS:
            hint = did_you_mean(key, _MNIST1D_ARGS)
            raise ValueError(
                f"Unknown mnist1d argument {key!r}.{hint} Known: {', '.join(_MNIST1D_ARGS)} "
                "(n, test_size and seed are load_mnist1d's own arguments)."
            )
    from mnist1d.data import get_dataset_args, make_dataset

    config = get_dataset_args()
    # The split is ours (first n − n_test train), which is mnist1d's own at train_split
    # = 1 − n_test/n; 'url' is never used, as get_dataset (which downloads) is not called.
    for key, value in {**args, "num_samples": n, "seed": seed, "train_split": 1.0}.items():
        setattr(config, key, value)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        generated = make_dataset(config)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    params = {"n": n, "test_size": test_size, "seed": seed, **args}
    return _from_arrays("mnist1d", generated["x"], generated["y"], n_test, dtype, 10, params)


# --------------------------------------------------------------------------- dispatch

_LOADERS: dict[str, Callable[..., Dataset]] = {
    "circles": load_circles,
    "moons": load_moons,
    "xor": load_xor,
    "blobs": load_blobs,
    "spiral": load_spiral,
    "digits": load_digits,
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "mnist1d": load_mnist1d,
}
#: Every name :func:`load` knows.
DATASETS: tuple[str, ...] = tuple(_LOADERS)


def _options(loader: Callable[..., Dataset]) -> tuple[str, ...]:
    parameters = inspect.signature(loader).parameters.values()
    names = tuple(p.name for p in parameters if p.kind is not p.VAR_KEYWORD)
    return names + (_MNIST1D_ARGS if loader is load_mnist1d else ())


def load(name: str, **options: Any) -> Dataset:
    """Load a data set by name; ``options`` go to its loader.

    - ``"circles"``, ``"moons"``, ``"blobs"``: 2-D, 2 classes (:func:`load_circles`, …;
      scikit-learn's generators);
    - ``"xor"``, ``"spiral"``: 2-D, 2 classes (spiral: 2 or more) (:func:`load_xor`,
      :func:`load_spiral`);
    - ``"digits"``: 8×8 images, 10 classes (:func:`load_digits`; bundled with scikit-learn);
    - ``"mnist"``, ``"fashion-mnist"``: 28×28 images, 10 classes (:func:`load_mnist`,
      :func:`load_fashion_mnist`; IDX files on disk);
    - ``"mnist1d"``: length-40 sequences, 10 classes (:func:`load_mnist1d`; generated).

    Args:
        name: one of :data:`DATASETS`.
        **options: the loader's keyword arguments (e.g. ``n``, ``noise``, ``seed``,
            ``root``, ``limit``, ``dtype``).

    Returns:
        The :class:`Dataset`.

    Raises:
        ValueError: an unknown name or option (the message lists the known ones and the
            nearest), or whatever the loader raises.

    Example:
        >>> load("spiral", n=100, noise=0.0, seed=1).n_train
        80
        >>> load("moon")
        Traceback (most recent call last):
        ...
        ValueError: The 'name' parameter of load must be one of 'circles', ... Did you mean 'moons'?
    """
    name = check_choice("load", "name", name, DATASETS)
    loader = _LOADERS[name]
    known = _options(loader)
    for key in options:
        if key not in known:
            hint = did_you_mean(key, known)
            raise ValueError(
                f"Unknown option {key!r} for load({name!r}).{hint} Known: {', '.join(known)}."
            )
    return loader(**options)


# --------------------------------------------------------------------------- scaling


def _check_fit_input(fn: str, x: object, per_feature: object) -> tuple[Tensor, bool]:
    features = _check_features(x, "x_train")
    return features.detach().to(torch.float64), _check_bool(fn, "per_feature", per_feature)


def _check_transform_input(fn: str, x: object, statistic: Tensor) -> Tensor:
    features = _check_features(x, "x", allow_empty=True)
    if statistic.dim() and tuple(features.shape[1:]) != tuple(statistic.shape):
        raise ValueError(
            f"{fn}: x must have the feature shape the scaler was fitted on, "
            f"{tuple(statistic.shape)}. Got {tuple(features.shape[1:])} instead."
        )
    return features


def _check_statistics(fn: str, **tensors: Tensor) -> None:
    shapes = set()
    for name, value in tensors.items():
        if not isinstance(value, Tensor) or not value.dtype.is_floating_point:
            raise TypeError(param_message(fn, name, "a floating torch.Tensor", value))
        shapes.add(tuple(value.shape))
    if len(shapes) != 1:
        raise ValueError(f"{fn}: {', '.join(tensors)} must have the same shape. Got {shapes}.")


@dataclass(frozen=True, eq=False)
class Standardizer:
    """Standardization (z-score): x ↦ (x − mean) / std, with training-split statistics.

    Fit with :meth:`fit` on the training features only, then :meth:`transform` every split
    with the same statistics. ``std`` is the population std (ddof = 0), as in
    scikit-learn's ``StandardScaler`` and batch norm. A feature that is constant on the
    training split (min = max; MNIST's corner pixels) has its std taken as 1: it is only
    centred, so it becomes 0 on the training split, never NaN or Inf. Statistics are
    computed and kept in float64 and cast to the input's dtype when applied.

    Example:
        >>> s = Standardizer.fit(torch.tensor([[1.0, 5.0], [3.0, 5.0]]))
        >>> s.mean, s.std
        (tensor([2., 5.], dtype=torch.float64), tensor([1., 1.], dtype=torch.float64))
        >>> s.transform(torch.tensor([[3.0, 6.0]]))
        tensor([[1., 1.]])
    """

    mean: Tensor  # per-feature mean over the training examples (shape () if not per feature)
    std: Tensor  # per-feature population std; 1 where the feature is constant
    constant: Tensor | None = None  # bool mask of features constant on the training split

    def __post_init__(self) -> None:
        _check_statistics("Standardizer", mean=self.mean, std=self.std)
        if not bool((self.std > 0).all()):
            raise ValueError(
                "Standardizer: std must be > 0 everywhere. Got a zero or negative std. Use "
                "Standardizer.fit, which takes the std of a constant feature as 1."
            )

    @classmethod
    def fit(cls, x_train: Tensor, *, per_feature: bool = True) -> Standardizer:
        """Statistics of the training features.

        Args:
            x_train: training features (n, *feature_shape), n ≥ 1, finite.
            per_feature: one mean and std per feature (over the examples); False gives one
                mean and std over all values (MNIST's usual 0.1307, 0.3081).

        Returns:
            The fitted :class:`Standardizer`.

        Raises:
            TypeError: ``x_train`` is not a floating tensor.
            ValueError: an empty or non-finite ``x_train``.

        Example:
            >>> Standardizer.fit(torch.tensor([[0.0], [2.0]])).std
            tensor([1.], dtype=torch.float64)
        """
        x, per_feature = _check_fit_input("Standardizer.fit", x_train, per_feature)
        if per_feature:
            mean, std = x.mean(0), x.std(0, correction=0)
            constant = x.amax(0) == x.amin(0)
        else:
            mean, std = x.mean(), x.std(correction=0)
            constant = x.max() == x.min()
        # Exact min = max is the test: a computed std of a constant column can come out
        # ~1e-8 instead of 0 and would blow its (rounding-level) deviations up to O(1).
        return cls(mean, torch.where(constant, torch.ones_like(std), std), constant)

    def transform(self, x: Tensor) -> Tensor:
        """(x − mean) / std, in x's dtype.

        Example:
            >>> Standardizer(torch.tensor(1.0), torch.tensor(2.0)).transform(torch.ones(1, 2))
            tensor([[0., 0.]])
        """
        x = _check_transform_input("Standardizer.transform", x, self.mean)
        return (x - self.mean.to(x)) / self.std.to(x)

    def inverse_transform(self, z: Tensor) -> Tensor:
        """z · std + mean: back to the original units.

        Example:
            >>> s = Standardizer(torch.tensor(1.0), torch.tensor(2.0))
            >>> s.inverse_transform(torch.ones(1, 1))
            tensor([[3.]])
        """
        z = _check_transform_input("Standardizer.inverse_transform", z, self.mean)
        return z * self.std.to(z) + self.mean.to(z)


@dataclass(frozen=True, eq=False)
class MinMaxScaler:
    """Min–max scaling: x ↦ lo + (x − min)·(hi − lo)/(max − min), training-split min, max.

    The training split lands in ``feature_range`` = (lo, hi), (0, 1) by default; other
    splits can fall outside it. A feature constant on the training split (min = max) has
    its range taken as 1: it is only shifted, so it becomes lo on the training split,
    never NaN or Inf. Statistics are kept in float64 and cast to the input's dtype.

    Example:
        >>> s = MinMaxScaler.fit(torch.tensor([[0.0, 7.0], [4.0, 7.0]]))
        >>> s.transform(torch.tensor([[2.0, 7.0], [8.0, 7.0]]))
        tensor([[0.5000, 0.0000],
                [2.0000, 0.0000]])
    """

    data_min: Tensor  # per-feature minimum over the training examples
    data_max: Tensor  # per-feature maximum over the training examples
    feature_range: tuple[float, float] = (0.0, 1.0)  # (lo, hi) the training split maps to

    def __post_init__(self) -> None:
        fn = "MinMaxScaler"
        _check_statistics(fn, data_min=self.data_min, data_max=self.data_max)
        if not bool((self.data_max >= self.data_min).all()):
            raise ValueError(f"{fn}: data_max must be >= data_min everywhere.")
        pair = self.feature_range
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(param_message(fn, "feature_range", "a pair (lo, hi)", pair))
        lo, hi = (check_real(fn, "feature_range", v) for v in pair)
        if not lo < hi:
            raise ValueError(param_message(fn, "feature_range", "a pair (lo, hi), lo < hi", pair))
        object.__setattr__(self, "feature_range", (lo, hi))

    @classmethod
    def fit(
        cls,
        x_train: Tensor,
        *,
        per_feature: bool = True,
        feature_range: tuple[float, float] = (0.0, 1.0),
    ) -> MinMaxScaler:
        """Minimum and maximum of the training features.

        Args:
            x_train: training features (n, *feature_shape), n ≥ 1, finite.
            per_feature: one min and max per feature; False gives one over all values.
            feature_range: (lo, hi), lo < hi, the interval the training split maps to.

        Returns:
            The fitted :class:`MinMaxScaler`.

        Raises:
            TypeError: ``x_train`` is not a floating tensor.
            ValueError: an empty or non-finite ``x_train``, a bad ``feature_range``.

        Example:
            >>> MinMaxScaler.fit(torch.tensor([[1.0], [3.0]]), feature_range=(-1.0, 1.0)).data_max
            tensor([3.], dtype=torch.float64)
        """
        x, per_feature = _check_fit_input("MinMaxScaler.fit", x_train, per_feature)
        if per_feature:
            return cls(x.amin(0), x.amax(0), feature_range)
        return cls(x.min(), x.max(), feature_range)

    @property
    def constant(self) -> Tensor:
        """Bool mask of the features constant on the training split."""
        return self.data_max == self.data_min

    def _span(self) -> Tensor:
        """max − min, with 1 for a constant feature."""
        span = self.data_max - self.data_min
        return torch.where(self.constant, torch.ones_like(span), span)

    def transform(self, x: Tensor) -> Tensor:
        """lo + (x − min)·(hi − lo)/(max − min), in x's dtype.

        Example:
            >>> MinMaxScaler(torch.tensor(0.0), torch.tensor(4.0)).transform(torch.tensor([[1.0]]))
            tensor([[0.2500]])
        """
        x = _check_transform_input("MinMaxScaler.transform", x, self.data_min)
        lo, hi = self.feature_range
        # Dividing by the span (not multiplying by its inverse) maps max to exactly hi.
        return (x - self.data_min.to(x)) / self._span().to(x) * (hi - lo) + lo

    def inverse_transform(self, z: Tensor) -> Tensor:
        """min + (z − lo)·(max − min)/(hi − lo): back to the original units.

        Example:
            >>> s = MinMaxScaler(torch.tensor(0.0), torch.tensor(4.0))
            >>> s.inverse_transform(torch.tensor([[0.25]]))
            tensor([[1.]])
        """
        z = _check_transform_input("MinMaxScaler.inverse_transform", z, self.data_min)
        lo, hi = self.feature_range
        return (z - lo) / (hi - lo) * self._span().to(z) + self.data_min.to(z)


#: A fitted scaler.
Scaler: TypeAlias = Standardizer | MinMaxScaler
_SCALERS = ("standard", "minmax")


def scale(
    dataset: Dataset,
    scaler: Literal["standard", "minmax"] | Scaler = "standard",
    *,
    per_feature: bool = True,
) -> tuple[Dataset, Scaler]:
    """Scale both splits of a data set with statistics of its training split only.

    Args:
        dataset: the data set.
        scaler: ``"standard"`` (fit a :class:`Standardizer` on ``dataset.x_train``),
            ``"minmax"`` (fit a :class:`MinMaxScaler`), or an already fitted scaler, used
            as it is.
        per_feature: statistics per feature, or over all values (for a name only).

    Returns:
        The scaled data set (``params["scaling"]`` records how) and the fitted scaler, to
        apply to new inputs.

    Raises:
        ValueError: an unknown scaler name.
        TypeError: a scaler of another type.

    Example:
        >>> scaled, s = scale(load("blobs", n=100))
        >>> scaled.x_train.mean(0).abs().max().item() < 1e-6, scaled.x_test.shape
        (True, torch.Size([20, 2]))
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(param_message("scale", "dataset", "a Dataset", type(dataset).__name__))
    fitted: Scaler
    if isinstance(scaler, Standardizer | MinMaxScaler):
        fitted, how = scaler, f"given {type(scaler).__name__}"
    else:
        how = check_choice("scale", "scaler", scaler, _SCALERS)
        if how == "standard":
            fitted = Standardizer.fit(dataset.x_train, per_feature=per_feature)
        else:
            fitted = MinMaxScaler.fit(dataset.x_train, per_feature=per_feature)
    scaled = dataclasses.replace(
        dataset,
        x_train=fitted.transform(dataset.x_train),
        x_test=fitted.transform(dataset.x_test),
        params={**dataset.params, "scaling": how},
    )
    return scaled, fitted


# --------------------------------------------------------------------------- batching


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """The order in which a run seeded ``seed`` visits n examples in epoch ``epoch``.

    A pure function of (n, seed, epoch): NumPy's PCG64 seeded with
    ``SeedSequence(seed, spawn_key=(epoch,))`` — the stream of
    ``numpy.random.SeedSequence(seed).spawn(epoch + 1)[epoch]`` — draws the permutation.
    No epoch depends on the ones drawn before it, so a run resumed at epoch e sees the
    same orders as one that never stopped, and statistically independent streams come
    from different (seed, epoch) pairs.

    Args:
        n: number of examples, ≥ 1.
        seed: the run's seed, ≥ 0.
        epoch: the epoch, ≥ 0.

    Returns:
        An int64 permutation of 0, …, n − 1, shape (n,).

    Raises:
        TypeError: a non-integer argument.
        ValueError: a negative argument, or n = 0.

    Example:
        >>> epoch_permutation(5, seed=0, epoch=3).sort().values
        tensor([0, 1, 2, 3, 4])
        >>> bool((epoch_permutation(5, 0, 3) == epoch_permutation(5, 0, 3)).all())
        True
    """
    fn = "epoch_permutation"
    n = check_int(fn, "n", n, low=1)
    seed = check_int(fn, "seed", seed, low=0)
    epoch = check_int(fn, "epoch", epoch, low=0)
    stream = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(epoch,)))
    return torch.from_numpy(stream.permutation(n).astype(np.int64))


@dataclass(frozen=True)
class Batcher:
    """Cuts every epoch of n training examples into batches of indices, for M members.

    One switch, ``batch_size``, picks the method: ``"full"`` is batch gradient descent
    (one step on all n examples per epoch, in the identity order: the full-batch gradient
    does not depend on the order, so nothing is shuffled), 1 is stochastic gradient descent
    (n steps per epoch) and k is mini-batch gradient descent (⌈n/k⌉ steps, or ⌊n/k⌋ with
    ``drop_last``). An epoch is one pass over the training set whatever the batch size,
    reshuffled every epoch with :func:`epoch_permutation` (seed, epoch), so the order of an
    epoch never depends on how many epochs were drawn before.

    With one seed (an int), :meth:`epoch` yields 1-D index tensors (B,) for a single run.
    With a sequence of M seeds, it yields (M, B) tensors, row m in member m's own order;
    every member has the same B at each step, since they share n and batch_size (members
    given equal seeds see equal orders). Index ``x[idx]`` gives (B, …) or (M, B, …).

    Example:
        >>> b = Batcher(10, batch_size=4, seeds=[0, 1])
        >>> b.steps_per_epoch, [tuple(idx.shape) for idx in b.epoch(0)]
        (3, [(2, 4), (2, 4), (2, 2)])
        >>> [idx.tolist() for idx in Batcher(5, "full").epoch(7)]
        [[0, 1, 2, 3, 4]]
    """

    n: int  # training examples: one epoch visits each exactly once (n ≥ 1)
    batch_size: BatchSize  # "full" (batch GD), 1 (SGD) or k in [1, n] (mini-batch GD)
    seeds: int | Sequence[int] = 0  # one seed (1-D batches) or one per member ((M, B) batches)
    drop_last: bool = False  # drop an epoch's last batch when it is smaller than batch_size
    device: torch.device | str | None = None  # where the indices go (moved once per epoch)

    def __post_init__(self) -> None:
        fn = "Batcher"
        n = check_int(fn, "n", self.n, low=1)
        size: object = self.batch_size
        expected = f"'full' or an integer in [1, n] = [1, {n}]"
        if isinstance(size, str):
            if size != "full":
                guess = " Did you mean 'full'?" if nearest(size, ["full"]) else ""
                raise ValueError(param_message(fn, "batch_size", expected, size, guess.strip()))
        elif isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(param_message(fn, "batch_size", expected, size))
        elif not 1 <= size <= n:
            raise ValueError(
                param_message(
                    fn,
                    "batch_size",
                    expected,
                    size,
                    f"The training set has {n} examples; batch_size='full' uses all of them.",
                )
            )
        given: object = self.seeds
        seeds: int | tuple[int, ...]
        if isinstance(given, Sequence) and not isinstance(given, str):
            if not given:
                raise ValueError(param_message(fn, "seeds", "an int or a non-empty list", []))
            seeds = tuple(check_int(fn, "seeds", s, low=0) for s in given)
        else:
            seeds = check_int(fn, "seeds", given, low=0)
        object.__setattr__(self, "seeds", seeds)
        _check_bool(fn, "drop_last", self.drop_last)

    @property
    def stacked(self) -> bool:
        """True if seeds is a sequence (batches are (M, B)); False for one int seed."""
        return not isinstance(self.seeds, int)

    @property
    def num_members(self) -> int:
        """M, the number of members (1 for a single run)."""
        return 1 if isinstance(self.seeds, int) else len(self.seeds)

    @property
    def size(self) -> int:
        """The batch size as a number: n for ``"full"``."""
        return self.n if self.batch_size == "full" else int(self.batch_size)

    @property
    def steps_per_epoch(self) -> int:
        """Steps in one epoch: 1 for "full", n for SGD, ⌈n/B⌉ (⌊n/B⌋ with drop_last)."""
        whole, rest = divmod(self.n, self.size)
        return whole + (1 if rest and not self.drop_last else 0)

    def order(self, epoch: int) -> Tensor:
        """The epoch's order: (n,) for a single run, (M, n) stacked; identity for "full".

        Example:
            >>> Batcher(4, 2, seeds=[3, 3]).order(0).shape
            torch.Size([2, 4])
        """
        epoch = check_int("Batcher.order", "epoch", epoch, low=0)
        seeds = (self.seeds,) if isinstance(self.seeds, int) else self.seeds
        if self.batch_size == "full":
            rows = torch.arange(self.n).expand(len(seeds), self.n)
        else:
            rows = torch.stack([epoch_permutation(self.n, s, epoch) for s in seeds])
        rows = rows.to(self.device)  # one transfer per epoch, none per step
        return rows if self.stacked else rows[0]

    def epoch(self, epoch: int) -> Iterator[Tensor]:
        """The batches of one epoch: :attr:`steps_per_epoch` int64 index tensors.

        Each is (B,) for a single run or (M, B) stacked — views into :meth:`order`, not to
        be modified. All have B = batch_size but the last, which holds the remainder
        (dropped with ``drop_last``).

        Example:
            >>> [idx.tolist() for idx in Batcher(5, 2, seeds=0, drop_last=True).epoch(0)]
            [[0, 3], [2, 1]]
        """
        order = self.order(epoch)
        for step in range(self.steps_per_epoch):
            yield order[..., step * self.size : (step + 1) * self.size]
