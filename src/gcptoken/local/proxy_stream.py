"""Streaming halves of ``gcptoken proxy``: the client's request body passed on as it comes, the
wait for the service's answer given up when its client leaves, and a response passed back chunk by
chunk until it ends or its client leaves.

A response that never ends by itself (a Server-Sent Events stream: an MCP server's GET stream, a
log tail) must end when its client goes. Otherwise the proxy holds the service's connection open,
and the service still counts the stream as connected: MCP's streamable HTTP allows one GET stream
per session, so the client's reconnect would be refused (409) and server messages sent to the
dead stream lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from starlette.types import Receive, Send

__all__ = ["ClientBody", "ClientGone", "relay_until_gone", "unless_client_leaves"]

T = TypeVar("T")


class ClientGone(Exception):
    """The client went away before its request body was complete, or before the service answered."""


class ClientBody:
    """The client's request body, streamed on; ``ended`` once its last chunk came (after that,
    ``receive`` says nothing but that the client left)."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.read = asyncio.Event()  # set with the last chunk: from then on the client can be watched

    @property
    def ended(self) -> bool:
        return self.read.is_set()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone  # the service must not take a cut-off body for a whole one
            body = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body"):
                self.read.set()
                return


async def _client_leaves(receive: Receive, body_read: asyncio.Event | None = None) -> None:
    """Returns when the client disconnects; starts listening once ``body_read`` is set (None: the
    body is read already), as until then ``receive`` is the body's."""
    if body_read is not None:
        await body_read.wait()
    while (await receive())["type"] != "http.disconnect":
        pass


async def _until_either(work: asyncio.Future[Any], watch: Awaitable[None]) -> None:
    """Runs ``work`` and ``watch`` until one ends, then cancels the other; ``work``'s outcome is
    the caller's to read (cancelled: ``watch`` ended first)."""
    watching = asyncio.ensure_future(watch)
    try:
        await asyncio.wait((work, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, watching):
            task.cancel()
        await asyncio.wait((work, watching))
    if not watching.cancelled():
        watching.exception()  # (retrieved: a receive that failed means the client is gone too)


async def unless_client_leaves(work: Awaitable[T], receive: Receive, body_read: asyncio.Event | None) -> T:
    """``work``'s result, or ClientGone (``work`` cancelled: the service's request dropped) when
    the client disconnects first, watched from when its body is read (``body_read``, None: now).
    A service slow to start its answer then stops working for nobody, and frees its connection."""
    working = asyncio.ensure_future(work)
    await _until_either(working, _client_leaves(receive, body_read))
    if working.cancelled():
        raise ClientGone
    return working.result()


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

    forwarding = asyncio.ensure_future(forward())
    await _until_either(forwarding, _client_leaves(receive))
    if not forwarding.cancelled():
        forwarding.result()  # the service's stream broke off: the caller's to handle
