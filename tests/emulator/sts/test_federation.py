"""The emulator's workload identity federation: OIDC issuer, providers, STS, federated principals."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import pytest

from gcptoken import Verifier
from gcptoken.emulator.sts.federation import conditions_hold
from gcptoken.jose import jws
from gcptoken.testing import EmulatorClient

AUD = "https://svc-fed.a.run.app"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
_ids = itertools.count(1)


class Federation:
    def __init__(self, emulator: EmulatorClient, **provider: Any) -> None:
        self.emulator = emulator
        number = next(_ids)
        self.pool, self.provider = f"pool-{number:04d}", f"prov-{number:04d}"
        body = {"poolId": self.pool, "providerId": self.provider, **provider}
        created = httpx.post(f"{emulator.url}/emulator/v1/workloadIdentityPools/providers", json=body)
        assert created.status_code == 201, created.text
        self.audience = created.json()["audience"]
        self.pool_resource = self.audience.split("/providers/")[0]

    def subject_token(self, lifetime: int = 3600, **claims: Any) -> str:
        claims = {"sub": "workload-1", "aud": f"https:{self.audience}", **claims}
        response = httpx.post(
            f"{self.emulator.url}/emulator/v1/oidc/tokens", json={"claims": claims, "lifetime": lifetime}
        )
        return str(response.json()["token"])

    def exchange(
        self,
        subject_token: str,
        audience: str | None = None,
        scope: str = "https://www.googleapis.com/auth/cloud-platform",
    ) -> httpx.Response:
        form = {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "audience": audience or self.audience,
            "scope": scope,
            "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "subject_token": subject_token,
            "subject_token_type": JWT_TYPE,
        }
        return httpx.post(f"{self.emulator.url}/v1/token", data=form)

    def id_token_as(self, access_token: str, target: str) -> httpx.Response:
        url = f"{self.emulator.url}/v1/projects/-/serviceAccounts/{target}:generateIdToken"
        return httpx.post(url, json={"audience": AUD}, headers={"Authorization": f"Bearer {access_token}"})


@pytest.fixture
def federation(emulator: EmulatorClient) -> Federation:
    return Federation(emulator)


def test_the_oidc_issuer_publishes_discovery_and_keys(emulator: EmulatorClient, federation: Federation) -> None:
    config = httpx.get(f"{emulator.url}/oidc/.well-known/openid-configuration").json()
    assert config["issuer"] == f"{emulator.url}/oidc" and config["jwks_uri"] == f"{emulator.url}/oidc/jwks"
    token = federation.subject_token(email="w@example.com")
    claims = Verifier(f"https:{federation.audience}", certs=config["jwks_uri"], issuers=config["issuer"]).verify(token)
    assert claims["sub"] == "workload-1" and claims["email"] == "w@example.com"


def test_exchange_gives_a_federated_token_that_acts_where_bound(
    emulator: EmulatorClient, federation: Federation, certs_url: str
) -> None:
    response = federation.exchange(federation.subject_token())
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "issued_token_type", "token_type", "expires_in"}
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    target = emulator.new_key("fed-target")["client_email"]
    assert federation.id_token_as(body["access_token"], target).status_code == 403
    emulator.state.grant_token_creator(target, f"principal:{federation.pool_resource}/subject/workload-1")
    granted = federation.id_token_as(body["access_token"], target)
    assert granted.status_code == 200
    assert Verifier(AUD, certs=certs_url).verify(granted.json()["token"])["aud"] == AUD
    (logged,) = [e for e in emulator.requests("/v1/token") if e.get("detail", {}).get("principal")][-1:]
    assert logged["detail"]["principal"] == f"principal:{federation.pool_resource}/subject/workload-1"


@pytest.mark.parametrize("member", ["principalSet:{pool}/*", "principalSet:{pool}/attribute.team/blue"])
def test_principal_sets(emulator: EmulatorClient, member: str) -> None:
    federation = Federation(
        emulator, attributeMapping={"google.subject": "assertion.sub", "attribute.team": "assertion.team"}
    )
    token = federation.exchange(federation.subject_token(team="blue")).json()["access_token"]
    target = emulator.new_key("fed-set")["client_email"]
    emulator.state.grant_token_creator(target, member.format(pool=federation.pool_resource))
    assert federation.id_token_as(token, target).status_code == 200
    other = federation.exchange(federation.subject_token(sub="w2", team="red")).json()["access_token"]
    expected = 200 if member.endswith("/*") else 403
    assert federation.id_token_as(other, target).status_code == expected


def test_attribute_condition(emulator: EmulatorClient) -> None:
    federation = Federation(emulator, attributeCondition="assertion.repo == 'org/app' && assertion.ref != 'dev'")
    assert federation.exchange(federation.subject_token(repo="org/app", ref="main")).status_code == 200
    refused = federation.exchange(federation.subject_token(repo="org/other", ref="main"))
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "unauthorized_client",
        "error_description": "The given credential is rejected by the attribute condition.",
    }


def test_refusals(emulator: EmulatorClient, federation: Federation) -> None:
    def error_of(response: httpx.Response) -> str:
        assert response.status_code == 400
        return str(response.json()["error"])

    assert error_of(federation.exchange(federation.subject_token(aud="https://elsewhere"))) == "invalid_grant"
    assert error_of(federation.exchange(federation.subject_token(lifetime=-10))) == "invalid_grant"
    forged = jws.encode(
        {"iss": f"{emulator.url}/oidc", "sub": "x", "aud": f"https:{federation.audience}", "exp": 9999999999},
        jws.generate_rsa_key(),
        kid=emulator.state.oidc_key.kid,
    )
    assert error_of(federation.exchange(forged)) == "invalid_grant"
    assert error_of(federation.exchange("not-a-jwt")) == "invalid_grant"
    unknown = federation.audience.replace(federation.provider, "no-such-provider")
    assert error_of(federation.exchange(federation.subject_token(), audience=unknown)) == "invalid_target"
    wrong_grant = httpx.post(f"{emulator.url}/v1/token", data={"grant_type": "password"})
    assert error_of(wrong_grant) == "unsupported_grant_type"


def test_allowed_audiences(emulator: EmulatorClient) -> None:
    federation = Federation(emulator, allowedAudiences=["my-app"])
    assert federation.exchange(federation.subject_token(aud="my-app")).status_code == 200
    assert federation.exchange(federation.subject_token()).status_code == 400


@pytest.mark.parametrize(
    ("condition", "values", "holds"),
    [
        ("", {}, True),
        ("assertion.a == 'x'", {"assertion.a": "x"}, True),
        ("assertion.a == 'x'", {"assertion.a": "y"}, False),
        ("assertion.a != 'x' && attribute.b == 'z'", {"assertion.a": "y", "attribute.b": "z"}, True),
        ("assertion.a.startsWith('x')", {"assertion.a": "xy"}, False),  # beyond the emulator: never grants
    ],
)
def test_conditions(condition: str, values: dict[str, str], holds: bool) -> None:
    assert conditions_hold(condition, values) is holds


def test_a_provider_trusting_an_outside_issuers_jwks(emulator: EmulatorClient) -> None:
    outside = jws.generate_rsa_key()
    jwks = json.dumps({"keys": [outside.public.to_jwk("outside-1")]})
    federation = Federation(emulator, issuerUri="https://token.actions.example.com", jwksJson=jwks)
    claims = {
        "iss": "https://token.actions.example.com",
        "sub": "repo:org/app:ref:main",
        "aud": f"https:{federation.audience}",
        "exp": 9_999_999_999,
    }
    assert federation.exchange(jws.encode(claims, outside, kid="outside-1")).status_code == 200
    assert federation.exchange(jws.encode(claims, jws.generate_rsa_key(), kid="outside-1")).status_code == 400
    assert federation.exchange(federation.subject_token()).status_code == 400  # the emulator's issuer is not trusted
    bad = httpx.post(
        f"{emulator.url}/emulator/v1/workloadIdentityPools/providers",
        json={"poolId": "pool-bad1", "providerId": "prov-bad1", "issuerUri": "https://x", "jwksJson": "{"},
    )
    assert bad.status_code == 400


def test_workload_identity_user_role_binding(emulator: EmulatorClient, federation: Federation) -> None:
    target = emulator.new_key("wiu-target")["client_email"]
    admin = f"{emulator.url}/emulator/v1/serviceAccounts/{target}/tokenCreators"
    member = f"principal:{federation.pool_resource}/subject/workload-1"
    assert httpx.post(admin, json={"member": member, "role": "roles/owner"}).status_code == 400
    assert httpx.post(admin, json={"member": member, "role": "roles/iam.workloadIdentityUser"}).status_code == 200
    token = federation.exchange(federation.subject_token()).json()["access_token"]
    assert federation.id_token_as(token, target).status_code == 200
