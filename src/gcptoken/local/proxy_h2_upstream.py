"""The proxy's HTTP/2 connections to the service: TLS with ALPN ``h2`` for ``https://`` (Cloud
Run), h2c with prior knowledge for ``http://``. Each client connection has its own
:class:`Upstreams` (so a client that reads nothing, or a stream the service answers badly, holds
back no other client); a new connection is opened when the service says GOAWAY, a connection dies,
or carries as many streams as the service allows. Streams the service's GOAWAY did not take come
back as ``refused`` parts: not processed (RFC 9113 §6.8), so safe to send again."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import NamedTuple

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

from gcptoken.http.failures import network_failure
from gcptoken.local.h2_link import H2Link, Headers, Inbox, LinkClosed, Part

__all__ = ["UpstreamError", "UpstreamStream", "Upstreams"]

# What the proxy takes in per stream, and per connection, before it has passed it on
# (back-pressure beyond that): what one client connection can make the proxy hold, each way.
WINDOW = 256 << 10
CONNECTION_WINDOW = 1 << 20
_DEFAULT_WINDOW = 65_535  # a connection's window before any WINDOW_UPDATE (RFC 9113 §6.9.2)
_MAX_RESPONSE_HEADERS = 64 * 1024


class UpstreamError(Exception):
    """The service cannot be reached over HTTP/2; ``str(exc)`` is one line (no secret in it)."""


class UpstreamStream(NamedTuple):
    link: H2Link
    stream_id: int
    inbox: Inbox
    owner: _Connection

    def end(self) -> None:
        """Done with: reset unless it ended, forgotten, and its unacknowledged bytes acknowledged."""
        self.owner.drop(self.stream_id, self.inbox)


class _Connection:
    def __init__(self) -> None:
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        self.link = H2Link(self.conn, self._events, self._lost)
        self.inboxes: dict[int, Inbox] = {}
        self.draining = False
        self.settled = False  # its SETTINGS came: an HTTP/2 server
        self.conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: _MAX_RESPONSE_HEADERS,
            },
        )
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(CONNECTION_WINDOW - _DEFAULT_WINDOW)

    def usable(self) -> bool:
        limit = self.conn.remote_settings.max_concurrent_streams
        if self.link.transport is None or self.link.closed or self.draining:
            return False  # still connecting (streams wait for it), or done
        if self.held() >= CONNECTION_WINDOW:
            return False  # its window cannot move until a client reads: a new stream would only wait
        return self.conn.open_outbound_streams < limit

    def held(self) -> int:
        """The bytes received on this connection and not yet passed on (or acknowledged)."""
        return sum(inbox.queued() for inbox in self.inboxes.values())

    def open(self, headers: Headers, end_stream: bool) -> UpstreamStream:
        stream_id = self.conn.get_next_available_stream_id()
        inbox = self.inboxes[stream_id] = Inbox()
        try:
            self.link.send_headers(stream_id, headers, end_stream)
        except LinkClosed:
            del self.inboxes[stream_id]
            raise
        return UpstreamStream(self.link, stream_id, inbox, self)

    def drop(self, stream_id: int, inbox: Inbox) -> None:
        self.link.reset(stream_id, h2.errors.ErrorCodes.CANCEL)  # unless it ended
        self.inboxes.pop(stream_id, None)  # (already gone if it ended: its inbox is still acknowledged)
        self.link.drop(stream_id, inbox)

    def _events(self, events: list[h2.events.Event]) -> None:
        for event in events:
            if isinstance(event, h2.events.ResponseReceived):
                ended = event.stream_ended is not None
                self._put(event.stream_id, Part("headers", headers=list(event.headers), ended=ended))
            elif isinstance(event, h2.events.DataReceived):
                self._put(event.stream_id, Part("data", data=event.data, flow=event.flow_controlled_length))
            elif isinstance(event, h2.events.TrailersReceived):
                self._put(event.stream_id, Part("trailers", headers=list(event.headers)))
            elif isinstance(event, h2.events.StreamEnded):
                self._put(event.stream_id, Part("end"), last=True)
            elif isinstance(event, h2.events.StreamReset):
                self._put(event.stream_id, Part("reset", code=event.error_code), last=True)
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                self.settled = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.draining = True  # no new streams here; those it did not take were not processed
                for stream_id in [s for s in self.inboxes if s > (event.last_stream_id or 0)]:
                    self._put(stream_id, Part("refused"), last=True)

    def _put(self, stream_id: int | None, part: Part, last: bool = False) -> None:
        inbox = self.inboxes.pop(stream_id or 0, None) if last else self.inboxes.get(stream_id or 0)
        if inbox is not None:
            inbox.put(part)
        elif part.flow:  # a stream already given up: its bytes still count against the connection
            self.link.acknowledge(stream_id or 0, part.flow)

    def _lost(self) -> None:
        inboxes, self.inboxes = self.inboxes, {}
        # Closed before its first SETTINGS: what answered is no HTTP/2 server (an HTTP/1.1 one, say).
        kind = "lost" if self.settled else "not h2"
        for inbox in inboxes.values():
            inbox.put(Part(kind))


class Upstreams:
    """HTTP/2 connections to ``scheme://host:port``, opened as streams need them."""

    def __init__(self, scheme: str, host: str, port: int, timeout: float, tls: ssl.SSLContext | None) -> None:
        self.scheme, self.host, self.port, self.timeout, self.tls = scheme, host, port, timeout, tls
        self.origin = f"{scheme}://{host}:{port}"
        self.connections: list[_Connection] = []
        self._pending: asyncio.Future[_Connection] | None = None
        self.closed = False  # closed with its client connection (or the proxy): no new connection
        self._closing: list[_Connection] = []

    async def open(self, headers: Headers, end_stream: bool) -> UpstreamStream:
        """A new stream to the service, its request headers sent; UpstreamError when unreachable."""
        for _ in range(3):  # a connection that dies between choosing it and using it: the next one
            if self.closed:
                raise UpstreamError("the proxy is stopping")
            connection = await self._usable()
            try:
                return connection.open(headers, end_stream)
            except (LinkClosed, h2.exceptions.ProtocolError):
                connection.draining = True
                if not connection.settled:  # it answered the preface with something else, or nothing
                    plain = " (h2c)" if self.tls is None else ""
                    raise UpstreamError(f"{self.origin} does not speak HTTP/2{plain}") from None
        raise UpstreamError(f"{self.origin} keeps closing its HTTP/2 connections")

    async def _usable(self) -> _Connection:
        self.connections = [c for c in self.connections if not c.link.closed]
        found = next((c for c in self.connections if c.usable()), None)
        if found is not None:
            return found
        if self._pending is None or self._pending.done():  # streams arriving meanwhile share it
            self._pending = asyncio.ensure_future(self._connect())
        # Shielded: a stream given up while it waits must not leave a connection half made.
        return await asyncio.shield(self._pending)

    async def _connect(self) -> _Connection:
        connection = _Connection()
        self.connections.append(connection)  # closed by aclose from here on, whatever happens
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(
                    lambda: connection.link,
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls else None,
                ),
                self.timeout,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            connection.link.close()
            raise UpstreamError(network_failure(exc, self.origin)) from None
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() != "h2":
            connection.link.close()
            raise UpstreamError(f"{self.origin} does not offer HTTP/2 (ALPN h2)")
        return connection

    def begin_close(self) -> None:
        """No new connection from now on; each open one told GOAWAY and closed (aclose waits)."""
        self.closed = True
        connections, self.connections = self.connections, []
        self._closing.extend(connections)
        for connection in connections:
            with contextlib.suppress(Exception):
                connection.conn.close_connection()
                connection.link.flush()
            connection.link.close()

    async def aclose(self) -> None:
        """GOAWAY and close every connection, and wait (briefly) until each is gone: a TLS close
        needs the loop a moment longer, and the loop may stop right after this."""
        self.begin_close()
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
            with contextlib.suppress(BaseException):
                await self._pending
        self.begin_close()  # and one that connected meanwhile
        for connection in self._closing:
            if connection.link.transport is None:
                continue
            try:
                await asyncio.wait_for(connection.link.lost.wait(), 1.0)
            except asyncio.TimeoutError:
                connection.link.transport.abort()
