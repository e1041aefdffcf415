"""``requests.auth.AuthBase`` that adds ``Authorization: Bearer <ID token>``.

requests is not a dependency of gcptoken: this module is for programs that already use it.
"""

from __future__ import annotations

from gcptoken.extras import require

require(
    "requests", "gcptoken.integrations.requests_auth"
)  # before any import of its modules: one clear line if missing

import functools
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urljoin

import requests

from gcptoken import checks
from gcptoken.credentials import Credentials, load_credentials
from gcptoken.credentials.access_boundary import HEADER, allowed_locations
from gcptoken.credentials.base import QUOTA_PROJECT_HEADER, quota_project
from gcptoken.integrations.audience import AUTHORIZATION, audience_for, id_token_header, says_invalid_token
from gcptoken.integrations.refresh import ForcedRefresh, Origin, origin_of, renewed_access_token, renewed_id_token

__all__ = ["AccessTokenAuth", "IdTokenAuth"]


def _token_hook(origin: Origin, header: str, renewed: Callable[[str], str | None]) -> Callable[..., requests.Response]:
    """A response hook: a redirect to another origin than ``origin`` (the one the token was made
    for) loses the token (requests copies the request for the next hop and strips only
    ``Authorization``, and only for another host); a 401 saying ``invalid_token`` is sent once more
    with ``renewed(refused_token)``, unless that is None (a renewal was forced a moment ago)."""

    def hook(response: requests.Response, **kwargs: Any) -> requests.Response:
        request = response.request
        if origin_of(str(request.url)) != origin:
            return response  # a hop elsewhere: it carries no token of ours
        if response.is_redirect:
            if origin_of(urljoin(str(response.url), response.headers["location"])) != origin:
                request.headers.pop(header, None)
            return response
        if not says_invalid_token(response.status_code, response.headers.get("www-authenticate")):
            return response
        token = renewed(str(request.headers.get(header, "")).removeprefix("Bearer "))
        if token is None:
            return response
        response.content  # noqa: B018 - read the body so the connection can be reused
        retry = request.copy()
        retry.headers[header] = f"Bearer {token}"
        retry.hooks["response"] = [_token_hook(origin, header, lambda _: None)]  # once only
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
        self.renewals = ForcedRefresh()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        audience = self.audience or audience_for(str(request.url))
        return self.sign(request, audience, self.credentials.id_token(audience).value)

    def sign(self, request: requests.PreparedRequest, audience: str, token: str) -> requests.PreparedRequest:
        """``request`` carrying ``token`` (for ``audience``), for its own origin only."""
        request.headers[self.header] = f"Bearer {token}"
        renewed = functools.partial(renewed_id_token, self.credentials, audience, self.renewals)
        request.hooks.setdefault("response", []).append(_token_hook(origin_of(str(request.url)), self.header, renewed))
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
        self.renewals = ForcedRefresh()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.credentials.access_token(self.scopes).value
        request.headers["Authorization"] = f"Bearer {token}"
        project = quota_project(self.credentials, self.quota_project)
        if project and QUOTA_PROJECT_HEADER not in request.headers:
            request.headers[QUOTA_PROJECT_HEADER] = project
        boundary = allowed_locations(self.credentials, token, str(request.url))
        if boundary and HEADER not in request.headers:
            request.headers[HEADER] = boundary
        renewed = functools.partial(renewed_access_token, self.credentials, self.scopes, self.renewals)
        request.hooks.setdefault("response", []).append(
            _token_hook(origin_of(str(request.url)), AUTHORIZATION, renewed)
        )
        return request
