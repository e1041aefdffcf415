"""accounts.google.com's sign-in pages: the consent page of the authorization endpoint (an account
chooser, the client's name and scopes, Allow / Deny, then a redirect to the loopback ``redirect_uri``
with ``code`` and ``state``), the device page where a person enters a user code, ``/device/code``,
and admin calls that approve or deny without a browser.

The pages are plain server-rendered HTML: no script, every field labelled. A pending consent is a
random id the page's form posts back, so no other origin can forge an approval.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gcptoken.checks import unknown_scopes
from gcptoken.emulator.http.responses import GoogleJSONResponse as JSONResponse
from gcptoken.emulator.http.responses import api_error, form_of, json_object, log_detail, oauth_error
from gcptoken.emulator.oauth2 import pages
from gcptoken.emulator.oauth2.signin_redirect import loopback_redirect, with_answer
from gcptoken.emulator.oauth2.signin_state import AUTH_CODE_LIFETIME, DEVICE_CODE_LIFETIME, AuthCode
from gcptoken.emulator.oauth2.user_grants import client_of
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.untrusted import one_line

__all__ = ["routes"]

# The only scopes Google's device flow grants; /device/code refuses a request naming any other, whole,
# with invalid_scope "Invalid device flow scope: SCOPE" (it drops none silently). Allowed scopes:
# https://developers.google.com/identity/protocols/oauth2/limited-input-device#allowedscopes; the
# answer as Google gives it: https://github.com/hickford/git-credential-oauth/issues/38
DEVICE_SCOPES = frozenset(
    {
        "openid",
        "email",
        "profile",
        "https://www.googleapis.com/auth/userinfo.email",
        "https://www.googleapis.com/auth/userinfo.profile",
        "https://www.googleapis.com/auth/drive.appdata",
        "https://www.googleapis.com/auth/drive.file",
        "https://www.googleapis.com/auth/youtube",
        "https://www.googleapis.com/auth/youtube.readonly",
    }
)
_CHALLENGE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
PENDING_LIFETIME = 900


@dataclass(frozen=True)
class Consent:
    """An authorization request the consent page is showing, checked (by ``checked_request``, its
    ``redirect_uri`` by ``signin_redirect``) and waiting for a person."""

    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str | None
    created: float


class Refusal(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def _scopes(raw: str) -> tuple[str, ...]:
    scopes = tuple(raw.split())
    if not scopes:
        raise Refusal(400, "invalid_request", "Missing required parameter: scope")
    invalid = unknown_scopes(scopes)
    if invalid:
        # Google answers on its own error page, 400, never by a redirect to the client: "Error 400:
        # invalid_scope", "Some requested scopes were invalid. {valid=[…], invalid=[…]}"
        # (https://github.com/Grive/grive/issues/7, https://github.com/atinux/nuxt-auth-utils/issues/64;
        # the newer page: https://github.com/emreturkmencom/antigravity-telegram-suite/issues/40).
        valid = [scope for scope in scopes if scope not in invalid]
        named = one_line(f"{{valid=[{', '.join(valid)}], invalid=[{', '.join(invalid)}]}}", 300)
        raise Refusal(400, "invalid_scope", f"Some requested scopes were invalid. {named}")
    return scopes


def checked_request(state: EmulatorState, params: dict[str, str]) -> Consent:
    """The authorization request as Google validates it; Refusal with Google's error otherwise."""
    client = client_of(state, params.get("client_id", ""))
    if client is None:
        raise Refusal(401, "invalid_client", "The OAuth client was not found.")
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri:
        raise Refusal(400, "invalid_request", "Missing required parameter: redirect_uri")
    if client.kind != "desktop" or not loopback_redirect(redirect_uri):
        raise Refusal(400, "redirect_uri_mismatch", f"redirect_uri={redirect_uri[:200]}")
    response_type = params.get("response_type", "")
    if response_type != "code":
        raise Refusal(400, "unsupported_response_type", f"Invalid response_type: {response_type[:40]}")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method", "plain" if challenge else None)
    if method is not None and method != "S256":
        raise Refusal(400, "invalid_request", "Invalid code_challenge_method: only S256 is accepted here.")
    if method == "S256" and (challenge is None or not _CHALLENGE.fullmatch(challenge)):
        raise Refusal(400, "invalid_request", "Invalid code_challenge: 43 to 128 unreserved characters.")
    return Consent(
        client.client_id,
        redirect_uri,
        _scopes(params.get("scope", "")),
        params.get("state"),
        challenge,
        state.clock(),
    )


def redirect_for(state: EmulatorState, consent: Consent, email: str | None) -> str:
    """Where the browser goes after Allow (``email`` given) or Deny: the loopback redirect. Every
    redirect (the consent page's Allow and Deny, the admin call) is built here from a Consent,
    and a Consent exists only once checked_request found its redirect_uri a loopback one."""
    answer: dict[str, str] = {}
    if email is None:
        answer["error"] = "access_denied"
    else:
        user = state.create_user(email)
        code = AuthCode(
            consent.client_id,
            consent.redirect_uri,
            user.email,
            consent.scopes,
            consent.code_challenge,
            state.clock() + AUTH_CODE_LIFETIME,
        )
        with state.lock:
            answer["code"] = state.signin.issue_code(code)
        answer["scope"] = " ".join(consent.scopes)
    if consent.state is not None:
        answer["state"] = consent.state
    return with_answer(consent.redirect_uri, urlencode(answer))


def _remember(state: EmulatorState, consent: Consent) -> str:
    """An unguessable id for the page's form to post back (stale ones are dropped)."""
    pending = state.signin.pending_consents
    with state.lock:
        for key in [k for k, v in pending.items() if state.clock() - v.created > PENDING_LIFETIME]:
            del pending[key]
        key = secrets.token_urlsafe(24)
        pending[key] = consent
    return key


async def authorize(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    params = dict(request.query_params)
    try:
        consent = checked_request(state, params)
    except Refusal as refusal:
        log_detail(request)["error"] = refusal.error
        return pages.error_page(refusal.status, refusal.error, refusal.detail)
    client = client_of(state, consent.client_id)
    assert client is not None
    users = sorted(state.users)
    log_detail(request).update({"client_id": consent.client_id, "scopes": list(consent.scopes)})
    return pages.consent_page(
        "/o/oauth2/v2/auth/consent",
        _remember(state, consent),
        client.name,
        consent.scopes,
        users,
        params.get("login_hint"),
    )


def _chosen_account(form: dict[str, str]) -> str | None:
    email = (form.get("other_account") or form.get("account") or "").strip()
    return email if re.fullmatch(r"[^@\s]{1,64}@[^@\s]{1,190}", email) else None


async def consent_decision(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    form = await form_of(request) or {}
    with state.lock:
        consent = state.signin.pending_consents.pop(form.get("consent", ""), None)
    if consent is None:
        return pages.error_page(400, "invalid_request", "This sign-in request has expired or was already answered.")
    if form.get("decision") != "allow":
        return RedirectResponse(redirect_for(state, consent, None), status_code=302)
    email = _chosen_account(form)
    if email is None:
        state.signin.pending_consents[form["consent"]] = consent  # let the person pick an account, try again
        client = client_of(state, consent.client_id)
        name = client.name if client else consent.client_id
        return pages.consent_page(
            "/o/oauth2/v2/auth/consent",
            form["consent"],
            name,
            consent.scopes,
            sorted(state.users),
            None,
            problem="Choose an account, or type an email address.",
        )
    log_detail(request).update({"user": email, "client_id": consent.client_id})
    return RedirectResponse(redirect_for(state, consent, email), status_code=302)


async def admin_consent(request: Request) -> Response:
    """Admin: ``{"url": AUTHORIZATION_URL, "email"?: …, "decision": "allow"|"deny"}`` → ``{"location"}``,
    the redirect the consent page would send the browser to (for scripts and tests)."""
    state: EmulatorState = request.app.state.emulator
    body = await json_object(request)
    if not isinstance(body, dict) or not isinstance(body.get("url"), str):
        return api_error(400, "url must be the authorization URL.")
    params = dict(parse_qsl(urlsplit(body["url"]).query))
    try:
        consent = checked_request(state, params)
    except Refusal as refusal:
        return api_error(400, f"{refusal.error}: {refusal.detail}")
    decision = body.get("decision", "allow")
    email = body.get("email", "user@example.com")
    if decision not in ("allow", "deny") or not isinstance(email, str) or "@" not in email:
        return api_error(400, 'decision must be "allow" or "deny"; email an address.')
    return JSONResponse({"location": redirect_for(state, consent, email if decision == "allow" else None)})


# -- the device flow ------------------------------------------------------------------------------


async def device_code_endpoint(request: Request) -> Response:
    """``POST /device/code``: a device code and the user code a person enters at ``/device``."""
    state: EmulatorState = request.app.state.emulator
    form = await form_of(request) or {}
    client = client_of(state, form.get("client_id", ""))
    if client is None:
        return oauth_error("invalid_client", "The OAuth client was not found.", status=401)
    scopes = tuple(form.get("scope", "").split())
    # A scope Google does not know is no device flow scope either. Google's words for it here are
    # not published, so it gets the device flow's answer (DEVICE_SCOPES' sources), 400 invalid_scope
    # as for every scope the flow refuses (https://github.com/googleapis/oauth2client/issues/256),
    # naming the unknown scope first: that is the one to fix.
    bad = unknown_scopes(scopes) or [scope for scope in scopes if scope not in DEVICE_SCOPES]
    if not scopes or bad:
        return oauth_error("invalid_scope", f"Invalid device flow scope: {one_line((bad or [''])[0], 100)}")
    with state.lock:
        device_code, grant = state.signin.start_device(client.client_id, scopes)
    log_detail(request).update({"client_id": client.client_id, "user_code": grant.user_code})
    return JSONResponse(
        {
            "device_code": device_code,
            "user_code": grant.user_code,
            "expires_in": DEVICE_CODE_LIFETIME,
            "interval": grant.interval,
            "verification_url": f"{state.base_url}/device",
        }
    )


async def device_page(request: Request) -> Response:
    """``/device``: enter the code (GET), then see the consent for it (POST)."""
    state: EmulatorState = request.app.state.emulator
    if request.method == "GET":
        return pages.device_code_page(request.query_params.get("user_code", ""))
    form = await form_of(request) or {}
    grant = state.signin.device_by_user_code(form.get("user_code", ""))
    if grant is None:
        return pages.device_code_page(form.get("user_code", ""), problem="That code is not valid or has expired.")
    client = client_of(state, grant.client_id)
    key = secrets.token_urlsafe(24)
    with state.lock:
        state.signin.pending_devices[key] = grant.user_code
    return pages.consent_page(
        "/device/approve", key, client.name if client else grant.client_id, grant.scopes, sorted(state.users), None
    )


def decide_device(state: EmulatorState, user_code: str, email: str | None) -> bool:
    with state.lock:
        grant = state.signin.device_by_user_code(user_code)
        if grant is None:
            return False
        grant.status, grant.email = ("approved", email) if email else ("denied", "")
    return True


async def device_decision(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    form = await form_of(request) or {}
    with state.lock:
        user_code = state.signin.pending_devices.pop(form.get("consent", ""), None)
    email = _chosen_account(form) if form.get("decision") == "allow" else None
    if user_code is None or (form.get("decision") == "allow" and email is None):
        return pages.device_code_page("", problem="Start again: enter the code shown on your device.")
    if not decide_device(state, user_code, email):
        return pages.device_code_page("", problem="That code is not valid or has expired.")
    return pages.done_page(email is not None)


async def admin_device(request: Request) -> Response:
    """Admin: ``{"userCode", "email"?, "decision": "allow"|"deny"}``: answer a device code."""
    state: EmulatorState = request.app.state.emulator
    body: Any = await json_object(request)
    if not isinstance(body, dict) or not isinstance(body.get("userCode"), str):
        return api_error(400, "userCode is required.")
    decision, email = body.get("decision", "allow"), body.get("email", "user@example.com")
    if decision not in ("allow", "deny") or not isinstance(email, str) or "@" not in email:
        return api_error(400, 'decision must be "allow" or "deny"; email an address.')
    if not decide_device(state, body["userCode"], email if decision == "allow" else None):
        return api_error(404, "No pending device code has that user code.")
    return JSONResponse({"userCode": body["userCode"], "decision": decision})


routes = [
    Route("/o/oauth2/v2/auth", authorize, methods=["GET"]),
    Route("/o/oauth2/auth", authorize, methods=["GET"]),
    Route("/o/oauth2/v2/auth/consent", consent_decision, methods=["POST"]),
    Route("/device/code", device_code_endpoint, methods=["POST"]),
    Route("/device", device_page, methods=["GET", "POST"]),
    Route("/device/approve", device_decision, methods=["POST"]),
    Route("/emulator/v1/consents", admin_consent, methods=["POST"]),
    Route("/emulator/v1/deviceCodes:decide", admin_device, methods=["POST"]),
]
