"""httpx adapters for the flow drivers: one ``send`` each, errors become TransportError."""

from __future__ import annotations

import atexit
import functools
import time
from types import TracebackType

import httpx

from gcptoken.endpoints import safe_url
from gcptoken.errors import InvalidArgumentError, TransportError
from gcptoken.flows import HttpRequest, HttpResponse

__all__ = ["DEFAULT_TIMEOUT", "AsyncHttpxTransport", "HttpxTransport", "shared_transport"]

DEFAULT_TIMEOUT = 10.0


def _failure(request: HttpRequest, exc: Exception) -> Exception:
    """What the drivers see of an httpx failure: TransportError (retried) for the network, an
    InvalidArgumentError (never retried) for a URL that no retry can make work."""
    kind = type(exc).__name__
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return InvalidArgumentError(f"{request.method} {safe_url(request.url)}: not a URL that can be called ({kind})")
    if isinstance(exc, ValueError):
        return InvalidArgumentError(f"{request.method} {safe_url(request.url)}: the request cannot be sent ({kind})")
    if isinstance(exc, httpx.TimeoutException):
        reason = "timed out"
    elif isinstance(exc, httpx.ConnectError):
        reason = "connection failed"
    elif isinstance(exc, httpx.RemoteProtocolError):
        reason = "the server broke off the HTTP exchange (closed early or sent malformed HTTP)"
    else:
        reason = "request failed"
    return TransportError(f"{request.method} {safe_url(request.url)}: {reason} ({kind})")


def _limit(request: HttpRequest, default: float) -> float:
    """Seconds this exchange may take in all: its timeout, cut to the flow's deadline."""
    limit = default if request.timeout is None else request.timeout
    if request.deadline is not None:
        limit = min(limit, request.deadline - time.monotonic())
    return max(limit, 0.001)


def _too_large(request: HttpRequest) -> TransportError:
    return TransportError(
        f"{request.method} {safe_url(request.url)}: the response is larger than {request.max_body} bytes"
    )


def _too_slow(request: HttpRequest, limit: float) -> TransportError:
    return TransportError(f"{request.method} {safe_url(request.url)}: timed out (no full answer in {limit:.1f} s)")


def _read_sync(raw: httpx.Response, request: HttpRequest, limit: float, started: float) -> bytes:
    """The body, read as it arrives: never more than ``max_body``, never past ``limit``."""
    declared = raw.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > request.max_body:
        raise _too_large(request)
    chunks, size = [], 0
    for chunk in raw.iter_bytes():
        size += len(chunk)
        if size > request.max_body:
            raise _too_large(request)
        if time.monotonic() - started > limit:
            raise _too_slow(request, limit)
        chunks.append(chunk)
    return b"".join(chunks)


class HttpxTransport:
    """Blocking transport; one connection pool for its lifetime. Redirects are never followed."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False)
        self._default = timeout

    def send(self, request: HttpRequest) -> HttpResponse:
        limit = _limit(request, self._default)
        started = time.monotonic()
        try:
            with self._client.stream(
                request.method,
                request.url,
                headers=dict(request.headers),
                content=request.body,
                timeout=httpx.Timeout(limit),
            ) as raw:
                return HttpResponse(raw.status_code, raw.headers, _read_sync(raw, request, limit, started))
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise _failure(request, exc) from None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpxTransport:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncHttpxTransport:
    """Asyncio transport for ``run_async``; the whole exchange is bounded by its time limit."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, client: httpx.AsyncClient | None = None) -> None:
        self._client = client or httpx.AsyncClient(timeout=timeout, trust_env=False, follow_redirects=False)
        self._default = timeout

    async def send(self, request: HttpRequest) -> HttpResponse:
        import asyncio

        limit = _limit(request, self._default)
        try:
            return await asyncio.wait_for(self._exchange(request, limit), limit)
        except asyncio.TimeoutError:
            raise _too_slow(request, limit) from None
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise _failure(request, exc) from None

    async def _exchange(self, request: HttpRequest, limit: float) -> HttpResponse:
        async with self._client.stream(
            request.method,
            request.url,
            headers=dict(request.headers),
            content=request.body,
            timeout=httpx.Timeout(limit),
        ) as raw:
            declared = raw.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > request.max_body:
                raise _too_large(request)
            chunks, size = [], 0
            async for chunk in raw.aiter_bytes():
                size += len(chunk)
                if size > request.max_body:
                    raise _too_large(request)
                chunks.append(chunk)
            return HttpResponse(raw.status_code, raw.headers, b"".join(chunks))

    async def aclose(self) -> None:
        await self._client.aclose()


@functools.lru_cache(maxsize=8)
def shared_transport(timeout: float = DEFAULT_TIMEOUT) -> HttpxTransport:
    """One pooled blocking transport per timeout for the whole process: building an httpx client
    loads the CA bundle (~30 ms), far more than a token request to a warm connection."""
    transport = HttpxTransport(timeout)
    atexit.register(transport.close)
    return transport
