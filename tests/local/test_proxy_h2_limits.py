"""``gcptoken proxy``'s HTTP/2 side under load a real client makes by accident or on purpose: flow
control that never leaks (cancelled streams give every byte back), clients that cannot hold each
other back, bounded windows and connections, a stop that lets calls under way finish, and gRPC
cancellations that are not taken for a rapid-reset attack. Real ``grpcio`` clients and server
(tests/local/test_proxy_grpc.py's), and raw ``h2`` clients where no polite client would do it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import h2.errors
import h2.events
import h2.settings
import pytest

from gcptoken.credentials import Credentials
from gcptoken.local import proxy_h2, proxy_h2_stream
from gcptoken.local.proxy import Proxy
from gcptoken.local.proxy_h2 import H2Front, proxy_server
from gcptoken.local.proxy_h2_upstream import CONNECTION_WINDOW, WINDOW
from gcptoken.servers.serving import AsgiServer, bind
from tests.local import test_proxy_grpc
from tests.local.test_proxy_grpc import AUD, NO_PROXY, GrpcService, identity
from tests.local.test_proxy_h2_hostile import Client, Recorder

Served = tuple[AsgiServer, H2Front]
GRPC = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]


# The same gRPC server (one per module) and key as tests/local/test_proxy_grpc.py's.
service = test_proxy_grpc.service
credentials = test_proxy_grpc.credentials


@contextlib.contextmanager
def proxying(service: GrpcService, credentials: Credentials) -> Iterator[Served]:
    """The proxy in front of ``service``, and its HTTP/2 side (to count what it holds)."""
    app, protocol = proxy_server(Proxy(f"http://127.0.0.1:{service.port}", credentials, AUD))
    front = protocol.handler.__self__  # type: ignore[attr-defined]
    with AsgiServer(app, bind("127.0.0.1", 0), protocol=protocol, date_header=False) as server:
        yield server, front


@pytest.fixture
def proxy(service: GrpcService, credentials: Credentials) -> Iterator[Served]:
    with proxying(service, credentials) as served:
        yield served


def eventually(check: Callable[[], bool], seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()


def unacknowledged(front: H2Front) -> int:
    """Bytes the service sent on any connection that the proxy never gave the window back for,
    beyond what its streams still hold; and every stream's inbox still kept, counted as one each."""
    total = 0
    for client in list(front.connections):
        total += len(client.inboxes)
        for upstream in client.upstreams.connections if client.upstreams else []:
            window = upstream.conn._inbound_flow_control_window_manager
            total += window.max_window_size - window.current_window_size - window._bytes_processed
            total += len(upstream.inboxes)
    return total


def test_cancelled_streams_give_back_every_byte_and_forget_their_streams(proxy: Served) -> None:
    """A call cancelled while the proxy waits to pass on a message it took from the service: the
    message's window still goes back, and neither side keeps the stream."""
    server, front = proxy
    with grpc.insecure_channel(server.host_port, options=NO_PROXY) as channel:
        big = channel.unary_stream("/t.S/Big", identity, identity)
        for _ in range(30):
            call: Any = big(b"1000", timeout=10)
            next(call), next(call)  # then read nothing: the client's window fills, the proxy waits
            call.cancel()
        assert eventually(lambda: unacknowledged(front) == 0)
        assert channel.unary_unary("/t.S/Unary", identity, identity)(b"still", timeout=5) == b"still"


def test_a_client_that_reads_nothing_holds_back_no_other_client(proxy: Served) -> None:
    """Twelve answers of 2 MB that their client never reads fill what the proxy takes for that
    client (at most CONNECTION_WINDOW), and an unrelated gRPC client goes on as if alone."""
    server, front = proxy
    stalled = Client(server.port)
    try:
        message = b"big:2000000"
        for _ in range(12):
            stream_id = stalled.request(b"/t.S/Unary", b"POST", GRPC, end=False)
            stalled.conn.send_data(stream_id, b"\x00" + len(message).to_bytes(4, "big") + message, end_stream=True)
        stalled.flush()
        assert eventually(lambda: bool(front.connections))
        holder = next(iter(front.connections))

        def held() -> int:
            return sum(c.held() for c in holder.upstreams.connections) if holder.upstreams else 0

        assert eventually(lambda: held() >= CONNECTION_WINDOW // 2)
        with grpc.insecure_channel(server.host_port, options=NO_PROXY) as other:
            unary = other.unary_unary("/t.S/Unary", identity, identity)
            for n in range(5):
                assert unary(b"meanwhile %d" % n, timeout=5) == b"meanwhile %d" % n
        assert held() <= CONNECTION_WINDOW  # what one client makes the proxy hold, bounded
    finally:
        stalled.close()


def test_windows_and_connections_are_bounded(proxy: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client may send at most WINDOW per stream and CONNECTION_WINDOW per connection unread; one
    connection past MAX_CONNECTIONS is answered GOAWAY(ENHANCE_YOUR_CALM)."""
    server, _ = proxy
    monkeypatch.setattr(proxy_h2, "MAX_CONNECTIONS", 2)
    clients = [Client(server.port) for _ in range(3)]
    try:
        first = clients[0]
        first.read(lambda c: any(isinstance(e, h2.events.WindowUpdated) for e in c.events))
        stream_id = first.request(b"/t.S/Unary", b"POST", GRPC, end=False)
        assert first.conn.local_flow_control_window(stream_id) <= WINDOW
        assert first.conn.outbound_flow_control_window <= CONNECTION_WINDOW
        ended = clients[2].goaway()
        assert ended is not None and ended.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    finally:
        for each in clients:
            each.close()


def test_a_stop_lets_a_call_under_way_finish(service: GrpcService, credentials: Credentials) -> None:
    with (
        proxying(service, credentials) as (server, _),
        grpc.insecure_channel(server.host_port, options=NO_PROXY) as channel,
    ):
        service.paused.clear()
        pending = channel.unary_unary("/t.S/Pause", identity, identity).future(b"0.4", timeout=10)
        assert service.paused.wait(5)
        server.stop()  # GOAWAY(NO_ERROR): no new streams, but this one goes on within the grace
        assert pending.result(timeout=5) == b"done"


def test_cancelling_calls_under_way_is_no_rapid_reset(proxy: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """gRPC clients cancel calls that were answered long ago; only resets right after HEADERS of a
    stream not answered count, so many cancellations keep the client's connection."""
    server, front = proxy
    monkeypatch.setattr(proxy_h2, "MAX_RESETS", 10)
    with grpc.insecure_channel(server.host_port, options=NO_PROXY) as channel:
        streaming = channel.unary_stream("/t.S/Big", identity, identity)
        unary = channel.unary_unary("/t.S/Unary", identity, identity)
        assert unary(b"first", timeout=5) == b"first"
        connections = set(front.connections)
        for _ in range(40):
            call: Any = streaming(b"1000", timeout=10)
            next(call)
            call.cancel()
        assert unary(b"after", timeout=5) == b"after"
        assert set(front.connections) == connections  # the same connection: never told GOAWAY


def test_window_update_floods_end_the_connection(proxy: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    server, _ = proxy
    monkeypatch.setattr(proxy_h2, "MAX_CONTROL_FRAMES", 100)
    flood = Client(server.port)
    try:
        for _ in range(200):
            flood.conn.increment_flow_control_window(1)
        flood.flush()
        ended = flood.goaway()
    finally:
        flood.close()
    assert ended is not None and ended.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def test_a_stalled_body_is_reset_but_a_quiet_grpc_stream_is_not(
    credentials: Credentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19's body pace over HTTP/2: a body that brings too little in a window is reset. A gRPC
    stream's pace is its application's: quiet for a while, then it goes on. (The service answers
    once a request has ended.)"""
    monkeypatch.setattr(proxy_h2_stream, "BODY_WINDOW", 0.2)
    recorder = Recorder()
    app, protocol = proxy_server(Proxy(f"http://127.0.0.1:{recorder.port}", credentials, AUD))
    try:
        with AsgiServer(app, bind("127.0.0.1", 0), protocol=protocol, date_header=False) as server:
            client = Client(server.port)
            try:
                quiet = client.request(b"/t.S/ClientStream", b"POST", GRPC, end=False)
                stalled = client.request(b"/upload", b"POST", [(b"content-type", b"text/plain")], end=False)
                client.read(lambda c: any(isinstance(e, h2.events.StreamReset) for e in c.events))
                resets = [e.stream_id for e in client.events if isinstance(e, h2.events.StreamReset)]
                assert resets == [stalled]
                client.conn.send_data(quiet, b"\x00\x00\x00\x00\x03abc", end_stream=True)
                client.flush()
                headers, _, trailers = client.answer(quiet)
                assert headers[b":status"] == b"200" and trailers[b"grpc-status"] == b"0"
            finally:
                client.close()
    finally:
        recorder.close()


def test_the_hpack_table_kept_for_a_client_is_capped(proxy: Served) -> None:
    server, front = proxy
    client = Client(server.port)
    try:
        client.conn.update_settings({h2.settings.SettingCodes.HEADER_TABLE_SIZE: 1 << 30})
        client.flush()
        # Both SETTINGS acknowledged (the opening one, then this one).
        client.read(lambda c: sum(isinstance(e, h2.events.SettingsAcknowledged) for e in c.events) == 2)
        (connection,) = front.connections
        assert connection.link.conn.encoder.header_table_size == proxy_h2.MAX_ENCODER_TABLE
    finally:
        client.close()
