"""Where the sign-in pages may send a browser: a desktop client's loopback ``redirect_uri``, judged
as a browser reads it, not as Python's ``urlsplit`` does.

A browser parses URLs with the WHATWG URL parser, which differs from RFC 3986 parsers where it
matters here: for http(s) a backslash is a slash (``http://evil.example\\@127.0.0.1/`` goes to
``evil.example``, which ``urlsplit`` calls ``127.0.0.1``), any number of slashes may follow the
scheme (``http:///evil.example``), tabs and newlines anywhere are dropped, leading and trailing
controls and spaces are trimmed, hosts are percent-decoded, lower-cased and mapped through IDNA
(``127%2E0.0.1``, full-width dots), and numbers in several bases are IPv4 addresses (``0x7f.1``).

Google lets a desktop client redirect to loopback on any port, and to nothing else. So a
``redirect_uri`` is accepted only in the form where every parser agrees: printable ASCII without
spaces, no backslash, ``http://`` (any case) then a host that is exactly ``127.0.0.1``,
``localhost`` or ``[::1]`` (any case), an optional decimal port, no user info and no fragment.
Everything a browser would rewrite is refused rather than rewritten: such a URI is an attack or a
mistake, and the answer carries a code.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["LOOPBACK_HOSTS", "MAX_LENGTH", "loopback_redirect", "with_answer"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
MAX_LENGTH = 2048
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_PORT = re.compile(r"[0-9]{1,5}")


def _visible_ascii(text: str) -> bool:
    """No controls (tab, CR, LF included), no space, no DEL, nothing beyond ASCII."""
    return all("!" <= c <= "~" for c in text)


def loopback_redirect(uri: str) -> bool:
    """Whether a browser sent to ``uri`` reaches this machine's loopback over plain http, and
    every URL parser reads ``uri`` the same way."""
    if not uri or len(uri) > MAX_LENGTH or not _visible_ascii(uri) or "\\" in uri or "#" in uri:
        return False
    scheme = _SCHEME.match(uri)
    if scheme is None or scheme.group(1).lower() != "http":
        return False
    rest = uri[scheme.end() :]
    if not rest.startswith("//") or rest.startswith("///"):
        return False  # http:host, http:/host, http:///host: a browser still finds a host there
    authority = re.split(r"[/?]", rest[2:], maxsplit=1)[0]
    if "@" in authority:
        return False  # user info: who is the host, the part before or after the @?
    if authority.startswith("["):
        end = authority.find("]")
        host, port = (authority, "") if end < 0 else (authority[: end + 1], authority[end + 1 :])
        if port and not port.startswith(":"):
            return False
        port = port[1:] if port else None
    else:
        host, colon, port_text = authority.partition(":")
        port = port_text if colon else None
    if host.lower() not in LOOPBACK_HOSTS:
        return False
    if port is not None and not (_PORT.fullmatch(port) and int(port) <= 65535):
        return False
    # And Python's parser, which the token endpoint's callers use, must agree.
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return parts.scheme == "http" and parts.username is None and parts.hostname == host.lower().strip("[]")


def with_answer(uri: str, query: str) -> str:
    """``uri`` with ``query`` (already encoded) appended to whatever query it has."""
    if "?" not in uri:
        return f"{uri}?{query}"
    return f"{uri}{'' if uri.endswith(('?', '&')) else '&'}{query}"
