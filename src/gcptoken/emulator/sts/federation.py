"""Workload and workforce identity federation's admin side: an OIDC issuer to stand in for the
outside IdP, pools and providers (OIDC, AWS, X.509; workload or workforce) and workforce users.
STS itself, which exchanges their tokens, is in exchange.

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

from gcptoken.emulator.http.responses import GoogleJSONResponse as JSONResponse
from gcptoken.emulator.http.responses import api_error, json_body
from gcptoken.emulator.state.models import Provider, WorkforceGrant
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.errors import CredentialsError, VerificationError
from gcptoken.jose import compact, jws
from gcptoken.verify import certs

__all__ = ["conditions_hold", "routes"]

_CLAUSE = re.compile(r"\s*((?:assertion|attribute)\.[A-Za-z0-9_.]+)\s*(==|!=)\s*'([^']*)'\s*")


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


def subject_claims(state: EmulatorState, provider: Provider, token: str) -> dict[str, Any] | str:
    """The subject token's claims, or the reason it is refused."""
    try:
        parsed = compact.parse(token)
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


# -- pools and providers --------------------------------------------------------------------------


async def create_provider(request: Request) -> Response:
    """Admin: ``{"poolId", "providerId", "issuerUri"?, "jwksJson"?, "allowedAudiences"?,
    "attributeMapping"?, "attributeCondition"?}`` for OIDC (the issuer defaults to the emulator's
    own; an outside issuer's keys come as ``jwksJson``, as Google's OIDC providers take them);
    ``"aws": {"accountId"}`` (or ``"awsAccountId"``) for AWS; ``"x509": {"trustStore":
    {"trustAnchors": [{"pemCertificate"}], "intermediateCas": [...]}}`` for X.509 certificates."""
    return await _create(request, workforce=False)


async def create_workforce_provider(request: Request) -> Response:
    """Admin: the same for a workforce pool (people): ``//iam.googleapis.com/locations/global/
    workforcePools/P/providers/X``; OIDC providers only."""
    return await _create(request, workforce=True)


async def _object_body(request: Request) -> dict[str, Any] | None:
    """The admin request's JSON object, or None for anything else (unreadable JSON included)."""
    try:
        body = await json_body(request)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def _create(request: Request, workforce: bool) -> Response:
    state: EmulatorState = request.app.state.emulator
    body = await _object_body(request)
    if body is None:
        return api_error(400, "Request body must be a JSON object.")
    ids = body.get("poolId"), body.get("providerId")
    if not all(isinstance(i, str) and re.fullmatch(r"[a-z0-9-]{4,32}", i) for i in ids):
        return api_error(400, "poolId and providerId must be 4-32 lowercase letters, digits or hyphens.")
    aws, x509 = body.get("aws"), body.get("x509")
    if aws is None and "awsAccountId" in body:  # the flat spelling, as gcloud's --account-id reads
        aws = {"accountId": body["awsAccountId"]}
    if workforce and (aws is not None or x509 is not None):
        return api_error(400, "Workforce pool providers are OIDC (or SAML) providers.")
    account = aws.get("accountId") if isinstance(aws, dict) else None
    if aws is not None and not (isinstance(account, str) and re.fullmatch(r"\d{12}", account)):
        return api_error(400, "aws.accountId must be a 12-digit AWS account id.")
    store = _trust_store(x509) if x509 is not None else ([], [])
    if store is None:
        return api_error(400, "x509.trustStore.trustAnchors must list PEM certificates (pemCertificate).")
    default_subject = {"google.subject": "assertion.arn" if aws is not None else "assertion.sub"}
    if x509 is not None:
        default_subject = {"google.subject": "assertion.subject.dn.cn"}
    mapping = body.get("attributeMapping", default_subject)
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
        "" if aws is not None or x509 is not None else str(body.get("issuerUri") or issuer_url(state)),
        [str(a) for a in audiences],
        {str(k): str(v) for k, v in mapping.items()},
        condition,
        jwks,
        aws_account_id=account or "",
        trust_anchors=store[0],
        intermediate_cas=store[1],
        workforce=workforce,
    )
    with state.lock:
        state.providers[provider.key] = provider
        for pem in store[0]:
            for trust in state.trust_hooks:
                trust(pem)
    state.changed()
    return JSONResponse(provider.to_json(state.project_number), status_code=201)


def _trust_store(x509: Any) -> tuple[list[str], list[str]] | None:
    """An X.509 provider's trust store as Google takes it: PEM ``trustAnchors`` (at least one)
    and ``intermediateCas``."""
    store = x509.get("trustStore") if isinstance(x509, dict) else None
    if not isinstance(store, dict):
        return None
    groups: list[list[str]] = []
    for group in ("trustAnchors", "intermediateCas"):
        entries = store.get(group, [])
        if not isinstance(entries, list):
            return None
        pems = [entry.get("pemCertificate") if isinstance(entry, dict) else None for entry in entries]
        if not all(isinstance(pem, str) and "BEGIN CERTIFICATE" in pem for pem in pems):
            return None
        groups.append([str(pem) for pem in pems])
    return (groups[0], groups[1]) if groups[0] else None


async def create_workforce_user(request: Request) -> Response:
    """Admin: ``{"poolId", "providerId", "subject", "rotate"?}`` → an ``external_account_authorized_user``
    file for that person, as ``gcloud auth login --login-config`` leaves one (``rotate``: every refresh
    returns a new refresh token and retires the old one)."""
    state: EmulatorState = request.app.state.emulator
    body = await _object_body(request)
    if body is None:
        return api_error(400, "Request body must be a JSON object.")
    provider = state.providers.get((f"workforce:{body.get('poolId')}", str(body.get("providerId"))))
    subject, rotate = body.get("subject"), body.get("rotate", False)
    if provider is None:
        return api_error(404, "No such workforce pool provider; create it first.")
    if not isinstance(subject, str) or not re.fullmatch(r"[^\s/]{1,127}", subject) or not isinstance(rotate, bool):
        return api_error(400, "subject must be a non-empty name without spaces or slashes; rotate a boolean.")
    principal = f"{provider.pool(state.project_number)}/subject/{subject}"
    with state.lock:
        token = state.add_workforce_refresh_token(WorkforceGrant(principal, (), rotate))
    return JSONResponse(state.workforce_user_file(provider, token), status_code=201)


async def list_providers(request: Request) -> Response:
    """Admin: every workload and workforce pool provider."""
    state: EmulatorState = request.app.state.emulator
    with state.lock:
        shown = [{**p.to_json(state.project_number), "workforce": p.workforce} for p in state.providers.values()]
    return JSONResponse({"providers": shown})


routes = [
    Route("/emulator/v1/providers", list_providers, methods=["GET"]),
    Route("/oidc/.well-known/openid-configuration", discovery, methods=["GET"]),
    Route("/oidc/jwks", jwks, methods=["GET"]),
    Route("/emulator/v1/oidc/tokens", mint, methods=["POST"]),
    Route("/emulator/v1/workloadIdentityPools/providers", create_provider, methods=["POST"]),
    Route("/emulator/v1/workforcePools/providers", create_workforce_provider, methods=["POST"]),
    Route("/emulator/v1/workforcePools/users", create_workforce_user, methods=["POST"]),
]
