"""The CLI's on-disk token cache: hits make no request, files stay private, processes share it."""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from gcptoken.cache.disk import DiskTokenCache, cache_dir
from gcptoken.testing import EmulatorClient
from tests.cli.test_cli import gcptoken

AUD = "https://svc-disk.a.run.app"


@pytest.fixture
def env(emulator: EmulatorClient, key_path: Path) -> dict[str, str]:
    return {"GCPTOKEN_EMULATOR_HOST": emulator.host_port, "GOOGLE_APPLICATION_CREDENTIALS": str(key_path)}


def requests_by(emulator: EmulatorClient, key_info: dict[str, str]) -> int:
    return len(emulator.token_requests_by(key_info["client_email"]))


def test_a_repeated_cli_call_makes_no_request(
    emulator: EmulatorClient, env: dict[str, str], key_info: dict[str, str]
) -> None:
    first = gcptoken("id", AUD, env=env)
    second = gcptoken("id", AUD, env=env)
    assert first.code == second.code == 0
    assert first.out == second.out
    assert requests_by(emulator, key_info) == 1
    access = [gcptoken("access", env=env).out for _ in range(2)]
    assert access[0] == access[1] and requests_by(emulator, key_info) == 2
    # Within the same second the emulator signs identical claims, so the tokens may be identical:
    # the request count tells whether --no-cache went to the network.
    assert gcptoken("id", AUD, "--no-cache", env=env).code == 0
    assert requests_by(emulator, key_info) == 3


def test_the_cache_is_private_and_holds_no_secrets(env: dict[str, str], key_info: dict[str, str]) -> None:
    token = gcptoken("id", AUD, env=env).out.strip()
    path = cache_dir() / "tokens.json"
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert token in text
    for secret in (key_info["private_key"][40:80], key_info["private_key_id"], key_info["client_email"]):
        assert secret not in text  # keyed by a hash of the identity, not the identity


@pytest.mark.parametrize("content", ["{not json", json.dumps({"version": 99, "tokens": {}}), json.dumps([1])])
def test_a_corrupt_or_foreign_file_is_ignored_and_rebuilt(
    emulator: EmulatorClient, env: dict[str, str], key_info: dict[str, str], content: str
) -> None:
    path = cache_dir() / "tokens.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    result = gcptoken("id", AUD, env=env)
    assert result.code == 0 and result.err == ""
    assert json.loads(path.read_text())["version"] == 1
    assert gcptoken("id", AUD, env=env).out == result.out
    assert requests_by(emulator, key_info) == 1


def test_cache_clear_and_path(emulator: EmulatorClient, env: dict[str, str], key_info: dict[str, str]) -> None:
    where = gcptoken("cache", "path")
    assert where.out.strip() == str(cache_dir() / "tokens.json")
    assert where.out.startswith(os.environ["XDG_CACHE_HOME"])
    gcptoken("id", AUD, env=env)
    cleared = gcptoken("cache", "clear")
    assert cleared.code == 0 and "removed" in cleared.err
    assert not (cache_dir() / "tokens.json").exists()
    gcptoken("id", AUD, env=env)
    assert requests_by(emulator, key_info) == 2
    gcptoken("cache", "clear")
    assert "no cache" in gcptoken("cache", "clear").err


def test_expired_entries_are_not_served(tmp_path: Path) -> None:
    from gcptoken.tokens import Token, utc_from_epoch

    now = [1_800_000_000.0]
    cache = DiskTokenCache(tmp_path, clock=lambda: now[0])
    calls = []

    def fetch() -> Token:
        calls.append(1)
        return Token(f"t{len(calls)}", utc_from_epoch(now[0] + 3600))

    assert cache.get_or_fetch("k", fetch).value == "t1"
    now[0] += 3000
    assert cache.get_or_fetch("k", fetch).value == "t1"
    now[0] += 400  # inside the refresh margin
    assert cache.get_or_fetch("k", fetch).value == "t2"


def _cli_worker(runs: int) -> list[str]:
    """One process running the CLI ``runs`` times; the in-process cache is cleared every time so
    every run goes through the disk cache, as separate CLI invocations would."""
    from gcptoken.cache.memory import default_cache
    from gcptoken.cli.main import main

    outputs = []
    for _ in range(runs):
        default_cache().clear()
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert main(["id", AUD]) == 0
        outputs.append(buffer.getvalue())
    return outputs


def test_8_processes_x_10_runs_share_one_fetch(
    emulator: EmulatorClient, env: dict[str, str], key_info: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        outputs = [line for batch in pool.map(_cli_worker, [10] * 8) for line in batch]
    assert len(outputs) == 80 and len(set(outputs)) == 1
    assert requests_by(emulator, key_info) == 1
    assert json.loads((cache_dir() / "tokens.json").read_text())["version"] == 1


def test_a_cache_hit_imports_neither_cryptography_nor_httpx(env: dict[str, str]) -> None:
    """The cached path stays light; checked by what gets imported, never by timing."""
    import subprocess
    import sys

    assert gcptoken("id", AUD, env=env).code == 0  # fills the cache
    code = (
        "import sys\n"
        "from gcptoken.cli.main import main\n"
        f"assert main(['id', {AUD!r}]) == 0\n"
        "heavy = ('cryptography', 'httpx', 'asyncio', 'starlette', 'uvicorn')\n"
        "print(sorted(name for name in heavy if name in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[]"
