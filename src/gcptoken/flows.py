"""Sans-I/O flows: token logic as generators that yield requests and receive responses.

A flow is written once and run by either driver (``run_sync`` / ``run_async``), so no credential
source has a hand-copied async twin. The drivers own timeouts and error translation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from gcptoken.endpoints import safe_url
from gcptoken.errors import TokenRequestError

__all__ = [
    "AsyncTransport",
    "Flow",
    "HttpRequest",
    "HttpResponse",
    "SyncTransport",
    "json_body",
    "run_async",
    "run_sync",
]

log = logging.getLogger("gcptoken.http")

T = TypeVar("T")


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    # What verbose logging may show about this request (never secrets); set by the flow.
    describe: Mapping[str, Any] = field(default_factory=dict)


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
    if log.isEnabledFor(logging.DEBUG):
        details = "".join(f" {key}={value}" for key, value in request.describe.items())
        log.debug("%s %s -> %d%s", request.method, safe_url(request.url), response.status, details)


def run_sync(flow: Flow[T], transport: SyncTransport) -> T:
    """Drive ``flow`` to completion with blocking I/O."""
    try:
        request = next(flow)
        while True:
            response = transport.send(request)
            _log_exchange(request, response)
            request = flow.send(response)
    except StopIteration as done:
        result: T = done.value
        return result


async def run_async(flow: Flow[T], transport: AsyncTransport) -> T:
    """Drive ``flow`` to completion on the running event loop."""
    try:
        request = next(flow)
        while True:
            response = await transport.send(request)
            _log_exchange(request, response)
            request = flow.send(response)
    except StopIteration as done:
        result: T = done.value
        return result


def json_body(response: HttpResponse, what: str) -> dict[str, Any]:
    """The response's JSON object, or a TokenRequestError that says what came back instead."""
    try:
        value = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        value = None
    if not isinstance(value, dict):
        raise TokenRequestError(
            f"{what} answered HTTP {response.status} with a body that is not a JSON object "
            f"({len(response.body)} bytes)",
            status=response.status,
            retryable=response.status >= 500,
        )
    return value
