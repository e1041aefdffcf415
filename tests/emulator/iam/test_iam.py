"""The emulator's IAM Credentials API and IAM model, over real HTTP."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gcptoken import Verifier
from gcptoken.credentials.service_account import JWT_BEARER, ServiceAccountKey, assertion_claims
from gcptoken.jose import compact, jws
from gcptoken.testing import EmulatorClient
from tests.scopes import S1, S2

AUD = "https://svc-iam.a.run.app"


@dataclass
class Principals:
    emulator: EmulatorClient
    caller: ServiceAccountKey
    bearer: str

    def account(self, prefix: str) -> str:
        return self.emulator.new_key(prefix)["client_email"]

    def allow(self, member_email: str, target: str) -> None:
        response = httpx.post(
            f"{self.emulator.url}/emulator/v1/serviceAccounts/{target}/tokenCreators",
            json={"member": f"serviceAccount:{member_email}"},
        )
        assert response.status_code == 200

    def call(self, target: str, method: str, body: dict[str, Any], bearer: str | None = None) -> httpx.Response:
        token = self.bearer if bearer is None else bearer
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"{self.emulator.url}/v1/projects/-/serviceAccounts/{target}:{method}"
        return httpx.post(url, json=body, headers=headers)


def access_token(emulator: EmulatorClient, key: ServiceAccountKey) -> str:
    signed = jws.encode(
        assertion_claims(key, {"scope": "https://www.googleapis.com/auth/cloud-platform"}),
        key.signing_key,
        kid=key.private_key_id,
    )
    return str(
        httpx.post(f"{emulator.url}/token", data={"grant_type": JWT_BEARER, "assertion": signed}).json()["access_token"]
    )


@pytest.fixture
def iam(emulator: EmulatorClient, key_info: dict[str, str]) -> Principals:
    caller = ServiceAccountKey.from_info(key_info, "caller")
    return Principals(emulator, caller, access_token(emulator, caller))


@pytest.mark.parametrize("include_email", [False, True])
def test_generate_id_token(iam: Principals, certs_url: str, include_email: bool) -> None:
    target = iam.account("target")
    iam.allow(iam.caller.client_email, target)
    response = iam.call(target, "generateIdToken", {"audience": AUD, "includeEmail": include_email})
    assert response.status_code == 200 and set(response.json()) == {"token"}
    claims = Verifier(AUD, certs=certs_url).verify(response.json()["token"])
    unique_id = iam.emulator.state.service_accounts[target].unique_id
    assert claims["sub"] == claims["azp"] == unique_id
    expected = {"aud", "azp", "exp", "iat", "iss", "sub"} | ({"email", "email_verified"} if include_email else set())
    assert set(claims) == expected
    if include_email:
        assert claims["email"] == target


def test_generate_access_token_and_lifetime_policy(iam: Principals) -> None:
    target = iam.account("target")
    iam.allow(iam.caller.client_email, target)
    ok = iam.call(target, "generateAccessToken", {"scope": [S1, S2], "lifetime": "1800s"})
    assert ok.status_code == 200 and set(ok.json()) == {"accessToken", "expireTime"}
    assert ok.json()["expireTime"].endswith("Z")
    info = httpx.post(f"{iam.emulator.url}/tokeninfo", data={"access_token": ok.json()["accessToken"]}).json()
    assert info["email"] == target and info["scope"] == f"{S1} {S2}" and 1790 <= int(info["expires_in"]) <= 1800
    long = iam.call(target, "generateAccessToken", {"scope": [S1], "lifetime": "7200s"})
    assert long.status_code == 400 and long.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "allowServiceAccountCredentialLifetimeExtension" in long.json()["error"]["message"]
    policy = httpx.put(
        f"{iam.emulator.url}/emulator/v1/policies/credentialLifetimeExtension", json={"serviceAccounts": [target]}
    )
    assert policy.status_code == 200
    assert iam.call(target, "generateAccessToken", {"scope": [S1], "lifetime": "43200s"}).status_code == 200
    assert iam.call(target, "generateAccessToken", {"scope": [S1], "lifetime": "43201s"}).status_code == 400


def test_delegation_is_checked_hop_by_hop(iam: Principals) -> None:
    first, second, target = iam.account("hop1"), iam.account("hop2"), iam.account("target")
    delegates = [f"projects/-/serviceAccounts/{first}", f"projects/-/serviceAccounts/{second}"]
    body = {"audience": AUD, "delegates": delegates}
    iam.allow(iam.caller.client_email, first)
    iam.allow(first, second)
    assert iam.call(target, "generateIdToken", body).status_code == 403  # second → target missing
    iam.allow(second, target)
    assert iam.call(target, "generateIdToken", body).status_code == 200
    # Without the chain, the caller alone may not act as the target.
    assert iam.call(target, "generateIdToken", {"audience": AUD}).status_code == 403
    malformed = iam.call(target, "generateIdToken", {"audience": AUD, "delegates": [first]})
    assert malformed.status_code == 400 and "projects/-/serviceAccounts/" in malformed.json()["error"]["message"]


def test_an_impersonated_access_token_is_a_principal_too(iam: Principals) -> None:
    middle, target = iam.account("middle"), iam.account("target")
    iam.allow(iam.caller.client_email, middle)
    iam.allow(middle, target)
    as_middle = iam.call(middle, "generateAccessToken", {"scope": [S1]}).json()["accessToken"]
    assert iam.call(target, "generateIdToken", {"audience": AUD}, bearer=as_middle).status_code == 200
    assert iam.call(target, "generateIdToken", {"audience": AUD}).status_code == 403


def test_sign_jwt_signs_an_assertion_the_token_endpoint_accepts(iam: Principals) -> None:
    target = iam.account("target")
    iam.allow(iam.caller.client_email, target)
    key = ServiceAccountKey(client_email=target, private_key_id="unused", private_key="unused")
    payload = json.dumps(assertion_claims(key, {"target_audience": AUD}))
    signed = iam.call(target, "signJwt", {"payload": payload}).json()
    assert set(signed) == {"keyId", "signedJwt"}
    exchanged = httpx.post(
        f"{iam.emulator.url}/token", data={"grant_type": JWT_BEARER, "assertion": signed["signedJwt"]}
    )
    assert compact.parse(exchanged.json()["id_token"]).claims["email"] == target


def test_sign_blob(iam: Principals) -> None:
    target = iam.account("target")
    iam.allow(iam.caller.client_email, target)
    blob = b"sign me"
    signed = iam.call(target, "signBlob", {"payload": base64.b64encode(blob).decode()}).json()
    kid, key = iam.emulator.state.system_key(target)
    assert signed["keyId"] == kid
    public = key.key.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(base64.b64decode(signed["signedBlob"]), blob, padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize(
    ("method", "permission"),
    [
        ("generateIdToken", "getOpenIdToken"),
        ("generateAccessToken", "getAccessToken"),
        ("signJwt", "signJwt"),
        ("signBlob", "signBlob"),
    ],
)
def test_permission_denied_is_googles_403(iam: Principals, method: str, permission: str) -> None:
    target = iam.account("target")
    bodies: dict[str, dict[str, Any]] = {
        "generateIdToken": {"audience": AUD},
        "generateAccessToken": {"scope": [S1]},
        "signJwt": {"payload": "{}"},
        "signBlob": {"payload": "e30="},
    }
    response = iam.call(target, method, bodies[method])
    assert response.status_code == 403
    assert response.json() == {
        "error": {
            "code": 403,
            "message": f"Permission 'iam.serviceAccounts.{permission}' denied on resource (or it may not exist).",
            "status": "PERMISSION_DENIED",
        }
    }


def test_unknown_service_account_is_the_same_403(iam: Principals) -> None:
    response = iam.call("ghost@emulated-project.iam.gserviceaccount.com", "generateIdToken", {"audience": AUD})
    assert response.status_code == 403 and "getOpenIdToken" in response.json()["error"]["message"]


@pytest.mark.parametrize("bearer", ["", "ya29.not-issued-here"], ids=["missing", "unknown"])
def test_missing_or_unknown_bearer_is_401(iam: Principals, bearer: str) -> None:
    response = iam.call(iam.caller.client_email, "generateIdToken", {"audience": AUD}, bearer=bearer)
    assert response.status_code == 401 and response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_expired_bearer_is_401(iam: Principals) -> None:
    target = iam.account("target")
    iam.allow(iam.caller.client_email, target)
    state = iam.emulator.state
    grant = state.access_tokens[iam.bearer]
    state.access_tokens[iam.bearer] = type(grant)(
        grant.token, grant.email, grant.unique_id, grant.scopes, state.clock() - 1
    )
    assert iam.call(target, "generateIdToken", {"audience": AUD}).status_code == 401


@pytest.mark.parametrize(
    ("method", "body", "status"),
    [
        ("generateIdToken", {"audience": ""}, 400),
        ("generateAccessToken", {"scope": []}, 400),
        ("generateAccessToken", {"scope": [S1], "lifetime": "an hour"}, 400),
        ("signJwt", {"payload": "[1]"}, 400),
        ("signBlob", {"payload": "!!"}, 400),
        ("generateIdToken", {"audience": AUD, "delegates": "x"}, 400),
        ("frobnicate", {}, 404),
    ],
)
def test_bad_requests(iam: Principals, method: str, body: dict[str, Any], status: int) -> None:
    target = iam.account("target")
    iam.allow(iam.caller.client_email, target)
    response = iam.call(target, method, body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == status


def test_token_creator_admin_api(iam: Principals) -> None:
    target = iam.account("target")
    admin = f"{iam.emulator.url}/emulator/v1/serviceAccounts/{target}/tokenCreators"
    member = f"serviceAccount:{iam.caller.client_email}"
    assert httpx.post(admin, json={"member": "nobody"}).status_code == 400
    assert httpx.post(admin, json={"member": member}).json()["members"] == [member]
    assert iam.call(target, "generateIdToken", {"audience": AUD}).status_code == 200
    assert httpx.delete(f"{admin}/{member}").json()["members"] == []
    assert iam.call(target, "generateIdToken", {"audience": AUD}).status_code == 403
    assert httpx.get(f"{iam.emulator.url}/emulator/v1/serviceAccounts/nobody@x/tokenCreators").status_code == 404
