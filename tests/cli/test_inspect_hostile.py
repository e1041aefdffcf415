"""The inspector's server against anonymous and cross-site clients: any JSON type in any field,
oversized and truncated bodies, forms, foreign Origins and Hosts. Nothing reaches a 500, nothing but
the page's own JSON is answered."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gcptoken.inspector.server import inspector_app
from gcptoken.servers.launch import OneTimeLink
from gcptoken.servers.serving import AsgiServer, bind

VALUES: list[Any] = [None, True, 0, 1.5, "", " ", "x", "Bearer ", "a.b.c", "e30.e30.", [], ["x"], {}, {"token": 1}]


@pytest.fixture(scope="module")
def session() -> Iterator[tuple[httpx.Client, str]]:
    """A client that loaded the page first (so holds its session cookie), and the page's base."""
    link = OneTimeLink("inspect")
    with AsgiServer(inspector_app(link, "initial-token"), bind("127.0.0.1", 0)) as server:
        base = f"{server.url}/{link.secret}"
        with httpx.Client() as client:
            assert client.get(f"{base}/").status_code == 200
            yield client, base


@pytest.fixture(scope="module")
def base(session: tuple[httpx.Client, str]) -> str:
    return session[1]


@pytest.fixture(scope="module")
def client(session: tuple[httpx.Client, str]) -> httpx.Client:
    return session[0]


@pytest.mark.parametrize("call", ["inspect", "tokeninfo"])
def test_any_json_in_any_field(client: httpx.Client, base: str, call: str) -> None:
    audiences = VALUES if call == "inspect" else [None]  # tokeninfo has no audience
    for token in VALUES:
        for audience in audiences:
            answer = client.post(f"{base}/api/{call}", json={"token": token, "audience": audience})
            assert answer.status_code in (200, 400, 502), (token, audience, answer.text[:200])
            assert answer.headers["content-type"].startswith("application/json")
    for whole in VALUES:
        expected = (415,) if whole is None else (200, 400, 502)  # json=None sends no body, so no JSON type
        assert client.post(f"{base}/api/{call}", json=whole).status_code in expected


def test_oversized_truncated_and_form_bodies(client: httpx.Client, base: str) -> None:
    huge = {"token": "x" * (65 * 1024)}
    assert client.post(f"{base}/api/inspect", json=huge).status_code == 400
    truncated = client.post(
        f"{base}/api/inspect", content=b'{"token": "ab', headers={"Content-Type": "application/json"}
    )
    assert truncated.status_code == 400
    assert client.post(f"{base}/api/inspect", data={"token": "a.b.c"}).status_code == 415  # a cross-site form


def test_foreign_origins_hosts_and_paths(client: httpx.Client, base: str) -> None:
    evil = {"Origin": "https://evil.example"}
    assert client.post(f"{base}/api/inspect", json={"token": "x"}, headers=evil).status_code == 403
    site = {"Sec-Fetch-Site": "cross-site"}
    assert client.post(f"{base}/api/inspect", json={"token": "x"}, headers=site).status_code == 403
    assert client.get(f"{base}/", headers={"Host": "attacker.example:80"}).status_code == 403  # DNS rebinding
    assert client.get(base.rsplit("/", 1)[0] + "/guessed/").status_code == 404
    assert client.get(f"{base}/../../etc/passwd").status_code == 404
    assert client.get(f"{base}/inspector.html").status_code == 404  # only the named assets


def test_other_sites_cookies_do_not_end_the_session(client: httpx.Client, base: str) -> None:
    """Cookies are shared by every port of 127.0.0.1: another app's odd ones beside ours (values
    http.cookies would drop the whole header over) leave the session as it is."""
    ours = next(c for c in client.cookies.jar if c.name.startswith("gcptoken-inspect-"))
    for junk in ('prefs={"theme":"dark"}', 'a="\\x', "x=a b", "=v", "only-a-name"):
        header = f"{junk}; {ours.name}={ours.value}; other=1"
        with httpx.Client() as browser:
            assert browser.get(f"{base}/", headers={"Cookie": header}).status_code == 200, junk


def test_only_the_first_browser_is_served(client: httpx.Client, base: str, caplog: pytest.LogCaptureFixture) -> None:
    assert client.get(f"{base}/").status_code == 200  # a reload, in the browser that opened it
    with httpx.Client() as other, caplog.at_level("WARNING", logger="gcptoken.inspector"):
        assert other.get(f"{base}/").status_code == 403  # the address, read from a command line
        assert other.get(f"{base}/inspector.js").status_code == 404
        for call in ("initial", "inspect", "tokeninfo"):
            assert other.post(f"{base}/api/{call}", json={"token": "x"}).status_code == 404
        forged = {"Cookie": f"gcptoken-inspect-{httpx.URL(base).port}=guessed"}
        assert other.post(f"{base}/api/inspect", json={"token": "x"}, headers=forged).status_code == 404
    assert "second load" in caplog.text


def test_the_initial_token_is_handed_over_once(client: httpx.Client, base: str) -> None:
    first = client.post(f"{base}/api/initial", json={"token": ""}).json()
    again = client.post(f"{base}/api/initial", json={"token": ""}).json()
    assert first == {"token": "initial-token"} and again == {"token": None}
