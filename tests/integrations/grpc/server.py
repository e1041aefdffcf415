"""A real grpcio server on 127.0.0.1 for the gRPC tests: echo methods of every kind (bytes in and
out, no generated code) behind a server interceptor that verifies each call's ID token with
gcptoken's Verifier against the emulator's keys, and refuses with UNAUTHENTICATED. Also a token
endpoint that answers slowly (a forwarder to the emulator's), and a TLS certificate for loopback."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gcptoken import Verifier
from gcptoken.credentials import Credentials, credentials_from_info
from gcptoken.errors import VerificationError
from gcptoken.integrations.bearer import token_from

SERVICE = "test.Echo"
UNARY, SERVER_STREAM, CLIENT_STREAM, BIDI = (f"/{SERVICE}/{name}" for name in ("Unary", "Server", "Client", "Bidi"))


def _same(data: bytes) -> bytes:
    return data


class Echo:
    """The echo methods on a sync ``channel``, bytes in and out."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.unary = channel.unary_unary(UNARY, _same, _same)
        self.server_stream = channel.unary_stream(SERVER_STREAM, _same, _same)
        self.client_stream = channel.stream_unary(CLIENT_STREAM, _same, _same)
        self.bidi = channel.stream_stream(BIDI, _same, _same)


class AioEcho:
    """The echo methods on a ``grpc.aio`` channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.unary = channel.unary_unary(UNARY, _same, _same)
        self.server_stream = channel.unary_stream(SERVER_STREAM, _same, _same)
        self.client_stream = channel.stream_unary(CLIENT_STREAM, _same, _same)
        self.bidi = channel.stream_stream(BIDI, _same, _same)


if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]  # generic only in the stubs


def details(error: grpc.RpcError) -> str:
    """A failed call's details (typed Optional by grpc's stubs; every failure here has them)."""
    text = error.details()
    assert text is not None
    return text


def _refusing(handler: Handler, message: str) -> Handler:
    """A handler of the same kind as ``handler`` that ends the call with UNAUTHENTICATED."""

    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


class VerifyingInterceptor(grpc.ServerInterceptor):
    """Lets a call through only with ``authorization: Bearer <token>`` the verifier accepts (at the
    test clock's time); keeps what it accepted and refused for the tests to read."""

    def __init__(self, verifier: Verifier, clock: Callable[[], float]) -> None:
        self.verifier, self.clock = verifier, clock
        self.header = "authorization"  # where the token is read
        self.accepted: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.metadata: list[list[tuple[str, Any]]] = []  # every call's, as received

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Handler | None], details: Any
    ) -> Handler | None:
        handler = continuation(details)
        if handler is None:
            return None
        self.metadata.append(list(details.invocation_metadata))
        metadata = {key: value for key, value in details.invocation_metadata}
        try:
            token = token_from(metadata.get(self.header), "authorization")  # "Bearer <token>" either way
            claims = self.verifier.verify(token, now=self.clock())
        except VerificationError as error:
            self.refused.append(str(error))
            return _refusing(handler, str(error))
        self.accepted.append({**claims, "token": token})
        return handler


def _unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b"unary:" + request


def _server_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for index in range(int(request or b"3")):
        yield b"%d" % index


def _client_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    return b"+".join(requests)


def _bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for request in requests:
        yield b"echo:" + request


class EchoServer:
    """``with EchoServer(verifier) as server``: ``server.target`` is ``127.0.0.1:PORT``; ``tls`` a
    (key, certificate) pair in PEM to serve TLS with instead of local credentials."""

    def __init__(
        self, verifier: Verifier, clock: Callable[[], float] = time.time, tls: tuple[bytes, bytes] | None = None
    ) -> None:
        self.interceptor = VerifyingInterceptor(verifier, clock)
        self._pool = futures.ThreadPoolExecutor(max_workers=16)
        self.server = grpc.server(self._pool, interceptors=[self.interceptor])
        handlers: dict[str, Handler] = {
            "Unary": grpc.unary_unary_rpc_method_handler(_unary),
            "Server": grpc.unary_stream_rpc_method_handler(_server_stream),
            "Client": grpc.stream_unary_rpc_method_handler(_client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(_bidi),
        }
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
        credentials = (
            grpc.ssl_server_credentials([tls])
            if tls
            else grpc.local_server_credentials(grpc.LocalConnectionType.LOCAL_TCP)
        )
        self.port = self.server.add_secure_port("127.0.0.1:0", credentials)
        self.target = f"127.0.0.1:{self.port}"

    def __enter__(self) -> EchoServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(None).wait()
        self._pool.shutdown(wait=True)


AUDIENCE = "https://svc-test-uc.a.run.app"


def verifier_for(emulator_url: str, *audiences: str) -> Verifier:
    """A Verifier of the emulator's tokens for AUDIENCE and ``audiences``."""
    return Verifier([AUDIENCE, *audiences], certs=f"{emulator_url}/oauth2/v3/certs")


def serving(emulator_url: str) -> Iterator[EchoServer]:
    """An EchoServer accepting AUDIENCE and the audience a channel reads from its own target
    (``http://127.0.0.1:PORT``: local credentials), for a fixture to yield from."""
    echo = EchoServer(verifier_for(emulator_url))
    echo.interceptor.verifier = verifier_for(emulator_url, f"http://{echo.target}")
    with echo:
        yield echo


def certificate(*names: str) -> tuple[bytes, bytes]:
    """A self-signed certificate (its own CA) for ``names`` and the loopback addresses: (key, cert) PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gcptoken grpc test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    alternatives: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    alternatives += [x509.IPAddress(ipaddress.ip_address(address)) for address in ("127.0.0.1", "::1")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


class SlowTokenEndpoint:
    """A token endpoint that waits ``delay`` seconds, then passes the request to ``upstream`` (the
    emulator's); ``url`` goes in a key file's token_uri. ``hits`` counts the requests; the first
    ``refuse`` of them are refused as Google refuses a revoked key (400 invalid_grant)."""

    def __init__(self, upstream: str, delay: float = 0.0, refuse: int = 0) -> None:
        self.upstream, self.delay, self.refuse, self.hits = upstream, delay, refuse, 0
        self.closing = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.hits += 1
                body = self.rfile.read(int(self.headers["content-length"]))
                if outer.closing.wait(outer.delay):  # the test is over: no answer, nothing forwarded
                    self.close_connection = True
                    return
                if outer.hits <= outer.refuse:
                    data, status = (
                        b'{"error": "invalid_grant", "error_description": "Invalid grant: account not found"}',
                        400,
                    )
                else:
                    headers = {"content-type": self.headers["content-type"]}
                    with urllib.request.urlopen(
                        urllib.request.Request(outer.upstream, body, headers), timeout=10
                    ) as answer:
                        data, status = answer.read(), answer.status
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        # a short poll: shutdown() waits for the loop to look (0.5 s by default)
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> SlowTokenEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()


@contextmanager
def slow_credentials(
    emulator_url: str, key_info: dict[str, str], delay: float = 0.0, refuse: int = 0
) -> Iterator[tuple[SlowTokenEndpoint, Credentials]]:
    """A SlowTokenEndpoint in front of the emulator's, and credentials of ``key_info`` that use it."""
    with SlowTokenEndpoint(f"{emulator_url}/token", delay=delay, refuse=refuse) as endpoint:
        yield endpoint, credentials_from_info({**key_info, "token_uri": endpoint.url}, "test key")
