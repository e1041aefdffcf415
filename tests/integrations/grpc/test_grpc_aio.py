"""gRPC with ID tokens under grpc.aio: every kind of RPC, one fetch for 100 concurrent RPCs, a
failed fetch as the RPC's status, and a slow fetch that never stalls the event loop (grpcio runs
call credentials' plugins in a thread of their own; the channels' interceptors await the fetch)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest

from gcptoken.cache.memory import default_cache
from gcptoken.credentials import Credentials, credentials_from_info
from gcptoken.integrations.grpc import aio, id_token_call_credentials, local_credentials
from gcptoken.testing import EmulatorClient
from tests.integrations.grpc.server import AUDIENCE, AioEcho, EchoServer, SlowTokenEndpoint
from tests.integrations.grpc.stall import longest_stall
from tests.integrations.grpc.test_grpc import fetches


async def _requests(*items: bytes) -> AsyncIterator[bytes]:
    for item in items:
        yield item


def test_every_kind_of_rpc_carries_a_verified_token(
    server: EchoServer, credentials: Credentials, emulator: EmulatorClient, key_info: dict[str, str]
) -> None:
    async def calls() -> list[Any]:
        async with aio.local_channel(server.target, credentials, audience=AUDIENCE) as channel:
            return [
                await AioEcho(channel).unary(b"hi", timeout=10),
                [answer async for answer in AioEcho(channel).server_stream(b"2", timeout=10)],
                await AioEcho(channel).client_stream(_requests(b"a", b"b"), timeout=10),
                [answer async for answer in AioEcho(channel).bidi(_requests(b"x"), timeout=10)],
            ]

    assert asyncio.run(calls()) == [b"unary:hi", [b"0", b"1"], b"a+b", [b"echo:x"]]
    assert [claims["aud"] for claims in server.interceptor.accepted] == [AUDIENCE] * 4
    assert fetches(emulator, key_info) == 1  # the first call awaited the fetch, the others found it cached

    async def after_the_token_is_gone() -> bytes:
        async with aio.local_channel(server.target, credentials, audience=AUDIENCE) as channel:
            first: bytes = await AioEcho(channel).unary(b"1", timeout=10)
            default_cache().clear()  # as when the token is due for refresh: the next call fetches again
            return first + await AioEcho(channel).unary(b"2", timeout=10)

    assert asyncio.run(after_the_token_is_gone()) == b"unary:1unary:2"
    assert fetches(emulator, key_info) == 2


class Recording(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self) -> None:
        self.seen: list[list[tuple[str, str | bytes]]] = []

    async def intercept_unary_unary(self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        self.seen.append(list(details.metadata or ()))
        return await continuation(details, request)


@pytest.mark.parametrize("way", ["channel helper", "id_token_interceptors last"])
def test_the_callers_interceptors_never_see_the_token_on_any_call(
    way: str, server: EchoServer, credentials: Credentials
) -> None:
    """Not on the first call (a fetch), nor on the calls after it (a cached token), nor ever."""
    recording = Recording()

    async def calls() -> list[bytes]:
        channel: grpc.aio.Channel
        if way == "channel helper":
            channel = aio.local_channel(server.target, credentials, audience=AUDIENCE, interceptors=[recording])
        else:
            interceptors = [recording, *aio.id_token_interceptors(AUDIENCE, credentials)]
            channel = grpc.aio.secure_channel(server.target, local_credentials(), interceptors=interceptors)
        async with channel:
            return [
                await AioEcho(channel).unary(str(index).encode(), timeout=10, metadata=(("x-request-id", str(index)),))
                for index in range(3)
            ]

    assert asyncio.run(calls()) == [b"unary:0", b"unary:1", b"unary:2"]
    assert recording.seen == [[("x-request-id", str(index))] for index in range(3)]
    assert len(server.interceptor.accepted) == 3


def test_100_concurrent_rpcs_cost_one_token_fetch(
    server: EchoServer, emulator: EmulatorClient, key_info: dict[str, str]
) -> None:
    async def calls(credentials: Credentials) -> list[bytes]:
        async with aio.local_channel(server.target, credentials) as channel:
            call = AioEcho(channel).unary
            return list(await asyncio.gather(*(call(str(index).encode(), timeout=10) for index in range(100))))

    with SlowTokenEndpoint(f"{emulator.url}/token", delay=0.3) as endpoint:
        answers = asyncio.run(calls(credentials_from_info({**key_info, "token_uri": endpoint.url}, "test key")))
    assert answers == [b"unary:%d" % index for index in range(100)]
    assert endpoint.hits == 1 and fetches(emulator, key_info) == 1
    assert {claims["aud"] for claims in server.interceptor.accepted} == {f"http://{server.target}"}


def test_a_refused_fetch_is_unauthenticated_and_the_channel_stays_usable(
    server: EchoServer, emulator: EmulatorClient, key_info: dict[str, str]
) -> None:
    async def calls(credentials: Credentials) -> tuple[grpc.aio.AioRpcError, grpc.StatusCode, bytes]:
        async with aio.local_channel(server.target, credentials, audience=AUDIENCE) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await AioEcho(channel).unary(b"", timeout=10)
            stream = AioEcho(channel).bidi(_requests(b"x"), timeout=10)
            with pytest.raises(grpc.aio.AioRpcError):
                await stream.read()
            return refused.value, await stream.code(), await AioEcho(channel).unary(b"ok", timeout=10)

    with SlowTokenEndpoint(f"{emulator.url}/token", refuse=2) as endpoint:
        error, stream_code, answer = asyncio.run(
            calls(credentials_from_info({**key_info, "token_uri": endpoint.url}, "k"))
        )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED == stream_code
    assert error.details() == (
        f"gcptoken: no ID token for {AUDIENCE}: token endpoint {endpoint.url} refused the request "
        "(HTTP 400): invalid_grant: Invalid grant: account not found"
    )
    assert answer == b"unary:ok"


@pytest.mark.parametrize("way", ["channel helper", "call credentials"])
def test_a_slow_token_fetch_never_stalls_the_event_loop(
    way: str, server: EchoServer, emulator: EmulatorClient, key_info: dict[str, str]
) -> None:
    async def call(credentials: Credentials) -> bytes:
        channel: grpc.aio.Channel
        if way == "channel helper":
            channel = aio.local_channel(server.target, credentials, audience=AUDIENCE)
        else:
            call_credentials = id_token_call_credentials(credentials, audience=AUDIENCE)
            composite = grpc.composite_channel_credentials(local_credentials(), call_credentials)
            channel = grpc.aio.secure_channel(server.target, composite)
        async with channel:
            answer: bytes = await AioEcho(channel).unary(b"", timeout=10)
            return answer

    async def measured(credentials: Credentials) -> tuple[bytes, float]:
        return await longest_stall(lambda: call(credentials))

    with SlowTokenEndpoint(f"{emulator.url}/token", delay=0.3) as endpoint:
        answer, stall = asyncio.run(measured(credentials_from_info({**key_info, "token_uri": endpoint.url}, "k")))
    assert answer == b"unary:" and endpoint.hits == 1
    assert stall < 0.15, f"the event loop stood still for {stall:.2f}s during a 0.3s token fetch"


def test_cached_id_token_never_fetches(
    credentials: Credentials, emulator: EmulatorClient, key_info: dict[str, str]
) -> None:
    """The aio channels' fast path: a fresh cached token or None, without a request."""
    assert credentials.cached_id_token(AUDIENCE) is None and fetches(emulator, key_info) == 0
    token = credentials.id_token(AUDIENCE)
    assert credentials.cached_id_token(AUDIENCE) == token and fetches(emulator, key_info) == 1
