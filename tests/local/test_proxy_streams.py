"""``gcptoken proxy`` and requests that stay open: a quiet stream is never timed out, a client that
leaves (before the answer starts, or during an endless one) ends the service's request too, with a
body of any framing, and more open requests than the proxy's limit get a 503 saying so.

In this process, on a service whose requests show when their body is whole and when they saw
their client leave."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gcptoken.credentials import credentials_from_info
from gcptoken.local.proxy import Proxy
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient
from tests.local.test_proxy_hostile import serving

AUD = "https://svc-streams.a.run.app"
QUIET = 0.5  # seconds a service stays silent, well past the proxies' timeout below
SHORT_TIMEOUT = 0.2
FIRST = b"data: 1\n\n"


class Service:
    """``/quiet``: its headers after QUIET seconds, an event, QUIET seconds of nothing, a last one;
    ``/open``: an event, then nothing until the client leaves; ``/late``: no answer until the
    client leaves (10 s); else ``ok``. Each request recorded: ``complete`` (its whole body came),
    ``left`` (it saw its client leave), ``ended``."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.url = ""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        entry = {"path": scope["path"], "complete": False, "left": False, "ended": False}
        self.seen.append(entry)
        try:
            await self._http(scope["path"], entry, receive, send)
        finally:
            entry["ended"] = True

    async def _http(self, path: str, entry: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                entry["left"] = True
                return
            if not message.get("more_body"):
                break
        entry["complete"] = True

        async def client_leaves() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            entry["left"] = True

        if path == "/late":
            await asyncio.wait_for(client_leaves(), 10)
            return
        if path == "/quiet":
            await asyncio.sleep(QUIET)
        if path not in ("/quiet", "/open"):
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": FIRST, "more_body": True})
        if path == "/open":
            await client_leaves()
            return
        await asyncio.sleep(QUIET)
        await send({"type": "http.response.body", "body": b"data: 2\n\n"})


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    recorded = Service()
    with AsgiServer(recorded, bind("127.0.0.1", 0)) as server:  # type: ignore[arg-type]
        recorded.url = server.url
        yield recorded


@pytest.fixture(scope="module")
def make_proxy(service: Service, gcptoken_emulator: EmulatorClient) -> Callable[..., Proxy]:
    credentials = credentials_from_info(gcptoken_emulator.new_key("streams"), "test")
    return lambda **options: Proxy(service.url, credentials, AUD, **options)


def _wait(condition: Callable[[], Any], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_quiet_service_is_not_timed_out(make_proxy: Callable[..., Proxy]) -> None:
    """The proxy's timeout (connect, write, a free connection) is no read timeout: a service slow
    to answer, or a stream quiet for longer than it (an MCP GET stream, for minutes), goes on."""
    quick = make_proxy(timeout=SHORT_TIMEOUT)
    with serving(quick) as proxy:
        answer = httpx.get(f"{proxy.url}/quiet", timeout=10)
    assert answer.status_code == 200 and answer.content == FIRST + b"data: 2\n\n"
    assert quick.timeouts["read"] is None  # (not a longer limit either: minutes of quiet are fine)


BODIES = {
    "kept (Content-Length)": b"Content-Length: 5\r\n\r\nhello",
    "chunked": b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "over 1 MiB (streamed)": b"Content-Length: 1500000\r\n\r\n" + b"x" * 1_500_000,
}


@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
@pytest.mark.parametrize("path", ["/late", "/open"], ids=["before the answer", "during an endless answer"])
def test_a_client_leaving_ends_the_services_request(
    make_proxy: Callable[..., Proxy],
    service: Service,
    caplog: pytest.LogCaptureFixture,
    path: str,
    body: bytes,
) -> None:
    """Once the request's body is whole, the proxy watches its client: gone, the service's request
    is dropped (its connection closed) at once, whether the service is still to answer (a long
    tool call) or streaming; it neither works on for nobody nor holds one of the proxy's slots."""
    caplog.set_level(logging.INFO, logger="gcptoken.proxy")
    seen = service.seen
    before = len(seen)
    with serving(make_proxy(), guarded=True) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
            raw.sendall(f"POST {path} HTTP/1.1\r\nHost: {proxy.host_port}\r\n".encode() + body)
            _wait(lambda: len(seen) > before and seen[before]["complete"])
            if path == "/open":
                received = b""
                while FIRST not in received:
                    received += raw.recv(65536)
        _wait(lambda: seen[before]["left"] and seen[before]["ended"])
        _wait(lambda: f"POST {path} -> " in caplog.text)
    assert f"POST {path} -> {'client left' if path == '/late' else '200'}" in caplog.text


def test_a_client_gone_mid_body_is_logged_as_such(
    make_proxy: Callable[..., Proxy], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gcptoken.proxy")
    with serving(make_proxy(), guarded=True) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
            raw.sendall(
                f"POST /upload HTTP/1.1\r\nHost: {proxy.host_port}\r\nContent-Length: 100\r\n\r\nten bytes!".encode()
            )
        _wait(lambda: "POST /upload -> " in caplog.text)
    assert "POST /upload -> client left" in caplog.text


def test_more_open_requests_than_the_limit_is_a_503_saying_so(
    make_proxy: Callable[..., Proxy], service: Service
) -> None:
    """Each request open to the service holds one of ``max_open`` connections (1000 by default):
    one more waits up to the proxy's timeout for one to end, then is a 503 that says it is the
    proxy's limit, not the service's slowness."""
    assert make_proxy().max_open == 1000
    with serving(make_proxy(timeout=SHORT_TIMEOUT, max_open=2)) as proxy, httpx.Client(timeout=10) as client:
        streams = [client.stream("GET", f"{proxy.url}/open") for _ in range(2)]
        readers = [stream.__enter__().iter_raw() for stream in streams]  # (kept: a reader collected closes its stream)
        assert [next(reader) for reader in readers] == [FIRST, FIRST]
        refused = client.get(f"{proxy.url}/hello")
        assert refused.status_code == 503
        assert refused.text == (
            f"gcptoken proxy: 2 requests are open to {service.url}, the proxy's limit; none ended in 0.2 s\n"
        )
        for stream in streams:
            stream.__exit__(None, None, None)
        _wait(lambda: client.get(f"{proxy.url}/hello").status_code == 200)
