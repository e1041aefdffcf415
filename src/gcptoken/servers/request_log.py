"""The request log of gcptoken's servers (``-v``): method, path, status and what the handler noted,
never a token, never a query (queries carry tokens), and nothing a client sent can start a new
line or drive the terminal."""

from __future__ import annotations

import contextvars
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gcptoken.untrusted import one_line

__all__ = ["RequestLogger", "note"]

_detail: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("request_detail", default=None)


def note(**values: str) -> None:
    """Adds ``key=value`` pairs to the current request's log line (audience, cache hit…)."""
    detail = _detail.get()
    if detail is not None:
        detail.update(values)


class RequestLogger:
    """Logs one line per HTTP request on ``log`` at INFO once it is answered (``-> client left``:
    the client disconnected before any answer began, ``-> no answer``: the app gave none)."""

    def __init__(self, app: ASGIApp, log: logging.Logger) -> None:
        self.app, self.log = app, log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        detail: dict[str, Any] = {}
        reset = _detail.set(detail)
        status = ["no answer"]

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = str(message["status"])
            await send(message)

        async def watching() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect" and status[0] == "no answer":
                status[0] = "client left"
            return message

        try:
            await self.app(scope, watching, recording)
        finally:
            _detail.reset(reset)
            extra = "".join(f" {k}={one_line(str(v), 120)}" for k, v in detail.items())
            self.log.info("%s %s -> %s%s", one_line(scope["method"], 20), one_line(scope["path"]), status[0], extra)
