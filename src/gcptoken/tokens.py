"""The Token value type and unverified decoding."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, TypeGuard

from gcptoken.jose import compact

__all__ = [
    "MAX_LIFETIME",
    "DecodedToken",
    "NotAJwt",
    "Token",
    "decode",
    "expiry",
    "not_a_jwt",
    "plausible_time",
]

TokenKind = Literal["id_token", "access_token", "jwt"]
# What people paste where a JWT is wanted: an opaque Google access token (``ya29.``: OAuth, IAM
# generateAccessToken, the metadata server and STS federated tokens alike), a refresh token
# (``1//``), or a whole JSON answer (``gcptoken id --format json``, a token endpoint's body).
NotAJwt = Literal["access_token", "refresh_token", "json"]
_JSON_FIELDS = ("id_token", "access_token", "jwt", "token", "signedJwt", "accessToken")

# The longest Google lets a token live: 12 hours (IAM generateAccessToken, where the org policy allows).
# An upstream's word that a token lasts longer (an expires_in of 1e300 or of 5,000 digits, an expireTime
# in the year 9999, an exp in the year 5000) is clamped to this, not refused: believing less only
# means refreshing sooner, and no arithmetic overflows. What is no time at all is refused: a negative
# or non-numeric expires_in ("soon", true, "1e3"), and an exp no verifier would accept (before 1970,
# after the year 5138, not a number).
MAX_LIFETIME = 43200
# Epoch seconds no token's exp can be: before 1970, or after the year 5138 (as verifiers judge it).
_LATEST = 1e11


@dataclass(frozen=True)
class DecodedToken:
    """A JWT's header and claims, read without checking the signature."""

    header: dict[str, Any]
    claims: dict[str, Any]


def decode(token: str) -> DecodedToken:
    """Header and claims of a JWT, **unverified**. Raises VerificationError for malformed input."""
    parsed = compact.parse(token.strip())
    return DecodedToken(parsed.header, parsed.claims)


def not_a_jwt(text: str) -> tuple[NotAJwt, str] | None:
    """What ``text`` is when it is one of the non-JWTs people paste by mistake, and the one line
    that says so and what to use instead (never repeating any of it); None for anything else. The
    one recogniser of ``decode``, ``verify``, ``info`` and the inspector."""
    text = text.strip()
    if text.startswith("ya29."):
        return "access_token", (
            "this is an opaque OAuth access token (ya29.…, also what STS and the metadata server give), not a "
            "JWT: nothing in it can be verified or decoded; use 'gcptoken info' to ask Google about it"
        )
    if text.startswith("1//"):
        return "refresh_token", (
            "this looks like a refresh token, a long-lived secret, not a JWT; revoke it if it was shared by mistake"
        )
    if text.startswith("{"):
        field = next((f'"{name}"' for name in _JSON_FIELDS if f'"{name}"' in text), None)
        where = f"the value of its {field} field" if field else "the token alone"
        return "json", (
            f"this is JSON (gcptoken's --format json output, or a token endpoint's answer), not a token: pass {where} "
            "(gcptoken id/access/jwt --format token prints just the token)"
        )
    return None


@dataclass(frozen=True)
class Token:
    """A token and when it expires. ``repr`` never shows the value."""

    value: str
    expires_at: datetime
    kind: TokenKind = "id_token"

    @property
    def claims(self) -> dict[str, Any]:
        """Unverified claims of a JWT token; empty for opaque access tokens."""
        if self.value.count(".") != 2:
            return {}
        return decode(self.value).claims

    def expires_in(self, now: float | None = None) -> float:
        """Seconds left before expiry (negative once expired)."""
        return self.expires_at.timestamp() - (time.time() if now is None else now)

    def __repr__(self) -> str:
        return f"Token(kind={self.kind!r}, expires_at={self.expires_at.isoformat()!r}, value=<redacted>)"

    __str__ = __repr__


def utc_from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def plausible_time(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` can be a token's ``exp``: a number (not a boolean) from 1970 to the year 5138."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < _LATEST


def expiry(moment: float, now: float | None = None) -> datetime:
    """``moment`` (epoch seconds) as a token's expiry, but at most MAX_LIFETIME from ``now``; in
    whole seconds, as a JWT's exp is (a fraction is dropped: believing less only refreshes sooner)."""
    return utc_from_epoch(int(min(moment, (time.time() if now is None else now) + MAX_LIFETIME)))
