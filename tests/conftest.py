"""Shared fixtures. Every test runs with Google's environment variables cleared and metadata
addresses on a closed loopback port, so nothing can reach a real Google or metadata server."""

from __future__ import annotations

import logging
import os

# Before any test module imports google-auth, which reads these at import: whatever the machine's
# environment says, nothing may reach a real metadata server.
os.environ["GCE_METADATA_HOST"] = os.environ["GCE_METADATA_IP"] = "127.0.0.1:9"
os.environ.pop("GCE_METADATA_ROOT", None)
os.environ["NO_GCE_CHECK"] = "true"

import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gcptoken.cache.memory import default_cache
from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.testing import CLOSED_LOOPBACK, EmulatorClient, write_key_file
from tests.clock import Clock

# A suite started in the background of a shell without job control (`cmd &` in a script) inherits
# SIGINT ignored, and so would every program it starts: the tests that press Ctrl-C on a child
# need what a terminal gives (a handled signal is reset to its default in the child at exec).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

_CLEARED = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_AUTH_TOKEN_HOST",
)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    # A Google endpoint a test forgets to point at the emulator goes nowhere instead of to Google.
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", CLOSED_LOOPBACK)
    # gcloud's application default credentials of whoever runs the tests must never be found.
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path_factory.mktemp("empty-gcloud-config")))
    monkeypatch.setenv("GCE_METADATA_HOST", CLOSED_LOOPBACK)
    monkeypatch.setenv("GCE_METADATA_IP", CLOSED_LOOPBACK)
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    default_cache().clear()  # tokens cached by one test never serve another
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))  # nor on disk
    # The cache's pepper (cache.pepper) is the test's own too, never the runner's.
    runtime = tmp_path_factory.mktemp("xdg-runtime")
    runtime.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path_factory.mktemp("docker-config")))  # never ~/.docker


def _gcptoken_loggers() -> dict[str, logging.Logger]:
    loggers = logging.Logger.manager.loggerDict.items()
    return {name: lg for name, lg in loggers if name.startswith("gcptoken") and isinstance(lg, logging.Logger)}


@pytest.fixture(autouse=True)
def _loggers_restored() -> Iterator[None]:
    """A server command run in-process (``main(["proxy", …])``) points its logger at that test's
    stderr and stops propagation, as a process of its own should; later tests in the same worker
    must still see their records (caplog) and never write to a closed capture."""
    before = {name: (lg.handlers[:], lg.level, lg.propagate) for name, lg in _gcptoken_loggers().items()}
    yield
    for name, lg in _gcptoken_loggers().items():
        handlers, level, propagate = before.get(name, ([], logging.NOTSET, True))
        lg.handlers = handlers
        lg.setLevel(level)
        lg.propagate = propagate


@pytest.fixture
def emulator(gcptoken_emulator: EmulatorClient) -> EmulatorClient:
    return gcptoken_emulator


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def clocked_emulator(clock: Clock) -> Iterator[EmulatorServer]:
    """An emulator in this process on the module's ``clock``: move ``clock.offset`` to age its tokens."""
    with EmulatorServer(EmulatorState(clock=clock)) as server:
        yield server


@pytest.fixture
def key_info(emulator: EmulatorClient) -> dict[str, str]:
    """A key file's contents for a fresh service account (so request counts are per test)."""
    return emulator.new_key()


@pytest.fixture
def key_path(tmp_path: Path, key_info: dict[str, str]) -> Path:
    return write_key_file(tmp_path, key_info)


@pytest.fixture
def certs_url(emulator: EmulatorClient) -> str:
    return f"{emulator.url}/oauth2/v3/certs"


NODE_SOURCES = Path(__file__).parent / "peers" / "node"


@pytest.fixture(scope="session")
def node_peer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Node peer installed with npm into a directory of this test run."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are not installed: Google's Node client cannot run here (CI has both)")
    where = tmp_path_factory.mktemp("node-peer")
    for name in ("package.json", "peer.js", "redirect.js"):
        shutil.copy(NODE_SOURCES / name, where / name)
    installed = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--cache", str(where / ".npm-cache")],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert installed.returncode == 0, f"npm install failed:\n{installed.stderr[-2000:]}"
    return where


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A fresh headless Chromium per test module (see tests/browser.py)."""
    from tests.browser import chromium

    yield from chromium(tmp_path_factory.mktemp("chromium-profile"))
