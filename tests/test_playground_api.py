"""The playground's server through FastAPI's TestClient: every message type, every limit,
every bad value; and what the lanes show, against independent references (ln 2 for a
symmetric binary classifier, the engine's own run for the same member)."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from initlab import data, models
from initlab.playground import lanes as lanesmod
from initlab.playground.lanes import LABELS, PRESETS, Lane, check_lanes, command
from initlab.playground.server import create_app
from initlab.playground.session import HIST_EDGES, Session
from initlab.train import TrainConfig, train


@pytest.fixture(autouse=True)
def no_training_left_behind() -> Iterator[None]:
    """Every session's threads end with its test (a paused one waits inside train(), which
    holds process-wide settings, e.g. glibc's malloc thresholds, until it returns)."""
    yield
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = [t.name for t in threading.enumerate() if t.name.startswith("playground-")]
        if not left:
            return
        time.sleep(0.05)
    raise AssertionError(f"training threads still running after the test: {left}")


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as c:
        yield c


def _errors(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    return response.json()["errors"]


# --------------------------------------------------------------------------- lanes


# Each bad value, the field it is reported on, and words the message must hold.
BAD_VALUES: list[tuple[str, object, str]] = [
    ("data", "mnist2", "one of circles"),
    ("noise", -0.1, "from 0 to 1"),
    ("noise", "lots", "from 0 to 1"),
    ("points", 10, "from 50 to 5,000"),
    ("points", 2.5, "whole number"),
    ("train_share", 0.95, "0.1 to 0.9"),
    ("hidden", [10, 0], "from 1 to 512"),
    ("hidden", [513], "from 1 to 512"),
    ("hidden", [4] * 13, "up to 12"),
    ("hidden", "10,x", "separated by commas"),
    ("activation", "swish", "one of relu"),
    ("init", "hee_normal", "Did you mean 'he_normal'"),
    ("init", "normal(std=)", "not of the form"),
    ("init", "", "an init spec"),
    ("bias_init", "bogus", "Unknown init scheme"),
    ("batch_norm", "middle", "none, before, after"),
    ("batch_size", 0, "k ≥ 1"),
    ("batch_size", "half", "full (batch GD)"),
    ("batch_size", 1000, "at most the 200 training points"),
    ("optimizer", "lion", "one of sgd"),
    ("lr", -1, "a number > 0"),
    ("lr", 0, "a number > 0"),
    ("lr", "abc", "a number > 0"),
    ("lr", float("inf"), "a number > 0"),
    ("lr", True, "a number > 0"),
    ("schedule", "sometimes", "schedule"),
    ("clip", "soft", "none, value, norm, adaptive"),
    ("clip_threshold", -2, "a number > 0"),
    ("seed", -1, "from 0 to 2³² − 1"),
    ("seed", 1.5, "whole number"),
]


@pytest.mark.parametrize(("field", "value", "words"), BAD_VALUES)
def test_every_bad_value_gets_a_message_naming_the_control(
    client: TestClient, field: str, value: object, words: str
) -> None:
    lane = {field: value}
    if value == float("inf"):
        # JSON has no infinity: check the Python path, which takes it.
        with pytest.raises(lanesmod.LaneErrors) as caught:
            check_lanes([lane])
        problems = [p.as_dict() for p in caught.value.problems]
    else:
        problems = _errors(client.post("/api/lanes/check", json={"lanes": [lane]}))
    assert len(problems) == 1, problems
    problem = problems[0]
    assert problem["lane"] == 0
    assert problem["field"] == field
    assert problem["message"].startswith(LABELS[field] + ":"), problem
    assert words in problem["message"], problem
    # what was received is named, as "Got …" or quoted in the spec parser's message
    assert "Got" in problem["message"] or repr(value) in problem["message"]


def test_the_websocket_sends_the_same_text_as_the_http_api(client: TestClient) -> None:
    lanes = [{"lr": -1}, {"init": "hee_normal"}]
    http = _errors(client.post("/api/lanes/check", json={"lanes": lanes}))
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_json({"type": "configure", "lanes": lanes})
        reply = _next(ws, "errors")
    assert reply["errors"] == http
    assert [(e["lane"], e["field"]) for e in http] == [(0, "lr"), (1, "init")]


def test_every_lane_is_checked_and_unknown_settings_are_named(client: TestClient) -> None:
    problems = _errors(
        client.post("/api/lanes/check", json={"lanes": [{"lr": 0.5}, {"colour": "red"}]})
    )
    assert problems == [
        {
            "lane": 1,
            "field": None,
            "message": f"Unknown setting 'colour'. Known: {', '.join(LABELS)}.",
        }
    ]


def test_limits_lanes(client: TestClient) -> None:
    ok = client.post("/api/lanes/check", json={"lanes": [{}] * 8})
    assert ok.status_code == 200
    assert len(ok.json()["lanes"]) == 8
    (problem,) = _errors(client.post("/api/lanes/check", json={"lanes": [{}] * 9}))
    assert problem["lane"] is None
    assert "At most 8 lanes" in problem["message"] and "Got 9" in problem["message"]
    (problem,) = _errors(client.post("/api/lanes/check", json={"lanes": []}))
    assert "1 to 8 lanes" in problem["message"]


def test_a_valid_lane_comes_back_complete_with_the_defaults(client: TestClient) -> None:
    response = client.post(
        "/api/lanes/check", json={"lanes": [{"hidden": "8, 4", "batch_size": "16", "lr": "0.5"}]}
    )
    assert response.status_code == 200
    (lane,) = response.json()["lanes"]
    assert lane == {**Lane().model_dump(), "hidden": [8, 4], "batch_size": 16, "lr": 0.5}


def test_malformed_bodies_answer_4xx_in_the_same_shape(client: TestClient) -> None:
    problems = _errors(client.post("/api/lanes/check", json={"lane": []}))
    assert [p["message"] for p in problems] == [
        "lanes: Field required.",
        "lane: Extra inputs are not permitted.",
    ]
    (problem,) = _errors(client.post("/api/command", json={"lane": {}, "steps": 0}))
    assert problem["message"].startswith("steps:") and "1" in problem["message"]
    assert _errors(client.post("/api/lanes/check", content=b"not json"))


# --------------------------------------------------------------------------- command


def test_copy_as_command_trains_the_same_member_as_the_lane(
    client: TestClient, tmp_path: Any
) -> None:
    """The command's options, read back by ``initlab train``, build the same data, net
    and init as the lane: compared with the engine run directly from the command's parts."""
    lane = {"init": "normal(std=0.5)", "lr": 0.3, "seed": 4, "clip": "adaptive"}
    text = client.post("/api/command", json={"lane": lane, "steps": 25}).json()["command"]
    assert text.startswith("initlab train --data 'circles(n=400, noise=0.1, test_size=0.5)'")
    for part in ("--model 2,10,5,1", "--init 'normal(std=0.5)'", "--lr 0.3", "--seed 4"):
        assert part in text
    assert "--clip agc --clip-threshold 1" in text
    assert text.endswith("--steps 25")
    import shlex

    from typer.testing import CliRunner

    from initlab.cli import app

    args = [*shlex.split(text)[2:], "--save-history", str(tmp_path / "h.csv")]
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output
    import pandas as pd

    history = pd.read_csv(tmp_path / "h.csv")
    # The same member, trained by the engine from the lane's own settings.
    (checked,) = check_lanes([lane])
    ds = data.load("circles", **checked.data_options())
    net = models.mlp(checked.widths, "relu")
    models.init_members(net, checked.init, checked.bias_init, seeds=[checked.seed])
    config = TrainConfig(
        loss="bce", lr=0.3, steps=25, clip="agc", clip_threshold=1.0, seeds=[checked.seed]
    )
    expected = train(net, ds, config).loss[:, 0]
    got = torch.tensor(history["loss"].to_numpy())
    torch.testing.assert_close(got, expected.double(), rtol=1e-6, atol=1e-7)


def test_command_for_a_bad_lane_is_a_422(client: TestClient) -> None:
    (problem,) = _errors(client.post("/api/command", json={"lane": {"lr": -1}}))
    assert problem["field"] == "lr"


# --------------------------------------------------------------------------- pages


def test_the_page_and_its_options_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "<html" in page.text.lower()
    options = client.get("/api/options").json()
    assert options["limits"] == {
        "lanes": 8,
        "width": 512,
        "depth": 12,
        "pages": 4,
        "points": [50, 5000],
    }
    assert options["hist_edges"] == list(HIST_EDGES)
    assert [p["id"] for p in options["presets"]] == [p.id for p in PRESETS]
    assert options["default_lane"] == Lane().model_dump()


def _next(ws: Any, kind: str, until: Callable[[dict[str, Any]], bool] | None = None) -> Any:
    """The next message of this type (that satisfies ``until``), skipping others."""
    for _ in range(10_000):
        message = ws.receive_json()
        if message["type"] == kind and (until is None or until(message)):
            return message
    raise AssertionError(f"no {kind} message")


def _lane_step(ws: Any, lane: int, at_least: int) -> dict[str, Any]:
    def reached(message: dict[str, Any]) -> bool:
        return any(u["lane"] == lane and u["step"] >= at_least for u in message["lanes"])

    message = _next(ws, "update", reached)
    return next(u for u in message["lanes"] if u["lane"] == lane)


def test_every_message_type(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["session"]
        # play before any lane
        ws.send_json({"type": "play"})
        assert "configure lanes first" in _next(ws, "errors")["errors"][0]["message"]
        ws.send_json({"type": "configure", "lanes": [{}, {"init": "zeros"}]})
        state = _next(ws, "state")
        assert state["playing"] is False
        assert [lane["init"] for lane in state["lanes"]] == ["he_normal", "zeros"]
        first = _next(ws, "data")
        assert first["dims"] == 2 and len(first["train"]) == 200 and len(first["test"]) == 200
        # step: exactly one step of every lane, then paused
        ws.send_json({"type": "step"})
        assert _next(ws, "state")["playing"] is False
        assert _lane_step(ws, 1, 1)["step"] == 1
        # play, then pause: the step stops moving
        ws.send_json({"type": "play"})
        assert _next(ws, "state")["playing"] is True
        _lane_step(ws, 0, 50)
        ws.send_json({"type": "pause"})
        assert _next(ws, "state")["playing"] is False
        paused = _next(ws, "update", lambda m: m["lanes"][0]["status"] == "paused")
        held = paused["lanes"][0]["step"]
        ws.send_json({"type": "step"})
        _next(ws, "state")
        assert _lane_step(ws, 0, held + 1)["step"] == held + 1
        # reset: the same lanes from step 0, paused
        ws.send_json({"type": "reset"})
        state = _next(ws, "state")
        assert state["playing"] is False and len(state["lanes"]) == 2
        update = _next(ws, "update")
        assert {u["step"] for u in update["lanes"]} == {0}
        # malformed messages
        ws.send_text("not json")
        assert "must be JSON" in _next(ws, "errors")["errors"][0]["message"]
        ws.send_json({"type": "jump"})
        message = _next(ws, "errors")["errors"][0]["message"]
        assert "Unknown message type 'jump'" in message and "configure" in message
        ws.send_json({"type": "configure"})
        assert "lanes" in _next(ws, "errors")["errors"][0]["message"]
        ws.send_json({"type": "play", "speed": 2})
        assert "speed" in _next(ws, "errors")["errors"][0]["message"]


def test_a_bad_configure_changes_nothing(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "configure", "lanes": [{"lr": 0.2}]})
        _next(ws, "state")
        ws.send_json({"type": "configure", "lanes": [{"lr": -1}, {}]})
        (problem,) = _next(ws, "errors")["errors"]
        assert problem["field"] == "lr"
        ws.send_json({"type": "step"})
        state = _next(ws, "state")
        assert [lane["lr"] for lane in state["lanes"]] == [0.2]


def test_pages_are_bounded_and_each_has_its_own_lanes() -> None:
    with TestClient(create_app(max_pages=2)) as client:
        with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b:
            sa, sb = a.receive_json()["session"], b.receive_json()["session"]
            assert sa != sb
            a.send_json({"type": "configure", "lanes": [{"lr": 0.1}]})
            b.send_json({"type": "configure", "lanes": [{"lr": 0.2}, {"lr": 0.3}]})
            assert len(_next(a, "state")["lanes"]) == 1
            assert len(_next(b, "state")["lanes"]) == 2
            with client.websocket_connect("/ws") as c:
                refused = c.receive_json()
                assert refused["type"] == "errors"
                assert "2 pages are open already" in refused["errors"][0]["message"]
                with pytest.raises(WebSocketDisconnect) as closed:
                    c.receive_json()
                assert closed.value.code == 1013
        # both closed: a new page is welcome again
        with client.websocket_connect("/ws") as d:
            assert d.receive_json()["type"] == "hello"


def test_updates_are_coalesced_never_one_per_step(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "configure", "lanes": [{}] * 4})
        _next(ws, "state")
        ws.send_json({"type": "play"})
        started = time.monotonic()
        updates = 0
        step = 0
        while step < 2000:
            message = ws.receive_json()
            if message["type"] == "update":
                updates += 1
                step = max(step, message["lanes"][0]["step"])
        seconds = time.monotonic() - started
    # one message per 40 ms at most (0.5 s of slack: messages sent before the clock here
    # started, waiting in the queue): far fewer messages than steps
    assert updates * 0.04 <= seconds + 0.5, (updates, seconds)
    assert updates < step / 5


def test_history_csv_holds_the_samples(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        session = ws.receive_json()["session"]
        ws.send_json({"type": "configure", "lanes": [{}, {"init": "zeros"}]})
        _next(ws, "state")
        ws.send_json({"type": "play"})
        _lane_step(ws, 1, 200)
        ws.send_json({"type": "pause"})
        _next(ws, "update", lambda m: m["lanes"][0]["status"] == "paused")
        response = client.get(f"/api/sessions/{session}/lanes/1/history.csv")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        lines = response.text.strip().splitlines()
        assert lines[0] == "step,loss,test_cost,train_acc,test_acc,grad_norm,clip_rate"
        rows = [line.split(",") for line in lines[1:]]
        assert len(rows) >= 2
        assert rows[0][0] == "0"
        steps = [int(r[0]) for r in rows]
        assert steps == sorted(steps) and steps[-1] >= 200
        # zeros: only the output bias learns, toward the constant best guess
        floor = _entropy(1 - 0.505)  # its 200 training labels: 101 of class 0
        assert all(floor - 1e-6 <= float(r[1]) <= math.log(2) + 1e-6 for r in rows)
        assert client.get(f"/api/sessions/{session}/lanes/7/history.csv").status_code == 404
    missing = client.get(f"/api/sessions/{session}/lanes/0/history.csv")
    assert missing.status_code == 404 and "No open page" in missing.text


# --------------------------------------------------------------------------- lanes train


def _entropy(p: float) -> float:
    """The binary cross-entropy of the best constant guess for labels with mean p: what
    a net whose units are all alike can reach (only its output bias learns)."""
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def _session(lanes: list[dict[str, Any]]) -> Session:
    session = Session()
    session.configure(lanes)
    return session


def _collect(session: Session, steps: int, timeout: float = 120) -> dict[int, dict[str, Any]]:
    """Play until every stack has ``steps`` steps; the last update of each lane, with
    every field that was ever sent (null means unchanged)."""
    last: dict[int, dict[str, Any]] = {}
    session.play()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for update in session.drain()["lanes"]:
            kept = last.setdefault(update["lane"], {"points": []})
            kept["points"] += update["points"]
            kept.update({k: v for k, v in update.items() if k != "points" and v is not None})
        if session.wait_for_step(steps, timeout=0.05):
            break
    session.pause()
    time.sleep(0.2)  # not a synchronization: lets the sampler's last sample land
    for update in session.drain()["lanes"]:
        kept = last.setdefault(update["lane"], {"points": []})
        kept["points"] += update["points"]
        kept.update({k: v for k, v in update.items() if k != "points" and v is not None})
    return last


def test_the_notebook_preset_zeros_stay_at_ln2_with_symmetric_units_he_learns() -> None:
    notebook = next(p for p in PRESETS if p.id == "notebook")
    session = _session(list(notebook.lanes))
    try:
        last = _collect(session, 3000)
    finally:
        session.close()
    zeros, large, he = (last[i] for i in range(3))
    # zeros: every unit alike; only the output bias learns: the cost goes from ln 2 to the
    # entropy of the training labels and stays there (0.693 to 3 decimals)
    (lane,) = check_lanes([notebook.lanes[0]])
    p = float(data.load("circles", **lane.data_options()).y_train.double().mean())
    assert all(_entropy(p) - 1e-6 <= q["loss"] <= math.log(2) + 1e-6 for q in zeros["points"])
    assert zeros["points"][-1]["loss"] == pytest.approx(_entropy(p), abs=1e-5)
    assert round(zeros["points"][-1]["loss"], 3) == 0.693
    kinds = {v["kind"] for v in zeros["verdicts"]}
    assert "symmetric" in kinds
    fix = next(v["fix"] for v in zeros["verdicts"] if v["kind"] == "symmetric")
    assert fix == {"label": "He init", "changes": {"init": "he_normal"}}
    assert he["points"][-1]["test_acc"] > 0.95
    assert he["verdicts"] == []
    # ×10: the probe sees the exploding signal at the start
    first = large["points"][0]
    assert first["step"] == 0 and first["loss"] > 5


def test_a_diverging_lane_is_named_with_a_fix_and_its_neighbour_trains_on() -> None:
    session = _session([{"lr": 1e30, "init": "normal(std=1)"}, {}])
    try:
        first = _collect(session, 100)  # play, pause: a resumed lane says it trains again
        session.play()
        assert session.wait_for_step(150, timeout=60)
        session.drain()
        time.sleep(0.3)  # not a synchronization: a few samples while it plays
        playing = {u["lane"]: u["status"] for u in session.drain()["lanes"]}
        last = _collect(session, 200)
    finally:
        session.close()
    assert playing[1] == "training", playing
    bad, good = last[0], last[1]
    assert bad["status"] == "diverged"
    assert "diverged at step" in bad["message"]
    (verdict,) = first[0]["verdicts"]
    assert verdict["kind"] == "diverged"
    assert verdict["fix"] == {
        "label": "clip at 1",
        "changes": {"clip": "norm", "clip_threshold": 1.0},
    }
    assert good["status"] == "paused"
    assert good["points"][-1]["loss"] is not None and good["points"][-1]["loss"] < 0.6


def test_a_lane_trains_as_the_engine_trains_its_member_alone() -> None:
    """The lane's batch costs at its sampled steps are those of the same member trained by
    train() directly (one member, the same seed): the playground adds nothing to a step."""
    lane = {"init": "xavier_normal", "activation": "tanh", "lr": 0.3, "batch_size": 16}
    session = _session([lane, {"init": "zeros", "activation": "tanh", "batch_size": 16}])
    try:
        for step in range(1, 4):  # a sample at each of these steps, then some while playing
            session.step()
            assert session.wait_for_step(step, timeout=60)
        _collect(session, 300)
        history = session.history(0)
    finally:
        session.close()
    (checked,) = check_lanes([lane])
    ds = data.load("circles", **checked.data_options())
    net = models.mlp(checked.widths, "tanh")
    models.init_members(net, "xavier_normal", "zeros", seeds=[0])
    # Every sampled step, however far the lane ran before the pause (how many steps fall
    # between two samples depends on the engine's speed).
    points = [p for p in history if p["step"] >= 1]
    last = points[-1]["step"]
    assert [p["step"] for p in points[:3]] == [1, 2, 3] and last >= 300 and len(points) > 3
    config = TrainConfig(loss="bce", lr=0.3, batch_size=16, steps=last, seeds=[0])
    alone = train(net, ds, config).loss[:, 0]
    for p in points:
        # measured: equal to the last bit here; 1e-6 leaves room for the other kernels
        assert p["loss"] == pytest.approx(float(alone[p["step"] - 1]), rel=1e-6, abs=1e-7)


def test_histograms_ratios_and_maps() -> None:
    session = _session([{"init": "normal(std=0.01)", "hidden": [8, 8, 8]}, {"hidden": [8, 8, 8]}])
    try:
        session.step()
        assert session.wait_for_step(1, timeout=60)
        time.sleep(0.2)  # not a synchronization: lets the pause's sample land
        at_start = {u["lane"]: u for u in session.drain()["lanes"]}
        last = _collect(session, 100)
    finally:
        session.close()
    for lane in (last[0], last[1]):
        hist = lane["hist"]
        assert [layer["name"] for layer in hist["layers"]] == ["layer 1", "layer 2", "layer 3"]
        for layer in hist["layers"]:
            assert len(layer["act"]) == len(HIST_EDGES) == len(layer["grad"])
            assert sum(layer["act"]) == pytest.approx(1, abs=1e-3)
        assert len(lane["map"]["prob"]) == lane["map"]["size"] ** 2
        assert all(0 <= p <= 1 for p in lane["map"]["prob"])
        assert len(lane["ratios"]["values"]) == 4

    def decade(counts: list[float]) -> float:
        """The mean log10 |value| of the values that are not ~0 (bin 0)."""
        centres = [e + 0.125 for e in HIST_EDGES[:-1]]
        mass = sum(counts[1:])
        return sum(c * x for c, x in zip(counts[1:], centres, strict=True)) / mass

    # At the start, N(0, 0.01²) shrinks the signal ~100× per layer (√(fan_in / 2)·0.01
    # for ReLU): layer 3's outputs sit ≥ 4 decades left of He's on the shared axis.
    small, he = at_start[0]["hist"]["layers"], at_start[1]["hist"]["layers"]
    assert decade(small[2]["act"]) < decade(he[2]["act"]) - 4
    assert small[2]["act_rms"] < 1e-4 < he[2]["act_rms"]


def test_lanes_that_differ_in_batch_size_train_as_separate_stacks() -> None:
    session = _session([{}, {"batch_size": 1}, {"lr": 0.5}])
    try:
        assert [g.indices for g in session.groups] == [[0, 2], [1]]
        assert session.groups[1].config.batch_size == 1
        last = _collect(session, 50)
    finally:
        session.close()
    assert {i for i in last} == {0, 1, 2}


def test_mnist_lanes_have_no_map_and_say_why_the_data_is_missing(monkeypatch: Any) -> None:
    monkeypatch.setenv("INITLAB_DATA", "/nonexistent")
    from initlab.playground import session as sessionmod

    sessionmod._dataset.cache_clear()
    monkeypatch.chdir("/")
    with pytest.raises(lanesmod.LaneErrors) as caught:
        Session().configure([{"data": "mnist", "hidden": [32], "batch_size": 64}])
    (problem,) = caught.value.problems
    assert problem.field == "data" and problem.message.startswith("Data:")
    sessionmod._dataset.cache_clear()


def test_digits_lanes_train_without_a_map() -> None:
    session = _session([{"data": "digits", "hidden": [32], "lr": 0.5}])
    try:
        message = session.data[0]
        assert message["dims"] == 64 and message["classes"] == 10 and message["train"] == []
        last = _collect(session, 100)
    finally:
        session.close()
    assert "map" not in last[0]
    assert last[0]["points"][-1]["test_acc"] > 0.5


def test_lsuv_lanes_start_with_unit_variance_layers() -> None:
    session = _session([{"init": "lsuv", "activation": "tanh", "hidden": [32, 32]}])
    try:
        group = session.groups[0]
        x = group.ds.x_train
        h = x.T
        for layer in list(group.stack.layers)[:-1]:
            h = layer(h)
            if isinstance(layer, models.StackedLinear):
                # LSUV's own criterion on its batch: |Var − 1| ≤ 0.1; on all points, a bit wider
                assert abs(h.var().item() - 1) < 0.25
    finally:
        session.close()


def test_presets_are_valid_lanes() -> None:
    for preset in PRESETS:
        lanes = check_lanes(list(preset.lanes))
        assert 2 <= len(lanes) <= 8
        assert preset.title and preset.description
    assert command(Lane()).startswith("initlab train")
    assert json.dumps([p.as_dict() for p in PRESETS])


def test_step_by_step_clip_rate_and_gradient_norm_are_the_engines() -> None:
    """Step by step, each point's clip rate is whether clipping fired at that step (0 or
    1) and its gradient norm the engine's pre-clip norm, against train() alone; a second
    sample at one step (the pause's) replaces the first in the history, keeping its rate."""
    lane = {"clip": "norm", "clip_threshold": 0.05, "lr": 0.5, "init": "normal(std=1)"}
    session = _session([lane])
    try:
        for step in range(1, 6):
            session.step()
            assert session.wait_for_step(step, timeout=60)
        time.sleep(0.3)  # not a synchronization: lets the pause's sample land
        history = session.history(0)
    finally:
        session.close()
    assert [row["step"] for row in history] == [0, 1, 2, 3, 4, 5]
    (checked,) = check_lanes([lane])
    ds = data.load("circles", **checked.data_options())
    net = models.mlp(checked.widths, "relu")
    models.init_members(net, checked.init, "zeros", seeds=[0])
    config = TrainConfig(loss="bce", lr=0.5, steps=5, clip="norm", clip_threshold=0.05, seeds=[0])
    alone = train(net, ds, config)
    for row in history[1:]:
        k = row["step"] - 1
        assert row["clip_rate"] == float(alone.clipped[k, 0])
        assert row["grad_norm"] == pytest.approx(float(alone.grad_norm[k, 0]), rel=1e-6)
    assert sum(row["clip_rate"] for row in history[1:]) >= 1  # clipping did fire


def test_a_failing_lsuv_and_a_bad_bias_name_their_lane_and_control(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "configure", "lanes": [{}, {"bias_init": "orthogonal"}]})
        (problem,) = _next(ws, "errors")["errors"]
        assert (problem["lane"], problem["field"]) == (1, "bias_init")
        assert problem["message"].startswith("Bias init:")
        lanes = [{"init": "lsuv", "bias_init": "normal(std=1e30)"}]
        ws.send_json({"type": "configure", "lanes": lanes})
        (problem,) = _next(ws, "errors")["errors"]
        assert (problem["lane"], problem["field"]) == (0, "init")
        assert "LSUV failed" in problem["message"]
        ws.send_json({"type": "configure", "lanes": [{}]})  # the connection lives on
        assert _next(ws, "state")["lanes"][0]["init"] == "he_normal"


def test_the_first_sample_leaves_batch_norm_statistics_alone() -> None:
    session = _session([{"batch_norm": "before"}])
    try:
        session.step()
        assert session.wait_for_step(1, timeout=60)
        bn = next(m for m in session.groups[0].stack.layers if hasattr(m, "running_mean"))
        # one training step updates them once: momentum 0.1 from 0, so at most one
        # step's worth, and num_batches_tracked counts that one step only
        assert int(bn.num_batches_tracked.max()) == 1
    finally:
        session.close()


def test_other_sites_may_not_open_the_websocket(client: TestClient) -> None:
    evil = {"origin": "http://evil.example"}
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/ws", headers=evil) as ws,
    ):
        ws.receive_json()
    assert closed.value.code == 1008
    with client.websocket_connect("/ws", headers={"origin": "http://testserver"}) as ws:
        assert ws.receive_json()["type"] == "hello"


def test_an_lsuv_lanes_command_carries_a_note_and_exact_numbers(client: TestClient) -> None:
    lane = {"init": "lsuv", "lr": 0.123456789, "clip": "norm", "clip_threshold": 0.3}
    body = client.post("/api/command", json={"lane": lane, "steps": 10}).json()
    assert "#" not in body["command"]
    assert "--init orthogonal" in body["command"] and "--lr 0.123456789" in body["command"]
    assert "--clip-threshold 0.3" in body["command"] and body["command"].endswith("--steps 10")
    assert "has no LSUV" in body["note"]
    assert client.post("/api/command", json={"lane": {}}).json()["note"] is None
