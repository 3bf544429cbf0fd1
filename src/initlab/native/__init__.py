"""Kernels compiled for the machine at hand: K steps of a stack of MLPs in one call (SGD,
momentum or Nesterov, weight decay, clipping by norm or value), with no Python and no
dispatch per step (``TrainConfig(compile=True)``). The matrix products of the larger
layers go from the kernel to the MKL inside torch (:func:`gemm`).

The C source ships with initlab (``mlp_steps.c``). The first use compiles it with the
machine's C compiler (``$CC``, else ``cc``) for this CPU (``-O3 -march=native``, OpenMP
where the compiler has it), about a second, into a cache
(``$INITLAB_CACHE/native``, else ``~/.cache/initlab/native``) keyed by the source, the
flags and the CPU; later runs load it. Where no compiler works, :func:`kernel` returns
None with a warning and the engine runs as without it.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from initlab import _blas

__all__ = ["cache_dir", "kernel"]

_SOURCE = "mlp_steps.c"
_FLAGS = ["-O3", "-march=native", "-std=c11", "-shared", "-fPIC"]
_TYPES = {torch.float32: "float", torch.float64: "double"}

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p
_ARGS = [
    _i64,  # members
    _i64,  # layers
    _ptr,  # widths (L + 1,) int64
    _ptr,  # activations (L,) int64
    _ptr,  # weights: L pointers
    _ptr,  # biases: L pointers (NULL: none)
    _ptr,  # weight gradients: L pointers
    _ptr,  # bias gradients: L pointers
    _i64,  # loss: 0 cross-entropy, 1 bce
    _ptr,  # x (n, in)
    _i64,  # n
    _ptr,  # labels (n,) int64, cross-entropy
    _ptr,  # targets (n,), bce
    _i64,  # steps
    _i64,  # batch
    _i64,  # mode: 0 full batch, 1 shared rows, 2 rows per member
    _ptr,  # idx: (K, B) or (K, M, B) int64
    _ptr,  # lr (M,)
    _ptr,  # active (M,) bool
    _ptr,  # losses out (K, M)
    _ptr,  # norms out (K, M)
    _i64,  # threads
    _ptr,  # the BLAS's Fortran gemm, or NULL
    _i64,  # the fewest weights of a layer whose products go to gemm
    _i64,  # rule: 0 SGD, 1 momentum, 2 Nesterov
    ctypes.c_double,  # momentum's β
    ctypes.c_double,  # L2 weight decay λ
    _ptr,  # momentum's buffers for the weights: L pointers (NULL for SGD)
    _ptr,  # … for the biases
    _i64,  # clipping: 0 none, 1 by global norm, 2 by value
    _ptr,  # clipping thresholds (M,)
    _ptr,  # fired out (K, M) bool
]
_RULES = {"sgd": 0, "momentum": 1, "nesterov": 2}
_CLIPS = {None: 0, "norm": 1, "value": 2}

#: The Fortran gemm of the MKL inside torch, by dtype.
_GEMMS = {torch.float32: "sgemm_", torch.float64: "dgemm_"}


def cache_dir() -> Path:
    """Where compiled kernels are kept."""
    root = os.environ.get("INITLAB_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "initlab"
    return base / "native"


def _cpu() -> str:
    """What -march=native compiles for: the CPU's model and flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields = ("vendor_id", "model name", "flags", "Features", "CPU implementer", "CPU part")
    keep = [line for line in text.splitlines() if line.startswith(fields)]
    return "\n".join([platform.machine(), *sorted(set(keep))])


def _compile(source: bytes, dtype: str, target: Path, compiler: list[str]) -> str | None:
    """Compile ``source`` for ``dtype`` into ``target``; None, or the compiler's error."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / _SOURCE
        src.write_bytes(source)
        out = Path(tmp) / target.name
        defines = [f"-DREAL={dtype}", f"-DNAME=initlab_mlp_steps_{dtype}"]
        errors = ""
        for openmp in (["-fopenmp"], []):  # without OpenMP: one thread
            cmd = [*compiler, *_FLAGS, *openmp, *defines, str(src), "-o", str(out), "-lm"]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode == 0:
                os.replace(out, target)  # atomic: a reader sees all of it or none
                return None
            errors = done.stderr.strip() or f"exit status {done.returncode}"
        return errors


@functools.cache
def kernel(dtype: torch.dtype) -> Any | None:
    """The compiled step function for ``dtype`` (float32 or float64), or None (with a
    warning saying why, and what to do) where it cannot be had."""
    name = _TYPES.get(dtype)
    if name is None:
        return None
    compiler = shlex.split(os.environ.get("CC", ""), posix=os.name != "nt") or [
        shutil.which("cc") or shutil.which("gcc") or "cc"
    ]
    source = resources.files(__package__).joinpath(_SOURCE).read_bytes()
    parts = [source, " ".join(_FLAGS + compiler).encode(), name.encode(), _cpu().encode()]
    key = hashlib.sha256(b"\0".join(parts)).hexdigest()[:24]
    target = cache_dir() / f"mlp_steps_{name}_{key}{_suffix()}"
    error = None
    if not target.exists():
        try:
            error = _compile(source, name, target, compiler)
        except OSError as exc:  # no compiler at all, or a cache it cannot write
            error = f"{exc.strerror or exc}: {exc.filename or cache_dir()}"
    if error is None:
        try:
            fn = getattr(ctypes.CDLL(str(target)), f"initlab_mlp_steps_{name}")
        except (OSError, AttributeError) as exc:  # a damaged file in the cache
            error = f"{target} would not load ({exc}); delete it to compile it again"
        else:
            fn.argtypes = _ARGS
            fn.restype = ctypes.c_int
            return fn
    lines = [line for line in error.splitlines() if "error" in line.lower()] or [error]
    warnings.warn(
        f"initlab could not build its compiled step kernel with {' '.join(compiler)}: "
        f"{lines[0].strip()}. compile=True goes through torch.compile instead (which "
        "also needs a C++ compiler); install a C compiler (e.g. apt install gcc), set "
        "CC, or set INITLAB_CACHE to a writable folder.",
        RuntimeWarning,
        stacklevel=2,
    )
    return None


@functools.cache
def gemm(dtype: torch.dtype) -> int:
    """The address of the MKL gemm that torch itself calls (in MKL's strict reproducible
    mode, which initlab sets), for ``dtype``; 0 where torch has no MKL (the kernel then
    computes every product itself)."""
    name = _GEMMS.get(dtype)
    if name is None or not torch.backends.mkl.is_available():  # type: ignore[no-untyped-call]
        return 0
    lib = _blas.torch_library()
    symbol = getattr(lib, name, None) if lib is not None else None  # None: another build
    return 0 if symbol is None else ctypes.cast(symbol, ctypes.c_void_p).value or 0


def _suffix() -> str:
    return ".dll" if os.name == "nt" else ".so"


def _pointers(tensors: list[torch.Tensor | None]) -> Any:
    return (ctypes.c_void_p * len(tensors))(*[0 if t is None else t.data_ptr() for t in tensors])


class MlpSteps:
    """K steps of a stack of MLPs through the compiled kernel.

    ``weights[l]`` (M, out, in) and ``biases[l]`` (M, out) or None are updated in place;
    ``grad_w``/``grad_b`` (same shapes) hold the last step's gradients after a call.
    ``acts[l]`` is 0 (none), 1 (ReLU), 2 (tanh) or 3 (sigmoid) after layer l; ``loss``
    is ``"cross_entropy"`` or ``"bce"`` (one logit). All contiguous, on the CPU, of one
    dtype; the pointers are taken once, so the tensors must stay where they are. The
    products of layers of at least ``gemm_min`` weights (in·out) go to torch's MKL
    (:func:`gemm`) where it has one; None keeps every product in the kernel's loops.

    The update is ``rule`` (``"sgd"``, ``"momentum"`` or ``"nesterov"``, torch's
    undamped forms, β = ``momentum``) with L2 ``weight_decay``, after clipping the
    gradients by ``clip`` (None, ``"norm"`` or ``"value"``) at ``thresholds`` (M,), as
    the engine's steps. ``buffers`` are momentum's (weights', biases'), updated in place.
    """

    def __init__(
        self,
        fn: Any,
        weights: list[torch.Tensor],
        biases: list[torch.Tensor | None],
        grad_w: list[torch.Tensor],
        grad_b: list[torch.Tensor | None],
        acts: list[int],
        loss: str,
        gemm_min: int | None = None,
        *,
        rule: str = "sgd",
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        buffers: tuple[list[torch.Tensor], list[torch.Tensor | None]] | None = None,
        clip: str | None = None,
        thresholds: torch.Tensor | None = None,
    ) -> None:
        if rule not in _RULES or clip not in _CLIPS:
            raise ValueError(
                "the kernel steps sgd, momentum or nesterov, clipping by norm or value; "
                f"got {rule!r}, {clip!r}"
            )
        if (rule != "sgd") != (buffers is not None) or (clip is None) != (thresholds is None):
            raise ValueError("momentum needs its buffers, and clipping its thresholds (M,)")
        self.fn = fn
        self.tensors = [*weights, *biases, *grad_w, *grad_b]  # kept alive with the pointers
        self.members = weights[0].shape[0]
        self.dtype = weights[0].dtype
        widths = [weights[0].shape[2], *[w.shape[1] for w in weights]]
        self.widths = torch.tensor(widths, dtype=torch.int64)
        self.acts = torch.tensor(acts, dtype=torch.int64)
        self.layers = len(weights)
        self.w, self.b = _pointers(list(weights)), _pointers(list(biases))
        self.gw, self.gb = _pointers(list(grad_w)), _pointers(list(grad_b))
        self.loss = 0 if loss == "cross_entropy" else 1
        self.gemm = 0 if gemm_min is None else gemm(self.dtype)
        self.gemm_min = max(1, gemm_min or 0)
        self.rule, self.momentum, self.weight_decay = _RULES[rule], momentum, weight_decay
        self.clip = _CLIPS[clip]
        if thresholds is not None and (
            thresholds.dtype != self.dtype or thresholds.shape != (self.members,)
        ):
            raise ValueError(f"thresholds: expected {self.dtype} ({self.members},)")
        self.thresholds = thresholds
        if buffers is None:
            self.bw = self.bb = None
        else:
            self.tensors += [*buffers[0], *buffers[1]]
            self.bw, self.bb = _pointers(list(buffers[0])), _pointers(list(buffers[1]))

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        idx: torch.Tensor | None,
        lr: torch.Tensor,
        active: torch.Tensor,
        steps: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``steps`` steps on x (n, in) and y (n,): all of x when ``idx`` is None, else
        the rows ``idx`` (K, B) shared or (K, M, B) per member. The per-member losses,
        gradient norms (before clipping) and whether clipping fired, of each step, (K, M)
        each."""
        members = self.members
        if idx is None:
            mode, batch = 0, x.shape[0]
        else:
            mode, batch = (1 if idx.dim() == 2 else 2), idx.shape[-1]
            if idx.dtype != torch.int64 or (mode == 2 and idx.shape[1] != members):
                raise ValueError(
                    f"rows: expected int64 (K, B) or (K, {members}, B); got {idx.dtype} "
                    f"{tuple(idx.shape)}"
                )
            idx = idx.contiguous()
        dtypes = (x.dtype, lr.dtype, y.dtype, active.dtype)
        if dtypes != (self.dtype, self.dtype, self.dtype if self.loss else torch.int64, torch.bool):
            raise ValueError(f"x, lr, y and active: wrong dtypes {dtypes}")
        if not (x.is_contiguous() and y.is_contiguous() and lr.is_contiguous()):
            raise ValueError("x, y and lr must be contiguous")
        losses = torch.empty(steps, members, dtype=self.dtype)
        norms = torch.empty(steps, members, dtype=self.dtype)
        fired = torch.zeros(steps, members, dtype=torch.bool)
        thresholds = self.thresholds
        labels = y if self.loss == 0 else None
        targets = y if self.loss == 1 else None
        failed = self.fn(
            members,
            self.layers,
            self.widths.data_ptr(),
            self.acts.data_ptr(),
            self.w,
            self.b,
            self.gw,
            self.gb,
            self.loss,
            x.data_ptr(),
            x.shape[0],
            0 if labels is None else labels.data_ptr(),
            0 if targets is None else targets.data_ptr(),
            steps,
            batch,
            mode,
            0 if idx is None else idx.data_ptr(),
            lr.data_ptr(),
            active.data_ptr(),
            losses.data_ptr(),
            norms.data_ptr(),
            torch.get_num_threads(),
            self.gemm,
            self.gemm_min,
            self.rule,
            self.momentum,
            self.weight_decay,
            self.bw,
            self.bb,
            self.clip,
            0 if thresholds is None else thresholds.data_ptr(),
            fired.data_ptr(),
        )
        if failed == 1:
            raise MemoryError(f"the compiled step kernel could not have its scratch (B={batch})")
        if failed == 2:
            raise ValueError(f"the compiled step kernel was given activation codes {self.acts}")
        if failed:
            raise ValueError(
                f"the compiled step kernel was given rule {self.rule}, clip {self.clip}"
            )
        return losses, norms, fired
