"""Fault injection: the next N requests to a path fail the way networks and servers fail.

Admin: ``POST /emulator/v1/faults`` ``{"path": "/token", "count": 2, "status": 503}``, or
``"delay": seconds``, ``"drop": true`` (the connection closes mid-response) or ``"truncate": true``
(a body shorter than its Content-Length); ``DELETE`` clears them.
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gcptoken.emulator.responses import api_error
from gcptoken.emulator.state import EmulatorState, Fault

__all__ = ["FaultInjector", "InjectedDrop", "quiet_injected_drops", "routes"]


class InjectedDrop(Exception):
    """Raised after a response has started, so the server closes the connection mid-response."""


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


async def faults(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    if request.method == "DELETE":
        with state.lock:
            state.faults.clear()
        return JSONResponse({"faults": []})
    if request.method == "POST":
        try:
            body = json.loads(await request.body())
            fault = Fault(
                path=str(body["path"]),
                count=int(body.get("count", 1)),
                status=int(body["status"]) if body.get("status") is not None else None,
                delay=float(body.get("delay", 0.0)),
                drop=bool(body.get("drop", False)),
                truncate=bool(body.get("truncate", False)),
            )
        except (ValueError, TypeError, KeyError):
            return api_error(400, 'A fault needs "path" and one of "status", "delay", "drop", "truncate".')
        if fault.count < 1 or not (fault.status or fault.delay or fault.drop or fault.truncate):
            return api_error(400, 'A fault needs count >= 1 and one of "status", "delay", "drop", "truncate".')
        with state.lock:
            state.faults.append(fault)
    with state.lock:
        return JSONResponse({"faults": [f.to_json() for f in state.faults if f.count > 0]})


routes = [Route("/emulator/v1/faults", faults, methods=["GET", "POST", "DELETE"])]
