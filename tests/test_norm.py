"""initlab.norm against torch.nn.BatchNorm1d/2d in float64, member by member."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from initlab.norm import StackedBatchNorm, batch_norm

TOL = 1e-10  # float64; the two compute the same formula in a different order


def _reference(spatial: tuple[int, ...], channels: int, momentum: float | None) -> nn.Module:
    cls = nn.BatchNorm2d if len(spatial) == 2 else nn.BatchNorm1d
    return cls(channels, momentum=momentum, dtype=torch.float64)


@pytest.mark.numerics
@pytest.mark.parametrize("spatial", [(), (7,), (4, 5)], ids=["MBC", "MBCL", "MBCHW"])
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_matches_torch_batchnorm_over_100_steps_then_eval(
    spatial: tuple[int, ...], momentum: float | None
) -> None:
    members, batch, channels = 3, 6, 4
    stacked = StackedBatchNorm(members, channels, momentum=momentum, dtype=torch.float64)
    refs = [_reference(spatial, channels, momentum) for _ in range(members)]
    with torch.no_grad():  # distinct γ, β per member, copied into the references
        stacked.weight.uniform_(0.5, 1.5)  # type: ignore[union-attr]
        stacked.bias.uniform_(-0.5, 0.5)  # type: ignore[union-attr]
        for m, ref in enumerate(refs):
            ref.weight.copy_(stacked.weight[m])  # type: ignore[index]
            ref.bias.copy_(stacked.bias[m])  # type: ignore[index]
    worst = 0.0
    for step in range(100):
        x = torch.randn(members, batch, channels, *spatial, dtype=torch.float64) * 3 + step % 5
        x.requires_grad_(True)
        probe = torch.randn_like(x)
        y = stacked(x)
        (y * probe).sum().backward()
        for m, ref in enumerate(refs):
            xm = x[m].detach().clone().requires_grad_(True)
            ym = ref(xm)
            (ym * probe[m]).sum().backward()
            pairs = [
                (y[m], ym),
                (x.grad[m], xm.grad),  # type: ignore[index]
                (stacked.weight.grad[m], ref.weight.grad),  # type: ignore[union-attr]
                (stacked.bias.grad[m], ref.bias.grad),  # type: ignore[union-attr]
                (stacked.running_mean[m], ref.running_mean),  # type: ignore[index]
                (stacked.running_var[m], ref.running_var),  # type: ignore[index]
            ]
            for ours, theirs in pairs:
                assert theirs is not None
                worst = max(worst, (ours - theirs).abs().max().item())
            ref.weight.grad = ref.bias.grad = None
        stacked.weight.grad = stacked.bias.grad = None  # type: ignore[union-attr]
    assert worst < TOL
    assert stacked.num_batches_tracked.tolist() == [100] * members  # type: ignore[union-attr]
    stacked.eval()
    for ref in refs:
        ref.eval()
    x = torch.randn(members, batch, channels, *spatial, dtype=torch.float64)
    y = stacked(x)
    for m, ref in enumerate(refs):
        assert (y[m] - ref(x[m])).abs().max().item() < TOL


def test_eval_output_does_not_depend_on_the_rest_of_the_batch() -> None:
    bn = StackedBatchNorm(2, 3, dtype=torch.float64)
    for _ in range(5):
        bn(torch.randn(2, 8, 3, dtype=torch.float64) * 2 + 1)
    bn.eval()
    x = torch.randn(2, 8, 3, dtype=torch.float64)
    other = x.clone()
    other[:, 1:] = torch.randn(2, 7, 3, dtype=torch.float64) * 100  # change every other sample
    assert torch.equal(bn(x)[:, 0], bn(other)[:, 0])
    assert torch.equal(bn(x)[:, :1], bn(x[:, :1]))  # and a batch of one works
    # ... whereas in training the first sample's output depends on the others
    bn.train()
    assert not torch.allclose(bn(x)[:, 0], bn(other)[:, 0])


@pytest.mark.numerics
def test_functional_formula_by_hand() -> None:
    x = torch.randn(2, 10, 3, dtype=torch.float64)
    rm, rv = torch.zeros(2, 3, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64)
    w, b = torch.rand(2, 3, dtype=torch.float64), torch.rand(2, 3, dtype=torch.float64)
    y = batch_norm(x, rm, rv, w, b, training=True, momentum=0.2, eps=1e-3)
    mean = x.mean(dim=1, keepdim=True)
    var = ((x - mean) ** 2).sum(dim=1, keepdim=True) / 10  # biased
    expected = (x - mean) / torch.sqrt(var + 1e-3) * w[:, None] + b[:, None]
    assert torch.allclose(y, expected, atol=1e-13, rtol=0)
    assert torch.allclose(rm, 0.2 * mean[:, 0], atol=1e-15, rtol=0)
    unbiased = ((x - mean) ** 2).sum(dim=1) / 9
    assert torch.allclose(rv, 0.8 + 0.2 * unbiased, atol=1e-15, rtol=0)


@pytest.mark.numerics
def test_other_layouts_give_the_same_numbers() -> None:
    x = torch.randn(3, 7, 4, dtype=torch.float64)  # (M, B, C)
    stats = [torch.zeros(3, 4, dtype=torch.float64), torch.ones(3, 4, dtype=torch.float64)]
    mc_b = [t.clone() for t in stats]
    b_mc = [t.clone() for t in stats]
    y = batch_norm(x, *stats, training=True)
    y1 = batch_norm(x.transpose(1, 2), *mc_b, training=True, channel_dim=1)  # (M, C, B)
    y2 = batch_norm(x.transpose(0, 1), *b_mc, training=True, member_dim=1)  # (B, M, C)
    assert torch.allclose(y1.transpose(1, 2), y, atol=1e-14)
    assert torch.allclose(y2.transpose(0, 1), y, atol=1e-14)
    for a, b, c in zip(stats, mc_b, b_mc, strict=True):
        assert torch.allclose(a, b, atol=1e-15) and torch.allclose(a, c, atol=1e-15)


def test_update_mask_freezes_members_running_statistics() -> None:
    bn = StackedBatchNorm(3, 2, dtype=torch.float64)
    bn(torch.randn(3, 5, 2, dtype=torch.float64), update=torch.tensor([True, False, True]))
    assert torch.all(bn.running_mean[1] == 0) and torch.all(bn.running_var[1] == 1)  # type: ignore[index]
    assert torch.all(bn.running_mean[0] != 0)  # type: ignore[index]
    assert bn.num_batches_tracked.tolist() == [1, 0, 1]  # type: ignore[union-attr]


def test_without_running_stats_uses_batch_statistics_in_eval() -> None:
    bn = StackedBatchNorm(2, 3, track_running_stats=False, dtype=torch.float64).eval()
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    ref = nn.BatchNorm1d(3, track_running_stats=False, dtype=torch.float64).eval()
    assert torch.allclose(bn(x)[1], ref(x[1]), atol=1e-12)


def test_one_value_per_channel_in_training_names_the_batch_size() -> None:
    bn = StackedBatchNorm(2, 3)
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*batch size 1"):
        bn(torch.randn(2, 1, 3))
    bn.eval()
    assert bn(torch.randn(2, 1, 3)).shape == (2, 1, 3)  # fine at inference


def test_wrong_channel_count() -> None:
    with pytest.raises(ValueError, match=r"expected 3 channels .* Got input shape \(2, 4, 5\)"):
        StackedBatchNorm(2, 3)(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match=r"'running_mean' parameter of batch_norm .* \(2, 5\)"):
        batch_norm(torch.randn(2, 4, 5), torch.zeros(2, 3), torch.ones(2, 3), training=True)


def test_negative_eps_and_bad_momentum() -> None:
    with pytest.raises(ValueError, match=r"'eps' parameter of StackedBatchNorm must be .*>= 0"):
        StackedBatchNorm(2, 3, eps=-1e-5)
    with pytest.raises(ValueError, match=r"'eps' parameter of batch_norm"):
        batch_norm(torch.randn(2, 4, 3), None, None, eps=-1.0)
    with pytest.raises(ValueError, match=r"'momentum' parameter"):
        StackedBatchNorm(2, 3, momentum=1.5)
    with pytest.raises(ValueError, match="num_batches_tracked"):
        batch_norm(
            torch.randn(2, 4, 3), torch.zeros(2, 3), torch.ones(2, 3), training=True, momentum=None
        )


@pytest.mark.parametrize(("member_dim", "channel_dim"), [(0, 1), (1, 2), (0, 2)])
def test_eval_without_running_stats_on_every_path(member_dim: int, channel_dim: int) -> None:
    bn = StackedBatchNorm(
        3,
        4,
        track_running_stats=False,
        member_dim=member_dim,
        channel_dim=channel_dim,
        dtype=torch.float64,
    ).eval()
    shape = [6, 6, 6, 5]
    shape[member_dim], shape[channel_dim] = 3, 4
    x = torch.randn(shape, dtype=torch.float64)
    y = bn(x)
    dims = [d for d in range(4) if d not in (member_dim, channel_dim)]
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    assert torch.allclose(y, (x - mean) / torch.sqrt(var + 1e-5), atol=1e-12)
