"""An ASGI app on a real socket, served by uvicorn from a background thread or the foreground."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

__all__ = ["AsgiServer", "bind"]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; ``port=0`` picks a free port (raises OSError when taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted connections only then, and without
    # it every response stalls ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class AsgiServer:
    """Serves ``app`` on ``sock``; ``url`` is where it answers."""

    def __init__(
        self,
        app: ASGIApp,
        sock: socket.socket,
        ssl_context: ssl.SSLContext | None = None,
        protocol: type[asyncio.Protocol] | None = None,
        date_header: bool = True,
    ) -> None:
        """``ssl_context``: serve HTTPS with it; ``protocol``: uvicorn's HTTP protocol class to use;
        ``date_header``: add a Date header (a proxy passes its upstream's instead)."""
        self._socket = sock
        host, port = sock.getsockname()[:2]
        self.port: int = port
        self.host_port = f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"
        self.url = f"{'https' if ssl_context else 'http'}://{self.host_port}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,  # no "server: uvicorn": each Google host says who it is, or nothing
            proxy_headers=False,  # the client is the socket's peer: no X-Forwarded-For can pose as another
            http=protocol or "auto",
            date_header=date_header,
        )
        if ssl_context is not None:
            config.load()
            config.ssl = ssl_context  # uvicorn only builds contexts from files, without client-cert callbacks
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        """Answer in the calling thread until interrupted (Ctrl-C / SIGTERM)."""
        self._server.run(sockets=[self._socket])

    def start(self) -> AsgiServer:
        """Answer from a daemon thread; returns once the server accepts connections."""
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=f"asgi-{self.port}", daemon=True
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the server on {self.url} failed to start")
            self._thread.join(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)
        self._socket.close()

    def __enter__(self) -> AsgiServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
