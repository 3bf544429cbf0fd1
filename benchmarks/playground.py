"""The playground's training speed against ``train()`` alone on the same stack, in one run.

The circles preset of the issue: 8 lanes of a [2, 10, 5, 1] ReLU net on circles (400
points, 300 for training, full batch), one per Init menu entry but orthogonal and
LSUV (zeros, ones, ×0.01, ×10, uniform, Xavier, He, LeCun), so one stack of M = 8.

- (A) ``train()`` alone: the same stack and config (``log_every=1``, ``check_every=25``)
  in this process's main thread, no observer: steps/s over ``--steps`` steps.
- (A1) the same with one intra-op thread, as the playground's training threads run (a
  tiny net gains nothing from two; outside the main thread two were 3× slower).
- (P) the playground: the real ``initlab playground --no-browser --port 0`` in a
  subprocess, a WebSocket client that configures the 8 lanes, presses Play and reads
  every message (as a page would) until the lanes pass ``--steps`` steps: steps/s from
  Play to then (the samplers, the messages and the JSON included), and the update
  messages it got per second (target ≥ 20; the server sends at most 25).

A, A1 and P alternate ``--repeats`` times; the script prints each round and the medians of
P / A (target ≥ 0.8) and P / A1.

    .venv/bin/python benchmarks/playground.py [--steps 6000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from websockets.sync.client import connect

from initlab.playground.lanes import INIT_MENU, check_lanes
from initlab.playground.session import _Group
from initlab.train import train

LANES = [
    {"data": "circles", "noise": 0.05, "points": 400, "train_share": 0.75, "init": spec}
    for _, spec in INIT_MENU
    if spec not in ("lsuv", "orthogonal")
]


def alone(steps: int, threads: int | None = None) -> float:
    """Steps/s of train() on the lanes' stack, its config, in the main thread (with
    ``threads`` intra-op threads; None: torch's default)."""
    default = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _alone(steps)
    finally:
        torch.set_num_threads(default)


def _alone(steps: int) -> float:
    lanes = check_lanes(LANES)
    group = _Group(0, list(range(len(lanes))), lanes)
    config = dataclasses.replace(group.config, steps=steps)
    started = time.perf_counter()
    train(group.stack, group.ds, config)
    return steps / (time.perf_counter() - started)


def playground(url: str, steps: int) -> tuple[float, float]:
    """Steps/s of the playground from Play until the lanes passed ``steps``, and the
    update messages the page got per second meanwhile."""
    with connect(url.replace("http", "ws") + "ws", max_size=None) as ws:
        json.loads(ws.recv())  # hello
        ws.send(json.dumps({"type": "configure", "lanes": LANES}))
        while json.loads(ws.recv())["type"] != "state":
            pass
        ws.send(json.dumps({"type": "play"}))
        started = time.perf_counter()
        updates = 0
        while True:
            message = json.loads(ws.recv())
            if message["type"] != "update":
                continue
            updates += 1
            # the stack's step: a lane that diverged shows the step it stopped at
            reached = max(u["step"] for u in message["lanes"])
            if reached >= steps:
                seconds = time.perf_counter() - started
                break
        ws.send(json.dumps({"type": "pause"}))
    return reached / seconds, updates / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "initlab"), "playground", "--no-browser", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if found is None:
            raise SystemExit(f"the playground did not start: {line!r}")
        url = found.group(0)
        alone(500)  # warm up: first calls, the data's cache
        playground(url, 500)
        ratios, ratios1, rates = [], [], []
        print(f"circles preset: 8 lanes of [2, 10, 5, 1], one stack; {args.steps:,} steps")
        heads = ("A alone", "A1 one thread", "P playground", "P/A", "P/A1")
        print("   " + " ".join(f"{h:>{w}}" for h, w in zip(heads, (10, 16, 13, 6, 6), strict=True)))
        for i in range(args.repeats):
            a = alone(args.steps)
            a1 = alone(args.steps, threads=1)
            p, rate = playground(url, args.steps)
            rates.append(rate)
            ratios.append(p / a)
            ratios1.append(p / a1)
            print(
                f"{i + 1:>3} {a:>8,.0f}/s {a1:>14,.0f}/s {p:>11,.0f}/s {p / a:>6.3f} {p / a1:>6.3f}"
            )
        print(
            f"median P / A = {statistics.median(ratios):.3f} (target >= 0.8); "
            f"P / A1 = {statistics.median(ratios1):.3f}; the page got "
            f"{statistics.median(rates):.1f} updates/s (target >= 20, at most 25)"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
