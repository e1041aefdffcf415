"""The Token value type and unverified decoding."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from gcptoken.jose import compact

__all__ = ["DecodedToken", "Token", "decode"]

TokenKind = Literal["id_token", "access_token", "jwt"]


@dataclass(frozen=True)
class DecodedToken:
    """A JWT's header and claims, read without checking the signature."""

    header: dict[str, Any]
    claims: dict[str, Any]


def decode(token: str) -> DecodedToken:
    """Header and claims of a JWT, **unverified**. Raises VerificationError for malformed input."""
    parsed = compact.parse(token.strip())
    return DecodedToken(parsed.header, parsed.claims)


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
