"""Experiments: what every front end (the CLI, the lessons, the playground, studies) composes
from the library before and after a run.

- :func:`resolve_device`: a device name checked, with one wording everywhere.
"""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]

_DEVICE_EXPECTED = "expected device 'cpu', 'cuda' or 'cuda:N'. Got {device!r}."


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"``, checked: a clear error without CUDA.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(_DEVICE_EXPECTED.format(device=device)) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was asked for, but this torch sees no CUDA GPU: "
            "run on 'cpu', or install a CUDA build of torch on a machine with a GPU."
        )
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(_DEVICE_EXPECTED.format(device=device))
    return resolved
