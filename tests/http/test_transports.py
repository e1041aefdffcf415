"""Both blocking transports keep one contract, over real HTTP: the httpx one (libraries) and the
http.client one (the command line, where importing httpx costs more than the request)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from gcptoken.errors import InvalidArgumentError, TransportError
from gcptoken.http.flows import Flow, HttpRequest, HttpResponse, SyncTransport, run_sync
from gcptoken.http.light_transport import LightTransport
from gcptoken.http.transport import HttpxTransport
from gcptoken.testing import CLOSED_LOOPBACK, EmulatorClient
from tests.verify.key_servers import dripping, key_server

TRANSPORTS: dict[str, Callable[[float], SyncTransport]] = {"httpx": HttpxTransport, "http.client": LightTransport}


@pytest.fixture(params=list(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> Iterator[SyncTransport]:
    made = TRANSPORTS[request.param](5.0)
    yield made
    if isinstance(made, HttpxTransport):
        made.close()  # its pool's sockets


def get(url: str, timeout: float | None = None, deadline: float | None = None) -> HttpRequest:
    return HttpRequest("GET", url, {"Metadata-Flavor": "Google"}, timeout=timeout, deadline=deadline)


def test_an_answer_with_lowercase_headers(transport: SyncTransport, emulator: EmulatorClient) -> None:
    response = transport.send(get(f"{emulator.url}/computeMetadata/v1/project/project-id"))
    assert response.status == 200 and response.body == emulator.state.project_id.encode()
    assert response.headers.get("metadata-flavor") == "Google"
    posted = transport.send(
        HttpRequest(
            "POST",
            f"{emulator.url}/token",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"grant_type=password",
        )
    )
    assert posted.status == 400 and b"unsupported_grant_type" in posted.body


@pytest.mark.parametrize("fault", [{"drop": True}, {"truncate": True}])
def test_a_broken_exchange_is_a_transport_error(
    transport: SyncTransport, emulator: EmulatorClient, fault: dict[str, bool]
) -> None:
    httpx.post(f"{emulator.url}/emulator/v1/faults", json={"path": "/oauth2/v3/certs", **fault})
    with pytest.raises(TransportError, match="broke off"):
        transport.send(get(f"{emulator.url}/oauth2/v3/certs"))


def test_timeouts_deadlines_and_drips(transport: SyncTransport, emulator: EmulatorClient) -> None:
    httpx.post(f"{emulator.url}/emulator/v1/faults", json={"path": "/oauth2/v1/certs", "delay": 3})
    started = time.monotonic()
    with pytest.raises(TransportError, match="timed out"):
        transport.send(get(f"{emulator.url}/oauth2/v1/certs", timeout=0.5))
    assert time.monotonic() - started < 2.5
    httpx.delete(f"{emulator.url}/emulator/v1/faults")
    with dripping(byte_every=0.05) as (url, _):
        started = time.monotonic()
        with pytest.raises(TransportError, match="timed out"):
            transport.send(get(url, deadline=time.monotonic() + 1.0))
        assert time.monotonic() - started < 4  # the whole body would take minutes


def test_size_cap_and_no_redirects(transport: SyncTransport) -> None:
    with key_server({"keys": []}) as keys:
        keys.oversize = True
        with pytest.raises(TransportError, match="larger than"):
            transport.send(get(keys.url))
        keys.oversize = False
        keys.redirect_to = "http://localhost:9/elsewhere"
        response = transport.send(get(keys.url))
        assert response.status == 302  # not followed


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "http://[::1/x", "http://127.0.0.1:99999/x"])
def test_unusable_urls_are_not_retried(transport: SyncTransport, url: str) -> None:
    with pytest.raises(InvalidArgumentError):
        run_sync(yield_once(url), transport, time.monotonic() + 10)


def yield_once(url: str) -> Flow[HttpResponse]:
    response = yield get(url)
    return response


def test_connection_refused_is_retried_then_a_transport_error(transport: SyncTransport) -> None:
    started = time.monotonic()
    with pytest.raises(TransportError, match=r"cannot reach .*: connection refused \(after 3 attempts\)"):
        run_sync(yield_once(f"http://{CLOSED_LOOPBACK}/x"), transport, time.monotonic() + 10)
    assert time.monotonic() - started < 5
