"""The real pip and the real uv installing from the emulated Artifact Registry Python repository
over HTTPS, with credentials from gcptoken's keyring backend, set up as the README says: pip's
``--keyring-provider import`` and ``subprocess``, uv's ``subprocess`` (``keyring`` on PATH);
a failing credential is a clean failure; an index not in the host list, or a listed host over
plain HTTP, never sees a token."""

from __future__ import annotations

import base64
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.artifactregistry.python import REPOSITORY
from gcptoken.testing import CLOSED_LOOPBACK, write_key_file
from tests.helpers.tools import uv_binary

pytestmark = pytest.mark.slow
KEYRING = Path(sys.executable).with_name("keyring")
# This machine's own pip/uv settings (its mirrors, find-links, CA bundles): requests even prefers
# REQUESTS_CA_BUNDLE to pip's --cert. Each test sets its own.
_MACHINE_SETTINGS = ("PIP_", "UV_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_")


@pytest.fixture(scope="module")
def registry() -> Iterator[EmulatorServer]:
    with EmulatorServer(tls_port=0) as server:
        yield server


@pytest.fixture(scope="module")
def stranger() -> Iterator[EmulatorServer]:
    """Another repository on loopback that is not in the host list: it must never get a token."""
    with EmulatorServer(tls_port=0) as server:
        yield server


def index_of(server: EmulatorServer, user: str = "") -> str:
    assert server.tls is not None
    authority = server.tls.url.split("://", 1)[1]
    return f"https://{user + '@' if user else ''}{authority}/{server.state.project_id}/{REPOSITORY}/simple/"


@pytest.fixture
def env(registry: EmulatorServer, stranger: EmulatorServer, tmp_path: Path) -> dict[str, str]:
    """What a new user has: ADC, gcptoken's hosts, the CA; plus isolation from this machine's
    pip/uv configuration and caches, and every Google endpoint on the emulator."""
    assert registry.tls is not None
    ca = tmp_path / "ca.pem"
    ca.write_text(registry.state.workload_ca.root_pem + stranger.state.workload_ca.root_pem)
    tools = tmp_path / "tools"  # `keyring` on PATH outside pip's own scripts dir, as pipx puts it
    tools.mkdir()
    (tools / "keyring").symlink_to(KEYRING)
    key = write_key_file(tmp_path, registry.key_file(f"pip-{len(registry.state.access_tokens)}"))
    return {
        **{name: value for name, value in os.environ.items() if not name.startswith(_MACHINE_SETTINGS)},
        "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "GOOGLE_APPLICATION_CREDENTIALS": str(key),
        "GCPTOKEN_EMULATOR_HOST": registry.host_port,
        "GCPTOKEN_HELPER_HOSTS": registry.tls.url.split("://", 1)[1],
        "GCE_METADATA_HOST": CLOSED_LOOPBACK,
        "GCE_METADATA_IP": CLOSED_LOOPBACK,
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_CACHE_DIR": "1",
        "PIP_NO_INPUT": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_CERT": str(ca),
        "UV_NO_CONFIG": "1",
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        "SSL_CERT_FILE": str(ca),
    }


def pip(env: dict[str, str], target: Path, provider: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pip", "install", "--target", str(target), "--keyring-provider", provider, *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)


def uv(env: dict[str, str], target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [uv_binary(), "pip", "install", "--python", sys.executable, "--target", str(target)]
    argv += ["--keyring-provider", "subprocess", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)


def installed(target: Path) -> set[str]:
    return {p.name.split("-")[0] for p in target.glob("*.dist-info")}


def tokens_seen(server: EmulatorServer) -> list[str]:
    return [e["detail"]["auth"] for e in server.state.request_log() if "auth" in e.get("detail", {})]


def assert_clean_failure(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    ours = {line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip().startswith("gcptoken:")}
    # One line: the URL's lookup says it; the host's, asked next by pip and uv, gets None silently.
    assert len(ours) == 1 and "no access token for 127.0.0.1:" in ours.pop()
    assert "HTTP Request:" not in done.stdout + done.stderr  # no httpx log in pip's output
    assert "ya29." not in done.stdout + done.stderr


def test_the_repository_refuses_pip_without_a_token(
    env: dict[str, str], registry: EmulatorServer, tmp_path: Path
) -> None:
    registry.state.clear_requests()
    done = pip(env, tmp_path / "t", "disabled", "--index-url", index_of(registry), "gcptoken-demo-core")
    assert done.returncode != 0
    assert installed(tmp_path / "t") == set()
    answered = [(e["status"], e["detail"]["auth"]) for e in registry.state.request_log()]
    assert answered and set(answered) == {(401, "none")}


@pytest.mark.parametrize("provider", ["import", "subprocess"])
def test_pip_installs_through_the_backend(
    env: dict[str, str], registry: EmulatorServer, tmp_path: Path, provider: str
) -> None:
    # pip's subprocess provider runs `keyring get URL USERNAME`: the user name goes in the URL.
    url = index_of(registry, "oauth2accesstoken" if provider == "subprocess" else "")
    done = pip(env, tmp_path / "t", provider, "--index-url", url, "gcptoken-demo-app")
    assert done.returncode == 0, done.stdout + done.stderr
    assert installed(tmp_path / "t") == {"gcptoken_demo_app", "gcptoken_demo_core"}  # the dependency too
    assert "basic" in tokens_seen(registry)


def test_uv_installs_through_the_backend(env: dict[str, str], registry: EmulatorServer, tmp_path: Path) -> None:
    url = index_of(registry, "oauth2accesstoken")
    done = uv(env, tmp_path / "t", "--index-url", url, "gcptoken-demo-app", "gcptoken-demo-3")
    assert done.returncode == 0, done.stderr
    assert installed(tmp_path / "t") == {"gcptoken_demo_app", "gcptoken_demo_core", "gcptoken_demo_3"}


def test_a_bad_credential_fails_cleanly(env: dict[str, str], registry: EmulatorServer, tmp_path: Path) -> None:
    # A key the token service no longer knows: no token, so the 401 stands.
    key = registry.key_file(f"gone-{len(registry.state.access_tokens)}")
    registry.state.delete_key(key["client_email"], key["private_key_id"])
    env = {**env, "GOOGLE_APPLICATION_CREDENTIALS": str(write_key_file(tmp_path, key, "gone.json"))}
    url = index_of(registry, "oauth2accesstoken")
    for done in (
        pip(env, tmp_path / "a", "import", "--index-url", url, "gcptoken-demo-core"),
        pip(env, tmp_path / "b", "subprocess", "--index-url", url, "gcptoken-demo-core"),
        uv(env, tmp_path / "c", "--index-url", url, "gcptoken-demo-core"),
    ):
        assert_clean_failure(done)
    assert not installed(tmp_path / "a") | installed(tmp_path / "b") | installed(tmp_path / "c")


def test_an_index_not_in_the_host_list_never_sees_a_token(
    env: dict[str, str], registry: EmulatorServer, stranger: EmulatorServer, tmp_path: Path
) -> None:
    stranger.state.clear_requests()
    ours, theirs = index_of(registry), index_of(stranger)
    done = pip(env, tmp_path / "a", "import", "--index-url", ours, "--extra-index-url", theirs, "gcptoken-demo-core")
    assert done.returncode == 0, done.stdout + done.stderr
    theirs_user = index_of(stranger, "oauth2accesstoken")
    uv(
        env,
        tmp_path / "b",
        "--index-url",
        index_of(registry, "oauth2accesstoken"),
        "--extra-index-url",
        theirs_user,
        "gcptoken-demo-core",
    )
    pip(env, tmp_path / "c", "subprocess", "--index-url", theirs_user, "gcptoken-demo-core")
    seen = tokens_seen(stranger)
    assert seen and set(seen) == {"none"}, seen  # asked, and never given one


def test_uv_without_a_user_name_asks_for_both(env: dict[str, str], registry: EmulatorServer, tmp_path: Path) -> None:
    # An index with `authenticate = "always"` and no user name: uv runs `keyring get URL --mode creds`.
    config = tmp_path / "uv.toml"
    config.write_text(
        'keyring-provider = "subprocess"\n[[index]]\nname = "registry"\n'
        f'url = "{index_of(registry)}"\ndefault = true\nauthenticate = "always"\n'
    )
    argv = [uv_binary(), "pip", "install", "--config-file", str(config), "--python", sys.executable]
    argv += ["--target", str(tmp_path / "t"), "gcptoken-demo-app"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert installed(tmp_path / "t") == {"gcptoken_demo_app", "gcptoken_demo_core"}


class _PlainIndex(http.server.BaseHTTPRequestHandler):
    """A plain-HTTP index on loopback that challenges as Artifact Registry does and records every
    Authorization it is sent: what an attacker's http:// server on a listed host would collect."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        self.send_response(401)
        self.send_header("WWW-Authenticate", f'Basic realm="http://{self.headers.get("Host", "")}"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def plain_index() -> Iterator[str]:
    _PlainIndex.seen.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PlainIndex)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_plain_http_index_on_a_listed_host_never_sees_a_token(
    env: dict[str, str], plain_index: str, tmp_path: Path
) -> None:
    # The host (and port) is listed, as a user would list their registry: only https:// gets a token.
    env = {**env, "GCPTOKEN_HELPER_HOSTS": plain_index}
    url, with_user = f"http://{plain_index}/simple/", f"http://oauth2accesstoken@{plain_index}/simple/"
    trusted = ("--trusted-host", plain_index.split(":")[0], "--retries", "0")
    for done in (
        pip(env, tmp_path / "a", "import", *trusted, "--index-url", url, "gcptoken-demo-core"),
        pip(env, tmp_path / "b", "subprocess", *trusted, "--index-url", with_user, "gcptoken-demo-core"),
        uv(env, tmp_path / "c", "--index-url", with_user, "gcptoken-demo-core"),
    ):
        assert done.returncode != 0
        assert "Traceback" not in done.stdout + done.stderr
    assert _PlainIndex.seen, "pip and uv asked the plain index"
    assert not any(value.lower().startswith("basic") and value != _NO_PASSWORD for value in _PlainIndex.seen)


# uv sends the URL's user name with an empty password up front: that is not a token.
_NO_PASSWORD = "Basic " + base64.b64encode(b"oauth2accesstoken:").decode()
