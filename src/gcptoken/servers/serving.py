"""An ASGI app on a real socket, served by uvicorn from a background thread or the foreground.

Every server gcptoken starts is served here, with HTTP/1.1 (h11) whose connections must finish
sending their request headers within :data:`HEADER_TIMEOUT` seconds of starting them (or of
connecting), and send request bodies at a minimum pace: a client that trickles headers or a body
(slowloris), or connects and says nothing, is dropped, so it cannot hold connections open.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from types import TracebackType

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from gcptoken.servers.listen import ListenError, listen_problem

__all__ = ["HEADER_TIMEOUT", "AsgiServer", "HeaderTimeoutProtocol", "bind"]

HEADER_TIMEOUT = 10.0
# A request body must bring at least BODY_MIN_BYTES in every BODY_WINDOW seconds (unless we stopped
# reading it ourselves): a body trickled a byte at a time holds no connection for ever.
BODY_WINDOW = 30.0
BODY_MIN_BYTES = 1024


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for request headers (uvicorn has none: its keep-alive
    timer stops at the first byte of the next request) and a minimum pace for request bodies."""

    header_timeout = HEADER_TIMEOUT
    body_window = BODY_WINDOW
    body_min_bytes = BODY_MIN_BYTES
    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _body_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_header_timer()  # the first bytes of a request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_header_timer()  # headers complete (or the connection is switching protocols)
        if self.conn.their_state is h11.SEND_BODY:
            self._body_bytes += len(data)
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.body_window, self._body_pace)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().connection_lost(exc)

    def _body_pace(self) -> None:
        self._body_timer = None
        if self.conn.their_state is not h11.SEND_BODY or self.transport.is_closing():
            return
        if self._body_bytes < self.body_min_bytes and not self.flow.read_paused:
            self.transport.close()
            return
        self._body_bytes = 0
        self._body_timer = self.loop.call_later(self.body_window, self._body_pace)

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_deadline)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()


def bind(host: str, port: int, option: str = "--port") -> socket.socket:
    """A listening socket; ``port=0`` picks a free port. A port in use (or refused) raises
    ListenError naming ``option``, the flag that chose the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted connections only then, and without
    # it every response stalls ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ListenError(exc.errno, listen_problem(host, port, option, exc)) from None
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, leaving signals to ``AsgiServer.serve_forever``. uvicorn takes SIGINT and
    SIGTERM only once it runs, and raises the signal again once it has stopped (SIGTERM then kills
    the process before it says "stopped" or returns); a foreground server takes them before it says
    where it listens, and a requested stop is its normal way out (exit 0)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.contextmanager
def _stopped_by_signals(server: uvicorn.Server) -> Iterator[None]:
    """Ctrl-C and SIGTERM stop ``server`` gracefully (a second Ctrl-C at once), while in the block."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only
        return
    previous = {signum: signal.signal(signum, server.handle_exit) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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
            lifespan="auto",  # apps that hold connections (the proxy's pool) close them at shutdown
            timeout_graceful_shutdown=2,
            server_header=False,  # no "server: uvicorn": each Google host says who it is, or nothing
            proxy_headers=False,  # the client is the socket's peer: no X-Forwarded-For can pose as another
            http=protocol or HeaderTimeoutProtocol,
            date_header=date_header,
        )
        if ssl_context is not None:
            config.load()
            config.ssl = ssl_context  # uvicorn only builds contexts from files, without client-cert callbacks
        self._server = _Server(config)
        self._thread: threading.Thread | None = None

    def serve_forever(self, ready: Callable[[], None] | None = None) -> None:
        """Answer in the calling thread until Ctrl-C or SIGTERM, then stop gracefully (connections
        finished, the socket closed) and return. ``ready`` is called once those signals stop it
        (say where it listens there: a stop requested as soon as that is read is graceful too)."""
        try:
            with _stopped_by_signals(self._server):
                if ready is not None:
                    ready()
                self._server.run(sockets=[self._socket])
        finally:
            self._socket.close()  # the port is free once this returns

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
