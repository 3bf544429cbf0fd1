"""Stacked models: M independent members of one architecture, computed as one.

A :class:`Stack` holds M members of an MLP or a small CNN. Every weight has a leading
member dimension — a Linear weight is (M, out, in) — and one forward pass computes all
members with batched matrix products (MLP) or one grouped convolution (CNN). Member m
computes exactly what the plain ``nn.Sequential`` returned by :func:`to_module` computes.

Input is (M, B, *features) (each member its own batch) or (B, *features) (one batch
shared by all members); output is (M, B, out). Inside, an MLP keeps activations as
(M, features, B) and uses ``baddbmm``: measured on CPU, the (M, B, features) layout spends
much of a step copying transposed weight gradients. A CNN keeps (B, M·C, *spatial), the
layout of a grouped convolution.

Example:
    >>> import torch
    >>> net = mlp([2, 10, 5, 1], "relu", members=4)
    >>> net(torch.randn(32, 2)).shape  # one batch shared by the 4 members
    torch.Size([4, 32, 1])
    >>> to_module(net, 0)
    Sequential(
      (0): Linear(in_features=2, out_features=10, bias=True)
      (1): ReLU()
      (2): Linear(in_features=10, out_features=5, bias=True)
      (3): ReLU()
      (4): Linear(in_features=5, out_features=1, bias=True)
    )
"""

from __future__ import annotations

import copy
import itertools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeAlias

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils import skip_init

from initlab import _blas, activations
from initlab import init as initmod
from initlab._validation import check_choice, check_int, param_message
from initlab.norm import StackedBatchNorm

_blas.strict()  # before MKL runs: a member's products independent of its place

__all__ = [
    "ACTIVATIONS",
    "Stack",
    "StackedConv",
    "StackedLinear",
    "cnn",
    "from_modules",
    "init_members",
    "load_member",
    "mlp",
    "to_module",
]

BatchNormPlacement: TypeAlias = Literal["before", "after"] | None
Bias: TypeAlias = bool | Literal["auto"]

#: Activation names accepted by :func:`mlp` and :func:`cnn`, and the modules they build:
#: the registry's (:mod:`initlab.activations`) names that have a module.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    name: spec.module for name, spec in activations.by_name().items() if spec.module is not None
}
# Modules that act elementwise or per channel, the same for every member.
_SHARED = (
    *dict.fromkeys(type(build()) for build in ACTIVATIONS.values()),
    nn.MaxPool1d,
    nn.MaxPool2d,
)


# Activations applied in place to a linear or convolutional layer's output, which is a
# fresh tensor that nothing else holds: their gradients need only their result, so
# autograd allows it, and one allocation and pass over the largest tensors is saved
# (1.25× faster fwd+bwd for a 2-10-5-1 ReLU net at M = 1024).
_IN_PLACE: dict[type[nn.Module], Callable[[Tensor], Tensor]] = {
    nn.ReLU: torch.relu_,
    nn.Tanh: torch.tanh_,
    nn.Sigmoid: torch.sigmoid_,
}


def _hooked(module: nn.Module) -> bool:
    """Whether hooks may see the module's input or output (then nothing runs in place)."""
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
    )


def _global_hooks() -> bool:
    m = nn.modules.module
    return bool(
        m._global_forward_hooks
        or m._global_forward_pre_hooks
        or m._global_backward_hooks
        or m._global_backward_pre_hooks
    )


def _uninitialized(cls: type[Any], *args: Any, **kwargs: Any) -> Any:
    """A layer built without drawing its initial values (they are copied in next)."""
    return skip_init(cls, *args, **kwargs)  # type: ignore[no-untyped-call]


class _MemberLayer(nn.Module):
    """A stacked layer whose member m can be exported as a plain layer."""

    def member(self, m: int) -> nn.Module:
        raise NotImplementedError


class StackedLinear(_MemberLayer):
    """M Linear layers, ``weight`` (M, out, in) and ``bias`` (M, out), feature-major.

    Input (M, in, B), or (in, B) shared by all members; output (M, out, B):
    ``out[m] = weight[m] @ x[m] + bias[m]``. Initialized as ``nn.Linear`` does, per
    member: U(±1/√in) from the global generator.

    Example:
        >>> layer = StackedLinear(3, 4, 2)
        >>> layer(torch.randn(3, 4, 8)).shape
        torch.Size([3, 2, 8])
    """

    def __init__(
        self,
        members: int,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fn = "StackedLinear"
        self.members = check_int(fn, "members", members, low=1)
        self.in_features = check_int(fn, "in_features", in_features, low=1)
        self.out_features = check_int(fn, "out_features", out_features, low=1)
        self.weight = nn.Parameter(
            torch.empty(members, out_features, in_features, device=device, dtype=dtype)
        )
        self.bias = (
            nn.Parameter(torch.empty(members, out_features, device=device, dtype=dtype))
            if bias
            else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's nn.Linear init for every member, from the global generator."""
        for m in range(self.members):
            initmod.torch_default_(self.weight[m])
            if self.bias is not None:
                initmod.torch_default_(self.bias[m], fan_in=self.in_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_act(x, None)

    def forward_act(self, x: Tensor, act: Callable[[Tensor], Tensor] | None) -> Tensor:
        """``forward``, then ``act`` applied in place (before the shared input's view:
        in place on a view, autograd would copy the whole tensor)."""
        if x.dim() == 2:
            # One input (in, B) shared by all members: all M·out rows of the weights meet
            # it in one matrix product, rather than M small ones (2.5× faster for a
            # 2-10-5-1 net at M = 1024).
            w = self.weight.reshape(-1, self.in_features)
            b = self.bias
            y = torch.mm(w, x) if b is None else torch.addmm(b.reshape(-1, 1), w, x)
            if act is not None:
                y = act(y)
            return y.view(self.members, self.out_features, -1)
        if self.bias is None:
            y = torch.bmm(self.weight, x)
        else:
            y = torch.baddbmm(self.bias.unsqueeze(-1), self.weight, x)
        return y if act is None else act(y)

    def member(self, m: int) -> nn.Linear:
        """Member m as a plain ``nn.Linear`` (a copy)."""
        w = self.weight[m]
        # skip_init: the values are copied in, so drawing them would only advance the
        # global generator and change the user's later random draws.
        layer: nn.Linear = _uninitialized(
            nn.Linear,
            self.in_features,
            self.out_features,
            self.bias is not None,
            device=w.device,
            dtype=w.dtype,
        )
        _copy_into(layer, {"weight": w, "bias": None if self.bias is None else self.bias[m]})
        return layer

    def extra_repr(self) -> str:
        return (
            f"members={self.members}, in_features={self.in_features}, "
            f"out_features={self.out_features}, bias={self.bias is not None}"
        )


class StackedConv(_MemberLayer):
    """M Conv1d or Conv2d layers as one grouped convolution.

    ``weight`` is (M, out, in, *kernel) and ``bias`` (M, out). Input (B, M·in, *spatial)
    (member-major channels), or (B, in, *spatial) shared by all members; output
    (B, M·out, *spatial'). A shared input needs no copy per member: it meets all M·out
    filters in one ungrouped convolution.

    Example:
        >>> conv = StackedConv(2, 1, 4, 3, padding=1, dims=2)
        >>> conv(torch.randn(5, 1, 28, 28)).shape
        torch.Size([5, 8, 28, 28])
    """

    def __init__(
        self,
        members: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        dims: Literal[1, 2] = 2,
        padding: int = 0,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fn = "StackedConv"
        self.members = check_int(fn, "members", members, low=1)
        self.in_channels = check_int(fn, "in_channels", in_channels, low=1)
        self.out_channels = check_int(fn, "out_channels", out_channels, low=1)
        self.kernel_size = check_int(fn, "kernel_size", kernel_size, low=1)
        self.padding = check_int(fn, "padding", padding, low=0)
        if dims not in (1, 2):
            raise ValueError(param_message(fn, "dims", "1 or 2", dims))
        self.dims = dims
        shape = (members, out_channels, in_channels, *([kernel_size] * dims))
        self.weight = nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
        self.bias = (
            nn.Parameter(torch.empty(members, out_channels, device=device, dtype=dtype))
            if bias
            else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's nn.Conv init for every member, from the global generator."""
        fan_in = self.in_channels * self.kernel_size**self.dims
        for m in range(self.members):
            initmod.torch_default_(self.weight[m])
            if self.bias is not None:
                initmod.torch_default_(self.bias[m], fan_in=fan_in)

    def forward(self, x: Tensor) -> Tensor:
        conv = F.conv1d if self.dims == 1 else F.conv2d
        weight = self.weight.reshape(-1, *self.weight.shape[2:])
        bias = None if self.bias is None else self.bias.reshape(-1)
        shared = x.shape[1] == self.in_channels and self.members > 1
        groups = 1 if shared else self.members
        return conv(x, weight, bias, padding=self.padding, groups=groups)

    def forward_act(self, x: Tensor, act: Callable[[Tensor], Tensor] | None) -> Tensor:
        """``forward``, then ``act`` applied in place."""
        y = self.forward(x)
        return y if act is None else act(y)

    def member(self, m: int) -> nn.Module:
        """Member m as a plain ``nn.Conv1d`` / ``nn.Conv2d`` (a copy)."""
        w = self.weight[m]
        cls = nn.Conv1d if self.dims == 1 else nn.Conv2d
        layer: nn.Module = _uninitialized(
            cls,
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            padding=self.padding,
            bias=self.bias is not None,
            device=w.device,
            dtype=w.dtype,
        )
        _copy_into(layer, {"weight": w, "bias": None if self.bias is None else self.bias[m]})
        return layer

    def extra_repr(self) -> str:
        return (
            f"members={self.members}, {self.in_channels}, {self.out_channels}, "
            f"kernel_size={self.kernel_size}, padding={self.padding}, dims={self.dims}, "
            f"bias={self.bias is not None}"
        )


class _FeatureBatchNorm(StackedBatchNorm, _MemberLayer):
    """Batch norm in the MLP's (M, C, B) layout; a member is an ``nn.BatchNorm1d``."""

    def __init__(self, members: int, num_features: int, **options: Any) -> None:
        super().__init__(members, num_features, member_dim=0, channel_dim=1, **options)

    def member(self, m: int) -> nn.Module:
        return _bn_member(self, m, nn.BatchNorm1d)


class _ChannelBatchNorm(StackedBatchNorm, _MemberLayer):
    """Batch norm in the CNN's (B, M·C, *spatial) layout; a member is BatchNorm1d/2d."""

    def __init__(self, members: int, num_features: int, spatial: int, **options: Any) -> None:
        super().__init__(members, num_features, member_dim=1, channel_dim=2, **options)
        self.spatial = spatial

    def forward(self, x: Tensor, update: Tensor | None = None) -> Tensor:
        b, _, *rest = x.shape
        merged = x.reshape(b, self.members, self.num_features, *rest)
        return super().forward(merged, update).reshape(x.shape)

    def member(self, m: int) -> nn.Module:
        return _bn_member(self, m, nn.BatchNorm1d if self.spatial == 1 else nn.BatchNorm2d)


def _bn_member(bn: StackedBatchNorm, m: int, cls: type[nn.Module]) -> nn.Module:
    ref = bn.running_mean if bn.running_mean is not None else bn.weight
    device, dtype = (None, None) if ref is None else (ref.device, ref.dtype)
    plain = cls(
        bn.num_features,
        bn.eps,
        bn.momentum,
        bn.affine,
        bn.track_running_stats,
        device=device,
        dtype=dtype,
    )
    _copy_into(plain, {name: t[m] for name, t in _member_tensors(bn).items()})
    return plain


class _Flatten(_MemberLayer):
    """(B, M·C, *spatial) → (M, C·∏spatial, B): from the CNN layout to the MLP layout."""

    def __init__(self, members: int) -> None:
        super().__init__()
        self.members = members

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], self.members, -1).permute(1, 2, 0)

    def member(self, m: int) -> nn.Module:
        return nn.Flatten()


def _member_tensors(module: nn.Module) -> dict[str, Tensor]:
    """A stacked layer's parameters and buffers (leading dim M), by name."""
    tensors: dict[str, Tensor] = dict(module.named_parameters(recurse=False))
    tensors.update({n: b for n, b in module.named_buffers(recurse=False) if b is not None})
    return tensors


def _copy_into(module: nn.Module, values: dict[str, Tensor | None]) -> None:
    """Copy ``values`` into a plain module's parameters and buffers of the same names."""
    own = _member_tensors(module)
    with torch.no_grad():
        for name, value in values.items():
            if value is not None:
                own[name].copy_(value)


class Stack(nn.Module):
    """M members of one architecture, as built by :func:`mlp`, :func:`cnn` or
    :func:`from_modules`. ``forward`` maps (M, B, *in) or shared (B, *in) to (M, B, out).

    ``layers`` runs in the order of the plain ``nn.Sequential`` of :func:`to_module`.
    """

    def __init__(self, layers: Sequence[nn.Module], members: int) -> None:
        super().__init__()
        if not layers or not isinstance(layers[-1], StackedLinear):
            raise ValueError("A Stack must end with a StackedLinear (its output layer).")
        if not isinstance(layers[0], StackedLinear | StackedConv):
            raise ValueError(
                "A Stack must start with a StackedLinear or a StackedConv. Got "
                f"{type(layers[0]).__name__}: flatten the input before it enters the stack."
            )
        self.layers = nn.ModuleList(layers)
        self.members = members

    def _is_shared(self, x: Tensor) -> bool:
        """Whether x is one batch for all members (B, *in) or one per member (M, B, *in)."""
        first = self.layers[0]
        if isinstance(first, StackedLinear):
            dims, features, what = 1, first.in_features, f"{first.in_features} features"
        else:
            assert isinstance(first, StackedConv)
            dims, features = first.dims + 1, first.in_channels
            what = f"{features} channels and {first.dims} spatial dims"
        channel = -1 if isinstance(first, StackedLinear) else -dims
        if x.dim() == dims + 1 and x.shape[channel] == features:
            return True
        if x.dim() == dims + 2 and x.shape[0] == self.members and x.shape[channel] == features:
            return False
        raise ValueError(
            f"The stack expects (B, …) shared by its members or ({self.members}, B, …) one per "
            f"member, with {what}. Got input shape {tuple(x.shape)}."
        )

    def forward(self, x: Tensor) -> Tensor:
        """(M, B, *in) or shared (B, *in) → (M, B, out)."""
        return self.logits(x).transpose(1, 2)

    def logits(self, x: Tensor, update: Tensor | None = None) -> Tensor:
        """The outputs in the stack's own layout, (M, out, B): no transposition back.

        ``update`` (M,) bool says which members' batch norms update their running
        statistics in training (a frozen member keeps its own); None for all.
        """
        layers = list(self.layers)
        first = layers[0]
        shared = self._is_shared(x)
        if isinstance(first, StackedLinear):
            if shared and self.members == 1:
                # One member: its batch is its own, so the products are those of a member
                # with its own batch in a larger stack (batched, the same layouts), and
                # its numbers are theirs on every BLAS (on AMD CPUs, MKL's mm and bmm
                # differ in the last bits on some transposed operands).
                x, shared = x.unsqueeze(0), False
            h = x.T if shared else x.transpose(1, 2)
            if shared and first.in_features <= 8:
                # A few features: the weight gradient's product (M·out, B) @ (B, in) is
                # 3.5× faster with (B, in) column-major, i.e. with x.T contiguous (the
                # step of a 2-10-5-1 net at M = 1024: 1.2× faster); with hundreds of
                # features the copy costs more than it saves.
                h = h.contiguous()
        else:
            h = x if shared else x.transpose(0, 1).reshape(x.shape[1], -1, *x.shape[3:])
        # Compiled, the in-place activation only gets in the way of the compiler's own
        # fusion (2× slower).
        fuse = not _global_hooks() and not torch.compiler.is_compiling()
        skip = False
        for i, layer in enumerate(layers):
            if skip:  # the activation already applied in place
                skip = False
                continue
            if isinstance(layer, StackedBatchNorm):
                h = layer(h, update)
                continue
            if fuse and isinstance(layer, StackedLinear | StackedConv) and i + 1 < len(layers):
                act = _IN_PLACE.get(type(layers[i + 1]))
                if act is not None and not _hooked(layer) and not _hooked(layers[i + 1]):
                    h = layer.forward_act(h, act)
                    skip = True
                    continue
            h = layer(h)
        return h

    def extra_repr(self) -> str:
        return f"members={self.members}"


def _activation(name: str) -> nn.Module:
    return ACTIVATIONS[check_choice("mlp", "activation", name, ACTIVATIONS)]()


def _check_block_options(batch_norm: BatchNormPlacement, bias: Bias, fn: str) -> None:
    if batch_norm is not None:
        check_choice(fn, "batch_norm", batch_norm, ("before", "after"))
    if bias != "auto" and not isinstance(bias, bool):
        raise ValueError(param_message(fn, "bias", "True, False or 'auto'", bias))


def _layer_bias(bias: Bias, batch_norm: BatchNormPlacement, where: str) -> bool:
    """'auto' drops a bias that batch norm follows directly (β replaces it)."""
    redundant = batch_norm == "before"
    if bias == "auto":
        return not redundant
    if bias and redundant:
        warnings.warn(
            f"The bias of {where} is redundant: batch norm follows it directly and its β "
            "replaces any bias. Use bias='auto' to drop it.",
            UserWarning,
            stacklevel=3,
        )
    return bool(bias)


def mlp(
    widths: Sequence[int],
    activation: str = "relu",
    batch_norm: BatchNormPlacement = None,
    bias: Bias = "auto",
    members: int = 1,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Stack:
    """A stacked MLP: ``widths = [in, hidden…, out]``, the output layer linear (logits).

    Each hidden layer is Linear → [BatchNorm] → activation → [BatchNorm], with batch norm
    placed ``"before"`` or ``"after"`` the activation, or nowhere (None). ``bias="auto"``
    drops the bias of a Linear that batch norm follows directly; ``bias=True`` keeps it,
    with a warning that β makes it redundant.

    Args:
        widths: at least [in, out]; every width ≥ 1.
        activation: a name from :data:`ACTIVATIONS`.
        batch_norm: None, ``"before"`` or ``"after"`` the activation.
        bias: True, False or ``"auto"``.
        members: M, the number of independent members.
        device: where the parameters live.
        dtype: their dtype.

    Returns:
        A :class:`Stack`; initialized like torch layers, then use :func:`init_members`.

    Example:
        >>> net = mlp([784, 100, 10], "tanh", batch_norm="before", members=8)
        >>> net(torch.randn(8, 64, 784)).shape
        torch.Size([8, 64, 10])
    """
    fn = "mlp"
    if isinstance(widths, str | bytes) or len(widths) < 2:
        raise ValueError(
            param_message(fn, "widths", "a list [in, hidden…, out] of ≥ 2 ints", widths)
        )
    widths = [check_int(fn, "widths", w, low=1) for w in widths]
    members = check_int(fn, "members", members, low=1)
    _check_block_options(batch_norm, bias, fn)
    layers: list[nn.Module] = []
    for i, (w_in, w_out) in enumerate(itertools.pairwise(widths[:-1])):
        has_bias = _layer_bias(bias, batch_norm, f"hidden layer {i + 1}")
        layers.append(StackedLinear(members, w_in, w_out, has_bias, device=device, dtype=dtype))
        block = [_activation(activation)]
        if batch_norm is not None:
            bn = _FeatureBatchNorm(members, w_out, device=device, dtype=dtype)
            block.insert(0 if batch_norm == "before" else 1, bn)
        layers += block
    layers.append(
        StackedLinear(
            members, widths[-2], widths[-1], bias is not False, device=device, dtype=dtype
        )
    )
    return Stack(layers, members)


def cnn(
    input_shape: Sequence[int] = (1, 28, 28),
    channels: Sequence[int] = (8, 16),
    num_classes: int = 10,
    activation: str = "relu",
    batch_norm: BatchNormPlacement = None,
    bias: Bias = "auto",
    members: int = 1,
    *,
    kernel_size: int = 3,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Stack:
    """A small stacked CNN for (C, H, W) images such as 28×28 MNIST, or (C, L) signals
    such as length-40 MNIST-1D.

    Each block is Conv (same padding) → [BatchNorm] → activation → [BatchNorm] →
    MaxPool(2); then Flatten → Linear to ``num_classes``. Members are one grouped
    convolution. Batch norm and bias follow the rules of :func:`mlp`.

    Args:
        input_shape: (C, H, W) for Conv2d or (C, L) for Conv1d.
        channels: output channels of each conv block.
        num_classes: outputs of the final Linear.
        activation: a name from :data:`ACTIVATIONS`.
        batch_norm: None, ``"before"`` or ``"after"`` the activation.
        bias: True, False or ``"auto"``.
        members: M.
        kernel_size: odd kernel size of every conv.
        device: where the parameters live.
        dtype: their dtype.

    Returns:
        A :class:`Stack`.

    Example:
        >>> net = cnn((1, 40), channels=(4, 8), members=3)  # MNIST-1D
        >>> net(torch.randn(16, 1, 40)).shape
        torch.Size([3, 16, 10])
    """
    fn = "cnn"
    shape = [check_int(fn, "input_shape", s, low=1) for s in input_shape]
    if len(shape) not in (2, 3):
        raise ValueError(
            param_message(fn, "input_shape", "(C, L) or (C, H, W)", tuple(input_shape))
        )
    kernel_size = check_int(fn, "kernel_size", kernel_size, low=1)
    if kernel_size % 2 == 0:
        raise ValueError(param_message(fn, "kernel_size", "odd (for same padding)", kernel_size))
    members = check_int(fn, "members", members, low=1)
    _check_block_options(batch_norm, bias, fn)
    dims: Literal[1, 2] = 1 if len(shape) == 2 else 2
    layers: list[nn.Module] = []
    c_in, spatial = shape[0], shape[1:]
    for i, c_out in enumerate(check_int(fn, "channels", c, low=1) for c in channels):
        if min(spatial) < 2:
            raise ValueError(
                f"cnn: input_shape {tuple(input_shape)} is too small for "
                f"{len(channels)} blocks of 2× pooling."
            )
        has_bias = _layer_bias(bias, batch_norm, f"conv block {i + 1}")
        layers.append(
            StackedConv(
                members,
                c_in,
                c_out,
                kernel_size,
                dims=dims,
                padding=kernel_size // 2,
                bias=has_bias,
                device=device,
                dtype=dtype,
            )
        )
        block = [_activation(activation)]
        if batch_norm is not None:
            bn = _ChannelBatchNorm(members, c_out, dims, device=device, dtype=dtype)
            block.insert(0 if batch_norm == "before" else 1, bn)
        layers += [*block, nn.MaxPool1d(2) if dims == 1 else nn.MaxPool2d(2)]
        c_in, spatial = c_out, [s // 2 for s in spatial]
    layers.append(_Flatten(members))
    num_classes = check_int(fn, "num_classes", num_classes, low=1)
    flat = c_in * math.prod(spatial)
    layers.append(
        StackedLinear(members, flat, num_classes, bias is not False, device=device, dtype=dtype)
    )
    return Stack(layers, members)


def _check_member(stack: Stack, m: int, fn: str) -> int:
    m = check_int(fn, "m", m, low=0)
    if m >= stack.members:
        raise ValueError(
            f"{fn}: member {m} does not exist; the stack has {stack.members} members "
            f"(0…{stack.members - 1})."
        )
    return m


def to_module(stack: Stack, m: int) -> nn.Sequential:
    """Member ``m`` as a plain ``nn.Sequential`` (a copy, batch-norm running stats included).

    Example:
        >>> net = mlp([3, 4, 2], "tanh", batch_norm="after", members=2, dtype=torch.float64)
        >>> x = torch.randn(5, 3, dtype=torch.float64)
        >>> torch.allclose(net(x)[1], to_module(net, 1)(x), rtol=1e-12, atol=1e-12)
        True

    (The stack and the copy multiply in different orders, so they agree to rounding:
    a few units in the last place, which batch norm over 5 examples can magnify.)
    """
    m = _check_member(stack, m, "to_module")
    plain = [
        layer.member(m) if isinstance(layer, _MemberLayer) else copy.deepcopy(layer)
        for layer in stack.layers
    ]
    return nn.Sequential(*plain).train(stack.training)


def load_member(stack: Stack, m: int, module: nn.Module) -> None:
    """Copy a plain module's parameters and buffers into member ``m`` of ``stack``.

    ``module`` must have the architecture of ``to_module(stack, m)``.

    Example:
        >>> net = mlp([3, 4, 2], members=2)
        >>> plain = to_module(net, 0)
        >>> load_member(net, 1, plain)
        >>> torch.equal(net.layers[0].weight[1], plain[0].weight)
        True
    """
    m = _check_member(stack, m, "load_member")
    plain = list(module.children()) if isinstance(module, nn.Sequential) else [module]
    if len(plain) != len(stack.layers):
        raise ValueError(
            f"load_member: the module has {len(plain)} layers, the stack {len(stack.layers)}. "
            "It must have the architecture of to_module(stack, m)."
        )
    with torch.no_grad():
        for i, (layer, p) in enumerate(zip(stack.layers, plain, strict=True)):
            if not isinstance(layer, _MemberLayer):
                if type(p) is not type(layer) or repr(p) != repr(layer):
                    raise ValueError(f"load_member: layer {i} is {p!r}, expected {layer!r}.")
                continue
            expected = layer.member(0)
            if type(p) is not type(expected) or repr(p) != repr(expected):
                raise ValueError(f"load_member: layer {i} is {p!r}, expected {expected!r}.")
            theirs = _member_tensors(p)
            for name, t in _member_tensors(layer).items():
                t[m].copy_(theirs[name])


def from_modules(modules: Sequence[nn.Sequential]) -> Stack:
    """A stack whose member m is a copy of ``modules[m]``.

    Each module must be an ``nn.Sequential`` of the layers :func:`mlp` or :func:`cnn`
    build (Linear, Conv1d/2d, BatchNorm1d/2d, the activations, MaxPool, Flatten), all
    with the same architecture.

    Example:
        >>> plain = [nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)) for _ in range(4)]
        >>> stack = from_modules(plain)
        >>> x = torch.randn(6, 2)
        >>> torch.allclose(stack(x)[2], plain[2](x))
        True
    """
    fn = "from_modules"
    if not modules:
        raise ValueError(param_message(fn, "modules", "a non-empty list of nn.Sequential", modules))
    first = modules[0]
    if not isinstance(first, nn.Sequential):
        raise TypeError(param_message(fn, "modules", "nn.Sequential modules", type(first).__name__))
    members = len(modules)
    layers: list[nn.Module] = []
    conv_dims: Literal[0, 1, 2] = 0  # > 0 while in the convolutional part
    p0 = next(iter(first.parameters()), None)
    device, dtype = (None, None) if p0 is None else (p0.device, p0.dtype)
    for i, layer in enumerate(first):
        if isinstance(layer, nn.Linear):
            layers.append(
                StackedLinear(
                    members,
                    layer.in_features,
                    layer.out_features,
                    layer.bias is not None,
                    device=device,
                    dtype=dtype,
                )
            )
        elif isinstance(layer, nn.Conv1d | nn.Conv2d):
            conv_dims = 1 if isinstance(layer, nn.Conv1d) else 2
            k, pad = layer.kernel_size[0], layer.padding
            if (
                layer.groups != 1
                or layer.stride != (1,) * conv_dims
                or isinstance(pad, str)
                or len(set(pad)) != 1
            ):
                raise ValueError(
                    f"{fn}: layer {i} {layer!r} is not supported (groups, stride or padding)."
                )
            assert conv_dims  # set just above
            layers.append(
                StackedConv(
                    members,
                    layer.in_channels,
                    layer.out_channels,
                    k,
                    dims=conv_dims,
                    padding=pad[0],
                    bias=layer.bias is not None,
                    device=device,
                    dtype=dtype,
                )
            )
        elif isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
            opts = {
                "eps": layer.eps,
                "momentum": layer.momentum,
                "affine": layer.affine,
                "track_running_stats": layer.track_running_stats,
                "device": device,
                "dtype": dtype,
            }
            bn = (
                _ChannelBatchNorm(members, layer.num_features, conv_dims, **opts)
                if conv_dims
                else _FeatureBatchNorm(members, layer.num_features, **opts)
            )
            layers.append(bn)
        elif isinstance(layer, nn.Flatten):
            layers.append(_Flatten(members))
            conv_dims = 0
        elif isinstance(layer, _SHARED):
            for other in modules[1:]:
                if repr(other[i]) != repr(layer):
                    raise ValueError(
                        f"{fn}: layer {i} differs between members: {layer!r} vs {other[i]!r}."
                    )
            layers.append(copy.deepcopy(layer))
        else:
            raise ValueError(
                f"{fn}: layer {i} ({type(layer).__name__}) is not supported; supported: "
                "Linear, Conv1d/2d, BatchNorm1d/2d, Flatten, MaxPool, activations."
            )
    stack = Stack(layers, members)
    for m, module in enumerate(modules):
        load_member(stack, m, module)
    return stack.train(first.training)


def init_members(
    stack: Stack,
    weight: initmod.SpecLike | Sequence[initmod.SpecLike],
    bias: initmod.SpecLike | Sequence[initmod.SpecLike] | None = "zeros",
    seeds: int | Sequence[int] = 0,
) -> list[list[initmod.InitRecord]]:
    """Initialize each member with its own spec and seed, as :func:`initlab.init.apply`
    would initialize that member's plain ``nn.Sequential`` with
    ``generator=torch.Generator().manual_seed(seed)``.

    Args:
        stack: the stack to initialize in place.
        weight: one spec for all members, or one per member.
        bias: likewise, or None to keep the biases.
        seeds: one int (members get seed, seed+1, …) or one per member.

    Returns:
        The :func:`initlab.init.apply` records of every member.

    Example:
        >>> net = mlp([2, 10, 5, 1], members=3)
        >>> _ = init_members(net, ["zeros", "normal(std=10)", "he_normal"], seeds=[3, 3, 3])
        >>> net.layers[0].weight[0].abs().max().item()
        0.0
    """
    fn = "init_members"
    members = stack.members

    def per_member(value: Any, name: str) -> list[Any]:
        if isinstance(value, str | initmod.InitSpec | int) or value is None:
            return [value] * members
        values = list(value)
        if len(values) != members:
            raise ValueError(
                param_message(fn, name, f"one value or {members} (one per member)", value)
            )
        return values

    specs = [
        (initmod.parse_spec(w), None if b is None else initmod.parse_spec(b))
        for w, b in zip(per_member(weight, "weight"), per_member(bias, "bias"), strict=True)
    ]
    if isinstance(seeds, int):
        seed_list = [seeds + m for m in range(members)]
    else:
        seed_list = [check_int(fn, "seeds", s) for s in per_member(seeds, "seeds")]
    # One plain module serves every member: member m's tensors are copied into it (a
    # bias kept with bias=None stays the member's own), it is initialized, and the result
    # is set aside. Only when every member's spec has worked are they all written back:
    # an error in any member's spec leaves the whole stack unchanged. (A module per
    # member cost 4 ms each: 4 s for a study's stack of 1,000.)
    device = next(stack.parameters()).device
    plain = to_module(stack, 0)
    pairs = [
        (_member_tensors(layer), p)
        for layer, p in zip(stack.layers, plain.children(), strict=True)
        if isinstance(layer, _MemberLayer)
    ]
    staged: list[list[dict[str, Tensor]]] = []
    records = []
    with torch.no_grad():
        for m, ((w, b), seed) in enumerate(zip(specs, seed_list, strict=True)):
            for ours, p in pairs:
                for name, t in _member_tensors(p).items():
                    t.copy_(ours[name][m])
            generator = torch.Generator(device=device).manual_seed(seed)
            records.append(initmod.apply(plain, w, b, generator=generator))
            staged.append([{k: t.clone() for k, t in _member_tensors(p).items()} for _, p in pairs])
        for m, member in enumerate(staged):
            for (ours, _), values in zip(pairs, member, strict=True):
                for name, t in values.items():
                    ours[name][m].copy_(t)
    return records
