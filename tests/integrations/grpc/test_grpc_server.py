"""gcptoken.integrations.grpc.server: a real grpcio server (sync and grpc.aio) behind gcptoken's
verifying interceptor, called by gcptoken's channels: the handler reads the verified claims, and a
call without a valid token ends with UNAUTHENTICATED and a one-line reason that never echoes it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from typing import Any

import grpc
import grpc.aio
import pytest

from gcptoken import Verifier
from gcptoken.credentials import Credentials
from gcptoken.integrations.grpc import aio, local_channel, local_credentials
from gcptoken.integrations.grpc.server import (
    AioIdTokenServerInterceptor,
    IdTokenServerInterceptor,
    verified_claims,
)
from gcptoken.testing import EmulatorClient
from tests.integrations.grpc.server import AUDIENCE, SERVICE, AioEcho, Echo

FORGED = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJl"


def _who(request: bytes, context: Any) -> bytes:
    return str(verified_claims()["aud"]).encode()


def _who_many(request: bytes, context: Any) -> Iterator[bytes]:
    yield str(verified_claims()["email"]).encode()


async def _aio_who(request: bytes, context: Any) -> bytes:
    return str(verified_claims()["aud"]).encode()


async def _aio_who_many(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield str(verified_claims()["email"]).encode()


def _refusals(call: Any) -> list[tuple[grpc.StatusCode, str]]:
    got = []
    for metadata in ((), (("authorization", f"Bearer {FORGED}"),)):
        with pytest.raises(grpc.RpcError) as refused:
            call(metadata)
        got.append((refused.value.code(), str(refused.value.details())))
    return got


def _check(refusals: list[tuple[grpc.StatusCode, str]]) -> None:
    assert [code for code, _ in refusals] == [grpc.StatusCode.UNAUTHENTICATED] * 2
    assert all(text.startswith("gcptoken: ") and "\n" not in text and FORGED not in text for _, text in refusals)


def test_a_sync_server_verifies_and_hands_the_claims_over(
    emulator: EmulatorClient, credentials: Credentials, key_info: dict[str, str]
) -> None:
    verifier = Verifier(AUDIENCE, certs=f"{emulator.url}/oauth2/v3/certs")
    handlers: dict[str, Any] = {
        "Unary": grpc.unary_unary_rpc_method_handler(_who),
        "Server": grpc.unary_stream_rpc_method_handler(_who_many),
    }
    with futures.ThreadPoolExecutor(max_workers=4) as pool:
        server = grpc.server(pool, interceptors=[IdTokenServerInterceptor(verifier)])
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
        port = server.add_secure_port("127.0.0.1:0", grpc.local_server_credentials(grpc.LocalConnectionType.LOCAL_TCP))
        server.start()
        try:
            with local_channel(f"127.0.0.1:{port}", credentials, audience=AUDIENCE) as channel:
                assert Echo(channel).unary(b"", timeout=10) == AUDIENCE.encode()
                assert list(Echo(channel).server_stream(b"", timeout=10)) == [key_info["client_email"].encode()]
            with grpc.secure_channel(f"127.0.0.1:{port}", local_credentials()) as bare:
                _check(_refusals(lambda metadata: Echo(bare).unary(b"", timeout=10, metadata=metadata)))
        finally:
            server.stop(None).wait()


def test_an_aio_server_verifies_and_hands_the_claims_over(
    emulator: EmulatorClient, credentials: Credentials, key_info: dict[str, str]
) -> None:
    verifier = Verifier(AUDIENCE, certs=f"{emulator.url}/oauth2/v3/certs")

    async def run() -> tuple[bytes, list[bytes], list[tuple[grpc.StatusCode, str]]]:
        server = grpc.aio.server(interceptors=[AioIdTokenServerInterceptor(verifier)])
        handlers: dict[str, Any] = {
            "Unary": grpc.unary_unary_rpc_method_handler(_aio_who),
            "Server": grpc.unary_stream_rpc_method_handler(_aio_who_many),
        }
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
        port = server.add_secure_port("127.0.0.1:0", grpc.local_server_credentials(grpc.LocalConnectionType.LOCAL_TCP))
        await server.start()
        try:
            async with aio.local_channel(f"127.0.0.1:{port}", credentials, audience=AUDIENCE) as channel:
                answer = await AioEcho(channel).unary(b"", timeout=10)
                many = [item async for item in AioEcho(channel).server_stream(b"", timeout=10)]
            refusals = []
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", local_credentials()) as bare:
                for metadata in ((), (("authorization", f"Bearer {FORGED}"),)):
                    try:
                        await AioEcho(bare).unary(b"", timeout=10, metadata=metadata)
                    except grpc.aio.AioRpcError as error:
                        refusals.append((error.code(), str(error.details())))
            return answer, many, refusals
        finally:
            await server.stop(None)

    answer, many, refusals = asyncio.run(run())
    assert answer == AUDIENCE.encode() and many == [key_info["client_email"].encode()]
    _check(refusals)
