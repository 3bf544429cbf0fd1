"""Decision maps and loss slices against each member (or grid point) evaluated alone.

References independent of the code under test: every map and slice value is recomputed
with the plain ``nn.Sequential`` of :func:`initlab.models.to_module` in float64, one point
or one parameter vector at a time; the grid's coordinates against NumPy's ``linspace``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from initlab import models
from initlab.surfaces import decision_map, filter_normalized_direction, loss_slice

F64 = torch.float64


# ----------------------------------------------------------------------------- decision maps


@pytest.mark.numerics
def test_decision_map_is_each_member_alone_in_float64() -> None:
    net = models.mlp([2, 6, 5, 1], "tanh", batch_norm="after", members=3, dtype=F64)
    with torch.no_grad():  # move the running statistics away from their (0, 1) start
        for _ in range(3):
            net(torch.randn(3, 64, 2, dtype=F64) * 2 + 0.5)
    before = [b.clone() for b in net.buffers()]
    x = torch.randn(40, 2, dtype=F64)
    grid = decision_map(net, x, resolution=9, margin=0.25)
    assert net.training  # left in the mode it was in …
    assert all(torch.equal(a, b) for a, b in zip(before, net.buffers(), strict=True))  # … in eval
    points = x.numpy()
    for axis, coords in ((0, grid.gx), (1, grid.gy)):
        lo, hi = points[:, axis].min() - 0.25, points[:, axis].max() + 0.25
        np.testing.assert_allclose(coords.numpy(), np.linspace(lo, hi, 9), rtol=0, atol=1e-15)
    assert grid.prob.shape == (3, 9, 9) and grid.prob.dtype == F64
    cells = [(float(grid.gx[j]), float(grid.gy[i])) for i in range(9) for j in range(9)]
    for m in range(3):
        plain = models.to_module(net, m).eval()
        with torch.no_grad():
            expected = torch.sigmoid(plain(torch.tensor(cells, dtype=F64))[:, 0]).reshape(9, 9)
        # Stacked and plain products (and batch norms) round in different orders: measured
        # max |diff| 1.1e-16 (AVX-512) and 2.2e-16 (AVX2), 1 and 2 threads, over 20 seeds.
        torch.testing.assert_close(grid.prob[m], expected, rtol=0, atol=1e-15)


def test_decision_map_refuses_bad_points_and_resolution() -> None:
    net = models.mlp([2, 3, 1], "relu", members=2)
    for bad in (torch.zeros(5, 3), torch.zeros(0, 2), torch.zeros(5)):
        with pytest.raises(ValueError, match=r"points of shape \(N, 2\)"):
            decision_map(net, bad)
    with pytest.raises(ValueError, match="'resolution' parameter of decision_map"):
        decision_map(net, torch.zeros(5, 2), resolution=1)


# ----------------------------------------------------------------------------- directions


def test_filter_normalized_direction_matches_each_row() -> None:
    generator = torch.Generator().manual_seed(3)
    weights = {"w": torch.randn(5, 7), "b": torch.randn(5), "v": torch.randn(3, 5)}
    d = filter_normalized_direction(weights, generator)
    for name in ("w", "v"):
        torch.testing.assert_close(d[name].norm(dim=1), weights[name].norm(dim=1))
    assert torch.count_nonzero(d["b"]) == 0


def test_filter_normalized_direction_of_a_conv_filter_bank() -> None:
    # A conv weight (out, in, k): a "filter" is everything one output channel reads.
    weights = {"conv": torch.randn(4, 3, 5, dtype=F64)}
    d = filter_normalized_direction(weights, torch.Generator().manual_seed(0))["conv"]
    assert d.shape == (4, 3, 5) and d.dtype == F64
    expected = [float(weights["conv"][i].norm()) for i in range(4)]
    assert [float(d[i].norm()) for i in range(4)] == pytest.approx(expected, rel=1e-14)
    with pytest.raises(TypeError, match="must be a tensor"):
        filter_normalized_direction({"w": [[1.0]]}, torch.Generator())  # type: ignore[dict-item]


# ----------------------------------------------------------------------------- loss slices


def test_loss_slice_centre_is_the_plain_network_loss() -> None:
    torch.manual_seed(0)  # the data and the net's torch-default init: any values do
    net = models.mlp([6, 8, 3], "relu", members=1)
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    theta = {n: p.detach()[0] for n, p in net.named_parameters()}
    generator = torch.Generator().manual_seed(0)
    dirs = (filter_normalized_direction(theta, generator),) * 2
    axis = torch.tensor([-0.5, 0.0, 0.5])
    grid = loss_slice(net, x, y, dirs, axis, axis, chunk=4)
    plain = models.to_module(net, 0)
    torch.testing.assert_close(grid[1, 1], F.cross_entropy(plain(x), y))
    # α = β = 0.5 along the same direction twice is α = 1 along it.
    names = [name for name, _ in net.named_parameters()]  # the same order as plain's
    with torch.no_grad():
        for p, name in zip(plain.parameters(), names, strict=True):
            p.copy_(theta[name] + dirs[0][name])
    torch.testing.assert_close(grid[2, 2], F.cross_entropy(plain(x), y))


@pytest.mark.numerics
@pytest.mark.parametrize(("activation", "bias"), [("tanh", True), ("relu", False)])
def test_loss_slice_is_each_grid_point_alone_in_float64(activation: str, bias: bool) -> None:
    net = models.mlp([5, 7, 6, 4], activation, bias=bias, members=1, dtype=F64)
    x, y = torch.randn(30, 5, dtype=F64), torch.randint(0, 4, (30,))
    theta = {n: p.detach()[0].clone() for n, p in net.named_parameters()}
    d1 = filter_normalized_direction(theta, torch.Generator().manual_seed(1))
    d2 = filter_normalized_direction(theta, torch.Generator().manual_seed(2))
    alphas, betas = torch.tensor([-1.0, -0.25, 0.5], dtype=F64), torch.tensor([-0.5, 0.75])
    rng = torch.get_rng_state()
    grid = loss_slice(net, x, y, (d1, d2), alphas, betas, chunk=4)  # chunks of 4 and 2
    assert torch.equal(torch.get_rng_state(), rng)  # the global generator is not drawn from
    assert all(torch.equal(theta[n], p[0]) for n, p in net.named_parameters())  # nor θ moved
    assert grid.shape == (2, 3) and grid.dtype == F64
    plain = models.to_module(net, 0)
    names = [name for name, _ in net.named_parameters()]  # the same order as plain's
    for j, b in enumerate(betas.tolist()):
        for i, a in enumerate(alphas.tolist()):
            with torch.no_grad():
                for p, name in zip(plain.parameters(), names, strict=True):
                    p.copy_(theta[name] + a * d1[name] + b * d2[name])
                expected = F.cross_entropy(plain(x), y)
            # Stacked vs plain rounding: measured max |diff| 6.7e-16 (AVX-512 and AVX2
            # kernels, 1 and 2 threads, over 20 seeds).
            torch.testing.assert_close(grid[j, i], expected, rtol=0, atol=1e-14)


def test_loss_slice_wants_one_member() -> None:
    net = models.mlp([2, 3, 2], "relu", members=2)
    with pytest.raises(ValueError, match="one member"):
        loss_slice(
            net,
            torch.zeros(4, 2),
            torch.zeros(4, dtype=torch.long),
            ({}, {}),
            torch.zeros(1),
            torch.zeros(1),
        )


def test_loss_slice_refuses_what_it_cannot_slice() -> None:
    x, y, axis = torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), torch.zeros(3)
    net = models.mlp([2, 3, 2], "relu")
    theta = {n: p.detach()[0] for n, p in net.named_parameters()}
    d = filter_normalized_direction(theta, torch.Generator())
    not_mlps = [
        models.mlp([2, 3, 2], "relu", batch_norm="after"),
        # an activation models.mlp does not build: its slope would be lost
        models.from_modules([nn.Sequential(nn.Linear(2, 3), nn.LeakyReLU(0.2), nn.Linear(3, 2))]),
    ]
    for other in not_mlps:
        with pytest.raises(ValueError, match="must be an MLP as models.mlp builds it"):
            loss_slice(other, x, y, (d, d), axis, axis)
    with pytest.raises(TypeError, match="must be a Stack"):
        loss_slice(models.to_module(net, 0), x, y, (d, d), axis, axis)  # type: ignore[arg-type]
    missing = {n: t for n, t in d.items() if n != "layers.0.bias"}
    with pytest.raises(ValueError, match=r"d2\['layers.0.bias'\] of shape \(3,\)"):
        loss_slice(net, x, y, (d, missing), axis, axis)
    with pytest.raises(ValueError, match="'alphas' parameter of loss_slice must be a 1-D"):
        loss_slice(net, x, y, (d, d), axis[None], axis)
    with pytest.raises(ValueError, match="'chunk' parameter of loss_slice"):
        loss_slice(net, x, y, (d, d), axis, axis, chunk=0)
