"""Stacked models against plain nn.Sequential members, in float64."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from initlab import init
from initlab.models import (
    ACTIVATIONS,
    Stack,
    cnn,
    from_modules,
    init_members,
    load_member,
    mlp,
    to_module,
)

TOL = 1e-12  # float64: batched and plain products sum in different orders
M = 3
SPECS = ["he_normal", "xavier_uniform(gain='tanh')", "normal(std=0.5)"]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def _check_members(stack: Stack, x: torch.Tensor, shared: bool) -> float:
    """Forward, backward and BN statistics of every member against its plain module."""
    plains = [to_module(stack, m) for m in range(M)]
    out = stack(x)
    probe = torch.randn_like(out)
    (out * probe).sum().backward()
    worst = 0.0
    for m, plain in enumerate(plains):
        xm = x if shared else x[m]
        ym = plain(xm)
        (ym * probe[m]).sum().backward()
        worst = max(worst, _max_diff(out[m], ym))
        stacked_state = to_module(stack, m).state_dict()  # after the step: running stats too
        for name, value in plain.state_dict().items():
            worst = max(worst, _max_diff(stacked_state[name].double(), value.double()))
        stacked_grads = [p.grad for p in stack.parameters()]
        for p_stack, p_plain in zip(stacked_grads, plain.parameters(), strict=True):
            assert p_stack is not None and p_plain.grad is not None
            worst = max(worst, _max_diff(p_stack[m].reshape(p_plain.shape), p_plain.grad))
    return worst


@pytest.mark.numerics
@pytest.mark.parametrize("batch_norm", [None, "before", "after"])
@pytest.mark.parametrize("activation", sorted(set(ACTIVATIONS) - {"linear"}))
def test_mlp_members_equal_plain_modules(activation: str, batch_norm: str | None) -> None:
    stack = mlp([5, 7, 6, 3], activation, batch_norm, members=M, dtype=torch.float64)  # type: ignore[arg-type]
    init_members(stack, SPECS, "normal(std=0.1)", seeds=[1, 2, 3])
    assert _check_members(stack, torch.randn(M, 16, 5, dtype=torch.float64), False) < TOL
    stack.zero_grad()
    assert _check_members(stack, torch.randn(16, 5, dtype=torch.float64), True) < TOL
    stack.eval()
    stack.zero_grad()
    assert _check_members(stack, torch.randn(M, 4, 5, dtype=torch.float64), False) < TOL


@pytest.mark.numerics
@pytest.mark.parametrize("batch_norm", [None, "before", "after"])
@pytest.mark.parametrize("input_shape", [(1, 40), (2, 12, 12)], ids=["1d", "2d"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_cnn_members_equal_plain_modules(
    input_shape: tuple[int, ...], batch_norm: str | None, activation: str
) -> None:
    stack = cnn(input_shape, (3, 4), 5, activation, batch_norm, members=M, dtype=torch.float64)  # type: ignore[arg-type]
    init_members(stack, SPECS, "normal(std=0.1)", seeds=7)
    x = torch.randn(M, 6, *input_shape, dtype=torch.float64)
    assert _check_members(stack, x, False) < TOL
    stack.zero_grad()
    assert _check_members(stack, torch.randn(6, *input_shape, dtype=torch.float64), True) < TOL
    stack.eval()
    stack.zero_grad()
    assert _check_members(stack, x[:, :2], False) < TOL


def test_cnn_for_mnist_shapes() -> None:
    assert cnn((1, 28, 28), members=2)(torch.randn(4, 1, 28, 28)).shape == (2, 4, 10)
    assert cnn((1, 40), members=2)(torch.randn(2, 4, 1, 40)).shape == (2, 4, 10)


@pytest.mark.numerics
def test_init_members_equals_a_plain_sequential_initialized_alone() -> None:
    stack = mlp([2, 10, 5, 1], "relu", members=3, dtype=torch.float64)
    specs = ["zeros", "normal(std=10)", "he_normal"]
    init_members(stack, specs, "constant(0.01)", seeds=[3, 4, 5])
    for m, (spec, seed) in enumerate(zip(specs, [3, 4, 5], strict=True)):
        plain = nn.Sequential(
            nn.Linear(2, 10), nn.ReLU(), nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 1)
        ).double()
        init.apply(plain, spec, "constant(0.01)", generator=torch.Generator().manual_seed(seed))
        for a, b in zip(to_module(stack, m).parameters(), plain.parameters(), strict=True):
            assert torch.equal(a, b)


def test_init_members_with_a_bad_spec_leaves_the_stack_unchanged() -> None:
    stack = mlp([2, 4, 1], members=2)
    before = [p.clone() for p in stack.parameters()]
    with pytest.raises(ValueError, match="dirac"):
        init_members(stack, ["he_normal", "dirac"])
    assert all(torch.equal(a, b) for a, b in zip(before, stack.parameters(), strict=True))
    with pytest.raises(ValueError, match="one per member"):
        init_members(stack, ["he_normal"] * 3)


def test_init_members_without_a_bias_spec_keeps_each_members_own_bias() -> None:
    # One plain module serves every member in turn: member 1 must not get member 0's bias,
    # nor member 0's weights leak into a spec that keeps them.
    stack = mlp([2, 4, 3, 1], "tanh", members=3, dtype=torch.float64)
    with torch.no_grad():
        for m, layer in enumerate(stack.layers[::2]):
            layer.bias.copy_(torch.arange(3.0).view(3, 1) + 10 * m)
    biases = [layer.bias.clone() for layer in stack.layers[::2]]
    init_members(stack, ["he_normal", "xavier_uniform", "zeros"], None, seeds=[1, 2, 3])
    for layer, bias in zip(stack.layers[::2], biases, strict=True):
        assert torch.equal(layer.bias, bias)
    for m, (spec, seed) in enumerate(
        zip(["he_normal", "xavier_uniform", "zeros"], [1, 2, 3], strict=True)
    ):
        plain = nn.Sequential(
            nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1)
        ).double()
        init.apply(plain, spec, None, generator=torch.Generator().manual_seed(seed))
        ours = [p for n, p in to_module(stack, m).named_parameters() if n.endswith("weight")]
        theirs = [p for n, p in plain.named_parameters() if n.endswith("weight")]
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_from_modules_round_trip() -> None:
    plains = [
        nn.Sequential(
            nn.Conv1d(1, 3, 3, padding=1),
            nn.BatchNorm1d(3),
            nn.Tanh(),
            nn.MaxPool1d(2),
            nn.Flatten(),
            nn.Linear(3 * 20, 4),
        ).double()
        for _ in range(M)
    ]
    for p in plains:  # non-trivial running statistics
        p(torch.randn(8, 1, 40, dtype=torch.float64))
    stack = from_modules(plains)
    for m in range(M):
        exported = to_module(stack, m)
        for (n, a), b in zip(
            exported.state_dict().items(), plains[m].state_dict().values(), strict=True
        ):
            assert torch.equal(a, b), n
    stack.eval()
    x = torch.randn(M, 5, 1, 40, dtype=torch.float64)
    y = stack(x)
    for m in range(M):
        assert _max_diff(y[m], plains[m].eval()(x[m])) < TOL


def test_from_modules_rejects_mixed_or_unsupported_architectures() -> None:
    a = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    b = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    with pytest.raises(ValueError, match="layer 1 differs"):
        from_modules([a, b])
    with pytest.raises(ValueError, match="LSTM"):
        from_modules([nn.Sequential(nn.LSTM(2, 2), nn.Linear(2, 1))])
    with pytest.raises(ValueError, match="layer 2"):
        load_member(
            from_modules([a]), 0, nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
        )


def test_bias_auto_drops_the_bias_batch_norm_replaces() -> None:
    before = mlp([4, 8, 8, 2], batch_norm="before")
    linears = [layer for layer in to_module(before, 0) if isinstance(layer, nn.Linear)]
    assert [layer.bias is None for layer in linears] == [True, True, False]  # output keeps its bias
    after = mlp([4, 8, 2], batch_norm="after")
    assert all(
        layer.bias is not None for layer in to_module(after, 0) if isinstance(layer, nn.Linear)
    )
    assert to_module(cnn((1, 40), (3,), batch_norm="before"), 0)[0].bias is None


def test_a_kept_bias_before_batch_norm_warns_why() -> None:
    with pytest.warns(UserWarning, match=r"hidden layer 1 is redundant.*β replaces"):
        mlp([4, 8, 2], batch_norm="before", bias=True)
    with pytest.warns(UserWarning, match="conv block 1"):
        cnn((1, 40), (3,), batch_norm="before", bias=True)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"Did you mean 'tanh'"):
        mlp([2, 3, 1], "tahn")
    with pytest.raises(ValueError, match=r"'batch_norm' parameter .*Did you mean 'before'"):
        mlp([2, 3, 1], batch_norm="befor")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'widths' parameter"):
        mlp([2])
    with pytest.raises(ValueError, match="'widths' parameter"):
        mlp([2, 0, 1])
    with pytest.raises(ValueError, match="too small"):
        cnn((1, 3), (2, 2, 2))
    with pytest.raises(ValueError, match="odd"):
        cnn((1, 40), kernel_size=4)
    net = mlp([2, 3, 1], members=2)
    with pytest.raises(
        ValueError, match=r"\(2, B, …\) one per member.*Got input shape \(3, 5, 2\)"
    ):
        net(torch.randn(3, 5, 2))
    with pytest.raises(ValueError, match="member 2 does not exist"):
        to_module(net, 2)


def test_eval_without_running_stats_uses_batch_statistics() -> None:
    plains = [
        nn.Sequential(
            nn.Linear(3, 4),
            nn.BatchNorm1d(4, track_running_stats=False),
            nn.ReLU(),
            nn.Linear(4, 2),
        )
        .double()
        .eval()
        for _ in range(2)
    ]
    stack = from_modules(plains).eval()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    y = stack(x)
    for m in range(2):
        assert _max_diff(y[m], plains[m](x[m])) < TOL


def test_input_shapes_are_checked_not_reinterpreted() -> None:
    net = cnn((1, 40), (4, 8), members=4)
    with pytest.raises(ValueError, match=r"Got input shape \(4, 4, 40\)"):
        net(torch.randn(4, 4, 40))  # the channel dim is missing
    net2 = cnn((1, 8, 8), (3,), members=2)
    with pytest.raises(ValueError, match="1 channels"):
        net2(torch.randn(5, 2, 8, 8))
    with pytest.raises(ValueError, match="3 features"):
        mlp([3, 2], members=2)(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="flatten the input"):
        from_modules([nn.Sequential(nn.Flatten(), nn.Linear(4, 2))])


def test_load_member_compares_parameterless_layers_too() -> None:
    stack = from_modules([nn.Sequential(nn.Linear(2, 3), nn.LeakyReLU(0.01), nn.Linear(3, 1))])
    with pytest.raises(ValueError, match="layer 1"):
        load_member(stack, 0, nn.Sequential(nn.Linear(2, 3), nn.LeakyReLU(0.5), nn.Linear(3, 1)))


def test_exporting_members_does_not_touch_the_global_generator() -> None:
    stack = cnn((1, 12, 12), (3,), members=2)
    state = torch.get_rng_state()
    to_module(stack, 1)
    init_members(stack, "he_normal", seeds=0)
    assert torch.equal(state, torch.get_rng_state())


def test_hooks_see_the_linear_output_before_the_activation() -> None:
    # The activation runs in place on a linear output only when nothing can hold it.
    stack = mlp([3, 4, 2], "relu", members=2, dtype=torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64)
    linear = stack.layers[0]
    pre = linear(x.T.contiguous())  # (2, 4, 5), as the stack computes it
    seen: list[torch.Tensor] = []
    handle = linear.register_forward_hook(lambda module, args, out: seen.append(out))
    out = stack(x)
    handle.remove()
    assert torch.equal(seen[0], pre.detach()) and (pre < 0).any()
    global_handle = nn.modules.module.register_module_forward_hook(
        lambda module, args, out: seen.append(out) if module is linear else None
    )
    try:
        assert torch.equal(stack(x), out)
    finally:
        global_handle.remove()
    assert torch.equal(seen[1], pre.detach())
    assert torch.equal(stack(x), out)  # no hooks: in place, the same values
