"""``gcptoken inspect``'s server: the page and its two calls, on 127.0.0.1 under an unguessable
one-time path, so neither other local users nor other sites can use it.

The page loads nothing from other origins (a strict Content-Security-Policy) and posts tokens only
to this server, as JSON (a cross-site form cannot). Tokens are never logged or stored; the one given
on the command line is handed to the page once. Opaque tokens go to Google's tokeninfo only when the
person asks.
"""

from __future__ import annotations

import json
import secrets
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gcptoken.errors import GcpTokenError
from gcptoken.inspector.kinds import read
from gcptoken.inspector.verdict import verdict
from gcptoken.servers.page_headers import PAGE_HEADERS

__all__ = ["HEADERS", "inspector_app"]

HEADERS = PAGE_HEADERS
MAX_TOKEN = 64 * 1024
STATIC = {"inspector.js": "text/javascript; charset=utf-8", "inspector.css": "text/css; charset=utf-8"}


def _asset(name: str) -> bytes:
    return resources.files("gcptoken.inspector").joinpath("static").joinpath(name).read_bytes()


class Inspector:
    def __init__(self, secret: str, initial_token: str | None) -> None:
        self.secret = secret
        self.initial: str | None = initial_token

    def _allowed(self, request: Request) -> bool:
        """Our own page only: the secret path, a loopback Host (no DNS rebinding), our Origin."""
        if not secrets.compare_digest(str(request.path_params.get("secret", "")).encode(), self.secret.encode()):
            return False
        host = request.headers.get("host", "").rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost", "[::1]"):
            return False
        origin = request.headers.get("origin")
        return origin is None or origin == f"http://{request.headers.get('host')}"

    async def _body(self, request: Request) -> dict[str, Any] | None:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return None
        raw = await request.body()
        if len(raw) > MAX_TOKEN:
            return None
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return None
        return body if isinstance(body, dict) and isinstance(body.get("token"), str) else None

    async def page(self, request: Request) -> Response:
        if not self._allowed(request):
            return Response("Not Found\n", status_code=404, media_type="text/plain")
        return Response(_asset("inspector.html"), media_type="text/html; charset=utf-8", headers=HEADERS)

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not self._allowed(request) or name not in STATIC:
            return Response("Not Found\n", status_code=404, media_type="text/plain")
        return Response(_asset(name), media_type=STATIC[name], headers=HEADERS)

    async def initial_token(self, request: Request) -> Response:
        if not self._allowed(request) or request.method != "POST":
            return Response(status_code=404)
        token, self.initial = self.initial, None  # once: a reload does not show it again
        return JSONResponse({"token": token}, headers=HEADERS)

    async def inspect(self, request: Request) -> Response:
        if not self._allowed(request):
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
        if not self._allowed(request):
            return Response(status_code=404)
        body = await self._body(request)
        if body is None:
            return JSONResponse({"error": 'send {"token": …} as JSON'}, status_code=400, headers=HEADERS)
        from gcptoken.tokeninfo import tokeninfo_async

        try:
            info = await tokeninfo_async(body["token"].strip())
        except GcpTokenError as exc:
            return JSONResponse({"error": " ".join(str(exc).split())}, status_code=502, headers=HEADERS)
        return JSONResponse({"tokeninfo": info}, headers=HEADERS)


def inspector_app(secret: str, initial_token: str | None = None) -> Starlette:
    inspector = Inspector(secret, initial_token)
    return Starlette(
        routes=[
            Route("/{secret}/", inspector.page, methods=["GET"]),
            Route("/{secret}/{name}", inspector.asset, methods=["GET"]),
            Route("/{secret}/api/initial", inspector.initial_token, methods=["POST"]),
            Route("/{secret}/api/inspect", inspector.inspect, methods=["POST"]),
            Route("/{secret}/api/tokeninfo", inspector.tokeninfo, methods=["POST"]),
        ]
    )
