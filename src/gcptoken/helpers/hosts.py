"""Which hosts a helper answers for: Google's registries (Artifact Registry's ``*.pkg.dev``,
Container Registry's ``gcr.io`` and ``*.gcr.io``) and the hosts the user names in
``$GCPTOKEN_HELPER_HOSTS``. Any other host gets "not mine", so a helper configured for every
registry (docker's ``credsStore``, a keyring consulted for every index) never hands a Google
token to someone else's server.

A server named with a scheme is answered for ``https`` only: a token sent over plain HTTP is
readable on the way (and an ``http://`` index is not Artifact Registry, which is HTTPS-only). A
user's entry the rules cannot read (``http://h``, ``h:port/x``, ``user@h``) is ignored with one
``gcptoken:`` line on stderr naming it, once per process, rather than silently never matching."""

from __future__ import annotations

import os
import re
import sys

__all__ = ["GOOGLE_HOSTS", "HOSTS_ENV", "answers_for", "host_of"]

HOSTS_ENV = "GCPTOKEN_HELPER_HOSTS"
# Artifact Registry: REGION-docker.pkg.dev, REGION-python.pkg.dev, …; Container Registry: gcr.io,
# us.gcr.io, eu.gcr.io, asia.gcr.io (https://cloud.google.com/artifact-registry/docs/docker/authentication).
GOOGLE_HOSTS = ("*.pkg.dev", "gcr.io", "*.gcr.io")


def host_of(server: str) -> str:
    """``host`` or ``host:port`` (``[v6]:port``), lower-cased, from a registry name or URL
    (``https://h:1/v2/x``, ``h/path``, ``user:pw@h``); an empty string for nothing usable."""
    text = server.strip()
    scheme, found, rest = text.partition("://")
    if not found:
        rest = scheme
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    authority = authority.rpartition("@")[2].lower()
    if not authority or not authority.isascii() or not authority.isprintable() or " " in authority:
        return ""
    return authority


def _split(authority: str) -> tuple[str, str]:
    """(host, port) of ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; the host without a
    trailing dot (``gcr.io.`` is ``gcr.io``)."""
    if authority.startswith("["):
        host, closed, after = authority.partition("]")
        if not closed or (after and not after.startswith(":")) or "[" in host[1:]:
            return "", ""  # "[::1", "[::1]x": no host, so nothing matches it
        return host + "]", after.removeprefix(":")
    host, _, port = authority.partition(":")
    if "[" in host or "]" in host:
        return "", ""
    return host.rstrip("."), port


# Entries already warned about in this process: one line each, however often a helper asks.
_warned: set[str] = set()


def _entry_pattern(entry: str) -> str | None:
    """The ``host``, ``host:port`` or ``*.suffix`` an entry names: ``https://`` and a trailing
    path are dropped (``https://h:8443/`` is ``h:8443``); None, with a warning, for what no
    server could match or what would match far too much (another scheme, a user part, a port
    that is not 1-65535, a name with characters no host has, ``*``, ``*.com``)."""
    text = entry.strip().lower()
    scheme, found, rest = text.partition("://")
    if found and scheme != "https":
        _warn(entry, "a helper answers for https only")
        return None
    authority = (rest if found else text).split("/", 1)[0]
    host, port = _split(authority)
    if "@" in authority or not host or host_of(authority) != authority or not _valid_port(port):
        _warn(entry, "not a host, host:port or *.suffix")
        return None
    name = host.removeprefix("*.")
    if not (host.startswith("[") or _HOST_NAME.fullmatch(name)):
        _warn(entry, "not a host, host:port or *.suffix")
        return None
    if host.startswith("*.") and name.count(".") < 1:
        _warn(entry, "a wildcard needs a domain of two labels or more (*.example.com, not *.com)")
        return None
    return authority


# Letters, digits, hyphens and dots (IDNA names in their xn-- form); an IPv4 address matches too.
_HOST_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")


def _valid_port(port: str) -> bool:
    return not port or (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535)


def _warn(entry: str, reason: str) -> None:
    if entry not in _warned:
        _warned.add(entry)
        shown = entry.encode("unicode_escape").decode("ascii")[:100]  # control and non-ASCII escaped, once
        print(f"gcptoken: ignoring {HOSTS_ENV} entry '{shown}': {reason}", file=sys.stderr)


def _patterns() -> list[str]:
    entries = [entry for entry in os.environ.get(HOSTS_ENV, "").split(",") if entry.strip()]
    extra = [_entry_pattern(entry) for entry in entries]
    return [*GOOGLE_HOSTS, *(pattern for pattern in extra if pattern)]


def _matches(host: str, port: str, pattern: str) -> bool:
    want_host, want_port = _split(pattern)
    if want_port:
        if port != want_port:
            return False  # host:port names exactly that port
    elif port not in ("", "443"):
        return False  # a bare name means HTTPS's port: never another service on the same host
    if want_host.startswith("*."):
        suffix = want_host[1:]  # ".pkg.dev": a sub-domain, never the bare suffix or "evilpkg.dev"
        return host.endswith(suffix) and len(host) > len(suffix)
    return host == want_host


def answers_for(server: str, *, url_only: bool = False) -> bool:
    """Whether ``server`` (a host, ``host:port`` or URL) is one this helper hands tokens to: a
    URL only with the ``https`` scheme; with ``url_only``, nothing but such a URL (pip and uv ask
    a keyring for the bare host only after the URL was refused, e.g. for ``http://``)."""
    scheme, found, _ = server.strip().partition("://")
    if (found and scheme.lower() != "https") or (url_only and not found):
        return False
    authority = host_of(server)
    if not authority:
        return False
    host, port = _split(authority)
    if not host or (port and not port.isdigit()):
        return False
    return any(_matches(host, port, pattern) for pattern in _patterns())
