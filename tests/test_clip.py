"""initlab.clip against independent references: torch.nn.utils, hand-written formulas."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from initlab import clip

# Float64 comparisons: every reference does the same few roundings in another order, so
# the results agree to a few ulps (~1e-16); 1e-12 leaves room without hiding a bug.
TOL = 1e-12
SHAPES = [(5, 7), (7,), (4, 3, 2, 2), ()]  # linear weight, bias, conv weight, scalar
RATIOS = [*np.geomspace(0.05, 20.0, 41).tolist(), 1.0]  # threshold / norm, both sides
INF = math.inf

Clipper = Callable[..., clip.ClipResult]
CLIPPERS: dict[str, Clipper] = {
    "value": clip.clip_by_value_,
    "norm": clip.clip_by_norm_,
    "global_norm": clip.clip_by_global_norm_,
    "agc": clip.adaptive_clip_,
}
THRESHOLD_NAMES = {
    "value": "clip_value",
    "norm": "max_norm",
    "global_norm": "max_norm",
    "agc": "clipping",
}


def params_with_grads(
    shapes: list[tuple[int, ...]] = SHAPES, scale: float = 1.0, dtype: torch.dtype = torch.float64
) -> list[nn.Parameter]:
    params = [nn.Parameter(torch.randn(s, dtype=dtype)) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, dtype=dtype) * scale
    return params


def copy_params(params: list[nn.Parameter]) -> list[nn.Parameter]:
    copies = [nn.Parameter(p.detach().clone()) for p in params]
    for c, p in zip(copies, params, strict=True):
        assert p.grad is not None
        c.grad = p.grad.clone()
    return copies


def grads_of(params: list[nn.Parameter]) -> list[torch.Tensor]:
    return [p.grad for p in params if p.grad is not None]


def flat_norm(tensors: list[torch.Tensor], p: float = 2.0) -> float:
    """The norm of all tensors as one vector, in numpy."""
    flat = np.concatenate([t.detach().double().numpy().ravel() for t in tensors])
    return float(np.linalg.norm(flat, ord=p)) if flat.size else 0.0


def assert_grads_close(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=TOL, atol=0.0, equal_nan=True)


# ---------------------------------------------------------------- against torch.nn.utils


@pytest.mark.numerics
@pytest.mark.parametrize("norm_type", [2.0, INF])
def test_global_norm_matches_torch_clip_grad_norm(norm_type: float) -> None:
    for ratio in RATIOS:
        params = params_with_grads()
        before = [g.clone() for g in grads_of(params)]
        ref = copy_params(params)
        max_norm = ratio * flat_norm(before, norm_type)
        total = nn.utils.clip_grad_norm_(ref, max_norm, norm_type=norm_type)
        r = clip.clip_by_global_norm_(params, max_norm, norm_type=norm_type)
        torch.testing.assert_close(r.norm_before, total, rtol=TOL, atol=0.0)
        assert_grads_close(grads_of(params), grads_of(ref))
        after = nn.utils.get_total_norm(grads_of(ref), norm_type)
        torch.testing.assert_close(r.norm_after, after, rtol=TOL, atol=0.0)
        changed = any(not torch.equal(g, b) for g, b in zip(grads_of(ref), before, strict=True))
        assert bool(r.fired) == changed


@pytest.mark.numerics
def test_global_norm_matches_torch_in_float32() -> None:
    # float32: the same operations, so agreement to a few float32 ulps.
    params = params_with_grads(dtype=torch.float32, scale=10.0)
    ref = copy_params(params)
    total = nn.utils.clip_grad_norm_(ref, 1.0)
    r = clip.clip_by_global_norm_(params, 1.0)
    assert r.norm_before.dtype == torch.float32
    torch.testing.assert_close(r.norm_before, total, rtol=1e-6, atol=0.0)
    for a, e in zip(grads_of(params), grads_of(ref), strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, e, rtol=1e-6, atol=1e-12)


@pytest.mark.numerics
def test_value_matches_torch_clip_grad_value() -> None:
    for ratio in RATIOS:
        params = params_with_grads()
        before = [g.clone() for g in grads_of(params)]
        ref = copy_params(params)
        clip_value = ratio * max(float(g.abs().max()) for g in before) / 2
        nn.utils.clip_grad_value_(ref, clip_value)
        r = clip.clip_by_value_(params, clip_value)
        assert_grads_close(grads_of(params), grads_of(ref))
        assert r.norm_before.item() == pytest.approx(flat_norm(before), rel=TOL)
        assert r.norm_after.item() == pytest.approx(flat_norm(grads_of(ref)), rel=TOL)
        assert bool(r.fired) == any(bool((g.abs() > clip_value).any()) for g in before)


# ---------------------------------------------------------------- invariants


@pytest.mark.parametrize("eps", [1e-6, 0.0])
def test_global_norm_invariants(eps: float) -> None:
    """Fired iff ‖g‖ + ε > max_norm; then the norm after is max_norm·‖g‖/(‖g‖ + ε)."""
    for ratio in RATIOS:
        params = params_with_grads()
        before = [g.clone() for g in grads_of(params)]
        max_norm = ratio * flat_norm(before)
        r = clip.clip_by_global_norm_(params, max_norm, eps=eps)
        assert r.norm_before.item() == pytest.approx(flat_norm(before), rel=TOL)
        # The norm as clipping saw it: at ratio 1 numpy's may differ in the last bit.
        n = r.norm_before.item()
        assert bool(r.fired) == (n + eps > max_norm)
        if r.fired:
            expected = max_norm * n / (n + eps)
            assert flat_norm(grads_of(params)) == pytest.approx(expected, rel=TOL)
            assert r.norm_after.item() == pytest.approx(expected, rel=TOL)
        else:
            assert all(torch.equal(g, b) for g, b in zip(grads_of(params), before, strict=True))
        # A second pass rescales by max_norm/(norm_after + ε) ∈ [1 − ε/max_norm, 1].
        once = [g.clone() for g in grads_of(params)]
        clip.clip_by_global_norm_(params, max_norm, eps=eps)
        for g, o in zip(grads_of(params), once, strict=True):
            torch.testing.assert_close(g, o, rtol=eps / max_norm + TOL, atol=0.0)


@pytest.mark.parametrize("name", ["value", "norm", "agc"])
def test_clipping_twice_changes_nothing_more(name: str) -> None:
    for threshold in [0.01, 0.1, 0.5, 2.0]:
        params = params_with_grads(scale=3.0)
        CLIPPERS[name](params, threshold)
        once = [g.clone() for g in grads_of(params)]
        CLIPPERS[name](params, threshold)
        assert_grads_close(grads_of(params), once)


@pytest.mark.numerics
@pytest.mark.parametrize("norm_type", [2.0, INF])
@pytest.mark.parametrize("eps", [0.0, 1e-3])
def test_clip_by_norm_matches_per_tensor_formula(norm_type: float, eps: float) -> None:
    for max_norm in [0.05, 0.5, 1.0, 2.0, 5.0, 50.0]:
        params = params_with_grads(scale=1.0)
        before = [g.clone() for g in grads_of(params)]
        r = clip.clip_by_norm_(params, max_norm, norm_type=norm_type, eps=eps, per_tensor=True)
        assert r.per_tensor_norms is not None
        for g, b, n_seen in zip(grads_of(params), before, r.per_tensor_norms, strict=True):
            n = float(np.linalg.norm(b.numpy().ravel(), ord=norm_type))
            # Keras/TF clip_by_norm (eps = 0): g · max_norm / max(‖g‖, max_norm).
            scale = max_norm / max(n, max_norm) if eps == 0 else min(1.0, max_norm / (n + eps))
            torch.testing.assert_close(g, b * scale, rtol=TOL, atol=0.0)
            assert n_seen.item() == pytest.approx(n, rel=TOL)
            if eps == 0 and n > max_norm:
                assert float(np.linalg.norm(g.numpy().ravel(), ord=norm_type)) == pytest.approx(
                    max_norm, rel=TOL
                )
        norms = [float(np.linalg.norm(b.numpy().ravel(), ord=norm_type)) for b in before]
        assert r.norm_before.item() == pytest.approx(flat_norm(before, norm_type), rel=TOL)
        assert bool(r.fired) == any(n + eps > max_norm for n in norms)


# ---------------------------------------------------------------- AGC


def agc_reference(w: torch.Tensor, g: torch.Tensor, lam: float, eps: float) -> torch.Tensor:
    """AGC unit by unit, as the paper writes it (Brock et al. 2021, eq. 3)."""
    w, g = w.detach(), g.clone()
    units: list[Any] = list(range(w.shape[0])) if w.ndim > 1 else [Ellipsis]
    for u in units:
        w_norm = max(math.sqrt(float((w[u] ** 2).sum())), eps)
        g_norm = math.sqrt(float((g[u] ** 2).sum()))
        if g_norm > lam * w_norm:
            g[u] = g[u] * (lam * w_norm / g_norm)
    return g


@pytest.mark.numerics
@pytest.mark.parametrize("eps", [1e-3, 0.0, 0.5])
def test_adaptive_clip_matches_unit_by_unit_reference(eps: float) -> None:
    for lam in [0.001, 0.01, 0.1, 0.5, 5.0]:
        params = params_with_grads(scale=0.3)
        with torch.no_grad():
            params[0][1].zero_()  # a zero unit: only the ε floor lets its gradient through
            params[1][:3] *= 1e-4
        expected = [agc_reference(p, p.grad, lam, eps) for p in params if p.grad is not None]
        before = [g.clone() for g in grads_of(params)]
        r = clip.adaptive_clip_(params, lam, eps=eps)
        assert_grads_close(grads_of(params), expected)
        changed = any(not torch.equal(e, b) for e, b in zip(expected, before, strict=True))
        assert bool(r.fired) == changed
        assert r.norm_before.item() == pytest.approx(flat_norm(before), rel=TOL)
        assert r.norm_after.item() == pytest.approx(flat_norm(expected), rel=TOL)


def test_adaptive_clip_takes_grads_in_parameter_order() -> None:
    params = params_with_grads()
    grads = [p.grad.clone() if p.grad is not None else None for p in params]
    grads[1] = None  # skipped, as a .grad of None would be
    expected = [
        agc_reference(p, g, 0.05, 1e-3) for p, g in zip(params, grads, strict=True) if g is not None
    ]
    clip.adaptive_clip_(params, 0.05, grads=grads)
    assert_grads_close([g for g in grads if g is not None], expected)


# ---------------------------------------------------------------- stacked == alone

M = 4
MEMBER_SHAPES = [(5, 3), (5,), (2, 3, 2), ()]
STACK_THRESHOLDS = {
    "value": [0.5, 0.05, 2.0, 100.0],
    "norm": [1.0, 0.5, 20.0, 1000.0],
    "global_norm": [1.0, 0.5, 20.0, 1000.0],
    "agc": [0.01, 0.5, 0.1, 100.0],
}


def stacked_params(nan_member: int | None) -> list[nn.Parameter]:
    params = [nn.Parameter(torch.randn((M, *s), dtype=torch.float64)) for s in MEMBER_SHAPES]
    scales = torch.tensor([0.1, 1.0, 10.0, 3.0], dtype=torch.float64)
    for p in params:
        p.grad = torch.randn(p.shape, dtype=torch.float64) * scales.reshape(-1, *[1] * (p.ndim - 1))
    if nan_member is not None:
        params[2].grad[nan_member, 0, 1] = math.nan  # type: ignore[index]
    return params


@pytest.mark.numerics
@pytest.mark.parametrize("name", list(CLIPPERS))
@pytest.mark.parametrize(("nonfinite", "nan_member"), [("raise", None), ("skip", 2), ("pass", 1)])
def test_stack_equals_each_member_alone(name: str, nonfinite: str, nan_member: int | None) -> None:
    thresholds = torch.tensor(STACK_THRESHOLDS[name], dtype=torch.float64)
    params = stacked_params(nan_member)
    alone = [[nn.Parameter(p[m].detach().clone()) for p in params] for m in range(M)]
    for m in range(M):
        for a, p in zip(alone[m], params, strict=True):
            a.grad = p.grad[m].clone()  # type: ignore[index]

    r = CLIPPERS[name](params, thresholds, members=M, nonfinite=nonfinite, per_tensor=True)
    assert r.fired.shape == r.norm_before.shape == (M,)
    assert bool(r.fired.any()) and not bool(r.fired.all())  # the thresholds span both cases
    for m in range(M):
        s = CLIPPERS[name](alone[m], thresholds[m].item(), nonfinite=nonfinite, per_tensor=True)
        assert_grads_close([p.grad[m] for p in params], grads_of(alone[m]))  # type: ignore[index]
        for field in ("norm_before", "norm_after", "fired", "nonfinite"):
            torch.testing.assert_close(
                getattr(r, field)[m], getattr(s, field), rtol=TOL, atol=0.0, equal_nan=True
            )
        assert r.per_tensor_norms is not None and s.per_tensor_norms is not None
        for stacked_norm, alone_norm in zip(r.per_tensor_norms, s.per_tensor_norms, strict=True):
            torch.testing.assert_close(
                stacked_norm[m], alone_norm, rtol=TOL, atol=0.0, equal_nan=True
            )
    assert r.nonfinite.tolist() == [m == nan_member for m in range(M)]


@pytest.mark.numerics
def test_stack_takes_one_threshold_for_all_members() -> None:
    params = stacked_params(None)
    per_member = copy_params(params)
    clip.clip_by_global_norm_(params, 2.0, members=M)
    clip.clip_by_global_norm_(per_member, torch.full((M,), 2.0, dtype=torch.float64), members=M)
    assert_grads_close(grads_of(params), grads_of(per_member))


# ---------------------------------------------------------------- non-finite gradients


@pytest.mark.parametrize("name", list(CLIPPERS))
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_raise_changes_nothing(name: str, bad: float) -> None:
    params = params_with_grads(scale=10.0)
    params[0].grad[2, 3] = bad  # type: ignore[index]
    before = [g.clone() for g in grads_of(params)]
    with pytest.raises(RuntimeError, match=r"non-finite .*nonfinite='skip'.*nonfinite='pass'"):
        CLIPPERS[name](params, 0.1)
    assert_grads_close(grads_of(params), before)


@pytest.mark.parametrize("name", list(CLIPPERS))
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nonfinite_skip_zeroes_and_flags(name: str, bad: float) -> None:
    params = params_with_grads(scale=10.0)
    params[0].grad[2, 3] = bad  # type: ignore[index]
    r = CLIPPERS[name](params, 0.1, nonfinite="skip")
    assert all(bool((g == 0).all()) for g in grads_of(params))
    assert bool(r.nonfinite) and not bool(r.fired)
    assert r.norm_after.item() == 0.0
    assert not math.isfinite(r.norm_before.item())


@pytest.mark.parametrize("name", list(CLIPPERS))
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nonfinite_pass_leaves_gradients_as_they_were(name: str, bad: float) -> None:
    params = params_with_grads(scale=10.0)
    params[0].grad[2, 3] = bad  # type: ignore[index]
    before = [g.clone() for g in grads_of(params)]
    r = CLIPPERS[name](params, 0.1, nonfinite="pass")
    for g, b in zip(grads_of(params), before, strict=True):
        torch.testing.assert_close(g, b, rtol=0.0, atol=0.0, equal_nan=True)
    assert bool(r.nonfinite) and not bool(r.fired)


def test_nonfinite_raise_names_the_members() -> None:
    params = stacked_params(nan_member=3)
    with pytest.raises(RuntimeError, match=r"member\(s\) \[3\] is non-finite \(\[nan\]\)"):
        clip.clip_by_global_norm_(params, 1.0, members=M)


def test_overflowing_norm_counts_as_nonfinite() -> None:
    # Finite float32 gradients whose 2-norm overflows cannot be rescaled reliably either.
    g = torch.full((4,), 3e38)
    r = clip.clip_by_global_norm_([g], 1.0, use_grad=False, nonfinite="pass")
    assert bool(r.nonfinite)


# ---------------------------------------------------------------- inputs and results


@pytest.mark.parametrize("name", ["value", "norm", "global_norm"])
def test_gradients_or_parameters_give_the_same_result(name: str) -> None:
    params = params_with_grads(scale=3.0)
    grads = [g.clone() for g in grads_of(params)]
    frozen = nn.Parameter(torch.ones(3))  # .grad is None: skipped
    a = CLIPPERS[name]([*params, frozen], 0.5, per_tensor=True)
    b = CLIPPERS[name]([*grads, None], 0.5, use_grad=False, per_tensor=True)
    assert_grads_close(grads_of(params), grads)
    assert a.per_tensor_norms is not None and b.per_tensor_norms is not None
    assert len(a.per_tensor_norms) == len(b.per_tensor_norms) == len(SHAPES)
    assert a.norm_before.item() == b.norm_before.item()


@pytest.mark.parametrize("name", list(CLIPPERS))
@pytest.mark.parametrize("members", [None, 3])
def test_no_gradients_is_an_empty_result(name: str, members: int | None) -> None:
    no_grad = [nn.Parameter(torch.ones(3, 2))]
    r = CLIPPERS[name](no_grad, 1.0, members=members, per_tensor=True)
    shape = () if members is None else (members,)
    assert r.norm_before.shape == r.norm_after.shape == r.fired.shape == shape
    assert not bool(r.fired.any()) and not bool(r.nonfinite.any())
    assert float(r.norm_before.sum()) == 0.0 and r.per_tensor_norms == []
    assert CLIPPERS[name]([], 1.0).per_tensor_norms is None


def test_plain_tensors_without_grad_warn_to_use_grad_false() -> None:
    with pytest.warns(UserWarning, match="use_grad=False"):
        r = clip.clip_by_global_norm_([torch.ones(3)], 1.0)
    assert not bool(r.fired)


def test_result_is_frozen_and_zero_dimensional() -> None:
    r = clip.clip_by_value_([torch.tensor([2.0])], 1.0, use_grad=False)
    assert r.fired.dtype == r.nonfinite.dtype == torch.bool
    assert r.norm_before.shape == () and r.norm_before.item() == 2.0
    with pytest.raises(AttributeError):
        r.fired = torch.tensor(False)  # type: ignore[misc]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("name", list(CLIPPERS))
@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf])
def test_bad_threshold_raises_value_error(name: str, value: float) -> None:
    fn = CLIPPERS[name].__name__
    match = rf"'{THRESHOLD_NAMES[name]}' parameter of {fn} must be a finite number > 0"
    with pytest.raises(ValueError, match=match):
        CLIPPERS[name](params_with_grads(), value)


@pytest.mark.parametrize("name", list(CLIPPERS))
def test_bad_threshold_type_raises_type_error(name: str) -> None:
    for value in [True, "1.0", torch.ones(())]:
        with pytest.raises(TypeError, match=f"'{THRESHOLD_NAMES[name]}' parameter"):
            CLIPPERS[name](params_with_grads(), value)


@pytest.mark.parametrize("name", list(CLIPPERS))
def test_bad_per_member_threshold_raises(name: str) -> None:
    params = stacked_params(None)
    with pytest.raises(ValueError, match=r"tensor of shape \(4,\) .*Got 'a torch.float64 tensor"):
        CLIPPERS[name](params, torch.ones(M + 1, dtype=torch.float64), members=M)
    with pytest.raises(ValueError, match=r"floating point"):
        CLIPPERS[name](params, torch.ones(M, dtype=torch.int64), members=M)
    for bad in [0.0, -1.0, math.nan, math.inf]:
        thresholds = torch.tensor([1.0, bad, 1.0, 1.0])
        with pytest.raises(ValueError, match=r"Got \[1\.0, .*\] instead"):
            CLIPPERS[name](params, thresholds, members=M)


@pytest.mark.parametrize("name", list(CLIPPERS))
def test_mismatched_member_dims_raise_naming_the_shapes(name: str) -> None:
    params = [nn.Parameter(torch.ones(4, 3)), nn.Parameter(torch.ones(5, 3))]
    for p in params:
        p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match=r"'members' .* Got 4 .*\[\(4, 3\), \(5, 3\)\]"):
        CLIPPERS[name](params, 1.0, members=4)
    with pytest.raises(ValueError, match="'members' parameter"):
        CLIPPERS[name](params, 1.0, members=0)


@pytest.mark.parametrize("name", list(CLIPPERS))
def test_bad_options_raise(name: str) -> None:
    params = params_with_grads()
    with pytest.raises(ValueError, match=r"'nonfinite' .*Did you mean 'skip'\?"):
        CLIPPERS[name](params, 1.0, nonfinite="skp")
    with pytest.raises(TypeError, match="'nonfinite' parameter"):
        CLIPPERS[name](params, 1.0, nonfinite=None)
    with pytest.raises(TypeError, match="'per_tensor' parameter"):
        CLIPPERS[name](params, 1.0, per_tensor="yes")
    with pytest.raises(TypeError, match="an item of type str"):
        CLIPPERS[name]([*params, "w"], 1.0)
    with pytest.raises(TypeError, match="a tensor or an iterable of tensors"):
        CLIPPERS[name](1.0, 1.0)


@pytest.mark.parametrize("name", ["norm", "global_norm", "agc"])
def test_bad_eps_raises(name: str) -> None:
    fn = CLIPPERS[name].__name__
    with pytest.raises(ValueError, match=rf"'eps' parameter of {fn} must be a finite number >= 0"):
        CLIPPERS[name](params_with_grads(), 1.0, eps=-1e-6)


@pytest.mark.parametrize("name", ["norm", "global_norm"])
def test_bad_norm_type_raises(name: str) -> None:
    with pytest.raises(ValueError, match="'norm_type' parameter .* >= 1"):
        CLIPPERS[name](params_with_grads(), 1.0, norm_type=0.5)
    with pytest.raises(TypeError, match="'norm_type' parameter"):
        CLIPPERS[name](params_with_grads(), 1.0, norm_type="inf")


def test_bad_use_grad_raises() -> None:
    with pytest.raises(TypeError, match="'use_grad' parameter"):
        clip.clip_by_value_(params_with_grads(), 1.0, use_grad="no")  # type: ignore[arg-type]


def test_adaptive_clip_bad_grads_raise() -> None:
    params = params_with_grads()
    with pytest.raises(ValueError, match=r"'grads' parameter .*4 in all\. Got '3 of them'"):
        clip.adaptive_clip_(params, 0.01, grads=grads_of(params)[:3])
    grads: list[torch.Tensor | None] = [g.clone() for g in grads_of(params)]
    grads[0] = torch.ones(7, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"shape \(5, 7\) with a gradient of shape \(7, 5\)"):
        clip.adaptive_clip_(params, 0.01, grads=grads)


# ---------------------------------------------------------------- no host-device sync


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(CLIPPERS))
@pytest.mark.parametrize("nonfinite", ["skip", "pass"])
def test_no_host_device_sync_on_cuda(name: str, nonfinite: str) -> None:
    params = [nn.Parameter(torch.randn(M, 8, 4, device="cuda")) for _ in range(3)]
    for p in params:
        p.grad = torch.randn_like(p)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        r = CLIPPERS[name](params, 0.1, members=M, nonfinite=nonfinite, per_tensor=True)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert r.fired.device.type == "cuda"


def test_a_tensor_listed_twice_is_clipped_and_counted_once() -> None:
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    p.grad = torch.tensor([3.0, 4.0], dtype=torch.float64)
    result = clip.clip_by_global_norm_([p, p], 1.0, eps=0.0)
    assert result.norm_before.item() == pytest.approx(5.0)
    assert result.norm_after.item() == pytest.approx(1.0)
    assert p.grad.norm().item() == pytest.approx(1.0)
