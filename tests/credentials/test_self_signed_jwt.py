"""Self-signed JWTs from a service-account key: no network call, Google's claim shape."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gcptoken import InvalidArgumentError, ServiceAccountCredentials, load_credentials
from gcptoken.jose import compact
from gcptoken.testing import EmulatorClient
from tests.cli.test_cli import gcptoken

API = "https://pubsub.googleapis.com/"


def test_audience_form(emulator: EmulatorClient, key_path: Path, key_info: dict[str, str]) -> None:
    credentials = load_credentials(key_path)
    assert isinstance(credentials, ServiceAccountCredentials)
    before = len(emulator.state.request_log())
    token = credentials.self_signed_jwt(API)
    assert len(emulator.state.request_log()) == before  # signed locally
    parsed = compact.parse(token.value)
    assert parsed.header == {"alg": "RS256", "kid": key_info["private_key_id"], "typ": "JWT"}
    assert set(parsed.claims) == {"iss", "sub", "aud", "iat", "exp"}
    assert parsed.claims["iss"] == parsed.claims["sub"] == key_info["client_email"]
    assert parsed.claims["aud"] == API and parsed.claims["exp"] - parsed.claims["iat"] == 3600
    assert abs(parsed.claims["iat"] - time.time()) < 5
    public = emulator.state.service_accounts[key_info["client_email"]].keys[key_info["private_key_id"]]
    parsed.verify_with(public)  # the key Google (here, the emulator) holds for this account
    assert token.kind == "jwt" and token.expires_at.timestamp() == parsed.claims["exp"]


def test_scope_form_has_no_audience(key_path: Path) -> None:
    credentials = load_credentials(key_path)
    assert isinstance(credentials, ServiceAccountCredentials)
    claims = compact.parse(credentials.self_signed_jwt(scopes=["a", "b"], lifetime=600).value).claims
    assert claims["scope"] == "a b" and "aud" not in claims and claims["exp"] - claims["iat"] == 600


@pytest.mark.parametrize(
    ("audience", "scopes", "lifetime"),
    [(None, None, 3600), (API, ["a"], 3600), (API, None, 3601), (API, None, 0), ("", None, 60), (None, [" "], 60)],
)
def test_bad_requests(key_path: Path, audience: str | None, scopes: list[str] | None, lifetime: int) -> None:
    credentials = load_credentials(key_path)
    assert isinstance(credentials, ServiceAccountCredentials)
    with pytest.raises(InvalidArgumentError):
        credentials.self_signed_jwt(audience, scopes=scopes, lifetime=lifetime)


def test_cli(key_path: Path, key_info: dict[str, str], tmp_path: Path) -> None:
    result = gcptoken("jwt", "--audience", API, "--credentials", str(key_path), "--format", "claims")
    assert result.code == 0, result.err
    assert json.loads(result.out)["aud"] == API
    scoped = gcptoken("jwt", "--scopes", "s1,s2", "--credentials", str(key_path))
    assert compact.parse(scoped.out.strip()).claims["scope"] == "s1 s2"
    neither = gcptoken("jwt", "--credentials", str(key_path))
    assert (neither.code, neither.out) == (2, "") and "needs one of --audience" in neither.err
    user = tmp_path / "user.json"
    user.write_text(
        json.dumps({"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"})
    )
    refused = gcptoken("jwt", "--audience", API, "--credentials", str(user))
    assert refused.code == 2 and "need a service-account key" in refused.err and len(refused.err.splitlines()) == 1
