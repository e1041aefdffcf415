"""Values from flags, environment variables and files, checked before anything is sent: each bad
value is an InvalidArgumentError whose one line names where it came from, never a raw
``ValueError`` or ``httpx.InvalidURL`` from deep inside, and never the value of a secret."""

from __future__ import annotations

import math
from urllib.parse import SplitResult, urlsplit

from gcptoken.errors import InvalidArgumentError

__all__ = ["audience", "finite_number", "host_port", "http_url", "positive_seconds", "printable"]

_MAX_URL = 8192


def printable(value: str) -> bool:
    """No whitespace, no control characters: a value that travels in a URL or a header."""
    return value.isprintable() and not any(ch.isspace() for ch in value)


def _shown(value: str) -> str:
    """A value as an error message may show it: short, without its query (which can hold tokens)."""
    visible = value.split("?", 1)[0].split("#", 1)[0]
    visible = visible if visible.isprintable() else visible.encode("unicode_escape").decode("ascii")
    return visible[:120] + ("…" if len(visible) > 120 else "")


def _split(value: str, what: str) -> SplitResult:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise InvalidArgumentError(f"{what} {_shown(value)!r} is not a valid URL ({exc})") from None
    return parts


def http_url(value: str, what: str = "the URL", *, allow_http: bool = True) -> str:
    """An absolute http(s) URL with a host."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{what} is empty")
    value = value.strip()
    if len(value) > _MAX_URL or not printable(value):
        raise InvalidArgumentError(f"{what} {_shown(value)!r} has spaces or control characters, or is too long")
    parts = _split(value, what)
    schemes = ("http", "https") if allow_http else ("https",)
    if parts.scheme.lower() not in schemes:
        wanted = " or ".join(f"{s}://" for s in schemes)
        raise InvalidArgumentError(f"{what} {_shown(value)!r} must start with {wanted}")
    if not parts.hostname:
        raise InvalidArgumentError(f"{what} {_shown(value)!r} has no host")
    return value


def audience(value: str, what: str = "the audience") -> str:
    """Any non-empty string (Cloud Run custom audiences, OAuth client ids), but one that looks like
    a URL must be a valid http(s) URL, and one starting with ``-`` is a misplaced option."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{what} is empty")
    value = value.strip()
    if value.startswith("-"):
        raise InvalidArgumentError(f"{what} {_shown(value)!r} looks like an option; put options before or after it")
    if not printable(value) or len(value) > _MAX_URL:
        raise InvalidArgumentError(f"{what} has spaces or control characters, or is too long")
    if "://" in value:
        http_url(value, what)
    return value


def host_port(value: str, what: str) -> str:
    """``host`` or ``host:port`` (IPv6 in brackets), as GCE_METADATA_HOST and friends take."""
    value = value.strip().removeprefix("http://").rstrip("/")
    if not value or not printable(value) or "/" in value or "@" in value or "?" in value or "#" in value:
        raise InvalidArgumentError(f"{what}={_shown(value)!r} must be host or host:port")
    try:
        parts = urlsplit(f"http://{value}")
        port = parts.port
    except ValueError as exc:
        raise InvalidArgumentError(f"{what}={_shown(value)!r} must be host or host:port ({exc})") from None
    if not parts.hostname or port == 0:
        raise InvalidArgumentError(f"{what}={_shown(value)!r} must be host or host:port with a port of 1-65535")
    return value


def positive_seconds(text: str) -> float:
    """A finite number of seconds above 0 (argparse ``type=``: a timeout, an age)."""
    return _number(text, above_zero=True)


def finite_number(text: str) -> float:
    """A finite number, not negative (argparse ``type=``: a moment, a clock skew)."""
    return _number(text, above_zero=False)


def _number(text: str, *, above_zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgumentError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (above_zero and value == 0):
        bound = "above 0" if above_zero else "not negative"
        raise InvalidArgumentError(f"{text!r} must be a finite number of seconds, {bound}")
    return value
