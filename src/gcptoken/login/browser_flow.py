"""The installed-app flow: an authorization URL with PKCE (S256) and a random ``state``, the
browser's answer at a loopback redirect (``receiver``) or pasted back by the person, and the code
exchange."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from gcptoken import endpoints
from gcptoken.credentials.oauth2 import post_form
from gcptoken.errors import RefusedError
from gcptoken.http.flows import Flow
from gcptoken.login.client_file import DesktopClient

__all__ = ["Authorization", "code_from", "exchange_flow", "parse_pasted", "start", "state_matches"]


@dataclass(frozen=True)
class Authorization:
    url: str
    redirect_uri: str
    state: str = field(repr=False)
    verifier: str = field(repr=False)


def start(
    client: DesktopClient, redirect_uri: str, scopes: Sequence[str], login_hint: str | None = None
) -> Authorization:
    state = secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(64)  # 86 characters of the unreserved set (RFC 7636: 43-128)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    params = {
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": " ".join(scopes),
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "access_type": "offline",
        "prompt": "consent",  # a refresh token every time, even for a client already granted
    }
    if login_hint:
        params["login_hint"] = login_hint
    url = f"{endpoints.resolve(client.auth_uri)}?{urlencode(params)}"
    return Authorization(url, redirect_uri, state, verifier)


def state_matches(answer: Mapping[str, str], authorization: Authorization) -> bool:
    return secrets.compare_digest(answer.get("state", "").encode("utf-8", "replace"), authorization.state.encode())


def code_from(answer: Mapping[str, str], authorization: Authorization) -> str:
    """The authorization code in the browser's answer, once its ``state`` proved it is ours."""
    if not state_matches(answer, authorization):
        raise RefusedError(
            "the answer's state does not match this sign-in (an old or forged redirect); run gcptoken login again"
        )
    error = answer.get("error")
    if error == "access_denied":
        raise RefusedError("access was denied in the browser; nothing was written")
    if error:
        raise RefusedError(f"the sign-in failed: {error[:80]}")
    code = answer.get("code")
    if not code:
        raise RefusedError("the answer has no authorization code; run gcptoken login again")
    return code


def parse_pasted(text: str) -> dict[str, str] | None:
    """The query of a pasted redirect URL (``http://127.0.0.1:PORT/?state=…&code=…``), else None."""
    text = text.strip()
    if not text:
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    query = dict(parse_qsl(parts.query))
    return query if ("code" in query or "error" in query) else None


def exchange_flow(client: DesktopClient, code: str, authorization: Authorization) -> Flow[dict[str, Any]]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "redirect_uri": authorization.redirect_uri,
        "code_verifier": authorization.verifier,
    }
    describe = {"grant": "authorization_code", "client_id": client.client_id}
    return (yield from post_form(endpoints.resolve(client.token_uri), form, describe))
