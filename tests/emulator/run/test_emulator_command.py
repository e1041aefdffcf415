"""``gcptoken emulator --run NAME=URL``: the front doors a user starts from the command line."""

from __future__ import annotations

import re
import signal
import socket
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
        (["--run", "api=http://127.0.0.1:1", "--run-port", "api=http"], "--run-port api: one port, 0-65535"),
        (["--run", "api=http://127.0.0.1:1", "--run-port", "api=70000"], "--run-port api: one port, 0-65535"),
        (["--run", "api=http://127.0.0.1:1", "--run-port", "web=8080"], "no --run web=URL"),
        # As gcloud run services add-iam-policy-binding: an account that does not exist is refused.
        (
            ["--run", "api=http://127.0.0.1:1", "--run-invoker", "api=serviceAccount:caller@x.iam.gserviceaccount.com"],
            "--run-invoker: Service account caller@x.iam.gserviceaccount.com does not exist.",
        ),
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
    with socket.socket() as probe:  # a port free a moment ago: --run-port makes it the service's
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command += ["--run", f"public={echo_url}", "--run-allow-unauthenticated", "public", "--run", f"private={echo_url}"]
    command += ["--run-port", f"private={port}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        urls: dict[str, str] = {}
        told: list[str] = []  # what the app behind each is told to pass (never K_SERVICE)
        while len(told) < 2:
            line = process.stderr.readline()
            assert line, "the emulator ended before announcing its services"
            found = re.match(r"gcptoken: Cloud Run service (\S+) on (\S+) -> ", line)
            if found:
                urls[found[1]] = found[2]
            if "app behind it: CloudRunIdentity(" in line:
                told.append(line)
        assert f"'http://127.0.0.1:{port}', 'http://localhost:{port}'" in told[1]
        assert "k_service_required=False" in told[1]
        assert "gcptoken cannot enforce that" in told[1]  # the app's own port is the user's to close
        assert httpx.get(urls["public"] + "/open").status_code == 200
        assert urls["private"] == f"http://127.0.0.1:{port}"
        refused = httpx.get(urls["private"])
        assert refused.status_code == 403 and "Error: Forbidden" in refused.text
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    assert process.returncode == 0
