"""Google's Security Token Service (``sts.googleapis.com``): the token exchange for workload and
workforce identity federation (OIDC tokens, AWS signed requests, X.509 certificates), and the
OAuth endpoints of workforce sign-in (refresh, introspect, revoke).

A provider maps ``google.subject`` (and simple ``attribute.NAME = assertion.FIELD`` mappings) and may
hold an attribute condition (see federation.conditions_hold). Federated principals are
``principal://iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/subject/SUB``
or, for people, ``principal://iam.googleapis.com/locations/global/workforcePools/P/subject/SUB``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from typing import Any
from urllib.parse import unquote, unquote_plus

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gcptoken.checks import unknown_scopes
from gcptoken.emulator.http.responses import GoogleJSONResponse as JSONResponse
from gcptoken.emulator.http.responses import form_of, log_detail, oauth_error
from gcptoken.emulator.oauth2 import token_scopes
from gcptoken.emulator.state.models import Provider
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.emulator.sts import aws, mtls
from gcptoken.emulator.sts.federation import conditions_hold, subject_claims

__all__ = ["routes"]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
OIDC_TYPES = ("urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token")
AWS_TYPE = "urn:ietf:params:aws:token-type:aws4_request"
MTLS_TYPE = "urn:ietf:params:oauth:token-type:mtls"
FEDERATED_LIFETIME = 3600
_WORKLOAD = re.compile(
    r"//iam\.googleapis\.com/projects/(\d+)/locations/global/workloadIdentityPools/([^/]+)/providers/([^/]+)"
)
_WORKFORCE = re.compile(r"//iam\.googleapis\.com/locations/global/workforcePools/([^/]+)/providers/([^/]+)")
INVALID_TARGET = (
    'The target service indicated by the "audience" parameters is invalid. This might either be because the '
    "pool or provider is disabled or deleted or because it doesn't exist."
)


def _provider(state: EmulatorState, audience: str) -> Provider | None:
    audience = audience.removeprefix("https:")
    if match := _WORKLOAD.fullmatch(audience):
        if match.group(1) != state.project_number:
            return None
        return state.providers.get((match.group(2), match.group(3)))
    if match := _WORKFORCE.fullmatch(audience):
        return state.providers.get((f"workforce:{match.group(1)}", match.group(2)))
    return None


def _values(claims: dict[str, Any], mapping: dict[str, str]) -> dict[str, str]:
    values = {f"assertion.{name}": str(value) for name, value in claims.items() if isinstance(value, str | int)}
    for target, source in mapping.items():
        if source in values:
            values[target if target.startswith(("google.", "attribute.")) else f"attribute.{target}"] = values[source]
    return values


def _oidc_claims(state: EmulatorState, provider: Provider, token: str) -> dict[str, Any] | str:
    claims = subject_claims(state, provider, token)
    if isinstance(claims, str):
        return claims
    accepted = provider.allowed_audiences or [f"https:{provider.resource(state.project_number)}"]
    if provider.workforce:
        accepted = provider.allowed_audiences or [state.workforce_client[0]]
    token_audience = claims.get("aud")
    audiences = token_audience if isinstance(token_audience, list) else [token_audience]
    if not any(a in accepted for a in audiences):
        return f"The audience in ID Token {str(token_audience)[:200]} does not match the expected audience."
    return claims


def _options(form: dict[str, str]) -> dict[str, Any] | None:
    """``options``: URL-quoted JSON (google-auth quotes it before the form encodes it again)."""
    raw = form.get("options")
    if not raw:
        return {}
    try:
        value = json.loads(unquote(raw))
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _client(request: Request, state: EmulatorState) -> str | None:
    """The client id of valid HTTP Basic client authentication; "" when none was sent."""
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return ""
    try:
        client_id, _, secret = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    expected_id, expected_secret = state.workforce_client
    # As sent (google-auth) or form-encoded first (RFC 6749 2.3.1): both mean the same client.
    for given_id, given_secret in ((client_id, secret), (unquote_plus(client_id), unquote_plus(secret))):
        if given_id == expected_id and secrets.compare_digest(given_secret.encode(), expected_secret.encode()):
            return expected_id
    return None


async def token_exchange(request: Request) -> Response:
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
    options = _options(form)
    if options is None:
        return oauth_error("invalid_request", "The options parameter must be URL-encoded JSON.")
    client = _client(request, state)
    if client is None:
        return oauth_error("invalid_client", "The OAuth client was not found or its secret is wrong.", 401)
    provider = _provider(state, form["audience"])
    if provider is None:
        return oauth_error("invalid_target", INVALID_TARGET)
    invalid = unknown_scopes(form.get("scope", "").split())
    if invalid:
        return token_scopes.sts_refusal(invalid)
    user_project = options.get("userProject")
    if user_project is not None:
        if not provider.workforce:
            return oauth_error("invalid_request", "userProject is only accepted for workforce pools.")
        if user_project not in (state.project_id, state.project_number):
            return oauth_error("invalid_request", f"The user project {str(user_project)[:64]} is not valid.")
    kind = form["subject_token_type"]
    if kind in OIDC_TYPES and provider.kind == "oidc":
        claims: dict[str, Any] | str = _oidc_claims(state, provider, form["subject_token"])
    elif kind == AWS_TYPE and provider.kind == "aws":
        claims = aws.verify_subject_token(state, provider, form["subject_token"], form["audience"])
    elif kind == MTLS_TYPE and provider.kind == "x509":
        claims = mtls.verify_subject_token(provider, form["subject_token"], request.scope, state.clock())
    else:
        return oauth_error("invalid_request", f"Invalid subject_token_type for a {provider.kind} provider.")
    if isinstance(claims, str):
        return oauth_error("invalid_grant", claims)
    values = _values(claims, provider.attribute_mapping)
    if provider.kind == "aws" and "attribute.aws_role" not in values:
        values["attribute.aws_role"] = aws.aws_role_of(values.get("assertion.arn", ""))
    subject = values.get("google.subject")
    if not subject:
        return oauth_error("invalid_grant", "The mapped attribute google.subject must not be empty.")
    if not conditions_hold(provider.attribute_condition, values):
        return oauth_error("unauthorized_client", "The given credential is rejected by the attribute condition.")
    pool = provider.pool(state.project_number)
    attributes = tuple(sorted((k, v) for k, v in values.items() if k.startswith("attribute.")))
    grant = state.issue_federated_token(f"{pool}/subject/{subject}", attributes, FEDERATED_LIFETIME)
    detail = {"grant_type": TOKEN_EXCHANGE, "principal": grant.principal, "source": kind}
    log_detail(request).update({**detail, **({"userProject": user_project} if user_project else {})})
    return JSONResponse(
        {
            "access_token": grant.token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": FEDERATED_LIFETIME,
        }
    )


async def oauth_token(request: Request) -> Response:
    """``/v1/oauth/token``: a workforce user's refresh token for an access token (Basic client auth)."""
    state: EmulatorState = request.app.state.emulator
    form = await form_of(request)
    if form is None:
        return oauth_error("invalid_request", "Request body is not a readable form.")
    if form.get("grant_type") != "refresh_token":
        return oauth_error("unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')[:80]}")
    if not _client(request, state):
        return oauth_error("invalid_client", "The OAuth client was not found or its secret is wrong.", 401)
    with state.lock:
        grant = state.workforce_refresh.get(form.get("refresh_token", ""))
        if grant is None:
            return oauth_error("invalid_grant", "The refresh token is invalid, expired or revoked.")
        answer: dict[str, Any] = {}
        if grant.rotate:
            del state.workforce_refresh[form["refresh_token"]]
            answer["refresh_token"] = state.add_workforce_refresh_token(grant)
    access = state.issue_federated_token(grant.principal, grant.attributes, FEDERATED_LIFETIME)
    log_detail(request).update({"grant_type": "refresh_token", "principal": access.principal})
    return JSONResponse(
        {"access_token": access.token, "token_type": "Bearer", "expires_in": FEDERATED_LIFETIME, **answer}
    )


async def _token_form(request: Request, state: EmulatorState) -> dict[str, str] | Response:
    """The form of an introspect or revoke call (``token=…``) from the workforce client, or the error."""
    form = await form_of(request)
    if form is None or not form.get("token"):
        return oauth_error("invalid_request", "Missing required parameter: token")
    if not _client(request, state):
        return oauth_error("invalid_client", "The OAuth client was not found or its secret is wrong.", 401)
    return form


async def introspect(request: Request) -> Response:
    """``/v1/introspect`` (RFC 7662): whether a token STS issued is active, for the client that asks."""
    state: EmulatorState = request.app.state.emulator
    form = await _token_form(request, state)
    if isinstance(form, Response):
        return form
    token = form["token"]
    with state.lock:
        refresh = state.workforce_refresh.get(token)
        access = state.access_tokens.get(token)
    if refresh is not None:
        return JSONResponse({"active": True, "client_id": state.workforce_client[0], "sub": refresh.principal})
    if access is not None and access.kind == "principal" and access.expires_at > state.clock():
        return JSONResponse(
            {
                "active": True,
                "client_id": state.workforce_client[0],
                "sub": access.email,
                "scope": " ".join(access.scopes),
                "exp": int(access.expires_at),
            }
        )
    return JSONResponse({"active": False})


async def revoke(request: Request) -> Response:
    """``/v1/revoke`` (RFC 7009): the refresh token stops working; unknown tokens are no error."""
    state: EmulatorState = request.app.state.emulator
    form = await _token_form(request, state)
    if isinstance(form, Response):
        return form
    with state.lock:
        state.workforce_refresh.pop(form["token"], None)
        state.access_tokens.pop(form["token"], None)
    log_detail(request).update({"revoked": True})
    return JSONResponse({})


routes = [
    Route("/v1/token", token_exchange, methods=["POST"]),
    Route("/v1/oauth/token", oauth_token, methods=["POST"]),
    Route("/v1/introspect", introspect, methods=["POST"]),
    Route("/v1/revoke", revoke, methods=["POST"]),
]
