"""``gcptoken proxy`` against hostile clients and broken services, over raw sockets on loopback.

The proxy (in this process, on its own port, as ``gcptoken proxy http://SERVICE/base``) sits in
front of a service that records every request the moment it arrives, before its body; tokens come
from the emulator, which counts every one it mints. Each test starts with an empty token cache, so
a token fetched for a refused request would show as a mint. For each refused request: a 400 with a
one-line reason, nothing at the service, no token minted; then a clean request through the same
proxy does reach the service and mint one token (the counters are live)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from gcptoken import Verifier
from gcptoken.credentials import credentials_from_info
from gcptoken.local.proxy import REFRESH_INTERVAL, Proxy
from gcptoken.local.proxy_guard import guarded_proxy
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient

AUD = "https://svc-hostile.a.run.app"
WEBSOCKET = (
    b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
)


class Service:
    """Records each request as it arrives (``complete`` once its whole body came, ``ended`` once
    it is over); answers with what it saw, a redirect to ``?to=``, or 401 while ``refuse`` > 0."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.refuse = 0
        self.on_refuse: Callable[[], None] | None = None  # run (once) as it refuses

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        entry = {
            "kind": scope["type"],
            "raw_path": scope["raw_path"],
            "query": scope["query_string"],
            "headers": scope["headers"],
            "complete": False,
            "ended": False,
        }
        self.seen.append(entry)
        try:
            if scope["type"] == "websocket":
                await self._echo(receive, send)
            elif scope["type"] == "http":
                await self._http(scope, entry, receive, send)
        finally:
            entry["ended"] = True

    async def _echo(self, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": f"echo: {message.get('text')}"})

    async def _http(self, scope: dict[str, Any], entry: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        entry["body"], entry["complete"] = body, True
        headers = [(b"content-type", b"application/json")]
        if self.refuse > 0:
            self.refuse -= 1
            if self.on_refuse is not None:
                self.on_refuse()
                self.on_refuse = None
            status, headers, answer = 401, [(b"www-authenticate", b'Bearer error="invalid_token"')], b"refused here\n"
        elif scope["path"].endswith("/redirect"):
            location = parse_qs(scope["query_string"].decode())["to"][0]
            status, headers, answer = 302, [(b"location", location.encode())], b""
        else:
            status, answer = 200, json.dumps({"path": scope["raw_path"].decode(), "body": len(body)}).encode()
        headers.append((b"content-length", b"%d" % len(answer)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


class FakeClock:
    """Monotonic seconds that move only when a test moves them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def key(gcptoken_emulator: EmulatorClient) -> dict[str, str]:
    return gcptoken_emulator.new_key("hostile")


@pytest.fixture(scope="module")
def service() -> Iterator[tuple[Service, str]]:
    recorder = Service()
    with AsgiServer(recorder, bind("127.0.0.1", 0)) as server:  # type: ignore[arg-type]
        yield recorder, server.url


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@contextlib.contextmanager
def serving(app: Proxy, guarded: bool = False) -> Iterator[AsgiServer]:
    """``app`` on a free loopback port, as ``gcptoken proxy`` serves it (``guarded``: behind its
    request guard and request log); its connections to the service closed on its own loop before
    it stops."""
    loops: list[asyncio.AbstractEventLoop] = []
    served = guarded_proxy(app) if guarded else app

    async def recording_loop(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not loops:
            loops.append(asyncio.get_running_loop())
        await served(scope, receive, send)

    with AsgiServer(recording_loop, bind("127.0.0.1", 0), date_header=False) as server:  # type: ignore[arg-type]
        try:
            yield server
        finally:
            if loops:
                asyncio.run_coroutine_threadsafe(app.aclose(), loops[0]).result(10)


@pytest.fixture(scope="module")
def proxy(service: tuple[Service, str], key: dict[str, str], clock: FakeClock) -> Iterator[AsgiServer]:
    with serving(Proxy(f"{service[1]}/base", credentials_from_info(key, "test"), AUD, 10, clock)) as server:
        yield server


@pytest.fixture
def seen(service: tuple[Service, str]) -> Service:
    return service[0]


@pytest.fixture
def mints(gcptoken_emulator: EmulatorClient, key: dict[str, str]) -> Any:
    return lambda: len(gcptoken_emulator.token_requests_by(key["client_email"]))


def exchange(server: AsgiServer, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` (``HOST`` in it: the server's host:port) on a fresh connection; read until it
    closes (or ``timeout`` seconds pass without a byte)."""
    data = data.replace(b"HOST", server.host_port.encode())
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as raw:
        with contextlib.suppress(OSError):  # refused before it was all sent (a huge header): still answered
            raw.sendall(data)
        reply = b""
        try:
            while chunk := raw.recv(65536):
                reply += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return reply


def status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.") else 0


def header_values(entry: dict[str, Any], name: bytes) -> list[bytes]:
    return [value for key, value in entry["headers"] if key.lower() == name]


def assert_refused(proxy: AsgiServer, seen: Service, mints: Any, request: bytes) -> bytes:
    """``request`` gets a 400 and reaches nothing; then a clean one reaches the service and mints."""
    before, minted = len(seen.seen), mints()
    reply = exchange(proxy, request)
    assert status(reply) == 400, reply[:200]
    assert b"Traceback" not in reply and b"text/plain" in reply.split(b"\r\n\r\n")[0].lower()
    assert seen.seen[before:] == [] and mints() == minted
    answer = httpx.get(f"{proxy.url}/control")
    assert answer.status_code == 200 and answer.json()["path"] == "/base/control"
    assert len(seen.seen) == before + 1 and mints() == minted + 1  # a fetch would have shown
    return reply


REQUEST_TARGETS = {
    "absolute-form": b"GET http://evil.example/hello HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    "absolute-form to the service itself": b"GET http://127.0.0.1/base/hello HTTP/1.1\r\nHost: HOST\r\n\r\n",
    "authority-form CONNECT": b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
    "origin-form CONNECT": b"CONNECT /hello HTTP/1.1\r\nHost: HOST\r\n\r\n",
    "asterisk-form": b"OPTIONS * HTTP/1.1\r\nHost: HOST\r\n\r\n",
    "@host": b"GET @evil.example/x HTTP/1.1\r\nHost: HOST\r\n\r\n",
    "//host": b"GET //evil.example/x HTTP/1.1\r\nHost: HOST\r\n\r\n",
    "a fragment": b"GET /hello#x HTTP/1.1\r\nHost: HOST\r\n\r\n",
    "TRACE (would echo the token)": b"TRACE /hello HTTP/1.1\r\nHost: HOST\r\n\r\n",
    "trace in lower case (a service may fold it)": b"trace /hello HTTP/1.1\r\nHost: HOST\r\n\r\n",
    "TRACK (IIS's TRACE)": b"TRACK /hello HTTP/1.1\r\nHost: HOST\r\n\r\n",
    "non-ASCII in the target": b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: HOST\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", list(REQUEST_TARGETS.values()), ids=list(REQUEST_TARGETS))
def test_only_origin_form_targets_are_forwarded(
    proxy: AsgiServer, seen: Service, mints: Any, request_bytes: bytes
) -> None:
    assert_refused(proxy, seen, mints, request_bytes)


ESCAPING_PATHS = [
    "/../admin",
    "/..",
    "/%2e%2e/admin",
    "/.%2E/admin",
    "/%2E./admin",
    "/foo/../../admin",
    "/foo/%2e%2e/%2e%2e/admin",
    "/./admin",
    "/..;/admin",
    "/%2e%2e;x=1/admin",
    "/foo%2F..%2F..%2Fadmin",
    "/foo%2f%2e%2e%2f%2e%2e%2fadmin",
    "/%252e%252e/admin",
    "/%25252e%25252e/admin",
    "/..\\admin",
    "/foo\\..\\..\\admin",
    "/..%5cadmin",
    "/..%00/admin",
    "/%2F%2Fevil.example/x",
]


@pytest.mark.parametrize("path", ESCAPING_PATHS)
def test_paths_stay_under_the_base_path(proxy: AsgiServer, seen: Service, mints: Any, path: str) -> None:
    reply = assert_refused(proxy, seen, mints, f"GET {path} HTTP/1.1\r\nHost: HOST\r\n\r\n".encode())
    assert reply.split(b"\r\n\r\n", 1)[1].startswith(b"gcptoken proxy: ")


@pytest.mark.parametrize(
    ("path", "upstream"),
    [
        ("/", "/base/"),
        ("/hello", "/base/hello"),
        ("/a%2Fb", "/base/a%2Fb"),
        ("/.well-known/openid-configuration", "/base/.well-known/openid-configuration"),
        ("/..foo/x...y", "/base/..foo/x...y"),
        ("/files/100%25", "/base/files/100%25"),
        ("/q?next=../../admin&x=%2e%2e", "/base/q"),
    ],
)
def test_ordinary_paths_are_forwarded_as_sent(proxy: AsgiServer, seen: Service, path: str, upstream: str) -> None:
    reply = exchange(proxy, f"GET {path} HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n".encode())
    assert status(reply) == 200
    assert seen.seen[-1]["raw_path"] == upstream.encode()
    assert seen.seen[-1]["query"] == path.partition("?")[2].encode()


FRAMING = {
    "Content-Length and Transfer-Encoding": (
        b"POST /echo HTTP/1.1\r\nHost: HOST\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "Transfer-Encoding and Content-Length": (
        b"POST /echo HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"
    ),
    "Transfer-Encoding folded (obs-fold) beside Content-Length": (
        b"POST /echo HTTP/1.1\r\nHost: HOST\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"
    ),
    "Connection naming Content-Length": (
        b"POST /echo HTTP/1.1\r\nHost: HOST\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello"
    ),
    "Connection naming Transfer-Encoding": (
        b"POST /echo HTTP/1.1\r\nHost: HOST\r\nConnection: close, TRANSFER-ENCODING\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    ),
    "Connection naming Host": b"GET /hello HTTP/1.1\r\nHost: HOST\r\nConnection: host\r\n\r\n",
    "conflicting Content-Lengths": (
        b"POST /echo HTTP/1.1\r\nHost: HOST\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
    ),
    "a list of Content-Lengths": b"POST /echo HTTP/1.1\r\nHost: HOST\r\nContent-Length: 5, 6\r\n\r\nhello!",
    "a Content-Length that is no number": b"POST /echo HTTP/1.1\r\nHost: HOST\r\nContent-Length: +5\r\n\r\nhello",
    "gzip, chunked": (
        b"POST /echo HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    ),
    "identity": b"POST /echo HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: identity\r\n\r\nhello",
    "two Transfer-Encodings": (
        b"POST /echo HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    ),
    "Transfer-Encoding in HTTP/1.0": (
        b"POST /echo HTTP/1.0\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    ),
    "two Hosts": b"GET /hello HTTP/1.1\r\nHost: HOST\r\nHost: evil.example\r\n\r\n",
    "no Host in HTTP/1.1": b"GET /hello HTTP/1.1\r\n\r\n",
    "a bare CR in a header": b"GET /hello HTTP/1.1\r\nHost: HOST\r\nX-A: b\rc\r\n\r\n",
    "a space before the colon": b"GET /hello HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding : chunked\r\n\r\n",
    "a fold before the first header": b"GET /hello HTTP/1.1\r\n X-A: b\r\nHost: HOST\r\n\r\n",
    "a 1 MB header": b"GET /hello HTTP/1.1\r\nHost: HOST\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", list(FRAMING.values()), ids=list(FRAMING))
def test_ambiguous_framing_is_refused(proxy: AsgiServer, seen: Service, mints: Any, request_bytes: bytes) -> None:
    assert_refused(proxy, seen, mints, request_bytes)


def test_a_refusal_closes_the_connection(proxy: AsgiServer, seen: Service) -> None:
    """After CL + TE the next request's start is unknowable: what follows must never be read as one."""
    before = len(seen.seen)
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: HOST\r\n\r\n"
    reply = exchange(
        proxy,
        b"POST /echo HTTP/1.1\r\nHost: HOST\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        + smuggled,
    )
    assert status(reply) == 400 and reply.count(b"HTTP/1.1 ") == 1
    assert seen.seen[before:] == []


def test_hop_by_hop_and_planted_headers_never_reach_the_service(
    proxy: AsgiServer, service: tuple[Service, str], gcptoken_emulator: EmulatorClient
) -> None:
    verifier = Verifier(AUD, certs=f"{gcptoken_emulator.url}/oauth2/v3/certs")
    reply = exchange(
        proxy,
        b"GET /hello HTTP/1.1\r\nHost: evil.example\r\nConnection: X-Drop-Me, close\r\nX-Drop-Me: 1\r\n"
        b"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-Later\r\n"
        b"Upgrade: h2c\r\nProxy-Authorization: Bearer planted\r\nX-Kept: caf\xc3\xa9 \xff\r\n\r\n",
    )
    assert status(reply) == 200
    entry = service[0].seen[-1]
    names = {key for key, _ in entry["headers"]}
    dropped = {b"connection", b"x-drop-me", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"}
    assert not names & dropped and b"proxy-authorization" not in names
    assert header_values(entry, b"host") == [service[1].removeprefix("http://").encode()]  # the service's own
    assert header_values(entry, b"x-kept") == [b"caf\xc3\xa9 \xff"]  # bytes as sent, not re-encoded
    (authorization,) = header_values(entry, b"authorization")
    assert verifier.verify(authorization.decode().removeprefix("Bearer "))["aud"] == AUD


def test_the_clients_authorization_stays_and_the_token_goes_beside_it(
    proxy: AsgiServer, seen: Service, gcptoken_emulator: EmulatorClient
) -> None:
    verifier = Verifier(AUD, certs=f"{gcptoken_emulator.url}/oauth2/v3/certs")
    reply = exchange(
        proxy,
        b"GET /hello HTTP/1.1\r\nHost: HOST\r\nAuthorization: Basic YXBwOnNlY3JldA==\r\n"
        b"Proxy-Authorization: Bearer planted\r\nConnection: close\r\n\r\n",
    )
    assert status(reply) == 200
    entry = seen.seen[-1]
    assert header_values(entry, b"authorization") == [b"Basic YXBwOnNlY3JldA=="]
    (ours,) = header_values(entry, b"proxy-authorization")  # one: the proxy's, never the planted one
    assert verifier.verify(ours.decode().removeprefix("Bearer "))["aud"] == AUD
    # A Connection header dropping the client's Authorization leaves one Authorization: the token.
    exchange(
        proxy,
        b"GET /hello HTTP/1.1\r\nHost: HOST\r\nAuthorization: Basic eA==\r\nConnection: authorization, close\r\n\r\n",
    )
    entry = seen.seen[-1]
    assert [value[:7] for value in header_values(entry, b"authorization")] == [b"Bearer "]
    assert header_values(entry, b"proxy-authorization") == []


def test_redirects_come_back_to_the_proxys_own_address(proxy: AsgiServer, service: tuple[Service, str]) -> None:
    def location(to: str, host: str = "evil.example:8080") -> str:
        answer = httpx.get(f"{proxy.url}/redirect", params={"to": to}, headers={"Host": host})
        assert answer.status_code == 302
        return answer.headers["location"]

    service_url = service[1]
    assert location(f"{service_url}/base/next?x=1") == f"{proxy.url}/next?x=1"  # never the request's Host
    assert location(f"{service_url}/base") == f"{proxy.url}/"
    assert location(f"{service_url}/basement") == f"{service_url}/basement"  # outside /base: left alone
    assert location(f"{service_url}/other") == f"{service_url}/other"
    assert location(f"{service_url}/else/x") == f"{service_url}/else/x"
    assert location("https://accounts.example.org/login") == "https://accounts.example.org/login"
    assert location("/base/next?x=1") == "/next?x=1"  # a path on the service: the same path below /base
    assert location("/other") == "/other"


def test_forced_refreshes_are_one_per_interval(proxy: AsgiServer, seen: Service, mints: Any, clock: FakeClock) -> None:
    """A service that keeps saying invalid_token cannot make the proxy mint a token per request."""
    clock.now += 1000  # past any window an earlier test opened
    minted = mints()
    seen.refuse = 1
    answer = httpx.post(f"{proxy.url}/echo", content=b"kept")
    assert answer.status_code == 200
    assert mints() == minted + 2  # the first token, then one forced refresh

    before = len(seen.seen)
    for _ in range(20):
        seen.refuse = 1
        refused = httpx.post(f"{proxy.url}/echo", content=b"kept")
        assert refused.status_code == 401 and refused.text == "refused here\n"  # as the service said
        assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert len(seen.seen) == before + 20 and mints() == minted + 2  # no retry, no token

    clock.now += REFRESH_INTERVAL
    seen.refuse = 1
    assert httpx.post(f"{proxy.url}/echo", content=b"kept").status_code == 200
    assert mints() == minted + 3


def test_a_token_another_request_renewed_is_used_without_forcing_one(
    proxy: AsgiServer, seen: Service, mints: Any, clock: FakeClock, key: dict[str, str]
) -> None:
    """Inside the window, a request refused with the old token retries with the renewed one (free)."""
    clock.now += 1000
    seen.refuse = 1
    assert httpx.get(f"{proxy.url}/hello").status_code == 200  # a refresh forced: the window is open
    used = header_values(seen.seen[-1], b"authorization")[0].decode().removeprefix("Bearer ")
    renewed: list[str] = []

    def renew_elsewhere() -> None:  # as another request's forced refresh would (tokens of one second match)
        while not renewed or renewed[-1] == used:
            renewed.append(credentials_from_info(key, "test").id_token(AUD, refresh=True).value)
            time.sleep(0.05)

    minted = mints()
    seen.refuse, seen.on_refuse = 1, renew_elsewhere
    assert httpx.get(f"{proxy.url}/hello").status_code == 200
    assert header_values(seen.seen[-1], b"authorization") == [f"Bearer {renewed[-1]}".encode()]
    assert mints() == minted + len(renewed)  # the proxy minted none of its own


def test_a_client_gone_mid_body_sends_nothing(proxy: AsgiServer, seen: Service, mints: Any) -> None:
    before, minted = len(seen.seen), mints()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
        raw.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten!!")
    time.sleep(0.5)  # what the proxy would do with it, it would have done by now
    assert seen.seen[before:] == [] and mints() == minted


@pytest.mark.parametrize("framing", [b"Transfer-Encoding: chunked", b"Content-Length: 4000000"])
def test_a_client_gone_mid_stream_never_hands_the_service_a_whole_body(
    proxy: AsgiServer, seen: Service, framing: bytes
) -> None:
    before = len(seen.seen)
    chunk = b"x" * 65536
    piece = b"10000\r\n" + chunk + b"\r\n" if b"chunked" in framing else chunk
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
        raw.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n\r\n" + piece * 4)
        _wait(lambda: len(seen.seen) > before)  # the body is streaming to the service
    _wait(lambda: seen.seen[before]["ended"])
    assert not seen.seen[before]["complete"]
    assert len(seen.seen) == before + 1


def _wait(condition: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


WEBSOCKET_TARGETS = {
    "dot-segments": b"GET /../ws HTTP/1.1\r\n",
    "encoded dot-segments": b"GET /%2e%2e/ws HTTP/1.1\r\n",
    "absolute-form": b"GET http://evil.example/ws HTTP/1.1\r\n",
    "//host": b"GET //evil.example/ws HTTP/1.1\r\n",
    "a backslash": b"GET /..\\ws HTTP/1.1\r\n",
}


@pytest.mark.parametrize("line", list(WEBSOCKET_TARGETS.values()), ids=list(WEBSOCKET_TARGETS))
def test_websocket_handshakes_get_the_same_checks(proxy: AsgiServer, seen: Service, mints: Any, line: bytes) -> None:
    assert_refused(proxy, seen, mints, line + b"Host: HOST\r\n" + WEBSOCKET + b"\r\n")


@pytest.mark.parametrize("framing", [b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n"])
def test_a_websocket_handshake_with_a_body_is_not_forwarded(
    proxy: AsgiServer, seen: Service, mints: Any, framing: bytes
) -> None:
    before, minted = len(seen.seen), mints()
    # (uvicorn's WebSocket protocol leaves such a connection hanging rather than answering: hence the timeout)
    reply = exchange(proxy, b"GET /ws HTTP/1.1\r\nHost: x\r\n" + WEBSOCKET + framing + b"\r\n0\r\n\r\n", 1)
    assert status(reply) != 101
    assert seen.seen[before:] == [] and mints() == minted


def test_a_websocket_is_relayed_under_the_base_path(proxy: AsgiServer, seen: Service) -> None:
    from websockets.sync.client import connect

    with connect(proxy.url.replace("http://", "ws://") + "/ws?room=1", open_timeout=10) as websocket:
        websocket.send("ping")
        assert websocket.recv(timeout=10) == "echo: ping"
    entry = seen.seen[-1]
    assert entry["kind"] == "websocket" and (entry["raw_path"], entry["query"]) == (b"/base/ws", b"room=1")
    assert header_values(entry, b"authorization")[0].startswith(b"Bearer ")


class RawService:
    """A 'service' that answers every request with ``answer`` (bytes, maybe not HTTP), then closes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.socket = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            with connection:
                received = b""
                while b"\r\n\r\n" not in received and (chunk := connection.recv(65536)):
                    received += chunk
                connection.sendall(self.answer)


BROKEN_SERVICES = {
    "not HTTP": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    "closes without answering": b"",
    "a status line cut short": b"HTTP/1.1 20",
    "status 101 to a plain request": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
    "status 700": b"HTTP/1.1 700 Odd\r\nContent-Length: 0\r\n\r\n",
    "a Content-Length that is no number": b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\nhello",
    "conflicting Content-Lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
    "a header line without a colon": b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    "a NUL in a header": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
    "a body shorter than its Content-Length": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten!!",
}


@pytest.mark.parametrize("answer", list(BROKEN_SERVICES.values()), ids=list(BROKEN_SERVICES))
def test_a_broken_service_is_a_502_never_a_500(key: dict[str, str], answer: bytes) -> None:
    broken = RawService(answer)
    try:
        with serving(Proxy(broken.url, credentials_from_info(key, "test"), AUD, 5)) as proxy:
            for _ in range(2):  # and the proxy goes on serving
                reply = exchange(proxy, b"GET /x HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n")
                _, _, body = reply.partition(b"\r\n\r\n")
                assert status(reply) == 502, reply[:200]
                assert body.startswith(b"gcptoken proxy: ") and body.count(b"\n") == 1
                assert b"Traceback" not in reply
    finally:
        broken.socket.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 70000,
    ],
    ids=["a broken chunk", "a long body cut short"],
)
def test_a_service_breaking_off_mid_answer_breaks_off_the_clients(key: dict[str, str], answer: bytes) -> None:
    """Once a streamed answer has begun, its status cannot change: the client sees it end unfinished
    (no last chunk, fewer bytes than announced) and knows, and the proxy goes on serving."""
    broken = RawService(answer)
    try:
        with serving(Proxy(broken.url, credentials_from_info(key, "test"), AUD, 5)) as proxy:
            for _ in range(2):
                reply = exchange(proxy, b"GET /x HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n")
                head, _, body = reply.partition(b"\r\n\r\n")
                assert status(reply) == 200 and b"Traceback" not in reply
                if b"transfer-encoding: chunked" in head.lower():
                    assert not body.endswith(b"0\r\n\r\n")
                else:
                    assert b"content-length: 100000" in head.lower() and len(body) < 100000
    finally:
        broken.socket.close()


def test_content_length_beside_chunked_in_a_response_is_not_passed_on(key: dict[str, str]) -> None:
    """The service's answer is read as chunked (RFC 9112 §6.3); its Content-Length never reaches the
    client, whose connection would otherwise be framed by a lie."""
    broken = RawService(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    )
    try:
        with serving(Proxy(broken.url, credentials_from_info(key, "test"), AUD, 5)) as proxy:
            answer = httpx.get(f"{proxy.url}/x")
            assert answer.status_code == 200 and answer.content == b"hello"
            assert "content-length" not in answer.headers or answer.headers["content-length"] == "5"
    finally:
        broken.socket.close()
