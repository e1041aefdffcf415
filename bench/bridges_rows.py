"""The local bridges under load: requests per second through ``gcptoken proxy`` beside the same
requests sent straight to the same local service (with a token the client already holds), and ID
tokens per second from ``gcptoken metadata-server`` with a warm cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.timing import Row, in_threads
from gcptoken import Verifier
from gcptoken.demo.showcase import protected_service
from gcptoken.emulator.http.server import EmulatorServer
from gcptoken.servers.serving import AsgiServer, bind

__all__ = ["against_direct", "bridges_rows", "side_by_side"]

CLIENTS = 4
AUDIENCE = "https://bench-proxied.a.run.app"
GATE = 0.7


def _rate(seconds: float, call: Callable[[httpx.Client], bool]) -> tuple[float, int]:
    """Requests per second from CLIENTS threads with one keep-alive connection each; errors."""
    done, errors = [0] * CLIENTS, [0] * CLIENTS
    stop = time.perf_counter() + seconds

    def client(index: int) -> None:
        with httpx.Client(timeout=10, trust_env=False) as http:
            while time.perf_counter() < stop:
                try:
                    ok = call(http)
                except httpx.HTTPError:
                    ok = False
                if ok:
                    done[index] += 1
                else:
                    errors[index] += 1

    return sum(done) / in_threads(CLIENTS, client), sum(errors)


Rate = Callable[[float], tuple[float, int]]


def side_by_side(seconds: float, direct: Rate, through: Rate) -> tuple[float, float, int]:
    """The best rates straight to a service and through a bridge to it, and the errors of both,
    in alternating windows: the machine's noise falls on both alike."""
    direct_rates: list[float] = []
    through_rates: list[float] = []
    errors = 0
    for _ in range(2):
        for rate_of, rates in ((direct, direct_rates), (through, through_rates)):
            rate, failed = rate_of(seconds / 4)
            rates.append(rate)
            errors += failed
    return max(direct_rates), max(through_rates), errors


def against_direct(name: str, unit: str, direct: float, through: float, errors: int, gate: float) -> Row:
    """A bridge's row, judged by its share of the direct rate."""
    # A window too short for one direct request (the quick mode on a busy machine) has no ratio.
    ratio = round(through / direct, 2) if direct else 0.0
    row = Row("bridges", name, round(through), unit)
    row.ratio, row.ratio_of = ratio, f"of direct ({round(direct)}/s)"
    row.goal, row.meets = f"≥ {gate}× direct, zero errors", ratio >= gate and errors == 0
    row.notes = {"direct": round(direct), "errors": errors}
    return row


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gcptoken"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **env},
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=20)


def bridges_rows(emulator: EmulatorServer, scratch: Path, seconds: float) -> list[Row]:
    key = scratch / "bridges-key.json"
    key.write_text(json.dumps(emulator.key_file("bench-bridges")))
    env = {"GCPTOKEN_EMULATOR_HOST": emulator.host_port}
    verifier = Verifier(AUDIENCE, certs=f"{emulator.url}/oauth2/v3/certs")
    rows: list[Row] = []
    with AsgiServer(protected_service(verifier), bind("127.0.0.1", 0)) as service:
        proxy, proxy_url = _start(["proxy", service.url, "--audience", AUDIENCE, "--credentials", str(key)], env)
        try:
            from gcptoken import load_credentials

            token = load_credentials(key).id_token(AUDIENCE).value
            headers = {"Authorization": f"Bearer {token}"}

            def direct(http: httpx.Client) -> bool:
                return http.get(service.url, headers=headers).status_code == 200

            def proxied(http: httpx.Client) -> bool:
                return http.get(proxy_url).status_code == 200

            best_direct, best_proxy, errors = side_by_side(
                seconds, lambda window: _rate(window, direct), lambda window: _rate(window, proxied)
            )
        finally:
            _stop(proxy)
    name = f"requests/s through gcptoken proxy, {CLIENTS} clients"
    rows.append(against_direct(name, "requests/s", best_direct, best_proxy, errors, GATE))

    server, host_port = _start(["metadata-server", "--credentials", str(key)], env)
    try:
        url = f"http://{host_port}/computeMetadata/v1/instance/service-accounts/default/identity"
        flavor = {"Metadata-Flavor": "Google"}
        httpx.get(url, params={"audience": AUDIENCE}, headers=flavor)  # warm: the one upstream fetch

        def identity(http: httpx.Client) -> bool:
            answer = http.get(url, params={"audience": AUDIENCE}, headers=flavor)
            return answer.status_code == 200 and answer.text.count(".") == 2

        rate, errors = _rate(seconds / 2, identity)
    finally:
        _stop(server)
    row = Row("bridges", f"metadata-server ID tokens/s, warm cache, {CLIENTS} clients", round(rate), "tokens/s")
    row.goal, row.meets = "zero errors", errors == 0
    row.notes = {"errors": errors}
    rows.append(row)
    return rows
