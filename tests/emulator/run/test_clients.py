"""Every client can put the ID token in X-Serverless-Authorization (``--serverless-header``,
``header=``), leaving Authorization to the app; the emulated front door honours both headers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import requests

from gcptoken.cli.main import main
from gcptoken.credentials import load_credentials
from gcptoken.emulator.run import FrontDoorServer
from gcptoken.integrations.httpx_auth import IdTokenAuth as HttpxIdTokenAuth
from gcptoken.integrations.requests_auth import IdTokenAuth as RequestsIdTokenAuth
from gcptoken.testing import EmulatorClient
from tests.emulator.run.conftest import headers_of

APP_OWN = "Basic YXBwOnNlY3JldA=="  # the app's own scheme, which Cloud Run passes on untouched


@pytest.fixture
def caller(
    emulator: EmulatorClient,
    front: FrontDoorServer,
    key_path: Path,
    key_info: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> FrontDoorServer:
    front.grant(f"serviceAccount:{key_info['client_email']}")
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_path))
    return front


def _both_arrived(seen: dict[str, str]) -> None:
    assert seen["authorization"] == APP_OWN
    assert seen["x-serverless-authorization"].endswith(".SIGNATURE_REMOVED_BY_GOOGLE")


def test_call_with_serverless_header_keeps_the_apps_authorization(
    caller: FrontDoorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["call", caller.url + "/x", "--serverless-header", "-H", f"Authorization: {APP_OWN}"]) == 0
    _both_arrived(headers_of(json.loads(capsys.readouterr().out)))
    assert main(["call", caller.url + "/x"]) == 0  # the default: Authorization, checked as well
    assert headers_of(json.loads(capsys.readouterr().out))["authorization"].endswith(".SIGNATURE_REMOVED_BY_GOOGLE")
    # The header gcptoken sets is never the user's: one line, usage error.
    assert main(["call", caller.url, "--serverless-header", "-H", "X-Serverless-Authorization: Bearer x"]) == 2
    assert main(["call", caller.url, "-H", f"Authorization: {APP_OWN}"]) == 2
    err = capsys.readouterr().err
    assert "--header X-Serverless-Authorization: gcptoken sets it" in err and "Traceback" not in err


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_with_serverless_header(caller: FrontDoorServer, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["curl", caller.url + "/y", "--serverless-header", "--", "-s", "-H", f"Authorization: {APP_OWN}"]) == 0
    _both_arrived(headers_of(json.loads(capfd.readouterr().out)))


def test_httpx_and_requests_auth_with_the_serverless_header(caller: FrontDoorServer, key_path: Path) -> None:
    credentials = load_credentials(key_path)
    with httpx.Client(auth=HttpxIdTokenAuth(credentials, header="X-Serverless-Authorization")) as client:
        response = client.get(caller.url + "/z", headers={"Authorization": APP_OWN})
    assert response.status_code == 200
    _both_arrived(headers_of(response.json()))
    with requests.Session() as session:
        auth = RequestsIdTokenAuth(credentials, header="x-serverless-authorization")
        answer = session.get(caller.url + "/z", auth=auth, headers={"Authorization": APP_OWN})
    assert answer.status_code == 200
    _both_arrived(headers_of(answer.json()))
    with pytest.raises(ValueError, match="header must be"):
        HttpxIdTokenAuth(credentials, header="X-Token")


def test_proxy_with_serverless_header(caller: FrontDoorServer, emulator: EmulatorClient, key_path: Path) -> None:
    env = {**os.environ, "GCPTOKEN_EMULATOR_HOST": emulator.host_port}
    process = subprocess.Popen(
        [sys.executable, "-m", "gcptoken", "proxy", caller.url, "--serverless-header", "--credentials", str(key_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        proxy_url = process.stdout.readline().strip()
        response = httpx.get(proxy_url + "/p", headers={"Authorization": APP_OWN})
        assert response.status_code == 200, response.text
        seen = headers_of(response.json())
        _both_arrived(seen)
        assert "proxy-authorization" not in seen
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
