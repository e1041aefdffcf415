"""The audience a Google-hosted service expects, from the URL being called."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["AUTHORIZATION", "SERVERLESS_AUTHORIZATION", "audience_for", "id_token_header", "says_invalid_token"]

AUTHORIZATION = "Authorization"
# Cloud Run checks an ID token here when present (before Authorization, which then reaches the
# app untouched for its own scheme): https://cloud.google.com/run/docs/authenticating/service-to-service#acquire-token
SERVERLESS_AUTHORIZATION = "X-Serverless-Authorization"

_DEFAULT_PORTS = {"https": 443, "http": 80}


def audience_for(url: str) -> str:
    """``scheme://host`` (Cloud Run, IAP, most services); for Cloud Functions (1st gen,
    ``*.cloudfunctions.net``) the function's URL, whose first path segment names it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    shown = f"[{host}]" if ":" in host else host  # an IPv6 address keeps its brackets in a URL
    netloc = shown if parts.port in (None, _DEFAULT_PORTS.get(parts.scheme)) else f"{shown}:{parts.port}"
    base = f"{parts.scheme}://{netloc}"
    if host.endswith(".cloudfunctions.net"):
        function = parts.path.lstrip("/").split("/", 1)[0]
        return f"{base}/{function}" if function else base
    return base


def says_invalid_token(status: int, www_authenticate: str | None) -> bool:
    """A 401 whose challenge says the token itself was refused (worth one retry with a fresh one)."""
    return status == 401 and "invalid_token" in (www_authenticate or "")


def id_token_header(name: str) -> str:
    """Where an ID token goes: ``Authorization`` or ``X-Serverless-Authorization`` (any case)."""
    from gcptoken.errors import InvalidArgumentError

    for known in (AUTHORIZATION, SERVERLESS_AUTHORIZATION):
        if isinstance(name, str) and name.lower() == known.lower():
            return known
    raise InvalidArgumentError(
        f"header must be {AUTHORIZATION!r} or {SERVERLESS_AUTHORIZATION!r}, not {str(name)[:60]!r}"
    )
