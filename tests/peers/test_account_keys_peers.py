"""Google's clients, unchanged, check what service accounts sign against the keys the emulator
publishes where Google does: google-auth's self-signed JWTs (jwt.Credentials, service_account
Credentials with self-signed JWT access) and IAM signJwt / signBlob results, through its own
``jwt.decode`` and ``id_token.verify_token``; Node's JWTAccess and verifySignedJwtWithCertsAsync."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google.auth.transport.requests
import httpx
import jwt as pyjwt
import pytest
from google.auth import exceptions as google_exceptions
from google.auth import iam as google_iam
from google.auth import jwt as google_jwt
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import id_token as google_id_token
from google.oauth2 import service_account as google_service_account

from gcptoken import Verifier
from gcptoken.errors import VerificationError
from gcptoken.testing import EmulatorClient

from .test_impersonation_peers import point_iam_at
from .test_node_peers import run_node

AUD = "https://api.endpoints.emulated-project.cloud.goog"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


@pytest.fixture
def request_adapter() -> Any:
    return google.auth.transport.requests.Request()


def certs_urls(emulator: EmulatorClient, email: str) -> list[str]:
    return [
        f"{emulator.url}/robot/v1/metadata/x509/{email}",
        f"{emulator.url}/service_accounts/v1/metadata/x509/{email}",
        f"{emulator.url}/service_accounts/v1/metadata/jwk/{email}",
        f"{emulator.url}/robot/v1/metadata/jwk/{email}",
    ]


@dataclass
class SignedAtIam:
    source: google_service_account.Credentials  # the caller, a Token Creator on ``target``
    target: str  # the email of the account that signed
    payload: dict[str, Any]
    jwt: str


def signed_at_iam(emulator: EmulatorClient, key_info: dict[str, str], account: str) -> SignedAtIam:
    """A JWT IAM's signJwt signed for a new account named ``account``, asked through google-auth's
    AuthorizedSession by the key's account (made its Token Creator); IAM must point at the emulator."""
    target = emulator.new_key(account)["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")
    source = google_service_account.Credentials.from_service_account_info(key_info, scopes=[CLOUD_PLATFORM])
    now = int(time.time())
    payload = {"iss": target, "sub": target, "aud": AUD, "iat": now, "exp": now + 600}
    with AuthorizedSession(source) as session:
        response = session.post(google_iam._IAM_SIGNJWT_ENDPOINT.format(target), json={"payload": json.dumps(payload)})
    assert response.status_code == 200, response.text
    return SignedAtIam(source, target, payload, response.json()["signedJwt"])


def test_google_auths_self_signed_jwts_verify(
    emulator: EmulatorClient, key_info: dict[str, str], request_adapter: Any
) -> None:
    email = key_info["client_email"]
    jwt_credentials = google_jwt.Credentials.from_service_account_info(key_info, audience=AUD)
    jwt_credentials.refresh(request_adapter)
    service_account = google_service_account.Credentials.from_service_account_info(key_info)
    from_signer = google_jwt.Credentials.from_signing_credentials(service_account, audience=AUD)
    from_signer.refresh(request_adapter)
    for token in (jwt_credentials.token, from_signer.token):
        certs = httpx.get(key_info["client_x509_cert_url"]).json()  # the key file's own pointer
        claims = google_jwt.decode(token, certs=certs, audience=AUD)
        assert claims["iss"] == claims["sub"] == email
        for url in certs_urls(emulator, email):
            assert google_id_token.verify_token(token, request_adapter, audience=AUD, certs_url=url)["sub"] == email
            # google-auth checks a PEM map itself and hands a JWK set to PyJWT: each says so its way.
            with pytest.raises((ValueError, pyjwt.InvalidAudienceError), match=r"(?i)audience"):
                google_id_token.verify_token(token, request_adapter, audience="https://x.example", certs_url=url)


def test_google_auths_jwt_access_verifies(
    emulator: EmulatorClient, key_info: dict[str, str], request_adapter: Any
) -> None:
    # What google-auth sends instead of an access token outside googleapis.com or when asked to:
    # a self-signed JWT with the scopes and no audience.
    credentials = google_service_account.Credentials.from_service_account_info(key_info, scopes=[CLOUD_PLATFORM])
    credentials = credentials.with_always_use_jwt_access(True)
    credentials.refresh(request_adapter)
    token = credentials.token
    claims = google_jwt.decode(token, certs=httpx.get(key_info["client_x509_cert_url"]).json())
    assert claims["scope"] == CLOUD_PLATFORM and claims["iss"] == key_info["client_email"]


def test_what_iam_signs_for_google_auth_verifies(
    emulator: EmulatorClient, key_info: dict[str, str], request_adapter: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_iam_at(monkeypatch, emulator.url)
    iam = signed_at_iam(emulator, key_info, "peer-signer")
    source, target, payload, signed = iam.source, iam.target, iam.payload, iam.jwt
    for url in certs_urls(emulator, target):
        assert google_id_token.verify_token(signed, request_adapter, audience=AUD, certs_url=url)["iss"] == target
    assert Verifier.service_account(target, AUD, certs=certs_urls(emulator, target)[2]).verify(signed)["sub"] == target
    # google-auth's iam.Signer (signBlob) signs a JWT without a kid: google-auth tries every key.
    blob_signed = google_jwt.encode(google_iam.Signer(request_adapter, source, target), payload)
    certs = httpx.get(certs_urls(emulator, target)[0]).json()
    assert google_jwt.decode(blob_signed, certs=certs, audience=AUD)["sub"] == target
    with pytest.raises(VerificationError) as refused:  # ours insists on the kid Google's signJwt sets
        Verifier.service_account(target, AUD, certs=certs_urls(emulator, target)[2]).verify(blob_signed.decode())
    assert refused.value.reason == "unknown_kid"
    with pytest.raises((ValueError, google_exceptions.GoogleAuthError)):  # not the caller's keys
        google_jwt.decode(signed, certs=httpx.get(key_info["client_x509_cert_url"]).json(), audience=AUD)


@pytest.mark.slow
def test_nodes_client_verifies_self_signed_and_signjwt(
    node_peer: Path, emulator: EmulatorClient, key_info: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    point_iam_at(monkeypatch, emulator.url)
    iam = signed_at_iam(emulator, key_info, "node-signer")
    target = iam.target
    inputs = {
        "key": key_info,
        "audience": AUD,
        "signed": {"token": iam.jwt, "email": target, "certsUrl": emulator.state.certs_url(target)},
    }
    result = run_node(node_peer, "accountKeys", inputs)
    assert result["selfSigned"] == key_info["client_email"]
    assert result["signJwt"] == target
    assert result["wrongAudience"].startswith("refused") and "audience" in result["wrongAudience"].lower()
    assert result["signJwtWithOtherKeys"].startswith("refused")
