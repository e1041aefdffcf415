"""The emulated Artifact Registry Python repository: the PEP 503 index and its wheels to a caller
with one of the emulator's access tokens, Artifact Registry's 401 (Basic challenge) and 403 to
others, and nothing taken from paths that belong to other APIs."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile

import httpx
import pytest

from gcptoken.emulator.artifactregistry.python import REPOSITORY
from gcptoken.emulator.artifactregistry.wheels import wheels
from gcptoken.testing import EmulatorClient

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def token(emulator: EmulatorClient, scopes: tuple[str, ...] = (CLOUD_PLATFORM,)) -> str:
    account = emulator.state.create_service_account(f"ar-reader-{len(emulator.state.access_tokens)}")
    return emulator.state.issue_access_token(account, scopes).token


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def index(emulator: EmulatorClient) -> str:
    return f"{emulator.url}/{emulator.state.project_id}/{REPOSITORY}/simple/"


def test_the_index_lists_every_package_to_a_token_holder(emulator: EmulatorClient, index: str) -> None:
    answer = httpx.get(index, headers=basic("oauth2accesstoken", token(emulator)))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert sorted(re.findall(r'href="([^"]+)/"', answer.text)) == sorted(wheels())


def test_a_project_page_links_its_wheel_with_the_hash_of_what_it_serves(emulator: EmulatorClient, index: str) -> None:
    headers = basic("oauth2accesstoken", token(emulator))
    page = httpx.get(index + "gcptoken-demo-app/", headers=headers)
    assert page.status_code == 200
    (href,) = re.findall(r'href="([^"]+)"', page.text)
    link, _, fragment = href.partition("#sha256=")
    wheel = httpx.get(str(page.url.join(link)), headers=headers)
    assert wheel.status_code == 200
    assert hashlib.sha256(wheel.content).hexdigest() == fragment
    with zipfile.ZipFile(io.BytesIO(wheel.content)) as archive:
        names = archive.namelist()
        metadata = archive.read("gcptoken_demo_app-1.2.0.dist-info/METADATA").decode()
        record = archive.read("gcptoken_demo_app-1.2.0.dist-info/RECORD").decode()
    assert "Requires-Dist: gcptoken-demo-core>=1.0" in metadata
    assert all(name in record for name in names)


def test_a_bearer_token_is_taken_too(emulator: EmulatorClient, index: str) -> None:
    answer = httpx.get(index, headers={"Authorization": f"Bearer {token(emulator)}"})
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
    emulator: EmulatorClient, index: str, headers: dict[str, str] | str
) -> None:
    if headers == "wrong user":
        headers = basic("alice", token(emulator))
    elif headers == "unknown token":
        headers = basic("oauth2accesstoken", "ya29.not-one-of-ours")
    assert isinstance(headers, dict)
    for url in (index, index + "gcptoken-demo-core/", index.replace("simple/", "gcptoken-demo-core/x.whl")):
        answer = httpx.get(url, headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == f'Basic realm="{emulator.url}"'
        assert "ya29" not in answer.text


def test_a_token_without_the_scope_is_denied(emulator: EmulatorClient, index: str) -> None:
    narrow = token(emulator, ("https://www.googleapis.com/auth/pubsub",))
    answer = httpx.get(index, headers=basic("oauth2accesstoken", narrow))
    assert answer.status_code == 403
    assert "artifactregistry.repositories.downloadArtifacts" in answer.text


def test_the_log_names_the_scheme_never_the_token(emulator: EmulatorClient, index: str) -> None:
    secret = token(emulator)
    httpx.get(index + "gcptoken-demo-1/", headers=basic("oauth2accesstoken", secret))
    (entry,) = emulator.requests(f"/{emulator.state.project_id}/{REPOSITORY}/simple/gcptoken-demo-1/")[-1:]
    assert entry["status"] == 200 and entry["detail"]["auth"] == "basic"
    assert secret not in repr(emulator.state.request_log())


def test_other_paths_of_the_same_shape_stay_not_emulated(emulator: EmulatorClient) -> None:
    for path in ("/other-project/python-repo/simple/", "/v1/projects/x/y", f"/{emulator.state.project_id}/other/a/b"):
        for method in ("GET", "POST"):
            answer = httpx.request(method, emulator.url + path)
            assert answer.status_code == 404, (method, path)
            assert emulator.requests(path)[-1].get("notEmulated") is True
