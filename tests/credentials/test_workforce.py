"""Workforce identity federation (people): external_account files on a workforce pool with a user
project, and external_account_authorized_user files (refresh at STS with Basic client auth,
rotation, revocation), ID tokens through impersonation, google-auth agreeing, the CLI."""

from __future__ import annotations

import asyncio
import importlib
import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gcptoken import (
    CredentialsError,
    ImpersonatedCredentials,
    RefusedError,
    TokenRequestError,
    Verifier,
    WorkforceUserCredentials,
    load_credentials,
)
from gcptoken.testing import EmulatorClient
from tests.cli.test_cli import gcptoken

AUD = "https://svc-people.a.run.app"
JWT = "urn:ietf:params:oauth:token-type:jwt"
_ids = itertools.count(1)


class Workforce:
    """A workforce pool whose OIDC provider trusts the emulator's issuer, and a service account
    its people may impersonate."""

    def __init__(self, emulator: EmulatorClient, rotate: bool = False) -> None:
        self.emulator = emulator
        n = next(_ids)
        self.pool, self.provider = f"people-{n:04d}", f"idp-{n:04d}"
        created = httpx.post(
            f"{emulator.url}/emulator/v1/workforcePools/providers",
            json={"poolId": self.pool, "providerId": self.provider},
        )
        assert created.status_code == 201, created.text
        self.audience = created.json()["audience"]
        assert (
            self.audience
            == f"//iam.googleapis.com/locations/global/workforcePools/{self.pool}/providers/{self.provider}"
        )
        self.subject = f"alice-{n}@corp.example"
        self.principal = (
            f"principal://iam.googleapis.com/locations/global/workforcePools/{self.pool}/subject/{self.subject}"
        )
        self.target = emulator.new_key("wf-target")["client_email"]
        emulator.state.grant_token_creator(self.target, self.principal)
        answer = httpx.post(
            f"{emulator.url}/emulator/v1/workforcePools/users",
            json={"poolId": self.pool, "providerId": self.provider, "subject": self.subject, "rotate": rotate},
        )
        assert answer.status_code == 201, answer.text
        self.user_file: dict[str, Any] = answer.json()

    def external_account(self, tmp_path: Path, user_project: str | None) -> dict[str, Any]:
        client_id = self.emulator.state.workforce_client[0]
        token = self.emulator.oidc_token({"sub": self.subject, "aud": client_id})
        (tmp_path / "wf-token").write_text(token)
        info: dict[str, Any] = {
            "type": "external_account",
            "audience": self.audience,
            "subject_token_type": JWT,
            "token_url": f"{self.emulator.url}/v1/token",
            "credential_source": {"file": str(tmp_path / "wf-token")},
        }
        if user_project:
            info["workforce_pool_user_project"] = user_project
        return info


def write(tmp_path: Path, info: dict[str, Any], name: str = "wf.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(info))
    return path


def verify(emulator: EmulatorClient, token: str) -> dict[str, Any]:
    return Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs").verify(token)


def test_workforce_external_account_sends_the_user_project(emulator: EmulatorClient, tmp_path: Path) -> None:
    workforce = Workforce(emulator)
    info = workforce.external_account(tmp_path, emulator.state.project_number)
    credentials = load_credentials(write(tmp_path, info))
    token = credentials.access_token()
    assert (
        emulator.state.access_tokens[token.value].principal
        == f"principal:{workforce.principal.removeprefix('principal:')}"
    )
    (entry,) = [
        e
        for e in emulator.requests("/v1/token")
        if e.get("detail", {}).get("principal", "").endswith(workforce.subject)
    ]
    assert entry["detail"]["userProject"] == emulator.state.project_number
    assert "workforce identity federation" in credentials.description


def test_a_wrong_user_project_is_refused_by_sts(emulator: EmulatorClient, tmp_path: Path) -> None:
    workforce = Workforce(emulator)
    credentials = load_credentials(write(tmp_path, workforce.external_account(tmp_path, "999")))
    with pytest.raises(TokenRequestError, match="user project 999 is not valid"):
        credentials.access_token()


def test_workforce_external_account_id_token_through_impersonation(emulator: EmulatorClient, tmp_path: Path) -> None:
    workforce = Workforce(emulator)
    info = workforce.external_account(tmp_path, emulator.state.project_id)
    info["service_account_impersonation_url"] = (
        f"{emulator.url}/v1/projects/-/serviceAccounts/{workforce.target}:generateAccessToken"
    )
    claims = verify(emulator, load_credentials(write(tmp_path, info)).id_token(AUD).value)
    assert claims["sub"] == emulator.state.service_accounts[workforce.target].unique_id


def test_authorized_user_access_token_with_basic_client_auth(emulator: EmulatorClient, tmp_path: Path) -> None:
    workforce = Workforce(emulator)
    credentials = load_credentials(write(tmp_path, workforce.user_file))
    assert isinstance(credentials, WorkforceUserCredentials)
    assert credentials.quota_project_id == emulator.state.project_id
    token = credentials.access_token()
    assert emulator.state.access_tokens[token.value].email.endswith(f"/subject/{workforce.subject}")
    assert asyncio.run(credentials.access_token_async(use_cache=False)).value != token.value
    with pytest.raises(RefusedError, match="only by impersonating a service account"):
        credentials.id_token(AUD)


def test_a_wrong_client_secret_is_invalid_client(emulator: EmulatorClient, tmp_path: Path) -> None:
    workforce = Workforce(emulator)
    credentials = load_credentials(write(tmp_path, {**workforce.user_file, "client_secret": "GOCSPX-not-the-secret"}))
    with pytest.raises(TokenRequestError, match="invalid_client") as caught:
        credentials.access_token()
    assert "GOCSPX-not-the-secret" not in str(caught.value)


def test_a_rotated_refresh_token_is_kept_in_memory(emulator: EmulatorClient, tmp_path: Path) -> None:
    workforce = Workforce(emulator, rotate=True)
    credentials = load_credentials(write(tmp_path, workforce.user_file))
    assert isinstance(credentials, WorkforceUserCredentials)
    credentials.access_token(use_cache=False)
    first_rotation = credentials.refresh_token
    assert first_rotation != workforce.user_file["refresh_token"]
    credentials.access_token(use_cache=False)  # only works with the rotated token: the old one is retired
    assert credentials.refresh_token not in (first_rotation, workforce.user_file["refresh_token"])
    stale = load_credentials(write(tmp_path, workforce.user_file, "stale.json"))
    with pytest.raises(TokenRequestError, match="sign in again"):
        stale.access_token(use_cache=False)


def test_revoked_refresh_token_is_one_clear_line(emulator: EmulatorClient, tmp_path: Path) -> None:
    workforce = Workforce(emulator)
    path = write(tmp_path, workforce.user_file)
    credentials = load_credentials(path)
    assert isinstance(credentials, WorkforceUserCredentials)
    from gcptoken.credentials.base import run_flow_sync

    run_flow_sync(credentials.revoke_flow(), None)
    result = gcptoken("access", "--credentials", str(path), env={"GCPTOKEN_EMULATOR_HOST": emulator.host_port})
    assert result.code == 1
    assert result.err.count("\n") == 1 and "sign in again" in result.err
    assert workforce.user_file["refresh_token"] not in result.err
    assert workforce.user_file["client_secret"] not in result.err


def test_introspect_answers_for_the_client(emulator: EmulatorClient) -> None:
    workforce = Workforce(emulator)
    client = (emulator.state.workforce_client[0], emulator.state.workforce_client[1])
    refresh = workforce.user_file["refresh_token"]
    answer = httpx.post(f"{emulator.url}/v1/introspect", data={"token": refresh}, auth=client).json()
    assert answer["active"] is True and answer["sub"] == workforce.principal.removeprefix("principal:")
    assert httpx.post(f"{emulator.url}/v1/introspect", data={"token": "nope"}, auth=client).json() == {"active": False}
    assert httpx.post(f"{emulator.url}/v1/introspect", data={"token": refresh}).status_code == 401


def test_cli_id_with_impersonation_and_whoami(emulator: EmulatorClient, tmp_path: Path) -> None:
    workforce = Workforce(emulator)
    path = write(tmp_path, workforce.user_file)
    env = {"GCPTOKEN_EMULATOR_HOST": emulator.host_port}
    result = gcptoken("id", AUD, "--credentials", str(path), "--impersonate-service-account", workforce.target, env=env)
    assert result.code == 0, result.err
    assert verify(emulator, result.out.strip())["sub"] == emulator.state.service_accounts[workforce.target].unique_id
    refused = gcptoken("id", AUD, "--credentials", str(path), env=env)
    assert refused.code != 0 and "--impersonate-service-account" in refused.err
    whoami = gcptoken("whoami", "--credentials", str(path), env=env)
    assert whoami.code == 0, whoami.err
    assert "workforce identity federation user" in whoami.out and workforce.pool in whoami.out


def test_as_the_source_of_an_impersonated_service_account_file(emulator: EmulatorClient, tmp_path: Path) -> None:
    workforce = Workforce(emulator)
    info = {
        "type": "impersonated_service_account",
        "service_account_impersonation_url": (
            f"{emulator.url}/v1/projects/-/serviceAccounts/{workforce.target}:generateAccessToken"
        ),
        "delegates": [],
        "source_credentials": workforce.user_file,
    }
    credentials = load_credentials(write(tmp_path, info))
    assert isinstance(credentials, ImpersonatedCredentials)
    assert (
        verify(emulator, credentials.id_token(AUD).value)["sub"]
        == emulator.state.service_accounts[workforce.target].unique_id
    )


def test_without_a_binding_the_denial_names_the_principal_role(emulator: EmulatorClient, tmp_path: Path) -> None:
    workforce = Workforce(emulator)
    emulator.state.revoke_token_creator(workforce.target, workforce.principal)
    credentials = ImpersonatedCredentials(
        load_credentials(write(tmp_path, workforce.user_file)),
        workforce.target,
        iam_base=f"{emulator.url}/v1/projects/-/serviceAccounts/",
    )
    with pytest.raises(TokenRequestError, match="Token Creator"):
        credentials.id_token(AUD)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x"},
            "not a workforce pool",
        ),
        ({"refresh_token": None}, "has no 'refresh_token'"),
        ({"token_url": "ftp://x"}, r"not a usable http\(s\) URL"),
    ],
)
def test_broken_authorized_user_files(
    emulator: EmulatorClient, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    info = {**Workforce(emulator).user_file, **change}
    info = {k: v for k, v in info.items() if v is not None}
    with pytest.raises(CredentialsError, match=message):
        load_credentials(write(tmp_path, info))


def test_google_auth_agrees(emulator: EmulatorClient, tmp_path: Path) -> None:
    """google-auth's external_account_authorized_user and identity_pool (workforce) credentials,
    unchanged, get access tokens from the emulated STS."""
    from google.auth.transport.requests import Request

    authorized_user: Any = importlib.import_module("google.auth.external_account_authorized_user")
    identity_pool: Any = importlib.import_module("google.auth.identity_pool")
    workforce = Workforce(emulator)
    person = authorized_user.Credentials.from_info(workforce.user_file)
    person.refresh(Request())
    assert emulator.state.access_tokens[person.token].email.endswith(f"/subject/{workforce.subject}")
    info = workforce.external_account(tmp_path, emulator.state.project_number)
    federated = identity_pool.Credentials.from_info(info, scopes=["https://www.googleapis.com/auth/cloud-platform"])
    federated.refresh(Request())
    assert emulator.state.access_tokens[federated.token].email.endswith(f"/subject/{workforce.subject}")
    entry = [
        e
        for e in emulator.requests("/v1/token")
        if e.get("detail", {}).get("principal", "").endswith(workforce.subject)
    ][-1]
    assert entry["detail"]["userProject"] == emulator.state.project_number


def test_a_forged_refresh_token_gets_no_cached_token(emulator: EmulatorClient, tmp_path: Path) -> None:
    """Every public field of a signed-in person's file, with a guessed refresh token, reaches STS
    (and is refused) instead of the cache."""
    workforce = Workforce(emulator)
    real = load_credentials(write(tmp_path, workforce.user_file))
    assert real.access_token().value
    forged = load_credentials(write(tmp_path, {**workforce.user_file, "refresh_token": "wf1.guessed"}, "forged.json"))
    assert forged.identity() != real.identity()
    with pytest.raises(TokenRequestError, match="invalid_grant"):
        forged.access_token()


def test_verbose_prints_no_workforce_secret(emulator: EmulatorClient, tmp_path: Path) -> None:
    workforce = Workforce(emulator)
    path = write(tmp_path, workforce.user_file)
    env = {"GCPTOKEN_EMULATOR_HOST": emulator.host_port}
    result = gcptoken("access", "--credentials", str(path), "-v", env=env)
    assert result.code == 0, result.err
    for secret in (workforce.user_file["refresh_token"], workforce.user_file["client_secret"], result.out.strip()):
        assert secret not in result.err
    assert "grant=refresh_token" in result.err
