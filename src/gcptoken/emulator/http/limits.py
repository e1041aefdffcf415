"""Hostile clients of the emulator: bodies over the limit are refused while they arrive (never
read whole first)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gcptoken.credentials.signing import MAX_BLOB
from gcptoken.emulator.http.responses import MAX_BODY, api_error

__all__ = ["SIGN_BLOB_BODY", "BodyLimit"]

# IAM signBlob's body carries up to MAX_BLOB bytes in base64 (what every signer of ours accepts),
# and room for the delegates: the one route allowed more than MAX_BODY.
SIGN_BLOB_BODY = 4 * (MAX_BLOB // 3 + 1) + 64 * 1024


class BodyLimit:
    """413 for a declared Content-Length over the limit, before a byte of the body is read; a
    body that grows past it while streaming in is refused as soon as it does. The body (at most
    the limit) is read here, then handed to the app as one message."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = SIGN_BLOB_BODY if str(scope.get("path", "")).endswith(":signBlob") else self.limit
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await self._refuse(scope, receive, send, limit)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nobody to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, receive, send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        await api_error(413, f"The request body is larger than {limit} bytes.")(scope, receive, send)
