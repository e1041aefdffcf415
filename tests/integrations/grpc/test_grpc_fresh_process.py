"""The first grpc.aio RPC of a fresh process, and the first ``id_token_async`` (what every async
consumer awaits): their token fetch imports httpx and sets up a client, which must happen off the
event loop (a heartbeat task measures the loop's longest stall). A fresh process is the subject: in
the test process everything is imported already."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integrations.grpc.server import AUDIENCE, EchoServer

SCRIPT = """
import asyncio, sys
from tests.integrations.grpc.stall import longest_stall
from gcptoken import load_credentials
from gcptoken.integrations.grpc import aio

async def first_rpc():
    async with aio.local_channel(sys.argv[1], load_credentials(sys.argv[2]), audience=sys.argv[3]) as channel:
        return await channel.unary_unary("/test.Echo/Unary")(b"x", timeout=10)

async def first_fetch():
    token = await load_credentials(sys.argv[2]).id_token_async(sys.argv[3])
    return b"unary:x" if token.value else b""

answer, stall = asyncio.run(longest_stall(first_rpc if sys.argv[4] == "rpc" else first_fetch, 0.002))
print(answer.decode(), round(stall, 3))
"""


@pytest.mark.parametrize("first", ["rpc", "id_token_async"])
def test_the_first_aio_rpc_of_a_process_never_stalls_the_event_loop(
    first: str, server: EchoServer, key_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, server.target, str(key_path), AUDIENCE, first],
        cwd=Path(__file__).parents[3],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer, stall = result.stdout.split()
    assert answer == "unary:x" and len(server.interceptor.accepted) == (first == "rpc")
    assert float(stall) < 0.15, f"the event loop stood still for {stall}s on the first RPC's token fetch"
