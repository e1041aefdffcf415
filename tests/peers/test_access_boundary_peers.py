"""google-auth, unchanged, with its regional access boundary lookup switched on
(GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED): its service-account key,
impersonated and identity-pool credentials look their boundary up at the emulator and send the
emulator's ``encodedLocations`` as ``x-allowed-locations``.

google-auth builds the lookup URLs in google/auth/_regional_access_boundary_utils.py with the host
``iamcredentials.googleapis.com`` (``_get_domain()``; no setting moves it), so the tests wrap its
three URL builders, read at call time through the module, to put the emulator's address in front
of the paths google-auth makes; nothing else is changed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.auth import _regional_access_boundary_utils as rab_utils
from google.auth import identity_pool, impersonated_credentials
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account as google_service_account

from gcptoken.credentials.access_boundary import ENABLE_ENV
from gcptoken.testing import EmulatorClient
from tests import recording_api
from tests.emulator.sts.test_federation import JWT_TYPE, Federation
from tests.recording_api import Api

from .test_impersonation_peers import point_iam_at

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_IAM = "https://iamcredentials.googleapis.com"


api = recording_api.api


@pytest.fixture
def lookups_at_emulator(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> EmulatorClient:
    monkeypatch.setenv(ENABLE_ENV, "true")
    for name in (
        "get_service_account_rab_endpoint",
        "get_workload_identity_pool_rab_endpoint",
        "get_workforce_pool_rab_endpoint",
    ):
        monkeypatch.setattr(rab_utils, name, _at(emulator.url, getattr(rab_utils, name)))
    return emulator


def _at(url: str, build: Callable[..., str]) -> Callable[..., str]:
    def built(*args: str) -> str:
        google = build(*args)
        assert google.startswith(f"{GOOGLE_IAM}/v1/"), google
        return url + google.removeprefix(GOOGLE_IAM)

    return built


def set_boundary(emulator: EmulatorClient, name: str, locations: list[str]) -> str:
    answer = httpx.put(f"{emulator.url}/emulator/v1/allowedLocations/{name}", json={"locations": locations})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["encodedLocations"])


def calls_until_the_boundary_is_sent(credentials: Any, api: tuple[Api, str], expected: str) -> int:
    """Calls through google-auth's AuthorizedSession until one carries ``x-allowed-locations``
    (google-auth looks up in a background thread after the first call); how many it took."""
    recorder, url = api
    deadline = time.monotonic() + 15
    with AuthorizedSession(credentials) as session:
        for calls in range(1, 1000):
            assert session.get(url, timeout=10).status_code == 200
            sent = recorder.seen[-1].get("x-allowed-locations")
            if sent is not None:
                assert sent == expected
                return calls
            assert time.monotonic() < deadline, "google-auth never sent x-allowed-locations"
            time.sleep(0.05)
    raise AssertionError("unreachable")


def lookups(emulator: EmulatorClient, name: str) -> list[dict[str, Any]]:
    return emulator.requests(f"/v1/{name}/allowedLocations")


def test_a_service_account_key_sends_the_emulators_boundary(
    lookups_at_emulator: EmulatorClient, key_info: dict[str, str], api: tuple[Api, str]
) -> None:
    emulator = lookups_at_emulator
    email = key_info["client_email"]
    name = f"projects/-/serviceAccounts/{email}"
    value = set_boundary(emulator, name, ["us-central1", "europe-west1"])
    credentials = google_service_account.Credentials.from_service_account_info(key_info, scopes=[CLOUD_PLATFORM])
    assert calls_until_the_boundary_is_sent(credentials, api, value) >= 2  # the first call went without
    assert credentials.regional_access_boundary == value
    (lookup,) = lookups(emulator, name)
    assert lookup["method"] == "GET" and lookup["status"] == 200
    assert lookup["detail"] == {
        "allowedLocations": name,
        "caller": f"serviceAccount:{email}",
        "encodedLocations": value,
    }


def test_blocking_mode_sends_the_no_op_boundary_on_the_first_call(
    lookups_at_emulator: EmulatorClient, key_info: dict[str, str], api: tuple[Api, str]
) -> None:
    """gcloud's mode (``_set_blocking_regional_access_boundary_lookup``), the one gcptoken follows."""
    credentials = google_service_account.Credentials.from_service_account_info(key_info, scopes=[CLOUD_PLATFORM])
    credentials._set_blocking_regional_access_boundary_lookup()
    assert calls_until_the_boundary_is_sent(credentials, api, "0x0") == 1
    assert len(lookups(lookups_at_emulator, f"projects/-/serviceAccounts/{key_info['client_email']}")) == 1


def test_impersonated_credentials_look_up_the_target(
    lookups_at_emulator: EmulatorClient, key_info: dict[str, str], api: tuple[Api, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = lookups_at_emulator
    point_iam_at(monkeypatch, emulator.url)
    target = emulator.new_key("rab-peer-target")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")
    value = set_boundary(emulator, f"projects/-/serviceAccounts/{target}", ["asia-east1"])
    source = google_service_account.Credentials.from_service_account_info(key_info, scopes=[CLOUD_PLATFORM])
    credentials = impersonated_credentials.Credentials(
        source_credentials=source, target_principal=target, target_scopes=[CLOUD_PLATFORM]
    )
    calls_until_the_boundary_is_sent(credentials, api, value)
    (lookup,) = lookups(emulator, f"projects/-/serviceAccounts/{target}")
    assert lookup["detail"]["caller"] == f"serviceAccount:{target}"


def test_an_identity_pool_credential_looks_up_its_pool(
    lookups_at_emulator: EmulatorClient, api: tuple[Api, str], tmp_path: Path
) -> None:
    emulator = lookups_at_emulator
    federation = Federation(emulator)
    (tmp_path / "subject-token").write_text(federation.subject_token())
    info = {
        "type": "external_account",
        "audience": federation.audience,
        "subject_token_type": JWT_TYPE,
        "token_url": f"{emulator.url}/v1/token",
        "credential_source": {"file": str(tmp_path / "subject-token")},
    }
    pool = federation.pool_resource.removeprefix("//iam.googleapis.com/")
    value = set_boundary(emulator, pool, ["us-east4", "us-west1"])
    credentials = identity_pool.Credentials.from_info(info, scopes=[CLOUD_PLATFORM])
    calls_until_the_boundary_is_sent(credentials, api, value)
    (lookup,) = lookups(emulator, pool)
    assert lookup["detail"]["caller"].startswith(f"principal:{federation.pool_resource}/subject/")


def test_gcptoken_and_google_auth_send_the_same_header(
    lookups_at_emulator: EmulatorClient,
    key_info: dict[str, str],
    key_path: Path,
    api: tuple[Api, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gcptoken import load_credentials
    from gcptoken.integrations.httpx_auth import AccessTokenAuth

    emulator = lookups_at_emulator
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    value = set_boundary(emulator, f"projects/-/serviceAccounts/{key_info['client_email']}", ["me-west1"])
    credentials = google_service_account.Credentials.from_service_account_info(key_info, scopes=[CLOUD_PLATFORM])
    calls_until_the_boundary_is_sent(credentials, api, value)
    recorder, url = api
    httpx.get(url, auth=AccessTokenAuth(load_credentials(key_path)))
    assert recorder.seen[-1]["x-allowed-locations"] == value
