"""Firebase Authentication's side: securetoken's signing key (published with every account's keys,
account_keys), and an admin call that mints a user's Firebase ID token (as the client SDKs get
after sign-in)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gcptoken.emulator.http.responses import GoogleJSONResponse as JSONResponse
from gcptoken.emulator.http.responses import api_error, json_object
from gcptoken.emulator.keys.key_certificates import common_name
from gcptoken.emulator.state.models import IssuerKey
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.jose import jws
from gcptoken.verify.presets import firebase_issuer

__all__ = ["SECURETOKEN", "id_token", "routes"]

SECURETOKEN = "securetoken@system.gserviceaccount.com"
ID_TOKEN_LIFETIME = 3600
# Claims Firebase sets itself; custom claims may not replace them.
_RESERVED = frozenset(
    {"aud", "auth_time", "email", "email_verified", "exp", "firebase", "iat", "iss", "sub", "user_id"}
)


def firebase_key(state: EmulatorState) -> IssuerKey:
    return state.side_key("firebase", lambda: IssuerKey.create(common_name=common_name(SECURETOKEN)))


def id_token(
    state: EmulatorState,
    uid: str,
    *,
    project_id: str | None = None,
    email: str | None = None,
    email_verified: bool = True,
    sign_in_provider: str | None = None,
    custom_claims: dict[str, Any] | None = None,
    auth_time: int | None = None,
    lifetime: int = ID_TOKEN_LIFETIME,
) -> str:
    project = project_id or state.project_id
    now = int(state.clock())
    provider = sign_in_provider or ("password" if email else "custom")
    identities: dict[str, list[str]] = {"email": [email]} if email else {}
    claims: dict[str, Any] = {
        **(custom_claims or {}),
        "iss": firebase_issuer(project),
        "aud": project,
        "auth_time": now if auth_time is None else auth_time,
        "user_id": uid,
        "sub": uid,
        "iat": now,
        "exp": now + lifetime,
    }
    if email:
        claims["email"] = email
        claims["email_verified"] = email_verified
    claims["firebase"] = {"identities": identities, "sign_in_provider": provider}
    key = firebase_key(state)
    return jws.encode(claims, key.key, kid=key.kid)


async def mint(request: Request) -> Response:
    """Admin: ``{"uid", "projectId"?, "email"?, "emailVerified"?, "signInProvider"?, "claims"?,
    "authTime"?, "lifetime"?}`` → ``{"idToken"}``."""
    state: EmulatorState = request.app.state.emulator
    body = await json_object(request)
    if body is None:
        return api_error(400, "Request body must be a JSON object.")
    uid = body.get("uid")
    if not isinstance(uid, str) or not 0 < len(uid) <= 128:
        return api_error(400, "uid must be a string of 1 to 128 characters.")
    strings = {name: body.get(name) for name in ("projectId", "email", "signInProvider")}
    if any(value is not None and not (isinstance(value, str) and value) for value in strings.values()):
        return api_error(400, "projectId, email and signInProvider must be non-empty strings.")
    claims = body.get("claims") or {}
    if not isinstance(claims, dict) or _RESERVED & claims.keys():
        return api_error(400, f"claims must be an object without the reserved claims {sorted(_RESERVED)}.")
    verified = body.get("emailVerified", True)
    auth_time = body.get("authTime")
    lifetime = body.get("lifetime", ID_TOKEN_LIFETIME)
    if not isinstance(verified, bool) or (auth_time is not None and type(auth_time) is not int):
        return api_error(400, "emailVerified must be a boolean and authTime whole seconds.")
    if type(lifetime) is not int or not 0 < lifetime <= ID_TOKEN_LIFETIME:
        return api_error(400, f"lifetime must be whole seconds, 1 to {ID_TOKEN_LIFETIME}.")
    token = id_token(
        state,
        uid,
        project_id=strings["projectId"],
        email=strings["email"],
        email_verified=verified,
        sign_in_provider=strings["signInProvider"],
        custom_claims=claims,
        auth_time=auth_time,
        lifetime=lifetime,
    )
    return JSONResponse({"idToken": token})


routes = [Route("/emulator/v1/firebase/tokens", mint, methods=["POST"])]
