"""Sans-I/O flows: token logic as generators that yield requests and receive responses.

A flow is written once and run by either driver (``run_sync`` / ``run_async``), so no credential
source has a hand-copied async twin. The drivers own timeouts and error translation.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from gcptoken.endpoints import safe_url
from gcptoken.errors import TokenRequestError, TransportError
from gcptoken.untrusted import UnreadableJson, json_object

if TYPE_CHECKING:
    from gcptoken.http.tls import ClientCertificate

__all__ = [
    "AsyncTransport",
    "Flow",
    "HttpRequest",
    "HttpResponse",
    "SyncTransport",
    "get_json_flow",
    "json_body",
    "presenting",
    "run_async",
    "run_sync",
]


def _debug(message: str, *args: object) -> None:
    """``logging.getLogger("gcptoken.http").debug``, without importing logging for it: until some
    code imports logging, no level or handler can have been set, and a debug line goes nowhere."""
    if "logging" in sys.modules:
        sys.modules["logging"].getLogger("gcptoken.http").debug(message, *args)


T = TypeVar("T")


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    # What verbose logging may show about this request (never secrets); set by the flow.
    describe: Mapping[str, Any] = field(default_factory=dict)
    # Retries the driver may make on a network error, 408, 429, 5xx or one of Google's retryable
    # OAuth errors, with exponential backoff and jitter, within the flow's deadline.
    retries: int = 2
    # Seconds for this request, instead of the transport's default; transports bound the whole
    # exchange by it (a server dripping its answer byte by byte is cut off too).
    timeout: float | None = None
    # Largest response body accepted; a larger one is a TransportError (nothing is buffered past it).
    max_body: int = 1 << 20
    # A time.monotonic() moment this attempt must not outlast (set by the drivers from the flow's
    # overall deadline); the transport takes the earlier of it and the timeout.
    deadline: float | None = None
    # Mutual TLS: the client certificate to present (X.509 workload identity federation).
    client_certificate: ClientCertificate | None = None


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


Flow = Generator[HttpRequest, HttpResponse, T]


class SyncTransport(Protocol):
    def send(self, request: HttpRequest) -> HttpResponse: ...


class AsyncTransport(Protocol):
    async def send(self, request: HttpRequest) -> HttpResponse: ...


def _log_exchange(request: HttpRequest, response: HttpResponse) -> None:
    logging = sys.modules.get("logging")  # not imported: nobody asked for debug lines
    if logging is not None and logging.getLogger("gcptoken.http").isEnabledFor(logging.DEBUG):
        details = "".join(f" {key}={value}" for key, value in request.describe.items())
        _debug("%s %s -> %d%s", request.method, safe_url(request.url), response.status, details)


RETRY_BASE_DELAY = 0.1
RETRY_MAX_DELAY = 1.0


RETRYABLE_STATUSES = frozenset({408, 429})
# OAuth error codes Google's token endpoints use for transient trouble (google-auth retries them too).
RETRYABLE_OAUTH_ERRORS = (b'"internal_failure"', b'"server_error"', b'"temporarily_unavailable"')


def retryable(response: HttpResponse) -> bool:
    if response.status >= 500 or response.status in RETRYABLE_STATUSES:
        return True
    return response.status == 400 and any(code in response.body for code in RETRYABLE_OAUTH_ERRORS)


def _retry_delay(
    request: HttpRequest, attempt: int, response: HttpResponse | None, deadline: float | None
) -> float | None:
    """Seconds to wait before trying ``request`` again, or None to stop: the one retry policy both
    drivers share. ``response`` is None when the attempt failed to get any answer."""
    if attempt >= request.retries or (response is not None and not retryable(response)):
        return None
    delay = min(RETRY_MAX_DELAY, RETRY_BASE_DELAY * 2.0**attempt) * (0.5 + random.random() / 2)  # noqa: S311
    if deadline is not None and time.monotonic() + delay >= deadline:
        return None  # the overall deadline wins over the remaining attempts
    return delay


def _within(request: HttpRequest, deadline: float | None) -> HttpRequest:
    """``request`` carrying the flow's ``deadline``, if time is left before it."""
    if deadline is None:
        return request
    if deadline - time.monotonic() <= 0:
        raise TransportError(f"{request.method} {safe_url(request.url)}: no time left before the deadline")
    return replace(request, deadline=deadline)


def _final(failure: TransportError, attempt: int) -> TransportError:
    return failure if attempt == 0 else TransportError(f"{failure} (after {attempt + 1} attempts)")


def _send_sync(transport: SyncTransport, request: HttpRequest, deadline: float | None) -> HttpResponse:
    attempt = 0
    while True:
        failure: TransportError | None = None
        response: HttpResponse | None = None
        try:
            response = transport.send(_within(request, deadline))
            _log_exchange(request, response)
        except TransportError as exc:
            failure = exc
        delay = _retry_delay(request, attempt, response, deadline)
        if delay is None:
            if response is None:
                assert failure is not None
                raise _final(failure, attempt)
            return response
        _debug("retrying %s %s in %.2f s", request.method, safe_url(request.url), delay)
        time.sleep(delay)
        attempt += 1


async def _send_async(transport: AsyncTransport, request: HttpRequest, deadline: float | None) -> HttpResponse:
    attempt = 0
    while True:
        failure: TransportError | None = None
        response: HttpResponse | None = None
        try:
            response = await transport.send(_within(request, deadline))
            _log_exchange(request, response)
        except TransportError as exc:
            failure = exc
        delay = _retry_delay(request, attempt, response, deadline)
        if delay is None:
            if response is None:
                assert failure is not None
                raise _final(failure, attempt)
            return response
        _debug("retrying %s %s in %.2f s", request.method, safe_url(request.url), delay)
        import asyncio  # only async callers pay for it

        await asyncio.sleep(delay)
        attempt += 1


def presenting(flow: Flow[T], certificate: ClientCertificate | None) -> Flow[T]:
    """``flow`` with every request presenting ``certificate`` over mutual TLS (unchanged for None)."""
    if certificate is None:
        return (yield from flow)
    try:
        request = next(flow)
        while True:
            request = flow.send((yield replace(request, client_certificate=certificate)))
    except StopIteration as done:
        result: T = done.value
        return result


def run_sync(flow: Flow[T], transport: SyncTransport, deadline: float | None = None) -> T:
    """Drive ``flow`` to completion with blocking I/O; no retry starts after ``deadline``
    (a ``time.monotonic()`` value)."""
    try:
        request = next(flow)
        while True:
            request = flow.send(_send_sync(transport, request, deadline))
    except StopIteration as done:
        result: T = done.value
        return result


async def run_async(flow: Flow[T], transport: AsyncTransport, deadline: float | None = None) -> T:
    """Drive ``flow`` to completion on the running event loop, with the same deadline rule."""
    try:
        request = next(flow)
        while True:
            request = flow.send(await _send_async(transport, request, deadline))
    except StopIteration as done:
        result: T = done.value
        return result


def json_body(response: HttpResponse, what: str) -> dict[str, Any]:
    """The response's JSON object, or a TokenRequestError that says what came back instead: every
    token answer (token endpoint, STS, IAM Credentials, metadata, tokeninfo, Resource Manager) is
    read here, so nothing an upstream sends escapes as another exception."""
    try:
        return json_object(response.body)
    except UnreadableJson as exc:
        raise TokenRequestError(
            f"{what} answered HTTP {response.status} with a body that is not a JSON object "
            f"({exc.reason}; {len(response.body)} bytes)",
            status=response.status,
            retryable=response.status >= 500,
        ) from None


def get_json_flow(url: str, where: str) -> Flow[tuple[dict[str, Any], HttpResponse]]:
    """GET a public JSON document (certs, discovery): the parsed object and the response, or a
    TransportError saying ``where`` answered something else."""
    response = yield HttpRequest("GET", url, {"Accept": "application/json"})
    if response.status != 200:
        raise TransportError(f"{where} answered HTTP {response.status}")
    try:
        return json_object(response.body), response
    except UnreadableJson as exc:
        raise TransportError(f"{where} did not answer with a JSON object ({exc.reason})") from None
