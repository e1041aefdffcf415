"""What a service answers a token it no longer accepts, for the tests' ASGI stand-ins of a service."""

from __future__ import annotations

from starlette.types import Send

_CHALLENGE = [(b"www-authenticate", b'Bearer error="invalid_token"'), (b"content-length", b"0")]


async def refuse_as_revoked(send: Send) -> None:
    """A 401 saying ``invalid_token``, as Cloud Run answers a revoked or expired token."""
    await send({"type": "http.response.start", "status": 401, "headers": _CHALLENGE})
    await send({"type": "http.response.body", "body": b""})
