"""MKL in its strict reproducible mode, so that a stacked member's numbers do not depend
on where its matrices sit in memory.

A stack keeps each member's weights and activations at an offset of the same tensor, so
most members' matrices do not start on a 64-byte boundary. On AMD CPUs, MKL's ``bmm``
sums some products in another order for such a matrix than for an aligned one (measured
on an AMD EPYC: 130 of 6,720 member products of (3, 13) × (13, 13) sizes differed in the
last bit from the member's product alone), so a member's run depended on its neighbours.
MKL's strict conditional numerical reproducibility (``MKL_CBWR=AUTO,STRICT``) makes the
result independent of alignment. It applies to every MKL call in the process: a lone
(100, 784) × (784, 64) product took 10–25 % longer, 2048² ones no longer, and the
engine's steps on the 784-100-100-10 net at M = 1, 8, 64 ran at the same rates within the
noise of three alternating runs (2-core AMD EPYC).

It must be set before MKL's first call: :func:`strict` runs when any of initlab's
modules that compute with torch is first imported (``activations``, ``data``, ``norm``,
``clip``, ``models``). ``INITLAB_MKL_STRICT=0`` leaves MKL as it is; an ``MKL_CBWR`` of your own is
kept.
"""

from __future__ import annotations

import ctypes
import functools
import os
import warnings
from pathlib import Path

import torch

_AUTO, _STRICT, _SUCCESS, _TOO_LATE = 2, 0x10000, 0, -8


@functools.cache
def torch_library() -> ctypes.CDLL | None:
    """torch's ``libtorch_cpu``, which holds MKL's symbols; None for a build without it."""
    try:
        return ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
    except OSError:
        return None


def strict() -> bool:
    """Put MKL in strict reproducible mode; True when it is (or MKL is not in use)."""
    if os.environ.get("INITLAB_MKL_STRICT") == "0" or os.environ.get("MKL_CBWR"):
        return True
    if not torch.backends.mkl.is_available():  # type: ignore[no-untyped-call]
        return True
    lib = torch_library()
    setter = getattr(lib, "mkl_serv_cbwr_set", None) if lib is not None else None
    if setter is None:  # another build: MKL reads this at its first call
        os.environ["MKL_CBWR"] = "AUTO,STRICT"
        return True
    setter.argtypes = [ctypes.c_int]
    code = setter(_AUTO | _STRICT)
    if code == _SUCCESS:
        os.environ["MKL_CBWR"] = "AUTO,STRICT"  # and so in the processes this one starts
        return True
    why = "MKL had already run in this process" if code == _TOO_LATE else f"MKL said {code}"
    warnings.warn(
        f"initlab could not put MKL in its strict reproducible mode ({why}): a stacked "
        "member's last bits may then depend on its neighbours on some CPUs (AMD). Import "
        "initlab.models (or initlab.train) before the first matrix product, or set "
        "MKL_CBWR=AUTO,STRICT in the environment.",
        RuntimeWarning,
        stacklevel=3,
    )
    return False
