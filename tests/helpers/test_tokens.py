"""The token every helper hands out (``helpers.tokens.helper_token``), against the emulator: from
the credential ADC would use, written to the disk cache and then answered from it without a
request, for every kind of subject; bad requests are typed errors that carry no secret."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gcptoken.errors import GcpTokenError, InvalidArgumentError
from gcptoken.helpers.tokens import helper_token
from gcptoken.testing import EmulatorClient, write_key_file
from gcptoken.tokens import decode

AUD = "https://svc-helpers.a.run.app"


@pytest.fixture
def adc(emulator: EmulatorClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    key = emulator.new_key("helper")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_key_file(tmp_path, key)))
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)  # IAM for impersonation
    return key


def _token_requests(emulator: EmulatorClient, email: str) -> int:
    return len(emulator.token_requests_by(email))


def test_an_access_token_is_fetched_once_then_answered_from_the_disk_cache(
    emulator: EmulatorClient, adc: dict[str, str]
) -> None:
    first = helper_token()
    assert first.value.startswith("ya29.")
    assert first.value not in repr(first)  # never in a log line that prints it
    assert _token_requests(emulator, adc["client_email"]) == 1
    again = helper_token("access_token", "https://www.googleapis.com/auth/cloud-platform")
    assert again == first
    assert _token_requests(emulator, adc["client_email"]) == 1


def test_scopes_are_one_subject_in_any_order(emulator: EmulatorClient, adc: dict[str, str]) -> None:
    scopes = "https://www.googleapis.com/auth/userinfo.email,https://www.googleapis.com/auth/cloud-platform"
    first = helper_token("access_token", scopes)
    reordered = " ".join(reversed(scopes.split(",")))
    assert helper_token("access_token", reordered) == first
    assert _token_requests(emulator, adc["client_email"]) == 1


def test_an_id_token_for_an_audience(emulator: EmulatorClient, adc: dict[str, str]) -> None:
    token = helper_token("id_token", AUD)
    claims = decode(token.value).claims
    assert (claims["aud"], claims["email"]) == (AUD, adc["client_email"])
    assert abs(token.expires_at - claims["exp"]) < 2
    assert helper_token("id_token", AUD) == token
    assert _token_requests(emulator, adc["client_email"]) == 1


def test_a_service_account_needs_an_audience_for_an_id_token(adc: dict[str, str]) -> None:
    with pytest.raises(InvalidArgumentError, match="needs an audience"):
        helper_token("id_token")


def test_a_user_gets_the_id_token_for_its_client(emulator: EmulatorClient, tmp_path: Path) -> None:
    user = emulator.state.issue_refresh_token("helper-user@example.com")
    path = write_key_file(tmp_path, user, "user.json")
    token = helper_token("id_token", credentials=str(path))
    assert decode(token.value).claims["aud"] == user["client_id"]
    assert helper_token("id_token", credentials=str(path)) == token  # the fast path knows the default too


def test_impersonation(emulator: EmulatorClient, adc: dict[str, str]) -> None:
    target = emulator.new_key("helper-target")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{adc['client_email']}")
    token = helper_token("id_token", AUD, impersonate=target)
    assert decode(token.value).claims["aud"] == AUD
    assert emulator.requests(f"/v1/projects/-/serviceAccounts/{target}:generateIdToken")
    assert helper_token("id_token", AUD, impersonate=target) == token  # cached


def test_a_refused_credential_is_a_typed_error_without_secrets(emulator: EmulatorClient, tmp_path: Path) -> None:
    user = emulator.state.issue_refresh_token("helper-revoked@example.com")
    user["refresh_token"] = "1//0-not-a-grant-" + "x" * 40
    path = write_key_file(tmp_path, user, "user.json")
    with pytest.raises(GcpTokenError) as raised:
        helper_token(credentials=str(path))
    message = str(raised.value)
    assert user["refresh_token"] not in message
    assert user["client_secret"] not in message


def test_a_missing_credential_file_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(GcpTokenError):
        helper_token(credentials=str(tmp_path / "absent.json"))


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind must be"):
        helper_token("jwt")


def test_a_planted_cache_entry_that_is_no_token_is_not_handed_out(adc: dict[str, str]) -> None:
    first = helper_token()
    tokens = Path(os.environ["XDG_CACHE_HOME"]) / "gcptoken" / "tokens.json"
    planted = "not a token\r\nX-Injected: 1"
    tokens.write_text(tokens.read_text().replace(first.value, json.dumps(planted)[1:-1]))
    assert first.value not in tokens.read_text()  # planted
    again = helper_token()
    assert again.value.startswith("ya29.")
    assert "\n" not in again.value and "X-Injected" not in again.value
