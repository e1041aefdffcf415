"""Calling a protected service: httpx (sync, async) and requests auth, gcptoken call and curl."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import httpx2
import pytest
import requests
from starlette.types import ASGIApp, Receive, Scope, Send

from gcptoken import Verifier, load_credentials
from gcptoken.demo.showcase import protected_service
from gcptoken.integrations.audience import audience_for
from gcptoken.integrations.httpx2_auth import IdTokenAuth as Httpx2Auth
from gcptoken.integrations.httpx_auth import AccessTokenAuth as HttpxAccessAuth
from gcptoken.integrations.httpx_auth import IdTokenAuth as HttpxAuth
from gcptoken.integrations.requests_auth import AccessTokenAuth as RequestsAccessAuth
from gcptoken.integrations.requests_auth import IdTokenAuth as RequestsAuth
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient
from tests.cli.test_cli import gcptoken
from tests.integrations.redirects import cross_origin_redirector, recorder


class RefuseFirst:
    """Answers the first request with 401 invalid_token (as if its token were revoked), then passes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.refused = app, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.refused:
            self.refused = True
            headers = [(b"www-authenticate", b'Bearer error="invalid_token", error_description="revoked"')]
            await send({"type": "http.response.start", "status": 401, "headers": headers})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        await self.app(scope, receive, send)


@dataclass
class Service:
    url: str
    gate: RefuseFirst


@pytest.fixture
def service(emulator: EmulatorClient) -> Iterator[Service]:
    sock = bind("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    gate = RefuseFirst(protected_service(Verifier(url, certs=f"{emulator.url}/oauth2/v3/certs")))
    gate.refused = True  # pass-through unless a test arms it
    with AsgiServer(gate, sock):
        yield Service(url, gate)


def fetches(emulator: EmulatorClient, key_info: dict[str, str]) -> int:
    return len(emulator.token_requests_by(key_info["client_email"]))


def test_httpx_sync_and_async(
    service: Service, key_path: Path, key_info: dict[str, str], emulator: EmulatorClient
) -> None:
    auth = HttpxAuth(load_credentials(key_path))
    with httpx.Client(auth=auth) as client:
        for _ in range(3):
            response = client.get(f"{service.url}/")
            assert response.status_code == 200 and key_info["client_email"] in response.text

    async def call() -> int:
        async with httpx.AsyncClient(auth=auth) as client:
            return (await client.get(f"{service.url}/")).status_code

    assert asyncio.run(call()) == 200
    assert fetches(emulator, key_info) == 1  # one token for all four calls


def test_requests(service: Service, key_path: Path, key_info: dict[str, str]) -> None:
    with requests.Session() as session:
        response = session.get(f"{service.url}/", auth=RequestsAuth(load_credentials(key_path)), timeout=10)
    assert response.status_code == 200 and key_info["client_email"] in response.text


def test_a_refused_token_is_replaced_once(
    service: Service, key_path: Path, key_info: dict[str, str], emulator: EmulatorClient
) -> None:
    credentials = load_credentials(key_path)
    credentials.id_token(service.url)
    service.gate.refused = False
    with httpx.Client(auth=HttpxAuth(credentials)) as client:
        assert client.get(f"{service.url}/").status_code == 200
    assert fetches(emulator, key_info) == 2  # a fresh token was fetched for the retry
    service.gate.refused = False
    with requests.Session() as session:
        response = session.get(f"{service.url}/", auth=RequestsAuth(credentials), timeout=10)
    assert response.status_code == 200 and len(response.history) == 1


HEADERS = ["Authorization", "X-Serverless-Authorization"]
OURS = (b"authorization", b"x-serverless-authorization")


@pytest.mark.parametrize("header", HEADERS)
def test_requests_sends_no_token_across_a_redirect(key_path: Path, header: str) -> None:
    """127.0.0.1 redirects to localhost: another origin gets neither header (requests strips only
    Authorization, and only for another host); the other origin's answer is not retried with one."""
    credentials = load_credentials(key_path)
    with recorder() as target, cross_origin_redirector(target.url) as redirector, requests.Session() as session:
        for auth in (RequestsAuth(credentials, header=header), RequestsAccessAuth(credentials)):
            assert session.get(f"{redirector}/x", auth=auth, timeout=10).status_code == 200
    assert len(target.seen) == 2 and not any(name in seen for seen in target.seen for name in OURS)


@pytest.mark.parametrize("header", HEADERS)
def test_httpx_sends_no_token_across_a_redirect(key_path: Path, header: str) -> None:
    """httpx and httpx2 following redirects (sync, async), and a redirect followed by hand with an
    explicit audience (the auth flow runs again for the hop): no token reaches the other origin."""
    credentials = load_credentials(key_path)
    with recorder() as target, cross_origin_redirector(target.url) as redirector:
        auth = HttpxAuth(credentials, audience="https://svc.example.com", header=header)
        with httpx.Client(auth=auth, follow_redirects=True) as client:
            assert client.get(f"{redirector}/a").status_code == 200
        with httpx.Client(auth=auth) as client:
            hop = client.get(f"{redirector}/b").next_request
            assert hop is not None and client.send(hop).status_code == 200
        with httpx.Client(auth=HttpxAccessAuth(credentials), follow_redirects=True) as client:
            assert client.get(f"{redirector}/c").status_code == 200

        async def call() -> int:
            async with httpx.AsyncClient(auth=auth, follow_redirects=True) as client:
                return (await client.get(f"{redirector}/d")).status_code

        assert asyncio.run(call()) == 200
        with httpx2.Client(auth=Httpx2Auth(credentials, header=header), follow_redirects=True) as client2:
            assert client2.get(f"{redirector}/e").status_code == 200
    assert len(target.seen) == 5 and not any(name in seen for seen in target.seen for name in OURS)


def test_a_refused_token_is_renewed_at_most_once_per_interval(
    service: Service, key_path: Path, key_info: dict[str, str], emulator: EmulatorClient
) -> None:
    """A wrong audience is refused every time: each auth object forces one renewal, then answers
    the 401 as it came until REFRESH_INTERVAL has passed (not a token fetch per request)."""
    credentials = load_credentials(key_path)
    wrong = "https://another.a.run.app"
    with httpx.Client(auth=HttpxAuth(credentials, audience=wrong)) as client:
        assert [client.get(f"{service.url}/").status_code for _ in range(3)] == [401] * 3
    assert fetches(emulator, key_info) == 2  # the first token, one renewal

    async def call() -> list[int]:
        async with httpx.AsyncClient(auth=HttpxAuth(credentials, audience=wrong)) as client:
            return [(await client.get(f"{service.url}/")).status_code for _ in range(3)]

    assert asyncio.run(call()) == [401] * 3
    assert fetches(emulator, key_info) == 3  # its own renewal
    with requests.Session() as session:
        auth = RequestsAuth(credentials, audience=wrong)
        assert [session.get(f"{service.url}/", auth=auth, timeout=10).status_code for _ in range(3)] == [401] * 3
    assert fetches(emulator, key_info) == 4


def test_a_wrong_audience_is_retried_once_then_reported(service: Service, key_path: Path) -> None:
    auth = HttpxAuth(load_credentials(key_path), audience="https://another.a.run.app")
    with httpx.Client(auth=auth) as client:
        response = client.get(f"{service.url}/")
    assert response.status_code == 401 and "audience" in response.text


@pytest.mark.parametrize(
    ("url", "audience"),
    [
        ("https://svc-abc-uc.a.run.app/v1/items?x=1", "https://svc-abc-uc.a.run.app"),
        ("https://svc.example.com:8443/p", "https://svc.example.com:8443"),
        ("https://svc.example.com:443/p", "https://svc.example.com"),
        (
            "https://us-central1-proj.cloudfunctions.net/hello/sub?x",
            "https://us-central1-proj.cloudfunctions.net/hello",
        ),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("https://[::1]:8443/p", "https://[::1]:8443"),  # an IPv6 host keeps its brackets
        ("http://[::1]:80/", "http://[::1]"),
    ],
)
def test_audience_from_the_url(url: str, audience: str) -> None:
    assert audience_for(url) == audience


def test_gcptoken_call(service: Service, key_path: Path, tmp_path: Path) -> None:
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(key_path)}
    ok = gcptoken("call", f"{service.url}/", env=env)
    assert ok.code == 0 and "Hello" in ok.out and "HTTP 200" in ok.err
    posted = gcptoken("call", "POST", f"{service.url}/", "--data", "x", "-H", "X-Test: 1", env=env)
    assert posted.code == 1 and "HTTP 405" in posted.err  # the demo service answers GET only
    wrong = gcptoken("call", f"{service.url}/", "--audience", "https://other", env=env)
    assert wrong.code == 1 and "HTTP 401" in wrong.err
    bad = gcptoken("call", "GET", "POST", "x", env=env)
    assert bad.code == 2 and len(bad.err.splitlines()) == 1


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed on this machine")
def test_gcptoken_curl(service: Service, key_path: Path) -> None:
    result = gcptoken("curl", f"{service.url}/", "--", "-s", env={"GOOGLE_APPLICATION_CREDENTIALS": str(key_path)})
    assert result.code == 0 and "Hello" in result.out
