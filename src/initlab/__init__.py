"""initlab: see whether a network trains, and why not.

Initialization, batch normalization, batching, gradient clipping and the diagnosis of
vanishing and exploding gradients, on PyTorch.
"""

from importlib.metadata import PackageNotFoundError, version

from initlab import clip, data, init, lsuv, meanfield, models, norm, probe

try:
    __version__ = version("initlab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "__version__",
    "clip",
    "data",
    "init",
    "lsuv",
    "meanfield",
    "models",
    "norm",
    "probe",
]
