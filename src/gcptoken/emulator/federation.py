"""Workload identity federation: an OIDC issuer to stand in for the outside IdP, pools and
providers that trust it, and STS (``sts.googleapis.com/v1/token``) exchanging its tokens for
federated access tokens.

A provider maps ``google.subject = assertion.sub`` (and simple ``attribute.NAME = assertion.CLAIM``
mappings) and may hold an attribute condition of the form ``A == 'v' && B != 'w'`` over
``assertion.*`` / ``attribute.*``. Federated principals are
``principal://iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/subject/SUB``
and ``principalSet://…/workloadIdentityPools/P/*`` or ``…/attribute.NAME/VALUE``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gcptoken.emulator.responses import GoogleJSONResponse as JSONResponse
from gcptoken.emulator.responses import api_error, form_of, json_body, log_detail, oauth_error
from gcptoken.emulator.state import EmulatorState, Provider
from gcptoken.errors import CredentialsError, VerificationError
from gcptoken.jose import jws
from gcptoken.verify import certs

__all__ = ["Provider", "conditions_hold", "routes"]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SUBJECT_TOKEN_TYPES = ("urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token")
FEDERATED_LIFETIME = 3600
_AUDIENCE = re.compile(
    r"//iam\.googleapis\.com/projects/(\d+)/locations/global/workloadIdentityPools/([^/]+)/providers/([^/]+)"
)
_CLAUSE = re.compile(r"\s*((?:assertion|attribute)\.[A-Za-z0-9_]+)\s*(==|!=)\s*'([^']*)'\s*")
INVALID_TARGET = (
    'The target service indicated by the "audience" parameters is invalid. This might either be because the '
    "pool or provider is disabled or deleted or because it doesn't exist."
)


def conditions_hold(condition: str, values: dict[str, str]) -> bool:
    """``A == 'v' && B != 'w'``: the small CEL subset the emulator understands. Unknown names are ''."""
    if not condition.strip():
        return True
    for clause in condition.split("&&"):
        match = _CLAUSE.fullmatch(clause)
        if match is None:
            return False  # an expression the emulator cannot evaluate never grants access
        name, operator, expected = match.groups()
        actual = values.get(name, "")
        if (actual == expected) != (operator == "=="):
            return False
    return True


def _values(claims: dict[str, Any], mapping: dict[str, str]) -> dict[str, str]:
    values = {f"assertion.{name}": str(value) for name, value in claims.items() if isinstance(value, str | int)}
    for target, source in mapping.items():
        if source in values:
            values[target if target.startswith(("google.", "attribute.")) else f"attribute.{target}"] = values[source]
    return values


# -- the OIDC issuer ------------------------------------------------------------------------------


def issuer_url(state: EmulatorState) -> str:
    return f"{state.base_url}/oidc"


async def discovery(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    issuer = issuer_url(state)
    return JSONResponse(
        {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/jwks",
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
        }
    )


async def jwks(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    key = state.oidc_key
    return JSONResponse({"keys": [key.key.public.to_jwk(key.kid)]}, headers={"Cache-Control": "public, max-age=300"})


async def mint(request: Request) -> Response:
    """Admin: ``{"claims": {...}, "lifetime": 3600}`` → a token from the emulator's OIDC issuer."""
    state: EmulatorState = request.app.state.emulator
    try:
        body = await json_body(request)
    except ValueError:
        body = None
    claims = body.get("claims") if isinstance(body, dict) else None
    if not isinstance(claims, dict):
        return api_error(400, "claims must be a JSON object.")
    lifetime = body.get("lifetime", 3600)
    if not isinstance(lifetime, int):
        return api_error(400, "lifetime must be whole seconds.")
    now = int(state.clock())
    full = {"iss": issuer_url(state), "iat": now, "exp": now + lifetime, **claims}
    key = state.oidc_key
    return JSONResponse({"token": jws.encode(full, key.key, kid=key.kid)})


# -- pools and providers --------------------------------------------------------------------------


async def create_provider(request: Request) -> Response:
    """Admin: ``{"poolId", "providerId", "issuerUri"?, "jwksJson"?, "allowedAudiences"?,
    "attributeMapping"?, "attributeCondition"?}``; the issuer defaults to the emulator's own, and
    an outside issuer's keys come as ``jwksJson`` (as Google's OIDC providers take them)."""
    state: EmulatorState = request.app.state.emulator
    try:
        body = await json_body(request)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return api_error(400, "Request body must be a JSON object.")
    ids = body.get("poolId"), body.get("providerId")
    if not all(isinstance(i, str) and re.fullmatch(r"[a-z0-9-]{4,32}", i) for i in ids):
        return api_error(400, "poolId and providerId must be 4-32 lowercase letters, digits or hyphens.")
    mapping = body.get("attributeMapping", {"google.subject": "assertion.sub"})
    condition = body.get("attributeCondition", "")
    audiences = body.get("allowedAudiences", [])
    if not isinstance(mapping, dict) or not isinstance(condition, str) or not isinstance(audiences, list):
        return api_error(
            400, "attributeMapping must be an object, attributeCondition a string, allowedAudiences a list."
        )
    jwks_text = body.get("jwksJson", "")
    try:
        if not isinstance(jwks_text, str):
            raise TypeError("jwksJson is not a string")
        jwks = json.loads(jwks_text) if jwks_text else {}
        if jwks:
            certs.keys_from_document(jwks, "jwksJson")
    except (ValueError, TypeError, RecursionError, CredentialsError):
        return api_error(400, "jwksJson must be a JSON Web Key Set (as a string) with RS256 or ES256 keys.")
    if jwks and not body.get("issuerUri"):
        return api_error(400, "issuerUri is required with jwksJson.")
    provider = Provider(
        str(ids[0]),
        str(ids[1]),
        str(body.get("issuerUri") or issuer_url(state)),
        [str(a) for a in audiences],
        {str(k): str(v) for k, v in mapping.items()},
        condition,
        jwks,
    )
    with state.lock:
        state.providers[(provider.pool_id, provider.provider_id)] = provider
    state.changed()
    return JSONResponse(provider.to_json(state.project_number), status_code=201)


# -- STS ------------------------------------------------------------------------------------------


def _subject_claims(state: EmulatorState, provider: Provider, token: str) -> dict[str, Any] | str:
    """The subject token's claims, or the reason it is refused."""
    try:
        parsed = jws.parse(token)
    except VerificationError:
        return "Invalid subject token: not a signed JWT."
    if provider.jwks:
        keys = certs.keys_from_document(provider.jwks, "jwksJson")
    elif provider.issuer == issuer_url(state):
        keys = {state.oidc_key.kid: state.oidc_key.key.public}
    else:
        return f"The issuer {provider.issuer} is not reachable from the emulator; give the provider jwksJson."
    key = keys.get(str(parsed.header.get("kid")))
    if key is None:
        return "Invalid subject token signature: unknown key id."
    try:
        parsed.verify_with(key)
    except VerificationError:
        return "Invalid subject token signature."
    claims = parsed.claims
    if claims.get("iss") != provider.issuer:
        return f"The issuer in ID Token {str(claims.get('iss'))[:100]} does not match the expected ones."
    exp: Any = claims.get("exp")
    if type(exp) not in (int, float) or exp < state.clock():
        return "ID Token has expired or has no valid exp."
    return claims


async def sts_token(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    form = await form_of(request)
    if form is None:
        return oauth_error("invalid_request", "Request body is not a readable form.")
    if form.get("grant_type") != TOKEN_EXCHANGE:
        return oauth_error("unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')[:80]}")
    for name in ("audience", "subject_token", "subject_token_type", "requested_token_type"):
        if not form.get(name):
            return oauth_error("invalid_request", f"Missing required parameter: {name}")
    if form["requested_token_type"] != ACCESS_TOKEN_TYPE:
        return oauth_error("invalid_request", "Invalid requested_token_type.")
    if form["subject_token_type"] not in SUBJECT_TOKEN_TYPES:
        return oauth_error("invalid_request", "Invalid subject_token_type: this emulator accepts OIDC tokens only.")
    match = _AUDIENCE.fullmatch(form["audience"])
    provider = state.providers.get((match.group(2), match.group(3))) if match else None
    if provider is None or match is None or match.group(1) != state.project_number:
        return oauth_error("invalid_target", INVALID_TARGET)
    claims = _subject_claims(state, provider, form["subject_token"])
    if isinstance(claims, str):
        return oauth_error("invalid_grant", claims)
    accepted = provider.allowed_audiences or [f"https:{provider.resource(state.project_number)}"]
    token_audience = claims.get("aud")
    audiences = token_audience if isinstance(token_audience, list) else [token_audience]
    if not any(a in accepted for a in audiences):
        return oauth_error(
            "invalid_grant",
            f"The audience in ID Token {str(token_audience)[:200]} does not match the expected audience.",
        )
    values = _values(claims, provider.attribute_mapping)
    subject = values.get("google.subject")
    if not subject:
        return oauth_error("invalid_grant", "The mapped attribute google.subject must not be empty.")
    if not conditions_hold(provider.attribute_condition, values):
        return oauth_error("unauthorized_client", "The given credential is rejected by the attribute condition.")
    pool = provider.resource(state.project_number).split("/providers/", 1)[0]
    attributes = tuple(sorted((k, v) for k, v in values.items() if k.startswith("attribute.")))
    grant = state.issue_federated_token(f"{pool}/subject/{subject}", attributes, FEDERATED_LIFETIME)
    log_detail(request).update({"grant_type": TOKEN_EXCHANGE, "principal": grant.principal})
    return JSONResponse(
        {
            "access_token": grant.token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": FEDERATED_LIFETIME,
        }
    )


routes = [
    Route("/v1/token", sts_token, methods=["POST"]),
    Route("/oidc/.well-known/openid-configuration", discovery, methods=["GET"]),
    Route("/oidc/jwks", jwks, methods=["GET"]),
    Route("/emulator/v1/oidc/tokens", mint, methods=["POST"]),
    Route("/emulator/v1/workloadIdentityPools/providers", create_provider, methods=["POST"]),
]
