"""Key servers that misbehave, on 127.0.0.1: one that accepts and never answers, one that drips its
answer a byte at a time, and a scriptable JWKS server (keys, status, max-age, delay, redirects)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gcptoken.servers.serving import AsgiServer, bind

__all__ = ["KeyServer", "blackhole", "dripping", "key_server"]


@contextmanager
def _raw_server(handle: Any) -> Iterator[tuple[str, list[int]]]:
    """A TCP server on a free port calling ``handle(connection)`` in a thread per connection;
    yields its URL and a one-item list counting the connections."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    accepted = [0]
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            accepted[0] += 1
            held.append(connection)
            threading.Thread(target=handle, args=(connection, stop), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/certs", accepted
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


@contextmanager
def blackhole() -> Iterator[tuple[str, list[int]]]:
    """Accepts connections and never says a word."""

    def handle(connection: socket.socket, stop: threading.Event) -> None:
        stop.wait()

    with _raw_server(handle) as server:
        yield server


@contextmanager
def dripping(byte_every: float = 0.2) -> Iterator[tuple[str, list[int]]]:
    """Answers 200 at once, then sends its (long) body one byte every ``byte_every`` seconds."""
    body = b'{"keys": [' + b" " * 4000 + b"]}"

    def handle(connection: socket.socket, stop: threading.Event) -> None:
        try:
            connection.recv(65536)
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            connection.sendall(head.encode())
            for byte in body:
                if stop.wait(byte_every):
                    return
                connection.sendall(bytes([byte]))
        except OSError:
            return

    with _raw_server(handle) as server:
        yield server


@dataclass
class KeyServer:
    """A JWKS endpoint whose answers a test changes as it goes."""

    jwks: dict[str, Any]
    url: str = ""
    status: int = 200
    max_age: str = "300"
    delay: float = 0.0
    redirect_to: str | None = None
    oversize: bool = False
    requests: list[float] = field(default_factory=list)

    async def serve(self, request: Request) -> Response:
        import asyncio

        self.requests.append(time.monotonic())
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.redirect_to:
            return RedirectResponse(self.redirect_to, status_code=302)
        if self.status != 200:
            return JSONResponse({"error": "unavailable"}, status_code=self.status)
        if self.oversize:
            return Response(b'{"keys": [' + b" " * (2 << 20) + b"]}", media_type="application/json")
        return JSONResponse(self.jwks, headers={"Cache-Control": f"public, max-age={self.max_age}"})


@contextmanager
def key_server(jwks: dict[str, Any]) -> Iterator[KeyServer]:
    keys = KeyServer(jwks)
    with AsgiServer(Starlette(routes=[Route("/certs", keys.serve)]), bind("127.0.0.1", 0)) as server:
        keys.url = f"{server.url}/certs"
        yield keys
