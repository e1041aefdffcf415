"""gRPC through ``gcptoken proxy``: a real ``grpcio`` client on an insecure channel to the proxy's
port (no code change: HTTP/2 with prior knowledge is detected), a real ``grpcio`` server behind it
whose interceptor verifies the ID token with gcptoken's Verifier against the emulator's keys.
Unary, server, client and bidi streaming; status codes, messages and binary metadata in trailers;
cancellation and deadlines reaching the server; messages larger than any flow-control window;
many concurrent RPCs on one connection; and the HTTP/1.1 side still the same on the same port."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from gcptoken import VerificationError, Verifier
from gcptoken.credentials import Credentials, credentials_from_info
from gcptoken.emulator.sts.mtls import Issued, WorkloadCa
from gcptoken.local.proxy import Proxy
from gcptoken.local.proxy_h2 import proxy_server
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient
from tests.local.test_proxy_h2_hostile import Client

AUD = "https://svc-grpc.a.run.app"
NO_PROXY = [("grpc.enable_http_proxy", 0)]  # never an HTTP proxy from the environment


def identity(data: bytes) -> bytes:
    return data


class GrpcService:
    """A gRPC server that verifies the ID token of every call and records what it saw."""

    def __init__(self, certs: str, tls: Issued | None = None) -> None:
        self.verifier = Verifier(AUD, certs=certs)
        self.tokens: list[str] = []
        self.cancelled = threading.Event()
        self.paused = threading.Event()
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=40), interceptors=[_Verifying(self)], options=NO_PROXY
        )
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.S", self._handlers())])
        if tls is None:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        else:  # TLS, with ALPN h2 as grpcio always offers it
            chain = grpc.ssl_server_credentials([(tls.key_pem.encode(), tls.cert_pem.encode())])
            self.port = self.server.add_secure_port("127.0.0.1:0", chain)

    def _handlers(self) -> dict[str, grpc.RpcMethodHandler[bytes, bytes]]:
        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            if request.startswith(b"fail:"):
                context.set_trailing_metadata((("detail-bin", b"\x00\xff binary"), ("why", "asked to")))
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, request[5:].decode())
            if request.startswith(b"big:"):
                return b"x" * int(request[4:])
            context.set_trailing_metadata((("echo-bin", request[:16]),))
            return request

        def server_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            for n in range(int(request)):
                yield b"%d" % n

        def client_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
            return b"%d" % sum(len(r) for r in requests)

        def bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
            for request in requests:
                yield b"echo " + request

        def slow(request: bytes, context: grpc.ServicerContext) -> bytes:
            context.add_callback(self.cancelled.set)
            deadline = time.monotonic() + 10
            while context.is_active() and time.monotonic() < deadline:
                time.sleep(0.01)
            return b"late"

        def big(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            for _ in range(int(request)):  # 60 kB messages, as fast as flow control lets them go
                yield b"b" * 60_000

        def pause(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.paused.set()
            time.sleep(float(request))
            return b"done"

        kinds = {"request_deserializer": identity, "response_serializer": identity}
        return {
            "Unary": grpc.unary_unary_rpc_method_handler(unary, **kinds),
            "Slow": grpc.unary_unary_rpc_method_handler(slow, **kinds),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, **kinds),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, **kinds),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi, **kinds),
            "Big": grpc.unary_stream_rpc_method_handler(big, **kinds),
            "Pause": grpc.unary_unary_rpc_method_handler(pause, **kinds),
        }


class _Verifying(grpc.ServerInterceptor):
    def __init__(self, service: GrpcService) -> None:
        self.service = service

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        header = dict(details.invocation_metadata).get("authorization", "")
        try:
            claims = self.service.verifier.verify(str(header).removeprefix("Bearer "))
        except VerificationError:

            def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "no valid ID token")
                return b""

            return grpc.unary_unary_rpc_method_handler(refuse, identity, identity)
        assert claims["aud"] == AUD
        self.service.tokens.append(str(header))
        return continuation(details)


@pytest.fixture(scope="module")
def service(gcptoken_emulator: EmulatorClient) -> Iterator[GrpcService]:
    running = GrpcService(f"{gcptoken_emulator.url}/oauth2/v3/certs")
    running.server.start()
    yield running
    running.server.stop(None)


@pytest.fixture(scope="module")
def credentials(gcptoken_emulator: EmulatorClient) -> Credentials:
    return credentials_from_info(gcptoken_emulator.new_key("grpc"), "test")


@contextlib.contextmanager
def proxying(url: str, credentials: Credentials, http2: bool = False) -> Iterator[AsgiServer]:
    """``gcptoken proxy URL --audience AUD`` on a free loopback port, as the CLI serves it."""
    app, protocol = proxy_server(Proxy(url, credentials, AUD, http2=http2))
    with AsgiServer(app, bind("127.0.0.1", 0), protocol=protocol, date_header=False) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(service: GrpcService, credentials: Credentials) -> Iterator[AsgiServer]:
    with proxying(f"http://127.0.0.1:{service.port}", credentials) as server:
        yield server


@pytest.fixture(scope="module")
def channel(proxy: AsgiServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(proxy.host_port, options=NO_PROXY) as opened:
        yield opened


def unavailable(url: str, credentials: Credentials) -> str:
    """What a gRPC call through a proxy to ``url`` says, which must be UNAVAILABLE."""
    with (
        proxying(url, credentials) as server,
        grpc.insecure_channel(server.host_port, options=NO_PROXY) as plain,
        pytest.raises(grpc.RpcError) as failed,
    ):
        call(plain, "Unary")(b"x", timeout=10)
    error: Any = failed.value
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    return str(error.details())


def call(channel: grpc.Channel, method: str, kind: str = "unary_unary") -> Any:
    return getattr(channel, kind)(f"/t.S/{method}", request_serializer=identity, response_deserializer=identity)


def test_a_unary_call_carries_a_verified_token(channel: grpc.Channel, service: GrpcService) -> None:
    before = len(service.tokens)
    reply, outcome = call(channel, "Unary").with_call(b"hello", timeout=10)
    assert reply == b"hello"
    assert outcome.code() is grpc.StatusCode.OK
    assert dict(outcome.trailing_metadata())["echo-bin"] == b"hello"
    assert len(service.tokens) == before + 1


def test_status_message_and_binary_trailers_pass_through(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        call(channel, "Unary")(b"fail:not today \xe2\x9c\x93".decode("utf-8").encode(), timeout=10)
    error: Any = failed.value
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "not today \u2713"
    trailers = dict(error.trailing_metadata())
    assert trailers["detail-bin"] == b"\x00\xff binary" and trailers["why"] == "asked to"


def test_streams_in_every_direction(channel: grpc.Channel) -> None:
    assert list(call(channel, "ServerStream", "unary_stream")(b"5", timeout=10)) == [b"0", b"1", b"2", b"3", b"4"]
    assert call(channel, "ClientStream", "stream_unary")(iter([b"ab", b"cde", b""]), timeout=10) == b"5"
    # Bidi in lock step: each answer comes back before the next request is sent (full duplex).
    sent: list[bytes] = []
    answers: list[bytes] = []
    ready = threading.Semaphore(0)

    def requests() -> Iterator[bytes]:
        for n in range(5):
            sent.append(b"%d" % n)
            yield sent[-1]
            assert ready.acquire(timeout=10)

    for answer in call(channel, "Bidi", "stream_stream")(requests(), timeout=10):
        answers.append(answer)
        ready.release()
    assert answers == [b"echo %d" % n for n in range(5)]


def test_messages_larger_than_any_window(channel: grpc.Channel) -> None:
    size = 5 << 20  # beyond the 1 MiB stream windows on both sides, and gRPC's 4 MiB default
    big = call(channel, "Unary").with_call  # the server's answer: 3 MiB
    reply, _ = big(b"big:%d" % (3 << 20), timeout=20)
    assert reply == b"x" * (3 << 20)
    total = call(channel, "ClientStream", "stream_unary")(iter([b"y" * (1 << 20)] * 5), timeout=20)
    assert total == b"%d" % size


def test_cancellation_and_deadlines_reach_the_server(channel: grpc.Channel, service: GrpcService) -> None:
    service.cancelled.clear()
    future = call(channel, "Slow").future(b"", timeout=10)
    time.sleep(0.2)
    future.cancel()
    assert service.cancelled.wait(5)
    service.cancelled.clear()
    with pytest.raises(grpc.RpcError) as late:
        call(channel, "Slow")(b"", timeout=0.3)
    assert late.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert service.cancelled.wait(5)


def test_many_concurrent_rpcs_on_one_connection(channel: grpc.Channel, service: GrpcService) -> None:
    unary = call(channel, "Unary")
    pending = [unary.future(b"n%d" % n, timeout=20) for n in range(200)]
    assert [f.result() for f in pending] == [b"n%d" % n for n in range(200)]


def test_http1_clients_still_get_the_http1_proxy(proxy: AsgiServer) -> None:
    answer = httpx.post(f"{proxy.url}/t.S/Unary", content=b"x", headers={"content-type": "text/plain"})
    assert answer.status_code == 502  # the gRPC server speaks HTTP/2 only
    assert answer.text.startswith("gcptoken proxy: no valid HTTP answer")


def test_https_services_are_reached_over_tls_with_alpn_h2(
    gcptoken_emulator: EmulatorClient,
    credentials: Credentials,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca = WorkloadCa()
    (tmp_path / "ca.pem").write_text(ca.root_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # the CAs every transport trusts
    secure = GrpcService(f"{gcptoken_emulator.url}/oauth2/v3/certs", ca.server_certificate())
    secure.server.start()
    try:
        with (
            proxying(f"https://localhost:{secure.port}", credentials) as server,
            grpc.insecure_channel(server.host_port, options=NO_PROXY) as plain,
        ):
            answers = list(call(plain, "Bidi", "stream_stream")(iter([b"a", b"b"]), timeout=10))
        assert answers == [b"echo a", b"echo b"]
    finally:
        secure.server.stop(None)
    assert len(secure.tokens) == 1


def test_an_https_service_without_http2_is_unavailable_in_one_line(
    credentials: Credentials, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Such as the emulator's Cloud Run front door, served over HTTP/1.1 only."""
    ca = WorkloadCa()
    issued = ca.server_certificate()
    (tmp_path / "ca.pem").write_text(ca.root_pem)
    (tmp_path / "cert.pem").write_text(issued.cert_pem)
    (tmp_path / "key.pem").write_text(issued.key_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    async def http1_only(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with AsgiServer(http1_only, bind("127.0.0.1", 0), ssl_context=context) as service:
        said = unavailable(f"https://localhost:{service.port}", credentials)
    assert said == f"gcptoken proxy: https://localhost:{service.port} does not offer HTTP/2 (ALPN h2)"


def test_a_client_that_never_reads_holds_back_only_its_own_stream(proxy: AsgiServer, channel: grpc.Channel) -> None:
    """Flow control: the proxy sends such a client one window's worth and waits; the service's
    stream waits in turn (its window is not given back); every other RPC goes on."""
    stalled = Client(proxy.port)  # a raw HTTP/2 client that sends one request and reads nothing
    try:
        grpc_headers = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]
        stream_id = stalled.request(b"/t.S/Unary", b"POST", grpc_headers, end=False)
        message = b"big:%d" % (8 << 20)
        stalled.conn.send_data(stream_id, b"\x00" + len(message).to_bytes(4, "big") + message, end_stream=True)
        stalled.flush()
        unary = call(channel, "Unary")
        for n in range(20):
            assert unary(b"meanwhile %d" % n, timeout=5) == b"meanwhile %d" % n
    finally:
        stalled.close()


def test_the_emulators_cloud_run_front_door_speaks_no_http2(
    gcptoken_emulator: EmulatorClient, service: GrpcService, credentials: Credentials
) -> None:
    """The emulated front door is served over HTTP/1.1 (h11): gRPC cannot pass it, and the client
    is told so in one line (the tests above put the token check in the gRPC server instead)."""
    with gcptoken_emulator.cloud_run("grpc-front", f"http://127.0.0.1:{service.port}") as front:
        assert unavailable(front.url, credentials) == f"gcptoken proxy: {front.url} does not speak HTTP/2 (h2c)"


def test_a_stopping_proxy_finishes_quick_streams_and_ends_long_ones(
    service: GrpcService, credentials: Credentials
) -> None:
    with (
        proxying(f"http://127.0.0.1:{service.port}", credentials) as server,
        grpc.insecure_channel(server.host_port, options=NO_PROXY) as plain,
    ):
        service.cancelled.clear()
        slow = call(plain, "Slow").future(b"", timeout=10)
        assert call(plain, "Unary")(b"before", timeout=5) == b"before"
        began = time.monotonic()
        server.stop()  # GOAWAY; the slow stream gets the grace, then ends with its connection
        assert time.monotonic() - began < 4
        with pytest.raises(grpc.RpcError):
            slow.result(timeout=5)
    assert service.cancelled.wait(5)  # and the service's stream was reset, not left running
