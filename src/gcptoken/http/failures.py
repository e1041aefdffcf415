"""One wording for a failure on the network, from its cause, whichever transport met it (the
standard library's ``http.client`` or httpx) and whichever command: "cannot reach HOST:PORT:
connection refused", "… name not resolved", "… TLS certificate not trusted (certificate verify
failed: self-signed certificate)", "HOST:PORT timed out (no answer in time)".

Each transport wraps the cause its own way (httpx in ConnectError with the socket's error as
``__cause__``, urllib in URLError's ``reason``); the words come from the cause, so a class name
is never all a user reads.
"""

from __future__ import annotations

import http.client
import os
import socket
import sys
from urllib.parse import urlsplit

__all__ = ["endpoint", "network_failure", "timed_out"]

_BROKE_OFF = "the server broke off the HTTP exchange (closed early or sent malformed HTTP)"


def endpoint(url: str) -> str:
    """``HOST:PORT`` the request went to (the scheme's port when the URL names none)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 0
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def network_failure(exc: BaseException, url: str) -> str:
    """What went wrong reaching ``url``, in the words every command uses."""
    where = endpoint(url)
    for cause in reversed(_chain(exc)):  # the innermost cause says the most
        if _timed_out(cause):
            return timed_out(url)
        if _broke_off(cause):
            return f"{where}: {_BROKE_OFF} ({type(cause).__name__})"
        reason = _connect_reason(cause)
        if reason:
            return f"cannot reach {where}: {reason}"
    return f"cannot reach {where}: connection failed ({type(exc).__name__})"


def timed_out(url: str, limit: float | None = None) -> str:
    """The words for no (full) answer in time: the socket's timeout, or the exchange's limit."""
    detail = "no answer in time" if limit is None else f"no full answer in {limit:.1f} s"
    return f"{endpoint(url)} timed out ({detail})"


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (bounded: a chain may loop)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10 and current not in chain:
        chain.append(current)
        reason = getattr(current, "reason", None)  # urllib's URLError keeps its cause there
        wrapped = reason if isinstance(reason, BaseException) else None
        current = wrapped or current.__cause__ or current.__context__
    return chain


def _timed_out(exc: BaseException) -> bool:
    httpx = sys.modules.get("httpx")  # never imported for this: the light transport has no httpx
    return isinstance(exc, TimeoutError) or (httpx is not None and isinstance(exc, httpx.TimeoutException))


def _broke_off(exc: BaseException) -> bool:
    httpx = sys.modules.get("httpx")
    return isinstance(exc, http.client.HTTPException) or (
        httpx is not None and isinstance(exc, httpx.RemoteProtocolError)
    )


def _connect_reason(exc: BaseException) -> str | None:
    ssl = sys.modules.get("ssl")  # loaded by whoever spoke TLS; none spoken, none to look for
    if ssl is not None and isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted (certificate verify failed: {exc.verify_message})"
    if ssl is not None and isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or type(exc).__name__})"
    if isinstance(exc, socket.gaierror):
        return "name not resolved"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()  # "network is unreachable", "no route to host"
    return None
