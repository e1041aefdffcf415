"""Files on a shared host: the token cache and the emulator's state dir are used only when they are
ours and writable by nobody else, and no planted symlink is ever followed. The other user is a
real one (``setpriv`` to an unprivileged uid), as an attacker on the same machine would be."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gcptoken.cache.disk import DiskTokenCache
from gcptoken.cache.rules import cache_key, private_key_proof, service_account_identity
from gcptoken.testing import EmulatorClient
from gcptoken.tokens import Token, utc_from_epoch
from tests.cli.test_cli import gcptoken

AUD = "https://svc-shared.a.run.app"
OTHER_UID = 4242

needs_a_second_user = pytest.mark.skipif(
    not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("setpriv")),
    reason="acting as a second, unprivileged user needs root and setpriv (CI runs as root)",
)


def as_other_user(*command: str) -> None:
    subprocess.run(
        ["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups", *command],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A world-writable sticky directory, like /tmp, that both users can reach."""
    path = Path(tempfile.mkdtemp(prefix="gcptoken-shared-"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def env(emulator: EmulatorClient, key_path: Path) -> dict[str, str]:
    return {"GCPTOKEN_EMULATOR_HOST": emulator.host_port, "GOOGLE_APPLICATION_CREDENTIALS": str(key_path)}


def _requests(emulator: EmulatorClient, key_info: dict[str, str]) -> int:
    return len(emulator.token_requests_by(key_info["client_email"]))


def _works_without_the_cache(
    emulator: EmulatorClient, env: dict[str, str], key_info: dict[str, str], fragment: str
) -> None:
    for run in range(2):
        result = gcptoken("id", AUD, env=env)
        assert result.code == 0 and result.out.count(".") == 2, result.err
        assert "Traceback" not in result.err
        lines = result.err.splitlines()
        assert len(lines) == 1 and "not using the token cache" in lines[0] and fragment in lines[0], result.err
        assert _requests(emulator, key_info) == run + 1  # no cache: every run asks


@needs_a_second_user
def test_a_cache_directory_planted_by_another_user_is_not_used(
    emulator: EmulatorClient, env: dict[str, str], key_info: dict[str, str], shared_tmp: Path
) -> None:
    planted = shared_tmp / "gcptoken"
    as_other_user("mkdir", "-m", "0777", str(planted))
    as_other_user("sh", "-c", f'echo \'{{"version": 1, "tokens": {{}}}}\' > {planted}/tokens.json')
    _works_without_the_cache(emulator, {**env, "XDG_CACHE_HOME": str(shared_tmp)}, key_info, f"uid {OTHER_UID}")
    assert sorted(p.name for p in planted.iterdir()) == ["tokens.json"]  # nothing of ours written there
    assert os.stat(planted / "tokens.json").st_uid == OTHER_UID


@needs_a_second_user
def test_a_cache_directory_symlink_planted_by_another_user_is_not_followed(
    emulator: EmulatorClient, env: dict[str, str], key_info: dict[str, str], shared_tmp: Path, tmp_path: Path
) -> None:
    ours = tmp_path / "where-the-link-points"
    ours.mkdir(mode=0o700)
    as_other_user("ln", "-s", str(ours), str(shared_tmp / "gcptoken"))
    _works_without_the_cache(emulator, {**env, "XDG_CACHE_HOME": str(shared_tmp)}, key_info, "symbolic link")
    assert list(ours.iterdir()) == []


@needs_a_second_user
def test_a_state_dir_of_another_user_or_a_planted_symlink_is_refused(shared_tmp: Path, tmp_path: Path) -> None:
    theirs = shared_tmp / "theirs"
    as_other_user("mkdir", "-m", "0755", str(theirs))
    link = shared_tmp / "link"
    as_other_user("ln", "-s", str(tmp_path), str(link))
    for directory, fragment in ((theirs, f"uid {OTHER_UID}"), (link, "symbolic link")):
        result = gcptoken("emulator", "--port", "0", "--state-dir", str(directory), timeout=30)
        assert result.code == 3 and result.out == ""
        assert result.err.startswith("gcptoken: error: state dir: ") and fragment in result.err, result.err
        assert len(result.err.splitlines()) == 1 and "cannot listen" not in result.err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("planted", ["tokens.json", "tokens.lock"])
def test_symlinks_inside_the_cache_directory_are_not_followed(
    emulator: EmulatorClient, env: dict[str, str], key_info: dict[str, str], tmp_path: Path, planted: str
) -> None:
    cache = tmp_path / "xdg" / "gcptoken"
    cache.mkdir(parents=True, mode=0o700)
    victim = tmp_path / "precious"
    victim.write_text("do not touch\n")
    (cache / planted).symlink_to(victim)
    _works_without_the_cache(emulator, {**env, "XDG_CACHE_HOME": str(tmp_path / "xdg")}, key_info, "symbolic link")
    assert victim.read_text() == "do not touch\n"


def test_a_group_or_world_writable_cache_directory_is_not_used(
    emulator: EmulatorClient, env: dict[str, str], key_info: dict[str, str], tmp_path: Path
) -> None:
    cache = tmp_path / "xdg" / "gcptoken"
    cache.mkdir(parents=True)
    cache.chmod(0o777)
    _works_without_the_cache(emulator, {**env, "XDG_CACHE_HOME": str(tmp_path / "xdg")}, key_info, "writable by others")


def test_a_world_writable_state_dir_and_planted_links_in_it(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    refused = gcptoken("emulator", "--port", "0", "--state-dir", str(loose), timeout=30)
    assert refused.code == 3 and "state dir" in refused.err and "writable by others" in refused.err
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    victim = tmp_path / "precious"
    victim.write_text("do not touch\n")
    (private / "service-account.json").symlink_to(victim)
    (private / "state.json").symlink_to(victim)
    from gcptoken.emulator import EmulatorServer

    with pytest.raises(ValueError, match=r"state dir: .*symbolic link"):
        EmulatorServer(state_dir=private)  # state.json is read without following the link
    (private / "state.json").unlink()
    with EmulatorServer(state_dir=private):
        pass
    assert victim.read_text() == "do not touch\n"
    assert not (private / "service-account.json").is_symlink()  # replaced, not written through
    assert stat.S_IMODE(os.stat(private / "service-account.json").st_mode) == 0o600


def _entry(value: Any = "eyJ.good.token", **changes: Any) -> dict[str, Any]:
    now = time.time()
    entry = {
        "value": value,
        "kind": "id_token",
        "expires_at": now + 3600,
        "expires_at_iso": utc_from_epoch(now + 3600).isoformat(),
        "fetched_at": now,
    }
    return {**entry, **changes}


HOSTILE_ENTRIES = {
    "nan-expiry": _entry(expires_at=math.nan),
    "infinite-expiry": _entry(expires_at=math.inf),
    "absurd-expiry": _entry(expires_at=time.time() + 86400 * 365 * 100),
    "string-expiry": _entry(expires_at=str(time.time() + 3600)),
    "bool-expiry": _entry(expires_at=True),
    "fetched-in-the-future": _entry(fetched_at=time.time() + 86400),
    "value-with-space": _entry("eyJ.a b.c"),
    "value-with-newline": _entry("eyJ.a\nX-Injected: 1.c"),
    "value-with-control": _entry("eyJ.a\x1b[31m.c"),
    "value-non-ascii": _entry("eyJ.é.c"),
    "value-a-number": _entry(12345),
    "value-empty": _entry(""),
    "value-huge": _entry("a" * 100_000),
    "unknown-kind": _entry(kind="refresh_token"),
    "iso-a-list": _entry(expires_at_iso=["x"]),
    "entry-a-list": [1, 2],
}


@pytest.mark.parametrize("name", list(HOSTILE_ENTRIES))
@pytest.mark.parametrize("path", ["cached-path", "full-path"])
def test_hostile_cache_entries_are_misses(
    emulator: EmulatorClient, env: dict[str, str], key_info: dict[str, str], name: str, path: str
) -> None:
    identity = service_account_identity(
        key_info["client_email"],
        key_info["private_key_id"],
        f"{emulator.url}/token",
        private_key_proof(key_info["private_key"]),
    )
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "gcptoken"
    cache.mkdir(mode=0o700, exist_ok=True)
    document = {"version": 1, "tokens": {cache_key(identity, "id_token", AUD): HOSTILE_ENTRIES[name]}}
    (cache / "tokens.json").write_text(json.dumps(document))
    extra = ["--format", "claims"] if path == "full-path" else []
    result = gcptoken("id", AUD, *extra, env=env)
    assert result.code == 0 and result.err == ""
    assert "good" not in result.out and "Injected" not in result.out
    assert _requests(emulator, key_info) == 1  # a miss: the real token was fetched


def test_the_planted_entry_test_reaches_the_real_key() -> None:
    """The hostile-entry test would pass vacuously if its key missed; a valid entry at the same key hits."""
    directory = Path(tempfile.mkdtemp())
    try:
        cache = DiskTokenCache(directory)
        (directory / "tokens.json").write_text(json.dumps({"version": 1, "tokens": {"k": _entry()}}))
        token = cache.get("k")
        assert token is not None and token.value == "eyJ.good.token"
        for name, entry in HOSTILE_ENTRIES.items():
            (directory / "tokens.json").write_text(json.dumps({"version": 1, "tokens": {"k": entry}}))
            assert cache.get("k") is None, name
    finally:
        shutil.rmtree(directory)


def _slow_fetch(directory: str, started: Any, release: Any) -> str:
    def fetch() -> Token:
        started.set()
        release.wait(30)
        return Token("slow.token.value", utc_from_epoch(time.time() + 3600), "id_token")

    return DiskTokenCache(directory).get_or_fetch("credential-a", fetch).value


def test_an_unrelated_credential_does_not_wait_behind_a_slow_fetch(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(1) as pool:
        started, release = manager.Event(), manager.Event()
        slow = pool.apply_async(_slow_fetch, (str(tmp_path), started, release))
        assert started.wait(30), "the slow fetch never started"
        quick = DiskTokenCache(tmp_path).get_or_fetch(
            "credential-b", lambda: Token("quick.token.value", utc_from_epoch(time.time() + 3600), "id_token")
        )
        assert quick.value == "quick.token.value"
        assert not slow.ready()  # b finished while a's fetch still held a's lock
        release.set()
        assert slow.get(30) == "slow.token.value"
    both = DiskTokenCache(tmp_path)
    assert (both.get("credential-a") or Token("", utc_from_epoch(0))).value == "slow.token.value"
    assert (both.get("credential-b") or Token("", utc_from_epoch(0))).value == "quick.token.value"
