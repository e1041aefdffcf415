"""Identity-Aware Proxy's side: its ES256 keys as gstatic publishes them, and an admin call that
mints the ``x-goog-iap-jwt-assertion`` IAP would add to a request from a signed-in user."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from cryptography.hazmat.primitives import serialization
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gcptoken.emulator.http.responses import GoogleJSONResponse as JSONResponse
from gcptoken.emulator.http.responses import api_error, json_object
from gcptoken.emulator.state.models import IssuerKey
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.jose import compact, jws
from gcptoken.verify.presets import IAP_ISSUER

__all__ = ["ASSERTION_LIFETIME", "assertion", "routes"]

# IAP assertions live ten minutes.
ASSERTION_LIFETIME = 600
_MAX_AGE = 3600


def _make_key() -> IssuerKey:
    key = IssuerKey.create(jws.generate_ec_key(), common_name="iap.googleapis.com")
    # IAP's kids are short base64url strings, not the 40-hex ids of the OAuth2 certs.
    der = key.key.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return dataclasses.replace(key, kid=compact.b64url_encode(hashlib.sha256(der).digest()[:6]))


def iap_key(state: EmulatorState) -> IssuerKey:
    return state.side_key("iap", _make_key)


def default_audience(state: EmulatorState) -> str:
    """What IAP in front of an App Engine app of the emulated project uses."""
    return f"/projects/{state.project_number}/apps/{state.project_id}"


def assertion(
    state: EmulatorState,
    email: str,
    audience: str | None = None,
    *,
    lifetime: int = ASSERTION_LIFETIME,
    hosted_domain: str | None = None,
    access_levels: list[str] | None = None,
) -> str:
    user = state.create_user(email)
    now = int(state.clock())
    claims: dict[str, Any] = {
        "aud": audience or default_audience(state),
        "email": user.email,
        "exp": now + lifetime,
        "iat": now,
        "identity_source": "GOOGLE",
        "iss": IAP_ISSUER,
        "sub": f"accounts.google.com:{user.sub}",
    }
    if hosted_domain:
        claims["hd"] = hosted_domain
    if access_levels:
        claims["google"] = {"access_levels": access_levels}
    key = iap_key(state)
    return jws.encode(claims, key.key, kid=key.kid)


def _cache_headers() -> dict[str, str]:
    return {"Cache-Control": f"public, max-age={_MAX_AGE}"}


async def public_key_jwk(request: Request) -> Response:
    key = iap_key(request.app.state.emulator)
    return JSONResponse({"keys": [key.key.public.to_jwk(key.kid)]}, headers=_cache_headers())


async def public_key(request: Request) -> Response:
    """The other published form: kid → PEM public key."""
    key = iap_key(request.app.state.emulator)
    pem = key.key.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return JSONResponse({key.kid: pem.decode("ascii")}, headers=_cache_headers())


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


async def mint(request: Request) -> Response:
    """Admin: ``{"email", "audience"?, "lifetime"?, "hd"?, "accessLevels"?}`` → ``{"assertion"}``."""
    state: EmulatorState = request.app.state.emulator
    body = await json_object(request)
    if body is None:
        return api_error(400, "Request body must be a JSON object.")
    email = body.get("email")
    if not isinstance(email, str) or "@" not in email:
        return api_error(400, "email must be a user's email address.")
    audience = body.get("audience")
    if audience is not None and not (isinstance(audience, str) and audience):
        return api_error(400, "audience must be a non-empty string.")
    lifetime = body.get("lifetime", ASSERTION_LIFETIME)
    if type(lifetime) is not int or not 0 < lifetime <= ASSERTION_LIFETIME:
        return api_error(400, f"lifetime must be whole seconds, 1 to {ASSERTION_LIFETIME}.")
    hosted_domain = body.get("hd")
    if hosted_domain is not None and not isinstance(hosted_domain, str):
        return api_error(400, "hd must be a string.")
    levels = body.get("accessLevels")
    if levels is not None and _strings(levels) is None:
        return api_error(400, "accessLevels must be a list of strings.")
    token = assertion(
        state, email, audience, lifetime=lifetime, hosted_domain=hosted_domain, access_levels=_strings(levels)
    )
    return JSONResponse({"assertion": token})


routes = [
    Route("/iap/verify/public_key-jwk", public_key_jwk, methods=["GET"]),
    Route("/iap/verify/public_key", public_key, methods=["GET"]),
    Route("/emulator/v1/iap/assertions", mint, methods=["POST"]),
]
