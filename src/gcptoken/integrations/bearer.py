"""What every server integration shares: finding the token in a request, and refusing one.

Refusals follow RFC 6750: 401 with ``WWW-Authenticate: Bearer error="invalid_token",
error_description="…"`` for a missing or invalid token; 503 when the issuer's keys cannot be had
at all (the caller's token may be fine; our side is not). ``refusal`` builds the one answer every
integration gives, byte for byte: the body is ``{"detail": "…"}``, what FastAPI makes of the
HTTPException the dependency raises (its default handler cannot answer anything else), so the
middlewares and the Flask decorator answer the same.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from gcptoken.errors import GcpTokenError, VerificationError

__all__ = ["Refusal", "refusal", "token_from"]

# RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E; anything else (quotes,
# backslashes, line breaks a forged claim might carry) must never reach a response header.
_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_MAX_DESCRIPTION = 200


class Refusal(NamedTuple):
    status: int
    description: str
    body: bytes
    headers: list[tuple[str, str]]


def token_from(value: str | None, header: str) -> str:
    """The token in ``value``, the request's ``header``: ``Bearer <token>`` for Authorization,
    the bare token for any other header (IAP's ``x-goog-iap-jwt-assertion``)."""
    if not value:
        raise VerificationError("missing", f"no {header} header")
    if header != "authorization":
        return value.strip()
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise VerificationError("missing", "authorization header is not 'Bearer <token>'")
    return token.strip()


def _description(error: GcpTokenError) -> str:
    return _UNSAFE.sub("?", str(error))[:_MAX_DESCRIPTION]


def _body(description: str) -> bytes:
    # As FastAPI's JSONResponse writes {"detail": …}: compact, UTF-8.
    return json.dumps({"detail": description}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def refusal(error: GcpTokenError) -> Refusal:
    """The response for a request whose token was not accepted (the machine-readable code is the
    challenge's ``error``, where RFC 6750 puts it)."""
    if isinstance(error, VerificationError):
        description = _description(error)
        challenge = f'Bearer error="invalid_token", error_description="{description}"'
        headers = [("content-type", "application/json"), ("www-authenticate", challenge)]
        return Refusal(401, description, _body(description), headers)
    # The details (which URL failed, how) are for the service's log, not for the caller.
    description = "token signing keys are unavailable"
    return Refusal(503, description, _body(description), [("content-type", "application/json"), ("retry-after", "5")])
