"""gcloud, unchanged, against the emulator (skipped only where gcloud is not installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gcptoken import Verifier
from gcptoken.emulator import scenarios
from gcptoken.testing import CLOSED_LOOPBACK, EmulatorClient

AUD = "https://svc-gcloud.a.run.app"
GCLOUD = shutil.which("gcloud")

pytestmark = pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed on this machine")


def gcloud_env(emulator: EmulatorClient, config: Path) -> dict[str, str]:
    return {**os.environ, **scenarios.gcloud_environment(emulator.url, config, CLOSED_LOOPBACK)}


def run_gcloud(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert GCLOUD is not None
    return subprocess.run(
        [GCLOUD, *args], env=env, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL
    )


def test_gcloud_print_identity_token_from_a_service_account_key(
    emulator: EmulatorClient, key_path: Path, key_info: dict[str, str], certs_url: str, tmp_path: Path
) -> None:
    env = gcloud_env(emulator, tmp_path / "gcloud-config")
    activate = run_gcloud(["auth", "activate-service-account", "--key-file", str(key_path)], env)
    assert activate.returncode == 0, activate.stderr
    printed = run_gcloud(["auth", "print-identity-token", f"--audiences={AUD}"], env)
    assert printed.returncode == 0, printed.stderr
    claims = Verifier(AUD, certs=certs_url).verify(printed.stdout.strip())
    assert claims["email"] == key_info["client_email"]
    assert claims["aud"] == AUD
    requested = [
        e["detail"]["assertion"]["claims"].get("target_audience")
        for e in emulator.token_requests_by(key_info["client_email"])
    ]
    assert AUD in requested
