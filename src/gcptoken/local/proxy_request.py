"""What ``gcptoken proxy`` takes from a client, and what of it goes on to the service.

Only clean HTTP is forwarded, to exactly the configured service under its base path:

- the request target is origin-form (``/path?query``): absolute-form (``http://other/``),
  authority-form (``host:443``), asterisk-form (``*``) and ``@host`` / ``//host`` targets are
  refused, and so are ``CONNECT`` (a reverse proxy does not tunnel) and ``TRACE`` (its echo would
  hand the client the proxy's token; RFC 9110 §9.3.8);
- the path stays under the base path however the service normalises it: dot-segments (also
  percent-encoded, also behind ``;params``, also after a second round of decoding), backslashes,
  control characters, fragments and a leading ``//`` are refused (an encoded ``%2F`` is kept
  unless it forms one of those);
- framing is unambiguous, by the rules every local server's guard applies
  (:func:`gcptoken.servers.framing.body_framing`; RFC 9112 §6.1, §6.3, §11.2), checked here too
  because the proxy must not depend on a guard in front of it: ``Content-Length`` with
  ``Transfer-Encoding``, more than one ``Content-Length``, a transfer coding other than exactly
  ``chunked``, ``Transfer-Encoding`` in HTTP/1.0, and a ``Connection`` header naming
  ``Content-Length``, ``Transfer-Encoding`` or ``Host`` are refused;
- hop-by-hop headers are dropped (RFC 9110 §7.6.1: ``Connection`` and what it names,
  ``Keep-Alive``, ``Proxy-Connection``, ``TE``, ``Trailer``, ``Transfer-Encoding``, ``Upgrade``),
  and so is every header the proxy sets itself (``Host``, ``Content-Length``,
  ``Proxy-Authorization``), so a client can never plant one of them.

Refusals raise :class:`Refused` with a short reason for a 400; nothing is forwarded then.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes

from gcptoken.servers.framing import FramingError, body_framing

__all__ = ["DROPPED", "ClientRequest", "Refused", "client_request", "hop_by_hop_removed", "upstream_target"]

# Never forwarded: hop-by-hop headers, and those the proxy writes itself (the token goes in
# Authorization or Proxy-Authorization; Host and the body's framing are the proxy's own).
DROPPED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"host",
        b"content-length",
    }
)
# Connection options that name no header (the common ones: no second pass over the headers).
_OPTIONS = frozenset({b"close", b"keep-alive", b"upgrade", b""})
# Named in Connection, these are refused by body_framing (never silently removed before it looks).
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"host"})
_REFUSED_METHODS = {
    "CONNECT": "CONNECT is not forwarded (a reverse proxy does not tunnel)",
    "TRACE": "TRACE is not forwarded (its echo would carry the proxy's token)",
    "TRACK": "TRACK is not forwarded (its echo would carry the proxy's token)",
}
# The common path, checked in one step: no dot, percent, backslash, control character or fragment,
# and no // at its start (anything else goes through the full checks).
_PLAIN_PATH = re.compile(rb"/(?:[^/.%#\\\x00-\x1f\x7f][^.%#\\\x00-\x1f\x7f]*)?")
# Backslashes and control characters, raw or decoded: never part of a path the service should see.
_BAD_PATH_BYTES = re.compile(rb"[\x00-\x1f\x7f\\]")
_DOT_SEGMENTS = frozenset({b".", b".."})
_DECODING_ROUNDS = 3


class Refused(Exception):
    """A request that is not forwarded; ``str(exc)`` is the reason (never a header's value)."""


class ClientRequest(NamedTuple):
    """A request fit to forward: its headers less the dropped ones, and how its body is framed."""

    headers: list[tuple[bytes, bytes]]
    length: int | None  # the declared Content-Length; None when chunked or absent
    chunked: bool
    authorization: bool  # the client sent its own Authorization (the token goes beside it)


def client_request(scope: Mapping[str, Any], websocket: bool = False) -> ClientRequest:
    """The forwardable parts of ``scope``'s request, or :class:`Refused`."""
    method = str(scope.get("method", "")).upper()  # a service may fold the case: "trace" is TRACE
    if method in _REFUSED_METHODS:
        raise Refused(_REFUSED_METHODS[method])
    try:  # the same rules as every local server's guard (which may or may not stand in front)
        chunked = body_framing(scope["headers"], scope.get("http_version"), websocket)
    except FramingError as exc:
        raise Refused(str(exc)) from None
    headers: list[tuple[bytes, bytes]] = []
    named: set[bytes] = set()
    length = None
    authorization = False
    for key, value in scope["headers"]:
        name = key.lower()
        if name not in DROPPED:
            headers.append((name, value))
            if name == b"authorization":
                authorization = True
        elif name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.lower() not in _OPTIONS:
            named.update([option.strip().lower() for option in value.split(b",")])
    named -= _OPTIONS
    if named:  # (never a framing header: body_framing refused those)
        headers = [(name, value) for name, value in headers if name not in named]
        authorization = any(name == b"authorization" for name, _ in headers)
    return ClientRequest(headers, None if chunked else length, chunked, authorization)


def hop_by_hop_removed(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (lower-case names) less those a ``Connection`` header names, that header kept
    with its options only (close, keep-alive, upgrade): what a front end that removes hop-by-hop
    headers *first* has left, so that what it then checks and adds is what goes on, and no later
    pass can remove it (framing headers stay: :func:`client_request` refuses naming those)."""
    named: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            named.update(option.strip().lower() for option in value.split(b","))
    named -= _OPTIONS | _FRAMING
    if not named:
        return headers
    kept: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name == b"connection":
            options = [o.strip() for o in value.split(b",") if o.strip().lower() in _OPTIONS | _FRAMING]
            if options:
                kept.append((name, b", ".join(options)))
        elif name not in named:
            kept.append((name, value))
    return kept


def upstream_target(scope: Mapping[str, Any], base_path: bytes) -> bytes:
    """``base_path`` + the request's path and query, or :class:`Refused` for a target that is not
    origin-form or a path that could leave ``base_path`` once the service normalises it."""
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes):  # ASGI makes raw_path optional; uvicorn always sets it
        raw = str(scope["path"]).encode("utf-8")
    query: bytes = scope.get("query_string") or b""
    if _PLAIN_PATH.fullmatch(raw) and b"#" not in query:
        return base_path + raw + b"?" + query if query else base_path + raw
    if raw[:1] != b"/":
        raise Refused("only origin-form request targets (/path?query) are forwarded")
    if b"#" in raw or b"#" in query:
        raise Refused("a fragment in the request target")
    _check_path(raw)
    return base_path + raw + b"?" + query if query else base_path + raw


def _check_path(path: bytes) -> None:
    for _ in range(_DECODING_ROUNDS):
        if path[:2] == b"//":
            raise Refused("a path that starts with //")
        if _BAD_PATH_BYTES.search(path):
            raise Refused("a backslash or control character in the path")
        if b"." in path and any(segment.split(b";", 1)[0] in _DOT_SEGMENTS for segment in path.split(b"/")):
            raise Refused("a dot-segment (. or ..) in the path")
        if b"%" not in path:
            return
        decoded = unquote_to_bytes(path)
        if decoded == path:
            return
        path = decoded
    raise Refused("a path encoded more than twice")
