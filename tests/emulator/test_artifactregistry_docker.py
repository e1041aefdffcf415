"""The emulator's Artifact Registry Docker repository answers as the registry API v2 does behind
Google's credentials: the Bearer challenge naming its token endpoint, Basic ``oauth2accesstoken``
or a Bearer access token let a reader in, a token without a reading scope is denied, anything else
is unauthorized; manifests and their config blob are consistent by digest."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import httpx
import pytest

from gcptoken.helpers.tokens import helper_token
from gcptoken.testing import EmulatorClient, write_key_file

NAME = "emulated-project/containers/tools/app"


@pytest.fixture
def token(emulator: EmulatorClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_key_file(tmp_path, emulator.new_key("ar"))))
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    return helper_token().value


def test_without_credentials_the_challenge_names_the_token_endpoint(emulator: EmulatorClient) -> None:
    base = httpx.get(f"{emulator.url}/v2/")
    assert base.status_code == 401
    assert base.headers["docker-distribution-api-version"] == "registry/2.0"
    host = emulator.host_port
    assert base.headers["www-authenticate"] == f'Bearer realm="http://{host}/v2/token",service="{host}"'
    assert base.json() == {"errors": [{"code": "UNAUTHORIZED", "message": "Unauthenticated request."}]}
    manifest = httpx.get(f"{emulator.url}/v2/{NAME}/manifests/latest")
    assert manifest.status_code == 401
    assert manifest.headers["www-authenticate"].endswith(f',scope="repository:{NAME}:pull"')
    assert httpx.get(f"{emulator.url}/v2/token", auth=("oauth2accesstoken", "ya29.not-issued")).status_code == 401


def test_the_token_flow_and_direct_credentials(emulator: EmulatorClient, token: str) -> None:
    traded = httpx.get(
        f"{emulator.url}/v2/token", params={"scope": f"repository:{NAME}:pull"}, auth=("oauth2accesstoken", token)
    )
    assert traded.status_code == 200 and traded.headers["cache-control"] == "no-store"
    registry_token = traded.json()["token"]
    assert 0 < traded.json()["expires_in"] <= 3600
    for headers in (
        {"Authorization": f"Bearer {registry_token}"},
        {"Authorization": f"Bearer {token}"},
        {"Authorization": httpx.BasicAuth("oauth2accesstoken", token)._auth_header},
    ):
        assert httpx.get(f"{emulator.url}/v2/", headers=headers).json() == {}
        assert httpx.get(f"{emulator.url}/v2/{NAME}/manifests/v1", headers=headers).status_code == 200
    assert httpx.get(f"{emulator.url}/v2/", auth=("someone", token)).status_code == 401  # not a token user name


def test_manifest_and_blob_agree_by_digest(emulator: EmulatorClient, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    got = httpx.get(f"{emulator.url}/v2/{NAME}/manifests/v1", headers=auth)
    assert got.headers["content-type"] == "application/vnd.docker.distribution.manifest.v2+json"
    digest = "sha256:" + hashlib.sha256(got.content).hexdigest()
    assert got.headers["docker-content-digest"] == digest
    by_digest = httpx.get(f"{emulator.url}/v2/{NAME}/manifests/{digest}", headers=auth)
    assert by_digest.content == got.content
    head = httpx.head(f"{emulator.url}/v2/{NAME}/manifests/v1", headers=auth)
    assert head.status_code == 200 and head.content == b"" and head.headers["docker-content-digest"] == digest
    config = json.loads(got.content)["config"]
    blob = httpx.get(f"{emulator.url}/v2/{NAME}/blobs/{config['digest']}", headers=auth)
    assert blob.status_code == 200 and len(blob.content) == config["size"]
    assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == config["digest"]
    unknown = httpx.get(f"{emulator.url}/v2/{NAME}/blobs/sha256:{'0' * 64}", headers=auth)
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    wrong = httpx.get(f"{emulator.url}/v2/{NAME}/manifests/sha256:{'0' * 64}", headers=auth)
    assert wrong.status_code == 404 and wrong.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    short = httpx.get(f"{emulator.url}/v2/project/image/manifests/v1", headers=auth)
    assert short.status_code == 404 and short.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_a_token_without_a_reading_scope_is_denied(emulator: EmulatorClient, token: str) -> None:
    narrow = helper_token("access_token", "https://www.googleapis.com/auth/userinfo.email").value
    denied = httpx.get(f"{emulator.url}/v2/{NAME}/manifests/v1", headers={"Authorization": f"Bearer {narrow}"})
    assert denied.status_code == 403
    assert denied.json()["errors"][0]["code"] == "DENIED"
    assert narrow not in denied.text


def test_tags_list_has_the_registrys_shape(emulator: EmulatorClient, token: str) -> None:
    listed = httpx.get(f"{emulator.url}/v2/{NAME}/tags/list", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200 and listed.headers["docker-distribution-api-version"] == "registry/2.0"
    assert listed.json() == {"name": NAME, "tags": ["latest"]}
    unauthorized = httpx.get(f"{emulator.url}/v2/{NAME}/tags/list")
    assert unauthorized.status_code == 401
    assert unauthorized.headers["www-authenticate"].endswith(f',scope="repository:{NAME}:pull"')


def test_a_service_account_key_is_a_password(emulator: EmulatorClient, tmp_path: Path) -> None:
    # https://cloud.google.com/artifact-registry/docs/docker/authentication#json-key
    key = emulator.new_key("ar-json-key")
    text = json.dumps(key)
    for user, password in (("_json_key", text), ("_json_key_base64", base64.b64encode(text.encode()).decode())):
        direct = httpx.get(f"{emulator.url}/v2/{NAME}/manifests/v1", auth=(user, password))
        assert direct.status_code == 200
        traded = httpx.get(f"{emulator.url}/v2/token", auth=(user, password)).json()["token"]
        assert emulator.state.access_tokens[traded].email == key["client_email"]
        assert httpx.get(f"{emulator.url}/v2/", headers={"Authorization": f"Bearer {traded}"}).status_code == 200
    # A key the account does not hold, or a public key's numbers with a made-up private half, is no key.
    stranger = {**emulator.new_key("ar-other"), "client_email": key["client_email"]}
    assert httpx.get(f"{emulator.url}/v2/", auth=("_json_key", json.dumps(stranger))).status_code == 401
    forged = {**key, "private_key": stranger["private_key"]}
    assert httpx.get(f"{emulator.url}/v2/", auth=("_json_key", json.dumps(forged))).status_code == 401
    assert httpx.get(f"{emulator.url}/v2/", auth=("_json_key", "{not json")).status_code == 401
    assert httpx.get(f"{emulator.url}/v2/", auth=("_json_key_base64", text)).status_code == 401  # not base64


def test_a_push_is_answered_in_the_registrys_error_shape(emulator: EmulatorClient, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    upload = httpx.post(f"{emulator.url}/v2/{NAME}/blobs/uploads/", headers=auth)
    assert upload.status_code == 405 and upload.headers["docker-distribution-api-version"] == "registry/2.0"
    assert upload.json()["errors"][0]["code"] == "UNSUPPORTED"
    manifest = httpx.put(f"{emulator.url}/v2/{NAME}/manifests/v2", headers=auth, content=b"{}")
    assert manifest.status_code == 405 and manifest.json()["errors"][0]["code"] == "UNSUPPORTED"
    anonymous = httpx.post(f"{emulator.url}/v2/{NAME}/blobs/uploads/")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].endswith(f',scope="repository:{NAME}:pull,push"')
