"""What of the service's answer ``gcptoken proxy`` passes back to its client.

Hop-by-hop headers are dropped (RFC 9110 §7.6.1), and so is a ``Content-Length`` sent beside
``Transfer-Encoding`` (RFC 9112 §6.3: the body was read as chunked, so that length is a lie the
client must not frame by). A redirect to the service's own origin under its path comes back to
the address the proxy answers on: the socket's own (``scope["server"]``), never the request's
``Host``, which the client chose.
"""

from __future__ import annotations

import httpx

__all__ = ["RESPONSE_DROPPED", "content_length", "local_location", "response_headers"]

RESPONSE_DROPPED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Connection options that name no header of their own to drop.
_NO_HEADER = frozenset({b"close", b"keep-alive", b"upgrade", b""})

# Where the proxy answers: ASGI's scope["server"], (host, port), or None when unknown.
Server = tuple[str, int | None] | None


def content_length(text: bytes) -> int | None:
    """A Content-Length's value; None for anything else (a 5,000-digit one included)."""
    return int(text) if text.isdigit() and len(text) <= 18 else None


def response_headers(
    raw: list[tuple[bytes, bytes]], origin: tuple[str, bytes], base_path: bytes, server: Server
) -> tuple[list[tuple[bytes, bytes]], int | None]:
    """The headers to pass back, and the body's length when the service framed it by one."""
    headers: list[tuple[bytes, bytes]] = []
    named: set[bytes] = set()
    chunked, length = False, None
    for key, value in raw:
        name = key.lower()
        if name in RESPONSE_DROPPED:
            if name == b"connection":
                named.update([option.strip().lower() for option in value.split(b",")])
            chunked = chunked or name == b"transfer-encoding"
            continue
        if name == b"content-length":
            length = content_length(value)
        elif name == b"location":
            value = local_location(value, origin, base_path, server)
        headers.append((key, value))
    named -= _NO_HEADER
    if chunked:  # a Content-Length beside it is a lie (RFC 9112 §6.3): never passed on
        named.add(b"content-length")
    if named:
        headers = [(key, value) for key, value in headers if key.lower() not in named]
        length = None if b"content-length" in named else length
    return headers, length


def local_location(location: bytes, origin: tuple[str, bytes], base_path: bytes, server: Server) -> bytes:
    """A redirect to ``origin`` under ``base_path`` (or a path-only one under it), rewritten to
    ``server``'s address and the path below ``base_path``; any other left as it is."""
    if location[:1] == b"/" and location[:2] != b"//":  # a path on the service's own origin
        return _below(location, base_path) or location
    try:
        target = httpx.URL(location.decode("latin-1"))
    except httpx.InvalidURL:
        return location
    if not target.is_absolute_url or (target.scheme, target.netloc) != origin:
        return location
    path = _below(target.raw_path, base_path)
    if path is None or server is None or server[1] is None:
        return location  # outside URL's path (not reachable through the proxy), or no address
    host = f"[{server[0]}]" if ":" in server[0] else server[0]
    fragment = f"#{target.fragment}" if target.fragment else ""
    return f"http://{host}:{server[1]}".encode("ascii") + path + fragment.encode("latin-1")


def _below(path: bytes, base_path: bytes) -> bytes | None:
    """``path`` (with its query) relative to ``base_path``, or None when it is not under it."""
    if not base_path:
        return path
    if not path.startswith(base_path) or path[len(base_path) : len(base_path) + 1] not in (b"", b"/", b"?", b"#"):
        return None
    rest = path[len(base_path) :]
    return rest if rest.startswith(b"/") else b"/" + rest
