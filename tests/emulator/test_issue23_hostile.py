"""Issue 23's emulator features as an outsider attacks them, over HTTP on 127.0.0.1: hostile account
names and methods on the published-key routes (never a 500, never a new account or key), many
clients reading a fresh account's keys at once (one Google-managed key, however many ask), a web
page going at the new admin routes (platform, allowedLocations) and the keys by DNS rebinding or
cross-site, admin bodies that no answer could repeat (a lone surrogate, NaN), and the metadata
server of every platform echoing a hostile path or parameter into HTML. (The guard's tricks on the
older routes are in tests/test_local_servers_hostile.py; plain refusals in the features' own tests.)"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from gcptoken import load_credentials
from gcptoken.emulator import EmulatorServer
from gcptoken.local.metadata_platforms import PLATFORMS
from gcptoken.local.metadata_server import CredentialsInstance, InstanceValues, metadata_app
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient
from tests.test_local_servers_hostile import HOSTILE, Target, request, send

KEY_ROUTES = (
    "/robot/v1/metadata/x509/",
    "/robot/v1/metadata/jwk/",
    "/service_accounts/v1/metadata/x509/",
    "/service_accounts/v1/metadata/jwk/",
    "/service_accounts/v1/metadata/raw/",
    "/service_accounts/v1/jwk/",
)
FLAVOR = {"Metadata-Flavor": "Google"}
JSON = {"Content-Type": "application/json"}
PLATFORM = "/emulator/v1/metadata/platform"
POOL_BOUNDARY = "/emulator/v1/allowedLocations/locations/global/workforcePools/p"
ACCOUNTS = "/computeMetadata/v1/instance/service-accounts"


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    """An emulator of this module's own: the tests here switch its platform."""
    with EmulatorServer() as server:
        yield server


def _footprint(emulator: EmulatorClient | EmulatorServer) -> tuple[int, int, int, int]:
    state = emulator.state
    with state.lock:
        keys = sum(len(account.keys) for account in state.service_accounts.values())
        certificates = sum(len(account.certificates) for account in state.service_accounts.values())
        return len(state.service_accounts), keys, certificates, len(state.system_keys)


HOSTILE_NAMES = [
    "a%2Fb@p.iam.gserviceaccount.com",
    "a%00b@p.iam.gserviceaccount.com",
    "%E2%80%AE%0A%1B[31mevil@p.iam.gserviceaccount.com",
    "..%2F..%2Femulator%2Fv1%2FserviceAccounts",
    "default%2540emulated-project.iam.gserviceaccount.com",
    "DEFAULT@EMULATED-PROJECT.IAM.GSERVICEACCOUNT.COM",
    "default",
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E@p.iam.gserviceaccount.com",
    "%F0%9F%94%91@p.iam.gserviceaccount.com",
    "x" * 8000 + "@p.iam.gserviceaccount.com",
]


@pytest.mark.parametrize("route", KEY_ROUTES)
def test_hostile_account_names_are_404s_that_leave_no_trace(
    emulator: EmulatorClient, caplog: pytest.LogCaptureFixture, route: str
) -> None:
    before = _footprint(emulator)
    with httpx.Client() as client, caplog.at_level(logging.WARNING, logger="gcptoken.emulator"):
        for name in HOSTILE_NAMES:
            answer = client.get(f"{emulator.url}{route}{name}")
            assert answer.status_code == 404, (name[:80], answer.text[:200])
            assert answer.headers["content-type"].startswith("application/json")
            assert answer.json()["error"]["status"] == "NOT_FOUND"
    assert _footprint(emulator) == before
    for record in caplog.records:  # a name that leaves the route is a gap, said on one escaped line
        message = record.getMessage()
        assert message.isprintable() and len(message) < 400, repr(message[:200])


def test_a_request_line_of_60_kb_is_refused_without_a_trace(emulator: EmulatorClient) -> None:
    target = Target(emulator.host_port, "GET", KEY_ROUTES[0] + "y" * 60_000)
    before = _footprint(emulator)
    assert send(target, request(target)) in (400, 404, 414, 431)
    assert _footprint(emulator) == before


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_the_key_routes_answer_reads_only(emulator: EmulatorClient, key_info: dict[str, str], method: str) -> None:
    email = key_info["client_email"]
    before = _footprint(emulator)
    for route in KEY_ROUTES:
        answer = httpx.request(method, f"{emulator.url}{route}{email}", json={"keys": []})
        assert answer.status_code == 405, answer.text
    assert _footprint(emulator) == before
    head = httpx.head(f"{emulator.url}{KEY_ROUTES[0]}{email}")
    assert head.status_code == 200 and head.content == b""


def test_many_first_readers_make_one_google_managed_key(emulator: EmulatorClient, key_info: dict[str, str]) -> None:
    """Publishing an account's keys makes its Google-managed key: once, however many ask at once,
    and never again for later readers (no key or certificate per request)."""
    email = key_info["client_email"]
    assert email not in emulator.state.system_keys
    urls = [f"{emulator.url}{route}{email}" for route in KEY_ROUTES] * 6

    def kids(url: str) -> frozenset[str]:
        answer = httpx.get(url)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if "keys" in body:
            return frozenset(key["kid"] for key in body["keys"])
        if "keyvalues" in body:
            return frozenset(value["keyid"] for value in body["keyvalues"])
        return frozenset(body)

    with ThreadPoolExecutor(16) as pool:
        seen = set(pool.map(kids, urls))
    (published,) = seen
    system_kid = emulator.state.system_keys[email][0]
    assert published == {key_info["private_key_id"], system_kid}
    settled = _footprint(emulator)
    for url in urls:
        assert kids(url) == published
    assert _footprint(emulator) == settled


# -- a web page in the user's browser ---------------------------------------------------------------


def _admin_targets(emu: EmulatorServer) -> dict[str, Target]:
    email = emu.state.default_account.email
    boundary = f"/emulator/v1/allowedLocations/projects/-/serviceAccounts/{email}"
    return {
        "set the platform": Target(emu.host_port, "PUT", PLATFORM, JSON, b'{"platform": "gke"}'),
        "read the platform": Target(emu.host_port, "GET", PLATFORM),
        "set a boundary": Target(emu.host_port, "PUT", boundary, JSON, b'{"locations": ["us-central1"]}'),
        "delete a boundary": Target(emu.host_port, "DELETE", boundary, JSON, b"{}"),
        "list the boundaries": Target(emu.host_port, "GET", "/emulator/v1/allowedLocations"),
    }


def _admin_state(emu: EmulatorServer) -> tuple[str, dict[str, object]]:
    with emu.state.lock:
        return emu.state.instance.platform, dict(emu.state.allowed_locations)


@pytest.mark.parametrize("name", ["set the platform", "read the platform", "set a boundary", "delete a boundary"])
def test_a_page_cannot_use_the_new_admin_routes(emu: EmulatorServer, name: str) -> None:
    email = emu.state.default_account.email
    httpx.put(f"{emu.url}/emulator/v1/allowedLocations/projects/-/serviceAccounts/{email}", json={"locations": []})
    target = _admin_targets(emu)[name]
    before = _admin_state(emu)
    for trick, (build, refused) in HOSTILE.items():
        assert send(target, build(target)) in refused, trick
        assert _admin_state(emu) == before, f"{trick} changed the emulator"
    form = request(target, headers={"Content-Type": "text/plain"})
    assert send(target, form) == (415 if target.method != "GET" else 200)
    assert _admin_state(emu) == before
    assert send(target, request(target)) == 200  # the same request, sent properly
    httpx.put(f"{emu.url}{PLATFORM}", json={"platform": "gce"})


def test_a_rebound_page_cannot_read_the_keys_or_the_admin_lists(emu: EmulatorServer) -> None:
    email = emu.state.default_account.email
    rebound = {"Host": f"rebind.attacker.example:{emu.port}"}
    for path in [f"{route}{email}" for route in KEY_ROUTES] + ["/emulator/v1/allowedLocations"]:
        target = Target(emu.host_port, "GET", path)
        assert send(target, request(target)) == 200
        assert send(target, request(target, headers=rebound)) == 403, path
    list_from_a_page = Target(emu.host_port, "GET", PLATFORM, {"Origin": "https://evil.example"})
    assert send(list_from_a_page, request(list_from_a_page)) == 403


# -- admin bodies no answer could repeat ------------------------------------------------------------

UNWRITABLE = [
    (POOL_BOUNDARY, b'{"locations": ["\\ud800"], "encodedLocations": "0x1"}'),
    (POOL_BOUNDARY, b'{"locations": [NaN], "encodedLocations": "0x1"}'),
    ("/emulator/v1/metadata/instance/attributes/k", b'{"value": "\\udfff"}'),
    ("/emulator/v1/metadata/project/attributes", b'{"k": "\\ud83d"}'),
    ("/emulator/v1/metadata/instance/attributes/k", b'{"value": "v", "x": Infinity}'),
    ("/emulator/v1/metadata/platform", b"[" * 100_000),
]


@pytest.mark.parametrize(("path", "body"), UNWRITABLE)
def test_admin_bodies_no_answer_could_repeat_are_refused(
    emu: EmulatorServer, caplog: pytest.LogCaptureFixture, path: str, body: bytes
) -> None:
    with caplog.at_level(logging.ERROR, logger="gcptoken.emulator"):
        answer = httpx.put(f"{emu.url}{path}", content=body, headers=JSON)
        assert answer.status_code == 400, answer.text
        assert httpx.get(f"{emu.url}/emulator/v1/allowedLocations").status_code == 200
        for scope in ("instance", "project"):
            assert httpx.get(f"{emu.url}/emulator/v1/metadata/{scope}/attributes").status_code == 200
        tree = httpx.get(f"{emu.url}/computeMetadata/v1/?recursive=true", headers=FLAVOR)
        assert tree.status_code == 200
    assert not caplog.records, "a traceback on the emulator's stderr"


def test_a_surrogate_pair_is_still_text(emu: EmulatorServer) -> None:
    """The check refuses lone surrogates only: an escaped pair is a character like any other."""
    answer = httpx.put(f"{emu.url}/emulator/v1/metadata/instance/attributes/key", json={"value": "\U0001f511"})
    assert answer.status_code == 200 and answer.json()["attributes"]["key"] == "\U0001f511"
    httpx.delete(f"{emu.url}/emulator/v1/metadata/instance/attributes/key", headers=JSON)


def test_an_admin_body_over_the_limit_is_refused_while_it_arrives(emu: EmulatorServer) -> None:
    target = Target(emu.host_port, "PUT", PLATFORM, JSON, b'{"platform": "' + b"g" * (3 << 20) + b'"}')
    raw = request(target)
    # Only the head and the first 64 KiB go: the answer must come before the rest is sent (sending
    # it all would race the server's close, a reset rather than an answer).
    assert send(target, raw[: raw.index(b"\r\n\r\n") + 4 + 65536]) == 413
    assert emu.state.instance.platform == "gce"


# -- every platform's metadata server, with hostile paths and parameters -----------------------------

SCRIPT = "<script>alert(1)</script>"


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_no_platform_echoes_a_hostile_path_or_parameter_as_html(emu: EmulatorServer, platform: str) -> None:
    assert httpx.put(f"{emu.url}{PLATFORM}", json={"platform": platform}).status_code == 200
    try:
        with httpx.Client(base_url=emu.url, headers=FLAVOR) as client:
            asks = [
                client.get(f"/computeMetadata/v1/{SCRIPT}"),
                client.get(f"{ACCOUNTS}/{SCRIPT}/token"),
                client.get(f"{ACCOUNTS}/{SCRIPT}/identity", params={"audience": "a"}),
                client.get("/computeMetadata/v1/project/project-id", params={"alt": SCRIPT}),
                client.get(f"{ACCOUNTS}/default/identity", params={"audience": ""}),
                client.get(f"/computeMetadata/v1/project/project-id?x={SCRIPT}", headers={"Metadata-Flavor": "x"}),
            ]
        dots = f"{ACCOUNTS}/default/../../../project/project-id"
        traversal = Target(emu.host_port, "GET", dots, FLAVOR)  # raw: httpx would resolve the dots itself
        assert send(traversal, request(traversal)) == 404
        for answer in asks:
            assert answer.status_code in (400, 403, 404, 500), (answer.request.url, answer.status_code)
            if "html" in answer.headers.get("content-type", ""):
                assert "<script" not in answer.text.lower(), (answer.request.url, answer.text[:300])
            assert "ya29." not in answer.text and "eyJ" not in answer.text
    finally:
        httpx.put(f"{emu.url}{PLATFORM}", json={"platform": "gce"})


@pytest.mark.parametrize("platform", ["gke", "cloud-run"])
def test_a_page_cannot_take_a_token_from_any_platforms_metadata_server(emu: EmulatorServer, platform: str) -> None:
    assert httpx.put(f"{emu.url}{PLATFORM}", json={"platform": platform}).status_code == 200
    try:
        path = f"{ACCOUNTS}/default/token"
        target = Target(emu.host_port, "GET", path, FLAVOR)
        assert send(target, request(target)) == 200
        for trick, (build, refused) in HOSTILE.items():
            assert send(target, build(target)) in refused, trick
        root = Target(emu.host_port, "GET", "/", {"Origin": "https://evil.example"})
        assert send(root, request(root)) == 403
    finally:
        httpx.put(f"{emu.url}{PLATFORM}", json={"platform": "gce"})


def test_the_metadata_server_refuses_a_raw_control_character_in_the_path(emu: EmulatorServer) -> None:
    host, port = emu.host_port.rsplit(":", 1)
    raw = f"GET /computeMetadata/v1/pro\x1bject HTTP/1.1\r\nHost: {emu.host_port}\r\nMetadata-Flavor: Google\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(raw.encode() + b"Connection: close\r\n\r\n")
        head = connection.recv(4096)
    assert head.startswith(b"HTTP/1.1 400"), head[:100]


# -- gcptoken metadata-server --platform: the same guard whoever it answers as -----------------------


@pytest.mark.parametrize("platform", ["gke", "cloud-run", "functions"])
def test_a_page_cannot_take_a_token_from_metadata_server_as_any_platform(
    emulator: EmulatorClient, key_path: Path, key_info: dict[str, str], platform: str
) -> None:
    credentials = load_credentials(key_path)
    email = key_info["client_email"]
    values = InstanceValues(email=email, project_id="p", project_number="1", platform=platform)
    app = metadata_app(CredentialsInstance(credentials, credentials, values))

    def minted() -> int:
        return len(emulator.token_requests_by(email))

    with AsgiServer(app, bind("127.0.0.1", 0)) as server:
        target = Target(server.host_port, "GET", f"{ACCOUNTS}/default/token", FLAVOR, moved=minted)
        for trick, (build, refused) in HOSTILE.items():
            assert send(target, build(target)) in refused, trick
        assert minted() == 0, "a refused request reached the credential"
        assert send(target, request(target)) == 200 and minted() == 1
