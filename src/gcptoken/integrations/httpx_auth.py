"""``httpx.Auth`` that adds ``Authorization: Bearer <ID token>``, sync and async."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import httpx

from gcptoken.credentials import Credentials, load_credentials
from gcptoken.integrations.audience import audience_for, says_invalid_token

__all__ = ["IdTokenAuth"]


class IdTokenAuth(httpx.Auth):
    """ID tokens for the service being called: the audience comes from each request's URL unless
    ``audience`` is given; a 401 saying ``invalid_token`` is retried once with a fresh token."""

    def __init__(self, credentials: Credentials | None = None, audience: str | None = None) -> None:
        self.credentials = credentials or load_credentials()
        self.audience = audience

    def _audience(self, request: httpx.Request) -> str:
        return self.audience or audience_for(str(request.url))

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        audience = self._audience(request)
        request.headers["Authorization"] = f"Bearer {self.credentials.id_token(audience).value}"
        response = yield request
        if says_invalid_token(response.status_code, response.headers.get("www-authenticate")):
            fresh = self.credentials.id_token(audience, refresh=True)
            request.headers["Authorization"] = f"Bearer {fresh.value}"
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        audience = self._audience(request)
        token = await self.credentials.id_token_async(audience)
        request.headers["Authorization"] = f"Bearer {token.value}"
        response = yield request
        if says_invalid_token(response.status_code, response.headers.get("www-authenticate")):
            fresh = await self.credentials.id_token_async(audience, refresh=True)
            request.headers["Authorization"] = f"Bearer {fresh.value}"
            yield request
