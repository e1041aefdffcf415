"""The emulator's metadata server: paths, token shapes, and Google's refusals."""

from __future__ import annotations

import httpx
import pytest

from gcptoken import Verifier
from gcptoken.jose import compact
from gcptoken.testing import EmulatorClient
from tests.scopes import S1, S2

AUD = "https://svc-md.a.run.app"
FLAVOR = {"Metadata-Flavor": "Google"}
ACCOUNTS = "/computeMetadata/v1/instance/service-accounts"


def get(emulator: EmulatorClient, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(emulator.url + path, headers=FLAVOR if headers is None else headers)


def test_root_answers_a_metadata_ping(emulator: EmulatorClient) -> None:
    for path in ("/", "/computeMetadata/v1/"):
        response = get(emulator, path)
        assert response.status_code == 200
        assert response.headers["metadata-flavor"] == "Google"
    assert get(emulator, "/", headers={}).headers["metadata-flavor"] == "Google"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/computeMetadata/v1/project/project-id", "{project_id}"),
        ("/computeMetadata/v1/project/numeric-project-id", "{project_number}"),
        ("/computeMetadata/v1/instance/zone", "projects/{project_number}/zones/us-central1-a"),
        ("/computeMetadata/v1/instance/name", "emulated-instance"),
        (f"{ACCOUNTS}/default/email", "{email}"),
        (f"{ACCOUNTS}/{{email}}/email", "{email}"),
        ("/computeMetadata/v1/universe/universe-domain", "googleapis.com"),
    ],
)
def test_text_values(emulator: EmulatorClient, path: str, expected: str) -> None:
    state = emulator.state
    names = {
        "project_id": state.project_id,
        "project_number": state.project_number,
        "email": state.default_account.email,
    }
    response = get(emulator, path.format(**names))
    assert response.status_code == 200
    assert response.text == expected.format(**names)
    assert response.headers["content-type"].startswith("application/text")


def test_instance_id_is_numeric(emulator: EmulatorClient) -> None:
    assert get(emulator, "/computeMetadata/v1/instance/id").text.isdigit()


def test_recursive_service_account(emulator: EmulatorClient) -> None:
    response = get(emulator, f"{ACCOUNTS}/default/?recursive=true")
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "aliases": ["default"],
        "email": emulator.state.default_account.email,
        "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
    }


@pytest.mark.parametrize(
    ("query", "scopes"), [("", "https://www.googleapis.com/auth/cloud-platform"), (f"?scopes={S1},{S2}", f"{S1} {S2}")]
)
def test_access_token(emulator: EmulatorClient, query: str, scopes: str) -> None:
    body = get(emulator, f"{ACCOUNTS}/default/token{query}").json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["access_token"].startswith("ya29.") and body["token_type"] == "Bearer"
    info = httpx.post(f"{emulator.url}/tokeninfo", data={"access_token": body["access_token"]}).json()
    assert info["scope"] == scopes and info["email"] == emulator.state.default_account.email


def test_identity_standard_is_exactly_googles_shape(emulator: EmulatorClient, certs_url: str) -> None:
    response = get(emulator, f"{ACCOUNTS}/default/identity?audience={AUD}")
    assert response.status_code == 200
    token = response.text
    claims = Verifier(AUD, certs=certs_url).verify(token)
    unique_id = emulator.state.default_account.unique_id
    assert set(claims) == {"aud", "azp", "exp", "iat", "iss", "sub"}
    assert claims["azp"] == claims["sub"] == unique_id
    assert claims["exp"] - claims["iat"] == 3600


@pytest.mark.parametrize("licenses", ["FALSE", "TRUE"])
def test_identity_full(emulator: EmulatorClient, certs_url: str, licenses: str) -> None:
    token = get(emulator, f"{ACCOUNTS}/default/identity?audience={AUD}&format=full&licenses={licenses}").text
    claims = Verifier(AUD, certs=certs_url).verify(token)
    state = emulator.state
    assert claims["email"] == state.default_account.email and claims["email_verified"] is True
    compute = claims["google"]["compute_engine"]
    expected = {"instance_creation_timestamp", "instance_id", "instance_name", "project_id", "project_number", "zone"}
    assert set(compute) == (expected | {"license_id"} if licenses == "TRUE" else expected)
    assert compute["project_id"] == state.project_id
    assert compute["project_number"] == int(state.project_number)
    assert compute["zone"] == "us-central1-a"
    assert compact.parse(token).header["alg"] == "RS256"


@pytest.mark.parametrize(
    ("headers", "path", "status"),
    [
        ({}, "/computeMetadata/v1/project/project-id", 403),
        ({"Metadata-Flavor": "google"}, "/computeMetadata/v1/project/project-id", 403),
        ({**FLAVOR, "X-Forwarded-For": "10.0.0.1"}, "/computeMetadata/v1/project/project-id", 403),
        (FLAVOR, f"{ACCOUNTS}/default/identity", 400),
        (FLAVOR, f"{ACCOUNTS}/nobody@x.iam.gserviceaccount.com/token", 404),
        (FLAVOR, "/computeMetadata/v1/instance/nope", 404),
    ],
    ids=["no-flavor", "wrong-case-flavor", "forwarded", "no-audience", "unknown-account", "unknown-path"],
)
def test_refusals(emulator: EmulatorClient, headers: dict[str, str], path: str, status: int) -> None:
    response = get(emulator, path, headers=headers)
    assert response.status_code == status
    assert response.headers["metadata-flavor"] == "Google"
    assert response.headers["content-type"]
