"""``gcptoken verify --service-account EMAIL``, run as a user runs it: a self-signed JWT from
``gcptoken jwt`` and a signJwt result accepted, the wrong claims, another account's key and bad
input refused with one line on stderr; and the inspector naming such tokens and verifying them."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from gcptoken.credentials.service_account import ServiceAccountKey
from gcptoken.inspector.kinds import read
from gcptoken.inspector.verdict import verdict
from gcptoken.jose import jws
from gcptoken.testing import EmulatorClient
from tests.cli.test_cli import gcptoken
from tests.verify.test_service_account import sign_jwt

AUD = "https://api.endpoints.emulated-project.cloud.goog"


@pytest.fixture
def env(emulator: EmulatorClient, key_path: Path) -> dict[str, str]:
    return {"GCPTOKEN_EMULATOR_HOST": emulator.host_port, "GOOGLE_APPLICATION_CREDENTIALS": str(key_path)}


def signed(key: dict[str, str], **claims: Any) -> str:
    now = int(time.time())
    email = key["client_email"]
    body = {"iss": email, "sub": email, "aud": AUD, "iat": now, "exp": now + 3600, **claims}
    return jws.encode(body, jws.load_private_key_pem(key["private_key"]), kid=key["private_key_id"])


def test_a_self_signed_jwt_from_gcptoken_jwt_verifies(env: dict[str, str], key_info: dict[str, str]) -> None:
    made = gcptoken("jwt", "--audience", AUD, env=env)
    assert made.code == 0, made.err
    email = key_info["client_email"]
    result = gcptoken("verify", "--service-account", email, "--audience", AUD, stdin=made.out, env=env)
    assert result.code == 0, result.err
    claims = json.loads(result.out)
    assert claims["iss"] == claims["sub"] == email and claims["aud"] == AUD


def test_a_signjwt_result_verifies(env: dict[str, str], emulator: EmulatorClient, key_info: dict[str, str]) -> None:
    target = emulator.new_key("cli-signjwt")["client_email"]
    now = int(time.time())
    claims = {"iss": target, "sub": target, "aud": AUD, "iat": now, "exp": now + 600}
    token = sign_jwt(emulator, ServiceAccountKey.from_info(key_info, "caller"), target, claims)
    result = gcptoken("verify", token, "--service-account", target, "--audience", AUD, env=env)
    assert result.code == 0, result.err
    assert json.loads(result.out)["sub"] == target


@pytest.mark.parametrize(
    ("claims", "fragment"),
    [
        ({"iss": "other@emulated-project.iam.gserviceaccount.com"}, "issuer"),
        ({"sub": "other@emulated-project.iam.gserviceaccount.com"}, "is not the service account"),
        ({"aud": "https://another.example"}, "audience"),
    ],
)
def test_the_wrong_claims_are_one_line(
    env: dict[str, str], key_info: dict[str, str], claims: dict[str, Any], fragment: str
) -> None:
    token = signed(key_info, **claims)
    result = gcptoken("verify", token, "--service-account", key_info["client_email"], "--audience", AUD, env=env)
    assert result.code == 1 and result.out == "" and "Traceback" not in result.err
    (line,) = result.err.splitlines()
    assert fragment in line and token not in line


def test_another_accounts_key_is_refused(env: dict[str, str], emulator: EmulatorClient) -> None:
    mine, theirs = emulator.new_key("cli-mine"), emulator.new_key("cli-theirs")
    forged = signed({**theirs, "client_email": mine["client_email"]})
    result = gcptoken("verify", forged, "--service-account", mine["client_email"], "--audience", AUD, env=env)
    assert result.code == 1 and "no published key" in result.err and len(result.err.splitlines()) == 1


def test_a_configured_issuer_and_subject(env: dict[str, str], key_info: dict[str, str]) -> None:
    token = signed(key_info, iss="https://issuer.example", sub="job-7")
    email = key_info["client_email"]
    base = ("verify", token, "--service-account", email, "--audience", AUD)
    accepted = gcptoken(*base, "--issuer", "https://issuer.example", "--subject", "job-7", env=env)
    assert accepted.code == 0, accepted.err
    assert gcptoken(*base, "--issuer", "https://issuer.example", env=env).code == 1  # sub must be the email


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--preset", "google"], "leave out --preset and --certs"),
        (["--preset", "firebase"], "leave out --preset and --certs"),
        (["--certs", "https://www.googleapis.com/oauth2/v3/certs"], "leave out --preset and --certs"),
    ],
)
def test_conflicting_options_are_a_usage_error(env: dict[str, str], extra: list[str], fragment: str) -> None:
    args = ("verify", "a.b.c", "--service-account", "sa@p.iam.gserviceaccount.com", "--audience", AUD, *extra)
    result = gcptoken(*args, env=env)
    assert result.code == 2 and result.out == ""
    (line,) = result.err.splitlines()
    assert fragment in line


@pytest.mark.parametrize("email", ["not-an-email", "a/b@p.iam.gserviceaccount.com", "x@y?z"])
def test_a_bad_email_is_a_usage_error(env: dict[str, str], email: str) -> None:
    result = gcptoken("verify", "a.b.c", "--service-account", email, "--audience", AUD, env=env)
    assert result.code == 2 and "is not a service account's email" in result.err
    assert len(result.err.splitlines()) == 1 and "Traceback" not in result.err


def test_the_inspector_names_and_verifies_service_account_jwts(
    emulator: EmulatorClient, key_info: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    token = signed(key_info)
    reading = read(token)
    assert reading.kind.startswith("JWT signed by a service account") and reading.preset == "service_account"
    result = asyncio.run(verdict(reading, token, None))
    assert result["valid"] is True and "service account's published keys" in result["keys"]
    assert "from the emulator" in result["keys"]
    wrong_sub = signed(key_info, sub="someone")
    assert asyncio.run(verdict(read(wrong_sub), wrong_sub, None))["reason"] == "subject_not_allowed"
    theirs = emulator.new_key("inspected-theirs")
    forged = signed({**theirs, "client_email": key_info["client_email"]})
    assert asyncio.run(verdict(read(forged), forged, None))["reason"] == "unknown_kid"
    assert asyncio.run(verdict(reading, token, "https://another.example"))["reason"] == "audience"


def test_the_inspector_verifies_a_signjwt_result(
    emulator: EmulatorClient, key_info: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    target = emulator.new_key("inspected-signjwt")["client_email"]
    now = int(time.time())
    claims = {"iss": target, "sub": target, "aud": AUD, "iat": now, "exp": now + 600}
    token = sign_jwt(emulator, ServiceAccountKey.from_info(key_info, "caller"), target, claims)
    assert asyncio.run(verdict(read(token), token, AUD))["valid"] is True


def test_an_issuer_no_url_can_carry_is_not_fetched() -> None:
    token = jws.encode({"iss": "a/../../x@p.iam.gserviceaccount.com", "aud": AUD}, jws.generate_rsa_key(), kid="k")
    reading = read(token)
    assert reading.kind.startswith("JWT signed by a service account") and reading.preset is None
    assert asyncio.run(verdict(reading, token, None))["checked"] is False
