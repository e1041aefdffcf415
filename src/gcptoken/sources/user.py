"""A signed-in user (``authorized_user``): the OAuth refresh-token grant.

Google answers it with an access token and an ID token whose audience is the OAuth client id;
an ID token for any other audience needs a service account to impersonate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gcptoken import endpoints
from gcptoken.endpoints import safe_url
from gcptoken.flows import Flow
from gcptoken.sources import fields
from gcptoken.sources.oauth2 import access_token_from, id_token_from, post_form
from gcptoken.tokens import Token

__all__ = ["UserKey", "access_token_flow", "id_token_flow", "refresh_flow"]


@dataclass(frozen=True)
class UserKey:
    """An ``authorized_user`` file as gcloud writes it."""

    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    token_uri: str = endpoints.TOKEN_URI
    account: str = ""

    @classmethod
    def from_info(cls, info: Mapping[str, Any], source: str) -> UserKey:
        where = f"{source}: authorized_user file"
        values = {
            name: fields.text(info, name, where) or "" for name in ("client_id", "client_secret", "refresh_token")
        }
        account = info.get("account")
        return cls(
            **values,
            token_uri=fields.url(info, "token_uri", where) or endpoints.TOKEN_URI,
            account=account if isinstance(account, str) and account.isprintable() else "",
        )


def refresh_flow(key: UserKey, scopes: Sequence[str] | None = None) -> Flow[dict[str, Any]]:
    form = {
        "grant_type": "refresh_token",
        "client_id": key.client_id,
        "client_secret": key.client_secret,
        "refresh_token": key.refresh_token,
    }
    if scopes:
        form["scope"] = " ".join(scopes)
    describe = {"grant": "refresh_token", "client_id": key.client_id}
    return (yield from post_form(endpoints.resolve(key.token_uri), form, describe))


def id_token_flow(key: UserKey) -> Flow[Token]:
    body = yield from refresh_flow(key)
    return id_token_from(body, f"token endpoint {safe_url(key.token_uri)}")


def access_token_flow(key: UserKey, scopes: Sequence[str]) -> Flow[Token]:
    body = yield from refresh_flow(key, scopes)
    return access_token_from(body, f"token endpoint {safe_url(key.token_uri)}")
