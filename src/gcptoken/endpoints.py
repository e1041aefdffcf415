"""Google's URLs, and how ``GCPTOKEN_EMULATOR_HOST`` sends them to a local emulator.

The environment is read when a URL is resolved, never at import.
"""

from __future__ import annotations

import functools
import os

__all__ = [
    "CLOUD_PLATFORM_SCOPE",
    "EMULATED_UNIVERSE",
    "EMULATOR_HOST_ENV",
    "EMULATOR_MTLS_HOST_ENV",
    "GOOGLE_HOSTS",
    "GOOGLE_ISSUERS",
    "OAUTH2_CERTS_V1",
    "OAUTH2_CERTS_V3",
    "TOKENINFO",
    "TOKEN_AUDIENCES",
    "TOKEN_URI",
    "checked_host",
    "emulator_host",
    "resolve",
    "safe_url",
]

EMULATOR_HOST_ENV = "GCPTOKEN_EMULATOR_HOST"
EMULATOR_MTLS_HOST_ENV = "GCPTOKEN_EMULATOR_MTLS_HOST"

TOKEN_URI = "https://oauth2.googleapis.com/token"
# The audiences Google's token endpoint accepts in a jwt-bearer assertion.
TOKEN_AUDIENCES = (TOKEN_URI, "https://www.googleapis.com/oauth2/v4/token")
OAUTH2_CERTS_V1 = "https://www.googleapis.com/oauth2/v1/certs"
OAUTH2_CERTS_V3 = "https://www.googleapis.com/oauth2/v3/certs"
TOKENINFO = "https://oauth2.googleapis.com/tokeninfo"
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"

# Every host whose endpoints the emulator serves on its single port.
GOOGLE_HOSTS = frozenset(
    {
        "oauth2.googleapis.com",
        "www.googleapis.com",
        "accounts.google.com",
        "iamcredentials.googleapis.com",
        "iam.googleapis.com",  # the IAM admin API: service-account keys (gcptoken key upload)
        "sts.googleapis.com",
        "cloudresourcemanager.googleapis.com",
        "www.gstatic.com",
    }
)


# A second universe the emulator serves, so universe domains are tested: ``.test`` is reserved,
# no real host can have it.
EMULATED_UNIVERSE = "universe.gcptoken.test"
_SERVICES = frozenset(host.split(".", 1)[0] for host in GOOGLE_HOSTS if host.endswith(".googleapis.com"))


def _emulated(hostname: str) -> bool:
    """A host the emulator stands in for: Google's own, or a Google API in the emulated universe."""
    if hostname in GOOGLE_HOSTS:
        return True
    service, _, universe = hostname.partition(".")
    return universe == EMULATED_UNIVERSE and service in _SERVICES


def emulator_host() -> str | None:
    """``host:port`` of the emulator when GCPTOKEN_EMULATOR_HOST is set, else None; a value that
    is not host[:port] is an InvalidArgumentError naming the variable."""
    value = os.environ.get(EMULATOR_HOST_ENV, "").strip()
    if not value:
        return None
    return checked_host(value, EMULATOR_HOST_ENV)


_HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
_URL_CHARACTERS = _HOST_CHARACTERS | frozenset("/:_~")


def _simple_host_port(value: str) -> str | None:
    """The common ``name:port`` / ``1.2.3.4:port`` forms (ASCII letters, digits, dots, hyphens; a
    port of 1-65535), as checks.host_port would return them; None for anything else (host_port
    decides, and says what is wrong)."""
    value = value.strip().removeprefix("http://").rstrip("/")
    host, colon, port = value.partition(":")
    if not host or not _HOST_CHARACTERS.issuperset(host):
        return None
    if colon and not (port.isascii() and port.isdigit() and 0 < int(port) <= 65535):
        return None
    return value


@functools.lru_cache(maxsize=32)
def checked_host(value: str, variable: str) -> str:
    """``value`` as host[:port], checked once per distinct value (cache hits read it every call)."""
    simple = _simple_host_port(value)
    if simple is not None:
        return simple  # what host_port returns for it, without importing urllib.parse and ipaddress
    from gcptoken.checks import host_port

    return host_port(value, variable)


def _simple_url(url: str) -> tuple[str, str] | None:
    """(hostname, path) of a plain ``https://host[:port]/path`` (no query, user or escapes), as
    urlsplit gives them; None for anything else. The CLI's cached path resolves token URLs with
    an emulator configured, and need not import urllib.parse for these."""
    scheme, separator, rest = url.partition("://")
    if scheme not in ("https", "http") or not separator or not _URL_CHARACTERS.issuperset(rest):
        return None
    netloc, slash, path = rest.partition("/")
    hostname, colon, port = netloc.partition(":")
    if not hostname or (colon and not port.isdigit()):
        return None
    return hostname.lower(), slash + path


def resolve(url: str) -> str:
    """The URL to actually call: a Google endpoint goes to the emulator when one is configured
    (an mTLS endpoint, ``*.mtls.googleapis.com``, to its TLS port when GCPTOKEN_EMULATOR_MTLS_HOST
    names it, else to the plain port, which refuses certificate-bound exchanges)."""
    host = emulator_host()
    if host is None:
        return url
    simple = _simple_url(url)
    if simple is not None and ".mtls." not in simple[0]:
        return f"http://{host}{simple[1]}" if _emulated(simple[0]) else url
    from urllib.parse import urlsplit, urlunsplit  # only with an emulator: the cached CLI path skips it

    parts = urlsplit(url)
    hostname = parts.hostname or ""
    if ".mtls." in hostname and _emulated(hostname.replace(".mtls.", ".", 1)):
        mtls = os.environ.get(EMULATOR_MTLS_HOST_ENV, "").strip()
        if mtls:
            return urlunsplit(("https", checked_host(mtls, EMULATOR_MTLS_HOST_ENV), parts.path, parts.query, ""))
        return urlunsplit(("http", host, parts.path, parts.query, ""))
    if not _emulated(hostname):
        return url
    return urlunsplit(("http", host, parts.path, parts.query, ""))


def safe_url(url: str) -> str:
    """The URL without its query: queries can carry tokens, messages and logs must not."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:  # a broken IPv6 host, say: show no more than the start
        return url.split("?", 1)[0][:80]
    netloc = parts.netloc.rsplit("@", 1)[-1]  # never user:password@
    return f"{parts.scheme}://{netloc}{parts.path}"
