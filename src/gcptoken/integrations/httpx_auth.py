"""``httpx.Auth`` classes, sync and async: ``IdTokenAuth`` (``Authorization: Bearer <ID token>``, for
Cloud Run, Cloud Functions, IAP) and ``AccessTokenAuth`` (an access token and the quota project's
``x-goog-user-project``, for Google APIs)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Sequence

import httpx

from gcptoken import checks
from gcptoken.credentials import Credentials, load_credentials
from gcptoken.credentials.access_boundary import HEADER, allowed_locations, allowed_locations_async
from gcptoken.credentials.base import QUOTA_PROJECT_HEADER, quota_project
from gcptoken.integrations.audience import AUTHORIZATION, audience_for, id_token_header, says_invalid_token
from gcptoken.integrations.httpx_origin import guard_origin
from gcptoken.integrations.refresh import (
    ForcedRefresh,
    renewed_access_token,
    renewed_access_token_async,
    renewed_id_token,
    renewed_id_token_async,
)

__all__ = ["AccessTokenAuth", "IdTokenAuth"]


class IdTokenAuth(httpx.Auth):
    """ID tokens for the service being called: the audience comes from each request's URL unless
    ``audience`` is given; a 401 saying ``invalid_token`` is retried once with a fresh token.
    ``header="X-Serverless-Authorization"`` sends the token there instead of in ``Authorization``,
    which Cloud Run then leaves to the app's own scheme."""

    def __init__(
        self, credentials: Credentials | None = None, audience: str | None = None, *, header: str = AUTHORIZATION
    ) -> None:
        self.header = id_token_header(header)
        self.credentials = credentials or load_credentials()
        # The library's rule, at once: ftp://x or "" is an error here, not at the first request.
        self.audience = None if audience is None else checks.audience(audience)
        self.renewals = ForcedRefresh()  # a refused token is renewed at most once per REFRESH_INTERVAL

    def _audience(self, request: httpx.Request) -> str:
        return self.audience or audience_for(str(request.url))

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not guard_origin(request, self.header, asynchronous=False):
            yield request  # a redirect's hop to another origin: it goes without a token
            return
        audience = self._audience(request)
        token = self.credentials.id_token(audience).value
        request.headers[self.header] = f"Bearer {token}"
        response = yield request
        if says_invalid_token(response.status_code, response.headers.get("www-authenticate")):
            fresh = renewed_id_token(self.credentials, audience, self.renewals, token)
            if fresh is not None:
                request.headers[self.header] = f"Bearer {fresh}"
                yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not guard_origin(request, self.header, asynchronous=True):
            yield request  # a redirect's hop to another origin: it goes without a token
            return
        audience = self._audience(request)
        token = (await self.credentials.id_token_async(audience)).value
        request.headers[self.header] = f"Bearer {token}"
        response = yield request
        if says_invalid_token(response.status_code, response.headers.get("www-authenticate")):
            fresh = await renewed_id_token_async(self.credentials, audience, self.renewals, token)
            if fresh is not None:
                request.headers[self.header] = f"Bearer {fresh}"
                yield request


class AccessTokenAuth(httpx.Auth):
    """Access tokens for Google APIs (``scopes``, default cloud-platform), with the quota project
    (``quota_project``, else GOOGLE_CLOUD_QUOTA_PROJECT, else the file's ``quota_project_id``) as
    ``x-goog-user-project`` unless the request names one; one retry on an invalid-token 401. With
    GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED true, the credential's
    regional access boundary as ``x-allowed-locations`` (see credentials.access_boundary)."""

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

    def _prepare(self, request: httpx.Request, token: str, boundary: str | None) -> None:
        request.headers["Authorization"] = f"Bearer {token}"
        project = quota_project(self.credentials, self.quota_project)
        if project and QUOTA_PROJECT_HEADER not in request.headers:
            request.headers[QUOTA_PROJECT_HEADER] = project
        if boundary and HEADER not in request.headers:
            request.headers[HEADER] = boundary

    def _sync_prepare(self, request: httpx.Request, token: str | None = None) -> str:
        token = token or self.credentials.access_token(self.scopes).value
        self._prepare(request, token, allowed_locations(self.credentials, token, str(request.url)))
        return token

    async def _async_prepare(self, request: httpx.Request, token: str | None = None) -> str:
        token = token or (await self.credentials.access_token_async(self.scopes)).value
        self._prepare(request, token, await allowed_locations_async(self.credentials, token, str(request.url)))
        return token

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not guard_origin(request, AUTHORIZATION, asynchronous=False):
            yield request  # a redirect's hop to another origin: it goes without a token
            return
        token = self._sync_prepare(request)
        response = yield request
        if says_invalid_token(response.status_code, response.headers.get("www-authenticate")):
            fresh = renewed_access_token(self.credentials, self.scopes, self.renewals, token)
            if fresh is not None:
                self._sync_prepare(request, fresh)
                yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not guard_origin(request, AUTHORIZATION, asynchronous=True):
            yield request  # a redirect's hop to another origin: it goes without a token
            return
        token = await self._async_prepare(request)
        response = yield request
        if says_invalid_token(response.status_code, response.headers.get("www-authenticate")):
            fresh = await renewed_access_token_async(self.credentials, self.scopes, self.renewals, token)
            if fresh is not None:
                await self._async_prepare(request, fresh)
                yield request
