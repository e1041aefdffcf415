"""Requests every local server refuses for their form alone, before any other check: framing two
HTTP parsers could read apart (RFC 9112 §6.1, §6.3, §11.2 — request smuggling) and request targets
that are not origin-form (``http://other/``, ``host:443``, ``*``). h11, beneath uvicorn, accepts
``Content-Length`` beside ``Transfer-Encoding`` and absolute-form targets, so this is checked here."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["FramingError", "body_framing", "origin_form"]

# A Connection header may not name these: a hop that obeys it would strip the message's framing.
_FRAMING_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"host"})


class FramingError(ValueError):
    """``str(exc)`` is the reason for a 400 (never a header's value)."""


def body_framing(headers: Iterable[tuple[bytes, bytes]], http_version: object, websocket: bool = False) -> bool:
    """Whether the body is chunked; :class:`FramingError` for anything ambiguous."""
    lengths: list[bytes] = []
    codings: list[bytes] = []
    named: set[bytes] = set()
    for key, value in headers:
        name = key.lower()
        if name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            codings.append(value)
        elif name == b"connection":
            named.update(option.strip().lower() for option in value.split(b","))
    if named & _FRAMING_HEADERS:
        raise FramingError("a Connection header may not name Content-Length, Transfer-Encoding or Host")
    if lengths and codings:
        raise FramingError("Content-Length and Transfer-Encoding together")
    if len(lengths) > 1:
        raise FramingError("more than one Content-Length")
    if lengths and not (lengths[0].isdigit() and len(lengths[0]) <= 18):
        raise FramingError("a Content-Length that is not a number")
    if not codings:
        if websocket and lengths and lengths[0].strip(b"0"):
            raise FramingError("a WebSocket handshake with a body")
        return False
    if len(codings) > 1 or codings[0].strip().lower() != b"chunked":
        raise FramingError("a Transfer-Encoding other than chunked")
    if http_version == "1.0":
        raise FramingError("Transfer-Encoding in an HTTP/1.0 request")
    if websocket:
        raise FramingError("a WebSocket handshake with a body")
    return True


def origin_form(raw_path: object) -> None:
    """:class:`FramingError` unless the target is ``/path[?query]``."""
    if not isinstance(raw_path, bytes) or raw_path[:1] != b"/":
        raise FramingError("only origin-form request targets (/path?query) are answered")
