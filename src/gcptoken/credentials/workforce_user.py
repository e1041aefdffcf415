"""A person signed in through workforce identity federation (``external_account_authorized_user``,
what ``gcloud auth login --login-config`` writes): a refresh token at STS's OAuth endpoint with
HTTP Basic client authentication.

A rotated refresh token in an answer replaces the old one for this object's life (the file is not
rewritten, as google-auth does not either). Workforce principals hold no ID tokens: they get them by
impersonating a service account on which they hold Token Creator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gcptoken.credentials.fields as fields
from gcptoken import endpoints
from gcptoken.cache.rules import secret_digest
from gcptoken.credentials import universes
from gcptoken.credentials.base import Credentials
from gcptoken.credentials.oauth2 import access_token_from, basic_auth, post_form
from gcptoken.endpoints import safe_url
from gcptoken.errors import CredentialsError, RefusedError, TokenRequestError, then
from gcptoken.http.flows import Flow
from gcptoken.tokens import Token

__all__ = ["STS_OAUTH_TOKEN_URL", "WorkforceUserCredentials", "WorkforceUserKey"]

STS_OAUTH_TOKEN_URL = "https://sts.googleapis.com/v1/oauth/token"
STS_REVOKE_URL = "https://sts.googleapis.com/v1/revoke"


@dataclass(frozen=True)
class WorkforceUserKey:
    audience: str
    refresh_token: str = field(repr=False)
    client_id: str
    client_secret: str = field(repr=False)
    token_url: str = STS_OAUTH_TOKEN_URL
    revoke_url: str | None = None
    token_info_url: str | None = None
    quota_project_id: str | None = None
    universe_domain: str = universes.DEFAULT

    @classmethod
    def from_info(cls, info: Mapping[str, Any], source: str) -> WorkforceUserKey:
        where = f"{source}: external_account_authorized_user file"
        values = {
            name: fields.text(info, name, where) or ""
            for name in ("audience", "refresh_token", "client_id", "client_secret")
        }
        universe = universes.checked(
            fields.text(info, "universe_domain", where, required=False) or universes.DEFAULT,
            f"{where}: universe_domain",
        )
        if "/workforcePools/" not in values["audience"]:
            raise CredentialsError(f"{where}: 'audience' is not a workforce pool provider")
        return cls(
            **values,
            token_url=fields.url(info, "token_url", where) or universes.in_universe(STS_OAUTH_TOKEN_URL, universe),
            revoke_url=fields.url(info, "revoke_url", where),
            token_info_url=fields.url(info, "token_info_url", where),
            quota_project_id=fields.text(info, "quota_project_id", where, required=False),
            universe_domain=universe,
        )


class WorkforceUserCredentials(Credentials):
    binding_role = "Service Account Token Creator (roles/iam.serviceAccountTokenCreator) for its principal://"

    def __init__(self, key: WorkforceUserKey, source: str = "workforce user credentials") -> None:
        self.key = key
        self.source = source
        self.refresh_token = key.refresh_token  # replaced when STS rotates it
        self.quota_project_id = key.quota_project_id
        pool = key.audience.split("/workforcePools/", 1)[-1].split("/", 1)[0]
        self.description = f"workforce identity federation user (pool {pool}, external_account_authorized_user)"
        # Bound to the refresh token of the file: the proof of holding it (rotation keeps the key).
        self._identity = (
            f"external_account_authorized_user|{key.audience}|{key.client_id}|"
            f"{secret_digest('refresh_token', key.refresh_token)}"
        )

    def identity(self) -> str | None:
        return f"{self._identity}|{endpoints.resolve(self.key.token_url)}"

    def id_token_flow(self, audience: str) -> Flow[Token]:
        raise RefusedError(
            f"{self.source}: a workforce identity gets ID tokens only by impersonating a service account; "
            "pass --impersonate-service-account SA (its principal:// needs Token Creator on SA)"
        )

    def access_token_flow(self, scopes: Sequence[str]) -> Flow[Token]:
        key = self.key
        form = {"grant_type": "refresh_token", "refresh_token": self.refresh_token}
        try:
            body = yield from post_form(
                endpoints.resolve(key.token_url),
                form,
                {"grant": "refresh_token", "audience": key.audience},
                what="STS",
                headers=basic_auth(key.client_id, key.client_secret),
            )
        except TokenRequestError as exc:
            if exc.error != "invalid_grant":
                raise
            raise TokenRequestError(
                then(
                    exc,
                    f"The sign-in in {self.source} has expired or was revoked; sign in again "
                    "(gcloud auth login --login-config=…)",
                ),
                status=exc.status,
                error=exc.error,
                description=exc.description,
            ) from None
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated:
            self.refresh_token = rotated
        return access_token_from(body, f"STS {safe_url(key.token_url)}")

    def revoke_flow(self) -> Flow[None]:
        """Revoke the refresh token at ``revoke_url`` (RFC 7009)."""
        url = self.key.revoke_url or universes.in_universe(STS_REVOKE_URL, self.key.universe_domain)
        yield from post_form(
            endpoints.resolve(url),
            {"token": self.refresh_token, "token_type_hint": "refresh_token"},
            {"revoke": "refresh_token"},
            what="STS revoke",
            headers=basic_auth(self.key.client_id, self.key.client_secret),
        )
