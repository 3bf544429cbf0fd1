"""Batch normalization for a stack of M independent members, functional and as a module.

In training, each feature is normalized over the mini-batch with the batch mean and the
*biased* batch variance, then scaled by γ and shifted by β:

    y = (x − mean) / √(var + ε) · γ + β

and running averages are updated with the *unbiased* variance, as torch does:

    running = (1 − momentum) · running + momentum · batch_statistic

(``momentum=None`` means the cumulative average, momentum = 1 / batches seen). At
inference the running averages replace the batch statistics, so the output of a sample
is deterministic and independent of the rest of the batch.

Keras writes the same update the other way round: its ``momentum=0.99`` is the weight of
the *old* value, i.e. ``momentum=0.01`` here (and in torch).

Every member has its own γ, β and running statistics, and its result is exactly what a
``torch.nn.BatchNorm1d/2d`` would give on that member alone.

Example:
    >>> import torch
    >>> bn = StackedBatchNorm(members=3, num_features=4)
    >>> y = bn(torch.randn(3, 16, 4))  # (members, batch, features)
    >>> y.shape, bn.running_mean.shape
    (torch.Size([3, 16, 4]), torch.Size([3, 4]))
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from initlab import _blas
from initlab._validation import check_int, check_real, param_message

_blas.strict()  # before MKL first runs: see initlab._blas

__all__ = ["StackedBatchNorm", "batch_norm"]


def _stat_shape(x: Tensor, member_dim: int, channel_dim: int) -> list[int]:
    shape = [1] * x.dim()
    shape[member_dim] = x.shape[member_dim]
    shape[channel_dim] = x.shape[channel_dim]
    return shape


def _check_stat(name: str, t: Tensor | None, members: int, channels: int) -> None:
    if t is not None and tuple(t.shape) != (members, channels):
        raise ValueError(
            param_message(
                "batch_norm",
                name,
                f"of shape (members, channels) = ({members}, {channels}) to match the input",
                tuple(t.shape),
                "Check num_features against the input's channel dimension.",
            )
        )


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
    *,
    num_batches_tracked: Tensor | None = None,
    update: Tensor | None = None,
    member_dim: int = 0,
    channel_dim: int = 2,
) -> Tensor:
    """Batch normalization of a stack: each member and channel over its own batch.

    y = (x − E[x]) / √(Var[x] + ε) · γ + β, with E and the biased Var over every
    dimension but the member and channel dimensions (batch and spatial) in training,
    and the running averages at inference. In training the running averages are updated
    in place with the unbiased variance (n/(n−1)·Var, n values per channel).

    Args:
        x: the input, by default (M, B, C) or (M, B, C, *spatial).
        running_mean: (M, C) running means, updated in place in training; None to use
            batch statistics always (torch's ``track_running_stats=False``).
        running_var: (M, C) running variances, likewise.
        weight: (M, C) γ, or None for 1.
        bias: (M, C) β, or None for 0.
        training: batch statistics (and update the running ones) or running statistics.
        momentum: weight of the new batch statistic in the running average; None for the
            cumulative average (needs ``num_batches_tracked``). Keras's 0.99 is 0.01 here.
        eps: added to the variance, ≥ 0.
        num_batches_tracked: (M,) integer counts, incremented in place in training.
        update: (M,) bool, which members update their running statistics (a frozen or
            diverged member keeps its own); None for all.
        member_dim: the member dimension of ``x``.
        channel_dim: the channel dimension of ``x``.

    Returns:
        The normalized tensor, the shape of ``x``.

    Raises:
        ValueError: one value per channel in training (batch size 1 with no spatial
            dims), statistics whose shape does not match the input, eps < 0, momentum
            outside [0, 1], momentum None without ``num_batches_tracked``.

    References:
        Ioffe & Szegedy, *Batch Normalization: Accelerating Deep Network Training by
        Reducing Internal Covariate Shift*, 2015.

    Example:
        >>> x = torch.randn(2, 8, 3, dtype=torch.float64)
        >>> rm, rv = torch.zeros(2, 3, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64)
        >>> y = batch_norm(x, rm, rv, training=True)
        >>> bool(y.mean(dim=1).abs().max() < 1e-12)
        True
        >>> torch.allclose(rm, 0.1 * x.mean(dim=1))
        True
    """
    fn = "batch_norm"
    eps = check_real(fn, "eps", eps, low=0.0)
    if momentum is not None:
        momentum = check_real(fn, "momentum", momentum, low=0.0, high=1.0)
    if x.dim() < 3:
        raise ValueError(
            param_message(fn, "x", "a stacked input (M, B, C, *spatial)", tuple(x.shape))
        )
    member_dim, channel_dim = member_dim % x.dim(), channel_dim % x.dim()
    members, channels = x.shape[member_dim], x.shape[channel_dim]
    for name, t in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        _check_stat(name, t, members, channels)
    dims = [d for d in range(x.dim()) if d not in (member_dim, channel_dim)]
    n = math.prod(x.shape[d] for d in dims)
    shape = _stat_shape(x, member_dim, channel_dim)
    swapped = member_dim > channel_dim  # then a keepdim statistic squeezes to (C, M)

    def broadcast(t: Tensor) -> Tensor:  # (M, C) → broadcastable against x
        return (t.T if swapped else t).reshape(shape)

    def per_member(t: Tensor) -> Tensor:  # keepdim statistic → (M, C)
        return t.reshape(channels, members).T if swapped else t.reshape(members, channels)

    if n <= 1 and training:
        raise ValueError(
            f"batch_norm needs more than 1 value per channel in training. Got input "
            f"shape {tuple(x.shape)}: {n} value per channel (batch size "
            f"{x.shape[dims[0]] if dims else 1}). Use a batch size ≥ 2, or eval mode."
        )
    if (member_dim, channel_dim) in ((0, 1), (1, 2)) and momentum is not None and update is None:
        # Member and channel dims are adjacent, so the stack is one ordinary batch norm
        # over M·C channels: torch's fused kernel, several times faster than the formula.
        merged = x.reshape(1 if member_dim == 0 else x.shape[0], members * channels, -1)
        y = torch.nn.functional.batch_norm(
            merged,
            None if running_mean is None else running_mean.view(-1),
            None if running_var is None else running_var.view(-1),
            None if weight is None else weight.reshape(-1),
            None if bias is None else bias.reshape(-1),
            training or running_mean is None or running_var is None,
            momentum,
            eps,
        )
        if training and running_mean is not None and num_batches_tracked is not None:
            with torch.no_grad():
                num_batches_tracked.add_(1)
        return y.reshape(x.shape)
    if training or running_mean is None or running_var is None:
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        if training and running_mean is not None and running_var is not None:
            _update_running(
                running_mean,
                running_var,
                per_member(mean.detach()),
                per_member(var.detach()),
                n,
                momentum,
                num_batches_tracked,
                update,
            )
    else:
        mean, var = broadcast(running_mean), broadcast(running_var)
    y = (x - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * broadcast(weight)
    if bias is not None:
        y = y + broadcast(bias)
    return y


def _update_running(
    running_mean: Tensor,
    running_var: Tensor,
    mean: Tensor,
    var: Tensor,
    n: int,
    momentum: float | None,
    num_batches_tracked: Tensor | None,
    update: Tensor | None,
) -> None:
    with torch.no_grad():
        if num_batches_tracked is not None:
            step = torch.ones_like(num_batches_tracked)
            if update is not None:
                step = step * update.to(step.dtype)
            num_batches_tracked.add_(step)
        factor: Tensor | float
        if momentum is None:
            if num_batches_tracked is None:
                raise ValueError(
                    "batch_norm with momentum=None (cumulative average) needs "
                    "num_batches_tracked, the (M,) count of batches seen."
                )
            factor = 1.0 / num_batches_tracked.clamp(min=1).to(running_mean.dtype)[:, None]
        else:
            factor = momentum
        unbiased = var * (n / (n - 1))
        new_mean = running_mean + factor * (mean - running_mean)
        new_var = running_var + factor * (unbiased - running_var)
        if update is not None:
            keep = update[:, None]
            new_mean = torch.where(keep, new_mean, running_mean)
            new_var = torch.where(keep, new_var, running_var)
        running_mean.copy_(new_mean)
        running_var.copy_(new_var)


class StackedBatchNorm(nn.Module):
    """Batch norm for M members at once: γ, β and running statistics of shape (M, C).

    Input (M, B, C) or (M, B, C, *spatial) by default; ``member_dim`` and ``channel_dim``
    say where they are for other layouts (initlab's MLP keeps activations as (M, C, B)).
    ``train()`` / ``eval()`` choose batch or running statistics, as for any nn.Module.

    Args:
        members: M, the number of members.
        num_features: C, the channels per member.
        eps: added to the variance.
        momentum: weight of the new batch statistic (None: cumulative average). Keras's
            0.99 is 0.01 here.
        affine: learn γ (init 1) and β (init 0).
        track_running_stats: keep running averages for inference.
        member_dim: the input's member dimension.
        channel_dim: the input's channel dimension.

    Example:
        >>> bn = StackedBatchNorm(2, 3).eval()
        >>> x = torch.randn(2, 5, 3)
        >>> torch.allclose(bn(x)[:, :1], bn(x[:, :1]))  # eval: each sample on its own
        True
    """

    running_mean: Tensor | None
    running_var: Tensor | None
    num_batches_tracked: Tensor | None

    def __init__(
        self,
        members: int,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        member_dim: int = 0,
        channel_dim: int = 2,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fn = "StackedBatchNorm"
        self.members = check_int(fn, "members", members, low=1)
        self.num_features = check_int(fn, "num_features", num_features, low=1)
        self.eps = check_real(fn, "eps", eps, low=0.0)
        self.momentum = (
            None if momentum is None else check_real(fn, "momentum", momentum, low=0, high=1)
        )
        self.affine = affine
        self.track_running_stats = track_running_stats
        self.member_dim, self.channel_dim = member_dim, channel_dim
        kw = {"device": device, "dtype": dtype}
        shape = (members, num_features)
        if affine:
            self.weight: nn.Parameter | None = nn.Parameter(torch.ones(shape, **kw))  # type: ignore[arg-type]
            self.bias: nn.Parameter | None = nn.Parameter(torch.zeros(shape, **kw))  # type: ignore[arg-type]
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(shape, **kw))  # type: ignore[arg-type]
            self.register_buffer("running_var", torch.ones(shape, **kw))  # type: ignore[arg-type]
            self.register_buffer(
                "num_batches_tracked", torch.zeros(members, dtype=torch.long, device=device)
            )
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen."""
        if self.running_mean is not None and self.running_var is not None:
            self.running_mean.zero_()
            self.running_var.fill_(1)
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.zero_()

    def forward(self, x: Tensor, update: Tensor | None = None) -> Tensor:
        """Normalize ``x``; ``update`` (M,) bool masks which members update running stats."""
        if x.shape[self.channel_dim] != self.num_features:
            raise ValueError(
                f"StackedBatchNorm expected {self.num_features} channels at dim "
                f"{self.channel_dim} of the input. Got input shape {tuple(x.shape)}."
            )
        return batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training,
            self.momentum,
            self.eps,
            num_batches_tracked=self.num_batches_tracked,
            update=update,
            member_dim=self.member_dim,
            channel_dim=self.channel_dim,
        )

    def extra_repr(self) -> str:
        return (
            f"members={self.members}, num_features={self.num_features}, eps={self.eps}, "
            f"momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )
