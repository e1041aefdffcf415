"""IAM Credentials (``iamcredentials.googleapis.com``): tokens and signatures for a service account,
to a caller who may act as it.

Callers authenticate with an access token the emulator issued (``Authorization: Bearer``), traced
to its principal. Acting as a service account needs ``roles/iam.serviceAccountTokenCreator`` on it;
with delegates, every hop of the chain caller → delegates… → target is checked in turn.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gcptoken.checks import unknown_scopes
from gcptoken.emulator.http.responses import GoogleJSONResponse as JSONResponse
from gcptoken.emulator.http.responses import api_error, json_body, log_detail, not_emulated
from gcptoken.emulator.oauth2 import token_scopes
from gcptoken.emulator.state.models import ServiceAccount
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.errors import VerificationError
from gcptoken.jose import compact, jws

__all__ = ["routes"]

DEFAULT_LIFETIME = 3600
MAX_LIFETIME = 43200
PERMISSIONS = {
    "generateIdToken": "iam.serviceAccounts.getOpenIdToken",
    "generateAccessToken": "iam.serviceAccounts.getAccessToken",
    "signJwt": "iam.serviceAccounts.signJwt",
    "signBlob": "iam.serviceAccounts.signBlob",
}
UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential."
)
_LIFETIME = re.compile(r"(\d+)(?:\.\d+)?s")
# The request fields each method's protobuf has (JSON names; snake_case spellings are accepted too,
# as protobuf JSON does). Anything else is refused as Google refuses it.
FIELDS = {
    "generateIdToken": ("name", "delegates", "audience", "includeEmail", "useEmailAzp"),
    "generateAccessToken": ("name", "delegates", "scope", "lifetime"),
    "signJwt": ("name", "delegates", "payload"),
    "signBlob": ("name", "delegates", "payload"),
}
_BOOLEANS = ("includeEmail", "useEmailAzp")
SELF_SIGNED_SCOPES = ("https://www.googleapis.com/auth/cloud-platform", "https://www.googleapis.com/auth/iam")
SELF_SIGNED = "gcptoken:self-signed-jwt"  # a marker among the caller's members, never a real member
_DELEGATE = re.compile(r"projects/-/serviceAccounts/(.+)")


def _denied(method: str) -> Response:
    return api_error(403, f"Permission '{PERMISSIONS[method]}' denied on resource (or it may not exist).")


def _caller(state: EmulatorState, request: Request) -> tuple[str, ...] | None:
    """The IAM members the bearer token's principal matches, or None without a valid one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    grant = state.access_tokens.get(token.strip())
    if grant is None:
        return _self_signed_caller(state, token.strip())
    if grant.expires_at <= state.clock():
        return None
    return grant.members()


def _self_signed_caller(state: EmulatorState, token: str) -> tuple[str, ...] | None:
    """A service account's self-signed JWT (``iss`` = ``sub`` = its email, signed by one of its keys,
    a cloud-platform or iam ``scope``): how keys outside googleapis.com authenticate (AIP-4111)."""
    try:
        parsed = compact.parse(token)
    except VerificationError:
        return None
    claims = parsed.claims
    account = state.service_accounts.get(str(claims.get("iss")))
    key = account.keys.get(str(parsed.header.get("kid"))) if account is not None else None
    if account is None or key is None or claims.get("sub") != account.email:
        return None
    try:
        parsed.verify_with(key)
    except VerificationError:
        return None
    exp, iat, scope = claims.get("exp"), claims.get("iat"), claims.get("scope")
    now = state.clock()
    if not (isinstance(exp, int) and isinstance(iat, int) and iat - 300 <= now < exp and exp - iat <= 3600):
        return None
    if not isinstance(scope, str) or not set(scope.split()) & set(SELF_SIGNED_SCOPES):
        return None
    return (f"serviceAccount:{account.email}", SELF_SIGNED)


def _snake(name: str) -> str:
    return re.sub(r"[A-Z]", lambda match: "_" + match.group(0).lower(), name)


def _protobuf_fields(method: str, body: dict[str, Any]) -> dict[str, Any] | Response:
    """``body`` with JSON names and real booleans, or Google's 400 for an unknown field or a value
    that is not a boolean (protobuf JSON takes ``true`` and ``"true"`` alike)."""
    known = {name: name for name in FIELDS[method]} | {_snake(name): name for name in FIELDS[method]}
    fields: dict[str, Any] = {}
    for given, value in body.items():
        name = known.get(given)
        if name is None:
            return api_error(400, f'Invalid JSON payload received. Unknown name "{given[:100]}": Cannot find field.')
        if name in _BOOLEANS:
            if value in ("true", "false"):
                value = value == "true"
            elif not isinstance(value, bool):
                shown = json.dumps(value)[:40]
                return api_error(400, f"Invalid value at '{_snake(name)}' (TYPE_BOOL), {shown}")
        fields[name] = value
    return fields


def _delegate_emails(delegates: list[Any]) -> list[str] | None:
    """Emails from ``projects/-/serviceAccounts/EMAIL`` names; None if any is not one."""
    emails = []
    for delegate in delegates:
        match = _DELEGATE.fullmatch(delegate) if isinstance(delegate, str) else None
        if match is None:
            return None
        emails.append(match.group(1))
    return emails


def _chain(state: EmulatorState, caller: tuple[str, ...], emails: list[str], target: str) -> bool:
    """Every hop may act as the next: caller → delegates[0] → … → target. A key's self-signed JWT
    may ask for its own account's tokens (what google-auth does outside googleapis.com)."""
    if SELF_SIGNED in caller and not emails and caller[0] == f"serviceAccount:{target}":
        return True
    actors = caller
    for email in [*emails, target]:
        if email not in state.service_accounts or not any(state.may_act_as(a, email) for a in actors):
            return False
        actors = (f"serviceAccount:{email}",)
    return True


async def iam_call(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    name, _, method = request.path_params["target"].rpartition(":")
    if method not in PERMISSIONS:
        return not_emulated(request, f"Method {method!r} not found.")
    caller = _caller(state, request)
    if caller is None:
        return api_error(401, UNAUTHENTICATED)
    try:
        body = await json_body(request, empty={})
    except ValueError:
        return api_error(400, "Invalid JSON payload received.")
    if not isinstance(body, dict):
        return api_error(400, "Invalid JSON payload received.")
    body = _protobuf_fields(method, body)
    if isinstance(body, Response):
        return body
    delegates = body.get("delegates") or []
    if not isinstance(delegates, list):
        return api_error(400, "Invalid value at 'delegates'.")
    log_detail(request).update({"iam": method, "caller": caller[0], "target": name, "delegates": delegates})
    emails = _delegate_emails(delegates)
    if emails is None:
        return api_error(400, "Invalid delegates: each must be projects/-/serviceAccounts/EMAIL.")
    account = state.service_accounts.get(name)
    if account is None or not _chain(state, caller, emails, name):
        return _denied(method)
    handler = {
        "generateIdToken": _generate_id_token,
        "generateAccessToken": _generate_access_token,
        "signJwt": _sign_jwt,
        "signBlob": _sign_blob,
    }[method]
    return handler(state, account, body)


def _generate_id_token(state: EmulatorState, account: ServiceAccount, body: dict[str, Any]) -> Response:
    audience = body.get("audience")
    if not isinstance(audience, str) or not audience:
        return api_error(400, "Invalid value for audience: must not be empty.")
    claims = state.identity_claims(account, audience)
    if body.get("includeEmail") is True:
        claims.update({"email": account.email, "email_verified": True})
    if body.get("useEmailAzp") is True:  # Node's and Java's clients ask for it: azp as in the key flow
        claims["azp"] = account.email
    return JSONResponse({"token": state.sign_id_token(dict(sorted(claims.items())))})


def _generate_access_token(state: EmulatorState, account: ServiceAccount, body: dict[str, Any]) -> Response:
    scopes = body.get("scope")
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) and s for s in scopes):
        return api_error(400, "Invalid value for scope: must name at least one scope.")
    if unknown_scopes(scopes):
        return token_scopes.iam_refusal()
    lifetime_text = body.get("lifetime", f"{DEFAULT_LIFETIME}s")
    match = _LIFETIME.fullmatch(lifetime_text) if isinstance(lifetime_text, str) else None
    if match is None:
        return api_error(400, f"Invalid value for lifetime: {str(lifetime_text)[:40]!r}; expected e.g. '3600s'.")
    lifetime = int(match.group(1))
    if lifetime < 1 or lifetime > MAX_LIFETIME:
        return api_error(400, f"Lifetime must be between 1s and {MAX_LIFETIME}s.")
    if lifetime > DEFAULT_LIFETIME and account.email not in state.lifetime_extension:
        return api_error(
            400,
            f"Lifetime of {lifetime}s exceeds {DEFAULT_LIFETIME}s; longer lifetimes need the organization policy "
            "constraints/iam.allowServiceAccountCredentialLifetimeExtension for this service account.",
        )
    grant = state.issue_access_token(account, tuple(scopes), lifetime)
    expire = datetime.fromtimestamp(grant.expires_at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return JSONResponse({"accessToken": grant.token, "expireTime": expire})


def _sign_jwt(state: EmulatorState, account: ServiceAccount, body: dict[str, Any]) -> Response:
    payload = body.get("payload")
    try:
        claims = json.loads(payload) if isinstance(payload, str) else None
    except (ValueError, RecursionError):
        claims = None
    if not isinstance(claims, dict):
        return api_error(400, "Invalid value for payload: must be a JSON object.")
    # "If the JWT Claims Set does not contain an expiration time (exp) claim, this claim is added
    # automatically, with a timestamp that is 1 hour in the future" (SignJwtRequest.payload,
    # https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/signJwt).
    # "If the JWT Claims Set contains an expiration time (exp) claim, it must be an integer timestamp
    # that is not in the past and no more than 12 hours in the future" (same page). Google's words
    # for a refusal are not published: its generic INVALID_ARGUMENT text.
    now = state.clock()
    exp = claims.setdefault("exp", int(now) + 3600)
    if isinstance(exp, bool) or not isinstance(exp, int) or not now - 1 <= exp <= now + MAX_LIFETIME:
        return api_error(400, "Request contains an invalid argument.")
    kid, key = state.system_key(account.email)
    return JSONResponse({"keyId": kid, "signedJwt": jws.encode(claims, key, kid=kid)})


def _sign_blob(state: EmulatorState, account: ServiceAccount, body: dict[str, Any]) -> Response:
    # proto3 JSON: a bytes field is base64, standard or URL-safe, padded or not, and an absent
    # field is its default, the empty bytes (https://protobuf.dev/programming-guides/json/).
    payload = body.get("payload", "")
    try:
        blob = _proto_bytes(payload) if isinstance(payload, str) else None
    except (binascii.Error, ValueError):
        blob = None
    if blob is None:
        return api_error(400, "Invalid value for payload: must be base64.")
    kid, key = state.system_key(account.email)
    return JSONResponse({"keyId": kid, "signedBlob": base64.b64encode(key.sign(blob)).decode("ascii")})


def _proto_bytes(text: str) -> bytes:
    """A proto3 JSON bytes value: standard or URL-safe base64, with or without padding."""
    if "-" in text or "_" in text:
        text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


routes = [Route("/v1/projects/{project}/serviceAccounts/{target}", iam_call, methods=["POST"])]
