"""A loopback service that redirects every request to another origin (``localhost`` for
``127.0.0.1``: another host to any client), for tests that a token never follows a redirect."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.types import Receive, Scope, Send

from gcptoken.servers.serving import AsgiServer, bind

__all__ = ["Recorder", "cross_origin_redirector", "recorder"]


@contextmanager
def cross_origin_redirector(target: str) -> Iterator[str]:
    """The URL of a server on 127.0.0.1 whose every answer is a 307 to the same path at
    ``target``'s port on ``localhost``."""
    port = urlsplit(target).port

    async def redirect(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        location = f"http://localhost:{port}{scope['path']}".encode()
        headers = [(b"location", location), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 307, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    sock = bind("127.0.0.1", 0)
    with AsgiServer(redirect, sock):
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@dataclass
class Recorder:
    url: str
    seen: list[dict[bytes, bytes]] = field(default_factory=list)  # each request's headers


@contextmanager
def recorder() -> Iterator[Recorder]:
    """A loopback server that notes each request's headers and answers 200."""
    sock = bind("127.0.0.1", 0)
    record = Recorder(f"http://127.0.0.1:{sock.getsockname()[1]}")

    async def note(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        record.seen.append(dict(scope["headers"]))
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    with AsgiServer(note, sock):
        yield record
