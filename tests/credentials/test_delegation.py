"""Domain-wide delegation against the emulator over real HTTP: a key file's assertion with ``sub``,
the same signed keylessly through IAM signJwt (metadata server, impersonation), the emulator's
grants (client id → scopes, admin API) and Google's refusals; tokeninfo shows the user."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gcptoken import (
    ImpersonatedCredentials,
    InvalidArgumentError,
    MetadataCredentials,
    ServiceAccountCredentials,
    TokenRequestError,
    load_credentials,
)
from gcptoken.credentials.service_account import ServiceAccountKey
from gcptoken.emulator.admin.delegation import grant_delegation
from gcptoken.emulator.oauth2.delegation import UNAUTHORIZED_CLIENT
from gcptoken.emulator.state import persistence
from gcptoken.testing import EmulatorClient
from gcptoken.verify.tokeninfo import tokeninfo
from tests.cli.test_cli import gcptoken

USER = "alice@example.com"
GMAIL = "https://www.googleapis.com/auth/gmail.readonly"
DRIVE = "https://www.googleapis.com/auth/drive"


@pytest.fixture(autouse=True)
def _at_the_emulator(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    emulator.state.create_user(USER)


@pytest.fixture(autouse=True)
def _grants_restored(emulator: EmulatorClient) -> Iterator[None]:
    """The session's emulator is shared: the Token Creator grants made here end with the test."""
    saved = {email: set(members) for email, members in emulator.state.token_creators.items()}
    yield
    with emulator.state.lock:
        emulator.state.token_creators = saved


def assert_users_token(value: str, scopes: list[str]) -> None:
    info = tokeninfo(value)
    assert info["email"] == USER and info["scope"].split() == scopes


def test_a_key_file_with_a_subject(emulator: EmulatorClient, key_path: Path, key_info: dict[str, str]) -> None:
    key = ServiceAccountKey.from_info(key_info, "test")
    delegated = ServiceAccountCredentials(key, subject=USER)
    with pytest.raises(TokenRequestError) as refused:  # no grant yet
        delegated.access_token([GMAIL])
    assert (refused.value.status, refused.value.error, refused.value.description) == (
        401,
        "unauthorized_client",
        UNAUTHORIZED_CLIENT,
    )
    grant_delegation(emulator.state, key_info["client_email"], [GMAIL])
    token = delegated.access_token([GMAIL])
    assert_users_token(token.value, [GMAIL])
    (assertion,) = [e for e in emulator.token_requests_by(key_info["client_email"]) if e["status"] == 200]
    assert assertion["detail"]["assertion"]["claims"]["sub"] == USER
    # The account's own token is another cache entry: the subject is part of the identity.
    own = ServiceAccountCredentials(key).access_token([GMAIL])
    assert own.value != token.value and tokeninfo(own.value)["email"] == key_info["client_email"]
    assert load_credentials_with_subject(key_info, emulator).access_token([GMAIL]) == token  # cached
    with pytest.raises(TokenRequestError) as outside:  # a scope the admin did not grant
        delegated.access_token([GMAIL, DRIVE])
    assert outside.value.error == "unauthorized_client"
    with pytest.raises(TokenRequestError) as nobody:
        ServiceAccountCredentials(key, subject="nobody@example.com").access_token([GMAIL])
    assert (nobody.value.error, nobody.value.description) == ("invalid_grant", "Invalid email or User ID")
    with pytest.raises(InvalidArgumentError, match="access tokens"):
        delegated.id_token("https://svc.a.run.app")


def load_credentials_with_subject(key_info: dict[str, str], emulator: EmulatorClient) -> ServiceAccountCredentials:
    return ServiceAccountCredentials(ServiceAccountKey.from_info(key_info, "again"), subject=USER)


def test_the_metadata_server_delegates_through_iam_signjwt(emulator: EmulatorClient) -> None:
    email = emulator.state.default_account.email
    emulator.state.grant_token_creator(email, f"serviceAccount:{email}")
    grant_delegation(emulator.state, email, [GMAIL])
    sign_jwt_path = f"/v1/projects/-/serviceAccounts/{email}:signJwt"
    signed_before = len(emulator.requests(sign_jwt_path))
    delegated = MetadataCredentials(host=emulator.host_port).with_subject(USER)
    assert_users_token(delegated.access_token([GMAIL]).value, [GMAIL])
    assert_users_token(asyncio.run(delegated.access_token_async([GMAIL], use_cache=False)).value, [GMAIL])
    assert len(emulator.requests(sign_jwt_path)) == signed_before + 2  # keyless: IAM signed both assertions


def test_impersonated_credentials_delegate_as_their_target(emulator: EmulatorClient, key_path: Path) -> None:
    source = load_credentials(key_path)
    target = emulator.new_key("delegating")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{source.key.client_email}")  # type: ignore[attr-defined]
    grant_delegation(emulator.state, emulator.state.service_accounts[target].unique_id, [GMAIL, DRIVE])
    delegated = ImpersonatedCredentials(source, target).with_subject(USER)
    assert_users_token(delegated.access_token([DRIVE]).value, [DRIVE])
    (signed,) = emulator.requests(f"/v1/projects/-/serviceAccounts/{target}:signJwt")
    assert signed["status"] == 200


def test_the_admin_api_and_the_state_file(emulator: EmulatorClient) -> None:
    email = emulator.new_key("admin-granted")["client_email"]
    client_id = emulator.state.service_accounts[email].unique_id
    url = f"{emulator.url}/emulator/v1/domainWideDelegation"
    put = httpx.put(f"{url}/{email}", json={"scopes": [GMAIL]})
    assert put.status_code == 200
    assert {"clientId": client_id, "serviceAccount": email, "scopes": [GMAIL]} in put.json()["grants"]
    assert httpx.put(f"{url}/{client_id}", json={"scopes": ["not a scope"]}).status_code == 400
    assert httpx.put(f"{url}/not-a-client", json={"scopes": [GMAIL]}).status_code == 400
    saved = persistence.state_from_bytes(json.dumps(persistence.to_json(emulator.state)).encode(), "state.json")
    assert saved.delegation_grants[client_id] == (GMAIL,)
    assert httpx.delete(f"{url}/{client_id}").status_code == 200
    assert client_id not in {g["clientId"] for g in httpx.get(url).json()["grants"]}


def test_the_command_line(emulator: EmulatorClient, key_path: Path, key_info: dict[str, str]) -> None:
    grant_delegation(emulator.state, key_info["client_email"], [GMAIL])
    emulator.state.create_user("bob@example.com")
    env = {"GCPTOKEN_EMULATOR_HOST": emulator.host_port, "GOOGLE_APPLICATION_CREDENTIALS": str(key_path)}
    tokens: dict[str, str] = {}
    for user in (USER, "bob@example.com", USER):
        printed = gcptoken("access", "--scopes", GMAIL, "--subject", user, env=env)
        assert printed.code == 0, printed.err
        assert tokeninfo(printed.out.strip())["email"] == user  # the disk cache never mixes users up
        tokens.setdefault(user, printed.out)
        assert tokens[user] == printed.out  # …and serves each its own
    own = gcptoken("access", "--scopes", GMAIL, env=env)
    assert tokeninfo(own.out.strip())["email"] == key_info["client_email"]
    refused = gcptoken("access", "--scopes", DRIVE, "--subject", USER, env=env)
    assert (refused.code, refused.out) == (1, "")
    assert "unauthorized_client" in refused.err and refused.err.count("\n") == 1
    bad = gcptoken("access", "--subject", "not-an-email", env=env)
    assert (bad.code, bad.out) == (2, "")


def test_the_emulator_answers_delegation_as_google(emulator: EmulatorClient, key_info: dict[str, str]) -> None:
    email = key_info["client_email"]
    client_id = emulator.state.service_accounts[email].unique_id
    url = f"{emulator.url}/emulator/v1/domainWideDelegation/{email}"
    put = httpx.put(url, json={"scopes": [f"{GMAIL} {DRIVE}"]})  # one entry, two scopes: split
    assert put.status_code == 200 and emulator.state.delegation_grants[client_id] == (GMAIL, DRIVE)
    delegated = ServiceAccountCredentials(ServiceAccountKey.from_info(key_info, "test"), subject=USER.upper())
    token = delegated.access_token([GMAIL]).value  # Google's addresses are case-insensitive
    info = tokeninfo(token)
    assert info["email"] == USER  # the user as the domain knows them
    assert info["azp"] == info["aud"] == client_id  # the service account's OAuth client, not a desktop one
