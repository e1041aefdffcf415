"""Injected faults at the emulator, and the one retry policy every request follows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from gcptoken import TokenRequestError, TransportError, load_credentials
from gcptoken.http.flows import HttpResponse, retryable
from gcptoken.testing import EmulatorClient

AUD = "https://svc-faults.a.run.app"


@pytest.fixture
def inject(emulator: EmulatorClient) -> Any:
    def add(**fault: Any) -> None:
        response = httpx.post(f"{emulator.url}/emulator/v1/faults", json=fault)
        assert response.status_code == 200, response.text

    yield add
    httpx.delete(f"{emulator.url}/emulator/v1/faults")


def token_statuses(emulator: EmulatorClient, before: int) -> list[int | None]:
    return [entry["status"] for entry in emulator.state.request_log()[before:] if entry["path"] == "/token"]


def test_the_fault_admin_api(emulator: EmulatorClient, inject: Any) -> None:
    inject(path="/token", count=2, status=503)
    listed = httpx.get(f"{emulator.url}/emulator/v1/faults").json()["faults"]
    assert listed == [{"path": "/token", "count": 2, "status": 503}]
    assert httpx.post(f"{emulator.url}/emulator/v1/faults", json={"path": "/token"}).status_code == 400
    assert httpx.post(f"{emulator.url}/emulator/v1/faults", json={"count": 1}).status_code == 400
    assert httpx.delete(f"{emulator.url}/emulator/v1/faults").json() == {"faults": []}


@pytest.mark.parametrize(
    "fault",
    [{"status": 503}, {"status": 429}, {"status": 408}, {"drop": True}, {"truncate": True}],
    ids=["503", "429", "408", "drop", "truncate"],
)
def test_transient_faults_are_retried_then_succeed(
    emulator: EmulatorClient, key_path: Path, inject: Any, fault: dict[str, Any]
) -> None:
    inject(path="/token", count=2, **fault)
    before = len(emulator.state.request_log())
    token = load_credentials(key_path).id_token(AUD)
    assert token.claims["aud"] == AUD
    statuses = token_statuses(emulator, before)
    assert len(statuses) == 3 and statuses[-1] == 200


def test_retries_are_bounded(emulator: EmulatorClient, key_path: Path, inject: Any) -> None:
    inject(path="/token", count=10, status=503)
    before = len(emulator.state.request_log())
    with pytest.raises(TokenRequestError) as caught:
        load_credentials(key_path).id_token(AUD)
    assert caught.value.status == 503 and caught.value.retryable
    assert token_statuses(emulator, before) == [503, 503, 503]  # one try, two retries


def test_refusals_are_not_retried(emulator: EmulatorClient, key_path: Path, inject: Any) -> None:
    inject(path="/token", count=5, status=403)
    before = len(emulator.state.request_log())
    with pytest.raises(TokenRequestError):
        load_credentials(key_path).id_token(AUD)
    assert token_statuses(emulator, before) == [403]


def test_slow_answers_fail_clearly_within_the_deadline(key_path: Path, inject: Any) -> None:
    inject(path="/token", count=10, delay=1.5)
    # Each attempt times out at 0.4 s; the overall deadline (3 x 0.4 s) allows two or three.
    with pytest.raises(TransportError, match=r"timed out .*after [23] attempts"):
        load_credentials(key_path).id_token(AUD, timeout=0.4)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (503, b"", True),
        (502, b"{}", True),
        (429, b"", True),
        (408, b"", True),
        (400, b'{"error":"temporarily_unavailable"}', True),
        (400, b'{"error": "internal_failure"}', True),
        (400, b'{"error":"invalid_grant"}', False),
        (401, b"", False),
        (403, b"", False),
        (200, b"", False),
    ],
)
def test_what_is_retryable(status: int, body: bytes, expected: bool) -> None:
    assert retryable(HttpResponse(status, {}, body)) is expected
