"""The request guard as ASGI middleware: every HTTP request and WebSocket handshake passes
:func:`gcptoken.servers.guard.screen` before the app sees it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from gcptoken.servers.guard import GuardPolicy, Refusal, Request, Scrutiny, screen
from gcptoken.untrusted import one_line

__all__ = ["RequestGuard", "Rules", "everywhere"]

Rules = Callable[[Scope], tuple[GuardPolicy, Scrutiny]]


def everywhere(policy: GuardPolicy, scrutiny: Scrutiny) -> Rules:
    """The same rule for every path."""
    return lambda scope: (policy, scrutiny)


class RequestGuard:
    """``rules(scope)`` says which policy applies to a request and how closely it is checked (by
    path, say); refusals are answered in one plain line and logged on ``log`` at INFO (``-v``)."""

    def __init__(self, app: ASGIApp, rules: Rules, log: logging.Logger) -> None:
        self.app, self.rules, self.log = app, rules, log

    def _refusal(self, scope: Scope, websocket: bool, peer: str) -> Refusal | None:
        bound = scope.get("server") or ("", 0)
        raw_path = scope.get("raw_path") or str(scope.get("path", "")).encode()
        query = scope.get("query_string") or b""
        request = Request(
            method=scope.get("method", "GET"),
            target=raw_path + b"?" + query if query else raw_path,
            http_version=str(scope.get("http_version", "1.1")),
            headers=scope["headers"],
            peer=peer,
            bound=(str(bound[0]), int(bound[1] or 0)),
            scheme=scope.get("scheme", "http"),
            websocket=websocket,
        )
        policy, scrutiny = self.rules(scope)
        return screen(request, policy, scrutiny)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        peer = (scope.get("client") or ("", 0))[0]
        refusal = self._refusal(scope, kind == "websocket", peer)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "WEBSOCKET")
        self.log.info(
            "refused %s %s from %s: %d %s", method, one_line(scope["path"]), peer, refusal.status, refusal.reason
        )
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: the handshake gets 403
            return
        body = f"Forbidden: {refusal.reason}\n".encode() if refusal.status == 403 else f"{refusal.reason}\n".encode()
        await send(
            {
                "type": "http.response.start",
                "status": refusal.status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                    # What follows a refused request on this connection (a body, a smuggled
                    # request) is never read as another request.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
