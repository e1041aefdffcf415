"""``gcptoken proxy`` for HTTP/2 clients (h2c with prior knowledge: gRPC's insecure channels), on
the same port as HTTP/1.1 (:mod:`gcptoken.servers.h2_sniff`), relayed over HTTP/2 to the service
(:mod:`~gcptoken.local.proxy_h2_upstream`), each stream as
:mod:`~gcptoken.local.proxy_h2_stream` says.

Each client connection has connections of its own to the service, so what one client does (read
nothing, flood, get a bad answer) holds back no other. One client connection is bounded as every
local server's are, and against HTTP/2's own abuses: at most :data:`MAX_STREAMS` streams at once
(more are refused with REFUSED_STREAM, also while a reset stream's work is still ending: rapid
reset, CVE-2023-44487), header lists of at most :data:`~gcptoken.servers.guard.MAX_HEADER_BYTES`,
CONTINUATION frames bounded by ``h2``, a deadline for its first request's headers, a budget of
resets of streams not yet answered and of frames that cost the proxy an answer but carry no request
(PING, SETTINGS, PRIORITY, unknown frames, empty DATA, WINDOW_UPDATEs beyond what the data sent
earns; a flood of them ends the connection with ENHANCE_YOUR_CALM), flow-control windows that let
it make the proxy hold at most about a MiB each way, a cap on what waits to be written to a client
that does not read, and an idle timeout once no stream is open. At most :data:`MAX_CONNECTIONS`
HTTP/2 connections at once: one more is answered GOAWAY(ENHANCE_YOUR_CALM) and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Sequence

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
from starlette.types import ASGIApp

from gcptoken.errors import GcpTokenError
from gcptoken.local.h2_link import H2Link, Inbox, Part
from gcptoken.local.proxy import Proxy
from gcptoken.local.proxy_guard import guarded_proxy
from gcptoken.local.proxy_h2_stream import (
    Checked,
    Service,
    StreamEnd,
    check_stream,
    grpc_status,
    log_stream,
    refuse,
    relay,
)
from gcptoken.local.proxy_h2_upstream import CONNECTION_WINDOW, WINDOW, UpstreamError, Upstreams, UpstreamStream
from gcptoken.servers.guard import MAX_HEADER_BYTES, GuardPolicy, Network
from gcptoken.servers.h2_sniff import sniffing
from gcptoken.servers.serving import HEADER_TIMEOUT, HeaderTimeoutProtocol
from gcptoken.untrusted import one_line

__all__ = ["MAX_CONNECTIONS", "MAX_STREAMS", "H2Front", "proxy_server"]

log = logging.getLogger("gcptoken.proxy")
MAX_STREAMS = 100
MAX_CONNECTIONS = 128
# Streams whose work may still be ending (reset by the client, or just answered) besides the open ones.
MAX_WORK = 2 * MAX_STREAMS
# A connection with no stream open is closed (GOAWAY) after this many seconds.
IDLE_TIMEOUT = 120.0
# Per connection, in any BUDGET_WINDOW seconds: streams reset (or refused), and frames that carry no request.
BUDGET_WINDOW = 10.0
MAX_RESETS = 200
# Only a reset of a stream not yet answered, this soon after its headers, counts (the rapid-reset
# pattern): a gRPC client cancelling calls under way is no attack.
QUICK_RESET = 1.0
# WINDOW_UPDATEs free per DATA frame sent and per stream opened (grpcio sends a stream's and the
# connection's, some as a stream starts); beyond that, each counts against the control budget.
FREE_UPDATES = 2
# The HPACK table we keep for what we send, whatever larger size a client allows.
MAX_ENCODER_TABLE = 64 << 10
# gRPC's clients send PINGs as they read (BDP probes) and a SETTINGS now and then: far fewer than this.
MAX_CONTROL_FRAMES = 10_000
# Seconds the streams under way get to finish once the server stops (uvicorn allows 2).
SHUTDOWN_GRACE = 1.5
# Bytes waiting to go to a client that does not read: past this, the connection is dropped.
MAX_UNSENT = 4 << 20
# Frames that carry no request; each PING and SETTINGS costs an answer. (WINDOW_UPDATEs come with
# every body read: counted only beyond what the data sent earns.)
_CONTROL = (
    h2.events.PingReceived,
    h2.events.RemoteSettingsChanged,
    h2.events.PriorityUpdated,
    h2.events.UnknownFrameReceived,
)


class _Budget:
    """At most ``limit`` spends in any ``window`` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.start, self.spent = 0.0, 0

    def spend(self, now: float) -> bool:
        """False once over budget."""
        if now - self.start > self.window:
            self.start, self.spent = now, 0
        self.spent += 1
        return self.spent <= self.limit


class H2Front:
    """The HTTP/2 side of one proxy: its connections to the service, and each client connection."""

    idle_timeout = IDLE_TIMEOUT
    settings_timeout = HEADER_TIMEOUT

    def __init__(self, proxy: Proxy, policy: GuardPolicy) -> None:
        self.proxy, self.policy = proxy, policy
        self.tls: ssl.SSLContext | None = None
        self.connections: set[ClientConnection] = set()
        self.closing: set[asyncio.Task[None]] = set()  # client connections' upstreams being closed
        proxy.closers.append(self.aclose)
        origin = proxy.origin[1]
        self.service = Service(
            open=self._no_open,
            token=proxy.token,
            fresh_token=proxy.fresh_token,
            authorized=proxy.authorized,
            pseudo=lambda method, path: [
                (b":method", method.encode("latin-1")),
                (b":scheme", proxy.scheme),
                (b":authority", origin),
                (b":path", path),
            ],
            origin=proxy.origin,
            base_path=proxy.base_path,
            audience=proxy.audience,
        )

    async def _no_open(self, headers: list[tuple[bytes, bytes]], end_stream: bool) -> UpstreamStream:
        raise UpstreamError("no connection")  # each client connection opens its own

    def upstreams(self) -> Upstreams:
        """Connections to the service for one client connection (TLS set up once, for all)."""
        if self.tls is None and self.proxy.scheme == b"https":
            from gcptoken.http.tls import h2_context

            try:
                self.tls = h2_context()
            except GcpTokenError as exc:  # SSL_CERT_FILE naming nothing usable: one line, per stream
                raise UpstreamError(str(exc)) from None
        proxy = self.proxy
        return Upstreams(proxy.scheme.decode(), proxy.host.decode(), proxy.port_number, proxy.timeout, self.tls)

    def connection(self, transport: asyncio.Transport, first: bytes) -> ClientConnection:
        return ClientConnection(self, transport, first)

    def release(self, connection: ClientConnection) -> None:
        """``connection`` is gone: its connections to the service close."""
        self.connections.discard(connection)
        connection.released = True
        if connection.upstreams is not None:
            connection.upstreams.begin_close()  # now: the loop may stop before the task below runs
            task = asyncio.get_running_loop().create_task(connection.upstreams.aclose())
            self.closing.add(task)
            task.add_done_callback(self.closing.discard)

    async def aclose(self) -> None:
        for connection in list(self.connections):
            self.release(connection)
        if self.closing:
            await asyncio.wait(set(self.closing))


class ClientConnection:
    """One client's HTTP/2 connection (what the sniffing protocol hands over)."""

    def __init__(self, front: H2Front, transport: asyncio.Transport, first: bytes) -> None:
        self.front = front
        self.loop = asyncio.get_running_loop()
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        conn = h2.connection.H2Connection(config)
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_BYTES,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
            },
        )
        conn.decoder.max_header_list_size = MAX_HEADER_BYTES  # h2 applies its setting only on a change
        self.link = H2Link(conn, self._events, self._lost)
        self.answered: set[int] = set()
        self.link.answered = self.answered
        self.link.connection_made(transport)
        conn.initiate_connection()
        conn.increment_flow_control_window(CONNECTION_WINDOW - 65_535)  # beyond the default window
        self.link.flush()
        self.upstreams: Upstreams | None = None
        self.released = False  # its connections to the service closed: no new one
        self.service = front.service._replace(open=self._open)
        self.updates = 0  # WINDOW_UPDATEs received
        self.streams = 0  # streams opened
        self.started: dict[int, float] = {}  # when each stream's headers came
        peer, bound = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
        self.peer = str(peer[0]) if peer else ""
        self.bound = (str(bound[0]), int(bound[1])) if bound else ("", 0)
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.inboxes: dict[int, Inbox] = {}
        self.resets = _Budget(MAX_RESETS, BUDGET_WINDOW)
        self.control = _Budget(MAX_CONTROL_FRAMES, BUDGET_WINDOW)
        self.settled = False
        self.stopping = False
        # Its first request's headers are due within this (an idle timer only once one came).
        self.timer: asyncio.TimerHandle | None = self.loop.call_later(front.settings_timeout, self._expire)
        front.connections.add(self)
        if len(front.connections) > MAX_CONNECTIONS:
            self._goaway(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
            return
        self.link.data_received(first)

    async def _open(self, headers: list[tuple[bytes, bytes]], end_stream: bool) -> UpstreamStream:
        if self.released:
            raise UpstreamError("the proxy is stopping")
        if self.upstreams is None:
            self.upstreams = self.front.upstreams()
        return await self.upstreams.open(headers, end_stream)

    # What the sniffing protocol forwards.
    def data_received(self, data: bytes) -> None:
        self.link.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.connection_lost(exc)

    def pause_writing(self) -> None:
        self.link.pause_writing()

    def resume_writing(self) -> None:
        self.link.resume_writing()

    def shutdown(self) -> None:
        """The server stops: GOAWAY (no new streams), and the connection closes once the streams
        under way are done (or uvicorn's graceful timeout ends them)."""
        self.stopping = True
        if not self.tasks:
            self._goaway(h2.errors.ErrorCodes.NO_ERROR)
            return
        # The streams under way go on (new ones are refused); h2's close_connection would end them.
        self.link.send_goaway(self.link.conn.highest_inbound_stream_id)
        # Within uvicorn's own graceful timeout: a stream that would outlive it (a long gRPC
        # stream) ends with the connection, which the loop then still closes.
        self.loop.call_later(SHUTDOWN_GRACE, self._goaway, h2.errors.ErrorCodes.NO_ERROR)

    def _events(self, events: list[h2.events.Event]) -> None:
        now = self.loop.time()
        for event in events:
            if isinstance(event, _CONTROL) and not self.control.spend(now):
                self._goaway(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
                return
            if isinstance(event, h2.events.RemoteSettingsChanged):
                self.settled = True
                encoder = self.link.conn.encoder
                encoder.header_table_size = min(encoder.header_table_size, MAX_ENCODER_TABLE)
            elif isinstance(event, h2.events.WindowUpdated):
                self.updates += 1
                earned = FREE_UPDATES * (self.link.data_frames + self.streams + 8)
                if self.updates > earned and not self.control.spend(now):
                    self._goaway(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)  # WINDOW_UPDATEs for nothing: a flood
                    return
            elif isinstance(event, h2.events.RequestReceived):
                self._request(event, now)
            elif isinstance(event, h2.events.DataReceived):
                if not event.data and not event.stream_ended and not self.control.spend(now):
                    self._goaway(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)  # empty DATA frames: a flood
                    return
                self._put(event.stream_id, Part("data", data=event.data, flow=event.flow_controlled_length))
            elif isinstance(event, h2.events.TrailersReceived):
                self._put(event.stream_id, Part("trailers", headers=list(event.headers)))
            elif isinstance(event, h2.events.StreamEnded):
                self._put(event.stream_id, Part("end"))
            elif isinstance(event, h2.events.StreamReset):
                self._put(event.stream_id, Part("reset", code=event.error_code))
                if self._quick_reset(event.stream_id, now) and not self.resets.spend(now):
                    self._goaway(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
                    return
        transport = self.link.transport
        if transport is not None and transport.get_write_buffer_size() > MAX_UNSENT:
            transport.abort()  # it asks for answers (PING, SETTINGS) but reads none of them

    def _request(self, event: h2.events.RequestReceived, now: float) -> None:
        stream_id = event.stream_id
        assert stream_id is not None
        if self.stopping:  # after our GOAWAY: not taken
            self.link.reset(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        if len(self.tasks) >= MAX_WORK:  # reset streams whose work is still ending count too
            self.link.reset(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            if not self.resets.spend(now):
                self._goaway(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
            return
        headers = list(event.headers)
        ended = event.stream_ended is not None
        inbox = self.inboxes[stream_id] = Inbox()  # its reset must be seen even once its body ended
        client = StreamEnd(self.link, stream_id, inbox)
        checked = check_stream(headers, ended, self.peer, self.bound, self.front.policy)
        path = dict(headers).get(b":path", b"")
        method = dict(headers).get(b":method", b"").decode("latin-1")
        self._cancel_timer()
        self.started[stream_id] = now
        self.streams += 1
        task = self.loop.create_task(self._stream(client, checked, method, path))
        self.tasks[stream_id] = task
        task.add_done_callback(lambda _: self._finished(stream_id))

    async def _stream(
        self, client: StreamEnd, checked: Checked | tuple[int, str, bool], method: str, path: bytes
    ) -> None:
        try:
            if isinstance(checked, Checked):
                status = await relay(client, checked, self.service, self.bound)
            else:  # logged here, once (not again as a stream)
                status, reason, grpc = checked
                shown = one_line(path.split(b"?", 1)[0].decode("latin-1"))
                said = f"{status} (grpc-status {grpc_status(status)})" if grpc else str(status)
                log.info("refused %s %s from %s: %s %s", one_line(method, 20), shown, self.peer, said, reason)
                await refuse(client, status, reason, grpc)
                self.link.reset(client.stream_id, h2.errors.ErrorCodes.NO_ERROR)  # its body is not wanted
                return
        except Exception as exc:  # never a traceback: the stream just ends
            log.warning("gcptoken proxy: %s while forwarding an HTTP/2 stream", type(exc).__name__)
            self.link.reset(client.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
            status = 0
        log_stream(method, path, status)

    def _finished(self, stream_id: int) -> None:
        self.tasks.pop(stream_id, None)
        self.started.pop(stream_id, None)
        self.answered.discard(stream_id)
        inbox = self.inboxes.pop(stream_id, None)
        if inbox is not None:
            self.link.drop(stream_id, inbox)
        if not self.tasks:
            if self.stopping:
                self._goaway(h2.errors.ErrorCodes.NO_ERROR)
            else:
                self._idle()

    def _quick_reset(self, stream_id: int | None, now: float) -> bool:
        """A reset of a stream not yet answered, right after its headers (one whose work is over
        costs nothing more)."""
        started = self.started.get(stream_id or 0)
        return started is not None and stream_id not in self.answered and now - started < QUICK_RESET

    def _put(self, stream_id: int | None, part: Part) -> None:
        inbox = self.inboxes.get(stream_id or 0)
        if inbox is not None:
            inbox.put(part)
        elif part.flow:  # a refused or finished stream still sending: the connection's window comes back
            self.link.acknowledge(stream_id or 0, part.flow)

    def _idle(self) -> None:
        self._cancel_timer()
        if not self.link.closed:
            self.timer = self.loop.call_later(self.front.idle_timeout, self._expire)

    def _expire(self) -> None:
        self.timer = None
        if not self.tasks:
            self._goaway(h2.errors.ErrorCodes.NO_ERROR)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _goaway(self, code: int) -> None:
        with contextlib.suppress(Exception):
            self.link.conn.close_connection(code)
            self.link.flush()
        self.link.close()

    def _lost(self) -> None:
        self._cancel_timer()
        for task in list(self.tasks.values()):
            task.cancel()
        self.front.release(self)


def proxy_server(
    proxy: Proxy, allow: Sequence[Network] = (), hosts: Sequence[str] = (), origins: Sequence[str] = ()
) -> tuple[ASGIApp, type[HeaderTimeoutProtocol]]:
    """``proxy`` behind the request guard, as :func:`~gcptoken.local.proxy.proxy_app` serves it, and
    the uvicorn protocol for its port: HTTP/1.1 to that app as ever, HTTP/2 clients to an
    :class:`H2Front` on the same proxy (one token cache and refresh limit; its HTTP/2 connections
    closed with the app's lifespan). ``allow``, ``hosts``, ``origins``: as for ``proxy_app``."""
    front = H2Front(proxy, GuardPolicy(names=frozenset(hosts), allow=tuple(allow), origins=frozenset(origins)))
    return guarded_proxy(proxy, allow, hosts, origins), sniffing(front.connection)
