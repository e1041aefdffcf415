"""sign_blob / sign_jwt from every credential kind, sync and async, against the emulator over real
HTTP: what each signs verifies with the account's published keys and the service-account preset."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gcptoken import (
    Credentials,
    ImpersonatedCredentials,
    InvalidArgumentError,
    MetadataCredentials,
    ServiceAccountCredentials,
    TokenRequestError,
    Verifier,
    load_credentials,
)
from gcptoken.credentials.base import run_flow_sync
from gcptoken.credentials.impersonated import sign_jwt_flow
from gcptoken.credentials.signing import Signature, SigningUnavailableError
from gcptoken.emulator import EmulatorServer
from gcptoken.jose import compact
from gcptoken.testing import EmulatorClient

AUD = "https://gateway.example.com"
BLOB = b"a URL to sign\x00\xff"


def published_key(base_url: str, email: str, key_id: str | None) -> rsa.RSAPublicKey:
    """The account's public key ``key_id`` where Google publishes it (robot/v1/metadata/x509)."""
    certificates = httpx.get(f"{base_url}/robot/v1/metadata/x509/{email}").json()
    assert key_id in certificates, "the signature names a key the account does not publish"
    public = x509.load_pem_x509_certificate(certificates[key_id].encode()).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    return public


def assert_signed_by(base_url: str, email: str, signature: Signature, data: bytes = BLOB) -> None:
    published_key(base_url, email, signature.key_id).verify(
        signature.signature, data, padding.PKCS1v15(), hashes.SHA256()
    )


def assert_jwt_of(email: str, jwt: str) -> dict[str, Any]:
    claims = Verifier.service_account(email, AUD).verify(jwt)
    assert claims["iss"] == claims["sub"] == email
    return claims


def claims_for(email: str) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": email, "sub": email, "aud": AUD, "iat": now, "exp": now + 600}


def both_ways(credentials: Credentials, base_url: str, email: str, **options: Any) -> None:
    """sign_blob and sign_jwt, sync and async, each verified against the published keys."""
    assert_signed_by(base_url, email, credentials.sign_blob(BLOB, **options))
    assert_signed_by(base_url, email, asyncio.run(credentials.sign_blob_async(BLOB, **options)))
    token = credentials.sign_jwt(claims_for(email), **options)
    assert token.kind == "jwt" and 590 < token.expires_in() <= 600
    assert_jwt_of(email, token.value)
    assert_jwt_of(email, asyncio.run(credentials.sign_jwt_async(claims_for(email), **options)).value)


@pytest.fixture(autouse=True)
def _at_the_emulator(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)


def test_a_key_file_signs_locally(emulator: EmulatorClient, key_path: Path, key_info: dict[str, str]) -> None:
    credentials = load_credentials(key_path)
    assert isinstance(credentials, ServiceAccountCredentials)
    before = len(emulator.requests())
    both_ways(credentials, emulator.url, key_info["client_email"])
    signature = credentials.sign_blob(BLOB)
    assert signature.key_id == key_info["private_key_id"]
    # No request but the tests' own key lookups: nothing went to IAM or the token endpoint.
    assert not [e for e in emulator.requests()[before:] if not e["path"].startswith(("/robot/", "/service_accounts/"))]
    # Without exp, one an hour ahead is added, as IAM adds it.
    bare = credentials.sign_jwt({"iss": key_info["client_email"]})
    assert 3590 < bare.expires_in() <= 3600 and compact.parse(bare.value).claims["exp"] == int(
        bare.expires_at.timestamp()
    )


def test_the_metadata_server_signs_through_iam_as_its_account(emulator: EmulatorClient) -> None:
    email_path = "/computeMetadata/v1/instance/service-accounts/default/email"
    asked_before = len(emulator.requests(email_path))
    credentials = MetadataCredentials(host=emulator.host_port)
    email = emulator.state.default_account.email
    with pytest.raises(TokenRequestError) as denied:  # not yet allowed to sign as itself
        credentials.sign_blob(BLOB)
    message = str(denied.value)
    assert "iam.serviceAccounts.signBlob" in message and "roles/iam.serviceAccountTokenCreator" in message
    assert email in message and "ya29." not in message
    emulator.state.grant_token_creator(email, f"serviceAccount:{email}")
    both_ways(credentials, emulator.url, email)
    assert len(emulator.requests(email_path)) == asked_before + 1  # asked once, then remembered


def test_impersonated_credentials_sign_as_the_target(emulator: EmulatorClient, key_path: Path) -> None:
    source = load_credentials(key_path)
    target = emulator.new_key("signing-target")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{source.key.client_email}")  # type: ignore[attr-defined]
    both_ways(ImpersonatedCredentials(source, target), emulator.url, target)
    both_ways(source, emulator.url, target, sign_as=target)  # the same through sign_as=
    signature = source.sign_blob(BLOB, sign_as=target)
    assert signature.key_id is not None and signature.key_id in emulator.state.service_accounts[target].keys


def test_sign_as_a_service_account_the_caller_may_not_act_as(emulator: EmulatorClient, key_path: Path) -> None:
    stranger = emulator.new_key("stranger")["client_email"]
    with pytest.raises(TokenRequestError) as denied:
        load_credentials(key_path).sign_jwt({"iss": stranger}, sign_as=stranger)
    assert denied.value.status == 403
    assert "iam.serviceAccounts.signJwt" in str(denied.value) and "serviceAccountTokenCreator" in str(denied.value)


@pytest.mark.parametrize(
    ("claims", "fragment"),
    [
        ({"exp": 1}, "in the past"),
        ({"exp": int(time.time()) + 13 * 3600}, "more than 12 hours"),
        ({"exp": "tomorrow"}, "number of seconds"),
    ],
)
def test_claims_iam_would_refuse_are_refused_before_any_call(
    emulator: EmulatorClient, key_path: Path, claims: dict[str, Any], fragment: str
) -> None:
    before = len(emulator.requests())
    for sign_as in (None, "someone@emulated-project.iam.gserviceaccount.com"):
        with pytest.raises(InvalidArgumentError, match=fragment):
            load_credentials(key_path).sign_jwt(claims, sign_as=sign_as)
    assert len(emulator.requests()) == before


def test_the_emulator_refuses_an_exp_beyond_12_hours_as_iam_does(emulator: EmulatorClient, key_path: Path) -> None:
    source = load_credentials(key_path)
    target = emulator.new_key("far-exp")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{source.key.client_email}")  # type: ignore[attr-defined]
    access = source.access_token().value
    with pytest.raises(TokenRequestError) as refused:
        run_flow_sync(sign_jwt_flow(access, target, {"exp": int(time.time()) + 13 * 3600}), None)
    assert refused.value.status == 400


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    directory = tmp_path_factory.mktemp("signing-state")
    with EmulatorServer(state_dir=directory) as server:
        yield server, directory


def test_files_the_state_dir_writes(state_dir: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server, directory = state_dir
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", server.url.removeprefix("http://"))
    # An external_account file with an impersonation URL signs as its target.
    federated = load_credentials(directory / "external-account.json")
    assert isinstance(federated, ImpersonatedCredentials)
    both_ways(federated, server.url, federated.target)
    # The impersonated_service_account file (a user as source) signs as its target too.
    impersonated = load_credentials(directory / "impersonated-service-account.json")
    assert isinstance(impersonated, ImpersonatedCredentials)
    both_ways(impersonated, server.url, impersonated.target)
    # A user has no key: the error says what to do instead, and nothing was asked of IAM.
    user = load_credentials(directory / "authorized-user.json")
    for attempt in (lambda: user.sign_blob(BLOB), lambda: asyncio.run(user.sign_jwt_async({"a": 1}))):
        with pytest.raises(SigningUnavailableError) as refused:
            attempt()
        assert "sign_as=" in str(refused.value) and "--impersonate-service-account" in str(refused.value)
    # …and with sign_as= it signs as a service account it may act as.
    assert_signed_by(server.url, impersonated.target, user.sign_blob(BLOB, sign_as=impersonated.target))


def test_a_federated_identity_without_a_target_must_name_one(tmp_path: Path) -> None:
    info = {
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "https://sts.googleapis.com/v1/token",
        "credential_source": {"file": str(tmp_path / "token")},
    }
    from gcptoken.credentials import credentials_from_info

    with pytest.raises(SigningUnavailableError, match="sign_as="):
        credentials_from_info(info, "test").sign_blob(BLOB)


def test_bad_input(key_path: Path) -> None:
    credentials = load_credentials(key_path)
    with pytest.raises(InvalidArgumentError):
        credentials.sign_blob("text, not bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        credentials.sign_jwt(["not", "an", "object"])  # type: ignore[arg-type]


@pytest.mark.parametrize("target", ["a@b.iam.gserviceaccount.com/../x", "a@b?x=1", "a b@c", "no-at-sign"])
def test_an_account_that_is_no_email_never_becomes_part_of_iams_url(key_path: Path, target: str) -> None:
    with pytest.raises(InvalidArgumentError):
        load_credentials(key_path).sign_blob(BLOB, sign_as=target)
