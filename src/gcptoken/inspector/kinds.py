"""What a pasted token is, told from its shape and unverified claims: which Google flow made it,
what each claim means, and which keys can verify it. Nothing here trusts the token; the verdict
comes from inspector.verdict."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gcptoken.errors import VerificationError
from gcptoken.jose import compact
from gcptoken.tokens import not_a_jwt

__all__ = ["CLAIM_WORDS", "JSON_KIND", "Reading", "read"]

JSON_KIND = "JSON, not a token"

GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
IAP_ISSUER = "https://cloud.google.com/iap"
FIREBASE_PREFIX = "https://securetoken.google.com/"
TOKEN_ENDPOINTS = ("https://oauth2.googleapis.com/token", "https://www.googleapis.com/oauth2/v4/token")
_SERVICE_ACCOUNT = re.compile(r"[^@\s]+@[^@\s]+\.gserviceaccount\.com")

CLAIM_WORDS = {
    "iss": "issuer: who signed the token",
    "aud": "audience: who the token is for; a service must refuse any other",
    "azp": "authorized party: the client (or service account) that asked for the token",
    "sub": "subject: the stable, unique id of the identity",
    "email": "the identity's email address",
    "email_verified": "whether Google verified the email address",
    "hd": "hosted domain: the Google Workspace domain of the account",
    "iat": "issued at",
    "exp": "expires at; after this no one may accept it",
    "nbf": "not valid before",
    "auth_time": "when the person last signed in",
    "scope": "the OAuth scopes this JWT stands for (a self-signed JWT used as an access token)",
    "target_audience": "the audience of the ID token this assertion asks Google for",
    "google": "Google-specific claims (on the metadata server's full format: the VM that asked)",
    "firebase": "Firebase Auth details: sign-in provider and linked identities",
    "user_id": "Firebase's user id (the same as sub)",
    "name": "the person's display name",
    "picture": "the person's profile picture",
    "access_levels": "IAP: the Access Context Manager levels the request met",
    "gcip": "IAP: the Identity Platform claims of an external identity",
}


@dataclass
class Reading:
    """A token as read, not verified: its kind, parts, and how to verify it."""

    kind: str
    summary: str
    header: dict[str, Any] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None  # google, iap, firebase, oidc, service_account: the keys that verify it
    warnings: list[str] = field(default_factory=list)
    opaque: bool = False

    def to_json(self) -> dict[str, Any]:
        words = {name: CLAIM_WORDS[name] for name in self.claims if name in CLAIM_WORDS}
        return {
            "kind": self.kind,
            "summary": self.summary,
            "header": self.header,
            "claims": self.claims,
            "explanations": words,
            "preset": self.preset,
            "warnings": self.warnings,
            "opaque": self.opaque,
        }


def _opaque(token: str) -> Reading:
    found = not_a_jwt(token)  # the recogniser decode, verify and info share
    kind = found[0] if found is not None else None
    if kind == "access_token":
        return Reading(
            "OAuth access token (opaque)",
            "A Google access token (an STS federated token looks the same): it says nothing about itself. Only "
            "Google's tokeninfo can tell whose it is and for which scopes, and asking sends the token to Google.",
            opaque=True,
        )
    if kind == "refresh_token":
        return Reading(
            "refresh token",
            "A Google OAuth refresh token: a long-lived secret that mints access tokens for its user.",
            warnings=[
                "This is a refresh token. If you pasted it by mistake anywhere else, revoke it now: "
                "gcptoken logout, or https://myaccount.google.com/permissions"
            ],
            opaque=True,
        )
    if found is not None:
        # Not opaque: the page offers no tokeninfo button for it (the JSON is never sent to Google).
        return Reading(JSON_KIND, found[1][0].upper() + found[1][1:] + ".")
    return Reading(
        "unknown", "Not a JWT and not a token Google's formats name; nothing can be read from it.", opaque=True
    )


def _google_kind(claims: dict[str, Any]) -> tuple[str, str]:
    email, azp, sub = claims.get("email"), claims.get("azp"), claims.get("sub")
    if isinstance(claims.get("google"), dict) and "compute_engine" in claims["google"]:
        return "Google ID token from the metadata server (full format)", "Minted for a VM's service account."
    if isinstance(email, str) and _SERVICE_ACCOUNT.fullmatch(email):
        if azp == email:
            return (
                "Google ID token of a service account (key file, or impersonation with useEmailAzp)",
                "azp is the service account's email, as in the key flow.",
            )
        return (
            "Google ID token of a service account (metadata server or IAM impersonation)",
            "azp and sub are the account's unique id, as the metadata server and IAM Credentials issue them.",
        )
    if isinstance(azp, str) and azp.isdigit() and azp == sub:
        return (
            "Google ID token of a service account (metadata server, standard format, or impersonation)",
            "No email: the standard format and impersonation without includeEmail leave it out.",
        )
    if isinstance(email, str) or str(claims.get("aud", "")).endswith(".apps.googleusercontent.com"):
        own = claims.get("aud") == azp
        return (
            "Google ID token of a user" + ("" if own else " for another OAuth client (IAP programmatic access)"),
            "A person signed in through OAuth client azp"
            + ("." if own else f"; the token is for {claims.get('aud')}."),
        )
    return "Google ID token", "Signed by accounts.google.com."


def read(token: str) -> Reading:
    """What ``token`` is (a leading ``Bearer `` dropped by the caller)."""
    try:
        parsed = compact.parse(token)
    except VerificationError:
        return _opaque(token)
    header, claims = dict(parsed.header), dict(parsed.claims)
    iss, aud = claims.get("iss"), claims.get("aud")
    if iss in GOOGLE_ISSUERS:
        kind, summary = _google_kind(claims)
        return Reading(kind, summary, header, claims, "google")
    if iss == IAP_ISSUER:
        return Reading(
            "IAP signed header (x-goog-iap-jwt-assertion)",
            "What Identity-Aware Proxy passes to the app behind it, signed with IAP's ES256 keys.",
            header,
            claims,
            "iap",
        )
    if isinstance(iss, str) and iss.startswith(FIREBASE_PREFIX):
        return Reading(
            "Firebase Auth ID token",
            f"A Firebase user's token for project {iss.removeprefix(FIREBASE_PREFIX)}.",
            header,
            claims,
            "firebase",
        )
    if isinstance(iss, str) and _SERVICE_ACCOUNT.fullmatch(iss):
        # Checked against the account's published keys (www.googleapis.com/service_accounts/…), when
        # the issuer is an email that URL can carry.
        keys = "service_account" if _publishable(iss) else None
        if aud in TOKEN_ENDPOINTS:
            wants = "an ID token" if "target_audience" in claims else "an access token"
            return Reading(
                "jwt-bearer assertion (a key asking Google's token endpoint for a token)",
                f"Signed by the service account's own key; it asks for {wants}. Only the token endpoint accepts it.",
                header,
                claims,
                keys,
            )
        return Reading(
            "JWT signed by a service account (self-signed with a key file, or IAM signJwt)",
            "Signed by one of the account's keys, user-managed or Google-managed; used as a credential by APIs "
            "that accept it, or by services that trust the account (Cloud Endpoints' x-google-issuer).",
            header,
            claims,
            keys,
        )
    return Reading(
        "OIDC token" + (f" from {iss}" if isinstance(iss, str) else ""),
        "An OpenID Connect token from another issuer (a CI system, an IdP): its keys come from the issuer's discovery.",
        header,
        claims,
        "oidc" if isinstance(iss, str) and _discoverable(iss) else None,
    )


def _publishable(email: str) -> bool:
    from gcptoken.errors import InvalidArgumentError
    from gcptoken.verify.presets import service_account_keys

    try:
        service_account_keys(email)
    except InvalidArgumentError:
        return False
    return True


def _discoverable(issuer: str) -> bool:
    """An issuer whose discovery may be fetched: https, or plain http on loopback only (a local
    emulator's), so a pasted token cannot point the inspector at any other address over http."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(issuer)
    except ValueError:
        return False
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
