"""``gcptoken proxy URL``: a local reverse proxy that adds an ID token to every request it forwards
to URL, so browsers, curl and tools that know nothing of ID tokens can call a private Cloud Run
service or an app behind IAP.

Requests and responses stream through (methods, status, headers minus hop-by-hop ones, bodies of
any size); WebSocket upgrades are relayed (:mod:`~gcptoken.local.proxy_websocket`). The token goes
in ``Authorization``, or in ``Proxy-Authorization`` when the client sends its own
``Authorization`` (IAP accepts it there); with ``header="X-Serverless-Authorization"`` it goes
there (Cloud Run checks it first and leaves ``Authorization`` to the app), replacing any the
client sent. Only clean HTTP goes on, to URL's host and under URL's
path only (:mod:`~gcptoken.local.proxy_request`); anything else is a 400 with a one-line reason.
What comes back is passed on less its hop-by-hop headers, redirects to the service brought back to
the proxy (:mod:`~gcptoken.local.proxy_response`); an answer that is not valid HTTP is a 502.

A 401 saying ``invalid_token`` is retried once with a new token when the request body could be
kept; a new token is forced at most once per ``REFRESH_INTERVAL`` seconds (per proxy, so per
audience), and inside that window the 401 goes back to the client as it came: no client can make
the credential mint tokens without bound.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import httpcore
import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from gcptoken.credentials import Credentials
from gcptoken.errors import GcpTokenError, InvalidArgumentError
from gcptoken.http.failures import network_failure
from gcptoken.http.tls import server_context
from gcptoken.integrations.audience import audience_for, says_invalid_token
from gcptoken.local.proxy_guard import guarded_proxy
from gcptoken.local.proxy_request import ClientRequest, Refused, client_request, upstream_target
from gcptoken.local.proxy_response import response_headers
from gcptoken.local.proxy_stream import ClientBody, ClientGone, relay_until_gone, unless_client_leaves
from gcptoken.local.proxy_websocket import HANDSHAKE_OWN, relay
from gcptoken.servers.guard import Network

__all__ = ["MAX_OPEN", "REFRESH_INTERVAL", "Proxy", "proxy_app", "upstream_audience"]

# Bodies up to this size are kept, so a request refused for its token can be sent again.
REPLAYABLE = 1 << 20
# At most one forced token refresh per this many seconds.
REFRESH_INTERVAL = 10.0
# Requests open to the service at once (HTTP/1.1: one connection each). Streams that stay open (MCP
# GET streams, Server-Sent Events) hold theirs for their whole life; Cloud Run's own per-instance
# concurrency tops out at 1000 (cloud.google.com/run/docs/about-concurrency).
MAX_OPEN = 1000
UPSTREAM_ERRORS = (
    httpcore.NetworkError,
    httpcore.TimeoutException,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
)
# Responses up to this size are passed on in one piece (fewer events per request).
SMALL_RESPONSE = 64 * 1024
logger = logging.getLogger("gcptoken.proxy")
_SERVERLESS = b"x-serverless-authorization"
_REFUSAL_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]


def upstream_audience(url: str, audience: str | None) -> str:
    """As ``gcptoken call``: ``--audience``, else the URL's scheme://host (a Cloud Run service)."""
    from gcptoken import checks

    # spaces, control characters, a bad port, no host, user info
    url = checks.http_url(url, "the proxy's URL", user_info=False)
    if "?" in url or "#" in url:
        raise InvalidArgumentError("the proxy's URL is http(s)://HOST[:PORT][/PATH], without a query")
    return checks.audience(audience, "--audience") if audience else audience_for(url)


class Proxy:
    def __init__(
        self,
        target: str,
        credentials: Credentials,
        audience: str,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        header: str = "Authorization",
        http2: bool = False,
        max_open: int = MAX_OPEN,
    ) -> None:
        """``clock``: seconds on a monotonic scale, for the forced-refresh rate limit; ``header``:
        ``Authorization`` (the default) or ``X-Serverless-Authorization``; ``http2``: HTTP/1.1
        clients' requests go to the service over HTTP/2 too (HTTP/2 clients' always do);
        ``max_open``: requests open to the service at once (one more waits up to ``timeout``, then
        is a 503 saying so)."""
        self.serverless = header.lower() == "x-serverless-authorization"
        url = httpx.URL(target)
        self.scheme, self.host, self.port = url.raw_scheme, url.raw_host, url.port
        self.port_number = url.port or (443 if url.scheme == "https" else 80)
        self.timeout, self.max_open = timeout, max_open
        self.closers: list[Callable[[], Awaitable[None]]] = []  # the HTTP/2 side's connections
        self.origin = (url.scheme, url.netloc)
        self.base_path = url.raw_path.split(b"?", 1)[0].rstrip(b"/")
        self.host_header = (b"host", url.netloc)
        self.ws_origin = f"{'wss' if url.scheme == 'https' else 'ws'}://{url.netloc.decode('ascii')}"
        self.credentials, self.audience, self.clock = credentials, audience, clock
        self.refresh_after = float("-inf")
        # httpcore, beneath httpx: a proxy's hot path has no use for httpx's request and response models.
        self.pool = httpcore.AsyncConnectionPool(
            max_connections=max_open,
            max_keepalive_connections=32,
            retries=0,
            http1=not http2,
            http2=http2,  # prior knowledge for http://, ALPN h2 for https://
            ssl_context=server_context(),  # the CAs every transport trusts (SSL_CERT_FILE, SSL_CERT_DIR)
        )
        self.timeouts = {"connect": timeout, "read": None, "write": timeout, "pool": timeout}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, self.aclose)
            return
        try:
            if scope["type"] == "http":
                await self._http(scope, receive, send)
            elif scope["type"] == "websocket":
                await self._websocket(scope, receive, send)
        except Exception as exc:  # never a 500 or a traceback: a short 502 (or a closed connection)
            logger.warning("gcptoken proxy: %s while forwarding a request", type(exc).__name__)
            with contextlib.suppress(Exception):  # the answer may have begun: then it just ends
                if scope["type"] == "http":
                    await _plain(send, 502, f"gcptoken proxy: cannot forward this request ({type(exc).__name__})\n")
                else:
                    await send({"type": "websocket.close", "code": 1011})

    async def aclose(self) -> None:
        """Close the connections kept open to the service (on the loop that serves the proxy)."""
        await self.pool.aclose()
        for close in self.closers:
            await close()

    # The HTTP/2 side's way to the same token rules (proxy_h2).
    async def token(self) -> str:
        return await self._token()

    async def fresh_token(self, refused: str) -> str | None:
        return await self._fresh_token(refused)

    def authorized(self, request: ClientRequest, token: str) -> list[tuple[bytes, bytes]]:
        return self._authorized(request, token)

    async def _token(self, refresh: bool = False) -> str:
        return (await self.credentials.id_token_async(self.audience, refresh=refresh)).value

    async def _fresh_token(self, refused: str) -> str | None:
        """A token to retry with after ``refused`` was refused: one another request already renewed,
        else a new one, unless one was forced less than REFRESH_INTERVAL ago (then None)."""
        current = await self._token()
        if current != refused:
            return current
        now = self.clock()
        if now < self.refresh_after:
            return None
        self.refresh_after = now + REFRESH_INTERVAL  # before the fetch: concurrent 401s force one
        return await self._token(refresh=True)

    def _authorized(self, request: ClientRequest, token: str) -> list[tuple[bytes, bytes]]:
        bearer = b"Bearer " + token.encode("ascii")
        if self.serverless:  # the client's Authorization goes on untouched; its own X-Serverless-… does not
            return [*(h for h in request.headers if h[0] != _SERVERLESS), (_SERVERLESS, bearer)]
        name = b"proxy-authorization" if request.authorization else b"authorization"  # the client's own is kept
        return [*request.headers, (name, bearer)]

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            request = client_request(scope)
            target = upstream_target(scope, self.base_path)
        except Refused as refused:
            await _plain(send, 400, f"gcptoken proxy: {refused}\n", _REFUSAL_HEADERS)
            return
        framing: list[tuple[bytes, bytes]] = []
        if request.chunked:
            framing.append((b"transfer-encoding", b"chunked"))  # a body of unknown length, re-framed
        elif request.length is not None:
            framing.append((b"content-length", str(request.length).encode("ascii")))
        replayable = not request.chunked and (request.length or 0) <= REPLAYABLE
        body: bytes | ClientBody
        if replayable:
            kept = await _read_all(receive)
            if kept is None:
                return  # the client left before its body was complete: nothing is forwarded
            body = kept
        else:
            body = ClientBody(receive)
        # Once the whole body is read, what else comes from the client says that it left.
        body_read = None if isinstance(body, bytes) else body.read
        try:
            token = await self._token()
            response = await unless_client_leaves(
                self._send(scope["method"], target, request, framing, body, token), receive, body_read
            )
            if replayable and says_invalid_token(response.status, _header(response, b"www-authenticate")):
                fresh = await self._fresh_token(token)
                if fresh is not None:
                    await response.aclose()
                    response = await unless_client_leaves(
                        self._send(scope["method"], target, request, framing, body, fresh), receive, body_read
                    )
        except ClientGone:
            return  # mid-body or before the answer: the service's request was dropped with it
        except httpcore.PoolTimeout:  # the proxy's own limit, not the service's slowness
            said = f"{self.max_open} requests are open to {self._origin()}, the proxy's limit"
            await _plain(send, 503, f"gcptoken proxy: {said}; none ended in {self.timeout:g} s\n")
            return
        except GcpTokenError as exc:
            await _plain(send, 502, f"gcptoken proxy: no ID token for {self.audience}: {exc}\n")
            return
        except UPSTREAM_ERRORS as exc:
            if isinstance(exc, httpcore.ProtocolError):
                said = f"no valid HTTP answer from {self._origin()} ({type(exc).__name__})"
            else:  # in the words every command uses (http.failures)
                said = network_failure(exc, self._origin())
            await _plain(send, 502, f"gcptoken proxy: {said}\n")
            return
        ended = isinstance(body, bytes) or body.ended
        await self._answer(scope, send, response, receive if ended else None)

    def _origin(self) -> str:
        return f"{self.origin[0]}://{self.origin[1].decode('ascii')}"

    async def _send(
        self,
        method: str,
        target: bytes,
        request: ClientRequest,
        framing: list[tuple[bytes, bytes]],
        body: bytes | ClientBody,
        token: str,
    ) -> httpcore.Response:
        headers = self._authorized(request, token)
        headers.append(self.host_header)
        headers.extend(framing)
        return await self.pool.handle_async_request(
            httpcore.Request(
                method,
                httpcore.URL(scheme=self.scheme, host=self.host, port=self.port, target=target),
                headers=headers,
                content=body,
                extensions={"timeout": self.timeouts},
            )
        )

    async def _answer(
        self, scope: Scope, send: Send, response: httpcore.Response, receive: Receive | None = None
    ) -> None:
        """The service's response, passed on; a malformed one (or one broken off) is a 502. A long
        one stops when ``receive`` (given once the request body is read) says the client left."""
        try:
            if not 200 <= response.status <= 599:  # 1xx to a plain request, or no status at all
                await _plain(send, 502, f"gcptoken proxy: {self._origin()} answered status {response.status}\n")
                return
            headers, length = response_headers(response.headers, self.origin, self.base_path, scope.get("server"))
            start = {"type": "http.response.start", "status": response.status, "headers": headers}
            stream = response.aiter_stream()
            if length is not None and length <= SMALL_RESPONSE:  # the common case: one message
                try:
                    body = b"".join([chunk async for chunk in stream])
                except UPSTREAM_ERRORS as exc:
                    await _plain(send, 502, f"gcptoken proxy: {self._origin()} broke off ({type(exc).__name__})\n")
                    return
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            await send(start)
            await relay_until_gone(stream, send, receive)
        except UPSTREAM_ERRORS:
            return  # the service broke off mid-answer: the client's connection ends with it
        finally:
            await response.aclose()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        try:
            request = client_request(scope, websocket=True)
            target = upstream_target(scope, self.base_path)
        except Refused as refused:
            await _refuse_websocket(scope, send, f"gcptoken proxy: {refused}\n")
            return
        try:
            token = await self._token()
        except GcpTokenError:
            await send({"type": "websocket.close", "code": 1011})
            return
        headers = [
            (key.decode("latin-1"), value.decode("latin-1"))
            for key, value in self._authorized(request, token)
            if key not in HANDSHAKE_OWN
        ]
        url = self.ws_origin + target.decode("ascii")
        await relay(url, headers, scope.get("subprotocols") or None, receive, send)


def _header(response: httpcore.Response, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in response.headers if k.lower() == name), None)


async def _read_all(receive: Receive) -> bytes | None:
    """The whole body, or None when the client disconnects before its end."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _plain(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode("utf-8")
    headers = [*(extra or [(b"content-type", b"text/plain; charset=utf-8")]), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(scope: Scope, send: Send, text: str) -> None:
    """A 400 answer to the handshake where the server can send one, else a refused handshake."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    body = text.encode("utf-8")
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
    await send({"type": "websocket.http.response.start", "status": 400, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send, on_shutdown: Callable[[], Awaitable[None]]) -> None:
    """ASGI lifespan: the pool's connections are closed on the serving loop when the server stops."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            with contextlib.suppress(Exception):
                await on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


def proxy_app(
    target: str,
    credentials: Credentials,
    audience: str,
    timeout: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
    *,
    allow: Sequence[Network] = (),
    hosts: Sequence[str] = (),
    origins: Sequence[str] = (),
    header: str = "Authorization",
    http2: bool = False,
    max_open: int = MAX_OPEN,
) -> ASGIApp:
    """The proxy behind the request guard (``allow``: peers besides loopback; ``hosts``: Host names
    besides loopback and the bound address; ``origins``: pages trusted like the proxy's own;
    ``header``: where the token goes; ``http2``: HTTP/1.1 clients' requests too go over HTTP/2;
    ``max_open``: requests open to the service at once)."""
    proxy = Proxy(target, credentials, audience, timeout, clock, header, http2, max_open)
    return guarded_proxy(proxy, allow, hosts, origins)
