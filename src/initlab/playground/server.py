"""The playground's server: the page, its HTTP API and one WebSocket per open page.

:func:`create_app` builds the FastAPI app; :func:`serve` runs it with uvicorn (what
``initlab playground`` calls). Every message is checked by pydantic models; a bad one
gets an ``errors`` message with the same text the HTTP API answers with a 422.
docs/playground.md describes the protocol.

Example:
    >>> from fastapi.testclient import TestClient
    >>> client = TestClient(create_app())
    >>> client.post("/api/lanes/check", json={"lanes": [{"lr": -1}]}).json()
    {'errors': [{'lane': 0, 'field': 'lr', 'message': 'Learning rate: expected a number > 0,
    e.g. 0.1. Got -1.'}]}
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import ipaddress
import json
import math
import socket
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from initlab.playground.lanes import (
    LIMITS,
    LaneErrors,
    LaneProblem,
    check_lanes,
    command,
    command_note,
    options,
)
from initlab.playground.session import HIST_EDGES, Session

__all__ = ["STATIC", "create_app", "serve"]

#: The built front end, shipped in the package.
STATIC = Path(__file__).parent / "static"
_SEND_EVERY = 0.04  # seconds between update messages: at most 25 a second


# --------------------------------------------------------------------------- messages


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Configure(_Message):
    type: Literal["configure"]
    lanes: list[Any]


class Play(_Message):
    type: Literal["play"]


class Pause(_Message):
    type: Literal["pause"]


class Step(_Message):
    type: Literal["step"]


class Reset(_Message):
    type: Literal["reset"]


ClientMessage = Annotated[Configure | Play | Pause | Step | Reset, Field(discriminator="type")]
_CLIENT = TypeAdapter(ClientMessage)
_TYPES = ("configure", "play", "pause", "step", "reset")


class CheckRequest(_Message):
    lanes: list[Any]


class CommandRequest(_Message):
    lane: dict[str, Any]
    steps: int = Field(default=1000, ge=1, le=10_000_000)


def _errors(problems: tuple[LaneProblem, ...] | list[LaneProblem]) -> dict[str, Any]:
    return {"errors": [p.as_dict() for p in problems]}


def _message_problem(raw: str) -> LaneProblem | None:
    """Why a page's message is not one of the protocol's, in words (None: it is)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return LaneProblem(None, None, f"A message must be JSON. Got {raw[:60]!r}.")
    kind = data.get("type") if isinstance(data, dict) else None
    if kind not in _TYPES:
        return LaneProblem(
            None, None, f"Unknown message type {kind!r}. Known: {', '.join(_TYPES)}."
        )
    try:
        _CLIENT.validate_python(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:])
        return LaneProblem(None, None, f"Bad {kind!r} message: {where} {first['msg']}.")
    return None


def _plain(value: Any) -> Any:
    """JSON has no NaN: non-finite numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- app


def create_app(*, max_pages: int = LIMITS.pages) -> FastAPI:
    """The playground's FastAPI app.

    Args:
        max_pages: pages that may be open at once; one more gets a message and is closed.
    """
    app = FastAPI(title="initlab playground", docs_url=None, redoc_url=None)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError) -> JSONResponse:
        """A body that is not the endpoint's: the same ``errors`` shape as a bad lane."""
        problems = []
        for item in error.errors():
            where = ".".join(str(p) for p in item["loc"] if p != "body") or "the body"
            problems.append(LaneProblem(None, None, f"{where}: {item['msg']}."))
        return JSONResponse(_errors(problems), status_code=422)

    sessions: dict[str, Session] = {}
    app.state.sessions = sessions
    hello = {**options(), "hist_edges": list(HIST_EDGES)}

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", response_model=None)
    def index() -> Response:
        page = STATIC / "index.html"
        if not page.is_file():
            return PlainTextResponse(
                f"The playground's page is not built: {page} is missing. From a checkout, "
                "run `make frontend`.",
                status_code=500,
            )
        return FileResponse(page)

    @app.get("/api/options")
    def get_options() -> dict[str, Any]:
        return hello

    @app.post("/api/lanes/check", response_model=None)
    def check(request: CheckRequest) -> dict[str, Any] | JSONResponse:
        try:
            lanes = check_lanes(request.lanes)
        except LaneErrors as error:
            return JSONResponse(_errors(error.problems), status_code=422)
        return {"lanes": [lane.model_dump() for lane in lanes]}

    @app.post("/api/command", response_model=None)
    def get_command(request: CommandRequest) -> dict[str, Any] | JSONResponse:
        try:
            (lane,) = check_lanes([request.lane])
        except LaneErrors as error:
            return JSONResponse(_errors(error.problems), status_code=422)
        return {"command": command(lane, request.steps), "note": command_note(lane)}

    @app.get("/api/sessions/{session}/lanes/{lane}/history.csv", response_model=None)
    def history(session: str, lane: int) -> Response:
        found = sessions.get(session)
        if found is None:
            return PlainTextResponse(
                f"No open page has session {session!r}: the history lives while its page is open.",
                status_code=404,
            )
        if not 0 <= lane < len(found.lanes):
            return PlainTextResponse(
                f"Lane {lane + 1} does not exist: the page has {len(found.lanes)} lanes.",
                status_code=404,
            )
        rows = found.history(lane)
        out = io.StringIO()
        names = ["step", "loss", "test_cost", "train_acc", "test_acc", "grad_norm", "clip_rate"]
        writer = csv.DictWriter(out, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        filename = f"initlab-lane-{lane + 1}.csv"
        return Response(
            out.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @app.websocket("/ws")
    async def stream(ws: WebSocket) -> None:
        origin = ws.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != ws.headers.get("host"):
            # Another site's page in the user's browser: it may not train on this machine.
            await ws.close(code=1008, reason="other origins may not use the playground")
            return
        await ws.accept()
        if len(sessions) >= max_pages:
            text = (
                f"{max_pages} pages are open already, the most this playground trains at "
                "once: close one and reload this page."
            )
            await ws.send_json(
                {"type": "errors", "errors": [{"lane": None, "field": None, "message": text}]}
            )
            await ws.close(code=1013)
            return
        session = Session()
        sessions[session.id] = session
        try:
            await ws.send_json({"type": "hello", "session": session.id, **hello})
            order = asyncio.Lock()
            sender = asyncio.create_task(_send_updates(ws, session, order))
            try:
                await _receive(ws, session, order)
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender
        except WebSocketDisconnect:
            pass
        finally:
            sessions.pop(session.id, None)
            session.stop_soon()  # at once: the wait below may be cancelled at shutdown
            await asyncio.to_thread(session.close)

    return app


async def _state(ws: WebSocket, session: Session) -> None:
    await ws.send_json(
        {
            "type": "state",
            "playing": session.playing,
            "lanes": [lane.model_dump() for lane in session.lanes],
        }
    )


async def _receive(ws: WebSocket, session: Session, order: asyncio.Lock) -> None:
    """Answers each message with exactly one ``state`` or ``errors``, in order; a
    configure's or reset's ``data`` messages follow its state, before any update of the
    new lanes (``order`` keeps the sender out meanwhile)."""
    while True:
        raw = await ws.receive_text()
        async with order:
            try:
                await _answer(ws, session, raw)
            except WebSocketDisconnect:
                raise
            except Exception as error:  # the page gets a message and keeps its connection
                text = f"The server could not do that: {type(error).__name__}: {error}"
                problem = LaneProblem(None, None, text)
                await ws.send_json({"type": "errors", **_errors([problem])})


async def _answer(ws: WebSocket, session: Session, raw: str) -> None:
    problem = _message_problem(raw)
    if problem is not None:
        await ws.send_json({"type": "errors", **_errors([problem])})
        return
    message = _CLIENT.validate_json(raw)
    rebuilt = isinstance(message, Configure | Reset)
    if isinstance(message, Configure):
        try:
            await asyncio.to_thread(session.configure, message.lanes)
        except LaneErrors as error:
            await ws.send_json({"type": "errors", **_errors(error.problems)})
            return
    elif isinstance(message, Play):
        if not session.lanes:
            problem = LaneProblem(None, None, "Nothing to play: configure lanes first.")
            await ws.send_json({"type": "errors", **_errors([problem])})
            return
        session.play()
    elif isinstance(message, Pause):
        session.pause()
    elif isinstance(message, Step):
        session.step()
    else:
        await asyncio.to_thread(session.reset)
    await _state(ws, session)
    if rebuilt:
        for data in session.data:
            await ws.send_text(json.dumps(_plain(data)))


async def _send_updates(ws: WebSocket, session: Session, order: asyncio.Lock) -> None:
    """Everything the samplers gathered, every 40 ms at most: never a message per step."""
    while True:
        await asyncio.sleep(_SEND_EVERY)
        async with order:
            drained = session.drain()["lanes"]
            if drained:
                await ws.send_text(json.dumps({"type": "update", "lanes": _plain(drained)}))


# --------------------------------------------------------------------------- serve


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    open_browser: bool = True,
    echo: Callable[[str], None] | None = None,
) -> None:
    """Serve the playground until Ctrl-C.

    Args:
        host: the address to listen on; anything but loopback prints a warning.
        port: the port; 0 picks a free one.
        open_browser: open the page in the default browser.
        echo: where the URL and warnings are printed.
    """
    import uvicorn

    def say(text: str) -> None:
        print(text, flush=True)  # at once: a script may wait for the URL

    echo = echo or say
    if not _loopback(host):
        echo(
            f"warning: listening on {host}: anyone who can reach this machine can open the "
            "playground and run training on it. Use the default 127.0.0.1 to keep it local."
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # listening before the URL is printed: a script may connect at once
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    url = f"http://{shown}:{bound}/"
    config = uvicorn.Config(create_app(), log_level="warning", ws="websockets-sansio")
    server = uvicorn.Server(config)
    echo(f"initlab playground: {url}  (Ctrl-C to stop)")
    if open_browser:  # a wildcard address is no place to browse to: loopback is
        webbrowser.open(url if host not in ("0.0.0.0", "::") else f"http://127.0.0.1:{bound}/")
    server.run(sockets=[sock])
