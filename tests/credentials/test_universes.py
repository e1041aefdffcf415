"""Universe domains (keys, external accounts, the metadata server) against the emulator's second
universe, and quota projects as ``x-goog-user-project`` through AccessTokenAuth (httpx, requests)."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from gcptoken import CredentialsError, MetadataCredentials, Verifier, load_credentials
from gcptoken.credentials.impersonated import ImpersonatedCredentials
from gcptoken.endpoints import EMULATED_UNIVERSE
from gcptoken.integrations import httpx_auth, requests_auth
from gcptoken.jose import compact, jws
from gcptoken.testing import EmulatorClient
from tests import recording_api
from tests.cli.test_cli import gcptoken
from tests.emulator.sts.test_federation import Federation
from tests.recording_api import Api

AUD = "https://svc-universe.a.run.app"


@pytest.fixture
def universe_key(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    email = emulator.new_key("uni")["client_email"]
    path = tmp_path / "universe-key.json"
    path.write_text(json.dumps(emulator.state.create_key(email, EMULATED_UNIVERSE)))
    return path


def test_a_key_outside_googleapis_signs_its_own_access_tokens(emulator: EmulatorClient, universe_key: Path) -> None:
    info = json.loads(universe_key.read_text())
    emulator.state.clear_requests()
    token = load_credentials(universe_key).access_token(["https://www.googleapis.com/auth/cloud-platform"])
    parsed = compact.parse(token.value)
    public = emulator.state.service_accounts[info["client_email"]].keys[info["private_key_id"]]
    parsed.verify_with(public)
    assert parsed.claims["iss"] == parsed.claims["sub"] == info["client_email"]
    assert parsed.claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert "aud" not in parsed.claims
    assert emulator.requests() == []  # no token endpoint in that universe: nothing was called


def test_a_key_outside_googleapis_gets_id_tokens_from_iam(emulator: EmulatorClient, universe_key: Path) -> None:
    email = json.loads(universe_key.read_text())["client_email"]
    token = load_credentials(universe_key).id_token(AUD)
    claims = Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs").verify(token.value)
    assert claims["email"] == email and claims["azp"] == email
    (call,) = [e for e in emulator.requests() if e["path"].endswith(f"{email}:generateIdToken")]
    assert call["status"] == 200
    async_token = asyncio.run(load_credentials(universe_key).id_token_async(AUD, use_cache=False))
    assert Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs").verify(async_token.value)["email"] == email


def test_a_self_signed_jwt_cannot_act_as_another_account(emulator: EmulatorClient, universe_key: Path) -> None:
    other = emulator.new_key("uni-other")["client_email"]
    credentials = ImpersonatedCredentials.from_chain(load_credentials(universe_key), other)
    assert credentials.iam_base.startswith(f"https://iamcredentials.{EMULATED_UNIVERSE}/")
    from gcptoken import TokenRequestError

    with pytest.raises(TokenRequestError, match="403"):
        credentials.id_token(AUD)
    emulator.state.grant_token_creator(other, f"serviceAccount:{json.loads(universe_key.read_text())['client_email']}")
    claims = Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs").verify(credentials.id_token(AUD).value)
    assert claims["sub"] == emulator.state.service_accounts[other].unique_id


def test_a_forged_self_signed_jwt_is_unauthenticated(emulator: EmulatorClient, universe_key: Path) -> None:
    info = json.loads(universe_key.read_text())
    stranger = jws.generate_rsa_key()
    claims = {"iss": info["client_email"], "sub": info["client_email"], "scope": "https://www.googleapis.com/auth/iam"}
    import time

    now = int(time.time())
    forged = jws.encode({**claims, "iat": now, "exp": now + 600}, stranger, kid=info["private_key_id"])
    url = f"{emulator.url}/v1/projects/-/serviceAccounts/{info['client_email']}:generateIdToken"
    answer = httpx.post(url, json={"audience": AUD}, headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401


def test_cli_in_another_universe(emulator: EmulatorClient, universe_key: Path) -> None:
    env = {"GCPTOKEN_EMULATOR_HOST": emulator.host_port}
    result = gcptoken("id", AUD, "--credentials", str(universe_key), env=env)
    assert result.code == 0, result.err
    assert Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs").verify(result.out.strip())
    access = gcptoken("access", "--credentials", str(universe_key), env=env)
    assert access.code == 0 and compact.parse(access.out.strip()).claims["scope"]
    whoami = gcptoken("whoami", "--credentials", str(universe_key), env=env)
    assert EMULATED_UNIVERSE in whoami.out, whoami.out


def test_google_auth_agrees_on_the_universe_id_token_flow(emulator: EmulatorClient, universe_key: Path) -> None:
    """google-auth's IDTokenCredentials in a non-default universe take the same IAM route, the
    endpoint aside (the emulated universe's hostnames do not resolve)."""
    from google.auth.transport.requests import Request as GoogleRequest

    service_account: Any = importlib.import_module("google.oauth2.service_account")
    info = json.loads(universe_key.read_text())
    credentials = service_account.IDTokenCredentials.from_service_account_info(info, target_audience=AUD)
    credentials._iam_id_token_endpoint = f"{emulator.url}/v1/projects/-/serviceAccounts/{{}}:generateIdToken"
    credentials.refresh(GoogleRequest())
    claims = Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs").verify(credentials.token)
    assert claims["email"] == info["client_email"]


def test_external_accounts_follow_their_universe(
    emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    federation = Federation(emulator)
    subject_token = tmp_path / "subject-token"
    subject_token.write_text(federation.subject_token())
    info = {
        "type": "external_account",
        "audience": federation.audience,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "credential_source": {"file": str(subject_token)},
        "universe_domain": EMULATED_UNIVERSE,
    }
    path = tmp_path / "ext.json"
    path.write_text(json.dumps(info))
    credentials = load_credentials(path)
    assert credentials.universe_domain == EMULATED_UNIVERSE
    emulator.state.clear_requests()
    assert credentials.access_token().value
    assert [e["path"] for e in emulator.requests()] == ["/v1/token"]  # sts.UNIVERSE, served by the emulator
    path.write_text(json.dumps({**info, "universe_domain": "bad domain"}))
    with pytest.raises(CredentialsError, match="universe_domain is not a domain name"):
        load_credentials(path)


def test_the_metadata_servers_universe(emulator: EmulatorClient) -> None:
    state = emulator.state
    credentials = MetadataCredentials(host=emulator.host_port)
    assert credentials.fetch_universe_domain() == "googleapis.com"
    state.instance = dataclasses.replace(state.instance, universe_domain=EMULATED_UNIVERSE)
    try:
        assert credentials.fetch_universe_domain() == EMULATED_UNIVERSE
        assert credentials.universe_domain == EMULATED_UNIVERSE
    finally:
        state.instance = dataclasses.replace(state.instance, universe_domain="googleapis.com")


# -- quota projects -----------------------------------------------------------------------------


api = recording_api.api


def test_access_token_auth_sends_the_files_quota_project(
    emulator: EmulatorClient, api: tuple[Api, str], tmp_path: Path
) -> None:
    recorder, url = api
    user = {**emulator.state.issue_refresh_token("quota-user@example.com"), "quota_project_id": "billing-proj"}
    path = tmp_path / "user.json"
    path.write_text(json.dumps(user))
    credentials = load_credentials(path)
    assert httpx.get(url, auth=httpx_auth.AccessTokenAuth(credentials)).status_code == 200
    headers = recorder.seen[-1]
    assert headers["x-goog-user-project"] == "billing-proj"
    assert (
        emulator.state.access_tokens[headers["authorization"].removeprefix("Bearer ")].email == "quota-user@example.com"
    )
    assert requests.get(url, auth=requests_auth.AccessTokenAuth(credentials), timeout=10).status_code == 200
    assert recorder.seen[-1]["x-goog-user-project"] == "billing-proj"


def test_quota_project_precedence(
    emulator: EmulatorClient, api: tuple[Api, str], key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder, url = api
    info = json.loads(key_path.read_text())
    key_path.write_text(json.dumps({**info, "quota_project_id": "from-file"}))
    credentials = load_credentials(key_path)
    monkeypatch.setenv("GOOGLE_CLOUD_QUOTA_PROJECT", "from-env")
    httpx.get(url, auth=httpx_auth.AccessTokenAuth(credentials))
    assert recorder.seen[-1]["x-goog-user-project"] == "from-env"
    httpx.get(url, auth=httpx_auth.AccessTokenAuth(credentials, quota_project="explicit"))
    assert recorder.seen[-1]["x-goog-user-project"] == "explicit"
    httpx.get(url, headers={"x-goog-user-project": "callers-own"}, auth=httpx_auth.AccessTokenAuth(credentials))
    assert recorder.seen[-1]["x-goog-user-project"] == "callers-own"
    monkeypatch.delenv("GOOGLE_CLOUD_QUOTA_PROJECT")
    key_path.write_text(json.dumps(info))
    httpx.get(url, auth=httpx_auth.AccessTokenAuth(load_credentials(key_path)))
    assert "x-goog-user-project" not in recorder.seen[-1]


def test_access_token_auth_retries_once_with_a_fresh_token(
    emulator: EmulatorClient, api: tuple[Api, str], key_path: Path
) -> None:
    recorder, url = api
    credentials = load_credentials(key_path)
    stale = credentials.access_token(["https://www.googleapis.com/auth/cloud-platform"]).value
    recorder.refuse.add(stale)
    assert httpx.get(url, auth=httpx_auth.AccessTokenAuth(credentials)).status_code == 200
    assert recorder.seen[-2]["authorization"] == f"Bearer {stale}"
    assert recorder.seen[-1]["authorization"] != f"Bearer {stale}"

    async def call() -> int:
        async with httpx.AsyncClient(auth=httpx_auth.AccessTokenAuth(credentials)) as client:
            return (await client.get(url)).status_code

    assert asyncio.run(call()) == 200
    fresh = recorder.seen[-1]["authorization"].removeprefix("Bearer ")
    recorder.refuse.add(fresh)
    assert requests.get(url, auth=requests_auth.AccessTokenAuth(credentials), timeout=10).status_code == 200
    assert recorder.seen[-1]["authorization"] not in (f"Bearer {stale}", f"Bearer {fresh}")
