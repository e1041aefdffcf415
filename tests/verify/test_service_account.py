"""Verifier.service_account: JWTs a service account signed (self-signed with its key file, or
IAM's signJwt with its Google-managed key), checked against the keys the emulator publishes where
Google does, with the key cache's rules (fetched once, refetched for an unknown kid and at least
every 15 minutes, stale keys served while the key server fails)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from gcptoken import Verifier
from gcptoken.credentials.service_account import JWT_BEARER, ServiceAccountKey, assertion_claims, self_signed_jwt
from gcptoken.errors import InvalidArgumentError, VerificationError
from gcptoken.jose import compact, jws
from gcptoken.testing import EmulatorClient
from gcptoken.verify import presets
from tests.clock import Timer

AUD = "https://api.endpoints.emulated-project.cloud.goog"


@pytest.fixture
def at_emulator(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> EmulatorClient:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    return emulator


@pytest.fixture
def key(at_emulator: EmulatorClient) -> ServiceAccountKey:
    return ServiceAccountKey.from_info(at_emulator.new_key("signer"), "test")


def signed(key: ServiceAccountKey, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": key.client_email, "sub": key.client_email, "aud": AUD, "iat": now, "exp": now + 3600, **claims}
    return jws.encode({k: v for k, v in body.items() if v is not None}, key.signing_key, kid=key.private_key_id)


def key_fetches(emulator: EmulatorClient, email: str) -> int:
    return len(emulator.requests(f"/service_accounts/v1/metadata/jwk/{email}"))


def sign_jwt(emulator: EmulatorClient, caller: ServiceAccountKey, target: str, claims: dict[str, Any]) -> str:
    emulator.state.grant_token_creator(target, f"serviceAccount:{caller.client_email}")
    assertion = jws.encode(
        assertion_claims(caller, {"scope": "https://www.googleapis.com/auth/cloud-platform"}),
        caller.signing_key,
        kid=caller.private_key_id,
    )
    bearer = httpx.post(f"{emulator.url}/token", data={"grant_type": JWT_BEARER, "assertion": assertion})
    response = httpx.post(
        f"{emulator.url}/v1/projects/-/serviceAccounts/{target}:signJwt",
        json={"payload": json.dumps(claims)},
        headers={"Authorization": f"Bearer {bearer.json()['access_token']}"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["signedJwt"])


def test_a_self_signed_jwt_verifies_with_one_fetch(at_emulator: EmulatorClient, key: ServiceAccountKey) -> None:
    verifier = Verifier.service_account(key.client_email, AUD)
    token = self_signed_jwt(key, AUD).value
    for _ in range(5):
        claims = verifier.verify(token)
    assert claims["iss"] == claims["sub"] == key.client_email
    assert verifier.verify(signed(key, jti="another"))["jti"] == "another"
    assert key_fetches(at_emulator, key.client_email) == 1


def test_what_iam_signjwt_signed_verifies(at_emulator: EmulatorClient, key: ServiceAccountKey) -> None:
    target = at_emulator.new_key("signjwt-target")["client_email"]
    now = int(time.time())
    token = sign_jwt(at_emulator, key, target, {"iss": target, "sub": target, "aud": AUD, "iat": now, "exp": now + 600})
    assert Verifier.service_account(target, AUD).verify(token)["iss"] == target
    with pytest.raises(VerificationError) as refused:  # the caller's keys are not the target's
        Verifier.service_account(key.client_email, AUD, issuer=target, subject=target).verify(token)
    assert refused.value.reason == "unknown_kid"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": "someone-else@emulated-project.iam.gserviceaccount.com"}, "issuer"),
        ({"sub": "someone-else@emulated-project.iam.gserviceaccount.com"}, "subject_not_allowed"),
        ({"sub": 42}, "subject_not_allowed"),
        ({"sub": None}, "missing_claim"),
        ({"aud": "https://another.example"}, "audience"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
    ],
)
def test_the_wrong_claims_are_refused(key: ServiceAccountKey, claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(VerificationError) as refused:
        Verifier.service_account(key.client_email, AUD).verify(signed(key, **claims))
    assert refused.value.reason == reason
    assert key.private_key_id not in str(refused.value)


def test_another_accounts_key_is_refused(at_emulator: EmulatorClient, key: ServiceAccountKey) -> None:
    other = ServiceAccountKey.from_info(at_emulator.new_key("impostor"), "test")
    forged = jws.encode(
        {"iss": key.client_email, "sub": key.client_email, "aud": AUD, "iat": int(time.time()), "exp": 2**31},
        other.signing_key,
        kid=other.private_key_id,
    )
    with pytest.raises(VerificationError) as refused:
        Verifier.service_account(key.client_email, AUD).verify(forged)
    assert refused.value.reason == "unknown_kid"
    own_kid = jws.encode(
        compact.parse(forged).claims, other.signing_key, kid=key.private_key_id
    )  # its kid, not its key
    with pytest.raises(VerificationError) as refused:
        Verifier.service_account(key.client_email, AUD).verify(own_kid)
    assert refused.value.reason == "signature"


def test_a_deleted_key_is_refused_after_the_refetch(at_emulator: EmulatorClient, key: ServiceAccountKey) -> None:
    clock = Timer()
    verifier = Verifier.service_account(key.client_email, AUD, timer=clock)
    token = signed(key)
    assert verifier.verify(token)
    deleted = httpx.delete(
        f"{at_emulator.url}/emulator/v1/serviceAccounts/{key.client_email}/keys/{key.private_key_id}"
    )
    assert deleted.status_code == 200
    clock.now += 899  # the emulator says 6 hours; the preset refetches after 15 minutes
    assert verifier.verify(token)
    assert key_fetches(at_emulator, key.client_email) == 1
    clock.now += 2
    with pytest.raises(VerificationError) as refused:
        verifier.verify(token)
    assert refused.value.reason == "unknown_kid" and key_fetches(at_emulator, key.client_email) == 2


def test_a_new_key_is_fetched_for_and_failures_serve_stale_keys(
    at_emulator: EmulatorClient, key: ServiceAccountKey
) -> None:
    clock = Timer()
    verifier = Verifier.service_account(key.client_email, AUD, timer=clock)
    assert verifier.verify(signed(key))
    newer = ServiceAccountKey.from_info(at_emulator.state.create_key(key.client_email), "newer")
    with pytest.raises(VerificationError):  # an unknown kid within the refetch interval: not fetched again
        verifier.verify(signed(newer))
    clock.now += 31
    assert verifier.verify(signed(newer))  # rotation: the unknown kid made it refetch
    assert key_fetches(at_emulator, key.client_email) == 2
    path = f"/service_accounts/v1/metadata/jwk/{key.client_email}"
    httpx.post(f"{at_emulator.url}/emulator/v1/faults", json={"path": path, "count": 10, "status": 503})
    try:
        clock.now += 1000
        assert verifier.verify(signed(key, jti="while the key server fails"))  # the keys held, stale
    finally:
        httpx.delete(f"{at_emulator.url}/emulator/v1/faults")


def test_issuer_and_subject_can_be_configured(key: ServiceAccountKey) -> None:
    token = signed(key, iss="https://issuer.example", sub="job-7")
    verifier = Verifier.service_account(key.client_email, AUD, issuer="https://issuer.example", subject=["job-7", "x"])
    assert verifier.verify(token)["sub"] == "job-7"
    with pytest.raises(VerificationError) as refused:
        Verifier.service_account(key.client_email, AUD).verify(token)
    assert refused.value.reason == "issuer"


@pytest.mark.parametrize(
    "email",
    ["", "not-an-email", "a/b@p.iam.gserviceaccount.com", "a@p.iam.gserviceaccount.com/../x", "a b@p.com", "a%40b"],
)
def test_an_email_that_is_not_one_is_refused(email: str) -> None:
    with pytest.raises(InvalidArgumentError, match="is not a service account's email"):
        Verifier.service_account(email, AUD)


@pytest.mark.parametrize("options", [{"issuer": []}, {"subject": ""}, {"issuer": [""]}])
def test_empty_issuer_or_subject_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError, match="must be a non-empty string"):
        Verifier.service_account("sa@p.iam.gserviceaccount.com", AUD, **options)


def test_the_preset_names_googles_url() -> None:
    preset = presets.service_account("sa@p.iam.gserviceaccount.com")
    assert preset.certs == "https://www.googleapis.com/service_accounts/v1/metadata/jwk/sa@p.iam.gserviceaccount.com"
    assert preset.issuers == ("sa@p.iam.gserviceaccount.com",) and preset.algorithms == {"RS256"}
