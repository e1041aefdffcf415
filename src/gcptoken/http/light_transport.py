"""A blocking transport on the standard library's ``http.client``, for processes that make one or
two requests and exit (the command line): importing httpx costs more than such a process spends
on the network. Same contract as ``transport.HttpxTransport``: the whole exchange bounded by the
request's timeout and the flow's deadline, bodies capped at ``max_body``, redirects not followed,
network failures as TransportError (retried by the drivers), unusable URLs as InvalidArgumentError
(not retried). ``sync_transport`` picks it when ``use_light_transport()`` was called and httpx has
not been loaded anyway.
"""

from __future__ import annotations

import functools
import http.client
import sys
import time
from urllib.parse import urlsplit

from gcptoken.endpoints import safe_url
from gcptoken.errors import InvalidArgumentError, TransportError
from gcptoken.http.failures import network_failure, timed_out
from gcptoken.http.flows import HttpRequest, HttpResponse, SyncTransport

__all__ = ["DEFAULT_TIMEOUT", "LightTransport", "sync_transport", "use_light_transport"]

DEFAULT_TIMEOUT = 10.0
_CHUNK = 64 * 1024
_light = False


def use_light_transport() -> None:
    """Make ``sync_transport`` prefer this transport for the rest of the process."""
    global _light
    _light = True


def sync_transport(timeout: float = DEFAULT_TIMEOUT) -> SyncTransport:
    """The process's blocking transport: this one for a one-shot process, else httpx's pooled one."""
    if _light and "httpx" not in sys.modules:
        return _light_transport(timeout)
    from gcptoken.http.transport import shared_transport

    return shared_transport(timeout)


@functools.lru_cache(maxsize=8)
def _light_transport(timeout: float) -> LightTransport:
    return LightTransport(timeout)


class LightTransport:
    """One connection per request (a one-shot process has nothing to pool)."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._default = timeout

    def send(self, request: HttpRequest) -> HttpResponse:
        where = f"{request.method} {safe_url(request.url)}"
        limit = self._default if request.timeout is None else request.timeout
        if request.deadline is not None:
            limit = min(limit, request.deadline - time.monotonic())
        limit = max(limit, 0.001)
        if request.client_certificate is not None:
            from gcptoken.keys import tpm_tls_child

            if tpm_tls_child.isolates(request.client_certificate):  # as HttpxTransport: see there
                return tpm_tls_child.exchange(request, limit)
        connection = self._connect(request, where, limit)
        started = time.monotonic()
        try:
            parts = urlsplit(request.url)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request(request.method, target, body=request.body, headers=dict(request.headers))
            raw = connection.getresponse()
            declared = raw.getheader("content-length", "")
            if declared.isdigit() and int(declared) > request.max_body:
                raise TransportError(f"{where}: the response is larger than {request.max_body} bytes")
            chunks, size = [], 0
            while chunk := raw.read1(_CHUNK):  # what has arrived: a drip is cut off at the limit
                size += len(chunk)
                if size > request.max_body:
                    raise TransportError(f"{where}: the response is larger than {request.max_body} bytes")
                if time.monotonic() - started > limit:
                    raise TransportError(f"{where}: {timed_out(request.url, limit)}")
                chunks.append(chunk)
            if declared.isdigit() and size != int(declared):  # read1 ends quietly where read() would raise
                raise http.client.IncompleteRead(b"".join(chunks), int(declared) - size)
            headers = {name.lower(): value for name, value in raw.getheaders()}
            return HttpResponse(raw.status, headers, b"".join(chunks))
        except (OSError, http.client.HTTPException) as exc:  # an ssl error too, though it is a ValueError
            raise TransportError(f"{where}: {network_failure(exc, request.url)}") from None
        except (UnicodeEncodeError, ValueError) as exc:
            raise InvalidArgumentError(f"{where}: the request cannot be sent ({type(exc).__name__})") from None
        finally:
            connection.close()

    @staticmethod
    def _connect(request: HttpRequest, where: str, limit: float) -> http.client.HTTPConnection:
        try:
            parts = urlsplit(request.url)
            port = parts.port
        except ValueError:
            raise InvalidArgumentError(f"{where}: not a URL that can be called (InvalidURL)") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgumentError(f"{where}: not a URL that can be called (UnsupportedProtocol)")
        if parts.scheme == "http":
            return http.client.HTTPConnection(parts.hostname, port, timeout=limit)
        import ssl  # only for https: the emulator's loopback answers need none

        from gcptoken.http.tls import client_context, server_context

        if request.client_certificate is not None:
            context = client_context(request.client_certificate)
        else:
            context = server_context() or ssl.create_default_context()
        return http.client.HTTPSConnection(parts.hostname, port, timeout=limit, context=context)
