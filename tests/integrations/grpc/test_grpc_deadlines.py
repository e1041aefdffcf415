"""A token fetch within the RPC's timeout: a call whose token is late ends with DEADLINE_EXCEEDED at
about its own timeout (sync, aio, a hand-built channel with authorized_channel or
id_token_interceptors), the time left goes to the RPC, and a token due for refresh but still valid
serves while the refresh runs behind."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import grpc.aio
import pytest

from gcptoken.cache.memory import default_cache
from gcptoken.credentials import Credentials
from gcptoken.integrations.grpc import aio, authorized_channel, local_channel, local_credentials
from gcptoken.testing import EmulatorClient
from tests.integrations.grpc.server import AUDIENCE, AioEcho, Echo, EchoServer, SlowTokenEndpoint, slow_credentials

TIMEOUT = 0.3


@pytest.fixture
def slow(emulator: EmulatorClient, key_info: dict[str, str]) -> Iterator[tuple[SlowTokenEndpoint, Credentials]]:
    with slow_credentials(emulator.url, key_info, delay=2) as slow:
        yield slow


def _late(call: Callable[[], Any]) -> tuple[grpc.RpcError, float]:
    began = time.monotonic()
    with pytest.raises(grpc.RpcError) as late:
        call()
    return late.value, time.monotonic() - began


def _assert_deadline(error: grpc.RpcError, took: float) -> None:
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error
    assert "within the call's timeout (0.3 s)" in str(error.details())
    assert TIMEOUT * 0.9 < took < TIMEOUT + 0.5, took


def test_a_sync_call_waits_for_a_slow_fetch_no_longer_than_its_timeout(
    server: EchoServer, slow: tuple[SlowTokenEndpoint, Credentials]
) -> None:
    endpoint, credentials = slow
    with local_channel(server.target, credentials, audience=AUDIENCE) as channel:
        echo = Echo(channel)
        _assert_deadline(*_late(lambda: echo.unary(b"", timeout=TIMEOUT)))
        _assert_deadline(*_late(lambda: next(echo.server_stream(b"1", timeout=TIMEOUT))))
        _assert_deadline(*_late(lambda: echo.client_stream.future(iter([b"a"]), timeout=TIMEOUT).result()))
    with authorized_channel(grpc.secure_channel(server.target, local_credentials()), AUDIENCE, credentials) as channel:
        _assert_deadline(*_late(lambda: Echo(channel).unary.with_call(b"", timeout=TIMEOUT)))
    assert endpoint.hits == 1 and not server.interceptor.accepted and not server.interceptor.refused


class Timeouts(grpc.UnaryUnaryClientInterceptor):
    """Sits under gcptoken's wrapper: records the timeout each call goes out with."""

    def __init__(self) -> None:
        self.seen: list[float | None] = []

    def intercept_unary_unary(self, continuation: Any, details: grpc.ClientCallDetails, request: Any) -> Any:
        self.seen.append(details.timeout)
        return continuation(details, request)


def test_the_rpc_gets_the_time_the_fetch_left(
    server: EchoServer, emulator: EmulatorClient, key_info: dict[str, str]
) -> None:
    timeouts = Timeouts()
    with slow_credentials(emulator.url, key_info, delay=0.5) as (_, credentials):
        inner = grpc.intercept_channel(grpc.secure_channel(server.target, local_credentials()), timeouts)
        with authorized_channel(inner, AUDIENCE, credentials) as channel:
            assert Echo(channel).unary(b"", timeout=5) == b"unary:"  # waits for the fetch
            assert Echo(channel).unary(b"", timeout=5) == b"unary:"  # cached
    first, second = timeouts.seen
    assert first is not None and 3.5 < first < 4.6 and second == 5


@pytest.mark.parametrize("way", ["channel helper", "id_token_interceptors"])
def test_an_aio_call_waits_for_a_slow_fetch_no_longer_than_its_timeout(
    way: str, server: EchoServer, slow: tuple[SlowTokenEndpoint, Credentials]
) -> None:
    endpoint, credentials = slow

    async def calls() -> list[tuple[grpc.RpcError, float]]:
        if way == "channel helper":
            channel = aio.local_channel(server.target, credentials, audience=AUDIENCE)
        else:
            interceptors = aio.id_token_interceptors(AUDIENCE, credentials)
            channel = grpc.aio.secure_channel(server.target, local_credentials(), interceptors=interceptors)
        results = []
        async with channel:
            echo = AioEcho(channel)
            for kind in ("unary", "server stream"):
                began = time.monotonic()
                try:
                    if kind == "unary":
                        await echo.unary(b"", timeout=TIMEOUT)
                    else:
                        await echo.server_stream(b"", timeout=TIMEOUT).read()
                except grpc.RpcError as error:
                    results.append((error, time.monotonic() - began))
        return results

    results = asyncio.run(calls())
    assert len(results) == 2
    for error, took in results:
        _assert_deadline(error, took)
    assert endpoint.hits == 1


def test_a_token_due_for_refresh_serves_while_a_slow_refresh_runs_behind(
    server: EchoServer, slow: tuple[SlowTokenEndpoint, Credentials], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, credentials = slow
    endpoint.delay = 0
    token = credentials.id_token(AUDIENCE)
    life = token.expires_at.timestamp() - time.time()
    monkeypatch.setattr(default_cache(), "clock", lambda: time.time() + life - 120)  # in the margin, valid
    endpoint.delay = 1.5

    async def aio_call() -> bytes:
        async with aio.local_channel(server.target, credentials, audience=AUDIENCE) as channel:
            answer: bytes = await AioEcho(channel).unary(b"a", timeout=TIMEOUT)
            return answer

    with local_channel(server.target, credentials, audience=AUDIENCE) as channel:
        began = time.monotonic()
        assert Echo(channel).unary(b"s", timeout=TIMEOUT) == b"unary:s"
        assert asyncio.run(aio_call()) == b"unary:a"
        assert time.monotonic() - began < TIMEOUT * 2
    assert {claims["token"] for claims in server.interceptor.accepted} == {token.value}


def test_a_sync_future_returns_at_once_while_its_token_is_fetched(
    server: EchoServer, emulator: EmulatorClient, key_info: dict[str, str]
) -> None:
    with (
        slow_credentials(emulator.url, key_info, delay=0.5) as (endpoint, credentials),
        local_channel(server.target, credentials, audience=AUDIENCE) as channel,
    ):
        began = time.monotonic()
        future = Echo(channel).unary.future(b"f", timeout=10)
        late = Echo(channel).unary.future(b"late", timeout=0.2)
        cancelled = Echo(channel).client_stream.future(iter([b"c"]), timeout=10)
        assert time.monotonic() - began < 0.1 and not future.done()
        called = threading.Event()
        future.add_done_callback(lambda done: called.set() if done is future else None)
        assert cancelled.cancel() and cancelled.cancelled()
        assert future.result(timeout=10) == b"unary:f" and called.wait(5)
        assert late.code() == grpc.StatusCode.DEADLINE_EXCEEDED and isinstance(late.exception(), grpc.RpcError)
        with pytest.raises(grpc.FutureCancelledError):
            cancelled.result()
    assert endpoint.hits == 1 and len(server.interceptor.accepted) == 1
