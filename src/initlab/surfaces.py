"""What a model computes over a plane: its output over the input plane (decision maps) and
its loss over a plane of parameter space (loss slices).

These are computed here, as tensors, and drawn by :mod:`initlab.report` or a lesson: the
figures never run a model.

Example:
    >>> from initlab import models
    >>> net = models.mlp([2, 4, 1], "tanh", members=3)
    >>> grid = decision_map(net, torch.randn(50, 2), resolution=20)
    >>> grid.prob.shape  # (members, rows: y, columns: x)
    torch.Size([3, 20, 20])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from initlab import models
from initlab._validation import check_int, param_message
from initlab.models import Stack

__all__ = ["DecisionMap", "decision_map", "filter_normalized_direction", "loss_slice"]


@dataclass(frozen=True)
class DecisionMap:
    """Each member's probability of class 1 on a grid over the input plane (CPU tensors)."""

    gx: Tensor  # (R,) the grid's x coordinates
    gy: Tensor  # (R,) its y coordinates
    prob: Tensor  # (M, R, R): sigmoid of the first output at (gy[i], gx[j]) is prob[m, i, j]


def decision_map(
    model: Stack, x: Tensor, *, resolution: int = 200, margin: float = 0.4
) -> DecisionMap:
    """Each member's sigmoid output over a grid covering the points ``x`` (N, 2).

    The grid spans each coordinate's range of ``x`` widened by ``margin``; the model runs in
    eval mode (batch norm on its running statistics) and is left in the mode it was in.

    Args:
        model: a stack whose first output is a logit of class 1 (a binary classifier).
        x: (N, 2) points the grid must cover.
        resolution: grid points per axis (≥ 2).
        margin: how far the grid reaches beyond the points, in input units.

    Returns:
        A :class:`DecisionMap` on the CPU.

    Raises:
        ValueError: ``x`` is not (N, 2) with N ≥ 1; a resolution below 2.
    """
    if x.dim() != 2 or x.shape[1] != 2 or not x.shape[0]:
        raise ValueError(
            param_message("decision_map", "x", "points of shape (N, 2), N ≥ 1", tuple(x.shape))
        )
    check_int("decision_map", "resolution", resolution, low=2)
    param = next(model.parameters())
    points = x.detach().to(param.dtype).cpu()
    lo, hi = points.min(0).values - margin, points.max(0).values + margin
    gx = torch.linspace(float(lo[0]), float(hi[0]), resolution, dtype=points.dtype)
    gy = torch.linspace(float(lo[1]), float(hi[1]), resolution, dtype=points.dtype)
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1).reshape(-1, 2)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(grid.to(param.device))[..., 0]
    finally:
        model.train(was_training)
    prob = torch.sigmoid(logits).reshape(model.members, resolution, resolution).cpu()
    return DecisionMap(gx, gy, prob)


def filter_normalized_direction(
    weights: Mapping[str, Tensor], generator: torch.Generator
) -> dict[str, Tensor]:
    """A random direction in parameter space, normalized filter by filter (Li et al. 2018).

    Each weight tensor (out, in, …) gets Gaussian entries g, then each of its rows i (one
    unit's incoming weights: a "filter") is rescaled to the norm of the same row of the
    weights w:

        d_i = g_i · ‖w_i‖ / ‖g_i‖

    so that the direction's size matches the weights' size unit by unit and a ReLU net's
    rescaling symmetry cannot distort a slice along it. Biases (tensors of ≤ 1 dim) get a
    zero direction: they are not moved.

    Args:
        weights: parameter name → tensor of one network (one member: no member dim).
        generator: the random source, on the weights' device; the tensors draw from it in
            the mapping's order.

    Returns:
        Parameter name → direction of the same shape, dtype and device.

    Raises:
        TypeError: a value of ``weights`` that is not a tensor.

    References:
        H. Li, Z. Xu, G. Taylor, C. Studer and T. Goldstein, "Visualizing the Loss
        Landscape of Neural Nets", NeurIPS 2018, §4.

    Example:
        >>> w = {"w": torch.tensor([[3.0, 4.0], [0.0, 1.0]]), "b": torch.ones(2)}
        >>> d = filter_normalized_direction(w, torch.Generator().manual_seed(0))
        >>> d["w"].norm(dim=1).tolist(), d["b"].tolist()
        ([5.0, 1.0], [0.0, 0.0])
    """
    direction = {}
    for name, w in weights.items():
        if not isinstance(w, Tensor):
            raise TypeError(
                param_message(
                    "filter_normalized_direction", f"weights[{name!r}]", "a tensor", type(w)
                )
            )
        if w.dim() <= 1:
            direction[name] = torch.zeros_like(w)
            continue
        d = torch.randn(w.shape, generator=generator, device=w.device, dtype=w.dtype)
        rows = d.reshape(d.shape[0], -1).norm(dim=1)
        target = w.reshape(w.shape[0], -1).norm(dim=1)
        # A Gaussian row of norm 0 has probability 0; the clamp only keeps 0/0 out.
        scale = (target / rows.clamp_min(torch.finfo(d.dtype).tiny)).reshape(
            -1, *[1] * (w.dim() - 1)
        )
        direction[name] = d * scale
    return direction


def loss_slice(
    net: Stack,
    x: Tensor,
    y: Tensor,
    directions: tuple[Mapping[str, Tensor], Mapping[str, Tensor]],
    alphas: Tensor,
    betas: Tensor,
    *,
    chunk: int = 256,
) -> Tensor:
    """The cross-entropy of a one-member MLP stack over a plane through its weights θ*:

        L(α, β) = (1/N) Σₙ CE(f(xₙ; θ* + α·d₁ + β·d₂), yₙ)

    at every (α, β) of the grid ``alphas`` × ``betas``. Every grid point is a member of one
    stack of the same architecture, computed with one batched forward pass per ``chunk``
    members. The net itself is not changed, nor is torch's global random generator.

    Args:
        net: a stack with one member (θ*): an MLP as :func:`initlab.models.mlp` builds it
            without batch norm (Linear layers and one activation).
        x: (N, in) the examples the loss is measured on (computed in the net's dtype).
        y: (N,) their integer class labels.
        directions: (d₁, d₂), parameter name → direction for every parameter of the net,
            as from :func:`filter_normalized_direction`.
        alphas: (A,) coordinates along d₁ (taken in the net's dtype).
        betas: (B,) coordinates along d₂ (likewise).
        chunk: members per forward pass (memory ∝ chunk · hidden width · N).

    Returns:
        (B, A) losses: row j is β = betas[j], column i is α = alphas[i].

    Raises:
        TypeError: ``net`` is not a :class:`~initlab.models.Stack`.
        ValueError: a stack of more than one member, or not such an MLP; a direction
            missing a parameter or of another shape; ``alphas``, ``betas`` or ``y`` not
            1-D; a ``chunk`` below 1.

    References:
        H. Li, Z. Xu, G. Taylor, C. Studer and T. Goldstein, "Visualizing the Loss
        Landscape of Neural Nets", NeurIPS 2018.

    Example:
        >>> from initlab import models
        >>> net = models.mlp([4, 8, 3], "relu")
        >>> theta = {name: p.detach()[0] for name, p in net.named_parameters()}
        >>> g = torch.Generator().manual_seed(0)
        >>> d = (filter_normalized_direction(theta, g), filter_normalized_direction(theta, g))
        >>> x, y = torch.randn(10, 4, generator=g), torch.tensor([0, 1, 2, 0, 1] * 2)
        >>> losses = loss_slice(net, x, y, d, torch.linspace(-1, 1, 5), torch.linspace(-1, 1, 3))
        >>> plain = models.to_module(net, 0)  # (α, β) = (0, 0), at [1, 2], is θ* itself
        >>> losses.shape, torch.allclose(losses[1, 2], F.cross_entropy(plain(x), y))
        (torch.Size([3, 5]), True)
    """
    widths, activation, bias = _mlp_parts(net)
    theta = {name: p.detach()[0] for name, p in net.named_parameters()}
    chunk = _check_slice(theta, y, directions, alphas, betas, chunk)
    param = next(iter(theta.values()))
    x = x.detach().to(device=param.device, dtype=param.dtype)
    y = y.to(param.device)
    d1, d2 = directions
    alphas, betas = (t.to(device=param.device, dtype=param.dtype) for t in (alphas, betas))
    grid_a, grid_b = torch.meshgrid(alphas, betas, indexing="xy")  # (B, A) each
    flat_a, flat_b = grid_a.reshape(-1), grid_b.reshape(-1)
    losses = []
    for start in range(0, flat_a.numel(), chunk):
        a, b = flat_a[start : start + chunk], flat_b[start : start + chunk]
        members = a.numel()
        # Built on the meta device, so that no initial values are drawn (they are
        # overwritten next, and drawing them would move the user's global generator).
        grid = models.mlp(
            widths, activation, bias=bias, members=members, device="meta", dtype=param.dtype
        ).to_empty(device=param.device)
        with torch.no_grad():
            for name, p in grid.named_parameters():
                view = (members,) + (1,) * theta[name].dim()
                p.copy_(theta[name] + a.view(view) * d1[name] + b.view(view) * d2[name])
            logits = grid.logits(x)  # (members, classes, N)
            loss = F.cross_entropy(logits, y.expand(members, -1), reduction="none").mean(dim=1)
        losses.append(loss)
    return torch.cat(losses).reshape(grid_a.shape)


def _mlp_parts(net: Stack) -> tuple[list[int], str, bool]:
    """The widths, activation and bias of an MLP stack, to build another of its shape."""
    expected = "an MLP as models.mlp builds it (Linear layers and one activation)"
    if not isinstance(net, Stack):
        raise TypeError(param_message("loss_slice", "net", "a Stack", type(net).__name__))
    if net.members != 1:
        raise ValueError(
            param_message(
                "loss_slice",
                "net",
                "a stack of one member (θ*)",
                f"{net.members} members",
                "Slice one member: models.from_modules([models.to_module(net, m)]).",
            )
        )
    layers = list(net.layers)
    linears = [m for m in layers if isinstance(m, models.StackedLinear)]
    between = {repr(m) for m in layers if not isinstance(m, models.StackedLinear)}
    names = [n for n, build in models.ACTIVATIONS.items() if {repr(build())} == between]
    biases = {m.bias is not None for m in linears}
    shape_ok = all(
        isinstance(m, models.StackedLinear) == (i % 2 == 0) for i, m in enumerate(layers)
    )
    if not shape_ok or len(biases) != 1 or (between and not names):
        raise ValueError(
            param_message("loss_slice", "net", expected, [type(m).__name__ for m in layers])
        )
    widths = [linears[0].in_features] + [m.out_features for m in linears]
    return widths, names[0] if names else "identity", biases == {True}


def _check_slice(
    theta: Mapping[str, Tensor],
    y: Tensor,
    directions: tuple[Mapping[str, Tensor], Mapping[str, Tensor]],
    alphas: Tensor,
    betas: Tensor,
    chunk: int,
) -> int:
    """Check loss_slice's arguments other than the net; returns ``chunk``."""
    for what, t in (("alphas", alphas), ("betas", betas), ("y", y)):
        if t.dim() != 1:
            raise ValueError(param_message("loss_slice", what, "a 1-D tensor", tuple(t.shape)))
    for k, direction in enumerate(directions, start=1):
        for name, w in theta.items():
            got = direction.get(name)
            if got is None or got.shape != w.shape:
                raise ValueError(
                    param_message(
                        "loss_slice",
                        "directions",
                        f"d{k}[{name!r}] of shape {tuple(w.shape)} (the parameter's)",
                        None if got is None else tuple(got.shape),
                        "Make each with filter_normalized_direction(theta, generator), theta being "
                        "{name: p.detach()[0] for name, p in net.named_parameters()}.",
                    )
                )
    return check_int("loss_slice", "chunk", chunk, low=1)
