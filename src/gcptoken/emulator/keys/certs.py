"""Public keys (``/oauth2/v1/certs``, ``/oauth2/v3/certs``) and ``tokeninfo``."""

from __future__ import annotations

import email.utils
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gcptoken import endpoints
from gcptoken.emulator.http.responses import GoogleJSONResponse as JSONResponse
from gcptoken.emulator.http.responses import form_of, oauth_error
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.errors import VerificationError
from gcptoken.jose import compact

__all__ = ["certs_v1", "certs_v3", "openid_configuration", "tokeninfo"]


def _cache_headers(state: EmulatorState) -> dict[str, str]:
    max_age = state.certs_cache_seconds()
    return {
        "Cache-Control": f"public, max-age={max_age}, must-revalidate, no-transform",
        "Expires": email.utils.formatdate(state.clock() + max_age, usegmt=True),
    }


async def certs_v1(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    body = {key.kid: key.certificate_pem for key in state.issuer_keys}
    return JSONResponse(body, headers=_cache_headers(state))


async def certs_v3(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    body = {"keys": [key.key.public.to_jwk(key.kid) for key in state.issuer_keys]}
    return JSONResponse(body, headers=_cache_headers(state))


async def openid_configuration(request: Request) -> Response:
    """accounts.google.com's discovery document, so OIDC verifiers find the emulator's keys."""
    return JSONResponse(
        {
            "issuer": "https://accounts.google.com",
            "authorization_endpoint": "https://accounts.google.com/o/oauth2/v2/auth",
            "device_authorization_endpoint": "https://oauth2.googleapis.com/device/code",
            "token_endpoint": endpoints.TOKEN_URI,
            "userinfo_endpoint": "https://openidconnect.googleapis.com/v1/userinfo",
            "revocation_endpoint": "https://oauth2.googleapis.com/revoke",
            "jwks_uri": endpoints.OAUTH2_CERTS_V3,
            "response_types_supported": ["code", "token", "id_token", "code token", "code id_token", "none"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "name", "sub"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
            ],
        },
        headers={"Cache-Control": "public, max-age=3600"},
    )


def _invalid() -> Response:
    return oauth_error("invalid_token", "Invalid Value")


def _as_text(value: Any) -> Any:
    """tokeninfo renders scalar claims as strings, as Google's does."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value))
    return value


async def tokeninfo(request: Request) -> Response:
    """The token as a query parameter, a form field, or (Node's ``getTokenInfo``) an
    ``Authorization: Bearer`` header on a POST with no body: an access token."""
    state: EmulatorState = request.app.state.emulator
    form = await form_of(request)
    if form is None:
        return _invalid()
    if request.method == "POST":
        form = {**dict(request.query_params), **form}
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    if not form.get("id_token") and not form.get("access_token") and scheme.lower() == "bearer" and bearer.strip():
        form["access_token"] = bearer.strip()
    if form.get("id_token"):
        return _id_token_info(state, form["id_token"])
    if form.get("access_token"):
        return _access_token_info(state, form["access_token"])
    return oauth_error("invalid_request", "Either access_token, id_token, or token_handle required")


def _id_token_info(state: EmulatorState, token: str) -> Response:
    try:
        parsed = compact.parse(token)
    except VerificationError:
        return _invalid()
    kid = parsed.header.get("kid")
    key = state.published_key(kid) if isinstance(kid, str) else None
    if key is None:
        return _invalid()
    try:
        parsed.verify_with(key.key.public)
    except VerificationError:
        return _invalid()
    exp = parsed.claims.get("exp")
    if not isinstance(exp, int | float) or exp < state.clock():
        return _invalid()
    body = {name: _as_text(value) for name, value in parsed.claims.items()}
    for name in ("alg", "kid", "typ"):
        if name in parsed.header:
            body[name] = parsed.header[name]
    return JSONResponse(body)


def _access_token_info(state: EmulatorState, token: str) -> Response:
    grant = state.access_tokens.get(token)
    now = state.clock()
    if grant is None or grant.expires_at <= now:
        return _invalid()
    party = grant.client_id or (state.oauth_client[0] if grant.kind == "user" else grant.unique_id)
    return JSONResponse(
        {
            "azp": party,
            "aud": party,
            "sub": grant.unique_id,
            "scope": " ".join(grant.scopes),
            "exp": str(int(grant.expires_at)),
            "expires_in": str(int(grant.expires_at - now)),
            "email": grant.email,
            "email_verified": "true",
            "access_type": "online",
        }
    )
