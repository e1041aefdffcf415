"""One client's HTTP/2 stream through ``gcptoken proxy``.

It is checked as every HTTP/1.1 request is: the guard's :func:`~gcptoken.servers.guard.screen`
(peer, ``:authority`` as Host, Origin, header size), then
:func:`~gcptoken.local.proxy_request.client_request` (methods, hop-by-hop and planted headers) and
:func:`~gcptoken.local.proxy_request.upstream_target` (the path under URL's path). Then it goes to
the service on a stream of its own with the ID token, ``:authority`` the service's, and is relayed
both ways at once: bodies as they come (flow control carries back-pressure), trailers
(``grpc-status``), and resets, in either direction.

A refusal or failure is a one-line text answer, or for gRPC (``content-type: application/grpc…``)
a trailers-only answer whose ``grpc-status`` and ``grpc-message`` say it. A 401 ``invalid_token``
forces a new token (rate-limited as over HTTP/1.1); the request is sent again only when it had no
body, since bodies are streamed, not kept. gRPC's ``UNAUTHENTICATED`` in trailers comes from the
app, not from the token check in front of it: it is passed on, and forces nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import NamedTuple
from urllib.parse import quote_from_bytes

import h2.errors

from gcptoken.errors import GcpTokenError
from gcptoken.integrations.audience import says_invalid_token
from gcptoken.local.h2_link import H2Link, Headers, Inbox, LinkClosed, Part
from gcptoken.local.proxy_h2_upstream import UpstreamError, UpstreamStream
from gcptoken.local.proxy_request import ClientRequest, Refused, client_request, upstream_target
from gcptoken.local.proxy_response import response_headers
from gcptoken.servers import serving
from gcptoken.servers.guard import GuardPolicy, Request, Scrutiny, screen
from gcptoken.untrusted import one_line

__all__ = ["Checked", "StreamEnd", "check_stream", "grpc_status", "relay"]

log = logging.getLogger("gcptoken.proxy")
# What a gRPC client makes of an HTTP status, as gRPC's own clients map them
# (https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md); refusals by the
# proxy itself say INVALID_ARGUMENT for a malformed request.
_GRPC_STATUS = {400: 3, 401: 16, 403: 7, 404: 12, 413: 3, 415: 3, 431: 3, 429: 14, 502: 14, 503: 14, 504: 14}
_CANCEL = h2.errors.ErrorCodes.CANCEL
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2
_SPACE = re.compile(rb"[\x00-\x20\x7f]")
# Tries of one stream: a 401 invalid_token sent again, or a stream a service's GOAWAY did not take.
_TRIES = 3
# A request body that is not gRPC must bring BODY_MIN_BYTES in every BODY_WINDOW seconds (as over
# HTTP/1.1) until it ends. gRPC's client-streaming and bidirectional calls may rightly stay quiet
# for minutes between messages: their pace is the application's (its deadline ends them).
BODY_WINDOW = serving.BODY_WINDOW
BODY_MIN_BYTES = serving.BODY_MIN_BYTES


class StreamEnd(NamedTuple):
    """Where a client's stream is: its link, id and what it sent."""

    link: H2Link
    stream_id: int
    inbox: Inbox


class Checked(NamedTuple):
    """A stream fit to forward."""

    method: str
    target: bytes  # URL's path + the request's path and query
    request: ClientRequest
    extra: Headers  # te: trailers and content-length, which HTTP/2 carries end to end
    grpc: bool
    has_body: bool


def check_stream(
    headers: Headers, ended: bool, peer: str, bound: tuple[str, int], policy: GuardPolicy
) -> Checked | tuple[int, str, bool]:
    """The stream fit to forward, or (status, one-line reason, is gRPC) to refuse it with."""
    pseudo = {name: value for name, value in headers if name.startswith(b":")}
    regular = [(name, value) for name, value in headers if not name.startswith(b":")]
    grpc = any(n == b"content-type" and v.startswith(b"application/grpc") for n, v in regular)
    method = pseudo.get(b":method", b"").decode("latin-1")
    path = pseudo.get(b":path", b"")
    if not _TOKEN.fullmatch(method) or not path or _SPACE.search(path):
        return 400, "malformed :method or :path", grpc
    if pseudo.get(b":scheme", b"http") not in (b"http", b"https"):
        return 400, ":scheme is neither http nor https", grpc
    hosts = [value for name, value in regular if name == b"host"]
    authority = pseudo.get(b":authority") or (hosts[0] if hosts else b"")
    if any(value != authority for value in hosts):
        return 400, ":authority and Host differ", grpc
    as_http1 = [(b"host", authority), *((n, v) for n, v in regular if n != b"host")]
    refusal = screen(Request(method, path, "2", as_http1, peer, bound), policy, Scrutiny.UNSAFE)
    if refusal is not None:
        reason = f"Forbidden: {refusal.reason}" if refusal.status == 403 else refusal.reason
        return refusal.status, reason, grpc
    raw_path, _, query = path.partition(b"?")
    try:
        request = client_request({"method": method, "headers": regular, "http_version": "2"})
        target = upstream_target({"raw_path": raw_path, "query_string": query}, b"")
    except Refused as refused:
        return 400, f"gcptoken proxy: {refused}", grpc
    extra = [(b"te", b"trailers")] if (b"te", b"trailers") in regular else []
    if request.length is not None:
        extra.append((b"content-length", str(request.length).encode("ascii")))
    return Checked(method, target, request, extra, grpc, not ended)


def grpc_status(status: int) -> int:
    """The ``grpc-status`` a refusal with HTTP ``status`` says (UNKNOWN for any other)."""
    return _GRPC_STATUS.get(status, 2)


async def refuse(client: StreamEnd, status: int, reason: str, grpc: bool) -> None:
    """The one-line answer (or gRPC's trailers-only one) that ends ``client``'s stream."""
    if grpc:
        message = quote_from_bytes(reason.encode("utf-8"), safe=b" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")
        code = grpc_status(status)
        headers = [(b":status", b"200"), (b"content-type", b"application/grpc")]
        client.link.send_headers(
            client.stream_id, [*headers, (b"grpc-status", b"%d" % code), (b"grpc-message", message.encode())], True
        )
        return
    body = f"{reason}\n".encode()
    headers = [(b":status", b"%d" % status), (b"content-type", b"text/plain; charset=utf-8")]
    client.link.send_headers(client.stream_id, [*headers, (b"content-length", b"%d" % len(body))])
    await client.link.send_data(client.stream_id, body, end_stream=True)


class Service(NamedTuple):
    """What a stream needs of the proxy: where, and how it gets and renews its token."""

    open: Callable[[Headers, bool], Awaitable[UpstreamStream]]
    token: Callable[[], Awaitable[str]]
    fresh_token: Callable[[str], Awaitable[str | None]]
    authorized: Callable[[ClientRequest, str], Headers]
    pseudo: Callable[[str, bytes], Headers]  # :method, :scheme, :authority, :path for the service
    origin: tuple[str, bytes]
    base_path: bytes
    audience: str


async def relay(client: StreamEnd, checked: Checked, service: Service, server: tuple[str, int]) -> int:
    """Forward ``client``'s stream; the status answered (0: reset), for the log."""
    target = service.base_path + checked.target
    try:
        token = await service.token()
    except GcpTokenError as exc:
        await refuse(client, 502, f"gcptoken proxy: no ID token for {service.audience}: {exc}", checked.grpc)
        return 502
    for _ in range(_TRIES):
        headers = [*service.pseudo(checked.method, target), *service.authorized(checked.request, token), *checked.extra]
        try:
            upstream = await service.open(headers, not checked.has_body)
        except UpstreamError as exc:
            await refuse(client, 502, f"gcptoken proxy: {exc}", checked.grpc)
            return 502
        body = asyncio.create_task(_forward_body(client, upstream, checked.has_body, not checked.grpc))
        answer = asyncio.create_task(_answer(client, upstream, service, server, checked, token))
        try:
            await asyncio.wait({body, answer}, return_when=asyncio.FIRST_COMPLETED)
            if not answer.done() and body.result() is False:
                return 0  # the client reset its stream: so is the service's (below)
            outcome = await answer
        finally:
            for task in (body, answer):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            upstream.end()  # reset unless it ended; what it received and was not passed on, acknowledged
        if isinstance(outcome, int):
            return outcome
        token = outcome  # a new token, or a stream not taken, for a request without a body: sent again
    client.link.reset(client.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
    return 0


async def _answer(
    client: StreamEnd, upstream: UpstreamStream, service: Service, server: tuple[str, int], checked: Checked, token: str
) -> int | str:
    """The service's answer passed on: its status (0: reset); or a new token to send the request
    again with, after a 401 ``invalid_token`` to a request without a body."""
    part = await upstream.inbox.get()
    if part.kind == "refused" and not checked.has_body:
        return token  # a GOAWAY said the service never processed it (RFC 9113 §6.8): on a new connection
    if part.kind != "headers":
        refused = h2.errors.ErrorCodes.REFUSED_STREAM
        if part.kind == "refused" or (part.kind == "reset" and part.code == refused):
            client.link.reset(client.stream_id, refused)  # not taken: clients may retry it elsewhere
            return 0
        where = f"{service.origin[0]}://{service.origin[1].decode('ascii')}"
        said = {"reset": "reset the stream before answering", "not h2": "does not speak HTTP/2 (h2c)"}
        reason = said.get(part.kind, "broke off before answering")
        await refuse(client, 502, f"gcptoken proxy: {where} {reason}", checked.grpc)
        return 502
    status_text = dict(part.headers).get(b":status", b"")
    status = int(status_text) if status_text.isdigit() and len(status_text) == 3 else 0
    if not 200 <= status <= 599:  # checked before anything goes to the client
        log.info("gcptoken proxy: the service answered :status %r: 502", one_line(status_text.decode("latin-1"), 20))
        await refuse(client, 502, "gcptoken proxy: the service answered no valid :status", checked.grpc)
        return 502
    www = next((v.decode("latin-1") for n, v in part.headers if n == b"www-authenticate"), None)
    if status == 401 and says_invalid_token(401, www):
        fresh = await service.fresh_token(token)  # rate-limited, as over HTTP/1.1
        if fresh is not None and not checked.has_body:  # a streamed body was not kept to send again
            return fresh
    return await _forward_answer(client, upstream, part, service, server)


async def _forward_answer(
    client: StreamEnd, upstream: UpstreamStream, first: Part, service: Service, server: tuple[str, int]
) -> int:
    regular = [(n, v) for n, v in first.headers if not n.startswith(b":")]
    status = next((v for n, v in first.headers if n == b":status"), b"502")
    passed, _ = response_headers(regular, service.origin, service.base_path, server)
    link, stream_id = client.link, client.stream_id
    ended = first.ended  # a trailers-only answer (gRPC's errors): its headers end the stream
    try:
        link.send_headers(stream_id, [(b":status", status), *passed], end_stream=ended)
        while True:
            part = await upstream.inbox.get()
            if part.kind == "data":
                await link.send_data(stream_id, part.data)
                upstream.link.passed(upstream.stream_id, upstream.inbox, part.flow)
            elif part.kind == "trailers":
                trailers, _ = response_headers(part.headers, service.origin, service.base_path, server)
                link.send_headers(stream_id, trailers, end_stream=True)
                ended = True
            elif part.kind == "end":
                if not ended:
                    await link.send_data(stream_id, b"", end_stream=True)
                return int(status)
            else:  # reset by the service (its code passed on), or its connection lost
                link.reset(stream_id, part.code if part.kind == "reset" else h2.errors.ErrorCodes.INTERNAL_ERROR)
                return 0
    except LinkClosed:  # the client reset its stream or went away: the service's stream ends too
        return 0


async def _forward_body(client: StreamEnd, upstream: UpstreamStream, sending: bool, paced: bool) -> bool:
    """The client's body (and trailers) to the service, then a watch for the client's reset;
    False when the client reset its stream (or its ``paced`` body stalled: both streams reset),
    True when the service's stream ended first."""
    loop = asyncio.get_running_loop()
    deadline, brought = loop.time() + BODY_WINDOW, 0
    while True:
        if sending and paced:
            try:
                part = await asyncio.wait_for(client.inbox.get(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                log.info("gcptoken proxy: an HTTP/2 request body stalled: stream reset")
                client.link.reset(client.stream_id, _CANCEL)
                upstream.link.reset(upstream.stream_id, _CANCEL)
                return False
            brought += len(part.data)
            if brought >= BODY_MIN_BYTES:
                deadline, brought = loop.time() + BODY_WINDOW, 0
        else:
            part = await client.inbox.get()
        try:
            if part.kind == "data" and sending:
                await upstream.link.send_data(upstream.stream_id, part.data)
                client.link.passed(client.stream_id, client.inbox, part.flow)
            elif part.kind == "trailers" and sending:
                upstream.link.send_headers(upstream.stream_id, _request_trailers(part.headers), end_stream=True)
                sending = False
            elif part.kind == "end" and sending:
                await upstream.link.send_data(upstream.stream_id, b"", end_stream=True)
                sending = False
            elif part.kind in ("reset", "lost"):
                upstream.link.reset(upstream.stream_id, _CANCEL)
                return False
        except LinkClosed:  # the service's stream ended: what it answered says the rest
            client.link.drop(client.stream_id, client.inbox)
            return True


def _request_trailers(headers: Headers) -> Headers:
    request = client_request({"method": "POST", "headers": headers, "http_version": "2"})
    return request.headers


def log_stream(method: str, path: bytes, status: int) -> None:
    """One line per stream at INFO (``-v``), as over HTTP/1.1: never a query (queries carry tokens)."""
    if log.isEnabledFor(logging.INFO):
        shown = one_line(path.split(b"?", 1)[0].decode("latin-1"))
        log.info("%s %s -> %d (HTTP/2)", one_line(method, 20), shown, status)
