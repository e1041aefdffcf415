"""What a Google product sends to an HTTP target, before the token: the method, the URL, the headers
it sets, the body bytes and the audience the ID token is minted for; and the checks every product
shares (the target URL, the user's own headers, a body only with a method that carries one)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gcptoken import checks
from gcptoken.errors import InvalidArgumentError
from gcptoken.loopback import is_loopback_host

__all__ = ["OutgoingRequest", "checked_method", "checked_target", "header", "header_value", "merged", "user_headers"]

# RFC 9110's token characters: what a header name may hold.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
_METHODS = ("POST", "GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS")  # every product's HttpMethod enum
# The headers Google computes or owns (the products' references, e.g. Cloud Tasks' HttpRequest.headers:
# https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks#HttpRequest).
_COMPUTED = ("host", "content-length", "authorization")
_GOOGLE_PREFIXES = ("x-google-", "x-appengine-")


@dataclass(frozen=True)
class OutgoingRequest:
    """One request as ``product`` would send it; ``headers`` never holds the Authorization header
    (the token is added when it is sent, and never kept here)."""

    product: str  # the CLI's and the emulator's name: tasks, scheduler, eventarc, workflows
    method: str
    url: str
    audience: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def checked_target(url: str, *, allow_remote: bool = False) -> str:
    """An http(s) URL on this machine (loopback), unless ``allow_remote``: the request carries a
    token and headers that look like Google's, meant for the user's own service under test."""
    url = checks.http_url(url, "the target URL", user_info=False)
    host = urlsplit(url).hostname or ""
    if not allow_remote and not is_loopback_host(host):
        raise InvalidArgumentError(
            f"the target {host[:100]!r} is not this machine: send reaches loopback addresses only "
            "(127.0.0.1, ::1, localhost); --allow-remote (allow_remote=True) sends elsewhere"
        )
    return url


def checked_method(method: str | None, default: str, label: str, *, body: bytes, body_rule: bool = True) -> str:
    """The HTTP method, one of the products' HttpMethod values. With ``body_rule``, a body only
    with POST, PUT or PATCH (Cloud Tasks and Cloud Scheduler refuse a task or job that has one with
    another method: their HttpRequest / HttpTarget ``body``)."""
    chosen = (method or default).upper()
    if chosen not in _METHODS:
        raise InvalidArgumentError(f"{label} sends {', '.join(_METHODS)}, not {chosen[:20]!r}")
    if body_rule and body and chosen not in ("POST", "PUT", "PATCH"):
        raise InvalidArgumentError(f"{label} sends a body only with POST, PUT or PATCH, not {chosen}")
    return chosen


def user_headers(
    headers: Mapping[str, str] | None, label: str, owned: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The headers the user set on the task, job or step, checked. Those Google computes or owns
    (Host, Content-Length, Authorization, X-Google-*, X-AppEngine-*) and the product's own
    (``owned``: a lowercase name, or a prefix ending in ``*``, to what to use instead) are refused,
    never silently replaced: the user's value would not arrive."""
    checked: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise InvalidArgumentError(f"a header name must be an ASCII token, not {str(name)[:60]!r}")
        header_value(value, f"the header {name}")
        lower = name.lower()
        if lower in _COMPUTED or lower.startswith(_GOOGLE_PREFIXES):
            raise InvalidArgumentError(f"the header {name}: {label} sets it itself")
        instead = next((why for key, why in (owned or {}).items() if _owns(key, lower)), None)
        if instead is not None:
            raise InvalidArgumentError(f"the header {name}: {label} sets it itself; {instead}")
        checked[name] = value
    return checked


def _owns(key: str, lower: str) -> bool:
    return lower.startswith(key[:-1]) if key.endswith("*") else lower == key


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of ``name`` in ``headers``, whatever its case."""
    return next((value for key, value in headers.items() if key.lower() == name.lower()), None)


def header_value(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.isascii() or not value.isprintable():
        raise InvalidArgumentError(f"{what}: the value must be printable ASCII")
    return value


def merged(user: Mapping[str, str], google: Mapping[str, str]) -> dict[str, str]:
    """The user's headers with the product's own on top: a product's header replaces the user's of
    the same name in any case (as Cloud Tasks replaces X-CloudTasks-* a request brought along)."""
    kept: dict[str, tuple[str, str]] = {}
    for name, value in [*user.items(), *google.items()]:
        kept[name.lower()] = (name, value)
    return dict(kept.values())
