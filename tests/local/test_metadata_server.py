"""``gcptoken metadata-server`` backed by credentials from the emulator: google-auth, gcloud and
Node's client get tokens from it as from the emulated VM, carrying the real credential's identity;
a hundred concurrent clients cost one upstream request per audience; refusals as the real server's."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.auth
import google.auth.transport.requests
import httpx
import pytest
from google.auth import compute_engine
from google.auth.compute_engine import _metadata

from gcptoken import Verifier
from gcptoken.emulator import EmulatorServer, scenarios
from gcptoken.testing import CLOSED_LOOPBACK
from tests.cli.test_cli import COMMAND, gcptoken

pytestmark = pytest.mark.slow

AUD = "https://svc-local-md.a.run.app"
FLAVOR = {"Metadata-Flavor": "Google"}


class Server:
    """``gcptoken metadata-server`` in a subprocess; ``host_port`` is where it answers."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [*COMMAND, "metadata-server", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        assert self.process.stdout is not None
        self.host_port = self.process.stdout.readline().strip()
        if not self.host_port:
            raise AssertionError(self.stop()[1])

    def get(self, path: str, **params: str) -> httpx.Response:
        return httpx.get(f"http://{self.host_port}/computeMetadata/v1/{path}", params=params, headers=FLAVOR)

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=20)
        return self.process.returncode, err


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        yield server


@pytest.fixture(scope="module")
def key_path(emu: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("md-key") / "key.json"
    path.write_text(json.dumps(emu.key_file("md-server")))
    return path


@pytest.fixture(scope="module")
def server(emu: EmulatorServer, key_path: Path) -> Iterator[Server]:
    running = Server(
        {"GCPTOKEN_EMULATOR_HOST": emu.host_port}, "--credentials", str(key_path), "-v", "--attribute", "role=web"
    )
    yield running
    code, err = running.stop()
    assert code == 0 and "stopped" in err  # a graceful shutdown
    key = json.loads(key_path.read_text())
    assert key["private_key"].splitlines()[1] not in err


def email(key_path: Path) -> str:
    return str(json.loads(key_path.read_text())["client_email"])


def test_the_metadata_tree(server: Server, emu: EmulatorServer, key_path: Path) -> None:
    assert server.get("instance/service-accounts/default/email").text == email(key_path)
    assert server.get("project/project-id").text == emu.state.project_id
    assert server.get("project/numeric-project-id").text == emu.state.project_number  # from Resource Manager
    assert server.get("instance/attributes/role").text == "web"
    assert server.get("universe/universe-domain").text == "googleapis.com"
    listing = server.get("instance/service-accounts/default/").text.split()
    assert {"email", "identity", "token", "aliases", "scopes"} <= set(listing)
    assert server.get("instance/service-accounts").headers["location"].endswith("/instance/service-accounts/")


def test_flavor_and_proxies_are_refused_as_google_does(server: Server) -> None:
    url = f"http://{server.host_port}/computeMetadata/v1/instance/service-accounts/default/token"
    assert httpx.get(url).status_code == 403
    assert httpx.get(url, headers={**FLAVOR, "X-Forwarded-For": "10.0.0.1"}).status_code == 403
    assert httpx.get(f"http://{server.host_port}/").headers["metadata-flavor"] == "Google"


def test_tokens_carry_the_real_credentials_identity(server: Server, emu: EmulatorServer, key_path: Path) -> None:
    token = server.get("instance/service-accounts/default/identity", audience=AUD, format="full").text
    claims = Verifier(AUD, certs=f"{emu.url}/oauth2/v3/certs").verify(token)
    assert claims["email"] == email(key_path)
    access = server.get("instance/service-accounts/default/token").json()
    assert access["token_type"] == "Bearer" and 0 < access["expires_in"] <= 3600
    assert emu.state.access_tokens[access["access_token"]].email == email(key_path)


def test_a_hundred_clients_cost_one_upstream_request_per_audience(server: Server, emu: EmulatorServer) -> None:
    audiences = [f"https://crowd-{n}.a.run.app" for n in range(3)]

    async def crowd() -> list[int]:
        async with httpx.AsyncClient(headers=FLAVOR, timeout=30) as client:
            base = f"http://{server.host_port}/computeMetadata/v1/instance/service-accounts/default/identity"
            calls = [client.get(base, params={"audience": audiences[n % 3]}) for n in range(100)]
            return [response.status_code for response in await asyncio.gather(*calls)]

    assert asyncio.run(crowd()) == [200] * 100
    minted = [
        entry["detail"]["assertion"]["claims"].get("target_audience")
        for entry in emu.state.request_log()
        if entry["path"] == "/token" and "assertion" in entry.get("detail", {})
    ]
    assert sorted(a for a in minted if a in audiences) == sorted(audiences)  # exactly one each


def test_the_log_names_requests_never_tokens(emu: EmulatorServer, key_path: Path) -> None:
    running = Server({"GCPTOKEN_EMULATOR_HOST": emu.host_port}, "--credentials", str(key_path), "-v")
    try:
        first = running.get("instance/service-accounts/default/identity", audience="https://logged.a.run.app").text
        again = running.get("instance/service-accounts/default/identity", audience="https://logged.a.run.app").text
        access = running.get("instance/service-accounts/default/token").json()["access_token"]
    finally:
        code, err = running.stop()
    assert code == 0 and first == again
    assert "identity -> 200 audience=https://logged.a.run.app cache=miss" in err
    assert "identity -> 200 audience=https://logged.a.run.app cache=hit" in err
    for secret in (first, access, first.rsplit(".", 1)[1]):
        assert secret not in err


@pytest.fixture
def google_auth_on_it(server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", server.host_port)  # read at google-auth's import
    monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", False)
    for name in ("GCE_METADATA_HOST", "GCE_METADATA_IP"):
        monkeypatch.setenv(name, server.host_port)
    monkeypatch.delenv("NO_GCE_CHECK", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "empty-gcloud-config"))
    monkeypatch.setenv("HOME", str(tmp_path))


def test_google_auth_default_and_compute_engine(google_auth_on_it: None, emu: EmulatorServer, key_path: Path) -> None:
    request: Any = google.auth.transport.requests.Request()
    found, project = google.auth.default()
    assert isinstance(found, compute_engine.Credentials) and project == emu.state.project_id
    credentials: Any = found
    credentials.refresh(request)
    assert emu.state.access_tokens[credentials.token].email == email(key_path)
    engine: Any = compute_engine
    id_credentials = engine.IDTokenCredentials(request, AUD, use_metadata_identity_endpoint=True)
    id_credentials.refresh(request)
    claims = Verifier(AUD, certs=f"{emu.url}/oauth2/v3/certs").verify(id_credentials.token)
    assert claims["sub"] == emu.state.service_accounts[email(key_path)].unique_id


def test_gcloud_with_no_account(server: Server, emu: EmulatorServer, key_path: Path, tmp_path: Path) -> None:
    from tests.peers.test_gcloud import GCLOUD, run_gcloud

    if GCLOUD is None:
        pytest.skip("gcloud is not installed on this machine (CI has it)")
    env = {**os.environ, **scenarios.gcloud_environment(emu.url, tmp_path / "gcloud", CLOSED_LOOPBACK)}
    for name in ("GCE_METADATA_ROOT", "GCE_METADATA_HOST", "GCE_METADATA_IP"):
        env[name] = server.host_port
    for name in ("CLOUDSDK_CORE_CHECK_GCE_METADATA", "CLOUDSDK_AUTH_TOKEN_HOST", "NO_GCE_CHECK"):
        env.pop(name, None)
    printed = run_gcloud(["auth", "print-identity-token", f"--audiences={AUD}"], env)
    assert printed.returncode == 0, printed.stderr
    assert Verifier(AUD, certs=f"{emu.url}/oauth2/v3/certs").verify(printed.stdout.strip())["email"] == email(key_path)
    access = run_gcloud(["auth", "print-access-token"], env)
    assert access.returncode == 0, access.stderr
    assert emu.state.access_tokens[access.stdout.strip()].email == email(key_path)


def test_nodes_google_auth_library(server: Server, emu: EmulatorServer, key_path: Path, node_peer: Path) -> None:
    from tests.peers.test_node_peers import run_node

    env = {"GCE_METADATA_HOST": server.host_port, "GCE_METADATA_IP": server.host_port}
    result = run_node(node_peer, "vm", {"audience": AUD}, env)
    assert result["idClaims"]["aud"] == AUD and result["idClaims"]["email"] == email(key_path)
    assert emu.state.access_tokens[result["access"]].email == email(key_path)
    assert result["projectId"] == emu.state.project_id


# -- refusals and bad input --------------------------------------------------------------------------


def test_a_user_credential_refuses_other_audiences(emu: EmulatorServer, tmp_path: Path) -> None:
    user = tmp_path / "user.json"
    user.write_text(json.dumps(emu.state.issue_refresh_token("md-user@example.com")))
    running = Server({"GCPTOKEN_EMULATOR_HOST": emu.host_port}, "--credentials", str(user), "--project", "p")
    try:
        assert running.get("instance/service-accounts/default/email").text == "md-user@example.com"
        refused = running.get("instance/service-accounts/default/identity", audience=AUD)
        assert refused.status_code == 400 and "cannot give an ID token" in refused.text
        own = running.get("instance/service-accounts/default/identity", audience=emu.state.oauth_client[0])
        assert own.status_code == 200
    finally:
        _, err = running.stop()
    assert "refused: this credential cannot give an ID token" in err  # said on the server's stderr


def test_allow_adds_clients_to_loopback(emu: EmulatorServer, key_path: Path) -> None:
    """``--allow`` lets more clients in, loopback stays in; which peers are refused is the guard's
    table (tests/test_local_servers_hostile.py), as no test here may use a non-loopback address."""
    running = Server(
        {"GCPTOKEN_EMULATOR_HOST": emu.host_port}, "--credentials", str(key_path), "--allow", "10.9.0.0/16"
    )
    try:
        assert running.get("project/project-id").status_code == 200
        rebound = httpx.get(
            f"http://{running.host_port}/computeMetadata/v1/project/project-id",
            headers={**FLAVOR, "Host": "rebind.attacker.example"},
        )
        assert rebound.status_code == 403 and "--allow-host" in rebound.text
    finally:
        running.stop()


def test_listening_beyond_loopback_warns(emu: EmulatorServer, key_path: Path) -> None:
    running = Server({"GCPTOKEN_EMULATOR_HOST": emu.host_port}, "--credentials", str(key_path), "--host", "0.0.0.0")
    _, err = running.stop()
    assert "anyone who can reach" in err


def test_a_port_in_use_is_one_line(emu: EmulatorServer, key_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = gcptoken(
            "metadata-server",
            "--credentials",
            str(key_path),
            "--port",
            str(port),
            env={"GCPTOKEN_EMULATOR_HOST": emu.host_port},
        )
    assert result.code == 3 and f"cannot listen on 127.0.0.1:{port}" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--allow", "nope"), "--allow"),
        (("--attribute", "bad key=1"), "--attribute"),
        (("--project", "../../etc"), "--project"),
        (("--project-number", "12a"), "--project-number"),
        (("--zone", "nowhere"), "--zone"),
        (("--email", "not-an-email"), "--email"),
    ],
)
def test_bad_flags_are_usage_errors(emu: EmulatorServer, key_path: Path, args: tuple[str, ...], message: str) -> None:
    result = gcptoken(
        "metadata-server", "--credentials", str(key_path), *args, env={"GCPTOKEN_EMULATOR_HOST": emu.host_port}
    )
    assert result.code == 2 and message in result.err and result.err.count("\n") == 1


def test_odd_queries_are_answered_not_crashed(server: Server) -> None:
    base = "instance/service-accounts/default/"
    for path, params in [
        (base + "identity", {"audience": "x" * 4000}),
        (base + "identity", {"audience": "a", "format": "nonsense", "licenses": "maybe"}),
        (base + "token", {"scopes": ",,,"}),
        (base + "token", {"scopes": "not a scope"}),
        ("instance/attributes/", {"recursive": "true", "alt": "xml"}),
        ("instance/", {"wait_for_change": "true", "timeout_sec": "1e309"}),
        (base + "nothing", {}),
    ]:
        answer = server.get(path, **params)
        assert answer.status_code in (200, 400, 404, 503), (path, params, answer.text[:200])
        assert "Traceback" not in answer.text


def test_a_clients_bad_audience_or_scope_is_400_not_an_upstream_failure(server: Server) -> None:
    """The library's rules and Google's invalid_scope are the client's mistake: 400, not 503."""
    base = "instance/service-accounts/default/"
    bad_audience = server.get(base + "identity", audience="ftp://x")
    assert bad_audience.status_code == 400 and "must start with http:// or https://" in bad_audience.text
    bad_scope = server.get(base + "token", scopes="not,a,scope")
    assert bad_scope.status_code == 400 and "invalid_scope" in bad_scope.text, bad_scope.text


def test_metadata_names_and_allowed_hosts_are_answered(emu: EmulatorServer, key_path: Path) -> None:
    """Clients in containers send ``Host: metadata.google.internal`` (or ``metadata``); a name the
    user adds with --allow-host is answered at any port; any other name is a rebinding attempt."""
    running = Server(
        {"GCPTOKEN_EMULATOR_HOST": emu.host_port},
        "--credentials",
        str(key_path),
        "--allow-host",
        "host.docker.internal",
        "-v",
    )
    url = f"http://{running.host_port}/computeMetadata/v1/project/project-id"
    try:
        for host in ("metadata.google.internal", "metadata", "METADATA.google.internal.", "host.docker.internal:8081"):
            assert httpx.get(url, headers={**FLAVOR, "Host": host}).status_code == 200, host
        for host in ("metadata.google.internal.attacker.example", "docker.internal", "localhost:1", "127.0.0.2"):
            assert httpx.get(url, headers={**FLAVOR, "Host": host}).status_code == 403, host
    finally:
        _, err = running.stop()
    assert "refused GET /computeMetadata/v1/project/project-id" in err and "DNS rebinding" in err


def test_the_request_log_cannot_be_forged(emu: EmulatorServer, key_path: Path) -> None:
    """A path with CR, LF and ESC in it is logged escaped: no forged line, no terminal control."""
    running = Server({"GCPTOKEN_EMULATOR_HOST": emu.host_port}, "--credentials", str(key_path), "-v")
    try:
        hostile = "project/x%0D%0Agcptoken: GET /forged -> 200%1B[31m%07"
        assert running.get(hostile).status_code == 404
    finally:
        _, err = running.stop()
    assert "\x1b" not in err and "\x07" not in err and "\r" not in err
    assert not any(line.startswith("gcptoken: GET /forged") for line in err.splitlines())
    assert "\\r\\ngcptoken: GET /forged" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--allow-host", "evil.example/x"), "--allow-host"),
        (("--allow-host", "a b"), "--allow-host"),
        (("--allow-host", "host:80"), "--allow-host"),
    ],
)
def test_bad_allow_hosts_are_usage_errors(
    emu: EmulatorServer, key_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = gcptoken(
        "metadata-server", "--credentials", str(key_path), *args, env={"GCPTOKEN_EMULATOR_HOST": emu.host_port}
    )
    assert result.code == 2 and message in result.err and result.err.count("\n") == 1
