"""Getting tokens in process: a cached ``id_token()`` against google-auth's IDTokenCredentials
holding a valid token, and how many upstream requests 200 concurrent cold callers cause."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from bench.timing import Contender, Row, interleaved
from gcptoken.credentials import credentials_from_info
from gcptoken.emulator.http.server import EmulatorServer

__all__ = ["cached_token_rows", "single_flight_rows"]

AUD = "https://bench-tokens.a.run.app"
CALLERS = 200


def _google_auth_credentials(key: dict[str, str]) -> Any:
    from google.oauth2 import service_account

    return service_account.IDTokenCredentials.from_service_account_info(key, target_audience=AUD)


def cached_token_rows(emulator: EmulatorServer, count: int, rounds: int) -> list[Row]:
    import google.auth.transport.requests

    key = emulator.key_file("bench-cached")
    ours = credentials_from_info(key, "bench key")
    ours.id_token(AUD)
    theirs = _google_auth_credentials(key)
    request: Any = google.auth.transport.requests.Request()
    theirs.refresh(request)

    def gcptoken_cached(chunk: range) -> int:
        for _ in chunk:
            ours.id_token(AUD)
        return len(chunk)

    def google_auth_valid(chunk: range) -> int:
        for _ in chunk:  # what an authorized session does per request: refresh only if needed
            headers: dict[str, str] = {}
            theirs.before_request(request, "GET", AUD, headers)
        return len(chunk)

    contenders: dict[str, Contender] = {
        "google-auth IDTokenCredentials, valid token": google_auth_valid,
        "gcptoken id_token(), cached": gcptoken_cached,
    }
    rates = interleaved(contenders, count, rounds, chunk=500)
    baseline = rates["google-auth IDTokenCredentials, valid token"]
    return [
        Row("in-process", name, round(1e6 / rate, 2), "µs/call", round(rate / baseline, 2), "google-auth")
        for name, rate in rates.items()
    ]


def _stampede(call: Callable[[], object]) -> None:
    start = threading.Barrier(CALLERS)
    errors: list[BaseException] = []

    def caller() -> None:
        start.wait()
        try:
            call()
        except BaseException as exc:  # counted, reported below
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} callers failed: {errors[0]!r}")


def single_flight_rows(emulator: EmulatorServer) -> list[Row]:
    import google.auth.transport.requests

    rows = []
    key = emulator.key_file("bench-stampede-ours")
    ours = credentials_from_info(key, "bench key")
    emulator.state.clear_requests()
    _stampede(lambda: ours.id_token(AUD))
    requests = len(emulator.state.request_log())
    rows.append(Row("single flight", f"gcptoken, {CALLERS} concurrent cold callers", requests, "upstream requests"))

    theirs = _google_auth_credentials(emulator.key_file("bench-stampede-theirs"))
    request: Any = google.auth.transport.requests.Request()
    emulator.state.clear_requests()
    _stampede(lambda: theirs.before_request(request, "GET", AUD, {}))
    requests = len(emulator.state.request_log())
    rows.append(Row("single flight", f"google-auth, {CALLERS} concurrent cold callers", requests, "upstream requests"))
    return rows
