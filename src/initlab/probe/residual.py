"""Normalization layers and residual blocks: what a norm receives and passes on, and a
residual stream's scale against its branch's.

A normalization layer hides the scale of what it receives: its output has rms ≈ |γ|
whatever comes in, so a layer before it can blow up or shrink unseen. :func:`measure_norm`
reports both sides and γ.

A residual block y = x + f(x) carries the signal through depth on its skip path, but
the stream's variance adds up: with a branch uncorrelated with the stream,
Var(x_{l+1}) = Var(x_l) + Var(f(x_l)), so without normalization of the stream or
down-scaled branches its rms grows with depth (De & Smith 2020; Zhang et al. 2019,
Fixup), and in a pre-norm transformer each branch then adds less and less to a stream
that keeps growing (Xiong et al. 2020). Zero γ on a branch's last norm, or 1/√(2L) on its
output projection, keeps x_{l+1} ≈ x_l at init. So the probe reports, per residual block,
the stream's rms coming in and going out and the rms of the branch added to it, and
which module made the branch (what those scalings act on).

Which modules are residual blocks is read from the autograd graph, with no model-specific
code: a module is one when its output comes from an addition one of whose operands is the
module's input itself (its first input of the output's shape that the addition takes:
BERT's ``BertSelfOutput`` gets the stream second), reached from the output through a few
nodes that keep the shape
(an activation, a norm, dropout, a scalar or layer-scale multiplication, a copy):
``relu(bn2(conv2(…)) + x)`` (ResNet), ``norm1(x + sa(x))`` (post-norm transformer) and
``x + f(norm(x))`` (pre-norm). A module that makes two additions in a row (a transformer
layer's attention and MLP) is one block, reported at its output's addition, whose stream
operand reaches the input through the earlier one. An addition that a submodule already
reported belongs to that submodule: an ``nn.Sequential`` of blocks is not itself a block.
A skip through a projection (a downsampling ResNet block) changes the shape: not a
stream block.

:class:`ResidualFinder` hears every leaf module's output during the recorded pass (it
keeps them by their autograd node: no copy, no reduction) and every container's output
after its forward; the graph walks are a few nodes each. Its caller is
:class:`~initlab.probe.Watch`.

References:
    He et al. 2016, "Deep residual learning for image recognition".
    Zhang, Dauphin & Ma 2019, "Fixup initialization: residual learning without
    normalization".
    De & Smith 2020, "Batch normalization biases residual blocks towards the identity
    function in deep networks".
    Xiong et al. 2020, "On layer normalization in the transformer architecture".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from initlab.norm import StackedBatchNorm
from initlab.probe.results import NormStats, ResidualStats

__all__ = ["NORMS", "ResidualFinder", "measure_norm", "norm_numbers"]

NORMS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,  # BatchNorm1d/2d/3d, SyncBatchNorm, the lazy ones
    nn.modules.instancenorm._InstanceNorm,  # InstanceNorm1d/2d/3d
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.LocalResponseNorm,
    StackedBatchNorm,
)

# How many autograd nodes a walk takes: from a block's output to its addition, from a
# branch down to the module that made it. Real blocks need 1 to 4.
_STEPS = 8
# How many nodes the search for the input along the stream visits, through earlier
# additions of the same block (a transformer layer has two; a decoder layer three).
_SEARCH = 32


def _rms(t: Tensor) -> Tensor:
    """√E[t²] as a 0-d float64 tensor (no sync): accumulated in float64 for small
    tensors (a γ) and at least float32 for activations."""
    t = t.detach()
    if t.numel() == 0:
        return torch.tensor(math.nan, dtype=torch.float64, device=t.device)
    if not t.is_floating_point():
        t = t.double()
    small = t.numel() <= 1 << 16
    acc = torch.float64 if small or t.dtype == torch.float64 else torch.float32
    norm: Tensor = torch.linalg.vector_norm(t, dtype=acc)
    return norm.double() / math.sqrt(t.numel())


def measure_norm(
    name: str,
    module: nn.Module,
    args: tuple[Any, ...],
    output: Tensor,
    *,
    member: int | None = None,
) -> NormStats:
    """The rms of a normalization layer's input and output, and of its γ.

    in_rms = √E[x²], out_rms = √E[y²], gamma_rms = √E[γ²] (nan without an affine weight).
    Batch norm in training gives each channel mean β and std |γ| (up to ε), so out_rms
    ≈ √E[γ² + β²] there: a large in_rms against out_rms ≈ 1 is a scale the norm hid.
    This reads the numbers at once (one host–device sync); :func:`norm_numbers` queues
    them instead.

    Args:
        name: the module's qualified name (reported as is).
        module: the norm (one of :data:`NORMS`, or any module with an optional ``weight``).
        args: the positional arguments of its forward; ``args[0]`` is its input.
        output: its output.
        member: for an initlab ``StackedBatchNorm``, the one member to measure (its
            slice of the input, output and γ); None measures all members together.

    Returns:
        A :class:`~initlab.probe.NormStats`.

    Example:
        >>> ln = nn.LayerNorm(16)
        >>> x = 3 * torch.randn(8, 16)
        >>> stats = measure_norm("ln", ln, (x,), ln(x))
        >>> stats.kind, round(stats.out_rms, 3), stats.gamma_rms
        ('LayerNorm', 1.0, 1.0)
    """
    numbers, build = norm_numbers(name, module, args, output, member=member)
    return build(numbers.tolist())


def norm_numbers(
    name: str,
    module: nn.Module,
    args: tuple[Any, ...],
    output: Tensor,
    *,
    member: int | None = None,
) -> tuple[Tensor, Callable[[Sequence[float]], NormStats]]:
    """:func:`measure_norm` without the read: its numbers queued on the device.

    Returns:
        The numbers, a float64 tensor of shape (3,) on the output's device (nothing read
        yet), and the function that makes the :class:`~initlab.probe.NormStats` from
        their values once read.
    """
    x = args[0] if args and isinstance(args[0], Tensor) else None
    weight = getattr(module, "weight", None)
    gamma = weight if isinstance(weight, Tensor) else None
    if member is not None and isinstance(module, StackedBatchNorm):
        if x is not None:
            x = x.select(module.member_dim, member)
        output = output.select(module.member_dim, member)
        gamma = None if gamma is None else gamma[member]
    device = output.device
    nan = torch.tensor(math.nan, dtype=torch.float64, device=device)
    numbers = torch.stack(
        [
            nan if x is None else _rms(x).to(device),
            _rms(output),
            nan if gamma is None else _rms(gamma).to(device),
        ]
    )
    kind = type(module).__name__

    def build(values: Sequence[float]) -> NormStats:
        in_rms, out_rms, gamma_rms = (float(v) for v in values)
        return NormStats(name, kind, in_rms, out_rms, gamma_rms)

    return numbers, build


# -- the autograd graph, read by node class name (torch's names end in a version digit)

_ACTIVATION = frozenset(
    [
        "Relu",
        "Gelu",
        "Silu",
        "Tanh",
        "Sigmoid",
        "Elu",
        "LeakyRelu",
        "Hardtanh",
        "Hardswish",
        "Hardsigmoid",
        "Softplus",
        "Mish",
        "Threshold",
        "Celu",
        "PreluKernel",
        "LogSigmoid",
        "RreluWithNoise",
    ]
)
_DROPOUT = frozenset({"NativeDropout", "FusedDropout"})
_SCALE = frozenset({"Mul", "Div"})  # by a scalar, a mask or a parameter (layer scale)
_COPY = frozenset({"Clone", "ToCopy", "View", "UnsafeView", "Reshape", "ReshapeAlias", "Alias"})
_NORM = re.compile(r"(LayerNorm|BatchNorm|GroupNorm|RmsNorm)")
_PARAM_VIEW = frozenset({"View", "Expand", "Unsqueeze", "T", "Reshape", "ReshapeAlias"})


def _kind(node: Any) -> str:
    return type(node).__name__.removesuffix("Backward0").removesuffix("Backward1")


def _is_param(node: Any) -> bool:
    """The node feeds a parameter (perhaps viewed or broadcast) into the op."""
    for _ in range(3):
        if node is None:
            return False
        kind = type(node).__name__
        if kind == "AccumulateGrad":
            return isinstance(node.variable, nn.Parameter)
        if _kind(node) not in _PARAM_VIEW or len(node.next_functions) != 1:
            return False
        node = node.next_functions[0][0]
    return False


def _operands(node: Any) -> list[tuple[int, Any, int]]:
    """The node's inputs that carry signal: (position, node, output_nr), without the
    parameters and the inputs that need no gradient."""
    return [
        (i, fn, nr)
        for i, (fn, nr) in enumerate(node.next_functions)
        if fn is not None and not _is_param(fn)
    ]


def _shape(node: Any, nr: int = 0) -> tuple[int, ...] | None:
    meta = getattr(node, "_input_metadata", None)
    if meta is None or nr >= len(meta):
        return None
    return tuple(meta[nr].shape)


def _through(node: Any, *, norms: bool) -> tuple[int, Any] | None:
    """The one signal input of a node that keeps the shape, as (position, node), or None
    where the node is anything else (a weight layer, an addition, a reshape)."""
    kind = _kind(node)
    keeps = (
        kind in _ACTIVATION
        or kind in _DROPOUT
        or kind in _SCALE
        or kind in _COPY
        or (norms and _NORM.search(kind) is not None)
    )
    if not keeps:
        return None
    operands = _operands(node)
    if norms and kind == "Mul" and len(operands) == 2:
        # x · rsqrt(E[x²] + ε): an RMS norm written out (nn.RMSNorm's composite form)
        rsqrt = [o for o in operands if _kind(o[1]) == "Rsqrt"]
        operands = [o for o in operands if _kind(o[1]) != "Rsqrt"] if len(rsqrt) == 1 else operands
    if len(operands) != 1:
        return None
    i, fn, nr = operands[0]
    if kind in _COPY and (_shape(node) is None or _shape(node) != _shape(fn, nr)):
        return None
    return i, fn


def _is_add(node: Any) -> bool:
    return type(node).__name__ == "AddBackward0" and len(node.next_functions) == 2


@dataclass(slots=True)
class _Leaf:
    """A leaf module's output as recorded: the node that made it, and its values."""

    name: str
    node: Any  # the output's grad_fn, kept so that its id stays unique
    output: Tensor
    copy: Tensor | None  # the values, where the caller took a copy; else read the output
    version: int  # the values' _version when recorded: a later in-place op changes it

    @property
    def value(self) -> Tensor:
        return self.output.detach() if self.copy is None else self.copy

    @property
    def intact(self) -> bool:
        return (self.output if self.copy is None else self.copy)._version == self.version


class ResidualFinder:
    """Finds the residual blocks of one recorded pass and measures each.

    One per recorded pass. The caller's forward hooks call :meth:`leaf_output` for each
    leaf module's output (and for ``nn.MultiheadAttention``'s ``output[0]``) and
    :meth:`block_output` for each container after its forward (children before their
    parent, as forward hooks run). Call :meth:`block_output` with the module's own input
    and output tensors (not copies): the graph is read through their ``grad_fn``.

    Example:
        >>> class Block(nn.Module):
        ...     def __init__(self) -> None:
        ...         super().__init__()
        ...         self.norm, self.fc = nn.LayerNorm(8), nn.Linear(8, 8)
        ...     def forward(self, x):
        ...         return x + self.fc(self.norm(x))
        >>> model = nn.Sequential(nn.Linear(8, 8), Block())
        >>> finder = ResidualFinder()
        >>> _ = model[0].register_forward_hook(lambda m, a, y: finder.leaf_output("0", y))
        >>> for name in ("1.norm", "1.fc"):
        ...     leaf = model.get_submodule(name)
        ...     _ = leaf.register_forward_hook(lambda m, a, y, n=name: finder.leaf_output(n, y))
        >>> found = []
        >>> _ = model[1].register_forward_hook(
        ...     lambda m, a, y: found.append(finder.block_output("1", m, a, y)))
        >>> _ = model(torch.randn(4, 8))
        >>> found[0].name, found[0].branch_source
        ('1', '1.fc')
    """

    def __init__(self) -> None:
        self._leaves: dict[int, _Leaf] = {}
        self._claimed: dict[int, Any] = {}  # additions that a block reported (by node id)

    def leaf_output(self, name: str, output: Tensor, value: Tensor | None = None) -> None:
        """Remember a leaf module's output by its autograd node (no copy, no reduction).

        Args:
            name: the module's qualified name.
            output: its output tensor itself (its ``grad_fn`` is the key).
            value: the output's values where the caller took a copy (an in-place op later
                in the model, such as ``nn.ReLU(inplace=True)``, would overwrite them);
                None reads ``output`` when a block needs it.
        """
        node = output.grad_fn
        if node is None or id(node) in self._leaves:
            # Kept: the first module to make it (an eval-mode Dropout or an Identity
            # passes its input on unchanged).
            return
        version = (output if value is None else value)._version
        self._leaves[id(node)] = _Leaf(name, node, output, value, version)

    def block_output(
        self, name: str, module: nn.Module, args: tuple[Any, ...], output: object
    ) -> ResidualStats | None:
        """Measure a container if it is a residual block; None if it is not.

        This reads the numbers at once (one host–device sync per block found);
        :meth:`block_numbers` queues them instead.

        Args:
            name: the container's qualified name.
            module: the container (unused: the graph decides).
            args: the positional arguments of its forward; the stream is the first of
                the output's shape that the addition takes (usually ``args[0]``).
            output: what its forward returned.

        Returns:
            A :class:`~initlab.probe.ResidualStats` (stream in, stream out, branch, and
            the branch's source), or None when the container is not a residual block.
        """
        found = self.block_numbers(name, module, args, output)
        if found is None:
            return None
        numbers, build = found
        return build(numbers.tolist())

    def block_numbers(
        self, name: str, module: nn.Module, args: tuple[Any, ...], output: object
    ) -> tuple[Tensor, Callable[[Sequence[float]], ResidualStats]] | None:
        """:meth:`block_output` without the read: None for a container that is not a
        residual block, else its numbers queued on the device (a float64 tensor of shape
        (3,): stream in, stream out and branch rms, nothing read yet) and the function
        that makes the :class:`~initlab.probe.ResidualStats` from their values once read.
        """
        del module
        if not isinstance(output, Tensor):
            return None
        try:
            return self._measure(name, args, output)
        finally:
            self._forget(name, output)

    def block_outputs(
        self, name: str, module: nn.Module, args: tuple[Any, ...], output: object
    ) -> list[ResidualStats]:
        """Every residual addition of a container, innermost first: a transformer layer
        or a ViT block adds two branches (attention, then the MLP), each reported with
        the stream it is added to and its own source. [] when the container is not a
        residual block. Reads the numbers at once (one sync for the block)."""
        del module
        if not isinstance(output, Tensor):
            return []
        try:
            return self._measure_all(name, args, output)
        finally:
            self._forget(name, output)

    def _measure_all(self, name: str, args: tuple[Any, ...], y: Tensor) -> list[ResidualStats]:
        stream = self._stream(args, y)
        if stream is None:
            return []
        x, found = stream
        is_input = _input_test(x)
        adds = [found]
        stream = found[0].next_functions[1 - found[1]][0]
        # Down the stream: the block's earlier additions, each the stream of the next.
        while stream is not None and not is_input(stream) and len(adds) < _STEPS:
            inner = self._addition(stream, is_input)
            if inner is None:
                break
            adds.append((inner[0], inner[1], inner[2], False))
            stream = inner[0].next_functions[1 - inner[1]][0]
        adds.reverse()
        for add, *_ in adds:
            self._claimed[id(add)] = add
        rows: list[Tensor] = []
        sources: list[str] = []
        current: Tensor | None = x.detach()  # the stream into the next addition
        nan = torch.tensor(math.nan, dtype=torch.float64, device=y.device)
        for k, (add, branch_at, branch, last) in enumerate(adds):
            outer = k == len(adds) - 1
            if k:  # the stream operand: the addition before (pre-norm), or a recorded norm
                operand = add.next_functions[1 - branch_at][0]
                leaf = self._recorded(operand)
                if operand is not adds[k - 1][0]:
                    current = leaf.value if leaf is not None and leaf.intact else None
            alpha = float(getattr(add, "_saved_alpha", 1.0))
            value = (
                None
                if current is None
                else self._value(
                    branch, current, y if last and outer else None, add, branch_at, _STEPS
                )
            )
            added: Tensor | None = None
            if current is not None and value is not None:
                added = current + alpha * value if branch_at == 1 else value + alpha * current
            stream_in = nan if current is None else _rms(current).to(y.device)
            stream_out = _rms(y) if outer else (nan if added is None else _rms(added))
            branch_rms = nan if value is None else _rms(value).to(y.device)
            if branch_at == 1 and value is not None:
                branch_rms = branch_rms * abs(alpha)
            rows.append(torch.stack([stream_in, stream_out.to(y.device), branch_rms]))
            sources.append(self._source(branch))
            current = added
        values = torch.stack(rows).tolist()  # one read for the block
        return [
            ResidualStats(name, float(a), float(b), float(c), source)
            for (a, b, c), source in zip(values, sources, strict=True)
        ]

    # -- the graph
    def _measure(
        self, name: str, args: tuple[Any, ...], y: Tensor
    ) -> tuple[Tensor, Callable[[Sequence[float]], ResidualStats]] | None:
        stream = self._stream(args, y)
        if stream is None:
            return None
        x, (add, branch_at, branch, last) = stream
        self._claimed[id(add)] = add
        alpha = float(getattr(add, "_saved_alpha", 1.0)) if branch_at == 1 else 1.0
        value = self._value(branch, x, y if last else None, add, branch_at, _STEPS)
        nan = torch.tensor(math.nan, dtype=torch.float64, device=y.device)
        branch_rms = nan if value is None else _rms(value).to(y.device) * abs(alpha)
        numbers = torch.stack([_rms(x).to(y.device), _rms(y), branch_rms])
        source = self._source(branch)

        def build(values: Sequence[float]) -> ResidualStats:
            stream_in, stream_out, branch_rms = (float(v) for v in values)
            return ResidualStats(name, stream_in, stream_out, branch_rms, source)

        return numbers, build

    def _stream(
        self, args: tuple[Any, ...], y: Tensor
    ) -> tuple[Tensor, tuple[Any, int, Any, bool]] | None:
        """The block's input that its output adds back, and the addition (as
        :meth:`_addition` gives it); None when there is none.

        The stream is the first input of the output's shape that the addition takes:
        usually args[0]; args[1] in BERT's BertSelfOutput(hidden_states, input_tensor).
        """
        if not y.requires_grad or y.grad_fn is None:
            return None
        for x in args:
            if isinstance(x, Tensor) and x.shape == y.shape and x.requires_grad:
                found = self._addition(y.grad_fn, _input_test(x))
                if found is not None:
                    return x, found
        return None

    def _addition(
        self, node: Any, is_input: Callable[[Any], bool]
    ) -> tuple[Any, int, Any, bool] | None:
        """The block's residual addition, from its output's node: (the addition, the
        branch's position in it, the branch's node, whether the addition is the output's
        own node), or None."""
        for step in range(_STEPS):
            if _is_add(node):
                if id(node) in self._claimed:
                    return None  # a submodule's block
                (a, _), (b, _) = node.next_functions
                if a is not None and is_input(a):
                    return node, 1, b, step == 0
                if b is not None and is_input(b):
                    return node, 0, a, step == 0
                # The stream reaches the input through earlier additions of this block.
                da, db = self._distance(a, is_input), self._distance(b, is_input)
                if da is not None and (db is None or da <= db):
                    return node, 1, b, step == 0
                if db is not None:
                    return node, 0, a, step == 0
                return None
            passed = _through(node, norms=True)
            if passed is None:
                return None
            node = passed[1]
        return None

    def _distance(self, start: Any, is_input: Callable[[Any], bool]) -> int | None:
        """How many nodes lie between ``start`` and the block's input along a stream of
        shape-keeping nodes and unclaimed additions (breadth first), or None."""
        frontier, visited = [start], 0
        while frontier and visited < _SEARCH:
            following = []
            for node in frontier:
                visited += 1
                if node is None:
                    continue
                if is_input(node):
                    return visited
                if _is_add(node):
                    if id(node) not in self._claimed:
                        following += [fn for fn, _ in node.next_functions]
                    continue
                passed = _through(node, norms=True)
                if passed is not None:
                    following.append(passed[1])
            frontier = following
        return None

    def _recorded(self, node: Any) -> _Leaf | None:
        leaf = self._leaves.get(id(node))
        return leaf if leaf is not None and leaf.node is node else None

    def _value(
        self, node: Any, x: Tensor, y: Tensor | None, add: Any, branch_at: int, depth: int
    ) -> Tensor | None:
        """The values of the addition's branch operand ``node`` (before any ``alpha`` of
        ``torch.add``), or None.

        In order: a recorded leaf output that no in-place op has changed since; one that
        the addition itself changed in place (``out += identity``: out − x); a scale
        (layer scale, dropout mask, a scalar) or activation applied functionally on top
        of a recorded output, redone from the values autograd saved; where the addition
        is the block's last op (``y`` given), y − x (its rounding is ~1e-7·|x|/|f(x)|
        relative in float32: the last resort).
        """
        alpha = float(getattr(add, "_saved_alpha", 1.0))
        leaf = self._recorded(node)
        if leaf is not None:
            if leaf.intact:
                return leaf.value
            grown = leaf.copy is None and leaf.output._version == leaf.version + 1
            if grown and branch_at == 0 and leaf.output.grad_fn is add:
                return leaf.output.detach() - alpha * x.detach()
        elif depth > 0:
            redone = _redo(node, lambda fn: self._value(fn, x, None, add, -1, depth - 1))
            if redone is not None:
                return redone
        if y is None:
            return None
        if branch_at == 0:  # y = f + alpha·x
            return y.detach() - alpha * x.detach()
        return (y.detach() - x.detach()) / alpha  # y = x + alpha·f

    def _source(self, node: Any) -> str:
        """The qualified name of the module that made the branch: the nearest recorded
        output below it that is not an activation, dropout or scale (a weight layer, a
        norm, an attention module); else the nearest recorded output; "" if none."""
        first = ""
        for _ in range(_STEPS):
            leaf = self._recorded(node)
            if leaf is not None:
                kind = _kind(node)
                if kind not in _ACTIVATION and kind not in _DROPOUT and kind not in _SCALE:
                    return leaf.name
                first = first or leaf.name
            passed = _through(node, norms=False)
            if passed is None:
                break
            node = passed[1]
        return first

    def _forget(self, name: str, output: Tensor) -> None:
        """Let go of the leaf outputs recorded inside a finished container, but those on
        its output's own chain (an outer block's branch may end there)."""
        prefix = name + "."
        keep: set[int] = set()
        node = output.grad_fn
        for _ in range(_STEPS):
            if node is None:
                break
            keep.add(id(node))
            passed = _through(node, norms=True)
            node = None if passed is None else passed[1]
        # Everything recorded since the container started is inside it: walk back from
        # the newest and stop at the first output from elsewhere.
        drop = []
        for key in reversed(self._leaves):
            if not self._leaves[key].name.startswith(prefix):
                break
            if key not in keep:
                drop.append(key)
        for key in drop:
            del self._leaves[key]


def _input_test(x: Tensor) -> Callable[[Any], bool]:
    """Whether an autograd node is the block input's own (its grad_fn, or, for a leaf
    that requires grad, the node that accumulates its gradient)."""
    node = x.grad_fn
    if node is not None:
        return lambda fn: fn is node
    return lambda fn: type(fn).__name__ == "AccumulateGrad" and fn.variable is x


def _redo(node: Any, below: Callable[[Any], Tensor | None]) -> Tensor | None:
    """A functional op's output redone from what autograd saved: an activation's saved
    result (ReLU, tanh, sigmoid); a scale times the values ``below`` gives for its input
    (a layer scale γ·f, a dropout mask, a scalar); a cast (autocast), copy or view that
    keeps the shape: the values below. None otherwise."""
    kind = _kind(node)
    if kind in _ACTIVATION:
        result = getattr(node, "_saved_result", None)
        return result.detach() if isinstance(result, Tensor) else None
    if kind in _COPY:  # a cast (autocast), a copy, a view that keeps the shape
        passed = _through(node, norms=False)
        return None if passed is None else below(passed[1])
    if kind not in _SCALE:
        return None
    operands = _operands(node)
    if len(operands) != 1:
        return None
    position, fn, _ = operands[0]
    try:
        factor = getattr(node, "_saved_other" if position == 0 else "_saved_self", None)
    except RuntimeError:  # freed by a backward pass
        return None
    if factor is None or (kind == "Div" and position != 0):
        return None
    values = below(fn)
    if values is None:
        return None
    factor = factor.detach() if isinstance(factor, Tensor) else factor
    return values * factor if kind == "Mul" else values / factor
