"""``gcptoken keyring``: --help carries the one-line installs; ``check URL`` says, without the
token, whether pip and uv would get one for an index URL (exit 0) or why not (exit 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gcptoken.testing import EmulatorClient, write_key_file

INDEX_HOST = "127.0.0.1:8443"  # only matched against the hosts rule: nothing listens there
INDEX = f"https://oauth2accesstoken@{INDEX_HOST}/simple/"
BIN = str(Path(sys.executable).parent)  # this venv's keyring command (the [test] extra installs it)


def _run(*args: str, env: dict[str, str], code: str | None = None) -> subprocess.CompletedProcess[str]:
    start = [sys.executable, "-c", code] if code else [sys.executable, "-m", "gcptoken"]
    return subprocess.run(
        [*start, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def key(emulator: EmulatorClient) -> dict[str, str]:
    return emulator.new_key("keyring-check")


@pytest.fixture
def env(emulator: EmulatorClient, key: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        "GOOGLE_APPLICATION_CREDENTIALS": str(write_key_file(tmp_path, key)),
        "GCPTOKEN_EMULATOR_HOST": emulator.host_port,
        "GCPTOKEN_HELPER_HOSTS": INDEX_HOST,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def _no_secret(done: subprocess.CompletedProcess[str], emulator: EmulatorClient, key: dict[str, str]) -> None:
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert "ya29." not in output and "PRIVATE KEY" not in output and key["private_key_id"] not in output
    assert not any(token in output for token in emulator.state.access_tokens)


def test_help_has_the_install_lines_and_the_settings() -> None:
    done = _run("keyring", "--help", env={})
    assert done.returncode == 0
    assert "pip install 'gcptoken[keyring]'" in done.stdout
    assert "uv tool install keyring --with 'gcptoken[keyring]'" in done.stdout
    assert "https://oauth2accesstoken@LOCATION-python.pkg.dev/PROJECT/REPOSITORY/simple/" in done.stdout
    assert "GCPTOKEN_HELPER_HOSTS" in done.stdout and "GCPTOKEN_KEYRING_TIMEOUT" in done.stdout


def test_a_configured_https_index_gets_a_token_and_the_check_does_not_show_it(
    emulator: EmulatorClient, key: dict[str, str], env: dict[str, str]
) -> None:
    done = _run("keyring", "check", INDEX, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert all(line.startswith("[ok] ") for line in lines), lines
    assert any("lists gcptoken's backend" in line for line in lines)  # keyring on PATH (uv)
    assert any("asks gcptoken's backend" in line for line in lines)  # keyring here (pip's import)
    assert key["client_email"] in lines[-1] and " s left" in lines[-1]
    assert len(emulator.token_requests_by(key["client_email"])) == 1  # really fetched, then not shown
    _no_secret(done, emulator, key)
    again = _run("keyring", "check", INDEX, env=env)  # the disk cache answers, as it will for pip and uv
    assert again.returncode == 0 and len(emulator.token_requests_by(key["client_email"])) == 1
    _no_secret(again, emulator, key)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"http://{INDEX_HOST}/simple/", "http://: a token goes over https:// only"),
        (INDEX_HOST, "not a URL"),
        ("https://pypi.org/simple/", "pypi.org is not a Google host"),
        (f"https://{INDEX_HOST.replace('8443', '9443')}/simple/", "not in GCPTOKEN_HELPER_HOSTS"),
        (f"https://alice@{INDEX_HOST}/simple/", "not oauth2accesstoken"),
        (f"https://u:s3cret-pw@{INDEX_HOST}/simple/", "carries a password"),
    ],
)
def test_an_index_gcptoken_does_not_answer_is_named_and_fetches_nothing(
    emulator: EmulatorClient, key: dict[str, str], env: dict[str, str], url: str, reason: str
) -> None:
    done = _run("keyring", "check", url, env=env)
    assert done.returncode == 1
    problems = [line for line in done.stdout.splitlines() if line.startswith("[no] ")]
    assert len(problems) == 1 and reason in problems[0], done.stdout
    assert "s3cret-pw" not in done.stdout + done.stderr
    assert emulator.token_requests_by(key["client_email"]) == []


def test_a_broken_credential_is_one_line_without_the_key(
    emulator: EmulatorClient, key: dict[str, str], env: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**key, "private_key": key["private_key"].replace("A", "B")[:200]}))
    done = _run("keyring", "check", INDEX, env={**env, "GOOGLE_APPLICATION_CREDENTIALS": str(broken)})
    assert done.returncode == 1
    problems = [line for line in done.stdout.splitlines() if line.startswith("[no] ")]
    assert len(problems) == 1 and problems[0].startswith("[no] no access token: "), done.stdout
    assert key["private_key"][40:80] not in done.stdout + done.stderr
    _no_secret(done, emulator, key)


def test_without_keyring_here_or_on_path_it_says_how_to_install_it(env: dict[str, str], tmp_path: Path) -> None:
    # keyring is installed in this venv: `sys.modules["keyring"] = None` makes its import fail as
    # it fails where it is absent (ImportError), and PATH holds no keyring command.
    code = "import sys; sys.modules['keyring'] = None; from gcptoken.cli.main import main; sys.exit(main())"
    done = _run("keyring", "check", INDEX, env={**env, "PATH": str(tmp_path)}, code=code)
    assert done.returncode == 1
    assert "keyring is not importable" in done.stdout and "pip install 'gcptoken[keyring]'" in done.stdout
    assert "no keyring command on PATH" in done.stdout and "uv tool install keyring" in done.stdout
    assert "Traceback" not in done.stderr


def test_a_keyring_set_to_another_backend_never_asks_gcptokens(env: dict[str, str]) -> None:
    done = _run("keyring", "check", INDEX, env={**env, "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"})
    assert done.returncode == 1
    assert "uses keyring.backends.null.Keyring only: not gcptoken's" in done.stdout
    assert "PYTHON_KEYRING_BACKEND makes it ask another only" in done.stdout  # the keyring on PATH too


def test_usage_errors_exit_2() -> None:
    assert _run("keyring", "check", env={}).returncode == 2
    assert _run("keyring", "check", "https://x.pkg.dev/\x1b[31m", env={}).returncode == 2
