"""The emulator's IAM Credentials ``allowedLocations`` lookups (service accounts, workload identity
pools, workforce pools): who may look up, the default answer, the admin API that sets boundaries,
and their persistence with --state-dir."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.iam.access_boundaries import REGIONS, encoded
from gcptoken.emulator.state import persistence
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.testing import EmulatorClient
from tests.credentials.test_workforce import Workforce
from tests.emulator.sts.test_federation import Federation

CLOUD = ("https://www.googleapis.com/auth/cloud-platform",)
NO_OP = {"locations": [], "encodedLocations": "0x0"}
ADMIN = "/emulator/v1/allowedLocations"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def account_token(emulator: EmulatorClient, email: str) -> str:
    return emulator.state.issue_access_token(emulator.state.service_accounts[email], CLOUD).token


def sa_lookup(emulator: EmulatorClient, email: str, token: str | None, project: str = "-") -> httpx.Response:
    url = f"{emulator.url}/v1/projects/{project}/serviceAccounts/{email}/allowedLocations"
    return httpx.get(url, headers=bearer(token) if token is not None else {})


def admin_put(emulator: EmulatorClient, name: str, body: object) -> httpx.Response:
    return httpx.put(f"{emulator.url}{ADMIN}/{name}", json=body)


def test_a_service_account_without_a_boundary_gets_the_no_op_answer(emulator: EmulatorClient) -> None:
    email = emulator.new_key("rab")["client_email"]
    answer = sa_lookup(emulator, email, account_token(emulator, email))
    assert answer.status_code == 200, answer.text
    assert answer.json() == NO_OP
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    (entry,) = emulator.requests(f"/v1/projects/-/serviceAccounts/{email}/allowedLocations")
    assert entry["detail"] == {
        "allowedLocations": f"projects/-/serviceAccounts/{email}",
        "caller": f"serviceAccount:{email}",
        "encodedLocations": "0x0",
    }


def test_admin_sets_reads_and_unsets_a_service_accounts_boundary(emulator: EmulatorClient) -> None:
    email = emulator.new_key("rab")["client_email"]
    token = account_token(emulator, email)
    name = f"projects/-/serviceAccounts/{email}"
    put = admin_put(emulator, name, {"locations": ["us-central1", "europe-west1", "us-central1"]})
    assert put.status_code == 200, put.text
    value = encoded(["us-central1", "europe-west1"])
    expected = {"locations": ["us-central1", "europe-west1"], "encodedLocations": value}
    assert put.json() == {"name": name, **expected}
    bits = int(value, 16)
    assert bits == (1 << REGIONS.index("us-central1")) | (1 << REGIONS.index("europe-west1"))
    assert sa_lookup(emulator, email, token).json() == expected
    # The project in the name may be the project id as well as "-" (projects/*/serviceAccounts/*).
    assert sa_lookup(emulator, email, token, project=emulator.state.project_id).json() == expected
    assert httpx.get(f"{emulator.url}{ADMIN}/{name}").json() == {"name": name, **expected}
    listed = httpx.get(f"{emulator.url}{ADMIN}").json()
    assert {"name": name, **expected} in listed["allowedLocations"]
    assert listed["default"] == NO_OP and listed["regions"] == list(REGIONS)
    explicit = admin_put(emulator, name, {"locations": ["somewhere-new1"], "encodedLocations": "0xA30"})
    assert explicit.status_code == 200, explicit.text
    assert sa_lookup(emulator, email, token).json() == {"locations": ["somewhere-new1"], "encodedLocations": "0xA30"}
    deleted = httpx.delete(f"{emulator.url}{ADMIN}/{name}")
    assert deleted.json() == {"name": name, **NO_OP}
    assert sa_lookup(emulator, email, token).json() == NO_OP


def test_who_may_look_up_a_service_account(emulator: EmulatorClient) -> None:
    email = emulator.new_key("rab")["client_email"]
    other = emulator.new_key("rab-other")["client_email"]
    unauthenticated = sa_lookup(emulator, email, None)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["status"] == "UNAUTHENTICATED"
    assert sa_lookup(emulator, email, "ya29.not-one-the-emulator-issued").status_code == 401
    expired = emulator.state.issue_access_token(emulator.state.service_accounts[email], CLOUD, lifetime=-1)
    assert sa_lookup(emulator, email, expired.token).status_code == 401
    denied = sa_lookup(emulator, email, account_token(emulator, other))
    assert denied.status_code == 403
    assert denied.json()["error"]["message"] == (
        "Permission 'iam.serviceAccounts.get' denied on resource (or it may not exist)."
    )
    # Token Creator includes iam.serviceAccounts.get.
    emulator.state.grant_token_creator(email, f"serviceAccount:{other}")
    assert sa_lookup(emulator, email, account_token(emulator, other)).json() == NO_OP
    missing = f"nobody@{emulator.state.project_id}.iam.gserviceaccount.com"
    assert sa_lookup(emulator, missing, account_token(emulator, other)).status_code == 403


def test_a_workload_identity_pool_is_looked_up_by_its_own_identities(emulator: EmulatorClient) -> None:
    federation = Federation(emulator)
    outsider = Federation(emulator)
    token = federation.exchange(federation.subject_token()).json()["access_token"]
    pool = federation.pool_resource.removeprefix("//iam.googleapis.com/")
    assert pool == f"projects/{emulator.state.project_number}/locations/global/workloadIdentityPools/{federation.pool}"
    url = f"{emulator.url}/v1/{pool}/allowedLocations"
    assert httpx.get(url, headers=bearer(token)).json() == NO_OP
    assert admin_put(emulator, pool, {"locations": ["asia-east1"]}).status_code == 200
    assert httpx.get(url, headers=bearer(token)).json() == {"locations": ["asia-east1"], "encodedLocations": "0x2"}
    other_pool = outsider.pool_resource.removeprefix("//iam.googleapis.com/")
    denied = httpx.get(f"{emulator.url}/v1/{other_pool}/allowedLocations", headers=bearer(token))
    assert denied.status_code == 403
    assert "iam.workloadIdentityPools.get" in denied.json()["error"]["message"]
    assert httpx.get(url).status_code == 401
    email = emulator.new_key("rab")["client_email"]
    assert httpx.get(url, headers=bearer(account_token(emulator, email))).status_code == 403
    (entry,) = [e for e in emulator.requests(f"/v1/{other_pool}/allowedLocations")]
    assert entry["detail"]["caller"].startswith(f"principal:{federation.pool_resource}/subject/")


def test_a_workforce_pool_is_looked_up_by_its_people(emulator: EmulatorClient) -> None:
    workforce = Workforce(emulator)
    refreshed = httpx.post(
        workforce.user_file["token_url"].replace(emulator.state.base_url, emulator.url),
        data={"grant_type": "refresh_token", "refresh_token": workforce.user_file["refresh_token"]},
        auth=emulator.state.workforce_client,
    )
    assert refreshed.status_code == 200, refreshed.text
    token = refreshed.json()["access_token"]
    pool = f"locations/global/workforcePools/{workforce.pool}"
    url = f"{emulator.url}/v1/{pool}/allowedLocations"
    assert httpx.get(url, headers=bearer(token)).json() == NO_OP
    assert admin_put(emulator, pool, {"locations": ["europe-west3", "europe-west4"]}).status_code == 200
    assert httpx.get(url, headers=bearer(token)).json()["locations"] == ["europe-west3", "europe-west4"]
    other = httpx.get(
        f"{emulator.url}/v1/locations/global/workforcePools/someone-else/allowedLocations", headers=bearer(token)
    )
    assert other.status_code == 403 and "iam.workforcePools.get" in other.text
    email = emulator.new_key("rab")["client_email"]
    assert httpx.get(url, headers=bearer(account_token(emulator, email))).status_code == 403


@pytest.mark.parametrize(
    ("name", "body", "status", "message"),
    [
        ("projects/-/nothing/x", {"locations": []}, 400, "name must be"),
        ("projects/-/serviceAccounts/nobody@nowhere.example", {"locations": []}, 404, "does not exist"),
        ("locations/global/workforcePools/p", {"locations": "us-central1"}, 400, "must be a list"),
        ("locations/global/workforcePools/p", {"locations": [1]}, 400, "must be a list"),
        ("locations/global/workforcePools/p", {"locations": ["mars-north1"]}, 400, "Unknown region 'mars-north1'"),
        ("locations/global/workforcePools/p", {"locations": [], "encodedLocations": "A30"}, 400, "hex bitmap"),
        ("locations/global/workforcePools/p", {"locations": [], "encodedLocations": "0x1\r\nx: y"}, 400, "hex"),
        ("locations/global/workforcePools/p", ["us-central1"], 400, "JSON object"),
        ("locations/europe/workforcePools/p", {"locations": []}, 400, "name must be"),
    ],
)
def test_admin_refuses_what_cannot_be_a_boundary(
    emulator: EmulatorClient, name: str, body: object, status: int, message: str
) -> None:
    answer = admin_put(emulator, name, body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]["message"]
    assert "locations/global/workforcePools/p" not in {
        entry["name"] for entry in httpx.get(f"{emulator.url}{ADMIN}").json()["allowedLocations"]
    }


def test_admin_writes_need_json_from_our_own_origin(emulator: EmulatorClient) -> None:
    name = "locations/global/workforcePools/guarded"
    form = httpx.put(f"{emulator.url}{ADMIN}/{name}", content=b'{"locations": []}')
    assert form.status_code == 415
    foreign = httpx.put(
        f"{emulator.url}{ADMIN}/{name}", json={"locations": []}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert httpx.get(f"{emulator.url}{ADMIN}/{name}").json() == {"name": name, **NO_OP}


def test_boundaries_survive_a_restart_with_a_state_dir(tmp_path: Path) -> None:
    with EmulatorServer(state_dir=tmp_path) as server:
        email = server.key_file("rab-saved")["client_email"]
        name = f"projects/-/serviceAccounts/{email}"
        assert httpx.put(f"{server.url}{ADMIN}/{name}", json={"locations": ["us-east1"]}).status_code == 200
    with EmulatorServer(state_dir=tmp_path) as server:
        token = server.state.issue_access_token(server.state.service_accounts[email], CLOUD).token
        url = f"{server.url}/v1/projects/-/serviceAccounts/{email}/allowedLocations"
        assert httpx.get(url, headers=bearer(token)).json() == {
            "locations": ["us-east1"],
            "encodedLocations": encoded(["us-east1"]),
        }


def test_state_files_without_boundaries_still_load_and_damaged_ones_are_refused() -> None:
    saved = persistence.to_json(EmulatorState())
    older = {key: value for key, value in saved.items() if key != "allowed_locations"}
    assert persistence.state_from_bytes(json.dumps(older).encode(), "old.json").allowed_locations == {}
    damaged_forms: list[object] = [
        [],
        {"locations/global/workforcePools/p": {"locations": "x", "encodedLocations": "0x1"}},
        {"locations/global/workforcePools/p": {"locations": [], "encodedLocations": "0x1\n"}},
        {"locations/global/workforcePools/p": {"locations": []}},
    ]
    for damaged in damaged_forms:
        raw = json.dumps({**saved, "allowed_locations": damaged}).encode()
        with pytest.raises(ValueError, match="damaged"):
            persistence.state_from_bytes(raw, "state.json")
