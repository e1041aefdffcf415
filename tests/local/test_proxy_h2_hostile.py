"""``gcptoken proxy``'s HTTP/2 side against hostile clients: every check of the HTTP/1.1 side
(tests/local/test_proxy_hostile.py) made on HTTP/2 streams, and HTTP/2's own abuses.

The proxy (in this process, as ``gcptoken proxy http://SERVICE/base`` serves it) sits in front of
an h2c service that records every stream the moment its headers arrive; the clients are raw
``h2`` connections over sockets, free to send what no polite client would. For each refused
stream: a one-line answer, nothing at the service, no token minted; then a clean stream through
the same proxy reaches the service and mints one (the counters are live)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import httpx
import hyperframe.frame
import pytest

from gcptoken.credentials import credentials_from_info
from gcptoken.local import proxy_h2
from gcptoken.local.proxy import Proxy
from gcptoken.local.proxy_h2 import proxy_server
from gcptoken.local.proxy_h2_stream import Checked, check_stream
from gcptoken.servers.guard import GuardPolicy
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient

AUD = "https://svc-h2-hostile.a.run.app"
Headers = list[tuple[bytes, bytes]]


class Recorder:
    """An h2c service on its own loop: records each stream's headers as they arrive, and answers
    200 with the path it saw and a ``grpc-status: 0`` trailer once the request has ended."""

    def __init__(self) -> None:
        self.seen: list[dict[bytes, bytes]] = []
        self.transports: list[asyncio.BaseTransport] = []
        self.refuse: set[bytes] = set()  # paths answered once with a 401 invalid_token
        self.not_taken: set[bytes] = set()  # paths answered once with a GOAWAY that did not take them
        self.oversized: set[bytes] = set()  # paths answered with headers over the proxy's 64 KiB
        self.conns: list[h2.connection.H2Connection] = []
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.Server | None = None
        self.port = 0
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        started.wait(5)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(self.loop.create_server(self._protocol, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()

    def _protocol(self) -> asyncio.Protocol:
        recorder = self

        class Serving(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.Transport)
                self.sending = transport
                recorder.transports.append(transport)
                self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
                recorder.conns.append(self.conn)
                self.conn.initiate_connection()
                self.sending.write(self.conn.data_to_send())
                self.paths: dict[int, bytes] = {}

            def data_received(self, data: bytes) -> None:
                try:
                    events = self.conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    return  # after its own GOAWAY
                for event in events:
                    if isinstance(event, h2.events.RequestReceived):
                        headers = dict(event.headers)
                        recorder.seen.append(headers)
                        self.paths[event.stream_id] = headers[b":path"]
                        if headers[b":path"] in recorder.not_taken:
                            recorder.not_taken.discard(headers[b":path"])
                            self.conn.close_connection(last_stream_id=event.stream_id - 2)
                            break
                    if isinstance(event, h2.events.DataReceived):
                        self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    if isinstance(event, h2.events.StreamEnded):
                        stream_id = event.stream_id
                        if stream_id in self.paths:
                            path = self.paths.pop(stream_id)
                            if path in recorder.oversized:
                                big = [(":status", "200"), ("x-big", "b" * 70_000)]
                                self.conn.send_headers(stream_id, big, end_stream=True)
                                continue
                            if path.endswith(b"/odd-status"):
                                self.conn.send_headers(stream_id, [(":status", "abc")], end_stream=True)
                                continue
                            if path in recorder.refuse:
                                recorder.refuse.discard(path)
                                refused = [(":status", "401"), ("www-authenticate", 'Bearer error="invalid_token"')]
                                self.conn.send_headers(stream_id, refused, end_stream=True)
                                continue
                            self.conn.send_headers(stream_id, [(":status", "200"), ("content-type", "text/plain")])
                            self.conn.send_data(stream_id, path)
                            self.conn.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)
                self.sending.write(self.conn.data_to_send())

        return Serving()

    def goaway(self) -> None:
        """GOAWAY on every connection, as a server restarting does."""

        def send() -> None:
            for conn, transport in zip(self.conns, self.transports, strict=True):
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    conn.close_connection()
                transport.write(conn.data_to_send())  # type: ignore[attr-defined]

        self.loop.call_soon_threadsafe(send)

    def close(self) -> None:
        async def stop() -> None:
            assert self.server is not None
            self.server.close()
            for transport in self.transports:
                transport.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Client:
    """A raw HTTP/2 client on a socket; ``validate=False`` lets it send malformed headers."""

    def __init__(self, port: int, validate: bool = True, start: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=validate,
            normalize_outbound_headers=validate,
        )
        self.conn = h2.connection.H2Connection(config)
        self.authority = f"127.0.0.1:{port}".encode()
        self.scheme = b"http"
        self.events: list[h2.events.Event] = []
        self.closed = False
        if start:
            self.conn.initiate_connection()
            self.flush()

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(self.conn.data_to_send())

    def request(self, path: bytes = b"/hello", method: bytes = b"GET", extra: Headers = (), end: bool = True) -> int:  # type: ignore[assignment]
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(b":method", method), (b":scheme", self.scheme), (b":authority", self.authority), (b":path", path)]
        self.conn.send_headers(stream_id, [*headers, *extra], end_stream=end)
        self.flush()
        return stream_id

    def read(self, until: Any) -> None:
        """Reads until ``until(self)`` holds or the connection closes."""
        while not until(self) and not self.closed:
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                data = b""
            if not data:
                self.closed = True
                return
            try:
                self.events.extend(self.conn.receive_data(data))
            except h2.exceptions.ProtocolError:
                self.closed = True
                return
            self.flush()

    def answer(self, stream_id: int) -> tuple[dict[bytes, bytes], bytes, dict[bytes, bytes]]:
        """Headers, body and trailers of ``stream_id`` (empty when it was reset)."""
        self.read(
            lambda c: any(
                getattr(e, "stream_id", 0) == stream_id
                and isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset))
                for e in c.events
            )
        )
        headers, body, trailers = {}, b"", {}
        for event in self.events:
            if getattr(event, "stream_id", 0) != stream_id:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                headers = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
            elif isinstance(event, h2.events.TrailersReceived):
                trailers = dict(event.headers)
        return headers, body, trailers

    def goaway(self) -> h2.events.ConnectionTerminated | None:
        self.read(lambda c: any(isinstance(e, h2.events.ConnectionTerminated) for e in c.events))
        return next((e for e in self.events if isinstance(e, h2.events.ConnectionTerminated)), None)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def service() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.close()


@pytest.fixture(scope="module")
def key(gcptoken_emulator: EmulatorClient) -> dict[str, str]:
    return gcptoken_emulator.new_key("h2-hostile")


@contextlib.contextmanager
def proxying(url: str, key: dict[str, str], http2: bool = False, header_timeout: float = 0) -> Iterator[AsgiServer]:
    """``gcptoken proxy URL --audience AUD [--http2]`` on a free loopback port, as the CLI serves it."""
    app, protocol = proxy_server(Proxy(url, credentials_from_info(key, "test"), AUD, 10, http2=http2))
    protocol.header_timeout = header_timeout or protocol.header_timeout
    with AsgiServer(app, bind("127.0.0.1", 0), protocol=protocol, date_header=False) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(service: Recorder, key: dict[str, str]) -> Iterator[AsgiServer]:
    with proxying(f"http://127.0.0.1:{service.port}/base", key) as server:
        yield server


@pytest.fixture
def client(proxy: AsgiServer) -> Iterator[Client]:
    opened = Client(proxy.port, validate=False)
    yield opened
    opened.close()


@pytest.fixture
def mints(gcptoken_emulator: EmulatorClient, key: dict[str, str]) -> Any:
    return lambda: len(gcptoken_emulator.token_requests_by(key["client_email"]))


def still_served(proxy: AsgiServer, service: Recorder, mints: Any, before: int, minted: int) -> None:
    """Nothing reached the service or minted a token; a clean stream on a new connection does."""
    assert service.seen[before:] == [] and mints() == minted
    clean = Client(proxy.port)
    try:
        headers, body, _ = clean.answer(clean.request(b"/control"))
    finally:
        clean.close()
    assert headers[b":status"] == b"200" and body == b"/base/control"
    assert len(service.seen) == before + 1 and mints() == minted + 1


def test_http2_flag_sends_http1_clients_requests_over_http2(service: Recorder, key: dict[str, str]) -> None:
    with proxying(f"http://127.0.0.1:{service.port}/base", key, http2=True) as server:
        answer = httpx.post(f"{server.url}/over-h2", content=b"body")  # HTTP/1.1 to the proxy
    assert answer.status_code == 200 and answer.text == "/base/over-h2"  # the service speaks h2c only
    assert service.seen[-1][b"authorization"].startswith(b"Bearer ey")


def test_a_clean_stream_carries_the_token_to_the_service_under_its_path(client: Client, service: Recorder) -> None:
    headers, body, trailers = client.answer(client.request(b"/hello?x=1", extra=[(b"te", b"trailers")]))
    assert headers[b":status"] == b"200" and body == b"/base/hello?x=1" and trailers == {b"grpc-status": b"0"}
    seen = service.seen[-1]
    assert seen[b":authority"] == f"127.0.0.1:{service.port}".encode()  # the service's, never the client's
    assert seen[b"authorization"].startswith(b"Bearer ey") and seen[b"te"] == b"trailers"


@pytest.mark.parametrize(
    ("path", "method", "extra", "status"),
    [
        (b"/hello", b"GET", [(b":authority", b"evil.example")], 403),  # DNS rebinding
        (b"/hello", b"POST", [(b"origin", b"https://evil.example")], 403),  # another site's page
        (b"/../secret", b"GET", [], 400),
        (b"/%2e%2e/secret", b"GET", [], 400),
        (b"//evil.example/x", b"GET", [], 400),
        (b"/a\\b", b"GET", [], 400),
        (b"*", b"OPTIONS", [], 400),
        (b"/hello", b"TRACE", [], 400),  # its echo would carry the token
        (b"/hello", b"GE T", [], 400),  # a :method no token (RFC 9110 §9.1)
        (b"/hello", b"G(T", [], 400),
        (b"/a b", b"GET", [], 400),  # a :path with a space
        (b"/hello", b"GET", [(b":scheme", b"ftp")], 400),
    ],
)
def test_refused_streams_reach_nothing(
    proxy: AsgiServer,
    client: Client,
    service: Recorder,
    mints: Any,
    path: bytes,
    method: bytes,
    extra: Headers,
    status: int,
) -> None:
    before, minted = len(service.seen), mints()
    if extra and extra[0][0] == b":authority":
        client.authority, extra = extra[0][1], []
    if extra and extra[0][0] == b":scheme":
        client.scheme, extra = extra[0][1], []
    headers, body, _ = client.answer(client.request(path, method, extra))
    assert headers[b":status"] == b"%d" % status
    assert body.count(b"\n") == 1 and b"Traceback" not in body and headers[b"content-type"].startswith(b"text/plain")
    still_served(proxy, service, mints, before, minted)


def test_grpc_refusals_say_it_in_grpc_status(
    client: Client, service: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client.authority = b"evil.example"
    grpc = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]
    headers, _, _ = client.answer(client.request(b"/t.S/M", b"POST", grpc))
    assert headers[b":status"] == b"200" and headers[b"grpc-status"] == b"7"  # PERMISSION_DENIED
    assert headers[b"grpc-message"].startswith(b"Forbidden: Host 'evil.example' is not served here")
    deadline = time.monotonic() + 5
    while "refused POST /t.S/M" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "refused POST /t.S/M from 127.0.0.1: 403 (grpc-status 7) Forbidden" in caplog.text


@pytest.mark.parametrize(
    "extra",
    [
        [(b"connection", b"keep-alive")],
        [(b"transfer-encoding", b"chunked")],
        [(b"upgrade", b"websocket")],
        [(b"te", b"gzip")],
        [(b"x-split", b"a\r\nx-injected: 1")],
        [(b"x-nul", b"a\x00b")],
        [(b"X-Upper", b"1")],
        [(b"host", b"evil.example")],  # :authority and Host apart
        [(b"x-big", b"a" * 40_000)],  # a header list over MAX_HEADER_LIST_SIZE
    ],
)
def test_malformed_headers_never_reach_the_service(
    proxy: AsgiServer, client: Client, service: Recorder, mints: Any, extra: Headers
) -> None:
    """RFC 9113 §8.2: connection-specific headers, TE other than trailers, CR/LF/NUL, upper case and
    a Host beside a different :authority make a stream malformed (and a header list over the limit
    too much): it is reset or the connection closed, never forwarded."""
    before, minted = len(service.seen), mints()
    stream_id = client.request(b"/hello", b"GET", extra)
    headers, _, _ = client.answer(stream_id)
    assert b":status" not in headers
    still_served(proxy, service, mints, before, minted)


def test_planted_and_hop_by_hop_headers_are_dropped_and_the_clients_authorization_kept(
    client: Client, service: Recorder
) -> None:
    planted = [(b"proxy-authorization", b"Bearer planted"), (b"authorization", b"Basic mine")]
    client.answer(client.request(b"/hello", b"GET", planted))
    seen = service.seen[-1]
    assert seen[b"authorization"] == b"Basic mine"  # the client's own, untouched
    assert seen[b"proxy-authorization"].startswith(b"Bearer ey") and seen[b"proxy-authorization"] != b"Bearer planted"


def test_the_peer_rule_is_the_http1_sides() -> None:
    policy = GuardPolicy()
    headers = [(b":method", b"GET"), (b":path", b"/x"), (b":authority", b"127.0.0.1:8080")]
    refused = check_stream(headers, True, "10.1.2.3", ("127.0.0.1", 8080), policy)
    assert not isinstance(refused, Checked) and refused[0] == 403 and "10.1.2.3 is not allowed" in refused[1]
    assert isinstance(check_stream(headers, True, "127.0.0.1", ("127.0.0.1", 8080), policy), Checked)


def test_rapid_reset_ends_the_connection(proxy: AsgiServer, service: Recorder, mints: Any) -> None:
    """CVE-2023-44487: streams opened and reset at once, by the thousand."""
    flood = Client(proxy.port)
    try:
        for _ in range(400):
            stream_id = flood.request(b"/hello", end=False)
            flood.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            flood.flush()
        ended = flood.goaway()
    finally:
        flood.close()
    assert ended is not None and ended.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    clean = Client(proxy.port)
    clean.sock.settimeout(30)  # the flood's streams are still being wound down: on a loaded machine, seconds
    try:
        assert clean.answer(clean.request(b"/after"))[1] == b"/base/after"
    finally:
        clean.close()


def test_a_ping_flood_ends_the_connection(proxy: AsgiServer) -> None:
    flood = Client(proxy.port)
    try:
        for n in range(proxy_h2.MAX_CONTROL_FRAMES + 10):
            flood.conn.ping(b"%08d" % n)
        flood.flush()
        ended = flood.goaway()
    finally:
        flood.close()
    assert ended is not None and ended.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def test_a_continuation_flood_ends_the_connection(proxy: AsgiServer, service: Recorder) -> None:
    flood = Client(proxy.port)
    before = len(service.seen)
    try:
        headers = hyperframe.frame.HeadersFrame(1)
        headers.data = flood.conn.encoder.encode([(b":method", b"GET"), (b":path", b"/x")])
        frames = [headers.serialize()]
        for _ in range(200):
            continuation = hyperframe.frame.ContinuationFrame(1)
            continuation.data = flood.conn.encoder.encode([(b"x-pad", b"y" * 100)])
            frames.append(continuation.serialize())
        with contextlib.suppress(OSError):
            flood.sock.sendall(b"".join(frames))
        flood.read(lambda c: False)  # until the proxy closes it
    finally:
        flood.close()
    assert flood.closed and service.seen[before:] == []


def test_too_many_streams_at_once_are_refused(proxy: AsgiServer, service: Recorder) -> None:
    """Streams beyond MAX_CONCURRENT_STREAMS (sent before the proxy's SETTINGS were read) never all
    reach the service."""
    eager = Client(proxy.port)
    before = len(service.seen)
    try:
        for _ in range(proxy_h2.MAX_STREAMS + 20):
            eager.request(b"/slow", end=False)  # bodies never end: every stream stays open
        eager.read(
            lambda c: any(isinstance(e, (h2.events.StreamReset, h2.events.ConnectionTerminated)) for e in c.events)
        )
    finally:
        eager.close()
    assert len(service.seen) - before <= proxy_h2.MAX_STREAMS


def test_a_silent_or_half_preface_connection_is_dropped(
    service: Recorder, key: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(proxy_h2.H2Front, "settings_timeout", 0.3)
    with proxying(f"http://127.0.0.1:{service.port}", key, header_timeout=0.3) as server:
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        settings = hyperframe.frame.SettingsFrame(0).serialize()
        # half, whole without SETTINGS, and with SETTINGS but no request (headers are due as over HTTP/1.1)
        for opening in (preface[:16], preface, preface + settings):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
                raw.sendall(opening)
                assert raw.recv(65536) is not None  # (SETTINGS first, for the whole preface)
                raw.settimeout(3)
                with contextlib.suppress(ConnectionResetError):
                    while raw.recv(65536):
                        pass  # closed within the deadline: recv returns b""


def test_no_token_in_the_log(
    proxy: AsgiServer, client: Client, service: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client.answer(client.request(b"/logged?access_token=secret"))
    client.authority = b"evil.example"
    client.answer(client.request(b"/refused"))
    token = service.seen[-1][b"authorization"].split(b" ")[1].decode()
    deadline = time.monotonic() + 5
    while "/logged -> 200" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.01)  # the stream's line is written once its task ends, after the answer
    text = caplog.text
    assert "GET /logged -> 200 (HTTP/2)" in text and text.count("GET /refused") == 1  # each refusal once
    assert "refused GET /refused from 127.0.0.1: 403 Forbidden" in text
    assert token not in text and "secret" not in text


def test_an_invalid_token_401_forces_one_new_token_and_a_bodyless_request_is_sent_again(
    proxy: AsgiServer, client: Client, service: Recorder, mints: Any
) -> None:
    client.answer(client.request(b"/warm"))  # a token in the cache
    minted = mints()
    service.refuse.add(b"/base/refused-once")
    headers, body, _ = client.answer(client.request(b"/refused-once"))
    assert headers[b":status"] == b"200" and body == b"/base/refused-once"
    assert [seen[b":path"] for seen in service.seen[-2:]] == [b"/base/refused-once"] * 2
    assert mints() == minted + 1  # forced (the emulator may mint the very same token within a second)
    service.refuse.add(b"/base/refused-with-body")  # a streamed body was not kept: the 401 goes back
    stream_id = client.request(b"/refused-with-body", b"POST", end=False)
    client.conn.send_data(stream_id, b"body", end_stream=True)
    client.flush()
    assert client.answer(stream_id)[0][b":status"] == b"401"
    assert mints() == minted + 1  # a new token was forced less than REFRESH_INTERVAL ago: not again


def test_each_client_has_its_own_connection_to_the_service_and_a_goaway_opens_another(
    proxy: AsgiServer, service: Recorder
) -> None:
    """What one client does (a flood, a bad answer) never reaches another's streams; a client's
    streams share its connection to the service until a GOAWAY; a stream the GOAWAY did not take
    (never processed, RFC 9113 §6.8) is sent again on a new connection, unseen by the client."""
    clients = [Client(proxy.port) for _ in range(2)]
    try:
        before = len(service.transports)
        for n, each in enumerate(clients):
            for again in range(2):
                assert each.answer(each.request(b"/own%d" % again))[1] == b"/base/own%d" % again
            assert len(service.transports) == before + n + 1  # one per client, kept for its streams
        service.not_taken.add(b"/base/not-taken")
        assert clients[0].answer(clients[0].request(b"/not-taken"))[1] == b"/base/not-taken"
        assert len(service.transports) == before + 3
        service.goaway()
        deadline = time.monotonic() + 5
        while len(service.transports) == before + 3 and time.monotonic() < deadline:
            answer = clients[1].answer(clients[1].request(b"/after-goaway"))
            time.sleep(0.01)
        assert answer[1] == b"/base/after-goaway" and len(service.transports) == before + 4
    finally:
        for each in clients:
            each.close()


def test_a_bad_answer_from_the_service_ends_only_that_clients_streams(proxy: AsgiServer, service: Recorder) -> None:
    """Headers over 64 KiB are a connection error to ``h2``: the connection to the service that
    carried them ends, with the streams of that one client on it; another client's stream under
    way goes on, and the first client's next stream gets a new connection."""
    bad, other = Client(proxy.port), Client(proxy.port)
    try:
        pending = other.request(b"/other", b"POST", end=False)  # under way on its own connection
        assert other.answer(other.request(b"/warm"))[1] == b"/base/warm"
        service.oversized.add(b"/base/oversized")
        headers, _, _ = bad.answer(bad.request(b"/oversized"))
        assert headers.get(b":status", b"502") == b"502"
        assert bad.answer(bad.request(b"/next"))[1] == b"/base/next"
        other.conn.send_data(pending, b"", end_stream=True)
        other.flush()
        assert other.answer(pending)[1] == b"/base/other"
    finally:
        service.oversized.discard(b"/base/oversized")
        bad.close()
        other.close()


def test_an_answer_without_a_valid_status_is_a_502(client: Client) -> None:
    headers, body, _ = client.answer(client.request(b"/odd-status"))
    assert headers[b":status"] == b"502" and body == b"gcptoken proxy: the service answered no valid :status\n"
