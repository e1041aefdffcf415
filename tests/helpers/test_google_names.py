"""The real uv and pip installing from ``https://us-python.pkg.dev/PROJECT/python-repo/simple/``
— Google's own host name, answered by the emulator on loopback port 443 in a private mount
namespace (bench/google_names.py) — through gcptoken's keyring backend under its default host rule
(no ``$GCPTOKEN_HELPER_HOSTS``), and through Google's ``keyrings.google-artifactregistry-auth``,
both with tokens for the same account; and the namespace's own check, which runs nothing when a
name would resolve anywhere but loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.google_names import NAMES_REFUSED, GoogleNames, serve_as_google, unavailable, write_etc

from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.artifactregistry.python import REPOSITORY
from gcptoken.testing import CLOSED_LOOPBACK, write_key_file
from tests.helpers.docker_env import HELPER, closed_env, write_docker_config
from tests.helpers.tools import uv_binary

pytestmark = pytest.mark.slow
OURS = "gcptoken.helpers.keyring_backend.GcptokenKeyring"
GOOGLES = "keyrings.gauth.GooglePythonAuth"
KEYRING = Path(sys.executable).with_name("keyring")
_MACHINE_SETTINGS = ("PIP_", "UV_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_", "GCPTOKEN_HELPER_HOSTS")


@pytest.fixture(scope="module")
def google() -> Iterator[tuple[EmulatorServer, GoogleNames]]:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    with serve_as_google() as served:
        yield served


@pytest.fixture
def env(google: tuple[EmulatorServer, GoogleNames], tmp_path: Path) -> dict[str, str]:
    """A user's setup: ADC (an emulator key file, its token_uri the emulator), the CA, `keyring`
    on PATH; nothing from this machine's pip/uv settings, no metadata server but a closed port."""
    server, _ = google
    ca = tmp_path / "ca.pem"
    ca.write_text(server.state.workload_ca.root_pem)
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "keyring").symlink_to(KEYRING)
    key = write_key_file(tmp_path, server.key_file(f"names-{len(server.state.access_tokens)}"))
    return {
        **{name: value for name, value in os.environ.items() if not name.startswith(_MACHINE_SETTINGS)},
        "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "CLOUDSDK_CONFIG": str(tmp_path / "no-gcloud"),
        "GOOGLE_APPLICATION_CREDENTIALS": str(key),
        "GCPTOKEN_EMULATOR_HOST": server.host_port,
        # google-auth's metadata probe (Google's backend) goes nowhere either.
        "GCE_METADATA_HOST": CLOSED_LOOPBACK,
        "GCE_METADATA_IP": CLOSED_LOOPBACK,
        "NO_GCE_CHECK": "true",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_CACHE_DIR": "1",
        "PIP_NO_INPUT": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_CERT": str(ca),
        "UV_NO_CONFIG": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        "SSL_CERT_FILE": str(ca),
    }


def index(server: EmulatorServer, user: str = "") -> str:
    return f"https://{user + '@' if user else ''}us-python.pkg.dev/{server.state.project_id}/{REPOSITORY}/simple/"


def run(names: GoogleNames, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(names.argv(argv), env=env, capture_output=True, text=True, timeout=180)


def installed(target: Path) -> set[str]:
    return {p.name.split("-")[0] for p in target.glob("*.dist-info")}


def uv_install(names: GoogleNames, env: dict[str, str], target: Path, url: str) -> subprocess.CompletedProcess[str]:
    argv = [uv_binary(), "pip", "install", "--python", sys.executable, "--target", str(target)]
    argv += ["--cache-dir", f"{target}-cache", "--keyring-provider", "subprocess", "--index-url", url]
    return run(names, [*argv, "gcptoken-demo-app"], env)


def test_uv_and_pip_install_from_us_python_pkg_dev_under_the_default_rule(
    google: tuple[EmulatorServer, GoogleNames], env: dict[str, str], tmp_path: Path
) -> None:
    server, names = google
    assert "GCPTOKEN_HELPER_HOSTS" not in env  # *.pkg.dev on 443: the rule every user has
    server.state.clear_requests()
    ours = {**env, "PYTHON_KEYRING_BACKEND": OURS}
    done = uv_install(names, ours, tmp_path / "uv", index(server, "oauth2accesstoken"))
    assert done.returncode == 0, done.stderr
    pip = [sys.executable, "-m", "pip", "install", "--target", str(tmp_path / "pip"), "--keyring-provider", "import"]
    done_pip = run(names, [*pip, "--index-url", index(server), "gcptoken-demo-app"], ours)
    assert done_pip.returncode == 0, done_pip.stdout + done_pip.stderr
    for target in ("uv", "pip"):
        assert installed(tmp_path / target) == {"gcptoken_demo_app", "gcptoken_demo_core"}
    answered = {(e["status"], e["detail"]["auth"]) for e in server.state.request_log() if "auth" in e["detail"]}
    assert (200, "basic") in answered  # the repository was read with the backend's token


def test_googles_backend_and_ours_install_as_the_same_account(
    google: tuple[EmulatorServer, GoogleNames], env: dict[str, str], tmp_path: Path
) -> None:
    server, names = google
    account = json.loads(Path(env["GOOGLE_APPLICATION_CREDENTIALS"]).read_text())["client_email"]
    for backend in (OURS, GOOGLES):
        before = set(server.state.access_tokens)
        target = tmp_path / backend.rsplit(".", 1)[1]
        done = uv_install(names, {**env, "PYTHON_KEYRING_BACKEND": backend}, target, index(server, "oauth2accesstoken"))
        assert done.returncode == 0, f"{backend}: {done.stderr}"
        assert installed(target) == {"gcptoken_demo_app", "gcptoken_demo_core"}
        minted = [server.state.access_tokens[token] for token in set(server.state.access_tokens) - before]
        assert minted, f"{backend} minted no token"
        assert {grant.email for grant in minted} == {account}


@pytest.mark.usefixtures("google")  # skips where namespaces are unavailable
def test_a_name_resolving_off_loopback_runs_nothing(tmp_path: Path) -> None:
    etc = write_etc(tmp_path, "192.0.2.1", ("us-python.pkg.dev",))  # TEST-NET-1: resolved, never dialled
    marker = tmp_path / "ran"
    stray = GoogleNames("192.0.2.1", ("us-python.pkg.dev",), etc)
    done = subprocess.run(stray.argv(["touch", str(marker)]), capture_output=True, text=True, timeout=60)
    assert done.returncode == NAMES_REFUSED
    assert done.stderr.strip() == "google names: us-python.pkg.dev resolves to ['192.0.2.1'], not loopback"
    assert not marker.exists()


def test_the_names_stay_inside_the_namespace(google: tuple[EmulatorServer, GoogleNames]) -> None:
    server, names = google
    inside = subprocess.run(names.argv(["getent", "hosts", "gcr.io"]), capture_output=True, text=True, timeout=60)
    assert inside.returncode == 0 and inside.stdout.split()[0] == names.address
    assert names.address in server.url  # the emulator listens there
    assert "pkg.dev" not in Path("/etc/hosts").read_text()  # this machine's own file is untouched


def test_other_names_never_reach_the_machines_dns_server(google: tuple[EmulatorServer, GoogleNames]) -> None:
    _, names = google
    show = "grep '^hosts:' /etc/nsswitch.conf; grep nameserver /etc/resolv.conf; getent hosts oauth2.googleapis.com"
    inside = subprocess.run(names.argv(["sh", "-c", show]), capture_output=True, text=True, timeout=60)
    assert inside.stdout.splitlines() == ["hosts: files", "nameserver 127.0.0.1"]
    assert inside.returncode == 2  # getent: not found (in the hosts file, the only source)


def test_docker_reads_from_us_docker_pkg_dev_through_the_helper_under_the_default_rule(
    google: tuple[EmulatorServer, GoogleNames], tmp_path: Path
) -> None:
    docker = shutil.which("docker")
    if docker is None or not HELPER.exists():
        pytest.skip("the docker CLI (no engine needed) or docker-credential-gcptoken is not installed")
    server, names = google
    ca = tmp_path / "ca.pem"
    ca.write_text(server.state.workload_ca.root_pem)
    key = server.key_file(f"names-docker-{len(server.state.access_tokens)}")
    env = closed_env(tmp_path, server.host_port, SSL_CERT_FILE=str(ca))  # Go trusts SSL_CERT_FILE
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(write_key_file(tmp_path, key))
    assert "GCPTOKEN_HELPER_HOSTS" not in env
    # What `gcloud auth configure-docker us-docker.pkg.dev` writes, with gcptoken's helper named.
    write_docker_config(env, {"credHelpers": {"us-docker.pkg.dev": "gcptoken"}})
    server.state.clear_requests()
    image = "us-docker.pkg.dev/emulated-project/containers/app:v1"
    done = subprocess.run(
        names.argv([docker, "manifest", "inspect", image]), env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert '"schemaVersion": 2' in done.stdout
    manifests = [e for e in server.state.request_log() if e["path"].endswith("/manifests/v1")]
    assert manifests and manifests[-1]["status"] == 200
    assert manifests[-1]["detail"] == {"caller": key["client_email"]}
