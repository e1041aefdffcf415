"""User credentials (authorized_user), the refresh grant, and impersonated_service_account files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gcptoken import (
    CredentialsError,
    ImpersonatedCredentials,
    TokenRequestError,
    UserCredentials,
    Verifier,
    load_credentials,
)
from gcptoken.emulator import EmulatorServer
from gcptoken.testing import EmulatorClient, write_key_file
from tests.cli.test_cli import gcptoken

AUD = "https://svc-user.a.run.app"


@pytest.fixture
def user_file(emulator: EmulatorClient, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    email = f"{request.node.name[:20].lower().replace('[', '').replace(']', '')}@example.com"
    return write_key_file(tmp_path, emulator.state.issue_refresh_token(email), "user.json")


def test_refresh_grant_response_shape(emulator: EmulatorClient, user_file: Path, certs_url: str) -> None:
    info = json.loads(user_file.read_text())
    form = {k: info[k] for k in ("client_id", "client_secret", "refresh_token")} | {"grant_type": "refresh_token"}
    body = httpx.post(f"{emulator.url}/token", data=form).json()
    assert set(body) == {"access_token", "expires_in", "scope", "token_type", "id_token"}
    claims = Verifier(info["client_id"], certs=certs_url).verify(body["id_token"])
    assert claims["aud"] == claims["azp"] == info["client_id"]
    assert claims["email"].endswith("@example.com") and claims["email_verified"] is True
    tokeninfo = httpx.post(f"{emulator.url}/tokeninfo", data={"access_token": body["access_token"]}).json()
    assert tokeninfo["aud"] == info["client_id"] and tokeninfo["email"] == claims["email"]


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"refresh_token": "1//0revoked"}, 400, "invalid_grant"),
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"scope": "https://www.googleapis.com/auth/drive"}, 400, "invalid_scope"),
        ({"refresh_token": ""}, 400, "invalid_request"),
    ],
)
def test_refresh_grant_refusals(
    emulator: EmulatorClient, user_file: Path, change: dict[str, str], status: int, error: str
) -> None:
    info = json.loads(user_file.read_text())
    form = {k: info[k] for k in ("client_id", "client_secret", "refresh_token")} | {"grant_type": "refresh_token"}
    response = httpx.post(f"{emulator.url}/token", data={**form, **change})
    assert response.status_code == status and response.json()["error"] == error


def test_user_id_token_is_for_the_client_and_other_audiences_fail_clearly(
    emulator: EmulatorClient, user_file: Path, certs_url: str
) -> None:
    credentials = load_credentials(user_file)
    assert isinstance(credentials, UserCredentials)
    token = credentials.id_token(credentials.default_audience)
    assert Verifier(credentials.default_audience, certs=certs_url).verify(token.value)["email"].endswith("@example.com")
    before = len(emulator.requests("/token"))
    with pytest.raises(CredentialsError, match="--impersonate-service-account"):
        credentials.id_token(AUD)
    assert len(emulator.requests("/token")) == before  # refused before asking anyone: never a wrong-audience token
    assert credentials.access_token().value.startswith("ya29.")


def test_a_user_impersonating_a_service_account(
    emulator: EmulatorClient, user_file: Path, certs_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    target = emulator.new_key("user-target")["client_email"]
    user = load_credentials(user_file)
    email = Verifier(user.default_audience, certs=certs_url).verify(user.id_token(user.default_audience).value)["email"]  # type: ignore[attr-defined]
    with pytest.raises(TokenRequestError, match="PERMISSION_DENIED"):
        ImpersonatedCredentials(user, target).id_token(AUD)
    emulator.state.grant_token_creator(target, f"user:{email}")
    assert Verifier(AUD, certs=certs_url).verify(ImpersonatedCredentials(user, target).id_token(AUD).value)


def test_state_dir_user_and_impersonated_files(tmp_path: Path) -> None:
    with EmulatorServer(state_dir=tmp_path) as server:
        certs = f"{server.url}/oauth2/v3/certs"
        user = load_credentials(tmp_path / "authorized-user.json")
        assert isinstance(user, UserCredentials)
        assert user.id_token(user.default_audience).claims["email"] == "user@example.com"
        impersonated = load_credentials(tmp_path / "impersonated-service-account.json")
        assert isinstance(impersonated, ImpersonatedCredentials)
        assert impersonated.iam_base == f"{server.url}/v1/projects/-/serviceAccounts/"
        claims = Verifier(AUD, certs=certs).verify(impersonated.id_token(AUD).value)
        assert claims["sub"] == server.state.service_accounts[impersonated.target].unique_id
        refresh_token = json.loads((tmp_path / "authorized-user.json").read_text())["refresh_token"]
    with EmulatorServer(state_dir=tmp_path):  # restarted: the same user file keeps working
        assert json.loads((tmp_path / "authorized-user.json").read_text())["refresh_token"] == refresh_token
        assert load_credentials(tmp_path / "authorized-user.json").access_token().value.startswith("ya29.")


@pytest.mark.parametrize(
    ("info", "fragment"),
    [
        ({"type": "authorized_user", "client_id": "c"}, "no 'client_secret'"),
        ({"type": "impersonated_service_account"}, "no 'source_credentials'"),
        (
            {
                "type": "impersonated_service_account",
                "source_credentials": {"type": "service_account"},
                "service_account_impersonation_url": "https://example.com/nope",
            },
            "must end in /serviceAccounts/EMAIL:generateAccessToken",
        ),
        (
            {"type": "impersonated_service_account", "source_credentials": {"type": "impersonated_service_account"}},
            "nested",
        ),
    ],
)
def test_broken_files(tmp_path: Path, info: dict[str, Any], fragment: str) -> None:
    path = tmp_path / "creds.json"
    path.write_text(json.dumps(info))
    with pytest.raises(CredentialsError, match=fragment):
        load_credentials(path)


def test_cli_user_credentials(emulator: EmulatorClient, user_file: Path, certs_url: str) -> None:
    client_id = json.loads(user_file.read_text())["client_id"]
    plain = gcptoken("id", "--credentials", str(user_file))
    assert plain.code == 0, plain.err
    assert Verifier(client_id, certs=certs_url).verify(plain.out.strip())["aud"] == client_id
    refused = gcptoken("id", AUD, "--credentials", str(user_file))
    assert (refused.code, refused.out) == (1, "")  # a refusal by Google's rules, as a 4xx would be
    assert len(refused.err.splitlines()) == 1 and "--impersonate-service-account" in refused.err
