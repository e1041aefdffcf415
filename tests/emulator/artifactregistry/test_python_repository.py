"""The emulated Artifact Registry Python repository, over HTTPS as Artifact Registry serves it: the
PEP 503 index and its wheels to a caller with one of the emulator's access tokens, Artifact
Registry's 401 (Basic challenge, before anything else) and 403 to others, the trailing-slash
redirect, plain HTTP redirected without reading credentials, and nothing taken from paths that
belong to other APIs."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import ssl
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.artifactregistry.python import REPOSITORY
from gcptoken.emulator.artifactregistry.wheels import wheels
from gcptoken.testing import EmulatorClient

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def token(emulator: EmulatorClient, scopes: tuple[str, ...] = (CLOUD_PLATFORM,)) -> str:
    account = emulator.state.create_service_account(f"ar-reader-{len(emulator.state.access_tokens)}")
    return emulator.state.issue_access_token(account, scopes).token


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class _Https:
    """httpx over the emulator's HTTPS port (trusting its CA), the way pip and uv reach it."""

    def __init__(self, server: EmulatorServer) -> None:
        assert server.tls is not None
        self.context = ssl.create_default_context(cadata=server.state.workload_ca.root_pem)
        self.tls_url = server.tls.url

    def get(self, url: str, **options: Any) -> httpx.Response:
        return httpx.get(url, verify=self.context, **options)

    def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        return httpx.request(method, url, verify=self.context, **options)


@pytest.fixture(scope="module")
def _server() -> Iterator[EmulatorServer]:
    with EmulatorServer(tls_port=0) as server:
        yield server


@pytest.fixture
def emulator(_server: EmulatorServer) -> EmulatorClient:
    client = EmulatorClient(_server)
    client.url = _Https(_server).tls_url  # every URL below is the HTTPS port's
    return client


@pytest.fixture
def https(_server: EmulatorServer) -> _Https:
    return _Https(_server)


@pytest.fixture
def index(emulator: EmulatorClient) -> str:
    return f"{emulator.url}/{emulator.state.project_id}/{REPOSITORY}/simple/"


def test_the_index_lists_every_package_to_a_token_holder(emulator: EmulatorClient, index: str, https: _Https) -> None:
    answer = https.get(index, headers=basic("oauth2accesstoken", token(emulator)))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert sorted(re.findall(r'href="([^"]+)/"', answer.text)) == sorted(wheels())


def test_a_project_page_links_its_wheel_with_the_hash_of_what_it_serves(
    emulator: EmulatorClient, index: str, https: _Https
) -> None:
    headers = basic("oauth2accesstoken", token(emulator))
    page = https.get(index + "gcptoken-demo-app/", headers=headers)
    assert page.status_code == 200
    (href,) = re.findall(r'href="([^"]+)"', page.text)
    link, _, fragment = href.partition("#sha256=")
    wheel = https.get(str(page.url.join(link)), headers=headers)
    assert wheel.status_code == 200
    assert hashlib.sha256(wheel.content).hexdigest() == fragment
    with zipfile.ZipFile(io.BytesIO(wheel.content)) as archive:
        names = archive.namelist()
        metadata = archive.read("gcptoken_demo_app-1.2.0.dist-info/METADATA").decode()
        record = archive.read("gcptoken_demo_app-1.2.0.dist-info/RECORD").decode()
    assert "Requires-Dist: gcptoken-demo-core>=1.0" in metadata
    assert all(name in record for name in names)


def test_a_bearer_token_is_taken_too(emulator: EmulatorClient, index: str, https: _Https) -> None:
    answer = https.get(index, headers={"Authorization": f"Bearer {token(emulator)}"})
    assert answer.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer ya29.not-one-of-ours"},
        {"Authorization": "Basic !!!"},
        "wrong user",
        "unknown token",
    ],
    ids=["none", "unknown bearer", "garbled basic", "wrong user", "unknown basic"],
)
def test_without_a_valid_token_the_answer_is_a_basic_challenge(
    emulator: EmulatorClient, index: str, https: _Https, headers: dict[str, str] | str
) -> None:
    if headers == "wrong user":
        headers = basic("alice", token(emulator))
    elif headers == "unknown token":
        headers = basic("oauth2accesstoken", "ya29.not-one-of-ours")
    assert isinstance(headers, dict)
    for url in (index, index + "gcptoken-demo-core/", index.replace("simple/", "gcptoken-demo-core/x.whl")):
        answer = https.get(url, headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == f'Basic realm="{emulator.url}"'
        assert "ya29" not in answer.text


def test_a_token_without_the_scope_is_denied(emulator: EmulatorClient, index: str, https: _Https) -> None:
    narrow = token(emulator, ("https://www.googleapis.com/auth/pubsub",))
    answer = https.get(index, headers=basic("oauth2accesstoken", narrow))
    assert answer.status_code == 403
    assert "artifactregistry.repositories.downloadArtifacts" in answer.text


def test_the_log_names_the_scheme_never_the_token(emulator: EmulatorClient, index: str, https: _Https) -> None:
    secret = token(emulator)
    https.get(index + "gcptoken-demo-1/", headers=basic("oauth2accesstoken", secret))
    (entry,) = emulator.requests(f"/{emulator.state.project_id}/{REPOSITORY}/simple/gcptoken-demo-1/")[-1:]
    assert entry["status"] == 200 and entry["detail"]["auth"] == "basic"
    assert secret not in repr(emulator.state.request_log())


def test_other_paths_of_another_api_stay_not_emulated(emulator: EmulatorClient, https: _Https) -> None:
    for path in ("/v1/projects/x/y", f"/{emulator.state.project_id}/other/a/b"):
        for method in ("GET", "POST"):
            answer = https.request(method, emulator.url + path)
            assert answer.status_code == 404, (method, path)
            assert emulator.requests(path)[-1].get("notEmulated") is True


@pytest.mark.parametrize(
    "path",
    ["/other-project/python-repo/simple/", "/other-project/r/simple/pkg/", "/p/other/pkg/pkg-1.0-py3-none-any.whl"],
)
def test_credentials_come_first_for_any_repository_path(emulator: EmulatorClient, https: _Https, path: str) -> None:
    # Artifact Registry answers its 401 challenge before it says whether the repository exists.
    answer = https.get(emulator.url + path)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == f'Basic realm="{emulator.url}"'
    # With a token, the emulator says it does not emulate that repository.
    known = https.get(emulator.url + path, headers=basic("oauth2accesstoken", token(emulator)))
    assert known.status_code == 404 and emulator.requests(path)[-1].get("notEmulated") is True


def test_a_project_page_without_its_slash_redirects_to_it(emulator: EmulatorClient, index: str, https: _Https) -> None:
    headers = basic("oauth2accesstoken", token(emulator))
    for asked, lands in [
        (index + "gcptoken-demo-core", index + "gcptoken-demo-core/"),
        (index + "GCPToken_Demo.Core", index + "gcptoken-demo-core/"),  # and to the normalized name
        (index.rstrip("/"), index),
    ]:
        answer = https.get(asked, headers=headers)
        assert answer.status_code == 301, asked
        assert str(answer.url.join(answer.headers["location"])) == lands
    assert https.get(index + "no-such-project", headers=headers).status_code == 404
    assert https.get(index + "gcptoken-demo-core").status_code == 401  # credentials first, here too


def test_plain_http_is_redirected_to_https_without_reading_credentials(
    emulator: EmulatorClient, index: str, https: _Https
) -> None:
    plain = emulator.server.url + index.removeprefix(emulator.url)
    assert plain.startswith("http://")
    for headers in ({}, basic("oauth2accesstoken", token(emulator))):
        answer = httpx.get(plain + "gcptoken-demo-core/?x=1", headers=headers)
        assert answer.status_code == 301
        assert answer.headers["location"] == index + "gcptoken-demo-core/?x=1"
        assert "www-authenticate" not in answer.headers
    last = emulator.requests(index.removeprefix(emulator.url) + "gcptoken-demo-core/")[-1]
    assert "auth" not in last.get("detail", {})  # never looked at


def test_without_an_https_port_plain_http_is_refused(emulator: EmulatorClient) -> None:
    with EmulatorServer() as server:
        path = f"/{server.state.project_id}/{REPOSITORY}/simple/"
        answer = httpx.get(server.url + path, headers=basic("oauth2accesstoken", token(EmulatorClient(server))))
    assert answer.status_code == 403
    assert "HTTPS only" in answer.text
