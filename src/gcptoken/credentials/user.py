"""A signed-in user (``authorized_user``): the OAuth refresh-token grant.

Google answers it with an access token and an ID token whose audience is the OAuth client id, or,
with ``audience`` set to another OAuth client of the same project (an app behind IAP), an ID token
for that client. Any other audience needs a service account to impersonate."""

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
from gcptoken.errors import RefusedError, TokenRequestError, TransportError, then
from gcptoken.http.flows import Flow
from gcptoken.tokens import Token

__all__ = ["OAUTH_CLIENT_SUFFIX", "UserCredentials", "UserKey", "access_token_flow", "id_token_flow", "refresh_flow"]

OAUTH_CLIENT_SUFFIX = ".apps.googleusercontent.com"


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


def refresh_flow(
    key: UserKey, scopes: Sequence[str] | None = None, audience: str | None = None
) -> Flow[dict[str, Any]]:
    form = {
        "grant_type": "refresh_token",
        "client_id": key.client_id,
        "client_secret": key.client_secret,
        "refresh_token": key.refresh_token,
    }
    if scopes:
        form["scope"] = " ".join(scopes)
    if audience:
        form["audience"] = audience  # IAP's programmatic access: an ID token for the app's OAuth client
    describe = {"grant": "refresh_token", "client_id": key.client_id, **({"audience": audience} if audience else {})}
    return (yield from post_form(endpoints.resolve(key.token_uri), form, describe))


def id_token_flow(key: UserKey, audience: str | None = None) -> Flow[Token]:
    body = yield from refresh_flow(key, audience=audience if audience != key.client_id else None)
    token = id_token_from(body, f"token endpoint {safe_url(key.token_uri)}")
    wanted = audience or key.client_id
    if token.claims.get("aud") != wanted:  # never hand out a token for another audience
        raise TokenRequestError(f"token endpoint {safe_url(key.token_uri)} returned an ID token for another audience")
    return token


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
        if audience != self.key.client_id and not audience.endswith(OAUTH_CLIENT_SUFFIX):
            raise RefusedError(
                f"user credentials get ID tokens only for an OAuth client id, not for {audience}: for an app "
                f"behind IAP, use its OAuth client id (…{OAUTH_CLIENT_SUFFIX}) as the audience; for anything "
                "else, act as a service account you may impersonate: --impersonate-service-account SA_EMAIL"
            )
        return _sign_in_again(id_token_flow(self.key, audience), self.source)

    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        return _sign_in_again(_scopes_explained(self.key, scopes, self.source), self.source)


def _scopes_explained(key: UserKey, scopes: Sequence[str], source: str) -> Flow[Token]:
    """``invalid_scope`` on a refresh means the sign-in never granted a scope asked for (RFC 6749
    section 6: a refresh may not ask for more). Google does not say which it did grant, so a refresh
    without ``scope`` asks, and the error says what the file has and how to get the rest."""
    try:
        return (yield from access_token_flow(key, scopes))
    except TokenRequestError as exc:
        if exc.error != "invalid_scope":
            raise
        refused = exc
    from gcptoken.login.scopes import device_only, granted_scopes, not_granted, shown, unknown_said

    unknown = unknown_said(scopes)
    if unknown:  # no sign-in grants it: advising one would send the person the wrong way
        raise _explained(refused, f"{unknown})")
    try:
        body = yield from refresh_flow(key)
    except (TokenRequestError, TransportError):
        raise refused from None
    granted = granted_scopes(body)
    missing = not_granted(scopes, granted or ())
    if granted is None or not missing:
        raise refused from None
    why = f"The sign-in in {source} grants {shown(granted)}, not {shown(missing)}"
    if device_only(granted) and not device_only(missing):
        why += (
            " (as every sign-in through the device flow, gcptoken login --device: Google's device flow grants no "
            "Google Cloud scope). It still gives ID tokens (gcptoken id); for access tokens, sign in again in a "
            "browser: gcptoken login --client-id-file FILE (add --no-browser where no browser runs)"
        )
    else:
        why += f"; sign in again asking for them: gcptoken login --client-id-file FILE --scopes {','.join(scopes)}"
    raise _explained(refused, why)


def _explained(refused: TokenRequestError, why: str) -> TokenRequestError:
    """Google's refusal followed by what it means for this file (one full stop between them)."""
    return TokenRequestError(
        then(refused, why), status=refused.status, error=refused.error, description=refused.description
    )


def _sign_in_again(flow: Flow[T], source: str) -> Flow[T]:
    """``invalid_grant`` on a refresh token means the sign-in is over: say how to sign in again."""
    try:
        return (yield from flow)
    except TokenRequestError as exc:
        if exc.error != "invalid_grant":
            raise
        words = str(exc.description or "")
        if "invalid_rapt" in words or "rapt_required" in words:
            why = f"Google asks the user of {source} to reauthenticate; sign in again: gcptoken login"
        else:
            why = (
                f"The sign-in in {source} has expired or was revoked; sign in again "
                "(gcptoken login, 'gcloud auth application-default login', or whatever wrote that file)"
            )
        raise TokenRequestError(
            then(exc, why),
            status=exc.status,
            error=exc.error,
            description=exc.description,
        ) from None
