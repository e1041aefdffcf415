"""``gcptoken inspect`` on a shared machine: another, real user (``setpriv`` to an unprivileged uid)
reads every process's argv, as anyone may, and tries to read the inspected token. The browser is
opened on a file only we can read, so its argv holds no address; the address, even when leaked,
is spent by the real browser's first load."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gcptoken.emulator import EmulatorServer
from tests.browser import wait_for_text
from tests.cli.test_cli import COMMAND

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("setpriv")),
        reason="acting as a second, unprivileged user needs root and setpriv (CI runs as root)",
    ),
]
OTHER_UID = 4242
AUD = "https://svc-inspect-shared.a.run.app"

# Stands for the browser process: it keeps the argv webbrowser gave it for a while (as a browser
# does), in a child so that webbrowser's wait returns, and tells the test what it was given.
HOLDER = textwrap.dedent(
    """
    import os, sys, time
    if os.fork():
        sys.exit(0)
    quiet = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(quiet, fd)  # gcptoken's pipes are not held open by the "browser"
    with open(os.environ["GCPTOKEN_TEST_ARGV"], "w") as out:
        out.write(sys.argv[1])
    time.sleep(20)
    """
)

# The other user: every argv on the machine, what it can open of what they name, and the answers
# of the inspector to the addresses it finds (or is handed).
SNOOPER = textwrap.dedent(
    """
    import json, os, sys, urllib.request, urllib.error
    found = {"argv": [], "opened": [], "answers": {}}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\\0")
        except OSError:
            continue
        found["argv"].append(argv)
        for arg in argv:
            path = arg.removeprefix("file://")
            if "gcptoken-inspect-" in path:
                try:
                    found["opened"].append(open(path).read())
                except OSError as exc:
                    found["opened"].append(type(exc).__name__)
    for url in sys.argv[1:]:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                found["answers"][url] = [answer.status, answer.read().decode(errors="replace")]
        except urllib.error.HTTPError as exc:
            found["answers"][url] = [exc.code, ""]
    print(json.dumps(found))
    """
)


def snoop(tmp: Path, *urls: str) -> dict[str, Any]:
    script = tmp / "snoop.py"
    script.write_text(SNOOPER)
    script.chmod(0o644)
    ran = subprocess.run(
        [
            "setpriv",
            f"--reuid={OTHER_UID}",
            f"--regid={OTHER_UID}",
            "--clear-groups",
            sys.executable,
            str(script),
            *urls,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": os.environ.get("PATH", "")},
    )
    found: dict[str, Any] = json.loads(ran.stdout)
    return found


@pytest.fixture
def world_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inspect-shared")
    path.chmod(0o755)
    for parent in path.parents:  # the other user must reach its scripts
        if parent.stat().st_mode & stat.S_IXOTH == 0 and str(parent).startswith("/tmp"):
            parent.chmod(parent.stat().st_mode | stat.S_IXOTH)
    return path


def test_another_user_cannot_read_the_inspected_token(browser: Any, world_tmp: Path) -> None:
    with EmulatorServer() as emu:
        token = emu.state.service_account_id_token(emu.state.default_account, AUD)
        holder = world_tmp / "browser"
        holder.write_text(f"#!{sys.executable}\n{HOLDER}")
        holder.chmod(0o755)
        given = world_tmp / "argv.txt"
        env = {
            **os.environ,
            "GCPTOKEN_EMULATOR_HOST": emu.host_port,
            "BROWSER": str(holder),
            "GCPTOKEN_TEST_ARGV": str(given),
        }
        process = subprocess.Popen(
            [*COMMAND, "inspect", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(token)
        process.stdin.close()
        process.stdin = None
        url = process.stdout.readline().strip()
        try:
            deadline = time.monotonic() + 20
            while not given.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            opened = given.read_text()
            assert opened.startswith("file://") and url not in opened  # the browser's argv: a file, not the address

            before = snoop(world_tmp)
            secret = url.rstrip("/").rsplit("/", 1)[1]
            assert any(any("gcptoken-inspect-" in arg for arg in argv) for argv in before["argv"])  # argv was read
            assert not any(secret in arg or token in arg for argv in before["argv"] for arg in argv)
            # Other runs on the machine (another test session's "browser" still sleeping) may name
            # launch files already gone: unreadable too. Ours is there, and refused.
            assert "PermissionError" in before["opened"]
            assert all(item in ("PermissionError", "FileNotFoundError") for item in before["opened"])

            browser.get(opened)  # the real browser follows the file to the inspector
            wait_for_text(browser, "Google ID token")

            leaked = snoop(world_tmp, url, url + "api/initial")  # even with the address handed over
            assert leaked["answers"][url][0] == 403
            assert leaked["answers"][url + "api/initial"][0] in (403, 404, 405)
            assert token not in json.dumps(leaked)
        finally:
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=20)
    assert "second load" in err and token not in err
    assert not Path(opened.removeprefix("file://")).exists()  # the redirect file is gone with the server
    assert httpx.URL(url).host == "127.0.0.1"
