"""The emulator as Google's other token issuers: IAP's keys and assertions, Firebase's securetoken
certs and ID tokens, and accounts.google.com's discovery document."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gcptoken.jose import compact, jws
from gcptoken.testing import EmulatorClient


def test_iap_keys_in_both_published_forms(emulator: EmulatorClient) -> None:
    jwks = httpx.get(f"{emulator.url}/iap/verify/public_key-jwk")
    assert jwks.status_code == 200 and "max-age=" in jwks.headers["cache-control"]
    (key,) = jwks.json()["keys"]
    assert {key["kty"], key["crv"], key["alg"], key["use"]} == {"EC", "P-256", "ES256", "sig"}
    pems = httpx.get(f"{emulator.url}/iap/verify/public_key").json()
    assert list(pems) == [key["kid"]]
    assert jws.public_key_from_pem(pems[key["kid"]]).alg == "ES256"
    assert jws.public_key_from_jwk(key).alg == "ES256"


def test_firebase_certs_in_both_published_forms(emulator: EmulatorClient) -> None:
    account = "securetoken@system.gserviceaccount.com"
    certs = httpx.get(f"{emulator.url}/robot/v1/metadata/x509/{account}")
    assert certs.status_code == 200 and "max-age=" in certs.headers["cache-control"]
    ((kid, pem),) = certs.json().items()
    assert pem.startswith("-----BEGIN CERTIFICATE-----") and jws.public_key_from_pem(pem).alg == "RS256"
    jwks = httpx.get(f"{emulator.url}/service_accounts/v1/jwk/{account}").json()
    assert [k["kid"] for k in jwks["keys"]] == [kid]
    other = httpx.get(f"{emulator.url}/robot/v1/metadata/x509/nobody@example.iam.gserviceaccount.com")
    assert other.status_code == 404 and other.json()["error"]["status"] == "NOT_FOUND"


def test_googles_discovery_document_points_at_the_v3_certs(emulator: EmulatorClient) -> None:
    document = httpx.get(f"{emulator.url}/.well-known/openid-configuration").json()
    assert document["issuer"] == "https://accounts.google.com"
    assert document["jwks_uri"] == "https://www.googleapis.com/oauth2/v3/certs"
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]


def test_minted_tokens_carry_what_the_issuers_put_in_them(emulator: EmulatorClient) -> None:
    assertion = compact.parse(
        emulator.iap_assertion("fred@example.com", accessLevels=["accessPolicies/1/accessLevels/x"])
    )
    assert assertion.header["alg"] == "ES256"
    claims = assertion.claims
    assert claims["aud"] == f"/projects/{emulator.state.project_number}/apps/{emulator.state.project_id}"
    assert claims["google"] == {"access_levels": ["accessPolicies/1/accessLevels/x"]} and "hd" not in claims
    assert claims["sub"] == f"accounts.google.com:{emulator.state.users['fred@example.com'].sub}"
    token = compact.parse(emulator.firebase_token("anon-1"))
    assert token.header["alg"] == "RS256"
    assert token.claims["firebase"] == {"identities": {}, "sign_in_provider": "custom"} and "email" not in token.claims
    assert token.claims["iss"] == f"https://securetoken.google.com/{emulator.state.project_id}"


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/emulator/v1/iap/assertions", {}, "email"),
        ("/emulator/v1/iap/assertions", {"email": "a@b.c", "lifetime": 601}, "lifetime"),
        ("/emulator/v1/iap/assertions", {"email": "a@b.c", "audience": ""}, "audience"),
        ("/emulator/v1/iap/assertions", {"email": "a@b.c", "accessLevels": "x"}, "accessLevels"),
        ("/emulator/v1/iap/assertions", [1], "JSON object"),
        ("/emulator/v1/firebase/tokens", {}, "uid"),
        ("/emulator/v1/firebase/tokens", {"uid": "u" * 129}, "uid"),
        ("/emulator/v1/firebase/tokens", {"uid": "u", "claims": {"sub": "x"}}, "reserved"),
        ("/emulator/v1/firebase/tokens", {"uid": "u", "emailVerified": "yes"}, "emailVerified"),
        ("/emulator/v1/firebase/tokens", {"uid": "u", "lifetime": 0}, "lifetime"),
        ("/emulator/v1/firebase/tokens", {"uid": "u", "email": 5}, "email"),
    ],
)
def test_admin_calls_refuse_bad_requests(emulator: EmulatorClient, path: str, body: Any, fragment: str) -> None:
    response = httpx.post(emulator.url + path, json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]
