"""The probe itself: one forward and backward pass of a copy of the model, recorded.

:func:`probe` checks its arguments, runs the model on the batch inside a
:class:`~initlab.probe.Watch` (naming the layer, the shapes or the dtypes where the
model cannot take the batch, and the counts where it cannot score the labels), and with
``steps > 0`` takes a few optimizer steps on the copy to measure the update:weight ratio.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from initlab._validation import check_int, check_real, param_message
from initlab.models import Stack, StackedLinear
from initlab.probe.results import Probe, ProbeReport
from initlab.probe.verdicts import Thresholds
from initlab.probe.watch import Watch, _check_options, _class_width

__all__ = ["probe"]


def probe(
    model: nn.Module,
    batch: Tensor | tuple[Tensor, Any],
    loss_fn: Callable[..., Tensor] | None = None,
    steps: int = 0,
    *,
    lr: float = 0.01,
    optimizer: Callable[[Any], torch.optim.Optimizer] | None = None,
    train: bool | None = True,
    thresholds: Thresholds | None = None,
    histograms: bool = True,
    forecast: bool = True,
    seed: int = 0,
) -> ProbeReport:
    """Why ``model`` will not train, layer by layer, and what to change.

    Runs one forward and backward pass of a copy of ``model`` on ``batch`` with hooks on
    every layer (removed afterwards, also on error). With ``loss_fn`` the gradient is that
    of ``loss_fn(model(x), target)`` (or ``loss_fn(model(x))`` for a batch without
    targets); without, ∂loss/∂output is drawn from N(0, 1) (divided by the batch size, as
    for a mean loss), the assumption of the
    signal-propagation theory, which then forecasts every layer's gradient. With
    ``steps > 0``, runs that many optimizer steps on the copy and reports the mean
    update:weight ratio per step (≈ 1e-3 is the usual healthy rule of thumb).

    Args:
        model: any ``nn.Module`` with Linear or Conv layers, or an initlab ``Stack`` (each
            member is probed; a stack's ``loss_fn`` should sum the members' losses).
        batch: x, or (x, target).
        loss_fn: the loss, returning a scalar; None for the N(0, 1) output gradient.
        steps: optimizer steps to take on the copy after the probe pass (needs loss_fn).
        lr: the learning rate of the default optimizer, SGD.
        optimizer: a factory ``params → torch.optim.Optimizer``, instead of SGD(lr).
        train: probe in training mode (batch norm uses batch statistics, as training
            does); False for eval mode; None keeps the model's mode.
        thresholds: when measurements become verdicts.
        histograms: keep histograms of every layer's output and gradient (for the figure).
        forecast: compute the signal-propagation forecast beside the measurements.
        seed: seeds the N(0, 1) output gradient and the symmetry test.

    Returns:
        A :class:`ProbeReport`: one :class:`Probe` per member of an initlab ``Stack``,
        one (``member`` None) for any other model. A one-member report reads as its
        member (``report.verdicts``, ``report.layers``, ...).

    Raises:
        TypeError: model is not an nn.Module; batch is not a tensor or a pair; an integer
            batch that the first layer cannot take (it names both dtypes); an option of
            the wrong type.
        ValueError: a model without parameters or without Linear/Conv layers; a batch with
            NaN/Inf; a batch the model cannot take (the error names the layer and both
            shapes); integer labels beyond the model's outputs (it names both counts); a
            loss that is not a scalar; steps > 0 without a loss_fn.

    References:
        Glorot & Bengio 2010; He et al. 2015; Poole et al. 2016; Schoenholz et al. 2017.

    Example:
        >>> model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
        >>> _ = nn.init.zeros_(model[0].weight), nn.init.zeros_(model[0].bias)
        >>> report = probe(model, torch.randn(64, 10))
        >>> report.verdict("symmetric").evidence
        'layer 1: 97% of the units compute the same function as another unit (only 1 distinct).'
    """
    steps, lr = _check_arguments(
        model,
        steps=steps,
        lr=lr,
        optimizer=optimizer,
        loss_fn=loss_fn,
        train=train,
        thresholds=thresholds,
        histograms=histograms,
        forecast=forecast,
        seed=seed,
    )
    x, target = _split_batch(batch)
    work = copy.deepcopy(model)
    if train is not None:
        work.train(train)
    for p in work.parameters():
        p.grad = None
    watch = Watch(work, thresholds=thresholds, histograms=histograms, forecast=forecast)
    output, loss = _recorded_pass(work, watch, x, target, loss_fn, seed, isinstance(model, Stack))
    if not output.requires_grad:
        raise ValueError(
            "The model's output does not require grad: are its parameters frozen "
            "(requires_grad=False) or is it run under torch.no_grad()?"
        )
    loss.backward()  # type: ignore[no-untyped-call]
    # Before the steps change the weights.
    result = watch.report(loss=loss if loss_fn is not None else None, target=target)
    if not steps:
        return result
    ratios, after = _take_steps(work, watch, x, target, loss_fn, steps, optimizer, lr)
    return _with_steps(result, ratios, after)


def _check_arguments(
    model: object,
    *,
    steps: object,
    lr: object,
    optimizer: object,
    loss_fn: object,
    train: object,
    thresholds: object,
    histograms: object,
    forecast: object,
    seed: object,
) -> tuple[int, float]:
    """probe's checks, in the order of its arguments; returns steps and lr."""
    fn = "probe"
    if not isinstance(model, nn.Module):
        raise TypeError(param_message(fn, "model", "an nn.Module", type(model).__name__))
    if next(model.parameters(), None) is None:
        raise ValueError(
            f"The model {type(model).__name__} has no parameters: there is nothing to probe. "
            "Pass the network itself (with its Linear/Conv layers)."
        )
    checked_steps = check_int(fn, "steps", steps, low=0)
    checked_lr = check_real(fn, "lr", lr, low=0.0, low_open=True)
    _check_options(fn, thresholds, histograms=histograms, forecast=forecast)
    check_int(fn, "seed", seed, low=0)
    for name, value in (("loss_fn", loss_fn), ("optimizer", optimizer)):
        if value is not None and not callable(value):
            raise TypeError(param_message(fn, name, "a callable or None", type(value).__name__))
    if train is not None and not isinstance(train, bool):
        raise TypeError(param_message(fn, "train", "True, False or None", train))
    if checked_steps > 0 and loss_fn is None:
        raise ValueError(
            param_message(fn, "loss_fn", "a loss when steps > 0", None, "Pass loss_fn, or steps=0.")
        )
    return checked_steps, checked_lr


def _recorded_pass(
    work: nn.Module,
    watch: Watch,
    x: Tensor,
    target: Any,
    loss_fn: Callable[..., Tensor] | None,
    seed: int,
    stacked: bool,
) -> tuple[Tensor, Tensor]:
    """The model's output and loss on the batch, recorded by ``watch``; an error names
    the layer and both shapes, the dtypes, or the counts of outputs and classes."""
    # Only named when the forward fails: a model may convert its input itself (uint8
    # images divided by 255 in forward), so an integer batch is not wrong in itself.
    wrong_dtype = _input_dtype_problem(work, x)
    try:
        with watch, _named_failure(watch), torch.enable_grad():
            output = work(x)
            if not isinstance(output, Tensor):
                raise TypeError(
                    f"probe needs the model to return a tensor. Got {type(output).__name__}."
                )
            _check_classes(output, target, stacked, failed=False)
            try:
                loss = _loss(output, target, loss_fn, seed, stacked)
            except (IndexError, RuntimeError, ValueError):
                _check_classes(output, target, stacked, failed=True)
                raise
            watch._done = True
    except (RuntimeError, ValueError) as error:
        if wrong_dtype is not None and not isinstance(error, _ClassError):
            raise TypeError(wrong_dtype) from error
        raise
    return output, loss


def _with_steps(report: ProbeReport, ratios: list[list[Tensor]], after: float) -> ProbeReport:
    """The report with each layer's mean update:weight ratio and the loss after the steps."""
    mean = torch.stack([torch.stack(step) for step in ratios]).mean(dim=0)  # (layers, M)

    def stepped(p: Probe, m: int) -> Probe:
        layers = tuple(
            replace(s, update_weight_ratio=float(mean[i, m if mean.shape[1] > 1 else 0]))
            for i, s in enumerate(p.layers)
        )
        return replace(p, layers=layers, loss_after_steps=after)

    return ProbeReport(tuple(stepped(p, m) for m, p in enumerate(report)))


def _split_batch(batch: object) -> tuple[Tensor, Any]:
    fn = "probe"
    if isinstance(batch, Tensor):
        x, target = batch, None
    elif isinstance(batch, tuple | list) and len(batch) == 2 and isinstance(batch[0], Tensor):
        x, target = batch[0], batch[1]
    else:
        raise TypeError(
            param_message(fn, "batch", "a tensor x or a pair (x, target)", type(batch).__name__)
        )
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"The batch holds {bad} non-finite value(s) (NaN or Inf) out of {x.numel()}: the "
            "probe would report them as the model's fault. Clean or impute the data first."
        )
    return x, target


def _input_dtype_problem(model: nn.Module, x: Tensor) -> str | None:
    """What is wrong when an integer batch meets a first layer that computes in floats."""
    if x.is_floating_point() or x.is_complex():
        return None
    for name, module in model.named_modules():
        own = next(module.parameters(recurse=False), None)
        if own is None:
            continue
        if isinstance(module, nn.Embedding | nn.EmbeddingBag) or not own.is_floating_point():
            return None
        return (
            f"The batch is {x.dtype}, but the model's first layer {name or '(the model)'!r} "
            f"({type(module).__name__}) computes in {own.dtype}: it takes floating-point "
            f"input. Convert the batch (x.to({own.dtype})); integer ids (tokens, categories) "
            "need an nn.Embedding as the first layer."
        )
    return None


class _ClassError(ValueError):
    """Integer labels beyond the model's outputs (not a dtype problem)."""


def _check_classes(output: Tensor, target: object, stacked: bool, *, failed: bool) -> None:
    """Refuse integer labels that the model's outputs cannot score, naming both counts.

    A model with several outputs is checked before the loss (on a GPU an out-of-range
    label is a device-side assert); one output may be a regression onto integer targets,
    so it is checked only once the loss has failed.
    """
    if (
        not isinstance(target, Tensor)
        or target.dtype == torch.bool
        or target.is_floating_point()
        or target.is_complex()
        or target.numel() == 0
    ):
        return
    # torch's class dimension: 1 for (N, C, …) outputs; a stack's (M, N, C): the last.
    width: int | None = None
    if stacked and output.ndim == target.ndim + 2:
        width = output.shape[-1]
    elif not stacked and output.ndim == target.ndim + 1 and output.ndim >= 2:
        width = _class_width(output, target)
    if width is None:
        return
    classes = int(target.max()) + 1
    if width >= classes or (width == 1 and (classes <= 2 or not failed)):
        return
    raise _ClassError(
        f"The model has {width} output{'s' if width > 1 else ''} per example, but the "
        f"targets hold labels up to {classes - 1}: {classes} classes need {classes} outputs "
        f"(one logit each). Give the model's last layer {classes} outputs, or check the "
        "targets."
    )


def _expected_input(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return f"(…, {module.in_features})"
    if isinstance(module, StackedLinear):
        return f"(B, {module.in_features}) or ({module.members}, B, {module.in_features})"
    if isinstance(module, nn.modules.conv._ConvNd):
        dims = len(module.kernel_size)
        return f"(B, {module.in_channels}, {', '.join('…' * dims)})"
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return f"(B, {module.num_features}, …)"
    return "its usual input"


@contextlib.contextmanager
def _named_failure(watch: Watch) -> Iterator[None]:
    """Re-raise an error inside the forward pass naming the layer and both shapes."""
    try:
        yield
    except (RuntimeError, ValueError) as error:
        culprit = watch._culprit()
        if culprit is None:
            raise
        name, module, shape = culprit
        raise ValueError(
            f"The forward pass failed in layer {name!r} ({module}): it expects input "
            f"{_expected_input(module)} and got {shape}. Check the batch's shape against the "
            f"model's first layer. ({type(error).__name__}: {error})"
        ) from error


def _loss(
    output: Tensor,
    target: Any,
    loss_fn: Callable[..., Tensor] | None,
    seed: int,
    stacked: bool = False,
) -> Tensor:
    if loss_fn is None:
        g = torch.Generator(device=output.device).manual_seed(seed)
        # A stack's members all get the gradient a member alone would get.
        shape = output.shape[1:] if stacked else output.shape
        grad = torch.randn(shape, generator=g, device=output.device, dtype=output.dtype)
        # Averaged over the examples, as a mean loss is, so ‖∇W‖/‖W‖ reads on its scale.
        return (output * grad).sum() / shape[0]
    loss = loss_fn(output) if target is None else loss_fn(output, target)
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        got = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(
            f"The loss must be a scalar tensor. Got {got}: reduce it (e.g. .mean(), or "
            "reduction='mean'); for a stack, sum the members' losses."
        )
    return loss.reshape(())


def _take_steps(
    work: nn.Module,
    watch: Watch,
    x: Tensor,
    target: Any,
    loss_fn: Callable[..., Tensor] | None,
    steps: int,
    optimizer: Callable[[Any], torch.optim.Optimizer] | None,
    lr: float,
) -> tuple[list[list[Tensor]], float]:
    """Optimizer steps on the copy: per step, per layer, ‖ΔW‖/‖W‖ per member."""
    opt = optimizer(work.parameters()) if optimizer else torch.optim.SGD(work.parameters(), lr=lr)
    ratios: list[list[Tensor]] = []
    loss = math.nan
    for step in range(steps):
        if step:
            opt.zero_grad()
            out = work(x)
            current = _loss(out, target, loss_fn, 0)
            current.backward()  # type: ignore[no-untyped-call]
        before = watch._weights_now()
        opt.step()
        after = watch._weights_now()
        ratios.append(
            [
                (a - b).double().flatten(1).norm(dim=1) / b.double().flatten(1).norm(dim=1)
                for a, b in zip(after, before, strict=True)
            ]
        )
    with torch.no_grad():
        loss = float(_loss(work(x), target, loss_fn, 0))
    if not math.isfinite(loss):
        warnings.warn(
            f"The loss is {loss} after {steps} steps at lr={lr:g}: lower the learning rate.",
            RuntimeWarning,
            stacklevel=3,
        )
    return ratios, loss
