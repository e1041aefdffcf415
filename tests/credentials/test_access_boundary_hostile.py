"""A hostile iamcredentials.googleapis.com answering the regional access boundary lookup (through
GCPTOKEN_EMULATOR_HOST; the key file's token_uri still names the emulator): an answer that echoes
the bearer token in its error text, a redirect to another server, an answer that trickles in, one
too large to read. The call always goes, without the header, and the token never reaches the log
or another server. (Refusals, broken JSON, header injection in encodedLocations and a hang are in
test_access_boundary_failures.)"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gcptoken import load_credentials
from gcptoken.credentials.access_boundary import ENABLE_ENV
from gcptoken.integrations import httpx_auth, requests_auth
from gcptoken.servers.serving import AsgiServer, bind
from tests import recording_api
from tests.recording_api import Api

LOOKUP = "/v1/projects/-/serviceAccounts/{email}/allowedLocations"


api = recording_api.api


@dataclass
class HostileIam:
    """The lookup answered by ``mode``: echo (a 401 repeating the Authorization it got, after
    ``padding`` characters), redirect (to ``elsewhere``), drip (one byte every 0.2 s), huge (2 MB)."""

    mode: str = "echo"
    padding: int = 0
    elsewhere: str = ""
    hits: list[str] = field(default_factory=list)

    async def lookup(self, request: Request) -> Response:
        self.hits.append(request.headers.get("authorization", ""))
        if self.mode == "echo":
            words = "x" * self.padding + f" Request had invalid credentials: {request.headers.get('authorization')}"
            error = {"code": 401, "message": words, "status": "UNAUTHENTICATED"}
            return Response(json.dumps({"error": error}), status_code=401, media_type="application/json")
        if self.mode == "redirect":
            return Response(status_code=307, headers={"Location": self.elsewhere})
        if self.mode == "drip":
            return StreamingResponse(_drip(), media_type="application/json")
        huge = b'{"encodedLocations": "0x1", "pad": "' + b"A" * (2 << 20) + b'"}'
        return Response(huge, media_type="application/json")


async def _drip() -> AsyncIterator[bytes]:
    for byte in b'{"encodedLocations": "0x1"}':  # about 5 s in all: past the lookup's 3 s
        yield bytes([byte])
        await asyncio.sleep(0.2)


class Elsewhere:
    """Another server a redirect names: it must never see the token."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def anything(self, request: Request) -> Response:
        self.seen.append(request.headers.get("authorization", ""))
        return Response(b'{"encodedLocations": "0x1"}', media_type="application/json")


@pytest.fixture
def iam(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileIam]:
    hostile = HostileIam()
    app = Starlette(routes=[Route(LOOKUP, hostile.lookup, methods=["GET"])])
    with AsgiServer(app, bind("127.0.0.1", 0)) as server:
        monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", server.url.removeprefix("http://"))
        monkeypatch.setenv(ENABLE_ENV, "true")
        yield hostile


def _call(flavour: str, url: str, key_path: Path) -> int:
    credentials = load_credentials(key_path)
    if flavour == "requests":
        return requests.get(url, auth=requests_auth.AccessTokenAuth(credentials), timeout=20).status_code

    async def call() -> int:
        async with httpx.AsyncClient() as client:
            return (await client.get(url, auth=httpx_auth.AccessTokenAuth(credentials))).status_code

    if flavour == "httpx-async":
        return asyncio.run(call())
    return httpx.get(url, auth=httpx_auth.AccessTokenAuth(credentials), timeout=20).status_code


def _pieces(token: str, size: int = 12) -> list[str]:
    return [token[i : i + size] for i in range(0, len(token) - size + 1, size // 2)]


@pytest.mark.parametrize("flavour", ["httpx", "httpx-async", "requests"])
@pytest.mark.parametrize("padding", [0, 220], ids=["whole", "cut-by-the-cap"])
def test_a_token_the_lookup_echoes_never_reaches_the_log(
    iam: HostileIam,
    api: tuple[Api, str],
    key_path: Path,
    caplog: pytest.LogCaptureFixture,
    flavour: str,
    padding: int,
) -> None:
    """An answer repeating the request's Authorization (as some front ends' error pages do) is
    logged as a refusal without the token, whole or cut short by the 300-character cap."""
    iam.padding = padding
    recorder, url = api
    with caplog.at_level(logging.DEBUG):
        assert _call(flavour, url, key_path) == 200
    token = recorder.seen[-1]["authorization"].removeprefix("Bearer ")
    assert "x-allowed-locations" not in recorder.seen[-1]
    assert iam.hits == [f"Bearer {token}"]
    said = "\n".join(record.getMessage() for record in caplog.records)
    assert "regional access boundary lookup failed" in said and "HTTP 401" in said
    assert not [piece for piece in _pieces(token) if piece in said], "part of the token was logged"


@pytest.mark.parametrize("flavour", ["httpx", "httpx-async", "requests"])
def test_a_redirect_is_not_followed_with_the_token(
    iam: HostileIam, api: tuple[Api, str], key_path: Path, flavour: str
) -> None:
    elsewhere = Elsewhere()
    app = Starlette(routes=[Route("/{path:path}", elsewhere.anything, methods=["GET"])])
    with AsgiServer(app, bind("127.0.0.1", 0)) as server:
        iam.mode, iam.elsewhere = "redirect", f"{server.url}/collect"
        assert _call(flavour, api[1], key_path) == 200
    assert len(iam.hits) == 1 and elsewhere.seen == []
    assert "x-allowed-locations" not in api[0].seen[-1]


@pytest.mark.parametrize("flavour", ["httpx", "httpx-async"])
def test_an_answer_that_trickles_in_is_given_up(
    iam: HostileIam, api: tuple[Api, str], key_path: Path, flavour: str
) -> None:
    iam.mode = "drip"
    started = time.monotonic()
    assert _call(flavour, api[1], key_path) == 200
    assert time.monotonic() - started < 4.5  # the lookup's 3 s, not the 5 s the drip would take
    assert "x-allowed-locations" not in api[0].seen[-1]


def test_an_answer_too_large_to_read_is_refused(
    iam: HostileIam, api: tuple[Api, str], key_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    iam.mode = "huge"
    with caplog.at_level(logging.WARNING, logger="gcptoken.credentials"):
        assert _call("httpx", api[1], key_path) == 200
    assert "x-allowed-locations" not in api[0].seen[-1]
    (record,) = [r for r in caplog.records if "regional access boundary" in r.getMessage()]
    assert "larger than" in record.getMessage() and "AAAA" not in record.getMessage()
