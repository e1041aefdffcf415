"""The real docker CLI runs ``docker-credential-gcptoken``: ``docker manifest inspect`` (which needs
no docker engine) reads an image from the emulator's Artifact Registry stand-in over HTTPS with the
helper's token; a refused credential fails with the helper's one line; as ``credsStore`` for every
registry, a registry that is not Google's never gets a token; ``docker login`` and ``logout`` meet
the helper's polite refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gcptoken.emulator import EmulatorServer, scenarios
from gcptoken.testing import CLOSED_LOOPBACK, EmulatorClient, write_key_file
from tests.helpers.docker_env import closed_env, helper, write_docker_config

DOCKER = shutil.which("docker")
pytestmark = pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed (no engine is needed)")
IMAGE = "emulated-project/containers/app:v1"


@pytest.fixture(scope="module")
def registry() -> Iterator[EmulatorServer]:
    """The emulator with its HTTPS port: docker talks to registries over TLS only."""
    with EmulatorServer(tls_port=0) as server:
        yield server


@pytest.fixture
def client(registry: EmulatorServer) -> EmulatorClient:
    return EmulatorClient(registry)


def _host(registry: EmulatorServer) -> str:
    assert registry.tls is not None
    return registry.tls.url.removeprefix("https://").rstrip("/")


def _env(registry: EmulatorServer, client: EmulatorClient, tmp_path: Path, **extra: str) -> dict[str, str]:
    """docker's environment; the loopback registry named in GCPTOKEN_HELPER_HOSTS (it is not Google's)."""
    ca = tmp_path / "emulator-ca.pem"
    ca.write_text(registry.state.workload_ca.root_pem)
    named = {"GCPTOKEN_HELPER_HOSTS": _host(registry), **extra}
    return closed_env(tmp_path, client.host_port, SSL_CERT_FILE=str(ca), **named)  # Go trusts SSL_CERT_FILE


def _docker(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    assert DOCKER is not None
    return subprocess.run(
        [DOCKER, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False
    )


def _pulls(client: EmulatorClient, host_image: str) -> list[dict[str, object]]:
    name, _, tag = host_image.partition(":")
    return client.requests(f"/v2/{name}/manifests/{tag}")


def test_docker_reads_an_image_with_the_helpers_token(
    registry: EmulatorServer, client: EmulatorClient, tmp_path: Path
) -> None:
    sa = client.new_key("docker-cli")
    env = _env(registry, client, tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(write_key_file(tmp_path, sa)))
    write_docker_config(env, {"credHelpers": {_host(registry): "gcptoken"}})
    result = _docker(env, "manifest", "inspect", f"{_host(registry)}/{IMAGE}")
    assert result.returncode == 0, result.stderr
    assert '"schemaVersion": 2' in result.stdout
    assert "application/vnd.docker.distribution.manifest.v2+json" in result.stdout
    served = [entry for entry in _pulls(client, IMAGE) if entry["status"] == 200]
    assert served and served[-1]["detail"] == {"caller": sa["client_email"]}
    assert len(client.token_requests_by(sa["client_email"])) == 1
    # Again: the helper answers from the disk cache, docker still gets in.
    assert _docker(env, "manifest", "inspect", f"{_host(registry)}/{IMAGE}").returncode == 0
    assert len(client.token_requests_by(sa["client_email"])) == 1


def test_a_refused_credential_fails_with_the_helpers_line(
    registry: EmulatorServer, client: EmulatorClient, tmp_path: Path
) -> None:
    user = registry.state.issue_refresh_token("docker-cli-revoked@example.com")
    user["refresh_token"] = "1//0-not-a-grant-" + "y" * 40
    env = _env(registry, client, tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(write_key_file(tmp_path, user)))
    write_docker_config(env, {"credHelpers": {_host(registry): "gcptoken"}})
    before = len(_pulls(client, IMAGE))
    result = _docker(env, "manifest", "inspect", f"{_host(registry)}/{IMAGE}")
    assert result.returncode != 0
    # docker reports the helper's failure (its stderr line) and goes on without credentials.
    ours = [line for line in result.stderr.splitlines() if line.startswith("docker-credential-gcptoken:")]
    assert ours and all(line == ours[0] for line in ours)  # one line per call docker made
    assert "no Google access token" in ours[0]
    assert "unauthorized" in result.stderr.lower()
    assert "Traceback" not in result.stderr + result.stdout
    for secret in (user["refresh_token"], user["client_secret"]):
        assert secret not in result.stderr + result.stdout
    assert all(entry["status"] == 401 for entry in _pulls(client, IMAGE)[before:])


@pytest.mark.parametrize("setup", ["credsStore", "credHelpers"])
def test_a_registry_not_named_in_the_environment_never_gets_a_token(
    registry: EmulatorServer, client: EmulatorClient, tmp_path: Path, setup: str
) -> None:
    # credsStore: docker asks the helper about every registry. credHelpers: a mapping someone else
    # wrote (a repository's DOCKER_CONFIG). This loopback registry is not Google's and not in
    # GCPTOKEN_HELPER_HOSTS: docker must go there without a token.
    sa = client.new_key(f"docker-cli-{setup.lower()}")
    env = _env(registry, client, tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(write_key_file(tmp_path, sa)))
    del env["GCPTOKEN_HELPER_HOSTS"]
    mapping = {"credHelpers": {_host(registry): "gcptoken"}} if setup == "credHelpers" else {"credsStore": "gcptoken"}
    write_docker_config(env, mapping)
    image = "other-project/containers/app:v1"
    seen = len(client.requests())
    result = _docker(env, "manifest", "inspect", f"{_host(registry)}/{image}")
    assert result.returncode != 0
    assert "unauthorized" in result.stderr.lower()
    assert client.token_requests_by(sa["client_email"]) == []  # no token was even made
    asked = [entry for entry in client.requests()[seen:] if str(entry["path"]).startswith("/v2/")]
    assert asked and all("detail" not in entry for entry in asked)  # no call carried a valid token
    assert all(entry["status"] == 401 for entry in _pulls(client, image))
    warned = [line for line in result.stderr.splitlines() if "docker-credential-gcptoken: warning:" in line]
    assert bool(warned) == (setup == "credHelpers")  # said only where the user mapped it: credsStore stays quiet
    assert all("GCPTOKEN_HELPER_HOSTS=" in line for line in warned)


def test_as_credsstore_login_says_what_to_change(
    registry: EmulatorServer, client: EmulatorClient, tmp_path: Path
) -> None:
    sa = client.new_key("docker-cli-store-login")
    env = _env(registry, client, tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(write_key_file(tmp_path, sa)))
    write_docker_config(env, {"credsStore": "gcptoken"})
    token = str(json.loads(helper(["get"], "gcr.io", env).stdout)["Secret"])  # the registry takes it; the store not
    login = _docker(env, "login", "-u", "oauth2accesstoken", "--password-stdin", _host(registry), stdin=token)
    assert login.returncode != 0
    assert token not in login.stdout + login.stderr
    assert '"credsStore": "gcptoken"' in login.stderr and "credHelpers entries" in login.stderr


def test_login_is_refused_and_logout_warns(registry: EmulatorServer, client: EmulatorClient, tmp_path: Path) -> None:
    sa = client.new_key("docker-cli-login")
    env = _env(registry, client, tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(write_key_file(tmp_path, sa)))
    config = write_docker_config(env, {"credHelpers": {_host(registry): "gcptoken"}})
    token = str(json.loads(helper(["get"], "gcr.io", env).stdout)["Secret"])  # what a person would paste
    login = _docker(env, "login", "-u", "oauth2accesstoken", "--password-stdin", _host(registry), stdin=token)
    assert login.returncode != 0
    assert "stores no credentials" in login.stderr
    assert token not in login.stdout + login.stderr + config.read_text()
    logout = _docker(env, "logout", _host(registry))
    assert logout.returncode == 0  # docker only warns when a helper cannot erase
    assert "keeps no credentials to erase" in logout.stderr


GCLOUD_BIN = Path("/usr/lib/google-cloud-sdk/bin")


@pytest.mark.skipif(not (GCLOUD_BIN / "docker-credential-gcloud").exists(), reason="gcloud is not installed")
def test_gclouds_own_helper_gets_in_too(registry: EmulatorServer, client: EmulatorClient, tmp_path: Path) -> None:
    # A peer judging the stand-in: Google's helper sends its own user name (_dcgcloud_token).
    sa = client.new_key("docker-cli-gcloud")
    env = _env(registry, client, tmp_path)
    env.update(scenarios.gcloud_environment(client.url, tmp_path / "gcloud", CLOSED_LOOPBACK))
    env["PATH"] = f"{GCLOUD_BIN}:{env['PATH']}"
    env["CLOUDSDK_ARTIFACTS_ALLOW_UNRECOGNIZED_REGISTRY"] = "true"  # a loopback registry is not on its list
    key = write_key_file(tmp_path, sa)
    gcloud = [str(GCLOUD_BIN / "gcloud"), "auth", "activate-service-account", "--key-file", str(key)]
    assert subprocess.run(gcloud, env=env, capture_output=True, timeout=120, check=False).returncode == 0
    write_docker_config(env, {"credHelpers": {_host(registry): "gcloud"}})
    result = _docker(env, "manifest", "inspect", f"{_host(registry)}/{IMAGE}")
    assert result.returncode == 0, result.stderr
    served = [entry for entry in _pulls(client, IMAGE) if entry["status"] == 200]
    assert served[-1]["detail"] == {"caller": sa["client_email"]}


def test_docker_logs_in_with_a_json_key_as_artifact_registry_documents(
    registry: EmulatorServer, client: EmulatorClient, tmp_path: Path
) -> None:
    # No helper: docker keeps `_json_key` and the key file's JSON (the stand-in's fidelity, judged by docker).
    sa = client.new_key("docker-cli-json-key")
    env = _env(registry, client, tmp_path)
    config = write_docker_config(env, {})
    login = _docker(env, "login", "-u", "_json_key", "--password-stdin", _host(registry), stdin=json.dumps(sa))
    assert login.returncode == 0, login.stderr
    assert _host(registry) in json.loads(config.read_text())["auths"]
    result = _docker(env, "manifest", "inspect", f"{_host(registry)}/{IMAGE}")
    assert result.returncode == 0, result.stderr
    served = [entry for entry in _pulls(client, IMAGE) if entry["status"] == 200]
    assert served[-1]["detail"] == {"caller": sa["client_email"]}
