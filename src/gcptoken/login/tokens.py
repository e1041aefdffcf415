"""What a successful sign-in gives: tokens from the token endpoint, and the ``authorized_user``
file they become (gcloud's ADC format, so google-auth and gcloud read it too)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from gcptoken import endpoints
from gcptoken.errors import CredentialsError, TokenRequestError
from gcptoken.jose import compact
from gcptoken.login.client_file import DesktopClient
from gcptoken.private_files import NotPrivateError, PrivateDir
from gcptoken.untrusted import UnreadableJson, json_object

__all__ = ["authorized_user", "signed_in_email", "write_credentials"]


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


def _another_account(previous: Any, account: str | None) -> str | None:
    """What an existing file holds, unless it is this very account's. A file that names no account
    (gcloud writes ``"account": ""``) may be anyone's: replacing it takes --force too."""
    if not isinstance(previous, dict) or previous.get("type") != "authorized_user":
        return "credentials of another kind"
    theirs = previous.get("account")
    if not isinstance(theirs, str) or not theirs:
        return "credentials for an account it does not name"
    shown = theirs[:200] if theirs.isprintable() else repr(theirs[:200])
    return None if account and theirs == account else f"credentials for {shown}"


def write_credentials(path: str, info: Mapping[str, str], force: bool) -> None:
    """``info`` at ``path``, 0600, atomically, never through a symlink; an existing file for
    another account is kept unless ``force``."""
    directory, name = os.path.split(os.path.abspath(path))
    try:
        with PrivateDir(directory, tighten=False) as folder:
            existing = folder.read(name)
            if existing is not None and not force:
                try:
                    previous: dict[str, Any] | None = json_object(existing)
                except UnreadableJson:
                    previous = None
                problem = _another_account(previous, info.get("account"))
                if problem:
                    raise CredentialsError(
                        f"{path} already holds {problem}; pass --force to replace them, or --output FILE"
                    )
            folder.write_atomically(name, (json.dumps(info, indent=2) + "\n").encode("utf-8"))
    except NotPrivateError as exc:
        raise CredentialsError(f"cannot write {path}: {exc}") from None
