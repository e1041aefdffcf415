"""The emulator under load: ID tokens per second from concurrent clients on loopback, every one
answered correctly."""

from __future__ import annotations

import time

import httpx

from bench.timing import Row, in_threads
from gcptoken.emulator.http.server import EmulatorServer

__all__ = ["throughput_rows"]

CLIENTS = 16


def throughput_rows(emulator: EmulatorServer, seconds: float) -> list[Row]:
    url = f"{emulator.url}/computeMetadata/v1/instance/service-accounts/default/identity"
    done = [0] * CLIENTS
    errors = [0] * CLIENTS
    stop = time.perf_counter() + seconds

    def client(index: int) -> None:
        with httpx.Client(headers={"Metadata-Flavor": "Google"}, timeout=10, trust_env=False) as http:
            while time.perf_counter() < stop:
                response = http.get(url, params={"audience": f"https://load-{index}.a.run.app"})
                if response.status_code == 200 and response.text.count(".") == 2:
                    done[index] += 1
                else:
                    errors[index] += 1

    elapsed = in_threads(CLIENTS, client)
    row = Row("emulator", f"ID tokens/s, {CLIENTS} concurrent clients", round(sum(done) / elapsed), "tokens/s")
    row.notes = {"tokens": sum(done), "errors": sum(errors), "seconds": round(elapsed, 2)}
    row.goal, row.meets = "zero errors", sum(errors) == 0
    return [row]
