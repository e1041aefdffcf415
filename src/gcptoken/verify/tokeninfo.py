"""Google's tokeninfo endpoint: what Google itself says about a token."""

from __future__ import annotations

from typing import Any

from gcptoken import endpoints
from gcptoken.credentials.oauth2 import post_form
from gcptoken.http.flows import Flow, run_sync

__all__ = ["tokeninfo", "tokeninfo_async", "tokeninfo_flow"]


def tokeninfo_flow(token: str) -> Flow[dict[str, Any]]:
    """POST (not GET: a token in a URL ends up in logs) the token as id_token or access_token."""
    field = "id_token" if token.count(".") == 2 else "access_token"
    url = endpoints.resolve(endpoints.TOKENINFO)
    return (yield from post_form(url, {field: token}, {"as": field}, what="tokeninfo"))


def tokeninfo(token: str, timeout: float = 10.0) -> dict[str, Any]:
    from gcptoken.http.light_transport import sync_transport

    return run_sync(tokeninfo_flow(token), sync_transport(timeout))


async def tokeninfo_async(token: str, timeout: float = 10.0) -> dict[str, Any]:
    from gcptoken.http.flows import run_async
    from gcptoken.http.transport import AsyncHttpxTransport

    transport = AsyncHttpxTransport(timeout)
    try:
        return await run_async(tokeninfo_flow(token), transport)
    finally:
        await transport.aclose()
