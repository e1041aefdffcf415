"""Values from flags, environment variables and files, checked before anything is sent: each bad
value is an InvalidArgumentError whose one line names where it came from, never a raw
``ValueError`` or ``httpx.InvalidURL`` from deep inside, and never the value of a secret."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import SplitResult, urlsplit

from gcptoken.errors import InvalidArgumentError

__all__ = [
    "CUSTOM_AUDIENCES_DOC",
    "audience",
    "audience_note",
    "finite_number",
    "host_port",
    "http_url",
    "note_audience_once",
    "positive_seconds",
    "printable",
    "scope_list",
    "unknown_scopes",
]

_MAX_URL = 8192


def printable(value: str) -> bool:
    """No whitespace, no control characters: a value that travels in a URL or a header."""
    return value.isprintable() and not any(ch.isspace() for ch in value)


def _shown(value: str) -> str:
    """A value as an error message may show it: short, without its query (which can hold tokens)
    and without the user info of a URL (``user:password@``: ``…@``)."""
    visible = value.split("?", 1)[0].split("#", 1)[0]
    scheme, slashes, rest = visible.partition("://")
    authority, slash, path = rest.partition("/")
    if slashes and "@" in authority:
        visible = f"{scheme}://…@{authority.rpartition('@')[2]}{slash}{path}"
    visible = visible if visible.isprintable() else visible.encode("unicode_escape").decode("ascii")
    return visible[:120] + ("…" if len(visible) > 120 else "")


def _split(value: str, what: str) -> SplitResult:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise InvalidArgumentError(f"{what} {_shown(value)!r} is not a valid URL ({exc})") from None
    return parts


def http_url(value: str, what: str = "the URL", *, allow_http: bool = True, user_info: bool = True) -> str:
    """An absolute http(s) URL with a host; without ``user_info``, none (``user:password@``): a URL
    that gcptoken calls with a token (httpx would send the URL's credentials as Basic auth instead
    of the token, and print them with the URL)."""
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
    if not user_info and "@" in parts.netloc:
        raise InvalidArgumentError(
            f"{what} {_shown(value)!r} has user info (NAME:PASSWORD@), which gcptoken never sends: "
            "the request carries an ID token; remove it"
        )
    return value


def audience(value: str, what: str = "the audience") -> str:
    """The one audience rule of the library, ``id``, ``jwt``, ``call``, ``proxy`` and the
    integrations: any non-empty string (an IAP OAuth client id ``N-x.apps.googleusercontent.com``,
    a workload identity provider ``//iam.googleapis.com/…``, a Cloud Run custom audience), but one
    that looks like a URL (``scheme://…``, or ``http:``/``https:`` without ``//``) must be a valid
    http(s) URL with a host, and one starting with ``-`` is a misplaced option. A URL with a path,
    query, fragment or user info is allowed (see audience_note), but not a password."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{what} is empty")
    value = value.strip()
    if value.startswith("-"):
        raise InvalidArgumentError(f"{what} {_shown(value)!r} looks like an option; put options before or after it")
    if not printable(value) or len(value) > _MAX_URL:
        raise InvalidArgumentError(f"{what} has spaces or control characters, or is too long")
    scheme, colon, rest = value.partition(":")
    if colon and scheme.lower() in ("http", "https") and not rest.startswith("//"):
        # https:/x, http:host: a URL mistyped, never a custom audience; refused as ftp://x is
        raise InvalidArgumentError(f"{what} {_shown(value)!r} is a malformed URL: write {scheme}://HOST")
    if "://" in value:
        http_url(value, what)
        if _split(value, what).password is not None:  # a token's aud is no secret: it is in every copy of the token
            raise InvalidArgumentError(f"{what} {_shown(value)!r} has a password in its user info; remove it")
    return value


# Cloud Run accepts an ID token whose aud is the service's URL (scheme://host) or one of the custom
# audiences configured on the service: https://cloud.google.com/run/docs/configuring/custom-audiences
CUSTOM_AUDIENCES_DOC = "https://cloud.google.com/run/docs/configuring/custom-audiences"


def audience_note(value: str) -> str | None:
    """A one-line note for an http(s) audience carrying more than ``scheme://host[:port]`` (a
    path, query, fragment or user info): a URL copied whole, which Cloud Run refuses unless it is
    one of the service's custom audiences. None for anything else, and for a 1st gen Cloud
    Function's URL (``https://REGION-PROJECT.cloudfunctions.net/FUNCTION``: its audience)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    path = parts.path.rstrip("/")
    function = (parts.hostname or "").endswith(".cloudfunctions.net") and path.count("/") <= 1
    extra = [
        name
        for name, present in (
            ("a path", bool(path) and not function),
            ("a query", bool(parts.query) or value.rstrip("#").endswith("?")),
            ("a fragment", "#" in value),
            ("user info", "@" in parts.netloc),
        )
        if present
    ]
    if not extra:
        return None
    origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    return (
        f"the audience has {' and '.join(extra)}: Cloud Run checks only {origin} unless this audience is "
        f"one of the service's custom audiences ({CUSTOM_AUDIENCES_DOC})"
    )


_NOTED: set[str] = set()


def note_audience_once(value: str, say: Callable[[str], None] | None = None) -> None:
    """Says ``audience_note(value)`` once per audience per process: through ``say`` (the command
    line's stderr line) or, by default, as a warning on the ``gcptoken`` logger (a library does not
    print; an application sees it as it sees its other warnings, and silences it by level)."""
    if value in _NOTED:
        return
    note = audience_note(value)
    if note is None:
        return
    _NOTED.add(value)
    if say is None:
        import logging  # only when there is something to say

        logging.getLogger("gcptoken").warning("%s", note)
    else:
        say(note)


def scope_list(value: str | Sequence[str], what: str = "scopes") -> tuple[str, ...]:
    """OAuth scopes from ``"a,b"``, ``"a b"`` or ``["a", "b"]``: at least one, each printable. An
    empty value (``""``, ``" , "``, ``[]``) is an error, never the default scope in disguise."""
    items = [value] if isinstance(value, str) else value
    if isinstance(items, (bytes, bytearray)) or not all(isinstance(item, str) for item in items):
        raise InvalidArgumentError(f"{what} must be strings")
    scopes = tuple(scope for item in items for scope in item.replace(",", " ").split())
    if not scopes:
        raise InvalidArgumentError(
            f"{what} names no scope; give at least one (e.g. https://www.googleapis.com/auth/cloud-platform)"
        )
    for scope in scopes:
        if not scope.isprintable() or len(scope) > _MAX_URL:
            raise InvalidArgumentError(f"{what}: {_shown(scope)!r} has control characters or is too long")
    return scopes


# Google accepts only scopes it defines: the OpenID Connect names and URLs it hosts
# (https://www.googleapis.com/auth/…, a few older https://*.google.com/… ones); a word (``not``) or a
# URL elsewhere (``https://svc.a.run.app``) is no scope. Nobody outside Google can list every scope
# it defines, so any https URL on a Google host passes. The one rule for the emulator's token
# services and sign-in pages, and for ``gcptoken login`` before anyone is asked to sign in.
_OIDC_SCOPES = frozenset({"openid", "email", "profile"})
_GOOGLE_HOSTS = ("googleapis.com", "google.com")


def _google_scope(scope: str) -> bool:
    if scope in _OIDC_SCOPES:
        return True
    try:
        parts = urlsplit(scope)
    except ValueError:
        return False
    host = parts.hostname or ""
    return (
        parts.scheme == "https"
        and scope.isprintable()
        and any(host == name or host.endswith(f".{name}") for name in _GOOGLE_HOSTS)
    )


def unknown_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes Google would not know, each once, in the order asked."""
    return list(dict.fromkeys(scope for scope in scopes if not _google_scope(scope)))


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
