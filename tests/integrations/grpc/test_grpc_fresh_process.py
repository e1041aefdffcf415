"""The first grpc.aio RPC of a fresh process: its token fetch imports httpx and sets up a client,
which must happen off the event loop (a heartbeat task measures the loop's longest stall). A fresh
process is the subject: in the test process everything is imported already."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integrations.grpc.server import AUDIENCE, EchoServer

SCRIPT = """
import asyncio, sys
from tests.integrations.grpc.stall import longest_stall
from gcptoken import load_credentials
from gcptoken.integrations.grpc import aio

async def first_rpc():
    async with aio.local_channel(sys.argv[1], load_credentials(sys.argv[2]), audience=sys.argv[3]) as channel:
        return await channel.unary_unary("/test.Echo/Unary")(b"x", timeout=10)

answer, stall = asyncio.run(longest_stall(first_rpc, 0.002))
print(answer.decode(), round(stall, 3))
"""


def test_the_first_aio_rpc_of_a_process_never_stalls_the_event_loop(server: EchoServer, key_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, server.target, str(key_path), AUDIENCE],
        cwd=Path(__file__).parents[3],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer, stall = result.stdout.split()
    assert answer == "unary:x" and len(server.interceptor.accepted) == 1
    assert float(stall) < 0.15, f"the event loop stood still for {stall}s on the first RPC's token fetch"
