"""Streaming halves of ``gcptoken proxy``: the client's request body passed on as it comes, and a
response passed back chunk by chunk until it ends or its client leaves.

A response that never ends by itself (a Server-Sent Events stream: an MCP server's GET stream, a
log tail) must end when its client goes. Otherwise the proxy holds the service's connection open,
and the service still counts the stream as connected: MCP's streamable HTTP allows one GET stream
per session, so the client's reconnect would be refused (409) and server messages sent to the
dead stream lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.types import Receive, Send

__all__ = ["ClientBody", "ClientGone", "relay_until_gone"]


class ClientGone(Exception):
    """The client went away before its request body was complete."""


class ClientBody:
    """The client's request body, streamed on; ``ended`` once its last chunk came (after that,
    ``receive`` says nothing but that the client left)."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.ended = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone  # the service must not take a cut-off body for a whole one
            body = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body"):
                self.ended = True
                return


async def relay_until_gone(chunks: AsyncIterator[bytes], send: Send, receive: Receive | None) -> None:
    """Send each chunk on as it comes, then the end of the body; stop as soon as ``receive`` says
    the client disconnected (None: the request body is still being read, so only the chunks are
    followed). Errors reading ``chunks`` are raised; the caller closes the service's response."""

    async def forward() -> None:
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    if receive is None:
        await forward()
        return

    async def client_leaves() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    forwarding, watching = asyncio.ensure_future(forward()), asyncio.ensure_future(client_leaves())
    try:
        await asyncio.wait((forwarding, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (forwarding, watching):
            task.cancel()
        await asyncio.wait((forwarding, watching))
    if not watching.cancelled():
        watching.exception()  # (retrieved: a receive that failed means the client is gone too)
    if not forwarding.cancelled():
        forwarding.result()  # the service's stream broke off: the caller's to handle
