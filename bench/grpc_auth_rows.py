"""gRPC unary RPCs per second with gcptoken's ID tokens beside the same RPCs carrying a static
``authorization`` header (the token already in hand): the channel helpers (interceptors, sync and
grpc.aio), and call credentials, which grpcio runs in a new thread per RPC. The server is a
grpcio server on loopback that verifies every token, alike for all."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
import grpc.aio

from bench.timing import Contender, Row, interleaved
from gcptoken import Verifier
from gcptoken.credentials import credentials_from_info
from gcptoken.emulator.http.server import EmulatorServer
from gcptoken.integrations.grpc import aio, id_token_call_credentials, local_channel, local_credentials

__all__ = ["grpc_auth_rows"]

AUDIENCE = "https://bench-grpc.a.run.app"
METHOD = "/bench.Echo/Unary"
GATE = 0.95


def _same(data: bytes) -> bytes:
    return data


@contextmanager
def _verifying_server(verifier: Verifier) -> Iterator[str]:
    """A grpcio server on 127.0.0.1 answering METHOD only for a token ``verifier`` accepts."""

    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        header = dict(context.invocation_metadata()).get("authorization", "")
        try:
            verifier.verify(str(header).removeprefix("Bearer "))
        except Exception as error:  # the bench counts refusals as errors, whatever they are
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(error))
        return request

    with futures.ThreadPoolExecutor(max_workers=4) as pool:
        server = grpc.server(pool)
        handlers = {"Unary": grpc.unary_unary_rpc_method_handler(unary, _same, _same)}
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.Echo", handlers)])
        port = server.add_secure_port("127.0.0.1:0", grpc.local_server_credentials(grpc.LocalConnectionType.LOCAL_TCP))
        server.start()
        try:
            yield f"127.0.0.1:{port}"
        finally:
            server.stop(None).wait()


def _row(name: str, baseline: Contender, ours: Contender, count: int, rounds: int, goal: bool) -> Row:
    """``ours`` against ``baseline``, measured in both orders: whichever of two identical contenders
    runs first in a chunk measures a few percent faster here, and the geometric mean of the two
    orders' ratios cancels that."""
    first = interleaved({"baseline": baseline, "ours": ours}, count, max(1, rounds // 2), chunk=50)
    second = interleaved({"ours": ours, "baseline": baseline}, count, max(1, rounds - rounds // 2), chunk=50)
    ratio = math.sqrt(first["ours"] / first["baseline"] * second["ours"] / second["baseline"])
    rate, base = (first["ours"] + second["ours"]) / 2, (first["baseline"] + second["baseline"]) / 2
    row = Row("grpc", name, round(rate), "RPCs/s", round(ratio, 2), f"of a static header ({round(base)}/s)")
    if goal:
        row.goal, row.meets = f"≥ {GATE}× a static header", ratio >= GATE
    return row


def grpc_auth_rows(emulator: EmulatorServer, count: int, rounds: int) -> list[Row]:
    credentials = credentials_from_info(emulator.key_file("bench-grpc"), "bench key")
    static = (("authorization", f"Bearer {credentials.id_token(AUDIENCE).value}"),)  # also warms the cache
    verifier = Verifier(AUDIENCE, certs=f"{emulator.url}/oauth2/v3/certs")
    loop = asyncio.new_event_loop()
    with _verifying_server(verifier) as target:
        plain = grpc.secure_channel(target, local_credentials())
        ours = local_channel(target, credentials, audience=AUDIENCE)
        composite = grpc.composite_channel_credentials(
            local_credentials(), id_token_call_credentials(credentials, audience=AUDIENCE)
        )
        plugged = grpc.secure_channel(target, composite)
        aio_plain: Any = None
        aio_ours: Any = None

        async def open_aio() -> None:
            nonlocal aio_plain, aio_ours
            aio_plain = grpc.aio.secure_channel(target, local_credentials())
            aio_ours = aio.local_channel(target, credentials, audience=AUDIENCE)

        try:
            loop.run_until_complete(open_aio())
            calls = {
                name: channel.unary_unary(METHOD, _same, _same)
                for name, channel in (("plain", plain), ("ours", ours), ("plugged", plugged))
            }
            aio_calls = {
                "plain": aio_plain.unary_unary(METHOD, _same, _same),
                "ours": aio_ours.unary_unary(METHOD, _same, _same),
            }

            def sync(name: str, metadata: Any = None) -> Contender:
                def run(chunk: range) -> int:
                    for _ in chunk:
                        calls[name](b"x", timeout=10, metadata=metadata)
                    return len(chunk)

                return run

            def asynchronous(name: str, metadata: Any = None) -> Contender:
                async def many(chunk: range) -> None:
                    for _ in chunk:
                        await aio_calls[name](b"x", timeout=10, metadata=metadata)

                def run(chunk: range) -> int:
                    loop.run_until_complete(many(chunk))
                    return len(chunk)

                return run

            # Pairs, each against its own baseline in the same rounds: the call credentials' thread
            # per RPC would otherwise weigh on whatever runs after them.
            rows = [
                _row("unary RPCs/s, gcptoken channel", sync("plain", static), sync("ours"), count, rounds, True),
                _row(
                    "unary RPCs/s, gcptoken aio channel",
                    asynchronous("plain", static),
                    asynchronous("ours"),
                    count,
                    rounds,
                    False,  # grpc.aio's interceptor machinery: shown, not judged (see the README's row)
                ),
                # grpcio's thread per RPC, not gcptoken's doing: shown, not judged
                _row(
                    "unary RPCs/s, gcptoken call credentials",
                    sync("plain", static),
                    sync("plugged"),
                    count // 2,
                    rounds,
                    False,
                ),
            ]
        finally:
            plain.close()
            ours.close()
            plugged.close()
            for channel in (aio_plain, aio_ours):  # None when opening them failed
                if channel is not None:
                    loop.run_until_complete(channel.close())
            loop.close()
    return rows
