"""``gcptoken inspect``'s server: the page and its calls, on 127.0.0.1 under a one-time path, so
neither other local users nor other sites can use it.

The path is spent by the first load, which opens a session (an HttpOnly cookie); from then on only
that browser is served — a reload included — and any other load of the path gets 403 and a line on
stderr (someone else had the address). The calls answer only that session, and only as JSON from
our own origin (the request guard). The page loads nothing from other origins (a strict
Content-Security-Policy). Tokens are never logged or stored; the one given on the command line is
handed to the page once. Opaque tokens go to Google's tokeninfo only when the person asks.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Scope

from gcptoken.errors import GcpTokenError
from gcptoken.inspector.kinds import read
from gcptoken.inspector.verdict import verdict
from gcptoken.servers.asgi_guard import RequestGuard
from gcptoken.servers.guard import GuardPolicy, Scrutiny
from gcptoken.servers.launch import OneTimeLink
from gcptoken.servers.page_headers import PAGE_HEADERS
from gcptoken.untrusted import UnreadableJson, json_object

__all__ = ["HEADERS", "inspector_app"]

HEADERS = PAGE_HEADERS
MAX_TOKEN = 64 * 1024
log = logging.getLogger("gcptoken.inspector")
STATIC = {"inspector.js": "text/javascript; charset=utf-8", "inspector.css": "text/css; charset=utf-8"}


def _asset(name: str) -> bytes:
    return resources.files("gcptoken.inspector").joinpath("static").joinpath(name).read_bytes()


class Inspector:
    def __init__(self, link: OneTimeLink, initial_token: str | None) -> None:
        self.link = link
        self.initial: str | None = initial_token

    def _in_session(self, request: Request) -> bool:
        """The browser that loaded the page: our path, and the cookie its first load set."""
        secret = str(request.path_params.get("secret", ""))
        return self.link.matches(secret) and self.link.holds_session(request.headers.get("cookie"), _port(request))

    async def _body(self, request: Request) -> dict[str, Any] | None:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return None
        raw = await request.body()
        if len(raw) > MAX_TOKEN:
            return None
        try:
            body = json_object(raw)
        except UnreadableJson:
            return None
        return body if isinstance(body.get("token"), str) else None

    async def page(self, request: Request) -> Response:
        secret = str(request.path_params.get("secret", ""))
        if self.link.claim(secret):
            headers = {**HEADERS, "Set-Cookie": self.link.set_cookie(_port(request))}
            return Response(_asset("inspector.html"), media_type="text/html; charset=utf-8", headers=headers)
        if self._in_session(request):  # a reload in the same browser
            return Response(_asset("inspector.html"), media_type="text/html; charset=utf-8", headers=HEADERS)
        if self.link.matches(secret):
            log.warning(
                "refused a second load of the inspector's address from another browser or process "
                "(anyone who read it from a command line); the first browser keeps working"
            )
            return Response("This inspector page was already opened.\n", status_code=403, media_type="text/plain")
        return Response("Not Found\n", status_code=404, media_type="text/plain")

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not self._in_session(request) or name not in STATIC:
            return Response("Not Found\n", status_code=404, media_type="text/plain")
        return Response(_asset(name), media_type=STATIC[name], headers=HEADERS)

    async def initial_token(self, request: Request) -> Response:
        if not self._in_session(request):
            return Response(status_code=404)
        token, self.initial = self.initial, None  # once: a reload does not show it again
        return JSONResponse({"token": token}, headers=HEADERS)

    async def inspect(self, request: Request) -> Response:
        if not self._in_session(request):
            return Response(status_code=404)
        body = await self._body(request)
        if body is None:
            return JSONResponse({"error": 'send {"token": …} as JSON'}, status_code=400, headers=HEADERS)
        token = " ".join(body["token"].split()).removeprefix("Authorization:").strip().removeprefix("Bearer ").strip()
        if not token:
            return JSONResponse({"error": "paste a token"}, status_code=400, headers=HEADERS)
        audience = body.get("audience")
        audience = audience.strip() if isinstance(audience, str) and audience.strip() else None
        reading = read(token)
        result = reading.to_json()
        result["verdict"] = await verdict(reading, token, audience)
        return JSONResponse(result, headers=HEADERS)

    async def tokeninfo(self, request: Request) -> Response:
        """Google's tokeninfo for an opaque token, only on the person's request (the page says so)."""
        if not self._in_session(request):
            return Response(status_code=404)
        body = await self._body(request)
        if body is None:
            return JSONResponse({"error": 'send {"token": …} as JSON'}, status_code=400, headers=HEADERS)
        from gcptoken.verify.tokeninfo import tokeninfo_async

        try:
            info = await tokeninfo_async(body["token"].strip())
        except GcpTokenError as exc:
            return JSONResponse({"error": " ".join(str(exc).split())}, status_code=502, headers=HEADERS)
        return JSONResponse({"tokeninfo": info}, headers=HEADERS)


def _port(request: Request) -> int:
    server = request.scope.get("server") or ("", 0)
    return int(server[1] or 0)


def _rules(scope: Scope) -> tuple[GuardPolicy, Scrutiny]:
    """The page may be reached by a navigation from anywhere (its path is the secret); the calls
    only from the page itself, as JSON."""
    return _POLICY, Scrutiny.SAME_ORIGIN_JSON if "/api/" in scope.get("path", "") else Scrutiny.UNSAFE


_POLICY = GuardPolicy(allow_hint="nothing: the inspector answers this machine only")


def inspector_app(link: OneTimeLink, initial_token: str | None = None) -> ASGIApp:
    inspector = Inspector(link, initial_token)
    app = Starlette(
        routes=[
            Route("/{secret}/", inspector.page, methods=["GET"]),
            Route("/{secret}/{name}", inspector.asset, methods=["GET"]),
            Route("/{secret}/api/initial", inspector.initial_token, methods=["POST"]),
            Route("/{secret}/api/inspect", inspector.inspect, methods=["POST"]),
            Route("/{secret}/api/tokeninfo", inspector.tokeninfo, methods=["POST"]),
        ]
    )
    return RequestGuard(app, _rules, log)
