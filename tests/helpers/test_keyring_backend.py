"""gcptoken's keyring backend by keyring's contract, in this process and through keyring's own
CLI (what uv runs per request): an access token under ``oauth2accesstoken`` for Google's hosts
and the configured ones only, nothing stored or deleted, failures as None plus one stderr line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import keyring.backend
import pytest
from keyring.backends.chainer import ChainerBackend
from keyring.errors import PasswordDeleteError, PasswordSetError

from gcptoken.credentials.base import DEADLINE_TIMEOUTS
from gcptoken.helpers import keyring_backend
from gcptoken.helpers.keyring_backend import TIMEOUT_ENV, USERNAME, GcptokenKeyring
from gcptoken.testing import EmulatorClient, write_key_file

AR = "https://us-python.pkg.dev/my-project/my-repo/simple/"
OTHERS = [
    "https://pypi.org/simple/",
    "pypi.org",
    "https://evilpkg.dev/simple/",
    "https://pkg.dev.evil.example/",
    # pip and uv ask for the URL, then (only if that got nothing) for its bare host: an http://
    # index of a Google host must get nothing from either question.
    "http://us-python.pkg.dev/my-project/my-repo/simple/",
    "us-python.pkg.dev",
    "us-python.pkg.dev:443",
]
KEYRING = str(Path(sys.executable).with_name("keyring"))


@pytest.fixture(autouse=True)
def _no_earlier_failure() -> None:
    keyring_backend._failed.clear()  # a failure is told once per process: each test is its own


@pytest.fixture
def adc(emulator: EmulatorClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    key = emulator.new_key("keyring")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_key_file(tmp_path, key)))
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    return key


def test_an_artifact_registry_url_or_host_gets_a_token_once_fetched(
    emulator: EmulatorClient, adc: dict[str, str]
) -> None:
    backend = GcptokenKeyring()
    credential = backend.get_credential(AR, None)
    assert credential is not None and credential.username == USERNAME
    assert credential.password.startswith("ya29.")
    assert emulator.state.access_tokens[credential.password].email == adc["client_email"]
    assert backend.get_credential(AR, USERNAME) is not None
    assert len(emulator.token_requests_by(adc["client_email"])) == 1  # then the disk cache


@pytest.mark.parametrize("service", OTHERS)
def test_every_other_index_gets_nothing(emulator: EmulatorClient, adc: dict[str, str], service: str) -> None:
    backend = GcptokenKeyring()
    assert backend.get_password(service, USERNAME) is None
    assert backend.get_credential(service, None) is None
    assert emulator.token_requests_by(adc["client_email"]) == []  # not even fetched


def test_another_user_name_gets_nothing(adc: dict[str, str]) -> None:
    # Artifact Registry refuses a token under any other name: answering would only send it.
    assert GcptokenKeyring().get_password(AR, "alice") is None
    assert GcptokenKeyring().get_credential(AR, "alice") is None


def test_configured_hosts_are_answered_too(adc: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCPTOKEN_HELPER_HOSTS", "127.0.0.1:8443,127.0.0.1")
    assert GcptokenKeyring().get_password("https://127.0.0.1:8443/p/r/simple/", USERNAME) is not None
    assert GcptokenKeyring().get_password("https://127.0.0.1:8444/p/r/simple/", USERNAME) is None
    assert GcptokenKeyring().get_password("https://127.0.0.1/p/r/simple/", USERNAME) is not None
    for plain in ("http://127.0.0.1/p/r/simple/", "http://127.0.0.1:8443/p/r/simple/", "127.0.0.1", "127.0.0.1:8443"):
        assert GcptokenKeyring().get_password(plain, USERNAME) is None, plain


def test_storing_and_deleting_are_refused_for_our_hosts() -> None:
    with pytest.raises(PasswordSetError, match="fresh access token"):
        GcptokenKeyring().set_password(AR, USERNAME, "secret")
    with pytest.raises(PasswordDeleteError, match="nothing to delete"):
        GcptokenKeyring().delete_password(AR, USERNAME)


def test_storing_another_service_passes_on_to_the_next_keyring() -> None:
    # keyring's chainer tries the next backend on NotImplementedError only.
    with pytest.raises(NotImplementedError):
        GcptokenKeyring().set_password("https://pypi.org/", "me", "secret")
    with pytest.raises(PasswordDeleteError):
        GcptokenKeyring().delete_password("https://pypi.org/", "me")


def test_without_credentials_the_answer_is_none_and_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert GcptokenKeyring().get_credential(AR, None) is None
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gcptoken: no access token for us-python.pkg.dev:")
    assert GcptokenKeyring().get_credential("us-python.pkg.dev", None) is None  # pip asks the host next
    assert capsys.readouterr().err == ""  # told once


def test_keyring_finds_it_by_its_entry_point_and_asks_it_before_googles() -> None:
    found = [type(ring) for ring in keyring.backend.get_all_keyring()]
    assert GcptokenKeyring in found
    chain = [type(ring).__name__ for ring in ChainerBackend.backends]
    assert chain.index("GcptokenKeyring") < chain.index("GooglePythonAuth")  # [test] installs Google's too


def _keyring_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KEYRING, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_keyrings_cli_prints_the_token_and_nothing_else(emulator: EmulatorClient, adc: dict[str, str]) -> None:
    done = _keyring_cli(["get", AR, USERNAME], {})
    assert done.returncode == 0, done.stderr
    assert emulator.state.access_tokens[done.stdout.strip()].email == adc["client_email"]
    creds = _keyring_cli(["get", AR, "--mode", "creds"], {})  # uv, for an index URL without a user name
    assert creds.returncode == 0
    assert creds.stdout.splitlines() == [USERNAME, done.stdout.strip()]
    # pip 26.3's subprocess provider (pip/_internal/network/auth.py, KeyRingCliProvider._get_creds).
    as_json = _keyring_cli(["--mode=creds", "--output=json", "get", AR, USERNAME], {})
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout) == {"username": USERNAME, "password": done.stdout.strip()}
    # ... and its host, which pip asks after the URL: nothing (rc 1), on stdout nothing.
    host = _keyring_cli(["--mode=creds", "--output=json", "get", "us-python.pkg.dev", USERNAME], {})
    assert (host.returncode, host.stdout) == (1, "")


def test_keyrings_cli_failure_is_one_line_no_traceback(tmp_path: Path) -> None:
    missing = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing.json")}
    done = _keyring_cli(
        ["get", AR, USERNAME], {**missing, "PYTHON_KEYRING_BACKEND": f"{GcptokenKeyring.__module__}.GcptokenKeyring"}
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("gcptoken: no access token for us-python.pkg.dev:") and done.stderr.count("\n") == 1


def test_importing_the_backend_loads_nothing_heavy() -> None:
    # keyring's CLI imports every backend's entry point on each call, asked about our hosts or not.
    code = (
        "import sys, gcptoken.helpers.keyring_backend;"
        "heavy = ('httpx', 'cryptography', 'gcptoken.credentials', 'gcptoken.helpers.tokens');"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_a_cached_answer_loads_neither_httpx_nor_cryptography(emulator: EmulatorClient, adc: dict[str, str]) -> None:
    GcptokenKeyring().get_password(AR, USERNAME)  # fills the disk cache
    code = (
        "import sys; from gcptoken.helpers.keyring_backend import GcptokenKeyring as K;"
        f"assert K().get_password({AR!r}, 'oauth2accesstoken');"
        "print(sorted(m for m in ('httpx', 'cryptography') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


@pytest.fixture
def hung_token_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A user credential whose token endpoint accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    token_uri = f"http://127.0.0.1:{listener.getsockname()[1]}/token"
    user = {"type": "authorized_user", "refresh_token": "1//r", "client_id": "c", "client_secret": "s"}
    path = tmp_path / "user.json"
    path.write_text(json.dumps({**user, "token_uri": token_uri}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.delenv("GCPTOKEN_EMULATOR_HOST", raising=False)
    with listener:
        yield


@pytest.mark.usefixtures("hung_token_endpoint")
def test_a_hung_token_endpoint_costs_a_lookup_its_deadline_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # gcptoken's usual limits would hold pip here for 30 s (3 tries of 10 s); the bound below is
    # far above the deadline set and far below that, so it says which limit ran, not how fast.
    monkeypatch.setenv(TIMEOUT_ENV, "0.9")
    started = time.monotonic()
    assert GcptokenKeyring().get_password(AR, USERNAME) is None
    assert time.monotonic() - started < 15
    assert capsys.readouterr().err.startswith("gcptoken: no access token for us-python.pkg.dev:")


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "1e9"])
def test_a_timeout_that_is_not_seconds_is_named_and_the_default_kept(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, value)
    assert keyring_backend._timeout() * DEADLINE_TIMEOUTS == keyring_backend.DEFAULT_TIMEOUT
    assert capsys.readouterr().err.startswith(f"gcptoken: ignoring {TIMEOUT_ENV}=")


def test_the_deadline_arithmetic_is_gcptokens() -> None:
    assert keyring_backend._TIMEOUTS_PER_CALL == DEADLINE_TIMEOUTS
