"""OpenID Connect discovery: from an issuer to the URL of its signing keys."""

from __future__ import annotations

from urllib.parse import urlsplit

from gcptoken import endpoints
from gcptoken.endpoints import safe_url
from gcptoken.errors import InvalidArgumentError, TransportError
from gcptoken.http.flows import Flow, get_json_flow

__all__ = ["check_issuer_url", "check_keys_url", "configuration_url", "jwks_uri_flow"]

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _secure(url: str) -> bool:
    """https, or plain http on this machine only (a local issuer, tests)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not one
    except ValueError:
        return False
    return bool(parts.hostname) and (
        parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
    )


def check_keys_url(url: str) -> str:
    """A URL keys may be fetched from: https, or http on loopback only (the emulator, tests)."""
    if not isinstance(url, str) or not _secure(url):
        raise InvalidArgumentError(
            f"certs URL {safe_url(url)[:200]!r} must be https (plain http only on 127.0.0.1, ::1 or localhost)"
        )
    return url


def check_issuer_url(issuer: str) -> str:
    """The issuer, if it can be discovered safely: an https URL (http on loopback) with no query."""
    parts = urlsplit(issuer) if _secure(issuer) else None
    if parts is None or parts.query or parts.fragment:
        raise InvalidArgumentError(
            f"issuer {issuer[:200]!r} is not an https URL without query or fragment (http only on loopback)"
        )
    return issuer


def configuration_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def jwks_uri_flow(issuer: str) -> Flow[str]:
    """GET the issuer's discovery document; its ``jwks_uri``, once the document is shown to be the
    issuer's own (its ``issuer`` must equal ours exactly, OpenID Connect Discovery §4.3)."""
    url = configuration_url(issuer)
    where = f"discovery document {safe_url(url)}"
    document, _ = yield from get_json_flow(endpoints.resolve(url), where)
    if not isinstance(document, dict):
        raise TransportError(f"{where} is not a JSON object")
    if document.get("issuer") != issuer:
        raise TransportError(f"{where} names issuer {str(document.get('issuer'))[:200]!r}, not {issuer!r}")
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not _secure(jwks_uri):
        raise TransportError(f"{where} has no https jwks_uri")
    return jwks_uri
