"""The inspector's verdict: a token verified with the keys its kind names (Google's certs, IAP's,
Firebase's, an OIDC issuer's by discovery, a service account's published keys; the emulator's when
GCPTOKEN_EMULATOR_HOST is set), with the same reasons as ``gcptoken verify``. Only public key sets
are fetched."""

from __future__ import annotations

import os
from typing import Any

from gcptoken import endpoints
from gcptoken.errors import GcpTokenError, InvalidArgumentError, VerificationError
from gcptoken.inspector.kinds import FIREBASE_PREFIX, JSON_KIND, Reading
from gcptoken.verify.audience import ANY_AUDIENCE_INSECURE, AnyAudience
from gcptoken.verify.verifier import Verifier

__all__ = ["verdict"]

KEYS = {
    "google": "Google's signing certs (accounts.google.com)",
    "iap": "IAP's public keys (www.gstatic.com/iap/verify)",
    "firebase": "Firebase Auth's signing certs (securetoken@system.gserviceaccount.com)",
    "oidc": "the issuer's keys, found by OpenID Connect discovery",
    "service_account": "the service account's published keys (www.googleapis.com/service_accounts/v1/metadata/jwk/…)",
}
_verifiers: dict[tuple[str, str | None, str], Verifier] = {}


def _verifier(preset: str, audience: str | AnyAudience, issuer: str) -> Verifier:
    """A verifier for ``audience``: the one the user expects, else any (the page then says the
    audience was not checked); IAP's is always the app's."""
    shown = None if isinstance(audience, AnyAudience) else audience
    key = (preset, shown, issuer if preset in ("oidc", "firebase", "service_account") else "")
    found = _verifiers.get(key)
    if found is None:
        if len(_verifiers) > 64:
            _verifiers.clear()
        if preset == "google":
            found = Verifier.google(audience)
        elif preset == "iap":
            found = Verifier.iap(audience)
        elif preset == "firebase":
            found = Verifier.firebase(issuer.removeprefix(FIREBASE_PREFIX))
        elif preset == "service_account":
            found = Verifier.service_account(issuer, audience)
        else:
            found = Verifier.oidc(issuer, audience)
        _verifiers[key] = found
    return found


async def verdict(reading: Reading, token: str, expected_audience: str | None) -> dict[str, Any]:
    """``{"checked", "valid", "reason", "message", "keys", "audience_checked"}``."""
    if reading.preset is None:
        if reading.opaque:
            why = "No public keys can check this kind: only Google (tokeninfo) knows an opaque token."
        elif reading.kind == JSON_KIND:
            why = reading.summary
        elif reading.kind.startswith("OIDC token"):
            why = "Its issuer is not an https URL (nor a loopback one), so no keys are fetched for it."
        else:
            why = "Its issuer is not a service account's email that Google publishes keys for."
        return {"checked": False, "message": why}
    audience = expected_audience or reading.claims.get("aud")
    if isinstance(audience, list):
        audience = next((a for a in audience if isinstance(a, str) and a), None)
    if not isinstance(audience, str) or not audience:
        return {"checked": True, "valid": False, "reason": "missing_claim", "message": "the token has no audience"}
    issuer = str(reading.claims.get("iss", ""))
    where = KEYS[reading.preset]
    if endpoints.emulator_host() is not None and reading.preset != "oidc":
        where += f", from the emulator at {os.environ.get(endpoints.EMULATOR_HOST_ENV)}"
    answer: dict[str, Any] = {"checked": True, "keys": where, "audience_checked": bool(expected_audience)}
    try:
        if reading.preset == "firebase" and expected_audience and expected_audience != reading.claims.get("aud"):
            raise VerificationError("audience", f"audience {reading.claims.get('aud')!r} is not {expected_audience!r}")
        checked = expected_audience or (audience if reading.preset == "iap" else ANY_AUDIENCE_INSECURE)
        await _verifier(reading.preset, checked, issuer).verify_async(token)
    except VerificationError as exc:
        return {**answer, "valid": False, "reason": exc.reason, "message": str(exc)}
    except InvalidArgumentError as exc:  # an audience no verifier takes ("*", an IAP one of the wrong shape)
        return {**answer, "valid": False, "reason": "audience", "message": str(exc)}
    except GcpTokenError as exc:
        return {**answer, "valid": None, "reason": "keys_unavailable", "message": f"keys could not be fetched: {exc}"}
    return {**answer, "valid": True, "reason": None, "message": "valid"}
