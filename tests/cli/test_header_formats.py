"""``--format header`` and ``--format headers`` of ``gcptoken id`` and ``gcptoken access``: the
headers a client sends as printed, with the quota project an access token's calls bill to and
``--serverless-header`` naming Cloud Run's own header (in this process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gcptoken import Verifier
from gcptoken.cli.main import main
from gcptoken.testing import EmulatorClient, write_key_file

AUD = "https://svc-headers.a.run.app"


@pytest.fixture
def adc(emulator: EmulatorClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh key file found as Application Default Credentials, with a quota project in it."""
    key = {**emulator.new_key("headers"), "quota_project_id": "billed-from-file"}
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_key_file(tmp_path, key)))
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    monkeypatch.delenv("GOOGLE_CLOUD_QUOTA_PROJECT", raising=False)
    return key


def printed(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main([*argv, "--no-cache"]) == 0
    return capsys.readouterr().out


def test_access_headers_carry_the_quota_project(
    adc: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As AccessTokenAuth sends it: the file's quota_project_id, GOOGLE_CLOUD_QUOTA_PROJECT over it."""
    headers = json.loads(printed(capsys, "access", "--format", "headers"))
    assert list(headers) == ["Authorization", "x-goog-user-project"]
    assert headers["Authorization"].startswith("Bearer ya29.") and headers["x-goog-user-project"] == "billed-from-file"
    monkeypatch.setenv("GOOGLE_CLOUD_QUOTA_PROJECT", "billed-from-env")
    assert json.loads(printed(capsys, "access", "--format", "headers"))["x-goog-user-project"] == "billed-from-env"
    line = printed(capsys, "access", "--format", "header")  # one header on one line: the token's
    assert line.startswith("Authorization: Bearer ya29.") and line.count("\n") == 1


def test_access_headers_without_a_quota_project_are_the_token_alone(
    emulator: EmulatorClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    monkeypatch.delenv("GOOGLE_CLOUD_QUOTA_PROJECT", raising=False)
    key = write_key_file(tmp_path, emulator.new_key("no-quota"))
    assert list(json.loads(printed(capsys, "access", "--credentials", str(key), "--format", "headers"))) == [
        "Authorization"
    ]


def test_id_serverless_header_names_cloud_runs_header(
    adc: dict[str, str], emulator: EmulatorClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--serverless-header`` as for call, curl and proxy: the token in X-Serverless-Authorization
    (Cloud Run checks it first, leaving Authorization to the app); an ID token has no quota project."""
    verifier = Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs")
    headers = json.loads(printed(capsys, "id", AUD, "--format", "headers", "--serverless-header"))
    assert list(headers) == ["X-Serverless-Authorization"]
    assert verifier.verify(headers["X-Serverless-Authorization"].removeprefix("Bearer "))["aud"] == AUD
    line = printed(capsys, "id", AUD, "--format", "header", "--serverless-header")
    assert line.startswith("X-Serverless-Authorization: Bearer ey") and line.count("\n") == 1
    assert list(json.loads(printed(capsys, "id", AUD, "--format", "headers"))) == ["Authorization"]


@pytest.mark.parametrize("output", ["token", "json", "claims"])
def test_serverless_header_without_a_header_format_is_a_usage_error(
    adc: dict[str, str], capsys: pytest.CaptureFixture[str], output: str
) -> None:
    assert main(["id", AUD, "--format", output, "--serverless-header", "--no-cache"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "--serverless-header" in captured.err
