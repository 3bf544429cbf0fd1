"""The real `initlab playground` command, started in a subprocess for the tests that need a
live server (the browser tests, the listening-socket test)."""

from __future__ import annotations

import ipaddress
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# What the command prints once it listens (docs/playground.md).
URL_LINE = re.compile(r"initlab playground: (http://(\S+):(\d+)/)")
START_TIMEOUT = 60.0  # seconds: importing torch on a busy 2-core machine takes a while
STOP_TIMEOUT = 15.0


@dataclass
class Server:
    """A running `initlab playground`: its URL, port and everything it printed so far."""

    process: subprocess.Popen[str]
    url: str
    port: int
    lines: list[str] = field(default_factory=list)  # stdout and stderr, interleaved
    listening_at_url: list[str] = field(default_factory=list)  # listening when it said so

    def output(self) -> str:
        return "\n".join(self.lines)


def command() -> list[str]:
    """The installed console script beside this interpreter (what a user runs), else
    ``python -m initlab``."""
    script = Path(sys.executable).with_name("initlab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "initlab"]


@contextmanager
def playground(*args: str) -> Iterator[Server]:
    """Starts ``initlab playground --no-browser --port 0 ARGS``, waits for the URL line it
    prints, yields the server and stops it (SIGINT, as a Ctrl-C would; then kill)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [*command(), "playground", "--no-browser", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines: list[str] = []
    seen: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            seen.put(line)
        seen.put(None)  # end of output: the process exited

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        match = None
        while match is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"initlab playground printed no URL within {START_TIMEOUT:.0f} s; "
                    f"it printed:\n" + "\n".join(lines)
                )
            try:
                line = seen.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"initlab playground exited ({proc.wait()}) before printing its URL; "
                    f"it printed:\n" + "\n".join(lines)
                )
            match = URL_LINE.search(line)
        server = Server(proc, match.group(1), int(match.group(3)), lines)
        server.listening_at_url = listening(server.port)
        # The browser tests need the port to accept connections.
        while not listening(server.port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(
                    f"initlab playground printed {server.url} but does not listen on port "
                    f"{server.port}; it printed:\n" + "\n".join(lines)
                )
            time.sleep(0.02)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(STOP_TIMEOUT)


def listening(port: int) -> list[str]:
    """The local addresses of the TCP sockets listening on ``port``, from /proc/net/tcp and
    /proc/net/tcp6 (e.g. ``["127.0.0.1"]``, ``["0.0.0.0"]``, ``["::1"]``)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for row in path.read_text().splitlines()[1:]:
            cols = row.split()
            address, port_hex = cols[1].rsplit(":", 1)
            if cols[3] == "0A" and int(port_hex, 16) == port:  # 0A: TCP_LISTEN
                found.append(_address(address))
    return found


def _address(hex_address: str) -> str:
    """An address as /proc/net/tcp{,6} writes it (32-bit words in the host's byte order) in
    the usual notation."""
    words = [bytes.fromhex(hex_address[i : i + 8]) for i in range(0, len(hex_address), 8)]
    if sys.byteorder == "little":
        words = [w[::-1] for w in words]
    raw = b"".join(words)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    v6 = ipaddress.IPv6Address(raw)
    return str(v6.ipv4_mapped) if v6.ipv4_mapped is not None else str(v6)
