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
- ``service_account``: JWTs a service account signs itself (a key file's self-signed JWT, IAM
  Credentials' signJwt, Cloud Endpoints' ``x-google-issuer: SA_EMAIL``): RS256, the account's
  published keys, ``iss`` and ``sub`` its email unless configured. Keys are refetched at least every
  15 minutes: user-managed keys may be deleted at any time, and Google recommends refreshing a
  service account's key set that often (the IAM API's ServiceAccountKey reference).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
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
    "service_account",
    "service_account_keys",
]

AUTHORIZATION = "authorization"
IAP_HEADER = "x-goog-iap-jwt-assertion"
IAP_KEYS = "https://www.gstatic.com/iap/verify/public_key-jwk"
IAP_ISSUER = "https://cloud.google.com/iap"
FIREBASE_CERTS = "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
# Where Google publishes every service account's public keys as a JWK set (IAM Credentials'
# signJwt reference names this URL for verifying what an account signed).
SERVICE_ACCOUNT_KEYS = "https://www.googleapis.com/service_accounts/v1/metadata/jwk/"
# A service account's emails as Google forms them (…@….iam.gserviceaccount.com, …@developer.,
# …@appspot., …@system.gserviceaccount.com), and nothing that could leave the URL's path. ASCII
# only: with IGNORECASE alone, [a-z] also matches the Kelvin sign, "ı" and "ſ".
_SERVICE_ACCOUNT_EMAIL = re.compile(r"[a-z0-9][a-z0-9._+-]{0,99}@[a-z0-9][a-z0-9.-]{0,200}", re.IGNORECASE | re.ASCII)
SERVICE_ACCOUNT_KEYS_MAX_AGE = 900.0

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
    keys_max_age: float | None = None  # refetch keys at least this often, whatever Cache-Control says

    def settings(self) -> dict[str, Any]:
        """The Verifier's arguments for these tokens (Verifier.from_preset)."""
        return {
            "certs": self.certs,
            "issuers": self.issuers,
            "clock_skew": self.clock_skew,
            "algorithms": tuple(self.algorithms),
            "max_lifetime": self.max_lifetime,
            "discovery": self.certs is None,
            "token_header": self.header,
            "claims_rule": self.claims_rule,
        }


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


FIREBASE_ISSUER_PREFIX = "https://securetoken.google.com/"


def firebase_issuer(project_id: str) -> str:
    return f"{FIREBASE_ISSUER_PREFIX}{project_id}"


def _firebase_project(project_id: str) -> str:
    """The audience of Firebase Auth ID tokens is the project ID, never a URL: "aud: Must be your
    Firebase project ID" (https://firebase.google.com/docs/auth/admin/verify-id-tokens)."""
    if not isinstance(project_id, str) or not project_id.strip():
        raise InvalidArgumentError("a Firebase project ID is required (it is the tokens' audience)")
    project_id = project_id.strip()
    if "/" in project_id or not project_id.isprintable() or any(ch.isspace() for ch in project_id):
        owner = project_id.removeprefix(FIREBASE_ISSUER_PREFIX)
        hint = (
            f"this is the issuer of project {owner[:64]!r}: pass {owner[:64]!r}"
            if owner != project_id and owner and "/" not in owner
            else "e.g. my-project, as in the Firebase console's URL"
        )
        raise InvalidArgumentError(
            f"the audience of Firebase ID tokens must be a Firebase project ID, not a URL or a path ({hint})"
        )
    return project_id


def firebase(project_id: str) -> Preset:
    project_id = _firebase_project(project_id)
    return Preset(
        "firebase", FIREBASE_CERTS, (firebase_issuer(project_id),), frozenset({"RS256"}), claims_rule=_firebase_rule
    )


def oidc(issuer: str) -> Preset:
    from gcptoken.verify.discovery import check_issuer_url

    return Preset("oidc", None, (check_issuer_url(issuer),), frozenset({"RS256", "ES256"}))


def service_account_keys(email: str) -> str:
    """The URL of ``email``'s published keys; InvalidArgumentError unless it is an email."""
    if not isinstance(email, str) or not _SERVICE_ACCOUNT_EMAIL.fullmatch(email):
        raise InvalidArgumentError(f"{str(email)[:100]!r} is not a service account's email")
    return SERVICE_ACCOUNT_KEYS + email


def _one_of(value: str | Sequence[str] | None, default: str, name: str) -> tuple[str, ...]:
    values = (default,) if value is None else (value,) if isinstance(value, str) else tuple(value)
    if not values or not all(isinstance(v, str) and v for v in values):
        raise InvalidArgumentError(f"{name} must be a non-empty string or list of strings")
    return values


def service_account(
    email: str, issuer: str | Sequence[str] | None = None, subject: str | Sequence[str] | None = None
) -> Preset:
    """Tokens ``email`` signed: ``iss`` is ``issuer`` and ``sub`` is ``subject`` (both default to
    the email; Cloud Endpoints may name another issuer for the same keys)."""
    keys = service_account_keys(email)
    subjects = frozenset(_one_of(subject, email, "subject"))

    def rule(claims: dict[str, Any], now: float, skew: float) -> float:
        sub = claims.get("sub")
        if sub is None:
            raise VerificationError("missing_claim", "token has no 'sub' claim")
        if type(sub) is not str or sub not in subjects:
            shown = repr(sub[:100]) if type(sub) is str else "(not a string)"
            raise VerificationError("subject_not_allowed", f"subject {shown} is not the service account")
        return float("-inf")

    return Preset(
        "service_account",
        keys,
        _one_of(issuer, email, "issuer"),
        frozenset({"RS256"}),
        claims_rule=rule,
        keys_max_age=SERVICE_ACCOUNT_KEYS_MAX_AGE,
    )
