"""The first grpc.aio RPC of a fresh process: its token fetch imports httpx and sets up a client,
which must happen off the event loop (a heartbeat task measures the loop's longest stall). A fresh
process is the subject: in the test process everything is imported already."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integrations.grpc.server import AUDIENCE, EchoServer

SCRIPT = """
import asyncio, sys, time
from gcptoken import load_credentials
from gcptoken.integrations.grpc import aio

async def main():
    longest, last, done = 0.0, time.monotonic(), False
    async def heartbeat():
        nonlocal longest, last
        while not done:
            await asyncio.sleep(0.002)
            now = time.monotonic()
            longest, last = max(longest, now - last), now
    beating = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.02)
    longest = 0.0
    async with aio.local_channel(sys.argv[1], load_credentials(sys.argv[2]), audience=sys.argv[3]) as channel:
        answer = await channel.unary_unary("/test.Echo/Unary")(b"x", timeout=10)
    done = True
    await beating
    print(answer.decode(), round(longest, 3))

asyncio.run(main())
"""


def test_the_first_aio_rpc_of_a_process_never_stalls_the_event_loop(server: EchoServer, key_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, server.target, str(key_path), AUDIENCE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer, stall = result.stdout.split()
    assert answer == "unary:x" and len(server.interceptor.accepted) == 1
    assert float(stall) < 0.15, f"the event loop stood still for {stall}s on the first RPC's token fetch"
