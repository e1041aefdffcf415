"""One HTTP/2 connection on an asyncio transport, for either side of the proxy: ``h2`` does the
framing, this does the I/O and the waiting.

Each stream gets an :class:`Inbox` of what arrived on it (headers, data, trailers, its end or its
reset). Sending data waits for the stream's and the connection's flow-control windows and for the
transport to drain, so a peer that does not read holds back its own streams and nothing else;
received data is acknowledged (its window given back) only once it has been passed on, so the
windows carry back-pressure from one side of the proxy to the other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import NamedTuple

import h2.connection
import h2.events
import h2.exceptions
import hyperframe.frame

__all__ = ["H2Link", "Inbox", "LinkClosed", "Part"]

Headers = list[tuple[bytes, bytes]]
_WAKING = (
    h2.events.WindowUpdated,
    h2.events.RemoteSettingsChanged,
    h2.events.StreamReset,
    h2.events.ConnectionTerminated,
)


class LinkClosed(Exception):
    """The connection ended, or the stream was reset, before a send could complete."""


class Part(NamedTuple):
    """One thing that arrived on a stream: ``kind`` is headers, data, trailers, end or reset."""

    kind: str
    headers: Headers = []  # noqa: RUF012 (never mutated: a NamedTuple default)
    data: bytes = b""
    flow: int = 0  # the flow-controlled length of data, to acknowledge once passed on
    code: int = 0  # a reset's error code
    ended: bool = False  # headers that end the stream (a trailers-only answer)


class Inbox:
    """What arrived on one stream, in order. ``held`` counts the flow-controlled bytes taken off it
    but not yet acknowledged (a part whose passing-on was cut short still owes its window)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Part] = asyncio.Queue()
        self.held = 0
        self.waiting = 0  # the flow-controlled bytes still in the queue

    def put(self, part: Part) -> None:
        self.waiting += part.flow
        self.queue.put_nowait(part)

    async def get(self) -> Part:
        part = await self.queue.get()
        self.waiting -= part.flow
        self.held += part.flow
        return part

    def queued(self) -> int:
        """The flow-controlled bytes this stream holds: queued, or taken but not passed on."""
        return self.held + self.waiting

    def unread_flow(self) -> int:
        """Every flow-controlled byte not acknowledged yet (given back when the stream is dropped):
        what is still queued and what was taken but not passed on."""
        total, self.held, self.waiting = self.held + self.waiting, 0, 0
        while not self.queue.empty():
            self.queue.get_nowait()
        return total


class H2Link(asyncio.Protocol):
    """An asyncio protocol around ``conn``; ``on_events`` gets what ``h2`` makes of each read."""

    def __init__(
        self,
        conn: h2.connection.H2Connection,
        on_events: Callable[[list[h2.events.Event]], None],
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.conn, self.on_events, self.on_lost = conn, on_events, on_lost
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.lost = asyncio.Event()  # set once the transport is gone (a TLS close takes a round trip)
        self._paused = False
        self._flush_due = False
        self._waiters: list[asyncio.Future[None]] = []
        self.data_frames = 0  # DATA frames sent: each may earn a WINDOW_UPDATE or two back
        self.answered: set[int] | None = None  # a set: streams whose headers were sent (kept by the owner)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.closed:  # given up while it was connecting
            transport.close()
            return
        self.flush()  # the preface and SETTINGS, before anything the peer sends is read

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:  # h2 has queued its GOAWAY: send it, and end here
            self.flush()
            self.close()
            return
        self.flush()
        if any(isinstance(e, _WAKING) for e in events):
            self._wake()  # windows opened, or a stream's sends must end
        self.on_events(events)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost.set()
        self._wake()
        if self.on_lost is not None:
            self.on_lost()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake()

    def flush(self) -> None:
        """Write what ``h2`` has queued, once per turn of the loop: the frames of many streams (and
        of one stream's headers, data and trailers) go out in one write, not a system call each."""
        if not self._flush_due and self.transport is not None:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._write)

    def _write(self) -> None:
        self._flush_due = False
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self._write()  # a GOAWAY queued just before goes out first
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def send_headers(self, stream_id: int, headers: Headers, end_stream: bool = False) -> None:
        if self.closed:  # h2 may not know yet: the peer broke off with what was no HTTP/2 at all
            raise LinkClosed("the connection ended")
        try:
            self.conn.send_headers(stream_id, headers, end_stream=end_stream)
            if self.answered is not None:
                self.answered.add(stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError) as exc:
            raise LinkClosed(type(exc).__name__) from None
        self.flush()

    async def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """``data`` in frames as the windows allow (an empty ``data`` with ``end_stream``: the end)."""
        view = memoryview(data)
        while True:
            if self.closed:
                raise LinkClosed("the connection ended")
            if self._paused:
                await self._wait()
                continue
            try:
                window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
                if not view:
                    if end_stream:
                        self.conn.end_stream(stream_id)
                        self.flush()
                    return
                if window <= 0:
                    await self._wait()
                    continue
                chunk, view = view[:window], view[window:]
                self.conn.send_data(stream_id, bytes(chunk), end_stream=end_stream and not view)
                self.data_frames += 1
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError) as exc:
                raise LinkClosed(type(exc).__name__) from None
            self.flush()
            if not view:
                return

    def reset(self, stream_id: int, code: int) -> None:
        """RST_STREAM, unless the stream is already closed."""
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.conn.reset_stream(stream_id, code)
            self.flush()

    def passed(self, stream_id: int, inbox: Inbox, flow: int) -> None:
        """A part of ``flow`` bytes taken off ``inbox`` was passed on: acknowledged."""
        inbox.held -= flow
        self.acknowledge(stream_id, flow)

    def drop(self, stream_id: int, inbox: Inbox) -> None:
        """``stream_id`` is done with: every byte it received and did not pass on is acknowledged
        (the connection's window comes back even when the stream is gone)."""
        self.acknowledge(stream_id, inbox.unread_flow())

    def send_goaway(self, last_stream_id: int) -> None:
        """GOAWAY(NO_ERROR) written by hand: ``h2``'s ``close_connection`` would close the state
        machine, refusing the DATA still due on streams under way (a graceful stop keeps them)."""
        frame = hyperframe.frame.GoAwayFrame(0)
        frame.last_stream_id, frame.error_code = last_stream_id, 0
        self._write()  # what h2 queued goes first
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame.serialize())

    def acknowledge(self, stream_id: int, flow: int) -> None:
        """``flow`` bytes of ``stream_id`` were passed on: their window goes back to the peer."""
        if flow and not self.closed:
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self.conn.acknowledge_received_data(flow, stream_id)
                self.flush()

    def wake(self) -> None:
        """Let every waiting send look again (a stream was reset: its send must end)."""
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter
