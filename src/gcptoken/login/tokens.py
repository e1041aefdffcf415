"""What a successful sign-in gives: tokens from the token endpoint, and the ``authorized_user``
file's content they become (gcloud's ADC format, so google-auth and gcloud read it too; ``output``
writes it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gcptoken import endpoints
from gcptoken.errors import TokenRequestError
from gcptoken.jose import compact
from gcptoken.login.client_file import DesktopClient

__all__ = ["authorized_user", "signed_in_email"]


def signed_in_email(answer: Mapping[str, Any]) -> str:
    """The account that signed in, from the id_token the token endpoint just returned (decoded, not
    verified: it names the file's account, it grants nothing)."""
    token = answer.get("id_token")
    try:
        email = compact.parse(token).claims.get("email") if isinstance(token, str) else None
    except Exception:
        email = None
    return email if isinstance(email, str) else ""


def authorized_user(client: DesktopClient, answer: Mapping[str, Any]) -> dict[str, str]:
    refresh_token = answer.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise TokenRequestError("the token endpoint answered without a refresh_token (was access_type=offline sent?)")
    info = {
        "account": signed_in_email(answer),
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "refresh_token": refresh_token,
        "type": "authorized_user",
        "universe_domain": "googleapis.com",
    }
    if client.token_uri != endpoints.TOKEN_URI:
        info["token_uri"] = client.token_uri  # a token endpoint other than Google's (an emulator)
    if client.project_id:
        info["quota_project_id"] = client.project_id
    return info
