"""httpx adapters for the flow drivers: one ``send`` each, errors become TransportError."""

from __future__ import annotations

import atexit
import functools
import ssl
import time
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from gcptoken.endpoints import safe_url
from gcptoken.errors import InvalidArgumentError, TransportError
from gcptoken.http.failures import network_failure, timed_out
from gcptoken.http.flows import HttpRequest, HttpResponse
from gcptoken.http.tls import ClientCertificate, client_context, server_context

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
    return TransportError(f"{request.method} {safe_url(request.url)}: {network_failure(exc, request.url)}")


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
    return TransportError(f"{request.method} {safe_url(request.url)}: {timed_out(request.url, limit)}")


def _check_url(request: HttpRequest) -> None:
    """A port out of range is an unusable URL, as the http.client transport finds it (httpx would
    try to connect and fail as a network error, which the drivers would retry)."""
    try:
        urlsplit(request.url).port  # noqa: B018 - raises ValueError
    except ValueError:
        raise InvalidArgumentError(f"{request.method} {safe_url(request.url)}: not a URL that can be called") from None


def _options(request: HttpRequest, limit: float) -> dict[str, Any]:
    return {"headers": dict(request.headers), "content": request.body, "timeout": httpx.Timeout(limit)}


class _Body:
    """A response body collected as it arrives, refused once it passes ``max_body``."""

    def __init__(self, raw: httpx.Response, request: HttpRequest) -> None:
        self.request = request
        self.chunks: list[bytes] = []
        self.size = 0
        declared = raw.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > request.max_body:
            raise _too_large(request)

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.request.max_body:
            raise _too_large(self.request)
        self.chunks.append(chunk)

    def response(self, raw: httpx.Response) -> HttpResponse:
        return HttpResponse(raw.status_code, raw.headers, b"".join(self.chunks))


class HttpxTransport:
    """Blocking transport; one connection pool for its lifetime. Redirects are never followed."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(
            timeout=timeout, trust_env=False, follow_redirects=False, verify=server_context() or True
        )
        self._default = timeout

    def send(self, request: HttpRequest) -> HttpResponse:
        _check_url(request)
        limit = _limit(request, self._default)
        if _in_child_process(request):
            from gcptoken.keys import tpm_tls_child

            return tpm_tls_child.exchange(request, limit)
        started = time.monotonic()
        client = self._client if request.client_certificate is None else _mtls_client(request.client_certificate)
        try:
            with client.stream(request.method, request.url, **_options(request, limit)) as raw:
                body = _Body(raw, request)
                for chunk in raw.iter_bytes():  # as it arrives: a drip is cut off at the limit
                    body.add(chunk)
                    if time.monotonic() - started > limit:
                        raise _too_slow(request, limit)
                return body.response(raw)
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
        self._client = client or httpx.AsyncClient(
            timeout=timeout, trust_env=False, follow_redirects=False, verify=server_context() or True
        )
        self._default = timeout

    async def send(self, request: HttpRequest) -> HttpResponse:
        import asyncio

        _check_url(request)
        limit = _limit(request, self._default)
        if _in_child_process(request):
            from gcptoken.keys import tpm_tls_child

            return await tpm_tls_child.exchange_async(request, limit)
        try:
            return await asyncio.wait_for(self._exchange(request, limit), limit)
        except asyncio.TimeoutError:
            raise _too_slow(request, limit) from None
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise _failure(request, exc) from None

    async def _exchange(self, request: HttpRequest, limit: float) -> HttpResponse:
        if request.client_certificate is not None:
            async with httpx.AsyncClient(
                verify=client_context(request.client_certificate), trust_env=False, follow_redirects=False
            ) as client:
                return await self._read(client, request, limit)
        return await self._read(self._client, request, limit)

    async def _read(self, client: httpx.AsyncClient, request: HttpRequest, limit: float) -> HttpResponse:
        async with client.stream(request.method, request.url, **_options(request, limit)) as raw:
            body = _Body(raw, request)
            async for chunk in raw.aiter_bytes():
                body.add(chunk)
            return body.response(raw)

    async def aclose(self) -> None:
        await self._client.aclose()


def _in_child_process(request: HttpRequest) -> bool:
    """Mutual TLS with a TPM key runs in a child process (keys.tpm_tls_child says why)."""
    if request.client_certificate is None:
        return False
    from gcptoken.keys import tpm_tls_child

    return tpm_tls_child.isolates(request.client_certificate)


def _mtls_client(certificate: ClientCertificate) -> httpx.Client:
    """A client presenting ``certificate`` (httpx sets certificates per client, not per request)."""
    return _mtls_client_for(client_context(certificate))


@functools.lru_cache(maxsize=8)
def _mtls_client_for(context: ssl.SSLContext) -> httpx.Client:
    # No idle connections kept: a token exchange is a few requests an hour, and a rotated
    # certificate must be presented on the next one.
    limits = httpx.Limits(max_keepalive_connections=0)
    client = httpx.Client(verify=context, trust_env=False, follow_redirects=False, limits=limits)
    atexit.register(client.close)
    return client


@functools.lru_cache(maxsize=8)
def shared_transport(timeout: float = DEFAULT_TIMEOUT) -> HttpxTransport:
    """One pooled blocking transport per timeout for the whole process: building an httpx client
    loads the CA bundle (~30 ms), far more than a token request to a warm connection."""
    transport = HttpxTransport(timeout)
    atexit.register(transport.close)
    return transport
