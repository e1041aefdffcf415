"""One service's front door: the checks Cloud Run makes before a request reaches the container,
then the forwarding (:class:`gcptoken.local.proxy.Proxy`'s streaming, framing and path rules,
with the caller's own token, its signature removed, in place of a minted one).

The order is Cloud Run's: an ``allUsers`` service forwards everything untouched, token or not;
otherwise the token is taken from ``X-Serverless-Authorization`` when present, else from
``Authorization`` (none: 403); it must be a Google-signed ID token (the emulator's keys) whose
``aud`` is one of the service's URLs or custom audiences and whose issuer and expiry hold (else
401); then its email (or, without one, the account whose unique id is its ``sub``) must be an
invoker, or ``allAuthenticatedUsers`` bound (else 403)."""

from __future__ import annotations

import logging
from typing import cast

from starlette.types import Receive, Scope, Send

from gcptoken.credentials import Credentials
from gcptoken.emulator.run import pages
from gcptoken.emulator.run.services import ALL_AUTHENTICATED, ALL_USERS, RunService, RunServices, member_of
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.errors import TransportError, VerificationError
from gcptoken.local.proxy import Proxy
from gcptoken.local.proxy_request import ClientRequest, hop_by_hop_removed
from gcptoken.verify.verifier import Verifier

__all__ = ["FrontDoor"]

log = logging.getLogger("gcptoken.emulator.run")
_AUTHORIZATION = b"authorization"


class _Refused(Exception):
    def __init__(self, answer: pages.Answer) -> None:
        self.answer = answer


class FrontDoor(Proxy):
    """The front door of ``service`` (its URLs already known), checking tokens against the keys
    at ``certs_url`` (the emulator's ``/oauth2/v3/certs``) and invokers in ``registry``."""

    def __init__(
        self,
        service: RunService,
        registry: RunServices,
        certs_url: str,
        timeout: float = 30.0,
        state: EmulatorState | None = None,
    ) -> None:
        """``state``: whose service accounts and people a token without email (``sub`` only) is."""
        # No credential: the caller's own token is what goes on (Proxy's minting is never used).
        super().__init__(service.upstream, cast(Credentials, None), service.url, timeout)
        self.service, self.registry, self.state = service, registry, state
        self.verifier = Verifier(service.audiences, certs=certs_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            try:
                scope = {**scope, "headers": await self._admit(scope)}
            except _Refused as refused:
                await _answer(scope, receive, send, refused.answer)
                return
        await super().__call__(scope, receive, send)

    async def _admit(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        """The headers to forward, or :class:`_Refused` with Cloud Run's answer."""
        # Hop-by-hop headers go first, as an intermediary removes them on receipt (RFC 9110 §7.6.1;
        # Google's front end then adds its own headers to what remains): the token checked
        # is then the one forwarded, and a client's ``Connection: x-serverless-authorization``
        # (or ``x-forwarded-for``, ``traceparent``…) can no longer remove, after the check, the
        # header checked or those added below, leaving a forged Authorization to reach the app.
        headers = hop_by_hop_removed([(k.lower(), v) for k, v in scope["headers"]])
        invokers = self.registry.invokers(self.service.name)
        client = (scope.get("client") or (None,))[0]
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        if ALL_USERS in invokers:  # a public service: nothing checked, nothing changed
            return pages.forwarded_headers(headers, client, scheme)
        path = str(scope.get("path", "/"))
        names = {name for name, _ in headers}
        carrier = pages.SERVERLESS_AUTHORIZATION if pages.SERVERLESS_AUTHORIZATION in names else _AUTHORIZATION
        value = next((v for k, v in headers if k == carrier), None)
        if value is None:
            raise _Refused(pages.forbidden(path))
        scheme_word, _, token = value.decode("latin-1").strip().partition(" ")
        token = token.strip()
        if scheme_word.lower() != "bearer" or not token:
            raise _Refused(pages.unauthorized(path))
        try:
            # Expiry judged on the emulator's clock, the one its tokens were minted on (a test may shift it).
            claims = await self.verifier.verify_async(token, None if self.state is None else self.state.clock())
        except VerificationError as exc:
            log.info("front door of %s: token refused (%s)", self.service.name, exc.reason)
            raise _Refused(pages.unauthorized(path)) from None
        except TransportError:
            log.error("front door of %s: the emulator's keys cannot be fetched", self.service.name)
            raise _Refused((503, [(b"content-length", b"0")], b"")) from None
        member = member_of(claims, self.state)
        if ALL_AUTHENTICATED not in invokers and (member is None or member not in invokers):
            log.info("front door of %s: %s is not an invoker", self.service.name, member or "a caller without email")
            raise _Refused(pages.forbidden(path))
        stripped = b"Bearer " + pages.strip_signature(token).encode("ascii")
        rewritten = [(k, stripped if k == carrier else v) for k, v in headers]
        return pages.forwarded_headers(rewritten, client, scheme)

    # What Proxy would add or renew: nothing here, the request's own headers go on.
    async def _token(self, refresh: bool = False) -> str:
        return ""

    async def _fresh_token(self, refused: str) -> str | None:
        return None

    def _authorized(self, request: ClientRequest, token: str) -> list[tuple[bytes, bytes]]:
        return list(request.headers)


async def _answer(scope: Scope, receive: Receive, send: Send, answer: pages.Answer) -> None:
    status, headers, body = answer
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    if (await receive())["type"] != "websocket.connect":
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):  # the handshake refused with the page
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
