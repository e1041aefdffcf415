"""The emulator's metadata server as each platform's real one answers: headers, content types,
paths, ``format=full`` claims and refusals, for Compute Engine, GKE, Cloud Run, Cloud Run functions
and App Engine flexible; the admin switch between them. Expectations are written out here, not
read from local.metadata_platforms, so a change there has to be a deliberate change here."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gcptoken import Verifier
from gcptoken.emulator import EmulatorServer
from gcptoken.testing import EmulatorClient
from tests.cli.test_cli import emulator_command
from tests.scopes import S1, S2

AUD = "https://svc-platforms.a.run.app"
FLAVOR = {"Metadata-Flavor": "Google"}
V1 = "/computeMetadata/v1/"
ACCOUNT = f"{V1}instance/service-accounts/default/"
HTML = "text/html; charset=UTF-8"


@dataclass(frozen=True)
class Expected:
    server: str
    identity_type: str
    etag: bool
    root_open: bool  # GET / answers without Metadata-Flavor
    forbidden_type: str
    forbidden_identified: bool  # the 403 still says Metadata-Flavor: Google
    instance: frozenset[str]  # the listing of instance/
    project: frozenset[str]
    compute_engine: bool
    unknown_account: int


VM = Expected(
    server="Metadata Server for VM",
    identity_type="text/html",
    etag=True,
    root_open=True,
    forbidden_type=HTML,
    forbidden_identified=True,
    instance=frozenset(
        {
            "attributes/",
            "cpu-platform",
            "description",
            "hostname",
            "id",
            "image",
            "machine-type",
            "maintenance-event",
            "name",
            "network-interfaces/",
            "preempted",
            "scheduling/",
            "service-accounts/",
            "zone",
        }
    ),
    project=frozenset({"attributes/", "numeric-project-id", "project-id"}),
    compute_engine=True,
    unknown_account=404,
)
SERVERLESS = Expected(
    server="Metadata Server for Serverless",
    identity_type="application/text",
    etag=False,
    root_open=False,
    forbidden_type=HTML,
    forbidden_identified=False,
    instance=frozenset({"id", "region", "service-accounts/", "zone"}),
    project=frozenset({"numeric-project-id", "project-id"}),
    compute_engine=False,
    unknown_account=500,
)
EXPECTED = {
    "gce": VM,
    "app-engine": VM,
    "gke": Expected(
        server="GKE Metadata Server",
        identity_type="application/text",
        etag=True,
        root_open=False,
        forbidden_type="text/plain; charset=utf-8",
        forbidden_identified=False,
        instance=frozenset({"attributes/", "hostname", "id", "service-accounts/", "zone"}),
        project=frozenset({"numeric-project-id", "project-id"}),
        compute_engine=False,
        unknown_account=404,
    ),
    "cloud-run": SERVERLESS,
    "functions": SERVERLESS,
}


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    """An emulator of this module's own: switching its platform touches no other test."""
    with EmulatorServer() as running:
        yield running


@pytest.fixture(params=list(EXPECTED))
def on(request: pytest.FixtureRequest, server: EmulatorServer) -> Iterator[tuple[str, EmulatorClient]]:
    """The emulator answering as platform ``request.param`` (through the admin API)."""
    name = str(request.param)
    switched = httpx.put(f"{server.url}/emulator/v1/metadata/platform", json={"platform": name})
    assert switched.status_code == 200 and switched.json()["platform"] == name
    yield name, EmulatorClient(server)
    httpx.put(f"{server.url}/emulator/v1/metadata/platform", json={"platform": "gce"})


def get(client: EmulatorClient, path: str, headers: dict[str, str] | None = None, **params: str) -> httpx.Response:
    return httpx.get(client.url + path, params=params, headers=FLAVOR if headers is None else headers)


def assert_identified(response: httpx.Response, expected: Expected, value: bool = True) -> None:
    """Says who answered; a value (not a refusal) has an ETag where the platform's do."""
    assert response.headers["metadata-flavor"] == "Google"
    assert response.headers["server"] == expected.server
    assert ("etag" in response.headers) is (value and expected.etag)


def test_a_text_leaf(on: tuple[str, EmulatorClient]) -> None:
    name, client = on
    expected = EXPECTED[name]
    response = get(client, f"{V1}project/project-id")
    assert response.status_code == 200 and response.text == client.state.project_id
    assert response.headers["content-type"] == "application/text"  # no charset: as Google's
    assert_identified(response, expected)
    vm_headers = {"x-xss-protection": "0", "x-frame-options": "SAMEORIGIN"}
    assert {k: response.headers.get(k) for k in vm_headers} == (
        vm_headers if expected is VM else dict.fromkeys(vm_headers)
    )
    assert get(client, f"{V1}project/numeric-project-id").text == client.state.project_number


def test_directory_listings(on: tuple[str, EmulatorClient]) -> None:
    name, client = on
    expected = EXPECTED[name]
    instance = get(client, f"{V1}instance/")
    assert instance.headers["content-type"] == "application/text"
    assert set(instance.text.splitlines()) == expected.instance
    assert set(get(client, f"{V1}project/").text.splitlines()) == expected.project
    assert get(client, f"{V1}instance").status_code == 301  # Node's GCE detection on every platform
    accounts = set(get(client, f"{V1}instance/service-accounts/").text.splitlines())
    assert accounts == {"default/", f"{client.state.default_account.email}/"}


def test_recursive_json(on: tuple[str, EmulatorClient]) -> None:
    name, client = on
    response = get(client, ACCOUNT, recursive="true")
    assert response.headers["content-type"] == "application/json"
    assert_identified(response, EXPECTED[name])
    assert response.json() == {
        "aliases": ["default"],
        "email": client.state.default_account.email,
        "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
    }
    instance = get(client, f"{V1}instance/", recursive="true").json()
    if name in ("cloud-run", "functions"):  # a long hex id; the zone is REGION-1 (no zone is told)
        assert isinstance(instance["id"], str) and len(instance["id"]) == 128
        assert instance["zone"] == f"projects/{client.state.project_number}/zones/us-central1-1"
        assert instance["region"] == f"projects/{client.state.project_number}/regions/us-central1"
    else:
        assert isinstance(instance["id"], int) and "region" not in instance
        assert instance["zone"] == f"projects/{client.state.project_number}/zones/us-central1-a"


def test_id_tokens_standard_and_full(on: tuple[str, EmulatorClient]) -> None:
    name, client = on
    expected = EXPECTED[name]
    verifier = Verifier(AUD, certs=f"{client.url}/oauth2/v3/certs")
    standard = get(client, f"{ACCOUNT}identity", audience=AUD)
    assert standard.status_code == 200
    assert standard.headers["content-type"] == expected.identity_type
    assert_identified(standard, expected)
    assert set(verifier.verify(standard.text)) == {"aud", "azp", "exp", "iat", "iss", "sub"}
    full = verifier.verify(get(client, f"{ACCOUNT}identity", audience=AUD, format="full", licenses="TRUE").text)
    assert full["email"] == client.state.default_account.email and full["email_verified"] is True
    if expected.compute_engine:
        assert full["google"]["compute_engine"]["project_id"] == client.state.project_id
        assert full["google"]["compute_engine"]["license_id"]
    else:
        assert "google" not in full


def test_access_token(on: tuple[str, EmulatorClient]) -> None:
    name, client = on
    response = get(client, f"{ACCOUNT}token", scopes=f"{S1},{S2}")
    assert response.headers["content-type"] == "application/json"
    assert_identified(response, EXPECTED[name])
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type"} and body["token_type"] == "Bearer"
    info = httpx.post(f"{client.url}/tokeninfo", data={"access_token": body["access_token"]}).json()
    assert info["scope"] == f"{S1} {S2}"


def test_missing_flavor(on: tuple[str, EmulatorClient]) -> None:
    name, client = on
    expected = EXPECTED[name]
    for path in (f"{V1}project/project-id", f"{ACCOUNT}token"):
        refused = get(client, path, headers={})
        assert refused.status_code == 403
        assert refused.headers["content-type"] == expected.forbidden_type
        assert ("metadata-flavor" in refused.headers) is expected.forbidden_identified
        assert "access_token" not in refused.text
    forwarded = get(client, f"{V1}project/project-id", headers={**FLAVOR, "X-Forwarded-For": "10.0.0.1"})
    assert forwarded.status_code == 403
    bare_root, root = get(client, "/", headers={}), get(client, "/")
    assert root.status_code == 200 and root.text == "computeMetadata/\n"
    assert_identified(root, expected)
    assert bare_root.status_code == (200 if expected.root_open else 403)
    if name == "gke":  # Go's http.Error, as captured from GKE
        assert bare_root.text == 'Missing required header "Metadata-Flavor": "Google"\n'
        assert bare_root.headers["x-content-type-options"] == "nosniff"


def test_unknown_paths_and_accounts(on: tuple[str, EmulatorClient]) -> None:
    name, client = on
    expected = EXPECTED[name]
    missing = get(client, f"{V1}instance/nope")
    assert missing.status_code == 404
    if expected is VM:  # Google's own 404 page, the path escaped
        assert missing.headers["content-type"] == HTML and "Error 404 (Not Found)!!1" in missing.text
        assert_identified(missing, expected, value=False)
        hostile = get(client, f"{V1}instance/<script>alert(1)</script>")
        assert hostile.status_code == 404 and "<script>" not in hostile.text and "&lt;script&gt;" in hostile.text
    other = get(client, f"{V1}instance/service-accounts/nobody@x.iam.gserviceaccount.com/token")
    assert other.status_code == expected.unknown_account
    if expected is SERVERLESS:
        assert other.text.startswith("Could not fetch URI /computeMetadata/v1/instance/service-accounts/nobody@")
    no_audience = get(client, f"{ACCOUNT}identity")
    assert no_audience.status_code == 400 and "non-empty audience parameter required" in no_audience.text


def test_gke_serves_only_its_cluster_attributes(server: EmulatorServer) -> None:
    client = EmulatorClient(server)
    attributes = f"{server.url}/emulator/v1/metadata/instance/attributes"
    assert httpx.put(attributes, json={"role": "web"}).status_code == 200
    try:
        assert get(client, f"{V1}instance/attributes/role").text == "web"  # a VM serves its own
        assert get(client, f"{V1}instance/attributes/cluster-name").status_code == 404  # and no cluster
        httpx.put(f"{server.url}/emulator/v1/metadata/platform", json={"platform": "gke"})
        assert get(client, f"{V1}instance/attributes/cluster-name").text == "emulated-cluster"  # by default
        httpx.put(f"{attributes}/cluster-name", json={"value": "prod"})
        listing = get(client, f"{V1}instance/attributes/").text.splitlines()
        assert listing == ["cluster-location", "cluster-name", "cluster-uid"]
        assert get(client, f"{V1}instance/attributes/cluster-name").text == "prod"  # set through the admin API
        assert get(client, f"{V1}instance/attributes/cluster-location").text == "us-central1"
        assert get(client, f"{V1}instance/attributes/role").status_code == 404  # VM metadata is concealed
        assert get(client, f"{V1}project/attributes/").status_code == 404
    finally:
        httpx.put(f"{server.url}/emulator/v1/metadata/platform", json={"platform": "gce"})
        httpx.put(attributes, json={})


def test_the_admin_switch(server: EmulatorServer) -> None:
    url = f"{server.url}/emulator/v1/metadata/platform"
    assert httpx.get(url).json() == {
        "platform": "gce",
        "platforms": ["gce", "gke", "cloud-run", "functions", "app-engine"],
    }
    for body in ({"platform": "aws"}, {"platform": 3}, {}, {"platform": "gke" * 100}):
        refused = httpx.put(url, json=body)
        assert refused.status_code == 400 and "one of gce, gke" in refused.json()["error"]["message"]
    assert httpx.put(url, content=b"{", headers={"Content-Type": "application/json"}).status_code == 400
    assert httpx.put(url, content=b"{}").status_code == 415  # the admin API's rule for every write
    try:
        assert httpx.put(url, json={"platform": "cloud-run"}).json()["platform"] == "cloud-run"
        answer = httpx.get(f"{server.url}{V1}project/project-id", headers=FLAVOR)
        assert answer.headers["server"] == "Metadata Server for Serverless"  # at once, no restart
    finally:
        httpx.put(url, json={"platform": "gce"})
    assert httpx.get(f"{server.url}{V1}project/project-id", headers=FLAVOR).headers["server"] == VM.server


def test_the_emulator_command_takes_a_platform() -> None:
    with emulator_command("--platform", "functions") as running:
        assert httpx.get(f"{running.url}/").status_code == 403  # serverless: / wants Metadata-Flavor too
        answer = httpx.get(f"{running.url}{V1}instance/region", headers=FLAVOR)
        assert answer.status_code == 200 and answer.headers["server"] == SERVERLESS.server
    assert "metadata server as functions" in running.err and "Traceback" not in running.err


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("cloud-run", {"K_SERVICE", "K_REVISION", "K_CONFIGURATION"}),
        ("functions", {"FUNCTION_TARGET", "K_SERVICE", "K_REVISION"}),
        ("app-engine", {"GAE_SERVICE", "GAE_INSTANCE"}),
        ("gce", set()),
        ("gke", set()),  # no KUBERNETES_SERVICE_HOST: it names an address tools would reach for
    ],
)
def test_the_state_dirs_env_names_the_platforms_runtime(tmp_path: Path, platform: str, expected: set[str]) -> None:
    state_dir = tmp_path / "emu"
    with EmulatorServer(state_dir=state_dir, platform=platform) as server:
        shown = subprocess.run(
            ["bash", "-c", f'source "{state_dir}/env" && env -0'],
            capture_output=True,
            check=True,
            env={"PATH": os.environ["PATH"]},
        ).stdout.decode()
        variables = dict(item.split("=", 1) for item in shown.split("\0") if "=" in item)
        assert variables["GCE_METADATA_ROOT"] == variables["GCE_METADATA_HOST"] == server.host_port
        runtime = {"K_SERVICE", "K_REVISION", "K_CONFIGURATION", "FUNCTION_TARGET", "GAE_SERVICE", "GAE_INSTANCE"}
        runtime |= {"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}
        assert runtime & variables.keys() == expected
        assert all(variables[name] for name in expected)
        answer = httpx.get(f"{server.url}{V1}project/project-id", headers=FLAVOR)
        servers = {"gce": VM.server, "app-engine": VM.server, "gke": "GKE Metadata Server"}
        assert answer.headers["server"] == servers.get(platform, SERVERLESS.server)


def test_a_vms_network_interface_and_scheduling(server: EmulatorServer) -> None:
    # What Go's metadata.InternalIP / ExternalIP read, and GCE's recursive JSON of numbered
    # directories as lists (network-interfaces/0/ → [ {…} ]).
    def get(path: str, **params: str) -> httpx.Response:
        return httpx.get(f"{server.url}{V1}{path}", headers=FLAVOR, params=params)

    assert httpx.put(f"{server.url}/emulator/v1/metadata/platform", json={"platform": "gce"}).status_code == 200
    assert get("instance/network-interfaces/").text == "0/\n"
    assert get("instance/network-interfaces/0/ip").text == "10.128.0.2"
    assert get("instance/network-interfaces/0/access-configs/0/external-ip").text == "203.0.113.10"
    assert get("instance/network-interfaces/0/mtu").text == "1460"
    interfaces = get("instance/network-interfaces/", recursive="true").json()
    assert isinstance(interfaces, list) and len(interfaces) == 1
    assert interfaces[0]["accessConfigs"] == [{"externalIp": "203.0.113.10", "type": "ONE_TO_ONE_NAT"}]
    assert interfaces[0]["mtu"] == 1460 and interfaces[0]["dnsServers"] == ["169.254.169.254"]
    assert get("instance/scheduling/", recursive="true").json() == {
        "automaticRestart": "TRUE",
        "onHostMaintenance": "MIGRATE",
        "preemptible": "FALSE",
    }
    assert get("instance/maintenance-event").text == "NONE"
    # Attribute keys are names, never turned into a list, even when they look like indexes.
    server.state.instance.attributes.update({"0": "zero", "1": "one"})
    try:
        assert get("instance/attributes/", recursive="true").json() == {"0": "zero", "1": "one"}
    finally:
        server.state.instance.attributes.clear()
    # Not on serverless platforms or GKE: their servers have no VM networking.
    for platform in ("cloud-run", "gke"):
        assert httpx.put(f"{server.url}/emulator/v1/metadata/platform", json={"platform": platform}).status_code == 200
        try:
            assert get("instance/network-interfaces/0/ip").status_code == 404
        finally:
            httpx.put(f"{server.url}/emulator/v1/metadata/platform", json={"platform": "gce"})
