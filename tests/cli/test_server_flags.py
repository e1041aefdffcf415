"""The flags every local server shares (--allow, --allow-host, --allow-origin, --allow-admin) are
checked before anything starts, and listening beyond loopback says who is let in."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from tests.cli.test_cli import COMMAND, gcptoken

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("emulator", "--port", "0", "--allow-admin", "nope"), "--allow-admin"),
        (("emulator", "--port", "0", "--allow-host", "a/b"), "--allow-host"),
        (("proxy", "https://svc.example", "--allow-origin", "javascript:alert(1)"), "--allow-origin"),
        (("proxy", "https://svc.example", "--allow-origin", "http://x.example/path"), "--allow-origin"),
        (("proxy", "https://svc.example", "--allow", "10.0.0.0/99"), "--allow"),
        (("proxy", "https://svc.example", "--allow-host", "*.example"), "--allow-host"),
    ],
)
def test_bad_guard_flags_are_one_line_usage_errors(args: tuple[str, ...], flag: str) -> None:
    result = gcptoken(*args, env={"GCPTOKEN_EMULATOR_HOST": "127.0.0.1:9"})
    assert result.code == 2, result.err
    assert flag in result.err and result.err.count("\n") == 1 and "Traceback" not in result.err


def _first_lines(*args: str, stdin: str | None = None) -> str:
    """Starts a server command, waits for the line that says where it listens, stops it: stderr."""
    process = subprocess.Popen(
        [*COMMAND, *args],
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert process.stdout is not None
    if stdin is not None:
        assert process.stdin is not None
        process.stdin.write(stdin)
        process.stdin.close()
        process.stdin = None
    assert process.stdout.readline()  # started
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=20)
    return err


def test_the_emulator_beyond_loopback_warns_and_keeps_its_admin_api_local() -> None:
    err = _first_lines("emulator", "--host", "0.0.0.0", "--port", "0")
    assert "warning: the emulator listens on 0.0.0.0" in err
    assert "admin API and console stay loopback-only unless --allow-admin" in err


def test_inspect_warns_that_a_token_in_argv_is_readable() -> None:
    token = "eyJhbGciOiJub25lIn0.e30."
    err = _first_lines("inspect", "--no-browser", token)
    assert "other users of this machine" in err and "pass -" in err and token not in err
    assert "other users" not in _first_lines("inspect", "--no-browser", "-", stdin=token)
