"""Which hosts a helper answers for: Google's registries (Artifact Registry's ``*.pkg.dev``,
Container Registry's ``gcr.io`` and ``*.gcr.io``) and the hosts the user names in
``$GCPTOKEN_HELPER_HOSTS``. Any other host gets "not mine", so a helper configured for every
registry (docker's ``credsStore``, a keyring consulted for every index) never hands a Google
token to someone else's server."""

from __future__ import annotations

import os

__all__ = ["GOOGLE_HOSTS", "HOSTS_ENV", "answers_for", "host_of"]

HOSTS_ENV = "GCPTOKEN_HELPER_HOSTS"
# Artifact Registry: REGION-docker.pkg.dev, REGION-python.pkg.dev, …; Container Registry: gcr.io,
# us.gcr.io, eu.gcr.io, asia.gcr.io (https://cloud.google.com/artifact-registry/docs/docker/authentication).
GOOGLE_HOSTS = ("*.pkg.dev", "gcr.io", "*.gcr.io")


def host_of(server: str) -> str:
    """``host`` or ``host:port``, lower-cased, from a registry name or URL (``https://h:1/v2/x``,
    ``h/path``, ``user@h``); an empty string for nothing usable."""
    text = server.strip()
    scheme, found, rest = text.partition("://")
    if not found:
        rest = scheme
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    authority = authority.rpartition("@")[2].lower().rstrip(".")
    if not authority or not authority.isascii() or not authority.isprintable() or " " in authority:
        return ""
    return authority


def _patterns() -> list[str]:
    extra = [p.strip().lower() for p in os.environ.get(HOSTS_ENV, "").split(",")]
    return [*GOOGLE_HOSTS, *(p for p in extra if p)]


def _matches(authority: str, pattern: str) -> bool:
    host, _, port = authority.rpartition(":") if authority.count(":") == 1 else (authority, "", "")
    if pattern.startswith("*."):
        suffix = pattern[1:]  # ".pkg.dev": a sub-domain, never the bare suffix or "evilpkg.dev"
        name = host or authority
        return name.endswith(suffix) and len(name) > len(suffix) and (not port or port == "443")
    if ":" in pattern and pattern.count(":") == 1:
        return authority == pattern  # host:port names exactly that port
    return (host or authority) == pattern and (not port or port == "443")


def answers_for(server: str) -> bool:
    """Whether ``server`` (a host, ``host:port`` or URL) is one this helper hands tokens to."""
    authority = host_of(server)
    return bool(authority) and any(_matches(authority, p) for p in _patterns())
