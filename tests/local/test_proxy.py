"""``gcptoken proxy`` in front of a private service that verifies ID tokens: bodies streamed both
ways (a large one too), a WebSocket echo, redirects, the client's own Authorization kept beside
Proxy-Authorization, tokens renewed across expiry, one retry on invalid_token, and bad input."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from gcptoken import VerificationError, Verifier
from gcptoken.emulator import EmulatorServer
from gcptoken.servers.serving import AsgiServer, bind
from tests.cli.test_cli import COMMAND, gcptoken
from tests.clock import Clock

pytestmark = pytest.mark.slow

AUD = "https://svc-proxied.a.run.app"


class Upstream:
    """A private service: a Google ID token for AUD in Proxy-Authorization, else Authorization."""

    def __init__(self, certs: str) -> None:
        self.verifier = Verifier(AUD, certs=certs)
        self.tokens: list[str] = []
        self.targets: list[bytes] = []  # every request's raw path, as it arrives
        self.refuse_next = False
        self.url = ""

    def _token(self, headers: dict[str, str]) -> str | None:
        header = headers.get("proxy-authorization") or headers.get("authorization") or ""
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        if token is None:
            return None
        try:
            self.verifier.verify(token)
        except VerificationError:
            return None
        self.tokens.append(token)
        return token

    def app(self) -> ASGIApp:
        async def guarded(request: Request) -> Response:
            headers = dict(request.headers)
            if self._token(headers) is None or self.refuse_next:
                self.refuse_next = False
                return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return await routes[request.url.path](request)

        async def hello(request: Request) -> Response:
            return JSONResponse(
                {
                    "path": request.url.path,
                    "query": request.url.query,
                    "client_authorization": request.headers.get("authorization"),
                }
            )

        async def echo(request: Request) -> Response:
            received = await request.body()  # (a StreamingResponse would race Starlette's disconnect watch)

            async def body() -> AsyncIterator[bytes]:
                for start in range(0, len(received), 64 * 1024):
                    yield received[start : start + 64 * 1024]

            return StreamingResponse(body(), media_type="application/octet-stream")

        async def redirect(request: Request) -> Response:
            return RedirectResponse(f"{self.url}/hello?from=redirect", status_code=302)

        async def elsewhere(request: Request) -> Response:
            return RedirectResponse("https://accounts.example.org/login", status_code=302)

        async def socket_echo(websocket: WebSocket) -> None:
            if self._token(dict(websocket.headers)) is None:
                await websocket.close(code=1008)
                return
            await websocket.accept()
            async for text in websocket.iter_text():
                await websocket.send_text(f"echo: {text}")

        routes = {"/hello": hello, "/echo": echo, "/redirect": redirect, "/elsewhere": elsewhere}
        app = Starlette(
            routes=[
                *[Route(path, guarded, methods=["GET", "POST", "PUT"]) for path in routes],
                WebSocketRoute("/ws", socket_echo),
            ]
        )

        async def recording(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] in ("http", "websocket"):
                self.targets.append(scope["raw_path"])
            await app(scope, receive, send)

        return recording


@pytest.fixture(scope="module")
def emu(clocked_emulator: EmulatorServer) -> EmulatorServer:
    return clocked_emulator


@pytest.fixture(scope="module")
def upstream(emu: EmulatorServer) -> Iterator[Upstream]:
    service = Upstream(f"{emu.url}/oauth2/v3/certs")
    with AsgiServer(service.app(), bind("127.0.0.1", 0)) as server:
        service.url = server.url
        yield service


@pytest.fixture(scope="module")
def key_path(emu: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("proxy-key") / "key.json"
    path.write_text(json.dumps(emu.key_file("proxy-caller")))
    return path


class Proxy:
    def __init__(self, emu: EmulatorServer, *args: str) -> None:
        self.process = subprocess.Popen(
            [*COMMAND, "proxy", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "GCPTOKEN_EMULATOR_HOST": emu.host_port,
                "GCE_METADATA_HOST": emu.host_port,
                "GCE_METADATA_IP": emu.host_port,
            },
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url:
            raise AssertionError(self.stop()[1])

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=20)
        return self.process.returncode, err


@pytest.fixture(scope="module")
def proxy(emu: EmulatorServer, upstream: Upstream, key_path: Path) -> Iterator[Proxy]:
    running = Proxy(emu, upstream.url, "--audience", AUD, "--credentials", str(key_path))
    yield running
    code, err = running.stop()
    assert code == 0, err


def test_get_with_a_fresh_id_token(proxy: Proxy, upstream: Upstream) -> None:
    answer = httpx.get(f"{proxy.url}/hello?x=1&y=%2F")
    assert answer.status_code == 200
    seen = answer.json()
    assert seen["path"] == "/hello" and seen["query"] == "x=1&y=%2F"
    assert seen["client_authorization"] == f"Bearer {upstream.tokens[-1]}"  # the proxy's token
    assert httpx.get(f"{proxy.url}/hello", headers={"Connection": "close"}).status_code == 200
    assert len(answer.headers.get_list("date")) == 1  # the service's, not a second one from the proxy


def test_post_bodies_stream_both_ways(proxy: Proxy) -> None:
    small = httpx.post(f"{proxy.url}/echo", content=b"hello body")
    assert small.status_code == 200 and small.content == b"hello body"
    large = os.urandom(8 * 1024 * 1024)  # well over what the proxy keeps for a retry: streamed

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(large), 256 * 1024):
            yield large[start : start + 256 * 1024]

    with httpx.Client(timeout=60) as client:
        answer = client.post(f"{proxy.url}/echo", content=chunks())
    assert answer.status_code == 200
    assert hashlib.sha256(answer.content).hexdigest() == hashlib.sha256(large).hexdigest()


def test_keep_alive_serves_many_requests(proxy: Proxy) -> None:
    with httpx.Client() as client:
        assert [client.get(f"{proxy.url}/hello").status_code for _ in range(20)] == [200] * 20


def test_redirects_to_the_service_come_back_to_the_proxy(proxy: Proxy) -> None:
    answer = httpx.get(f"{proxy.url}/redirect")
    assert answer.status_code == 302
    assert answer.headers["location"] == f"{proxy.url}/hello?from=redirect"
    assert httpx.get(f"{proxy.url}/redirect", follow_redirects=True).json()["query"] == "from=redirect"
    elsewhere = httpx.get(f"{proxy.url}/elsewhere")
    assert elsewhere.headers["location"] == "https://accounts.example.org/login"  # another origin: untouched


def test_the_clients_own_authorization_is_kept(proxy: Proxy, upstream: Upstream) -> None:
    answer = httpx.get(f"{proxy.url}/hello", headers={"Authorization": "Basic YXBwOnNlY3JldA=="})
    assert answer.status_code == 200
    assert answer.json()["client_authorization"] == "Basic YXBwOnNlY3JldA=="  # the token went in Proxy-Authorization
    # A Connection header naming the token's headers removes the client's own (hop-by-hop, as
    # asked), never the token the proxy adds after: the service gets exactly the proxy's token.
    named = {"Authorization": "Basic YXBwOnNlY3JldA==", "Connection": "authorization, proxy-authorization"}
    answer = httpx.get(f"{proxy.url}/hello", headers=named)
    assert answer.status_code == 200
    assert answer.json()["client_authorization"] == f"Bearer {upstream.tokens[-1]}"


def test_a_websocket_is_relayed(proxy: Proxy) -> None:
    from websockets.sync.client import connect

    with connect(proxy.url.replace("http://", "ws://") + "/ws", open_timeout=10) as websocket:
        websocket.send("ping")
        assert websocket.recv(timeout=10) == "echo: ping"
        websocket.send("again")
        assert websocket.recv(timeout=10) == "echo: again"


def test_an_invalid_token_401_is_retried_once_with_a_new_token(
    proxy: Proxy, upstream: Upstream, emu: EmulatorServer
) -> None:
    def minted() -> int:
        return sum(
            1
            for entry in emu.state.request_log()
            if entry["path"] == "/token"
            and entry.get("detail", {}).get("assertion", {}).get("claims", {}).get("target_audience") == AUD
        )

    upstream.refuse_next = True
    before, fetched = len(upstream.tokens), minted()
    answer = httpx.post(f"{proxy.url}/echo", content=b"kept for the retry")
    assert answer.status_code == 200 and answer.content == b"kept for the retry"
    assert len(upstream.tokens) - before == 2  # refused, then sent again
    assert minted() == fetched + 1  # with a token fetched anew, not the cached one


def test_tokens_are_renewed_across_expiry(emu: EmulatorServer, upstream: Upstream, clock: Clock) -> None:
    """The emulated VM's ID tokens, minted on a clock an hour behind, live three seconds: the proxy
    (here on the metadata server's credential) renews its token instead of sending an expired one."""
    clock.offset = -3597
    running = None
    try:
        running = Proxy(emu, upstream.url, "--audience", AUD, "--source", "metadata")
        assert httpx.get(f"{running.url}/hello").status_code == 200
        first = upstream.tokens[-1]
        time.sleep(3.2)
        assert httpx.get(f"{running.url}/hello").status_code == 200
        assert upstream.tokens[-1] != first
    finally:
        clock.offset = 0
        if running is not None:
            running.stop()


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET http://evil.example/hello HTTP/1.1",  # absolute-form: never another host
        b"GET //evil.example/hello HTTP/1.1",
        b"GET /%2e%2e/hello HTTP/1.1",  # never above the service's path
        b"CONNECT evil.example:443 HTTP/1.1",
    ],
)
def test_only_the_services_host_is_ever_reached(proxy: Proxy, upstream: Upstream, request_line: bytes) -> None:
    """As served by ``gcptoken proxy``: a target other than /path?query is a 400, and nothing is sent on."""
    host_port = proxy.url.removeprefix("http://")
    host, port = host_port.split(":")
    before = len(upstream.targets)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(request_line + b"\r\nHost: " + host_port.encode() + b"\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := raw.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400 ") and b"Traceback" not in reply
    assert upstream.targets[before:] == []
    assert httpx.get(f"{proxy.url}/hello").status_code == 200 and upstream.targets[-1] == b"/hello"


def test_an_unreachable_service_is_a_502_with_a_clear_body(emu: EmulatorServer, key_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    running = Proxy(emu, f"http://127.0.0.1:{port}", "--audience", AUD, "--credentials", str(key_path))
    try:
        answer = httpx.get(f"{running.url}/anything")
        assert answer.status_code == 502
        assert answer.text == f"gcptoken proxy: cannot reach 127.0.0.1:{port}: connection refused\n"
    finally:
        running.stop()


def test_credentials_without_id_tokens_are_refused_at_start(emu: EmulatorServer, tmp_path: Path) -> None:
    user = tmp_path / "user.json"
    user.write_text(json.dumps(emu.state.issue_refresh_token("proxy-user@example.com")))
    result = gcptoken("proxy", AUD, "--credentials", str(user), env={"GCPTOKEN_EMULATOR_HOST": emu.host_port})
    assert result.code == 1 and result.err.count("\n") == 1 and "--impersonate-service-account" in result.err


def test_a_port_in_use_is_one_line(emu: EmulatorServer, key_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = gcptoken(
            "proxy",
            AUD,
            "--credentials",
            str(key_path),
            "--port",
            str(port),
            env={"GCPTOKEN_EMULATOR_HOST": emu.host_port},
        )
    assert result.code == 3 and f"cannot listen on 127.0.0.1:{port}" in result.err


@pytest.mark.parametrize(
    "url", ["ftp://files.example", "http://exa mple.com", "http://[::1", "https://x.a.run.app:99999", "https://x/?q=1"]
)
def test_a_bad_url_is_a_usage_error_before_credentials_are_read(url: str) -> None:
    result = gcptoken("proxy", url, "--credentials", "/nonexistent/key.json")
    assert result.code == 2 and result.err.count("\n") == 1 and "Traceback" not in result.err


def test_a_content_length_of_thousands_of_digits_is_no_crash(proxy: Proxy) -> None:
    host, port = proxy.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\nConnection: close\r\n\r\nab"
        )
        reply = b""
        while chunk := raw.recv(65536):
            reply += chunk
    assert not reply.startswith(b"HTTP/1.1 5")  # refused as a bad request, or closed: never a 500
    assert httpx.get(f"{proxy.url}/hello").status_code == 200  # and the proxy still serves


def test_verbose_proxy_prints_no_token(emu: EmulatorServer, upstream: Upstream, key_path: Path) -> None:
    running = Proxy(emu, upstream.url, "--audience", AUD, "--credentials", str(key_path), "-v")
    try:
        assert httpx.get(f"{running.url}/hello").status_code == 200
    finally:
        _, err = running.stop()
    token = upstream.tokens[-1]
    assert token not in err and token.rsplit(".", 1)[1] not in err
    assert "target_audience" in err  # -v did log the token request, claims only
