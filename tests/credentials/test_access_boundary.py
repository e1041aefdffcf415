"""Regional access boundaries through AccessTokenAuth (httpx sync and async, requests): the flag
that turns the lookup on, one lookup per credential for many calls, the header's value, and which
credential kinds look up which resource at the emulator."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from gcptoken import ImpersonatedCredentials, MetadataCredentials, load_credentials
from gcptoken.credentials import Credentials
from gcptoken.credentials.access_boundary import ENABLE_ENV, allowed_locations, lookup_enabled
from gcptoken.endpoints import EMULATED_UNIVERSE
from gcptoken.integrations import httpx_auth, requests_auth
from gcptoken.testing import EmulatorClient
from tests import recording_api
from tests.credentials.test_workforce import Workforce
from tests.emulator.sts.test_federation import Federation
from tests.recording_api import Api

ADMIN = "/emulator/v1/allowedLocations"


api = recording_api.api


@pytest.fixture
def enabled(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> EmulatorClient:
    """The lookup switched on, and iamcredentials.googleapis.com at the emulator."""
    monkeypatch.setenv(ENABLE_ENV, "true")
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    return emulator


def set_boundary(emulator: EmulatorClient, name: str, locations: list[str]) -> str:
    answer = httpx.put(f"{emulator.url}{ADMIN}/{name}", json={"locations": locations})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["encodedLocations"])


def lookups(emulator: EmulatorClient, name: str) -> list[dict[str, Any]]:
    return emulator.requests(f"/v1/{name}/allowedLocations")


def test_every_call_carries_the_boundary_from_one_lookup(
    enabled: EmulatorClient, api: tuple[Api, str], key_path: Path
) -> None:
    recorder, url = api
    email = json.loads(key_path.read_text())["client_email"]
    name = f"projects/-/serviceAccounts/{email}"
    value = set_boundary(enabled, name, ["us-central1", "us-east1"])
    credentials = load_credentials(key_path)
    auth = httpx_auth.AccessTokenAuth(credentials)
    with httpx.Client(auth=auth) as client:
        for _ in range(3):
            assert client.get(url).status_code == 200
            assert recorder.seen[-1]["x-allowed-locations"] == value

    async def async_calls() -> None:
        async with httpx.AsyncClient(auth=auth) as client:
            for _ in range(2):
                assert (await client.get(url)).status_code == 200
                assert recorder.seen[-1]["x-allowed-locations"] == value

    asyncio.run(async_calls())
    assert requests.get(url, auth=requests_auth.AccessTokenAuth(credentials), timeout=10).status_code == 200
    assert recorder.seen[-1]["x-allowed-locations"] == value
    (lookup,) = lookups(enabled, name)  # one for the credential, whichever client calls
    assert lookup["status"] == 200 and lookup["detail"]["caller"] == f"serviceAccount:{email}"
    # Looked up with the credential's own access token: the one the calls carry.
    token = recorder.seen[-1]["authorization"].removeprefix("Bearer ")
    assert enabled.state.access_tokens[token].email == email


@pytest.mark.parametrize("flavour", ["httpx", "httpx-async", "requests"])
def test_each_client_looks_up_on_its_first_call(
    enabled: EmulatorClient, api: tuple[Api, str], key_path: Path, flavour: str
) -> None:
    recorder, url = api
    credentials = load_credentials(key_path)
    email = json.loads(key_path.read_text())["client_email"]
    if flavour == "httpx":
        httpx.get(url, auth=httpx_auth.AccessTokenAuth(credentials))
    elif flavour == "requests":
        requests.get(url, auth=requests_auth.AccessTokenAuth(credentials), timeout=10)
    else:

        async def call() -> None:
            async with httpx.AsyncClient(auth=httpx_auth.AccessTokenAuth(credentials)) as client:
                await client.get(url)

        asyncio.run(call())
    assert recorder.seen[-1]["x-allowed-locations"] == "0x0"  # the no-op boundary is sent too
    assert len(lookups(enabled, f"projects/-/serviceAccounts/{email}")) == 1


@pytest.mark.parametrize("value", [None, "", "false", "0", "enabled", "no"])
def test_off_unless_the_flag_says_so(
    emulator: EmulatorClient, api: tuple[Api, str], key_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    recorder, url = api
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    if value is None:
        monkeypatch.delenv(ENABLE_ENV, raising=False)
    else:
        monkeypatch.setenv(ENABLE_ENV, value)
    credentials = load_credentials(key_path)
    assert httpx.get(url, auth=httpx_auth.AccessTokenAuth(credentials)).status_code == 200
    assert "x-allowed-locations" not in recorder.seen[-1]
    assert requests.get(url, auth=requests_auth.AccessTokenAuth(credentials), timeout=10).status_code == 200
    assert "x-allowed-locations" not in recorder.seen[-1]
    email = json.loads(key_path.read_text())["client_email"]
    assert lookups(emulator, f"projects/-/serviceAccounts/{email}") == []


@pytest.mark.parametrize("value", ["1", "true", " TRUE ", "Yes", "y", "t", "on"])
def test_the_flag_takes_google_auths_truthy_values(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENABLE_ENV, value)
    assert lookup_enabled()


def test_concurrent_first_calls_make_one_lookup(enabled: EmulatorClient, api: tuple[Api, str], key_path: Path) -> None:
    recorder, url = api
    email = json.loads(key_path.read_text())["client_email"]
    credentials = load_credentials(key_path)
    credentials.access_token()  # the token first, so the calls race only for the lookup
    auth = httpx_auth.AccessTokenAuth(credentials)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: httpx.get(url, auth=auth).status_code, range(16)))
    assert statuses == [200] * 16
    assert len(lookups(enabled, f"projects/-/serviceAccounts/{email}")) == 1
    assert httpx.get(url, auth=auth).status_code == 200 and recorder.seen[-1]["x-allowed-locations"] == "0x0"


def test_a_header_the_caller_set_is_left_alone(enabled: EmulatorClient, api: tuple[Api, str], key_path: Path) -> None:
    recorder, url = api
    auth = httpx_auth.AccessTokenAuth(load_credentials(key_path))
    httpx.get(url, auth=auth, headers={"x-allowed-locations": "0xCAFE"})
    assert recorder.seen[-1]["x-allowed-locations"] == "0xCAFE"


def test_a_regional_endpoint_starts_no_lookup_but_gets_a_known_boundary(
    enabled: EmulatorClient, key_path: Path
) -> None:
    """google-auth's credentials.py: _is_regional_endpoint stops the lookup; apply_headers still
    sends what is cached."""
    email = json.loads(key_path.read_text())["client_email"]
    credentials = load_credentials(key_path)
    token = credentials.access_token().value
    regional = "https://pubsub.us-central1.rep.googleapis.com/v1/projects/p/topics"
    assert allowed_locations(credentials, token, regional) is None
    assert lookups(enabled, f"projects/-/serviceAccounts/{email}") == []
    assert allowed_locations(credentials, token, "https://pubsub.googleapis.com/v1/projects/p/topics") == "0x0"
    assert allowed_locations(credentials, token, regional) == "0x0"
    assert len(lookups(enabled, f"projects/-/serviceAccounts/{email}")) == 1


def header_for(credentials: Credentials, api: tuple[Api, str]) -> str | None:
    recorder, url = api
    assert httpx.get(url, auth=httpx_auth.AccessTokenAuth(credentials)).status_code == 200
    return recorder.seen[-1].get("x-allowed-locations")


def test_an_impersonated_account_looks_up_its_target(
    enabled: EmulatorClient, api: tuple[Api, str], key_path: Path
) -> None:
    source = json.loads(key_path.read_text())["client_email"]
    target = enabled.new_key("rab-target")["client_email"]
    enabled.state.grant_token_creator(target, f"serviceAccount:{source}")
    value = set_boundary(enabled, f"projects/-/serviceAccounts/{target}", ["europe-west1"])
    credentials = ImpersonatedCredentials(load_credentials(key_path), target)
    assert header_for(credentials, api) == value
    (lookup,) = lookups(enabled, f"projects/-/serviceAccounts/{target}")
    assert lookup["detail"]["caller"] == f"serviceAccount:{target}"
    assert lookups(enabled, f"projects/-/serviceAccounts/{source}") == []


def test_a_workload_identity_looks_up_its_pool(enabled: EmulatorClient, api: tuple[Api, str], tmp_path: Path) -> None:
    federation = Federation(enabled)
    (tmp_path / "subject-token").write_text(federation.subject_token())
    info = {
        "type": "external_account",
        "audience": federation.audience,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "https://sts.googleapis.com/v1/token",
        "credential_source": {"file": str(tmp_path / "subject-token")},
    }
    (tmp_path / "ext.json").write_text(json.dumps(info))
    pool = federation.pool_resource.removeprefix("//iam.googleapis.com/")
    value = set_boundary(enabled, pool, ["us-west1", "us-west2"])
    assert header_for(load_credentials(tmp_path / "ext.json"), api) == value
    (lookup,) = lookups(enabled, pool)
    assert lookup["detail"]["caller"].startswith(f"principal:{federation.pool_resource}/subject/")


def test_a_workforce_user_looks_up_its_pool(enabled: EmulatorClient, api: tuple[Api, str], tmp_path: Path) -> None:
    workforce = Workforce(enabled)
    (tmp_path / "wf-user.json").write_text(json.dumps(workforce.user_file))
    pool = f"locations/global/workforcePools/{workforce.pool}"
    value = set_boundary(enabled, pool, ["europe-west4"])
    assert header_for(load_credentials(tmp_path / "wf-user.json"), api) == value
    assert len(lookups(enabled, pool)) == 1


def test_the_metadata_servers_account_is_looked_up(enabled: EmulatorClient, api: tuple[Api, str]) -> None:
    default = enabled.state.default_account.email
    before = len(lookups(enabled, f"projects/-/serviceAccounts/{default}"))
    assert header_for(MetadataCredentials(host=enabled.host_port), api) is not None
    (lookup,) = lookups(enabled, f"projects/-/serviceAccounts/{default}")[before:]
    assert lookup["detail"]["caller"] == f"serviceAccount:{default}"


def test_kinds_without_a_boundary_never_look_up(enabled: EmulatorClient, api: tuple[Api, str], tmp_path: Path) -> None:
    """google-auth: user credentials (oauth2/credentials.py) and other universes than googleapis.com
    (credentials.py, _is_regional_access_boundary_lookup_required) have none."""
    user = tmp_path / "user.json"
    user.write_text(json.dumps(enabled.state.issue_refresh_token("rab-user@example.com")))
    email = enabled.new_key("rab-uni")["client_email"]
    universe = tmp_path / "universe-key.json"
    universe.write_text(json.dumps(enabled.state.create_key(email, EMULATED_UNIVERSE)))
    every_lookup = [e for e in enabled.requests() if e["path"].endswith("/allowedLocations")]
    for path in (user, universe):
        assert header_for(load_credentials(path), api) is None
    assert [e for e in enabled.requests() if e["path"].endswith("/allowedLocations")] == every_lookup
