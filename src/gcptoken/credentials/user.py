"""A signed-in user (``authorized_user``): the OAuth refresh-token grant.

Google answers it with an access token and an ID token whose audience is the OAuth client id;
an ID token for any other audience needs a service account to impersonate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gcptoken.credentials.fields as fields
from gcptoken import endpoints
from gcptoken.cache.rules import user_identity
from gcptoken.credentials.base import Credentials, T
from gcptoken.credentials.oauth2 import access_token_from, id_token_from, post_form
from gcptoken.endpoints import safe_url
from gcptoken.errors import RefusedError, TokenRequestError
from gcptoken.http.flows import Flow
from gcptoken.tokens import Token

__all__ = ["UserCredentials", "UserKey", "access_token_flow", "id_token_flow", "refresh_flow"]


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


class UserCredentials(Credentials):
    """A signed-in user (``authorized_user``, as ``gcloud auth application-default login`` writes).

    The only ID token Google issues a user directly is for the OAuth client id; for any other
    audience, impersonate a service account the user may act as.
    """

    def __init__(self, key: UserKey, source: str = "user credentials") -> None:
        self.key = key
        self.source = source
        self._identity_base = user_identity(key.client_id, key.refresh_token)
        account = f" {key.account}" if key.account else ""
        self.description = f"user{account} (authorized_user, OAuth client {key.client_id})"

    def identity(self) -> str | None:
        return f"{self._identity_base}|{endpoints.resolve(self.key.token_uri)}"

    @property
    def default_audience(self) -> str:
        return self.key.client_id

    def id_token_flow(self, audience: str) -> Flow[Token]:
        if audience != self.key.client_id:
            raise RefusedError(
                f"user credentials get ID tokens only for their OAuth client ({self.key.client_id}), not for "
                f"{audience}; act as a service account you may impersonate: --impersonate-service-account SA_EMAIL"
            )
        return _sign_in_again(id_token_flow(self.key), self.source)

    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        return _sign_in_again(access_token_flow(self.key, scopes), self.source)


def _sign_in_again(flow: Flow[T], source: str) -> Flow[T]:
    """``invalid_grant`` on a refresh token means the sign-in is over: say how to sign in again."""
    try:
        return (yield from flow)
    except TokenRequestError as exc:
        if exc.error != "invalid_grant":
            raise
        raise TokenRequestError(
            f"{exc}. The sign-in in {source} has expired or was revoked; sign in again "
            "('gcloud auth application-default login', or whatever wrote that file)",
            status=exc.status,
            error=exc.error,
            description=exc.description,
        ) from None
