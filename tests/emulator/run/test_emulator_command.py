"""``gcptoken emulator --run NAME=URL``: the front doors a user starts from the command line."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx
import pytest

from gcptoken.cli.main import main


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--run", "Bad_Name=http://127.0.0.1:1"], "is not a Cloud Run service name"),
        (["--run", "api"], "--run takes NAME=VALUE"),
        (["--run", "api=ftp://x"], "must start with http:// or https://"),
        (["--run", "api=http://127.0.0.1:1", "--run-invoker", "other=allUsers"], "no --run other=URL"),
        (["--run", "api=http://127.0.0.1:1", "--run-invoker", "api=bob@example.com"], "is not an IAM member"),
    ],
)
def test_bad_services_are_one_line_before_anything_listens(
    args: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["emulator", "--port", "0", *args]) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1


def test_the_command_fronts_apps_as_cloud_run_services(echo_url: str) -> None:
    command = [sys.executable, "-m", "gcptoken", "emulator", "--port", "0"]
    command += ["--run", f"public={echo_url}", "--run-allow-unauthenticated", "public", "--run", f"private={echo_url}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        urls: dict[str, str] = {}
        while len(urls) < 2:
            line = process.stderr.readline()
            assert line, "the emulator ended before announcing its services"
            found = re.match(r"gcptoken: Cloud Run service (\S+) on (\S+) -> ", line)
            if found:
                urls[found[1]] = found[2]
        assert httpx.get(urls["public"] + "/open").status_code == 200
        refused = httpx.get(urls["private"])
        assert refused.status_code == 403 and "Error: Forbidden" in refused.text
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    assert process.returncode == 0
