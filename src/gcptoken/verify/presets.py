"""Who issues the tokens a service may receive, and the rules their issuers document.

- ``google``: Google-signed ID tokens (service accounts, metadata server, users): RS256, keys at
  ``oauth2/v3/certs``, issuer ``https://accounts.google.com`` (or without the scheme).
- ``iap``: the ``x-goog-iap-jwt-assertion`` header Identity-Aware Proxy adds: ES256, keys at
  gstatic's ``public_key-jwk``, issuer ``https://cloud.google.com/iap``, 30 s of skew, at most
  10 minutes between ``iat`` and ``exp``; the audience is ``/projects/NUMBER/apps/PROJECT_ID`` or
  ``/projects/NUMBER/global/backendServices/ID``.
- ``firebase``: Firebase Authentication ID tokens: RS256, securetoken's x509 certs, issuer
  ``https://securetoken.google.com/PROJECT_ID``, audience the project ID, a non-empty ``sub`` of at
  most 128 characters, and an ``auth_time`` in the past.
- ``oidc``: any OpenID Connect issuer; its keys are found by discovery.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gcptoken import endpoints
from gcptoken.errors import InvalidArgumentError, VerificationError

__all__ = [
    "AUTHORIZATION",
    "FIREBASE_CERTS",
    "GOOGLE",
    "IAP",
    "IAP_HEADER",
    "IAP_ISSUER",
    "IAP_KEYS",
    "Preset",
    "firebase",
    "firebase_issuer",
    "oidc",
]

AUTHORIZATION = "authorization"
IAP_HEADER = "x-goog-iap-jwt-assertion"
IAP_KEYS = "https://www.gstatic.com/iap/verify/public_key-jwk"
IAP_ISSUER = "https://cloud.google.com/iap"
FIREBASE_CERTS = "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"

_IAP_AUDIENCE = re.compile(r"/projects/\d+/(?:apps/[^/\s]+|global/backendServices/\d+)")
_FIREBASE_SUBJECT_MAX = 128

# Extra rules a preset's issuer documents: (claims, now, clock skew) → the earliest moment the
# token is valid (those rules can only move it later), or VerificationError.
ClaimsRule = Callable[[dict[str, Any], float, float], float]


@dataclass(frozen=True)
class Preset:
    """Where a kind of token comes from and how it must look; ``certs`` None means discovery."""

    name: str
    certs: str | None
    issuers: tuple[str, ...]
    algorithms: frozenset[str]
    header: str = AUTHORIZATION
    clock_skew: float = 60.0
    max_lifetime: float | None = None
    claims_rule: ClaimsRule | None = None
    check_audience: Callable[[str], None] | None = None


def _iap_audience(audience: str) -> None:
    if not _IAP_AUDIENCE.fullmatch(audience):
        raise InvalidArgumentError(
            f"IAP audience {audience[:200]!r} is not /projects/NUMBER/apps/PROJECT_ID or "
            "/projects/NUMBER/global/backendServices/ID (an OAuth client ID is not the audience)"
        )


def _firebase_rule(claims: dict[str, Any], now: float, skew: float) -> float:
    subject = claims.get("sub")
    if type(subject) is not str or not subject or len(subject) > _FIREBASE_SUBJECT_MAX:
        raise VerificationError("invalid_claim", "'sub' must be a non-empty string of at most 128 characters")
    auth_time: Any = claims.get("auth_time")
    if type(auth_time) not in (int, float):  # type(), not isinstance: no booleans
        raise VerificationError(
            "invalid_claim" if "auth_time" in claims else "missing_claim", "'auth_time' is required"
        )
    if auth_time > now + skew:
        raise VerificationError("issued_in_future", "token 'auth_time' is in the future")
    return float(auth_time) - skew


GOOGLE = Preset("google", endpoints.OAUTH2_CERTS_V3, endpoints.GOOGLE_ISSUERS, frozenset({"RS256"}))
IAP = Preset(
    "iap",
    IAP_KEYS,
    (IAP_ISSUER,),
    frozenset({"ES256"}),
    header=IAP_HEADER,
    clock_skew=30.0,
    max_lifetime=600.0,
    check_audience=_iap_audience,
)


def firebase_issuer(project_id: str) -> str:
    return f"https://securetoken.google.com/{project_id}"


def firebase(project_id: str) -> Preset:
    if not isinstance(project_id, str) or not project_id or "/" in project_id:
        raise InvalidArgumentError("a Firebase project ID is required (it is the tokens' audience)")
    return Preset(
        "firebase", FIREBASE_CERTS, (firebase_issuer(project_id),), frozenset({"RS256"}), claims_rule=_firebase_rule
    )


def oidc(issuer: str) -> Preset:
    from gcptoken.verify.discovery import check_issuer_url

    return Preset("oidc", None, (check_issuer_url(issuer),), frozenset({"RS256", "ES256"}))
