"""The inspector's server against anonymous and cross-site clients: any JSON type in any field,
oversized and truncated bodies, forms, foreign Origins and Hosts. Nothing reaches a 500, nothing but
the page's own JSON is answered."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.inspector.server import inspector_app

SECRET = "s3cret-path-for-tests"
VALUES: list[Any] = [None, True, 0, 1.5, "", " ", "x", "Bearer ", "a.b.c", "e30.e30.", [], ["x"], {}, {"token": 1}]


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with AsgiServer(inspector_app(SECRET, "initial-token"), bind("127.0.0.1", 0)) as server:
        yield f"{server.url}/{SECRET}"


@pytest.mark.parametrize("call", ["inspect", "tokeninfo"])
def test_any_json_in_any_field(base: str, call: str) -> None:
    audiences = VALUES if call == "inspect" else [None]  # tokeninfo has no audience
    for token in VALUES:
        for audience in audiences:
            answer = httpx.post(f"{base}/api/{call}", json={"token": token, "audience": audience})
            assert answer.status_code in (200, 400, 502), (token, audience, answer.text[:200])
            assert answer.headers["content-type"].startswith("application/json")
    for whole in VALUES:
        assert httpx.post(f"{base}/api/{call}", json=whole).status_code in (200, 400, 502)


def test_oversized_truncated_and_form_bodies(base: str) -> None:
    huge = {"token": "x" * (65 * 1024)}
    assert httpx.post(f"{base}/api/inspect", json=huge).status_code == 400
    truncated = httpx.post(
        f"{base}/api/inspect", content=b'{"token": "ab', headers={"Content-Type": "application/json"}
    )
    assert truncated.status_code == 400
    assert httpx.post(f"{base}/api/inspect", data={"token": "a.b.c"}).status_code == 400  # a cross-site form


def test_foreign_origins_hosts_and_paths(base: str) -> None:
    assert (
        httpx.post(f"{base}/api/inspect", json={"token": "x"}, headers={"Origin": "https://evil.example"}).status_code
        == 404
    )
    assert httpx.get(f"{base}/", headers={"Host": "attacker.example:80"}).status_code == 404
    assert httpx.get(base.rsplit("/", 1)[0] + "/guessed/").status_code == 404
    assert httpx.get(f"{base}/../../etc/passwd").status_code == 404
    assert httpx.get(f"{base}/inspector.html").status_code == 404  # only the named assets


def test_the_initial_token_is_handed_over_once(base: str) -> None:
    first = httpx.post(f"{base}/api/initial", json={"token": ""}).json()
    again = httpx.post(f"{base}/api/initial", json={"token": ""}).json()
    assert first == {"token": "initial-token"} and again == {"token": None}
