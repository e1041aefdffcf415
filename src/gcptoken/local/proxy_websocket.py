"""The WebSocket half of ``gcptoken proxy``: the handshake is sent on to the service with the
proxy's token, then messages are relayed both ways until either side closes."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import Receive, Send

__all__ = ["HANDSHAKE_OWN", "relay"]

# Headers the WebSocket client library writes itself (the handshake's own).
HANDSHAKE_OWN = frozenset(
    {b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions", b"sec-websocket-protocol"}
)


async def relay(
    url: str, headers: list[tuple[str, str]], subprotocols: list[str] | None, receive: Receive, send: Send
) -> None:
    """Open ``url`` with ``headers``, accept the client's socket, and relay until one side closes;
    a handshake the service refuses (or cannot be reached for) closes the client's with 1011."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    try:
        upstream = await connect(url, additional_headers=headers, subprotocols=subprotocols, open_timeout=30)  # type: ignore[arg-type]
    except (InvalidHandshake, OSError, asyncio.TimeoutError):
        await send({"type": "websocket.close", "code": 1011})
        return
    async with upstream:
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})

        async def client_to_upstream() -> None:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    await upstream.close()
                    return
                await upstream.send(message["text"] if message.get("text") is not None else message["bytes"])

        async def upstream_to_client() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for data in upstream:
                    kind = "text" if isinstance(data, str) else "bytes"
                    await send({"type": "websocket.send", kind: data})
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": upstream.close_code or 1000})

        tasks = [asyncio.ensure_future(client_to_upstream()), asyncio.ensure_future(upstream_to_client())]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
