"""A regional access boundary lookup that fails never fails the call: refusals, broken and hostile
answers, a lookup that hangs and an unreachable IAM all send the call without the header, wait out
google-auth's cooldown, and log no token. And the cache's rules on a clock: 6 h life, a new lookup
in the last hour, 15 min cooldown doubling up to 6 h."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gcptoken import load_credentials
from gcptoken.credentials.access_boundary import (
    COOLDOWN,
    ENABLE_ENV,
    MAX_COOLDOWN,
    REFRESH_BEFORE,
    TTL,
    Boundary,
)
from gcptoken.integrations import httpx_auth, requests_auth
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import CLOSED_LOOPBACK, EmulatorClient
from tests import recording_api
from tests.clock import Clock
from tests.recording_api import Api

api = recording_api.api


@dataclass
class FakeIam:
    """iamcredentials.googleapis.com answering lookups as told; counts them."""

    status: int = 200
    body: bytes = b'{"encodedLocations": "0x1"}'
    delay: float = 0.0
    hits: list[str] = field(default_factory=list)

    async def lookup(self, request: Request) -> Response:
        self.hits.append(request.headers.get("authorization", ""))
        if self.delay:
            await asyncio.sleep(self.delay)
        return Response(self.body, status_code=self.status, media_type="application/json")


@pytest.fixture
def fake_iam(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeIam]:
    """Lookups go to the fake (GCPTOKEN_EMULATOR_HOST); the key's token_uri still names the emulator."""
    iam = FakeIam()
    route = Route("/v1/projects/-/serviceAccounts/{email}/allowedLocations", iam.lookup, methods=["GET"])
    with AsgiServer(Starlette(routes=[route]), bind("127.0.0.1", 0)) as server:
        monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", server.url.removeprefix("http://"))
        monkeypatch.setenv(ENABLE_ENV, "1")
        yield iam


def calls_go_without_the_header(api: tuple[Api, str], key_path: Path) -> str:
    """Two calls with one credential (httpx, then requests): both sent, neither with the header;
    the token they carried."""
    recorder, url = api
    credentials = load_credentials(key_path)
    assert httpx.get(url, auth=httpx_auth.AccessTokenAuth(credentials)).status_code == 200
    assert "x-allowed-locations" not in recorder.seen[-1]
    assert requests.get(url, auth=requests_auth.AccessTokenAuth(credentials), timeout=10).status_code == 200
    assert "x-allowed-locations" not in recorder.seen[-1]
    return recorder.seen[-1]["authorization"].removeprefix("Bearer ")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, b'{"error": {"code": 503, "message": "backend unavailable", "status": "UNAVAILABLE"}}'),
        (403, b'{"error": {"code": 403, "message": "Permission denied", "status": "PERMISSION_DENIED"}}'),
        (200, b"<html>not json</html>"),
        (200, b"[]"),
        (200, b'{"locations": ["us-central1"]}'),
        (200, b'{"encodedLocations": 12}'),
        (200, b'{"encodedLocations": ""}'),
        (200, b'{"encodedLocations": "0x1\\r\\nx-injected: yes"}'),
        (200, b'{"encodedLocations": "0x1 0x2"}'),
        (200, b'{"encodedLocations": "0x\\u00e9"}'),
        (200, b'{"encodedLocations": "0x' + b"F" * 2000 + b'"}'),
        (200, b'{"encodedLocations": "0x1", "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ],
)
def test_a_refused_broken_or_hostile_lookup_sends_the_call_without_the_header(
    fake_iam: FakeIam,
    api: tuple[Api, str],
    key_path: Path,
    caplog: pytest.LogCaptureFixture,
    status: int,
    body: bytes,
) -> None:
    fake_iam.status, fake_iam.body = status, body
    with caplog.at_level(logging.WARNING, logger="gcptoken.credentials"):
        token = calls_go_without_the_header(api, key_path)
    assert len(fake_iam.hits) == 1  # the failure starts the cooldown: no second lookup
    assert fake_iam.hits[0] == f"Bearer {token}"
    (record,) = [r for r in caplog.records if "regional access boundary" in r.getMessage()]
    message = record.getMessage()
    assert "for 15 min" in message and "\n" not in message and "\r" not in message
    assert token not in message and "x-injected" not in message


def test_a_lookup_that_hangs_is_given_up_after_3_s(fake_iam: FakeIam, api: tuple[Api, str], key_path: Path) -> None:
    fake_iam.delay = 30.0
    calls_go_without_the_header(api, key_path)
    assert len(fake_iam.hits) == 1


def test_an_async_lookup_that_fails_sends_the_call_too(fake_iam: FakeIam, api: tuple[Api, str], key_path: Path) -> None:
    fake_iam.status = 500
    recorder, url = api
    auth = httpx_auth.AccessTokenAuth(load_credentials(key_path))

    async def calls() -> None:
        async with httpx.AsyncClient(auth=auth) as client:
            for _ in range(2):
                assert (await client.get(url)).status_code == 200
                assert "x-allowed-locations" not in recorder.seen[-1]

    asyncio.run(calls())
    assert len(fake_iam.hits) == 1


def test_an_unreachable_iam_sends_the_call_too(
    emulator: EmulatorClient, api: tuple[Api, str], key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", CLOSED_LOOPBACK)
    monkeypatch.setenv(ENABLE_ENV, "true")
    calls_go_without_the_header(api, key_path)


def test_the_boundary_is_sent_once_the_answer_is_good(fake_iam: FakeIam, api: tuple[Api, str], key_path: Path) -> None:
    recorder, url = api
    fake_iam.body = json.dumps({"locations": ["x"], "encodedLocations": "0xA30"}).encode()
    auth = httpx_auth.AccessTokenAuth(load_credentials(key_path))
    for _ in range(3):
        httpx.get(url, auth=auth)
        assert recorder.seen[-1]["x-allowed-locations"] == "0xA30"
    assert len(fake_iam.hits) == 1


# -- the rules, on a clock ------------------------------------------------------------------------


def test_a_boundary_lives_6_h_and_is_looked_up_again_in_its_last_hour() -> None:
    clock = Clock()
    boundary = Boundary(clock)
    assert boundary.header() is None and boundary.claim()
    assert not boundary.claim()  # one lookup at a time
    boundary.found("0x1")
    assert boundary.header() == "0x1" and not boundary.claim()
    clock.offset += TTL - REFRESH_BEFORE - 1
    assert not boundary.claim()
    clock.offset += 2
    assert boundary.claim()  # in the last hour: looked up again, still sent meanwhile
    assert boundary.header() == "0x1"
    boundary.found("0x3")
    clock.offset += TTL - 1
    assert boundary.header() == "0x3"
    clock.offset += 2
    assert boundary.header() is None


def test_failures_wait_15_min_doubling_up_to_6_h_and_keep_the_boundary_until_it_expires() -> None:
    clock = Clock()
    boundary = Boundary(clock)
    assert boundary.claim()
    boundary.found("0x1")
    clock.offset += TTL - REFRESH_BEFORE + 1
    waits = []
    for _ in range(7):
        assert boundary.claim()
        waits.append(boundary.failed())
        assert not boundary.claim()
        clock.offset += waits[-1] - 1
        assert not boundary.claim()
        clock.offset += 1
    assert waits == [COOLDOWN, 2 * COOLDOWN, 4 * COOLDOWN, 8 * COOLDOWN, 16 * COOLDOWN, MAX_COOLDOWN, MAX_COOLDOWN]
    assert boundary.header() is None  # the old boundary expired meanwhile
    assert boundary.claim()
    boundary.found("0x2")
    assert boundary.header() == "0x2"
    clock.offset += TTL - REFRESH_BEFORE + 1
    assert boundary.claim()
    assert boundary.failed() == COOLDOWN  # a success resets the cooldown
    assert boundary.header() == "0x2"  # and a failure keeps what has not expired


def test_a_credential_with_nothing_to_look_up_is_not_asked_again() -> None:
    boundary = Boundary(Clock())
    assert boundary.claim()
    boundary.none()
    assert not boundary.claim() and boundary.header() is None
    fresh = Boundary(Clock())
    assert fresh.claim()
    fresh.release()  # an interrupted lookup: the next caller tries
    assert fresh.claim()
