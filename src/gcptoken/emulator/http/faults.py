"""Fault injection: the next N requests to a path fail the way networks and servers fail.

Admin: ``POST /emulator/v1/faults`` ``{"path": "/token", "count": 2, "status": 503}``, or
``"delay": seconds`` (at most 300), ``"drop": true`` (the connection closes mid-response),
``"truncate": true`` (a body shorter than its Content-Length) or ``"lose_response": true`` (the
request is carried out, a token minted, and the connection closes before the answer: the client
never learns of it); ``DELETE`` clears them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gcptoken.emulator.http.responses import api_error, json_body
from gcptoken.emulator.state.models import Fault
from gcptoken.emulator.state.state import EmulatorState

__all__ = ["FaultInjector", "InjectedDrop", "quiet_injected_drops", "routes"]


class InjectedDrop(Exception):
    """Raised after a response has started (or was swallowed), so the server closes the
    connection without a complete answer; ``status`` is what the lost answer said."""

    def __init__(self, path: str, status: int | None = None) -> None:
        super().__init__(path)
        self.status = status


class QuietDrops(logging.Filter):
    """Injected drops are deliberate: keep uvicorn from logging them as application errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], InjectedDrop))


def quiet_injected_drops() -> None:
    server_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietDrops) for f in server_log.filters):
        server_log.addFilter(QuietDrops())


class FaultInjector:
    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    def _take(self, path: str) -> Fault | None:
        with self.state.lock:
            for fault in self.state.faults:
                if fault.count > 0 and path == fault.path:
                    fault.count -= 1
                    return fault
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = self._take(scope["path"]) if scope["type"] == "http" else None
        if fault is None:
            await self.app(scope, receive, send)
            return
        scope.setdefault("gcptoken.detail", {})["fault"] = fault.to_json()
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.lose_response:
            lost: list[int] = []

            async def swallow(message: Message) -> None:  # processed, and the answer goes nowhere
                if message["type"] == "http.response.start":
                    lost.append(message["status"])

            await self.app(scope, receive, swallow)
            raise InjectedDrop(scope["path"], lost[0] if lost else None)
        if fault.drop or fault.truncate:
            body = json.dumps({"access_token": "ya29.partial"}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body) + 100).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            if fault.truncate:
                await send({"type": "http.response.body", "body": body[:10], "more_body": True})
            raise InjectedDrop(scope["path"])
        if fault.status is not None:
            await api_error(fault.status, f"Injected fault: HTTP {fault.status}.")(scope, receive, send)
            return
        await self.app(scope, receive, send)  # a delay only


MAX_DELAY = 300.0
_KINDS = ("status", "delay", "drop", "truncate", "lose_response")


def _fault_from(body: object) -> Fault | str:
    """A fault from its JSON, or what is wrong with it."""
    if not isinstance(body, dict):
        return "A fault is a JSON object."
    path, count, status, delay = body.get("path"), body.get("count", 1), body.get("status"), body.get("delay", 0)
    flags = {name: body.get(name, False) for name in ("drop", "truncate", "lose_response")}
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 2048:
        return '"path" must be a path starting with /.'
    if type(count) is not int or not 1 <= count <= 1_000_000:
        return '"count" must be a positive integer.'
    if status is not None and (type(status) is not int or not 100 <= status <= 599):
        return '"status" must be an HTTP status, 100 to 599.'
    if type(delay) not in (int, float) or not math.isfinite(delay) or not 0 <= delay <= MAX_DELAY:
        return f'"delay" must be a number of seconds, 0 to {MAX_DELAY:g}.'
    if not all(isinstance(flag, bool) for flag in flags.values()):
        return '"drop", "truncate" and "lose_response" must be true or false.'
    if status is None and not delay and not any(flags.values()):
        return f"A fault needs one of {', '.join(_KINDS)}."
    return Fault(path=path, count=count, status=status, delay=float(delay), **flags)


async def faults(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    if request.method == "DELETE":
        with state.lock:
            state.faults.clear()
        return JSONResponse({"faults": []})
    if request.method == "POST":
        try:
            fault = _fault_from(await json_body(request))
        except ValueError:
            fault = "A fault is a JSON object."
        if isinstance(fault, str):
            return api_error(400, fault)
        with state.lock:
            state.faults.append(fault)
    with state.lock:
        return JSONResponse({"faults": [f.to_json() for f in state.faults if f.count > 0]})


routes = [Route("/emulator/v1/faults", faults, methods=["GET", "POST", "DELETE"])]
