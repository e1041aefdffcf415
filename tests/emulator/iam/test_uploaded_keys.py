"""IAM's key API (keys:upload, list, get, disable, enable, delete) over real HTTP, each refusal,
and an uploaded key used end to end: jwt-bearer assertions it signs give ID and access tokens
(gcptoken's service-account credentials; google-auth's and gcloud's are in tests/peers), self-signed
JWTs verify against what the emulator publishes, a disabled or deleted key is refused, and all of
it survives a restart."""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gcptoken import Verifier
from gcptoken.credentials.service_account import ServiceAccountCredentials, ServiceAccountKey
from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.keys.uploaded import MAX_USER_KEYS
from gcptoken.errors import TokenRequestError
from gcptoken.jose import jws
from gcptoken.testing import EmulatorClient

from .uploads import (
    CLOUD_PLATFORM,
    certificate,
    ec_certificate,
    key_admin,
    key_pair,
    keys_url,
    upload,
    uploaded_key_file,
)

AUD = "https://uploaded.example.com"
OPENSSL = shutil.which("openssl")


@pytest.fixture
def at_emulator(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> EmulatorClient:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    return emulator


def new_account(emulator: EmulatorClient, name: str) -> str:
    return emulator.state.create_service_account(f"{name}-{len(emulator.state.service_accounts)}").email


def error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    return body["code"], body["status"], body["message"]


def test_upload_list_get_disable_enable_delete(emulator: EmulatorClient) -> None:
    email = new_account(emulator, "uploads")
    headers = key_admin(emulator, email)
    pair = key_pair()
    uploaded = upload(emulator, email, pair.public_key_data, headers)
    assert uploaded.status_code == 200, uploaded.text
    resource = uploaded.json()
    kid = resource["name"].rsplit("/", 1)[1]
    assert resource["name"] == f"projects/{emulator.state.project_id}/serviceAccounts/{email}/keys/{kid}"
    assert (resource["keyOrigin"], resource["keyType"], resource["keyAlgorithm"]) == (
        "USER_PROVIDED",
        "USER_MANAGED",
        "KEY_ALG_RSA_2048",
    )
    assert base64.b64decode(resource["publicKeyData"]).decode() == pair.certificate_pem
    assert resource["validAfterTime"].endswith("Z") and resource["validBeforeTime"] > resource["validAfterTime"]

    listed = httpx.get(keys_url(emulator, email), params={"keyTypes": "USER_MANAGED"}, headers=headers).json()
    assert [key["name"] for key in listed["keys"]] == [resource["name"]]
    every = httpx.get(keys_url(emulator, email), headers=headers).json()["keys"]
    assert {key["keyType"] for key in every} == {"USER_MANAGED", "SYSTEM_MANAGED"}  # its Google-managed key too

    got = httpx.get(f"{keys_url(emulator, email)}/{kid}", headers=headers)
    assert "publicKeyData" not in got.json()  # TYPE_NONE unless asked
    pem = httpx.get(
        f"{keys_url(emulator, email)}/{kid}", params={"publicKeyType": "TYPE_X509_PEM_FILE"}, headers=headers
    )
    assert base64.b64decode(pem.json()["publicKeyData"]).decode() == pair.certificate_pem

    assert httpx.post(f"{keys_url(emulator, email)}/{kid}:disable", headers=headers).json() == {}
    got = httpx.get(f"{keys_url(emulator, email)}/{kid}", headers=headers).json()
    assert got["disabled"] is True and got["disableReason"] == "SERVICE_ACCOUNT_KEY_DISABLE_REASON_USER_INITIATED"
    assert httpx.post(f"{keys_url(emulator, email)}/{kid}:enable", headers=headers).json() == {}
    assert "disabled" not in httpx.get(f"{keys_url(emulator, email)}/{kid}", headers=headers).json()

    assert httpx.delete(f"{keys_url(emulator, email)}/{kid}", headers=headers).json() == {}
    gone = httpx.get(f"{keys_url(emulator, email)}/{kid}", headers=headers)
    assert gone.status_code == 404
    # By unique id and by project id, as the reference allows.
    unique_id = emulator.state.service_accounts[email].unique_id
    by_id = httpx.get(keys_url(emulator, unique_id, emulator.state.project_id), headers=headers)
    assert by_id.status_code == 200 and by_id.json()["keys"][0]["keyType"] == "SYSTEM_MANAGED"


def _refusal(emulator: EmulatorClient, data: str) -> tuple[int, str, str]:
    email = new_account(emulator, "refuse")
    return error(upload(emulator, email, data, key_admin(emulator, email)))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: _b64("not a certificate"), "expected a PEM X.509 certificate"),
        (lambda: _b64("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "not readable X.509"),
        (lambda: _b64(ec_certificate()), "must be an RSA public key"),
        (lambda: key_pair(1024).public_key_data, "2048 to 4096 bits"),
        (lambda: _b64(certificate(rsa.generate_private_key(65537, 2048), days=-1, start_days=-30)), "has expired"),
        (
            lambda: _b64(
                certificate(rsa.generate_private_key(65537, 2048), signer=rsa.generate_private_key(65537, 2048))
            ),
            "not signed by its own key",
        ),
        (lambda: _b64(certificate(rsa.generate_private_key(3, 2048))), "exponent must be at least 65537"),
    ],
)
def test_a_certificate_iam_would_not_take_is_refused(emulator: EmulatorClient, make: object, reason: str) -> None:
    assert callable(make)
    code, status, message = _refusal(emulator, make())
    assert (code, status) == (400, "INVALID_ARGUMENT") and reason in message


def test_the_same_key_twice_and_the_eleventh_key_are_refused(emulator: EmulatorClient) -> None:
    email = new_account(emulator, "limits")
    headers = key_admin(emulator, email)
    pair = key_pair()
    assert upload(emulator, email, pair.public_key_data, headers).status_code == 200
    again = certificate(pair.private)  # a new certificate for the same key pair: still the same key
    assert error(upload(emulator, email, _b64(again), headers))[:2] == (409, "ALREADY_EXISTS")
    for _ in range(MAX_USER_KEYS - 1):
        emulator.state.create_key(email)
    assert error(upload(emulator, email, key_pair().public_key_data, headers)) == (
        400,
        "FAILED_PRECONDITION",
        "Precondition check failed.",
    )


def test_another_accounts_published_key_is_refused(emulator: EmulatorClient) -> None:
    """Every account's certificates are published: uploading one to another account would let
    its key's holder sign as that account."""
    victim = new_account(emulator, "victim")
    owner = emulator.state.default_account.email
    published = httpx.get(f"{emulator.url}/robot/v1/metadata/x509/{owner}", timeout=10).json()
    assert published
    for pem in published.values():
        code, status, message = error(upload(emulator, victim, _b64(pem), key_admin(emulator, victim)))
        assert (code, status) == (409, "ALREADY_EXISTS") and "another service account" in message


def test_who_may_upload(emulator: EmulatorClient) -> None:
    email = new_account(emulator, "guarded")
    pair = key_pair()
    assert error(upload(emulator, email, pair.public_key_data, {}))[:2] == (401, "UNAUTHENTICATED")
    outsider = key_admin(emulator, new_account(emulator, "elsewhere"))  # Key Admin on another account only
    code, status, message = error(upload(emulator, email, pair.public_key_data, outsider))
    assert (code, status) == (403, "PERMISSION_DENIED") and "iam.serviceAccountKeys.create" in message
    missing = f"nobody@{emulator.state.project_id}.iam.gserviceaccount.com"
    assert error(upload(emulator, missing, pair.public_key_data, outsider))[:2] == (403, "PERMISSION_DENIED")
    in_project = httpx.post(
        keys_url(emulator, missing, emulator.state.project_id) + ":upload",
        json={"publicKeyData": "x"},
        headers=outsider,
    )
    assert error(in_project)[:2] == (404, "NOT_FOUND")
    assert emulator.state.service_accounts[email].keys.keys() == set()  # nothing was added


def test_an_uploaded_key_gets_tokens_and_is_published(at_emulator: EmulatorClient) -> None:
    emulator = at_emulator
    email, kid, headers, info = uploaded_key_file(emulator, "hardware")
    credentials = ServiceAccountCredentials(ServiceAccountKey.from_info(info, "test"))
    id_token = credentials.id_token(AUD).value
    assert Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs").verify(id_token)["email"] == email
    assert credentials.access_token([CLOUD_PLATFORM]).value.startswith("ya29.")
    assert emulator.token_requests_by(email)[-1]["detail"]["assertion"]["header"]["kid"] == kid

    published = httpx.get(f"{emulator.url}/service_accounts/v1/metadata/x509/{email}").json()
    assert published[kid] == base64.b64decode(upload_certificate(emulator, email, kid, headers)).decode()
    jwks = httpx.get(f"{emulator.url}/service_accounts/v1/metadata/jwk/{email}").json()
    assert kid in [key["kid"] for key in jwks["keys"]]
    key = ServiceAccountKey.from_info(info, "test")
    now = int(time.time())
    claims = {"iss": email, "sub": email, "aud": AUD, "iat": now, "exp": now + 600}
    assert Verifier.service_account(email, AUD).verify(jws.encode(claims, key.signing_key, kid=kid))["sub"] == email


def upload_certificate(emulator: EmulatorClient, email: str, kid: str, headers: dict[str, str]) -> str:
    got = httpx.get(
        f"{keys_url(emulator, email)}/{kid}", params={"publicKeyType": "TYPE_X509_PEM_FILE"}, headers=headers
    )
    return str(got.json()["publicKeyData"])


def test_a_disabled_or_deleted_key_is_refused_and_unpublished(at_emulator: EmulatorClient) -> None:
    emulator = at_emulator
    email, kid, headers, info = uploaded_key_file(emulator, "switched")

    def fresh() -> ServiceAccountCredentials:  # a new process each time: no token cached from before
        return ServiceAccountCredentials(ServiceAccountKey.from_info(info, "test"))

    httpx.post(f"{keys_url(emulator, email)}/{kid}:disable", headers=headers).raise_for_status()
    with pytest.raises(TokenRequestError, match="Invalid JWT Signature"):
        fresh().id_token(AUD)
    assert kid not in httpx.get(f"{emulator.url}/service_accounts/v1/metadata/x509/{email}").json()
    httpx.post(f"{keys_url(emulator, email)}/{kid}:enable", headers=headers).raise_for_status()
    assert fresh().id_token(AUD).value
    assert kid in httpx.get(f"{emulator.url}/service_accounts/v1/metadata/x509/{email}").json()
    httpx.delete(f"{keys_url(emulator, email)}/{kid}", headers=headers).raise_for_status()
    with pytest.raises(TokenRequestError, match="Invalid JWT Signature"):
        fresh().access_token([CLOUD_PLATFORM])


def test_uploaded_and_disabled_keys_survive_a_state_dir_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything goes through HTTP, as with ``gcptoken emulator --state-dir``: each change is saved
    when made, and the next emulator on the directory has it."""
    directory = tmp_path / "state"
    with EmulatorServer(state_dir=directory) as first:
        emulator = EmulatorClient(first)
        email, kid, _, info = uploaded_key_file(emulator, "lasting")
        other, off, other_headers, _ = uploaded_key_file(emulator, "lasting-off")
        httpx.post(f"{keys_url(emulator, other)}/{off}:disable", headers=other_headers).raise_for_status()
        granted = httpx.post(
            f"{first.url}/emulator/v1/serviceAccounts/{email}/keyAdmins", json={"member": "user:kim@example.com"}
        )
        assert granted.json()["members"][-1] == "user:kim@example.com"
        certificate_pem = first.state.service_accounts[email].certificates[kid]
        admins = first.state.key_admins[email]
    with EmulatorServer(state_dir=directory) as second:
        monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", second.host_port)
        info = info | {"token_uri": f"{second.url}/token"}
        token = ServiceAccountCredentials(ServiceAccountKey.from_info(info, "test")).id_token(AUD).value
        assert Verifier(AUD, certs=f"{second.url}/oauth2/v3/certs").verify(token)["email"] == email
        published = httpx.get(f"{second.url}/robot/v1/metadata/x509/{email}").json()
        assert published[kid] == certificate_pem  # the uploaded certificate, as it was
        assert off not in httpx.get(f"{second.url}/robot/v1/metadata/x509/{other}").json()
        account = second.state.service_accounts[email]
        assert kid in account.uploaded and off in second.state.service_accounts[other].disabled_keys
        assert second.state.key_admins[email] == admins
        listed = httpx.get(f"{second.url}/emulator/v1/serviceAccounts/{email}/keys").json()["keys"]
        assert [key["keyOrigin"] for key in listed if key["name"].endswith(kid)] == ["USER_PROVIDED"]


def _openssl(*args: str) -> None:
    assert OPENSSL is not None
    done = subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")
def test_the_openssl_command_googles_docs_give_is_accepted_and_a_v1_certificate_is_not(
    emulator: EmulatorClient, tmp_path: Path
) -> None:
    """cloud.google.com/iam/docs/keys-upload makes the key pair with ``openssl req -x509 -nodes
    -newkey rsa:2048 -days 365 … -subj "/CN=unused"``; ``openssl x509 -req`` without extensions
    makes an X.509 v1 certificate, which is not what keys:upload takes."""
    key, cert = tmp_path / "private_key.pem", tmp_path / "public_key.pem"
    _openssl(
        *(["req", "-x509", "-nodes", "-newkey", "rsa:2048", "-days", "365", "-subj", "/CN=unused"]),
        "-keyout",
        str(key),
        "-out",
        str(cert),
    )
    email = new_account(emulator, "openssl")
    headers = key_admin(emulator, email)
    accepted = upload(emulator, email, _b64(cert.read_text()), headers)
    assert accepted.status_code == 200, accepted.text
    request, v1 = tmp_path / "request.csr", tmp_path / "v1.pem"
    _openssl("req", "-new", "-key", str(key), "-subj", "/CN=unused", "-out", str(request))
    _openssl("x509", "-req", "-in", str(request), "-signkey", str(key), "-days", "30", "-out", str(v1))
    other = new_account(emulator, "openssl-v1")
    code, status, message = error(upload(emulator, other, _b64(v1.read_text()), key_admin(emulator, other)))
    assert (code, status) == (400, "INVALID_ARGUMENT") and "must be X.509 v3" in message


@pytest.mark.parametrize(
    "body",
    [
        '{"publicKeyData": 5}',
        '{"publicKeyData": []}',
        '{"publicKeyData": {"a": 1}}',
        '{"publicKeyData": null}',
        "[]",
        '"x"',
        '{"publicKeyData": "\\u0000\\u0001"}',
        "{" + '"a":' * 50 + "1" + "}" * 50,
        "{",
    ],
)
def test_any_json_an_anonymous_client_sends_is_a_400_and_adds_nothing(emulator: EmulatorClient, body: str) -> None:
    email = new_account(emulator, "hostile")
    headers = {**key_admin(emulator, email), "Content-Type": "application/json"}
    response = httpx.post(keys_url(emulator, email) + ":upload", content=body, headers=headers, timeout=10)
    assert response.status_code == 400 and error(response)[1] == "INVALID_ARGUMENT"
    assert not emulator.state.service_accounts[email].uploaded
