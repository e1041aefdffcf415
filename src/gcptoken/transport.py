"""httpx adapters for the flow drivers: one ``send`` each, errors become TransportError."""

from __future__ import annotations

import atexit
import functools
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


def _timeout(request: HttpRequest, client: httpx.Client | httpx.AsyncClient) -> httpx.Timeout:
    return client.timeout if request.timeout is None else httpx.Timeout(request.timeout)


def _response(raw: httpx.Response) -> HttpResponse:
    return HttpResponse(raw.status_code, raw.headers, raw.content)


class HttpxTransport:
    """Blocking transport; one connection pool for its lifetime."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(timeout=timeout, trust_env=False)

    def send(self, request: HttpRequest) -> HttpResponse:
        try:
            raw = self._client.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                content=request.body,
                timeout=_timeout(request, self._client),
            )
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise _failure(request, exc) from None
        return _response(raw)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpxTransport:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncHttpxTransport:
    """Asyncio transport for ``run_async``."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, client: httpx.AsyncClient | None = None) -> None:
        self._client = client or httpx.AsyncClient(timeout=timeout, trust_env=False)

    async def send(self, request: HttpRequest) -> HttpResponse:
        try:
            raw = await self._client.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                content=request.body,
                timeout=_timeout(request, self._client),
            )
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise _failure(request, exc) from None
        return _response(raw)

    async def aclose(self) -> None:
        await self._client.aclose()


@functools.lru_cache(maxsize=8)
def shared_transport(timeout: float = DEFAULT_TIMEOUT) -> HttpxTransport:
    """One pooled blocking transport per timeout for the whole process: building an httpx client
    loads the CA bundle (~30 ms), far more than a token request to a warm connection."""
    transport = HttpxTransport(timeout)
    atexit.register(transport.close)
    return transport
