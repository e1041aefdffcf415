"""``requests.auth.AuthBase`` that adds ``Authorization: Bearer <ID token>``.

requests is not a dependency of gcptoken: this module is for programs that already use it.
"""

from __future__ import annotations

from gcptoken.extras import require

require(
    "requests", "gcptoken.integrations.requests_auth"
)  # before any import of its modules: one clear line if missing

from collections.abc import Callable, Sequence
from typing import Any

import requests

from gcptoken import checks
from gcptoken.credentials import Credentials, load_credentials
from gcptoken.credentials.access_boundary import HEADER, allowed_locations
from gcptoken.credentials.base import QUOTA_PROJECT_HEADER, quota_project
from gcptoken.integrations.audience import AUTHORIZATION, audience_for, id_token_header, says_invalid_token

__all__ = ["AccessTokenAuth", "IdTokenAuth"]


def _retry_once(fresh_token: Callable[[], str], header: str = AUTHORIZATION) -> Callable[..., requests.Response]:
    """A response hook: a 401 saying ``invalid_token`` is sent once more with ``fresh_token()``."""

    def hook(response: requests.Response, **kwargs: Any) -> requests.Response:
        if not says_invalid_token(response.status_code, response.headers.get("www-authenticate")):
            return response
        response.content  # noqa: B018 - read the body so the connection can be reused
        retry = response.request.copy()
        retry.headers[header] = f"Bearer {fresh_token()}"
        retry.hooks["response"] = []  # once only
        fresh: requests.Response = response.connection.send(retry, **kwargs)
        fresh.history.append(response)
        return fresh

    return hook


class IdTokenAuth(requests.auth.AuthBase):
    """As the httpx one: audience from the URL unless given, one retry on an invalid-token 401;
    ``header="X-Serverless-Authorization"`` leaves ``Authorization`` to the app."""

    def __init__(
        self, credentials: Credentials | None = None, audience: str | None = None, *, header: str = AUTHORIZATION
    ) -> None:
        self.header = id_token_header(header)
        self.credentials = credentials or load_credentials()
        # The library's rule, at once: ftp://x or "" is an error here, not at the first request.
        self.audience = None if audience is None else checks.audience(audience)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        audience = self.audience or audience_for(str(request.url))
        request.headers[self.header] = f"Bearer {self.credentials.id_token(audience).value}"
        fresh = _retry_once(lambda: self.credentials.id_token(audience, refresh=True).value, self.header)
        request.hooks.setdefault("response", []).append(fresh)
        return request


class AccessTokenAuth(requests.auth.AuthBase):
    """As the httpx one: access tokens for Google APIs, ``x-goog-user-project`` from the quota
    project, ``x-allowed-locations`` when the lookup is enabled, one retry on an invalid-token 401."""

    def __init__(
        self,
        credentials: Credentials | None = None,
        scopes: Sequence[str] | None = None,
        quota_project: str | None = None,
    ) -> None:
        self.credentials = credentials or load_credentials()
        self.scopes = None if scopes is None else checks.scope_list(scopes)  # [] is no scope
        self.quota_project = quota_project

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.credentials.access_token(self.scopes).value
        request.headers["Authorization"] = f"Bearer {token}"
        project = quota_project(self.credentials, self.quota_project)
        if project and QUOTA_PROJECT_HEADER not in request.headers:
            request.headers[QUOTA_PROJECT_HEADER] = project
        boundary = allowed_locations(self.credentials, token, str(request.url))
        if boundary and HEADER not in request.headers:
            request.headers[HEADER] = boundary
        fresh = _retry_once(lambda: self.credentials.access_token(self.scopes, refresh=True).value)
        request.hooks.setdefault("response", []).append(fresh)
        return request
