"""What gcptoken's channels pass on untouched, and what they replace: the caller's metadata and its
own ``authorization`` (replaced, never sent twice), a call's own call credentials (they replace the
channel's token), timeout / wait_for_ready / compression, the helpers' options and compression,
``header=``, close() and subscribe()."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import grpc
import grpc.aio
import pytest

from gcptoken.credentials import Credentials
from gcptoken.integrations.grpc import (
    aio,
    authorized_channel,
    cloud_run_channel,
    id_token_call_credentials,
    local_channel,
    local_credentials,
)
from tests.integrations.grpc.server import AUDIENCE, AioEcho, Echo, EchoServer

OTHER = "https://other-uc.a.run.app"
MINE = (("x-request-id", "7"), ("authorization", "Bearer not-a-token"))


def _values(metadata: list[tuple[str, Any]], key: str) -> list[Any]:
    return [value for name, value in metadata if name == key]


def _one_token(server: EchoServer, key: str = "authorization") -> list[str]:
    """Per call: the request id it carried, after checking it carried exactly one token under ``key``."""
    ids = []
    for metadata in server.interceptor.metadata:
        values = _values(metadata, key)
        assert len(values) == 1 and values[0].startswith("Bearer ey"), metadata
        ids.extend(_values(metadata, "x-request-id"))
    return ids


def test_sync_the_callers_authorization_is_replaced_and_their_metadata_kept(
    server: EchoServer, credentials: Credentials
) -> None:
    with local_channel(server.target, credentials, audience=AUDIENCE) as channel:
        for _ in range(2):
            assert Echo(channel).unary(b"", timeout=10, metadata=MINE) == b"unary:"
        assert list(Echo(channel).server_stream(b"1", timeout=10, metadata=MINE)) == [b"0"]
    assert _one_token(server) == ["7"] * 3 and not server.interceptor.refused


def test_aio_the_callers_authorization_is_replaced_and_their_metadata_kept(
    server: EchoServer, credentials: Credentials
) -> None:
    async def calls() -> None:
        async with aio.local_channel(server.target, credentials, audience=AUDIENCE) as channel:
            for _ in range(2):
                await AioEcho(channel).unary(b"", timeout=10, metadata=MINE)
            await AioEcho(channel).server_stream(b"1", timeout=10, metadata=MINE).read()

    asyncio.run(calls())
    assert _one_token(server) == ["7"] * 3 and not server.interceptor.refused


def test_a_calls_own_call_credentials_replace_the_channels_token(server: EchoServer, credentials: Credentials) -> None:
    own = id_token_call_credentials(credentials, audience=OTHER)
    server.interceptor.verifier.audiences = server.interceptor.verifier.audiences | {OTHER}
    with local_channel(server.target, credentials, audience=AUDIENCE) as channel:
        Echo(channel).unary(b"", timeout=10, credentials=own)

    async def aio_call() -> None:
        async with aio.local_channel(server.target, credentials, audience=AUDIENCE) as channel:
            await AioEcho(channel).unary(b"", timeout=10, credentials=own)

    asyncio.run(aio_call())
    _one_token(server)
    assert [claims["aud"] for claims in server.interceptor.accepted] == [OTHER, OTHER]


class Details(grpc.UnaryUnaryClientInterceptor):
    """Under gcptoken's wrapper: what each call goes out with."""

    def __init__(self) -> None:
        self.seen: list[grpc.ClientCallDetails] = []

    def intercept_unary_unary(self, continuation: Any, details: grpc.ClientCallDetails, request: Any) -> Any:
        self.seen.append(details)
        return continuation(details, request)


def test_the_sync_wrapper_passes_timeout_credentials_wait_for_ready_and_compression(
    server: EchoServer, credentials: Credentials
) -> None:
    details = Details()
    own = id_token_call_credentials(credentials, audience=AUDIENCE)
    credentials.id_token(AUDIENCE)  # cached: each call's timeout goes on whole
    inner = grpc.intercept_channel(grpc.secure_channel(server.target, local_credentials()), details)
    with authorized_channel(inner, AUDIENCE, credentials) as channel:
        echo = Echo(channel)
        echo.unary(b"", timeout=7, wait_for_ready=True, compression=grpc.Compression.Gzip)
        echo.unary.with_call(b"", 8, None, own, False, grpc.Compression.Deflate)  # positionally, as grpc allows
        echo.unary.future(b"", timeout=9, wait_for_ready=True).result()
    got = [(d.timeout, d.credentials is own, d.wait_for_ready, d.compression) for d in details.seen]
    assert got == [
        (7, False, True, grpc.Compression.Gzip),
        (8, True, False, grpc.Compression.Deflate),
        (9, False, True, None),
    ]


def test_close_and_subscribe_reach_the_wrapped_channel(server: EchoServer, credentials: Credentials) -> None:
    inner = grpc.secure_channel(server.target, local_credentials())
    channel = authorized_channel(inner, AUDIENCE, credentials)
    states: list[grpc.ChannelConnectivity] = []
    ready = threading.Event()

    def seen(state: grpc.ChannelConnectivity) -> None:
        states.append(state)
        if state == grpc.ChannelConnectivity.READY:
            ready.set()

    channel.subscribe(seen, try_to_connect=True)
    assert ready.wait(10) and grpc.ChannelConnectivity.READY in states
    channel.unsubscribe(seen)
    channel.close()
    with pytest.raises(ValueError, match="closed channel"):
        Echo(inner).unary(b"", timeout=10)

    async def aio_closed() -> None:
        channel = aio.local_channel(server.target, credentials, audience=AUDIENCE)
        await AioEcho(channel).unary(b"", timeout=10)
        await channel.close()
        with pytest.raises(grpc.aio.UsageError):
            await AioEcho(channel).unary(b"", timeout=10)

    asyncio.run(aio_closed())


class Passing(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(details, request)


def test_the_helpers_pass_options_compression_and_interceptors_on(
    monkeypatch: pytest.MonkeyPatch, credentials: Credentials
) -> None:
    built: list[tuple[Any, ...]] = []
    sync_channel, aio_channel = grpc.secure_channel, grpc.aio.secure_channel

    def sync_built(*args: Any) -> Any:
        built.append(args[2:])
        return sync_channel(*args)

    def aio_built(*args: Any) -> Any:
        built.append(args[2:])
        return aio_channel(*args)

    monkeypatch.setattr(grpc, "secure_channel", sync_built)
    monkeypatch.setattr(grpc.aio, "secure_channel", aio_built)
    options = [("grpc.primary_user_agent", "mine")]
    gzip = grpc.Compression.Gzip
    local_channel("127.0.0.1:1", credentials, options=options, compression=gzip).close()
    cloud_run_channel("svc-uc.a.run.app", credentials, options=options, compression=gzip).close()

    async def aio_helpers() -> list[Any]:
        mine = Passing()
        for make in (aio.local_channel, aio.cloud_run_channel):
            target = "127.0.0.1:1" if make is aio.local_channel else "svc-uc.a.run.app"
            await make(target, credentials, options=options, compression=gzip, interceptors=[mine]).close()
        return [mine]

    mine = asyncio.run(aio_helpers())
    assert [(list(args[0]), args[1]) for args in built] == [(options, gzip)] * 4
    for _, _, interceptors in built[2:]:
        assert interceptors[0] is mine[0] and len(interceptors) == 5  # the caller's first, gcptoken's four last


def test_header_goes_where_asked_by_helpers_and_call_credentials(server: EchoServer, credentials: Credentials) -> None:
    server.interceptor.header = "x-serverless-authorization"
    with local_channel(server.target, credentials, audience=AUDIENCE, header="X-Serverless-Authorization") as channel:
        Echo(channel).unary(b"", timeout=10, metadata=(("authorization", "Basic app"),))
    own = id_token_call_credentials(credentials, audience=AUDIENCE, header="X-Serverless-Authorization")
    composite = grpc.composite_channel_credentials(local_credentials(), own)
    with grpc.secure_channel(server.target, composite) as channel:
        Echo(channel).unary(b"", timeout=10)

    async def aio_call() -> None:
        async with aio.local_channel(
            server.target, credentials, audience=AUDIENCE, header="x-serverless-authorization"
        ) as channel:
            await AioEcho(channel).unary(b"", timeout=10)

    asyncio.run(aio_call())
    _one_token(server, "x-serverless-authorization")
    assert [_values(m, "authorization") for m in server.interceptor.metadata] == [["Basic app"], [], []]
    assert len(server.interceptor.accepted) == 3


class AioDetails(grpc.aio.UnaryUnaryClientInterceptor):
    """After gcptoken's interceptors (a test's view only): what each call goes out with."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.seen.append((details.timeout, details.wait_for_ready, details.credentials))
        return await continuation(details, request)


def test_the_aio_interceptors_pass_timeout_and_wait_for_ready(server: EchoServer, credentials: Credentials) -> None:
    after = AioDetails()
    credentials.id_token(AUDIENCE)  # cached: each call's timeout goes on whole

    async def calls() -> None:
        interceptors = [*aio.id_token_interceptors(AUDIENCE, credentials), after]
        async with grpc.aio.secure_channel(server.target, local_credentials(), interceptors=interceptors) as channel:
            await AioEcho(channel).unary(b"", timeout=7, wait_for_ready=True)
            await AioEcho(channel).unary(b"", timeout=8, wait_for_ready=False)

    asyncio.run(calls())
    assert after.seen == [(7, True, None), (8, False, None)]
