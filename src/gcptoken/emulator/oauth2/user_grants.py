"""The token endpoint's grants for people: ``authorization_code`` (PKCE verified, codes single-use),
the device code grant with its polling errors, the refresh grant (with ``audience`` for an IAP
client of the same project, and reauthentication when a user must), and ``/revoke``."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.responses import Response

from gcptoken.checks import unknown_scopes
from gcptoken.emulator.http.responses import GoogleJSONResponse as JSONResponse
from gcptoken.emulator.http.responses import form_of, log_detail, oauth_error
from gcptoken.emulator.oauth2 import token_scopes
from gcptoken.emulator.oauth2.signin_state import OAuthClient
from gcptoken.emulator.state.models import ID_TOKEN_LIFETIME, ISSUER, RefreshGrant, User
from gcptoken.emulator.state.state import EmulatorState

__all__ = ["DEVICE_GRANT", "authorization_code", "client_of", "device_code", "refresh", "revoke"]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SAME_PROJECT = "The audience client and the client need to be in the same project."


def client_of(state: EmulatorState, client_id: str) -> OAuthClient | None:
    """A registered OAuth client; the emulator's own desktop client (gcloud's stand-in) included."""
    own_id, own_secret = state.oauth_client
    if client_id == own_id:
        return OAuthClient(own_id, own_secret, "desktop", state.project_number, "gcloud (emulated)")
    return state.signin.clients.get(client_id)


def basic_credentials(authorization: str) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` of HTTP Basic client authentication (RFC 6749 2.3.1), or None."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, colon, secret = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (unquote_plus(client_id), unquote_plus(secret)) if colon else None


def _authenticated(state: EmulatorState, form: dict[str, str], authorization: str = "") -> OAuthClient | Response:
    """The client, authenticated by form fields or HTTP Basic (requests-oauthlib's default), or
    Google's error."""
    basic = basic_credentials(authorization)
    if basic is not None:
        form = {**form, "client_id": basic[0], "client_secret": basic[1]}
    for name in ("client_id", "client_secret"):
        if not form.get(name):
            return oauth_error("invalid_request", f"Missing required parameter: {name}")
    client = client_of(state, form["client_id"])
    if client is None:
        return oauth_error("invalid_client", "The OAuth client was not found.", status=401)
    if not secrets.compare_digest(form["client_secret"].encode(), client.client_secret.encode()):
        return oauth_error("invalid_client", "Unauthorized", status=401)
    return client


def _tokens(state: EmulatorState, user: User, client_id: str, scopes: tuple[str, ...], audience: str) -> dict[str, Any]:
    access = state.issue_user_access_token(user, scopes)
    now = int(state.clock())
    id_token = state.sign_id_token(
        {
            "aud": audience,
            "azp": client_id,
            "email": user.email,
            "email_verified": True,
            "exp": now + ID_TOKEN_LIFETIME,
            "iat": now,
            "iss": ISSUER,
            "sub": user.sub,
        }
    )
    return {
        "access_token": access.token,
        "expires_in": int(access.expires_at - now),
        "scope": " ".join(scopes),
        "token_type": "Bearer",
        "id_token": id_token,
    }


def _signed_in(
    state: EmulatorState, client_id: str, email: str, scopes: tuple[str, ...], detail: dict[str, Any]
) -> Response:
    """A person's first tokens from a code: access, ID (for the client) and a new refresh token."""
    user = state.create_user(email)
    detail.update({"user": user.email, "client_id": client_id})
    answer = _tokens(state, user, client_id, scopes, client_id)
    token = "1//0" + secrets.token_urlsafe(64)
    with state.lock:
        state.refresh_tokens[token] = RefreshGrant(user.email, client_id, scopes)
    state.changed()
    return JSONResponse({**answer, "refresh_token": token})


def authorization_code(
    state: EmulatorState, form: dict[str, str], detail: dict[str, Any], authorization: str = ""
) -> Response:
    client = _authenticated(state, form, authorization)
    if isinstance(client, Response):
        return client
    for name in ("code", "redirect_uri"):
        if not form.get(name):
            return oauth_error("invalid_request", f"Missing required parameter: {name}")
    with state.lock:
        code = state.signin.take_code(form["code"])
    if code is None or code.client_id != client.client_id:
        return oauth_error("invalid_grant", "Malformed auth code.")
    if form["redirect_uri"] != code.redirect_uri:
        return oauth_error("redirect_uri_mismatch", "Bad Request")
    if code.code_challenge is not None:
        verifier = form.get("code_verifier", "")
        if not verifier:
            return oauth_error("invalid_grant", "Missing code verifier.")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
        if not secrets.compare_digest(digest.rstrip(b"=").decode(), code.code_challenge):
            return oauth_error("invalid_grant", "Invalid code verifier.")
    return _signed_in(state, client.client_id, code.email, code.scopes, detail)


def device_code(
    state: EmulatorState, form: dict[str, str], detail: dict[str, Any], authorization: str = ""
) -> Response:
    client = _authenticated(state, form, authorization)
    if isinstance(client, Response):
        return client
    now = state.clock()
    with state.lock:
        grant = state.signin.devices.get(form.get("device_code", ""))
        if grant is None or grant.client_id != client.client_id or grant.status == "used":
            return oauth_error("invalid_grant", "Malformed auth code.")
        if grant.expires_at < now:
            return oauth_error("expired_token", "Expired")
        if grant.status == "denied":
            return oauth_error("access_denied", "Forbidden", status=403)
        if grant.status == "pending":
            too_soon = now - grant.last_poll < grant.interval
            grant.last_poll = now
            if too_soon:
                grant.interval += 5  # RFC 8628: every slow_down adds five seconds
                return oauth_error("slow_down", "Forbidden", status=403)
            return oauth_error("authorization_pending", "Precondition Required", status=428)
        grant.status = "used"
    return _signed_in(state, client.client_id, grant.email, grant.scopes, detail)


def refresh(state: EmulatorState, form: dict[str, str], detail: dict[str, Any], authorization: str = "") -> Response:
    """A signed-in user's refresh grant: an access token, and an ID token for the client (or, with
    ``audience``, for an IAP client of the same project: IAP's programmatic access)."""
    client = _authenticated(state, form, authorization)
    if isinstance(client, Response):
        return client
    if not form.get("refresh_token"):
        return oauth_error("invalid_request", "Missing required parameter: refresh_token")
    grant = state.refresh_tokens.get(form["refresh_token"])
    if grant is None or grant.client_id != client.client_id:
        return oauth_error("invalid_grant", "Token has been expired or revoked.")
    user = state.users[grant.email]
    detail["user"] = user.email
    if user.email in state.signin.reauth_required:
        return JSONResponse(
            {
                "error": "invalid_grant",
                "error_description": "reauth related error (invalid_rapt)",
                "error_uri": "https://support.google.com/a/answer/9368756",
                "error_subtype": "invalid_rapt",
            },
            status_code=400,
        )
    requested = tuple(form["scope"].split()) if form.get("scope") else grant.scopes
    invalid = unknown_scopes(requested)
    if invalid:
        return token_scopes.user_refusal(invalid)
    if not token_scopes.same_scopes(requested) <= token_scopes.same_scopes(grant.scopes):  # email is userinfo.email
        return oauth_error("invalid_scope", "Some requested scopes were invalid.")
    audience = form.get("audience") or client.client_id
    if audience != client.client_id:
        target = client_of(state, audience)
        if target is None or target.project_number != client.project_number:
            return oauth_error("invalid_audience", SAME_PROJECT)
        detail["audience"] = audience
    return JSONResponse(_tokens(state, user, client.client_id, requested, audience))


async def revoke(request: Request) -> Response:
    """``POST /revoke`` (``/o/oauth2/revoke``): a refresh or access token stops working."""
    state: EmulatorState = request.app.state.emulator
    form = await form_of(request)
    token = (form or {}).get("token", "")
    with state.lock:
        refresh_grant = state.refresh_tokens.pop(token, None)
        access_grant = state.access_tokens.pop(token, None)
    if refresh_grant is None and access_grant is None:
        return oauth_error("invalid_token", "Token expired or revoked")
    log_detail(request)["revoked"] = "refresh_token" if refresh_grant is not None else "access_token"
    state.changed()
    return JSONResponse({})
