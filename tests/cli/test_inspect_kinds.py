"""What the inspector tells of each kind of token, and its verdicts, without a browser (the page
itself is tested in test_inspect_browser)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gcptoken.emulator.metadata import server as metadata
from gcptoken.inspector.kinds import read
from gcptoken.inspector.verdict import verdict
from gcptoken.jose import jws
from gcptoken.testing import EmulatorClient

AUD = "https://svc-kinds.a.run.app"


def _sign(claims: dict[str, Any]) -> str:
    return jws.encode(claims, jws.generate_rsa_key(), kid="k1")


def test_service_account_kinds(emulator: EmulatorClient) -> None:
    state = emulator.state
    key_flow = state.service_account_id_token(state.default_account, AUD)
    assert "key file" in read(key_flow).kind
    standard = state.sign_id_token(state.identity_claims(state.default_account, AUD))
    assert "standard format" in read(standard).kind
    full = asyncio.run(metadata.EmulatedInstance(state).identity("default", AUD, True, False))
    assert isinstance(full, str) and "metadata server (full format)" in read(full).kind


def test_people_firebase_iap_and_assertions(emulator: EmulatorClient) -> None:
    now = int(time.time())
    user = _sign(
        {
            "iss": "https://accounts.google.com",
            "aud": "c.apps.googleusercontent.com",
            "azp": "c.apps.googleusercontent.com",
            "email": "a@example.com",
            "sub": "1",
            "iat": now,
            "exp": now + 60,
        }
    )
    assert read(user).kind == "Google ID token of a user"
    iap_user = _sign(
        {
            "iss": "https://accounts.google.com",
            "aud": "iap.apps.googleusercontent.com",
            "azp": "desk.apps.googleusercontent.com",
            "email": "a@example.com",
        }
    )
    assert "IAP programmatic access" in read(iap_user).kind
    assert read(emulator.firebase_token("uid-1")).kind == "Firebase Auth ID token"
    assert read(emulator.iap_assertion("a@example.com")).preset == "iap"
    sa = "robot@p.iam.gserviceaccount.com"
    assertion = _sign(
        {"iss": sa, "aud": "https://oauth2.googleapis.com/token", "target_audience": AUD, "iat": now, "exp": now + 60}
    )
    assert "jwt-bearer assertion" in read(assertion).kind and "an ID token" in read(assertion).summary
    self_signed = _sign({"iss": sa, "sub": sa, "scope": "https://www.googleapis.com/auth/cloud-platform"})
    assert read(self_signed).kind.startswith("JWT signed by a service account")
    assert read(self_signed).preset == read(assertion).preset == "service_account"  # tests/verify/test_service_account


@pytest.mark.parametrize(
    ("token", "kind", "warned"),
    [
        ("ya29.a0AfB_opaque", "OAuth access token (opaque)", False),
        ("1//0abc", "refresh token", True),
        ("garbage", "unknown", False),
    ],
)
def test_opaque_tokens(token: str, kind: str, warned: bool) -> None:
    reading = read(token)
    assert reading.kind == kind and reading.opaque and bool(reading.warnings) == warned


def test_an_oidc_token_is_verified_by_discovery(emulator: EmulatorClient) -> None:
    token = emulator.oidc_token({"sub": "ci-job", "aud": "my-app"})
    reading = read(token)
    assert reading.preset == "oidc" and reading.kind.startswith("OIDC token from http://127.0.0.1")
    result = asyncio.run(verdict(reading, token, "my-app"))
    assert result["valid"] is True and result["audience_checked"] is True
    wrong = asyncio.run(verdict(reading, token, "someone-else"))
    assert wrong["valid"] is False and wrong["reason"] == "audience"


def test_emulator_tokens_verify_with_the_emulators_keys(
    emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    token = emulator.state.service_account_id_token(emulator.state.default_account, AUD)
    result = asyncio.run(verdict(read(token), token, AUD))
    assert result["valid"] is True and "from the emulator" in result["keys"]


@pytest.mark.parametrize("issuer", ["http://169.254.169.254/computeMetadata", "ftp://issuer.example", "no scheme"])
def test_issuers_that_are_not_discovered(issuer: str) -> None:
    reading = read(_sign({"iss": issuer, "aud": "x", "sub": "s"}))
    assert reading.preset is None
    assert asyncio.run(verdict(reading, "unused", None))["checked"] is False


def test_without_an_expected_audience_any_audience_is_taken_and_said(
    emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page verifies with ANY_AUDIENCE_INSECURE and says the audience was not checked; an
    audience no verifier takes ("*") is a refusal with that reason, not "keys could not be fetched"."""
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    token = emulator.state.service_account_id_token(emulator.state.default_account, "*")
    unchecked = asyncio.run(verdict(read(token), token, None))
    assert unchecked["valid"] is True and unchecked["audience_checked"] is False
    refused = asyncio.run(verdict(read(token), token, "*"))
    assert refused["valid"] is False and refused["reason"] == "audience" and "wildcard" in refused["message"]
