"""``POST /token``: Google's OAuth 2.0 token endpoint: the jwt-bearer grant here, people's grants
(authorization code, device code, refresh) in user_grants."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gcptoken import endpoints
from gcptoken.checks import unknown_scopes
from gcptoken.emulator.http.responses import GoogleJSONResponse as JSONResponse
from gcptoken.emulator.http.responses import form_of, log_detail, oauth_error
from gcptoken.emulator.oauth2 import delegation, token_scopes, user_grants
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.errors import VerificationError
from gcptoken.jose import compact, jws

__all__ = ["token_endpoint"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 3600
CLOCK_SKEW = 300
SHORT_LIVED = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
    "Check your iat and exp values in the JWT claim."
)


def _number(value: object) -> float | None:
    """A JSON number as a float; None for anything else (booleans included)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def accepted_audiences(state: EmulatorState, request: Request) -> set[str]:
    """Google's token URLs, plus this emulator's own as configured and as the client reached it."""
    own = {f"{state.base_url}/token"}
    host = request.headers.get("host")
    if host:
        own.add(f"http://{host}/token")
    return {*endpoints.TOKEN_AUDIENCES, *own}


async def token_endpoint(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    form = await form_of(request)
    if form is None:
        return oauth_error("invalid_request", "Request body is not a readable form.")
    grant_type = form.get("grant_type")
    detail = log_detail(request)
    detail["grant_type"] = grant_type
    if not grant_type:
        return oauth_error("invalid_request", "Missing required parameter: grant_type")
    if grant_type == JWT_BEARER:
        return _jwt_bearer(state, request, form, detail)
    authorization = request.headers.get("authorization", "")
    if grant_type == "refresh_token":
        return user_grants.refresh(state, form, detail, authorization)
    if grant_type == "authorization_code":
        return user_grants.authorization_code(state, form, detail, authorization)
    if grant_type == user_grants.DEVICE_GRANT:
        return user_grants.device_code(state, form, detail, authorization)
    return oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant_type[:100]}")


def _jwt_bearer(state: EmulatorState, request: Request, form: dict[str, str], detail: dict[str, Any]) -> Response:
    assertion = form.get("assertion")
    if not assertion:
        return oauth_error("invalid_request", "Missing required parameter: assertion")
    try:
        parsed = compact.parse(assertion)
    except VerificationError:
        return oauth_error("invalid_grant", "Invalid JWT: the assertion is not a well-formed signed JWT.")
    claims = parsed.claims
    detail["assertion"] = {"header": parsed.header, "claims": claims}
    issuer = claims.get("iss")
    account = state.service_accounts.get(issuer) if isinstance(issuer, str) else None
    if account is None:
        return oauth_error("invalid_grant", "Invalid grant: account not found")
    kid = parsed.header.get("kid")
    candidates = [account.keys[kid]] if isinstance(kid, str) and kid in account.keys else []
    if kid is None:
        candidates = list(account.keys.values())
    if not any(_signed_by(parsed, key) for key in candidates):
        return oauth_error("invalid_grant", "Invalid JWT Signature.")
    if claims.get("aud") not in accepted_audiences(state, request):
        return oauth_error(
            "invalid_grant",
            f"Invalid JWT: Failed audience check. The right audience is {endpoints.TOKEN_URI}",
        )
    iat, exp = _number(claims.get("iat")), _number(claims.get("exp"))
    now = state.clock()
    if (
        iat is None
        or exp is None
        or exp - iat > MAX_ASSERTION_LIFETIME
        or exp < iat
        or exp < now - CLOCK_SKEW
        or iat > now + CLOCK_SKEW
    ):
        return oauth_error("invalid_grant", SHORT_LIVED)
    target_audience = claims.get("target_audience")
    if isinstance(target_audience, str) and target_audience:
        return JSONResponse({"id_token": state.service_account_id_token(account, target_audience)})
    scope = claims.get("scope")
    scopes = tuple(scope.split()) if isinstance(scope, str) else ()
    if not scopes or unknown_scopes(scopes):
        return token_scopes.token_refusal()
    subject = claims.get("sub")
    if subject is not None and subject != account.email:  # domain-wide delegation: a user's token
        return delegation.delegated_access_token(state, account, str(subject), scopes)
    grant = state.issue_access_token(account, scopes)
    return JSONResponse(
        {"access_token": grant.token, "expires_in": int(grant.expires_at - now), "token_type": "Bearer"}
    )


def _signed_by(parsed: compact.ParsedToken, key: jws.VerifyingKey) -> bool:
    try:
        parsed.verify_with(key)
    except VerificationError:
        return False
    return True
