"""initlab: see whether a network trains, and why not.

Initialization, batch normalization, batching, gradient clipping and the diagnosis of
vanishing and exploding gradients, on PyTorch.

The submodules load on first use (``initlab.init`` imports torch, which takes a second or
more): ``import initlab`` itself is instant, so the ``initlab`` command can answer Ctrl-C
during its start-up quietly.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from initlab import (
        activations,
        clip,
        data,
        experiments,
        fetch,
        init,
        lsuv,
        meanfield,
        models,
        native,
        norm,
        probe,
        store,
        studies,
        surfaces,
        train,
    )

try:
    __version__ = version("initlab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "__version__",
    "activations",
    "clip",
    "data",
    "experiments",
    "fetch",
    "init",
    "lsuv",
    "meanfield",
    "models",
    "native",
    "norm",
    "probe",
    "store",
    "studies",
    "surfaces",
    "train",
]


def __getattr__(name: str) -> ModuleType:
    if name in __all__:
        return importlib.import_module(f"initlab.{name}")
    raise AttributeError(f"module 'initlab' has no attribute {name!r}")
