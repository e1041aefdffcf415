"""``gcptoken proxy URL``: a local reverse proxy that adds an ID token to every request it forwards
to URL, so browsers, curl and tools that know nothing of ID tokens can call a private Cloud Run
service or an app behind IAP.

Requests and responses stream through (methods, status, headers minus hop-by-hop ones, bodies of
any size); a redirect to URL's own origin is rewritten to the proxy; WebSocket upgrades are relayed.
The token goes in ``Authorization``, or in ``Proxy-Authorization`` when the client sends its own
``Authorization`` (IAP accepts it there). A 401 saying ``invalid_token`` is retried once with a new
token when the request body could be kept. Nothing is ever forwarded to another host than URL's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpcore
import httpx
from starlette.types import Message, Receive, Scope, Send

from gcptoken.credentials import Credentials
from gcptoken.errors import GcpTokenError, InvalidArgumentError
from gcptoken.integrations.audience import audience_for, says_invalid_token

__all__ = ["HOP_BY_HOP", "Proxy", "proxy_app", "upstream_audience"]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
# Bodies up to this size are kept, so a request refused for its token can be sent again.
REPLAYABLE = 1 << 20
UPSTREAM_ERRORS = (
    httpcore.NetworkError,
    httpcore.TimeoutException,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
)
# Responses up to this size are passed on in one piece (fewer events per request).
SMALL_RESPONSE = 64 * 1024


def upstream_audience(url: str, audience: str | None) -> str:
    """As ``gcptoken call``: ``--audience``, else the URL's scheme://host (a Cloud Run service)."""
    from gcptoken import checks

    url = checks.http_url(url, "the proxy's URL")  # spaces, control characters, a bad port, no host
    if "?" in url or "#" in url:
        raise InvalidArgumentError("the proxy's URL is http(s)://HOST[:PORT][/PATH], without a query")
    return checks.audience(audience, "--audience") if audience else audience_for(url)


def _forwardable(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    named = {n.strip().lower() for k, v in raw if k.lower() == b"connection" for n in v.decode("latin-1").split(",")}
    return [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in raw
        if k.decode("latin-1").lower() not in HOP_BY_HOP and k.decode("latin-1").lower() not in named
    ]


class Proxy:
    def __init__(self, target: str, credentials: Credentials, audience: str, timeout: float = 30.0) -> None:
        self.target = httpx.URL(target)
        self.base_path = self.target.raw_path.split(b"?", 1)[0].rstrip(b"/")
        self.credentials, self.audience = credentials, audience
        # httpcore, beneath httpx: a proxy's hot path has no use for httpx's request and response models.
        self.pool = httpcore.AsyncConnectionPool(max_connections=100, max_keepalive_connections=32, retries=0)
        self.timeouts = {"connect": timeout, "read": None, "write": timeout, "pool": timeout}
        self.host_header = self.target.netloc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    def _url(self, scope: Scope, websocket: bool = False) -> httpx.URL:
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        raw = self.base_path + path + (b"?" + query if query else b"")
        url = self.target.copy_with(raw_path=raw)  # URL's own scheme, host and port, always
        if websocket:
            url = url.copy_with(scheme="wss" if url.scheme == "https" else "ws")
        return url

    async def _token(self, refresh: bool = False) -> str:
        return (await self.credentials.id_token_async(self.audience, refresh=refresh)).value

    def _headers(self, scope: Scope, token: str) -> list[tuple[str, str]]:
        headers = _forwardable(scope["headers"])
        if any(k.lower() == "authorization" for k, _ in headers):
            headers.append(("Proxy-Authorization", f"Bearer {token}"))  # the client's own is kept
        else:
            headers.append(("Authorization", f"Bearer {token}"))
        return headers

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = next((v for k, v in scope["headers"] if k.lower() == b"content-length"), None)
        chunked = any(k.lower() == b"transfer-encoding" for k, _ in scope["headers"])
        size = 0 if declared is None else _number(declared)
        replayable = not chunked and size is not None and size <= REPLAYABLE
        body: bytes | AsyncIterator[bytes]
        body = await _read_all(receive) if replayable else _stream(receive)
        try:
            response = await self._send(scope, body, await self._token(), chunked)
            if replayable and says_invalid_token(response.status, _header(response, b"www-authenticate")):
                await response.aclose()
                response = await self._send(scope, body, await self._token(refresh=True), chunked)
        except GcpTokenError as exc:
            await _plain(send, 502, f"gcptoken proxy: no ID token for {self.audience}: {exc}\n")
            return
        except UPSTREAM_ERRORS as exc:
            origin = f"{self.target.scheme}://{self.target.netloc.decode()}"
            await _plain(send, 502, f"gcptoken proxy: cannot reach {origin} ({type(exc).__name__})\n")
            return
        try:
            start = {"type": "http.response.start", "status": response.status}
            start["headers"] = self._response_headers(scope, response)
            length = _number((_header(response, b"content-length") or "").encode())
            stream = response.aiter_stream()
            if length is not None and length <= SMALL_RESPONSE:  # the common case: one message
                body_bytes = b"".join([chunk async for chunk in stream])
                await send(start)
                await send({"type": "http.response.body", "body": body_bytes})
                return
            await send(start)
            async for chunk in stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except UPSTREAM_ERRORS:
            return  # the service broke off mid-answer: the client's connection ends with it
        finally:
            await response.aclose()

    async def _send(
        self, scope: Scope, body: bytes | AsyncIterator[bytes], token: str, chunked: bool
    ) -> httpcore.Response:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self._headers(scope, token)]
        headers.append((b"host", self.host_header))
        if chunked:
            headers.append((b"transfer-encoding", b"chunked"))  # a body of unknown length, re-framed
        url = self._url(scope)
        request = httpcore.Request(
            scope["method"],
            httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=headers,
            content=body,
            extensions={"timeout": self.timeouts},
        )
        return await self.pool.handle_async_request(request)

    def _response_headers(self, scope: Scope, response: httpcore.Response) -> list[tuple[bytes, bytes]]:
        headers = []
        named = {n.strip().lower() for n in (_header(response, b"connection") or "").split(",")}
        for key, value in response.headers:
            name = key.decode("latin-1").lower()
            if name in HOP_BY_HOP or name in named:
                continue
            if name == "location":
                value = self._local_location(scope, value.decode("latin-1")).encode("latin-1")
            headers.append((key, value))
        return headers

    def _local_location(self, scope: Scope, location: str) -> str:
        """A redirect to URL's own origin, rewritten to this proxy's; any other left as it is."""
        try:
            target = httpx.URL(location)
        except httpx.InvalidURL:
            return location
        if not target.is_absolute_url or (target.scheme, target.netloc) != (self.target.scheme, self.target.netloc):
            return location
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
        if host is None:
            server = scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}"
        path = target.raw_path
        if self.base_path and path.startswith(self.base_path):
            path = path[len(self.base_path) :] or b"/"
        return f"http://{host}{path.decode('latin-1')}"

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        if (await receive())["type"] != "websocket.connect":
            return
        try:
            headers = [(k, v) for k, v in self._headers(scope, await self._token()) if k.lower() not in _WS_OWN]
            upstream = await connect(
                str(self._url(scope, websocket=True)),
                additional_headers=headers,
                subprotocols=scope.get("subprotocols") or None,
                open_timeout=30,
            )
        except (GcpTokenError, InvalidHandshake, OSError, asyncio.TimeoutError):
            await send({"type": "websocket.close", "code": 1011})
            return
        async with upstream:
            await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})

            async def client_to_upstream() -> None:
                while True:
                    message = await receive()
                    if message["type"] == "websocket.disconnect":
                        await upstream.close()
                        return
                    await upstream.send(message["text"] if message.get("text") is not None else message["bytes"])

            async def upstream_to_client() -> None:
                with contextlib.suppress(ConnectionClosed):
                    async for data in upstream:
                        kind = "text" if isinstance(data, str) else "bytes"
                        await send({"type": "websocket.send", kind: data})
                with contextlib.suppress(Exception):
                    await send({"type": "websocket.close", "code": upstream.close_code or 1000})

            tasks = [asyncio.ensure_future(client_to_upstream()), asyncio.ensure_future(upstream_to_client())]
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()


# Headers a WebSocket client library sets itself (the handshake's own).
_WS_OWN = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"}
)


def _number(text: bytes) -> int | None:
    """A Content-Length's value; None for anything else (a 5,000-digit one included)."""
    return int(text) if text.isdigit() and len(text) <= 18 else None


def _header(response: httpcore.Response, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in response.headers if k.lower() == name), None)


async def _read_all(receive: Receive) -> bytes:
    chunks = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _stream(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body"):
            return


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode("utf-8")
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def proxy_app(target: str, credentials: Credentials, audience: str, timeout: float = 30.0) -> Any:
    return Proxy(target, credentials, audience, timeout)
