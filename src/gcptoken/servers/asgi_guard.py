"""The request guard as ASGI middleware: every HTTP request and WebSocket handshake passes the
framing checks (:mod:`gcptoken.servers.framing`) and :func:`gcptoken.servers.guard.check` before
the app sees it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from gcptoken.servers.framing import FramingError, body_framing, origin_form
from gcptoken.servers.guard import GuardPolicy, Refusal, Scrutiny, check
from gcptoken.untrusted import one_line

__all__ = ["RequestGuard", "Rules", "everywhere", "first_values"]

# Headers a request may carry once only: two Hosts or two Origins are a smuggling attempt.
_SINGLE = (b"host", b"origin", b"sec-fetch-site", b"content-type")


# h11 bounds headers that arrive in pieces, not a block read at once: the bound, for every server.
MAX_HEADER_BYTES = 32 * 1024


class _TooLarge(Exception):
    pass


def first_values(raw: list[tuple[bytes, bytes]]) -> tuple[dict[str, str], bool]:
    """Lower-case name → first value, and whether a header that must be single was repeated."""
    found: dict[str, str] = {}
    repeated = False
    if sum(len(key) + len(value) + 4 for key, value in raw) > MAX_HEADER_BYTES:
        raise _TooLarge
    for key, value in raw:
        name = key.decode("latin-1").lower()
        if name in found:
            repeated = repeated or key.lower() in _SINGLE
            continue
        found[name] = value.decode("latin-1")
    return found, repeated


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
        try:
            origin_form(scope.get("raw_path", str(scope.get("path", "")).encode()))
            body_framing(scope["headers"], scope.get("http_version"), websocket)
        except FramingError as exc:
            return Refusal(400, str(exc))
        try:
            headers, repeated = first_values(scope["headers"])
        except _TooLarge:
            return Refusal(431, "the request's headers are too large")
        if repeated:
            return Refusal(400, "a header that must appear once (Host, Origin, Content-Type) appears twice")
        policy, scrutiny = self.rules(scope)
        bound = scope.get("server") or ("", 0)
        return check(
            scope.get("method", "GET"),
            headers,
            peer,
            (str(bound[0]), int(bound[1] or 0)),
            policy,
            scrutiny,
            scope.get("scheme", "http"),
            websocket,
        )

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
