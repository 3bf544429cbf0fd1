"""The recurrent probe (initlab.probe.recurrent): the replay against torch's own RNN, LSTM
and GRU; the gradient through time against a cell-by-cell autograd reference; the gates
against a teacher-forced reference; the pathologies it must see."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from initlab.probe.recurrent import RecurrentRecord, _replay, unsupported
from initlab.probe.results import RecurrentStats
from initlab.probe.verdicts import Thresholds

KINDS = {
    "LSTM": lambda i, h, **kw: nn.LSTM(i, h, **kw),
    "GRU": lambda i, h, **kw: nn.GRU(i, h, **kw),
    "RNN_TANH": lambda i, h, **kw: nn.RNN(i, h, **kw),
    "RNN_RELU": lambda i, h, **kw: nn.RNN(i, h, nonlinearity="relu", **kw),
}
CELLS = {"LSTM": nn.LSTMCell, "GRU": nn.GRUCell, "RNN_TANH": nn.RNNCell, "RNN_RELU": nn.RNNCell}


def _measured(module: nn.RNNBase, x: torch.Tensor, loss=None, **kwargs) -> RecurrentStats:
    """Record one call, back-propagate ``loss(output, state)`` (none: no backward), measure."""
    out = module(x, **kwargs)
    record = RecurrentRecord("rnn", module, (x,), kwargs, out)
    if loss is not None:
        loss(*out).backward()
    s = record.stats()
    assert isinstance(s, RecurrentStats), s
    return s


def _rms(t: torch.Tensor) -> float:
    return float(t.pow(2).mean().sqrt())


# ------------------------------------------------------------------ the replay itself


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"num_layers": 3, "bidirectional": True},
        {"num_layers": 2, "batch_first": True, "hx": True},
        {"num_layers": 2, "bidirectional": True, "batch_first": True, "hx": True, "bias": False},
    ],
    ids=["plain", "3-layer-bidirectional", "batch-first-hx", "all-no-bias"],
)
def test_the_replay_is_torchs_pass_step_by_step(kind: str, options: dict) -> None:
    options = dict(options)
    given_hx = options.pop("hx", False)
    module = KINDS[kind](5, 7, **options).double()
    layers, dirs = module.num_layers, 2 if module.bidirectional else 1
    batch_first = options.get("batch_first", False)
    x = torch.randn((3, 11, 5) if batch_first else (11, 3, 5), dtype=torch.float64)
    h0 = torch.randn(layers * dirs, 3, 7, dtype=torch.float64) if given_hx else None
    c0 = torch.randn(layers * dirs, 3, 7, dtype=torch.float64) if given_hx else None
    hx = (h0, c0) if kind == "LSTM" and given_hx else h0
    with torch.no_grad():
        output, state = module(x, hx)
    xs = x.transpose(0, 1) if batch_first else x
    zeros = torch.zeros(layers * dirs, 3, 7, dtype=torch.float64)
    replay = _replay(module, xs, zeros if h0 is None else h0, zeros if c0 is None else c0, None)
    # Every step of every direction of the top layer, and every layer's last states.
    expected = output.transpose(0, 1) if batch_first else output
    torch.testing.assert_close(replay.outputs, expected, rtol=1e-10, atol=1e-12)
    h_n, c_n = state if kind == "LSTM" else (state, None)
    torch.testing.assert_close(replay.h_n, h_n, rtol=1e-10, atol=1e-12)
    if c_n is not None:
        torch.testing.assert_close(replay.c_n, c_n, rtol=1e-10, atol=1e-12)
    # The record accepts it: the measurement is made, not refused.
    s = _measured(module, x, lambda out, _: out.pow(2).sum(), hx=hx)
    assert s.kind == kind and (s.layers, s.hidden, s.steps) == (layers, 7, 11)
    assert s.hidden_rms == pytest.approx(_rms(output), rel=1e-10)


def test_an_unbatched_call_with_hx_by_keyword() -> None:
    module = nn.GRU(4, 6, num_layers=2).double()
    x, h0 = torch.randn(9, 4, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64)
    s = _measured(module, x, lambda out, h: out.sum() + h.sum(), hx=h0)
    assert s.steps == 9 and len(s.grad_through_time) == 9
    assert s.hidden_rms == pytest.approx(_rms(module(x, h0)[0].detach()), rel=1e-10)


# --------------------------------------------------- the gradient through time, by cells


def _cells(module: nn.RNNBase, layer: int) -> nn.Module:
    """The forward direction of one layer as an nn.*Cell sharing nothing with the module."""
    kind = module.mode
    extra = {"nonlinearity": module.nonlinearity} if kind.startswith("RNN") else {}
    dirs = 2 if module.bidirectional else 1
    inputs = module.input_size if layer == 0 else module.hidden_size * dirs
    cell = CELLS[kind](inputs, module.hidden_size, **extra).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(module, f"{name}_l{layer}"))
    return cell


def _reference(module: nn.RNNBase, x: torch.Tensor, cotangents: list[torch.Tensor], c_seed=None):
    """RMS of ∂(Σ_t cotangent_t·h_t [+ c_seed·c_{T−1}])/∂h_t of the top layer's forward
    direction, t = 0 … T − 1, by an nn.*Cell loop whose h_t retain their gradients. The
    top layer's input comes from a copy of the layers below, run by torch."""
    top = module.num_layers - 1
    inp = x
    if top > 0:
        below = type(module)(
            module.input_size,
            module.hidden_size,
            num_layers=top,
            bidirectional=module.bidirectional,
            **({"nonlinearity": module.nonlinearity} if module.mode.startswith("RNN") else {}),
        ).double()
        with torch.no_grad():
            for name, p in below.named_parameters():
                p.copy_(getattr(module, name))
            inp = below(x)[0]
    cell = _cells(module, top)
    for p in cell.parameters():
        p.requires_grad_(False)
    h = torch.zeros(x.shape[1], module.hidden_size, dtype=torch.float64, requires_grad=True)
    c = torch.zeros_like(h, requires_grad=True)
    hs = []
    for t in range(x.shape[0]):
        if module.mode == "LSTM":
            h, c = cell(inp[t], (h, c))
        else:
            h = cell(inp[t], h)
        h.retain_grad()
        hs.append(h)
    loss = sum((g * h).sum() for g, h in zip(cotangents, hs, strict=True))
    if c_seed is not None:
        loss = loss + (c_seed * c).sum()
    loss.backward()
    return [_rms(h.grad) for h in hs]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_grad_through_time_against_a_cell_loop(kind: str, layers: int, bidirectional: bool) -> None:
    module = KINDS[kind](4, 6, num_layers=layers, bidirectional=bidirectional).double()
    x = torch.randn(15, 5, 4, dtype=torch.float64)
    w = torch.randn(5, 6, dtype=torch.float64)
    # The loss reads the forward direction's last step only: that is the seed.
    s = _measured(module, x, lambda out, _: (out[-1, :, :6] * w).sum())
    zero = torch.zeros(5, 6, dtype=torch.float64)
    expected = _reference(module, x, [zero] * 14 + [w])
    assert s.grad_through_time == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert s.grad_through_time[-1] == pytest.approx(_rms(w), rel=1e-12)
    # Here the loss's own gradient is the same quantity.
    assert s.loss_grad == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_loss_grad_adds_the_direct_the_recurrent_and_the_final_state_terms(kind: str) -> None:
    module = KINDS[kind](4, 6).double()
    x = torch.randn(12, 5, 4, dtype=torch.float64)
    w = torch.randn(12, 5, 6, dtype=torch.float64)
    v, u = torch.randn(5, 6, dtype=torch.float64), torch.randn(5, 6, dtype=torch.float64)

    def loss(out, state):
        h_n, c_n = state if kind == "LSTM" else (state, None)
        total = (out * w).sum() + (h_n[0] * v).sum()
        return total + (c_n[0] * u).sum() if c_n is not None else total

    s = _measured(module, x, loss)
    cotangents = list(w.unbind(0))
    cotangents[-1] = cotangents[-1] + v
    expected = _reference(module, x, cotangents, u if kind == "LSTM" else None)
    assert s.loss_grad == pytest.approx(expected, rel=1e-9)
    # The seed of the gradient through time is the last step's ∂loss/∂h: w[-1] + v.
    assert s.grad_through_time[-1] == pytest.approx(_rms(w[-1] + v), rel=1e-12)


def test_without_a_backward_pass_the_seed_is_a_fixed_normal_draw() -> None:
    module = nn.LSTM(4, 8).double()
    x = torch.randn(20, 3, 4, dtype=torch.float64)
    with torch.no_grad():
        s = _measured(module, x)
    assert all(math.isnan(v) for v in s.loss_grad) and len(s.loss_grad) == 20
    g = torch.Generator().manual_seed(0)
    seed = torch.randn(3, 8, generator=g, dtype=torch.float64)
    expected = _reference(module, x, [torch.zeros(3, 8, dtype=torch.float64)] * 19 + [seed])
    assert s.grad_through_time == pytest.approx(expected, rel=1e-9)
    # The same again: the draw is fixed.
    assert _measured(module, x).grad_through_time == s.grad_through_time


def test_stats_measures_under_no_grad_and_inference_mode() -> None:
    module = nn.GRU(4, 8)
    x = torch.randn(10, 3, 4)
    out = module(x)
    record = RecurrentRecord("gru", module, (x,), {}, out)
    out[0].sum().backward()
    with torch.inference_mode():
        s = record.stats()
    assert isinstance(s, RecurrentStats) and 0 < s.time_factor < 1


# ------------------------------------------------------------------------- the gates


def test_the_gates_against_a_teacher_forced_reference() -> None:
    # Each step's gates are a function of x_t and the module's own h_{t−1}, so they can
    # be computed for every step at once from torch's output, independently of the replay.
    module = nn.LSTM(4, 16).double()
    with torch.no_grad():
        module.bias_ih_l0[16:32] += 3.0  # forget gates near 0.95–1: some saturate
    x = torch.randn(30, 8, 4, dtype=torch.float64)
    out = module(x)[0].detach()
    h_prev = torch.cat([torch.zeros(1, 8, 16, dtype=torch.float64), out[:-1]])
    z = x @ module.weight_ih_l0.T + module.bias_ih_l0 + h_prev @ module.weight_hh_l0.T
    z = (z + module.bias_hh_l0).detach()
    i, f, g, o = z.chunk(4, dim=2)
    acts = {"input": i.sigmoid(), "forget": f.sigmoid(), "cell": g.tanh(), "output": o.sigmoid()}
    t = Thresholds(sigmoid_saturation=0.05, tanh_saturation=0.9)
    module_out = module(x)
    record = RecurrentRecord("lstm", module, (x,), {}, module_out)
    s = record.stats(t)
    assert isinstance(s, RecurrentStats)
    for name, a in acts.items():
        flat = (a < 0.05) | (a > 0.95) if name != "cell" else a.abs() > 0.9
        assert s.gate_saturation[name] == pytest.approx(float(flat.double().mean()), abs=1e-12)
        assert s.gate_mean[name] == pytest.approx(float(a.mean()), rel=1e-10)
    assert s.gate_saturation["forget"] > 0.05  # the shifted bias saturates some of them


def test_gru_gates_against_a_teacher_forced_reference() -> None:
    module = nn.GRU(4, 16).double()
    x = torch.randn(30, 8, 4, dtype=torch.float64)
    out = module(x)[0].detach()
    h_prev = torch.cat([torch.zeros(1, 8, 16, dtype=torch.float64), out[:-1]])
    gi = (x @ module.weight_ih_l0.T + module.bias_ih_l0).detach()
    gh = (h_prev @ module.weight_hh_l0.T + module.bias_hh_l0).detach()
    r = (gi[..., :16] + gh[..., :16]).sigmoid()
    zg = (gi[..., 16:32] + gh[..., 16:32]).sigmoid()
    n = (gi[..., 32:] + r * gh[..., 32:]).tanh()
    s = _measured(module, x, lambda o, _: o.sum())
    for name, a in {"reset": r, "update": zg, "new": n}.items():
        assert s.gate_mean[name] == pytest.approx(float(a.mean()), rel=1e-10)
    assert s.gate_saturation["new"] == pytest.approx(float((n.abs() > 0.97).double().mean()))


# ------------------------------------------------------------------ the pathologies


def test_a_default_lstm_loses_about_0_4_of_its_gradient_per_step() -> None:
    # Measured at hidden 64, input 16, batch 32, 100 steps, seeds 0–2: 0.62, 0.64, 0.62
    # (GRU 0.62–0.65, tanh RNN 0.55–0.57): short memory, but a learnable one.
    module = nn.LSTM(16, 64)
    s = _measured(module, torch.randn(100, 32, 16), lambda out, _: out[-1].pow(2).sum())
    assert 0.5 < s.time_factor < 0.75
    assert 0.0 < s.grad_through_time[0] < 1e-15 * s.grad_through_time[-1]
    assert all(v == 0.0 for v in s.gate_saturation.values())  # nothing saturates at init
    assert s.gate_mean["forget"] == pytest.approx(0.5, abs=0.05)


def test_an_lstm_that_forgets_at_once_sends_no_gradient_back() -> None:
    # Forget-gate bias −20: f ≈ 2e-9, the cell path is cut; what is left (through the
    # gates' dependence on h) shrinks by ~0.14 per step (measured 0.137): after 99 steps
    # the gradient is ~1e-86 of the seed's.
    module = nn.LSTM(16, 64)
    with torch.no_grad():
        module.bias_ih_l0[64:128] = -20.0
        module.bias_hh_l0[64:128] = 0.0
    s = _measured(module, torch.randn(100, 32, 16), lambda out, _: out[-1].pow(2).sum())
    assert s.time_factor < 0.2
    assert s.grad_through_time[0] < 1e-60 * s.grad_through_time[-1]
    assert s.gate_mean["forget"] < 1e-8
    assert s.gate_saturation["forget"] == 1.0


def test_an_all_zero_lstm_sends_exactly_zero_back() -> None:
    # W_hh = 0: h_t does not depend on h_{t−1} at all; the gradient at every step before
    # the last is exactly 0 (measured), and the factor says so.
    module = nn.LSTM(16, 64)
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
    s = _measured(module, torch.randn(50, 8, 16), lambda out, _: out[-1].pow(2).sum())
    assert s.grad_through_time[:-1] == (0.0,) * 49
    assert s.grad_through_time[-1] == pytest.approx(1.0, abs=0.1)  # the N(0, 1) seed
    assert s.time_factor == 0.0
    assert s.hidden_rms == 0.0
    assert s.gate_mean == {"input": 0.5, "forget": 0.5, "cell": 0.0, "output": 0.5}


def test_a_tanh_rnn_with_a_large_recurrent_weight_saturates_and_is_chaotic() -> None:
    # W_hh = 3·orthogonal: the pre-activations grow to ~3, |tanh| > 0.97 for ~40 % of the
    # units (measured 0.38 at 30 steps, 0.41 at 100), and the recurrence is chaotic: the
    # float32 module's own rounding grows step after step, which the check allows.
    module = nn.RNN(16, 64)
    with torch.no_grad():
        nn.init.orthogonal_(module.weight_hh_l0, gain=3.0)
    s = _measured(module, torch.randn(100, 32, 16), lambda out, _: out[-1].pow(2).sum())
    assert s.gate_saturation["hidden"] > 0.3
    assert s.time_factor > 1.1  # measured 1.35


def test_a_relu_rnn_with_a_recurrent_gain_of_1_5_explodes_through_time() -> None:
    module = nn.RNN(16, 64, nonlinearity="relu")
    with torch.no_grad():
        nn.init.orthogonal_(module.weight_hh_l0, gain=1.5)
    s = _measured(module, torch.randn(100, 32, 16), lambda out, _: out[-1].pow(2).sum())
    assert s.time_factor > 1.1  # measured 1.26 (1.18 at 30 steps)
    assert s.grad_through_time[0] > 1e3 * s.grad_through_time[-1]  # measured 4.8e4
    assert math.isnan(s.gate_saturation["hidden"])  # relu has no flat tail to saturate in


# ------------------------------------------------------------------ what it refuses


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_unsupported_calls_are_named_before_any_work() -> None:
    lstm = nn.LSTM(4, 8, batch_first=True)
    x = torch.randn(3, 6, 4)
    assert unsupported(lstm, (x,), {}, lstm(x)) is None
    packed = pack_padded_sequence(x, [6, 4, 2], batch_first=True)
    reason = unsupported(lstm, (packed,), {}, lstm(packed))
    assert reason is not None and "PackedSequence" in reason
    record = RecurrentRecord("lstm", lstm, (packed,), {}, lstm(packed))
    assert record.stats() == reason
    projected = nn.LSTM(4, 8, proj_size=3, batch_first=True)
    reason = unsupported(projected, (x,), {}, projected(x))
    assert reason is not None and "proj_size" in reason
    assert "input" in (unsupported(lstm, (torch.ones(3, 6, 4, dtype=torch.long),), {}, None) or "")


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_dropout_between_layers_in_training_is_replayed_with_masks_of_its_own(kind: str) -> None:
    # The module's masks are not kept: the first layer is replayed (and checked) exactly,
    # the layers above it on masks drawn at the same rate.
    module = KINDS[kind](16, 64, num_layers=2, dropout=0.5).double()
    x = torch.randn(40, 16, 16, dtype=torch.float64)
    s = _measured(module, x, lambda out, _: out[-1].pow(2).sum())
    assert 0.4 < s.time_factor < 0.9
    module.eval()
    without = _measured(module, x, lambda out, _: out[-1].pow(2).sum())
    assert s.time_factor == pytest.approx(without.time_factor, abs=0.1)
    # A forward that is not torch's is still refused: its first layer differs.
    shifted = _ShiftedStates(16, 64, num_layers=2, dropout=0.5).double()
    out = shifted(x)
    reason = RecurrentRecord("gru", shifted, (x,), {}, out).stats()
    assert isinstance(reason, str) and "replay differs" in reason


class _ShiftedStates(nn.GRU):
    """A subclass whose last states are not torch's GRU's."""

    def forward(self, x, hx=None):  # type: ignore[override]
        out, h = super().forward(x, hx)
        return out, h + 0.01


def test_as_watch_calls_it_in_a_language_model() -> None:
    # The forward hook Watch registers (with_kwargs=True), a token model, a cross-entropy
    # over every step; the loss's ∂loss/∂h_t against an nn.LSTMCell copy of the model.
    torch.manual_seed(0)
    emb, lstm, head = nn.Embedding(50, 8), nn.LSTM(8, 16, batch_first=True), nn.Linear(16, 50)
    model = nn.Sequential(emb, lstm).double()
    head = head.double()
    tokens = torch.randint(0, 50, (4, 12))
    targets = torch.randint(0, 50, (4, 12))
    records = []
    lstm.register_forward_hook(
        lambda m, args, kwargs, out: records.append(RecurrentRecord("1", m, args, kwargs, out)),
        with_kwargs=True,
    )
    out, _ = model(tokens)
    nn.functional.cross_entropy(head(out).reshape(-1, 50), targets.reshape(-1)).backward()
    s = records[0].stats()
    assert isinstance(s, RecurrentStats) and s.name == "1" and s.steps == 12

    cell = _cells(lstm, 0)
    x = emb(tokens).detach().transpose(0, 1)
    h = torch.zeros(4, 16, dtype=torch.float64)
    c = torch.zeros_like(h)
    hs = []
    for t in range(12):
        h, c = cell(x[t], (h, c))
        h.retain_grad()
        hs.append(h)
    logits = head(torch.stack(hs, dim=1))
    nn.functional.cross_entropy(logits.reshape(-1, 50), targets.reshape(-1)).backward()
    assert s.loss_grad == pytest.approx([_rms(h.grad) for h in hs], rel=1e-9)


class _Shifted(nn.GRU):
    """A subclass whose forward is not torch's GRU: the replay must not pass for it."""

    def forward(self, x, hx=None):  # type: ignore[override]
        out, h = super().forward(x, hx)
        return out + 0.01, h


def test_a_forward_the_replay_does_not_reproduce_is_refused_with_the_numbers() -> None:
    module = _Shifted(4, 8)
    x = torch.randn(10, 3, 4)
    out = module(x)
    s = RecurrentRecord("gru", module, (x,), {}, out).stats()
    assert isinstance(s, str) and "the replay differs from the module's output" in s
    assert "tolerance 0.0001" in s


def test_nothing_is_kept_after_stats() -> None:
    module = nn.LSTM(4, 8)
    x = torch.randn(10, 3, 4)
    out = module(x)
    record = RecurrentRecord("lstm", module, (x,), {}, out)
    out[0].sum().backward()
    s = record.stats()
    assert record.module is None and record._x is None and record._out is None
    assert record._grads == {}
    assert record.stats() is s


def test_one_step_has_no_factor() -> None:
    module = nn.GRU(4, 8).double()
    w = torch.randn(3, 8, dtype=torch.float64)
    s = _measured(module, torch.randn(1, 3, 4, dtype=torch.float64), lambda o, _: (o[0] * w).sum())
    assert math.isnan(s.time_factor)
    assert s.grad_through_time == pytest.approx((_rms(w),), rel=1e-12)
