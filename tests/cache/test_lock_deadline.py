"""A process stopped or stuck while holding the disk cache's lock (Ctrl-Z mid-fetch, a hung token
server) never makes another wait past its own timeout: after it, the other fetches without the
lock, and still writes the cache (atomically). Every user of DiskTokenCache: the library, ``gcptoken
id``/``access``, ``kube-credential`` (helpers.tokens, which the docker helper and keyring share)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gcptoken.cache.disk import LOCK_FILE, DiskTokenCache, cache_dir
from gcptoken.private_files import PrivateDir
from gcptoken.testing import EmulatorClient
from gcptoken.tokens import Token

GCPTOKEN = str(Path(sys.executable).parent / "gcptoken")
# Holds an exclusive lock on every byte of the lock file (length 0: to its end and beyond), as a
# process stopped mid-fetch holds its entry's byte, until killed.
HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.lockf(fd, fcntl.LOCK_EX, 0, 0)
print("held", flush=True)
time.sleep(600)
"""


def held_lock(directory: Path) -> Iterator[None]:
    with PrivateDir(str(directory)):  # created as the cache creates it: 0700, ours
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory / LOCK_FILE)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


@pytest.fixture
def stuck_holder() -> Iterator[None]:
    yield from held_lock(cache_dir())


def test_the_library_fetches_without_the_lock_after_its_wait(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    token = Token("ya29.fetched-anyway", datetime.now(timezone.utc) + timedelta(hours=1), "access_token")
    for _ in held_lock(directory):
        cache = DiskTokenCache(directory)
        assert cache.get_or_fetch("key", lambda: token, wait=0.2) == token
        assert cache.get("key") == token  # written all the same


@pytest.mark.parametrize(
    "argv",
    [
        ["access", "--timeout", "1"],
        ["id", "https://svc.example", "--timeout", "1"],
        ["kube-credential", "--timeout", "1"],
    ],
    ids=["access", "id", "kube-credential"],
)
def test_commands_do_not_wait_past_their_timeout_for_a_stuck_process(
    stuck_holder: None, emulator: EmulatorClient, key_path: Path, argv: list[str]
) -> None:
    env = {**os.environ, "GCPTOKEN_EMULATOR_HOST": emulator.host_port, "GOOGLE_APPLICATION_CREDENTIALS": str(key_path)}
    # Before the fix this blocked forever; the subprocess timeout only keeps a regression from hanging the suite.
    result = subprocess.run(
        [GCPTOKEN, *argv], env=env, capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.strip()
    # The token went to the cache anyway: the next run answers from it (no new fetch).
    before = len(emulator.requests())
    again = subprocess.run([GCPTOKEN, *argv], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0 and again.stdout == result.stdout
    assert len(emulator.requests()) == before
