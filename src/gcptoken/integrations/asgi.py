"""Verifying ID tokens in ASGI services: a middleware for any ASGI app, and a dependency for
Starlette / FastAPI handlers.

Handlers get the verified claims: ``request.state.claims`` behind the middleware, or the
dependency's return value. Missing and invalid tokens get 401 with an RFC 6750 challenge; when the
issuer's keys cannot be fetched at all, 503.
"""

from __future__ import annotations

from gcptoken.extras import require

require("asgi", "gcptoken.integrations.asgi")  # before any import of its modules: one clear line if missing

import logging
from collections.abc import Collection
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from gcptoken.errors import TransportError, VerificationError
from gcptoken.integrations.bearer import refusal, token_from
from gcptoken.integrations.cloud_run import CloudRunIdentity
from gcptoken.verify.audience import refuse_in_a_service
from gcptoken.verify.verifier import Verifier

__all__ = ["IdTokenMiddleware", "VerifiedClaims"]

log = logging.getLogger("gcptoken.integrations")

# WebSocket close code "policy violation": what a server sends a client it will not serve.
_POLICY_VIOLATION = 1008


def _header_of(scope: Scope, name: str) -> str | None:
    wanted = name.encode("latin-1")
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            text: str = value.decode("latin-1")
            return text
    return None


class IdTokenMiddleware:
    """Lets through only HTTP and WebSocket requests carrying a token ``verifier`` accepts (in
    the verifier's ``token_header``, unless ``header`` says otherwise). ``exempt_paths`` (health
    checks, say: IAP sends none with them) pass unchecked. With a
    :class:`~gcptoken.integrations.cloud_run.CloudRunIdentity` instead of a Verifier, the claims
    Cloud Run's front door checked (read its warning first)."""

    def __init__(
        self,
        app: ASGIApp,
        verifier: Verifier | CloudRunIdentity,
        *,
        header: str | None = None,
        exempt_paths: Collection[str] = (),
    ) -> None:
        refuse_in_a_service(verifier.any_audience, "IdTokenMiddleware")
        self.app = app
        self.verifier = verifier
        self.header = (header or verifier.token_header).lower()
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        try:
            if isinstance(self.verifier, CloudRunIdentity):  # opt-in: Cloud Run's front door checked it
                claims = self.verifier.claims_from(lambda name: _header_of(scope, name))
            else:
                claims = await self.verifier.verify_async(token_from(_header_of(scope, self.header), self.header))
        except (VerificationError, TransportError) as error:
            await self._refuse(scope, send, error)
            return
        state = dict(scope.get("state") or {})
        state["claims"] = claims
        await self.app({**scope, "state": state}, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, error: VerificationError | TransportError) -> None:
        if isinstance(error, TransportError):
            log.error("cannot verify tokens: %s", error)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": _POLICY_VIOLATION})
            return
        answer = refusal(error)
        headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers]
        headers.append((b"content-length", str(len(answer.body)).encode("ascii")))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})


class VerifiedClaims:
    """A dependency: ``claims: dict = Depends(VerifiedClaims(verifier))`` in FastAPI, or
    ``claims = await VerifiedClaims(verifier)(request)`` in a Starlette endpoint. Raises
    HTTPException (401 with the challenge, or 503), which both frameworks answer."""

    def __init__(self, verifier: Verifier | CloudRunIdentity, *, header: str | None = None) -> None:
        refuse_in_a_service(verifier.any_audience, "VerifiedClaims")
        self.verifier = verifier
        self.header = (header or verifier.token_header).lower()

    async def __call__(self, request: Request) -> dict[str, Any]:
        try:
            if isinstance(self.verifier, CloudRunIdentity):  # opt-in: Cloud Run's front door checked it
                return self.verifier.claims_from(request.headers.get)
            token = token_from(request.headers.get(self.header), self.header)
            return await self.verifier.verify_async(token)
        except (VerificationError, TransportError) as error:
            if isinstance(error, TransportError):
                log.error("cannot verify tokens: %s", error)
            answer = refusal(error)
            headers = {name: value for name, value in answer.headers if name != "content-type"}
            raise HTTPException(answer.status, detail=answer.description, headers=headers) from None
