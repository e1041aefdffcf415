"""The guarded front on PUBSUB_EMULATOR_HOST's port, before the Pub/Sub emulator's JVM (which listens
on a private loopback port): the JVM answers any ``Host`` and every CORS preflight, so without a
front any web page in the user's browser could create topics and push subscriptions naming any
service account, and make the relay push tokens to the user's own endpoints.

- A connection that opens with HTTP/2's prior-knowledge preface (``PRI * HTTP/2.0``: gRPC clients
  such as google-cloud-pubsub) goes through as raw TCP: browsers cannot speak cleartext HTTP/2
  (RFC 9113 §3.3: browsers use h2 over TLS only), so no page can open one;
- every HTTP/1.x request (REST: gcloud, curl, google-cloud-pubsub's REST transport) passes the
  guard every local server of gcptoken applies (:mod:`gcptoken.servers.guard`: loopback peers,
  loopback Hosts and ``--allow-host`` names, no cross-site ``Origin`` or ``Sec-Fetch-Site`` on any
  method, so preflights are refused too), each request of a kept-alive connection on its own, then
  is forwarded to the JVM with the same cleaning as ``gcptoken proxy`` (:mod:`gcptoken.local.proxy_request`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from gcptoken.local.proxy_request import Refused, client_request, upstream_target
from gcptoken.local.proxy_response import response_headers
from gcptoken.servers.asgi_guard import RequestGuard, everywhere
from gcptoken.servers.guard import GuardPolicy, Scrutiny
from gcptoken.servers.serving import HeaderTimeoutProtocol

__all__ = ["H2C_PREFACE", "MAX_REQUEST", "front_app", "front_protocol"]

H2C_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 §3.4
# The projects clients use, so the relay knows where to look for a push that names no subscription
# (the Pub/Sub API lists no projects): in REST paths, and in gRPC's request messages, which carry
# resource names as plain protobuf strings (uncompressed: google-cloud-pubsub's default).
_RESOURCE = re.compile(rb"projects/([^/\x00-\x20?#\x7f-\xff]{1,255})/(?:topics|subscriptions|snapshots|schemas)\b")
_OVERLAP = 300  # bytes kept from one read to the next: a name split between two reads is seen
Saw = Callable[[str], None]
MAX_REQUEST = 32 * 1024 * 1024  # a publish of 10 MB messages, base64 in JSON (Pub/Sub's limit)


class _Pipe(asyncio.Protocol):
    """The JVM's side of a passed-through connection: what it sends goes back to the client."""

    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class _FrontProtocol(HeaderTimeoutProtocol):
    """uvicorn's h11 protocol, guarded, unless the connection opens with the HTTP/2 preface: then
    its bytes go to ``upstream`` (the JVM) and back, untouched."""

    upstream: tuple[str, int] = ("127.0.0.1", 0)
    saw_project: Saw | None = None
    _seen = b""
    _first = b""
    _decided = False
    _jvm: asyncio.Transport | None = None
    _pending: list[bytes] | None = None  # h2c bytes read before the JVM's connection is open

    def data_received(self, data: bytes) -> None:
        if self._decided:
            if self._pending is None:
                super().data_received(data)
            else:
                self._to_jvm(data)
            return
        self._first += data
        if H2C_PREFACE.startswith(self._first[: len(H2C_PREFACE)]) and len(self._first) < len(H2C_PREFACE):
            return  # too little to tell yet (the header timer still runs)
        self._decided = True
        first, self._first = self._first, b""
        if not first.startswith(H2C_PREFACE):
            super().data_received(first)
            return
        self._disarm_header_timer()
        self._pending = []
        self._to_jvm(first)
        self.loop.create_task(self._open_jvm())

    def _to_jvm(self, data: bytes) -> None:
        if self.saw_project is not None:
            window = self._seen + data
            for project in _RESOURCE.findall(window):
                self.saw_project(project.decode("ascii"))
            self._seen = window[-_OVERLAP:]
        if self._jvm is not None:
            self._jvm.write(data)
        elif self._pending is not None:
            self._pending.append(data)

    async def _open_jvm(self) -> None:
        try:
            transport, _ = await self.loop.create_connection(lambda: _Pipe(self.transport), *self.upstream)
        except OSError:
            self.transport.close()
            return
        self._jvm = transport
        for chunk in self._pending or ():
            transport.write(chunk)
        self._pending = []
        if self.transport.is_closing():
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._jvm is not None:
            self._jvm.close()
        super().connection_lost(exc)


def front_protocol(jvm_port: int, saw_project: Saw | None = None) -> type[asyncio.Protocol]:
    """The protocol class for the front's server (uvicorn makes one per connection); ``saw_project``
    is told each project a gRPC client names."""
    return type(
        "PubsubFrontProtocol",
        (_FrontProtocol,),
        {"upstream": ("127.0.0.1", jvm_port), "saw_project": staticmethod(saw_project) if saw_project else None},
    )


class _Forwarder:
    """An HTTP/1.x request, already guarded, sent on to the JVM; its answer passed back."""

    def __init__(self, jvm_port: int, saw_project: Saw | None) -> None:
        self.saw_project = saw_project
        self.origin = ("http", f"127.0.0.1:{jvm_port}".encode())
        self.base = f"http://127.0.0.1:{jvm_port}"
        self._client = httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(None, connect=5.0))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":  # startup
                await send({"type": "lifespan.startup.complete"})
            await self._client.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        try:
            request = client_request(scope)
            target = upstream_target(scope, b"")
        except Refused as refused:
            await _plain(send, 400, f"{refused}\n")
            return
        if self.saw_project is not None:  # in the path as the JVM reads it: percent-decoded
            for project in _RESOURCE.findall(unquote_to_bytes(target.split(b"?", 1)[0])):
                self.saw_project(project.decode("ascii"))
        body = await _read(receive)
        if body is None:
            return  # the client left before its body was complete: nothing is forwarded
        if len(body) > MAX_REQUEST:
            await _plain(send, 413, "a request over 32 MB\n")
            return
        outgoing = self._client.build_request(
            scope["method"], self.base + target.decode("latin-1"), headers=request.headers, content=body
        )
        try:
            response = await self._client.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            await _plain(send, 502, f"the Pub/Sub emulator did not answer ({type(exc).__name__})\n")
            return
        try:
            headers, _ = response_headers(list(response.headers.raw), self.origin, b"", scope.get("server"))
            await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except httpx.HTTPError:
            return  # the JVM broke off mid-answer: the client's connection ends with it
        finally:
            await response.aclose()


async def _read(receive: Receive) -> bytes | None:
    """The body (cut just past MAX_REQUEST), or None when the client left before its end."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Any = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if size > MAX_REQUEST:
            return b"".join(chunks)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    with contextlib.suppress(Exception):
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def front_app(
    jvm_port: int, hosts: Sequence[str] = (), log: logging.Logger | None = None, saw_project: Saw | None = None
) -> ASGIApp:
    """The guard, then the forwarder to the JVM on ``jvm_port``. ``hosts``: Host names answered
    besides loopback (a container's ``host.docker.internal``, say); ``saw_project``: told each
    project a REST request names."""
    policy = GuardPolicy(names=frozenset(hosts), hint="gcptoken pubsub-emulator --allow-host NAME")
    return RequestGuard(
        _Forwarder(jvm_port, saw_project),
        everywhere(policy, Scrutiny.SAME_ORIGIN),
        log or logging.getLogger("gcptoken.pubsub"),
    )
