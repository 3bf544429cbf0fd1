"""What the probe measures in a recurrent module (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``).

A recurrent core is one module whose weights are used at every time step, so the
chain-of-layers statistics see it as one layer and miss what decides whether it trains:
whether the gradient that the loss sends to the last step reaches the early steps
(Bengio et al. 1994; Pascanu et al. 2013), and whether its gates sit in the flat tails
of their sigmoid or tanh (Hochreiter & Schmidhuber 1997; Gers et al. 2000). An LSTM
whose gradient never reaches step 0 looks healthy layer by layer.

torch's fused kernels give none of the per-step states back, so :class:`RecurrentRecord`
keeps the module's input and initial state as the pass goes and, at
:meth:`~RecurrentRecord.stats`, replays the pass unrolled step by step with torch ops on
float64 copies of the module's own parameters (every layer, both directions), checks
that the replay gives the module's recorded output, and back-propagates through the top
layer's recurrence alone. The gradients the loss sent to the module's outputs are caught
by tensor hooks during the training step's own backward pass. The replay costs one more
forward pass of the module and two backward passes of its top layer, in float64, once
per report (an LSTM of hidden 256, 100 steps, batch 64: about 0.3 s on two CPU cores).
Its names are the package's own (not public API).

References:
    Bengio, Simard & Frasconi 1994, "Learning long-term dependencies with gradient
    descent is difficult"; Hochreiter & Schmidhuber 1997, "Long short-term memory";
    Gers, Schmidhuber & Cummins 2000, "Learning to forget"; Pascanu, Mikolov & Bengio
    2013, "On the difficulty of training recurrent neural networks".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from initlab.probe.results import RecurrentStats
from initlab.probe.verdicts import _DEFAULTS, Thresholds, per_layer_factor

# Each kind's gates, in the order of the rows of its weight_ih / weight_hh, and whether
# each is a sigmoid (else a tanh; "hidden" is the plain RNN's own φ).
_GATES: dict[str, tuple[tuple[str, bool], ...]] = {
    "LSTM": (("input", True), ("forget", True), ("cell", False), ("output", True)),
    "GRU": (("reset", True), ("update", True), ("new", False)),
    "RNN_TANH": (("hidden", False),),
    "RNN_RELU": (("hidden", False),),
}

# How far the float64 replay may be from the module's recorded output, relative to the
# output's largest value, by the precision the module computes in. Its output carries that
# precision's rounding, compounded over the steps: measured on the CPU (default-init
# LSTM, GRU and RNN, 1 and 3 bidirectional layers, 100 steps), float32 differs by
# 2e-7–7e-7, float16 by 7e-4–1e-3, bfloat16 by 3e-3–8e-3. On a GPU, cuDNN computes
# float32 in TF32 (10 bits, as float16) unless torch.backends.cudnn.allow_tf32 is off.
# A wrong replay (another gate order, a subclass's own forward) differs by far more.
_TOLERANCE = {"float64": 1e-9, "float32": 1e-4, "float16": 2e-2, "tf32": 2e-2, "bfloat16": 5e-2}
_EPS = {"float64": 2.0**-52, "float32": 2.0**-23, "float16": 2.0**-10, "tf32": 2.0**-10}


def _precision(dtype: torch.dtype, device: torch.device) -> str:
    """The precision a recurrent module of this dtype computes in on this device."""
    name = str(dtype).removeprefix("torch.")
    tf32 = torch.backends.cudnn.enabled and torch.backends.cudnn.allow_tf32
    if name == "float32" and device.type == "cuda" and tf32:
        return "tf32"
    return name


# The replay is accepted where it is no farther than this from the module's output,
# relative to how far the module's own rounding, amplified by a chaotic recurrence, moves
# it (see _check).
_CHAOS = 10.0

_SEED = 0  # the fixed seed of the N(0, 1) seed gradient, so that reports are reproducible


def unsupported(
    module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: object
) -> str | None:
    """Why the probe cannot replay this call of a recurrent module, or None if it can.

    Cheap: it reads the module's settings and the call's types, before any work.

    Args:
        module: the module called (an ``nn.RNNBase``: ``nn.RNN``, ``nn.LSTM``, ``nn.GRU``).
        args: its positional arguments (``input``, perhaps ``hx``).
        kwargs: its keyword arguments.
        output: what it returned.

    Returns:
        A short reason in words ("a PackedSequence input"), or None.
    """
    if not isinstance(module, nn.RNNBase) or module.mode not in _GATES:
        return f"not a recurrent module the probe replays ({type(module).__name__})"
    x = args[0] if args else kwargs.get("input")
    if isinstance(x, PackedSequence):
        return "a PackedSequence input (the replay needs the padded sequence)"
    if not isinstance(x, Tensor) or not x.is_floating_point():
        return f"an input that is not a floating-point tensor ({type(x).__name__})"
    if x.dim() not in (2, 3) or x.shape[0] == 0 or (x.dim() == 3 and x.shape[1] == 0):
        return (
            f"an input of shape {tuple(x.shape)} (the replay needs (T, B, features) with T, B > 0)"
        )
    if getattr(module, "proj_size", 0) > 0:
        return f"proj_size > 0 ({module.proj_size}: an LSTM with projections)"
    if not (isinstance(output, tuple) and len(output) == 2 and isinstance(output[0], Tensor)):
        return f"an output that is not (output, h_n) ({type(output).__name__})"
    return None


class RecurrentRecord:
    """One call of a recurrent module, recorded for :meth:`stats`.

    Made by Watch's forward hook after the module's forward ran, under the grad mode of
    the pass. It keeps the input and the initial state (detached) and registers hooks on
    the outputs that require grad, which catch ∂loss/∂output, ∂loss/∂h_n and ∂loss/∂c_n
    when the backward pass reaches them.

    Args:
        name: the module's qualified name.
        module: the module (an ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU``).
        args: its positional arguments in this call.
        kwargs: its keyword arguments in this call.
        output: what it returned.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> lstm = nn.LSTM(3, 8)
        >>> x = torch.randn(20, 4, 3)
        >>> out = lstm(x)
        >>> record = RecurrentRecord("lstm", lstm, (x,), {}, out)
        >>> out[0].pow(2).sum().backward()
        >>> s = record.stats()
        >>> s.steps, len(s.grad_through_time), 0 < s.time_factor < 1
        (20, 20, True)
    """

    def __init__(
        self,
        name: str,
        module: nn.RNNBase,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        output: object,
    ) -> None:
        self.name = name
        self.module: nn.RNNBase | None = module
        self._reason = unsupported(module, args, kwargs, output)
        self._result: RecurrentStats | str | None = self._reason
        self._grads: dict[str, Tensor] = {}
        if self._reason is not None:
            self.module = None
            return
        x = args[0] if args else kwargs["input"]
        hx = args[1] if len(args) > 1 else kwargs.get("hx")
        self._x: Tensor | None = x.detach()
        self._hx: tuple[Tensor, ...] | None = None
        if isinstance(hx, Tensor):
            self._hx = (hx.detach(),)
        elif isinstance(hx, tuple | list):
            self._hx = tuple(h.detach() for h in hx)
        assert isinstance(output, tuple)  # checked by unsupported
        out, state = output
        finals = state if isinstance(state, tuple) else (state,)
        self._out: tuple[Tensor, ...] | None = (out.detach(), *(h.detach() for h in finals))
        for key, t in zip(("output", "h_n", "c_n"), (out, *finals), strict=False):
            if isinstance(t, Tensor) and t.requires_grad:
                t.register_hook(self._catch(key))  # type: ignore[no-untyped-call]

    def _catch(self, key: str) -> Callable[[Tensor], None]:
        def hook(grad: Tensor) -> None:
            # A second backward pass through the same graph adds up, as .grad would.
            g = grad.detach()
            self._grads[key] = self._grads[key] + g if key in self._grads else g

        return hook

    def stats(self, thresholds: Thresholds | None = None) -> RecurrentStats | str:
        """The module's :class:`RecurrentStats`, after the backward pass.

        The replay runs every layer and direction in float64 from the recorded initial
        state (zeros without one) and must give the module's recorded output within a
        tolerance set by the precision it computes in (relative to the output's largest
        value: 1e-9 for float64, 1e-4 for float32, 2e-2 for float16 and for float32 in
        cuDNN's TF32, 5e-2 for bfloat16), or, where the recurrence is chaotic, no farther
        from it than its own rounding moves it.

        ``grad_through_time[t]`` is the RMS of ∂(g·h_{T−1})/∂h_t of the top layer's
        forward direction (for a bidirectional module; its reverse direction is replayed
        but not measured), back-propagated through the recurrence alone (the weights and
        the layer's input held fixed). The seed g is what the loss sent to h_{T−1} (the
        output's last step and h_n of that layer), or N(0, 1) with a fixed seed where no
        gradient was caught or it is all zero. ``time_factor`` is
        :func:`~initlab.probe.verdicts.per_layer_factor` of these values from t = T − 1
        back to 0: the geometric change per step going back, 0 where the gradient at some
        step is exactly 0. ``loss_grad[t]`` is the RMS of the loss's own ∂loss/∂h_t
        (its direct part and what comes back through later steps, h_n and c_n), nan at
        every step where no gradient was caught.

        Gate saturation counts a sigmoid gate below ``thresholds.sigmoid_saturation`` or
        above 1 minus it, and a tanh gate (LSTM's cell candidate, GRU's new state, a
        tanh RNN's h) beyond ``thresholds.tanh_saturation`` in absolute value, over all
        layers, directions, steps and examples (nan for a relu RNN's h, which cannot
        saturate). ``hidden_rms`` is that of the module's recorded output.

        With dropout between layers in training mode, the replay draws masks of its own
        (the module's are not kept): the layers above the first then run on a pass like the
        module's rather than on the module's, and only the first layer is checked.

        Nothing is kept after it returns; a second call returns the same result.

        Args:
            thresholds: the saturation thresholds (the probe's defaults when None).

        Returns:
            The statistics, or why the module could not be measured (a short reason the
            report lists among what it could not see).
        """
        if self._result is not None:
            return self._result
        t = thresholds if thresholds is not None else _DEFAULTS
        try:
            # The replay is differentiated whatever the caller's grad mode.
            with torch.inference_mode(False), torch.enable_grad():
                self._result = self._measure(t)
        finally:
            self.module = self._x = self._hx = self._out = None
            self._grads = {}
        return self._result

    def _measure(self, t: Thresholds) -> RecurrentStats | str:
        module, x, out = self.module, self._x, self._out
        assert module is not None and x is not None and out is not None
        mode, layers, hidden = module.mode, module.num_layers, module.hidden_size
        dirs = 2 if module.bidirectional else 1
        batched = x.dim() == 3
        device = next(module.parameters()).device
        f64 = torch.float64

        def seq(a: Tensor) -> Tensor:  # a (T, B, ·) float64 view of a sequence
            a = a.to(device, f64)
            if not batched:
                return a.unsqueeze(1)
            return a.transpose(0, 1) if module.batch_first else a

        def state(a: Tensor) -> Tensor:  # (L·D, B, H)
            a = a.to(device, f64)
            return a if batched else a.unsqueeze(1)

        xs = seq(x)
        steps, batch = xs.shape[0], xs.shape[1]
        zeros = torch.zeros(layers * dirs, batch, hidden, dtype=f64, device=device)
        h0 = state(self._hx[0]) if self._hx else zeros
        c0 = state(self._hx[1]) if self._hx and len(self._hx) > 1 else zeros

        gates = _GateSums(mode, hidden, t, device)
        # Dropout between layers acts in training only, and not after the last layer.
        dropout = module.dropout if module.training and layers > 1 else 0.0
        replay = _replay(module, xs, h0, c0, gates, dropout=dropout)
        recorded = [seq(out[0]), *(state(o) for o in out[1:])]
        reason = _check(module, replay, recorded, xs, h0, c0, first_layer=dropout > 0)
        if reason is not None:
            return reason
        top_hs, top_c = replay.top_hs, replay.top_c

        # ∂loss/∂(top layer's forward h_t), as caught: (T, B, H) each, or None.
        caught = self._grads
        g_out = seq(caught["output"])[:, :, :hidden] if "output" in caught else None
        top = (layers - 1) * dirs
        g_hn = state(caught["h_n"])[top] if "h_n" in caught else None
        g_cn = state(caught["c_n"])[top] if "c_n" in caught else None

        seed = torch.zeros(batch, hidden, dtype=f64, device=device)
        if g_out is not None:
            seed = seed + g_out[-1]
        if g_hn is not None:
            seed = seed + g_hn
        if not bool(seed.any()):
            gen = torch.Generator(device=device).manual_seed(_SEED)
            seed = torch.randn(batch, hidden, generator=gen, dtype=f64, device=device)
        through = _grads(top_hs, [top_hs[-1]], [seed], retain=True)

        if caught:
            outputs, cotangents = (
                list(top_hs),
                [g_out[i] if g_out is not None else torch.zeros_like(seed) for i in range(steps)],
            )
            if g_hn is not None:
                cotangents[-1] = cotangents[-1] + g_hn
            if g_cn is not None and mode == "LSTM":
                outputs.append(top_c)
                cotangents.append(g_cn)
            loss = _grads(top_hs, outputs, cotangents, retain=False)
        else:
            loss = torch.full((steps,), math.nan, dtype=f64)

        # Every number read at once.
        sums = torch.cat([gates.saturated, gates.total, recorded[0].pow(2).mean().reshape(1)])
        numbers = torch.cat([through, loss.to(device), sums]).tolist()
        through_t, loss_t = tuple(numbers[:steps]), tuple(numbers[steps : 2 * steps])
        n = gates.n
        saturated, total = numbers[2 * steps : 2 * steps + n], numbers[2 * steps + n : -1]
        names = [g for g, _ in _GATES[mode]]
        relu = mode == "RNN_RELU"
        return RecurrentStats(
            name=self.name,
            kind=mode,
            layers=layers,
            hidden=hidden,
            steps=steps,
            grad_through_time=through_t,
            time_factor=per_layer_factor(through_t[::-1]),
            loss_grad=loss_t,
            gate_saturation={
                g: math.nan if relu else k / gates.count
                for g, k in zip(names, saturated, strict=True)
            },
            gate_mean={g: m / gates.count for g, m in zip(names, total, strict=True)},
            hidden_rms=math.sqrt(numbers[-1]),
        )


@dataclass
class _Replay:
    """The replay of a whole pass: the top layer's outputs (T, B, D·H), every layer's
    last h and c (L·D, B, H), and the top layer's forward h_t and last c, in the graph
    of the recurrence (where it was tracked)."""

    outputs: Tensor
    h_n: Tensor
    c_n: Tensor
    top_hs: list[Tensor]
    top_c: Tensor


def _replay(
    module: nn.RNNBase,
    xs: Tensor,
    h0: Tensor,
    c0: Tensor,
    gates: _GateSums | None,
    weights: Callable[[Tensor], Tensor] | None = None,
    dropout: float = 0.0,
) -> _Replay:
    """Every layer and direction of ``module`` over ``xs`` (T, B, features) from h0, c0
    (L·D, B, H), in float64. With ``gates``, the top layer's forward direction is
    tracked (its graph starts at its initial state: the recurrence alone is
    differentiated) and the gates' activations are added to ``gates``. ``weights``, where
    given, maps each weight and bias before use. ``dropout``: the dropout between layers,
    with masks drawn from a fixed seed."""
    layers, hidden, dirs = module.num_layers, module.hidden_size, 2 if module.bidirectional else 1
    steps, batch = xs.shape[0], xs.shape[1]
    finals_h, finals_c = [], []
    top_hs: list[Tensor] = []
    top_c = c0[0]
    inp = xs
    gen = torch.Generator(device=xs.device).manual_seed(_SEED) if dropout > 0 else None
    for layer in range(layers):
        outs = torch.empty(steps, batch, dirs * hidden, dtype=xs.dtype, device=xs.device)
        for d in range(dirs):
            k = layer * dirs + d
            tracked = gates is not None and layer == layers - 1 and d == 0
            h, c = h0[k], c0[k]
            if tracked:
                h, c = h.clone().requires_grad_(), c.clone().requires_grad_()
            with torch.set_grad_enabled(tracked):
                hs, h, c = _unroll(
                    module.mode,
                    inp,
                    _weights(module, layer, d, weights),
                    h,
                    c,
                    reverse=d == 1,
                    out=outs[:, :, d * hidden : (d + 1) * hidden],
                    gates=gates,
                )
            finals_h.append(h.detach())
            finals_c.append(c.detach())
            if layer == layers - 1 and d == 0:
                top_hs, top_c = hs, c
        inp = outs
        if gen is not None and layer < layers - 1:
            keep = torch.empty_like(outs).bernoulli_(1 - dropout, generator=gen)
            inp = outs * keep / (1 - dropout)
    return _Replay(inp, torch.stack(finals_h), torch.stack(finals_c), top_hs, top_c)


def _check(
    module: nn.RNNBase,
    replay: _Replay,
    recorded: list[Tensor],
    xs: Tensor,
    h0: Tensor,
    c0: Tensor,
    *,
    first_layer: bool,
) -> str | None:
    """Why the replay is not the module's recorded pass, or None where it is.

    ``recorded`` is the module's (output, h_n[, c_n]) in the replay's layout, float64.
    The replay must agree within a tolerance set by the module's dtype (``_TOLERANCE``),
    relative to the largest recorded value.

    A chaotic recurrence (a tanh RNN with a large W_hh) amplifies the module's own
    rounding step after step until its output owes little to anything but the order of
    its sums. There the replay is also accepted when it is within ``_CHAOS`` times the
    distance between itself and a second replay whose weights, input and initial state
    are perturbed by the rounding of the module's dtype (relative N(0, eps²)): the
    module's output is then as reproducible as its dtype allows. A wrong replay (another
    gate order, a subclass's own forward) differs from the first steps on, by far more
    than rounding, and is refused wherever the recurrence does not amplify.

    With ``first_layer``, only the first layer's last states are compared (its h_n and
    c_n, which depend on every step of the layer): the layers above it saw the module's
    dropout masks, which are not kept.
    """
    weight = next(module.parameters())
    precision = _precision(weight.dtype, weight.device)
    dirs = 2 if module.bidirectional else 1

    def compared(r: _Replay) -> list[Tensor]:
        values = [r.outputs, r.h_n] + ([r.c_n] if module.mode == "LSTM" else [])
        return [v[:dirs] for v in values[1:]] if first_layer else values

    replayed = compared(replay)
    if first_layer:
        recorded = [r[:dirs] for r in recorded[1:]]
    # One read of both numbers.
    scale, error = torch.stack(
        [
            torch.stack([r.abs().max() for r in recorded]).max(),
            torch.stack(
                [(a - b).abs().max() for a, b in zip(replayed, recorded, strict=True)]
            ).max(),
        ]
    ).tolist()
    if not math.isfinite(scale):
        return "its output holds NaN or Inf"
    tolerance = _TOLERANCE.get(precision, 5e-2)
    if error <= tolerance * scale:
        return None
    eps = _EPS.get(precision, 2.0**-7)  # bfloat16's, for any other
    gen = torch.Generator(device=xs.device).manual_seed(_SEED)

    def perturbed(a: Tensor) -> Tensor:
        return a * (1 + eps * torch.randn(a.shape, generator=gen, dtype=a.dtype, device=a.device))

    with torch.no_grad():
        other = _replay(module, perturbed(xs), perturbed(h0), perturbed(c0), None, perturbed)
    spread = max(float((a - b).abs().max()) for a, b in zip(replayed, compared(other), strict=True))
    if spread > tolerance * scale and error <= _CHAOS * spread:
        return None
    scale = max(scale, torch.finfo(torch.float64).tiny)
    return (
        f"the replay differs from the module's output by {error / scale:.1e} of its largest "
        f"value (tolerance {tolerance:g}"
        + (f"; rounding alone moves it by {spread / scale:.1e})" if spread > 0 else ")")
    )


def _weights(
    module: nn.RNNBase, layer: int, d: int, change: Callable[[Tensor], Tensor] | None = None
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """(W_ihᵀ, W_hhᵀ, b_ih, b_hh) of one layer and direction: float64 copies."""
    suffix = f"l{layer}{'_reverse' if d == 1 else ''}"

    def get(kind: str) -> Tensor | None:
        p = getattr(module, f"{kind}_{suffix}", None)
        if p is None:
            return None
        p = p.detach().to(torch.float64)
        return p if change is None else change(p)

    w_ih, w_hh = get("weight_ih"), get("weight_hh")
    assert w_ih is not None and w_hh is not None
    return w_ih.T, w_hh.T, get("bias_ih"), get("bias_hh")


def _unroll(
    mode: str,
    inp: Tensor,
    w: tuple[Tensor, Tensor, Tensor | None, Tensor | None],
    h: Tensor,
    c: Tensor,
    *,
    reverse: bool,
    out: Tensor,
    gates: _GateSums | None,
) -> tuple[list[Tensor], Tensor, Tensor]:
    """One layer and direction over the whole sequence, writing h_t into ``out[t]`` and
    adding its gates' activations to ``gates`` (where given).

    Returns:
        (h_t for t = 0 … T − 1 in time order, the last h, the last c (h for a GRU or an
        RNN)).
    """
    w_ih, w_hh, b_ih, b_hh = w
    steps, hidden = inp.shape[0], w_hh.shape[0]
    # The input's part of every step in one product; b_hh joins it except in a GRU,
    # where the reset gate multiplies W_hn·h + b_hn.
    xp = inp @ w_ih
    if b_ih is not None:
        xp = xp + b_ih
    gru = mode == "GRU"
    if b_hh is not None and not gru:
        xp = xp + b_hh
    hs: list[Tensor] = [h] * steps
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    for i in order:
        if mode == "LSTM":
            z = torch.addmm(xp[i], h, w_hh)
            s = z.sigmoid()  # i, f, o (and σ of the g block, unused: one call is cheaper)
            g = z[:, 2 * hidden : 3 * hidden].tanh()
            c = s[:, hidden : 2 * hidden] * c + s[:, :hidden] * g
            h = s[:, 3 * hidden :] * c.tanh()
            if gates is not None:
                gates.add(s[:, : 2 * hidden], g, s[:, 3 * hidden :])
        elif gru:
            hp = h @ w_hh if b_hh is None else torch.addmm(b_hh, h, w_hh)
            rz = (xp[i, :, : 2 * hidden] + hp[:, : 2 * hidden]).sigmoid()
            n = (xp[i, :, 2 * hidden :] + rz[:, :hidden] * hp[:, 2 * hidden :]).tanh()
            h = n + rz[:, hidden:] * (h - n)
            if gates is not None:
                gates.add(rz, n)
        else:
            z = torch.addmm(xp[i], h, w_hh)
            h = z.tanh() if mode == "RNN_TANH" else z.relu()
            if gates is not None:
                gates.add(h)
        hs[i] = h
        out[i] = h.detach()
    if mode != "LSTM":
        c = h
    return hs, h, c


class _GateSums:
    """Per gate, over every step added: how many activations are saturated, their sum
    and their count, kept as running sums (the gates of a long sequence are not kept)."""

    def __init__(self, mode: str, hidden: int, t: Thresholds, device: torch.device) -> None:
        gates = _GATES[mode]
        self.n = len(gates)
        self.hidden = hidden
        # A sigmoid's output a is saturated when |a − 0.5| > 0.5 − lo, a tanh's when
        # |a| > thr: one comparison for every gate.
        lo, thr = t.sigmoid_saturation, t.tanh_saturation
        f64 = torch.float64
        center = [0.5 if sigmoid else 0.0 for _, sigmoid in gates]
        bound = [0.5 - lo if sigmoid else thr for _, sigmoid in gates]
        self.center = torch.tensor(center, dtype=f64, device=device).repeat_interleave(hidden)
        self.bound = torch.tensor(bound, dtype=f64, device=device).repeat_interleave(hidden)
        self.saturated = torch.zeros(self.n, dtype=torch.float64, device=device)
        self.total = torch.zeros(self.n, dtype=torch.float64, device=device)
        self.count = 0

    def add(self, *parts: Tensor) -> None:
        """Add one step's activations, (B, gates·H) in ``parts`` side by side."""
        with torch.no_grad():
            a = torch.cat(parts, 1) if len(parts) > 1 else parts[0]
        shape = (a.shape[0], self.n, self.hidden)
        self.saturated += ((a - self.center).abs() > self.bound).view(shape).sum(dim=(0, 2))
        self.total += a.view(shape).sum(dim=(0, 2))
        self.count += a.shape[0] * self.hidden


def _grads(
    hs: list[Tensor], outputs: list[Tensor], cotangents: list[Tensor], *, retain: bool
) -> Tensor:
    """RMS over (B, H) of ∂(Σ cotangent·output)/∂h_t for each t: a (T,) tensor."""
    grads = torch.autograd.grad(outputs, hs, cotangents, retain_graph=retain, allow_unused=True)
    return torch.stack(
        [
            torch.zeros((), dtype=hs[0].dtype, device=hs[0].device)
            if g is None
            else g.pow(2).mean().sqrt()
            for g in grads
        ]
    )
