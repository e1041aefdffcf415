"""google-auth and gcloud, unchanged, against the emulator's metadata server (an emulated VM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import google.auth
import google.auth.transport.requests
import pytest
from google.auth import compute_engine
from google.auth.compute_engine import _metadata
from google.oauth2 import id_token as google_id_token

from gcptoken import Verifier
from gcptoken.testing import EmulatorClient

from .test_gcloud import GCLOUD, gcloud_env, run_gcloud

AUD = "https://svc-md-peer.a.run.app"


@pytest.fixture
def on_emulated_vm(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> EmulatorClient:
    """google-auth pointed at the emulator's metadata server, with no other credential around."""
    monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", emulator.host_port)  # read at google-auth's import
    monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", False)
    monkeypatch.setenv("GCE_METADATA_HOST", emulator.host_port)
    monkeypatch.setenv("GCE_METADATA_IP", emulator.host_port)
    monkeypatch.delenv("NO_GCE_CHECK", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "empty-gcloud-config"))
    monkeypatch.setenv("HOME", str(tmp_path))
    return emulator


@pytest.fixture
def request_adapter() -> Any:
    return google.auth.transport.requests.Request()


def test_compute_engine_id_token_credentials(
    on_emulated_vm: EmulatorClient, certs_url: str, request_adapter: Any
) -> None:
    credentials = compute_engine.IDTokenCredentials(request_adapter, AUD, use_metadata_identity_endpoint=True)
    credentials.refresh(request_adapter)
    assert credentials.token is not None
    claims = Verifier(AUD, certs=certs_url).verify(credentials.token)
    assert claims["sub"] == on_emulated_vm.state.default_account.unique_id


def test_google_auth_default_finds_the_metadata_server(
    on_emulated_vm: EmulatorClient, certs_url: str, request_adapter: Any
) -> None:
    credentials, project = google.auth.default()
    assert isinstance(credentials, compute_engine.Credentials)
    assert project == on_emulated_vm.state.project_id
    credentials.refresh(request_adapter)
    assert credentials.token is not None and credentials.token.startswith("ya29.")
    token = google_id_token.fetch_id_token(request_adapter, AUD)
    assert Verifier(AUD, certs=certs_url).verify(token)["aud"] == AUD


@pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed on this machine")
def test_gcloud_with_no_account_uses_the_metadata_server(
    emulator: EmulatorClient, certs_url: str, tmp_path: Path
) -> None:
    env = gcloud_env(emulator, tmp_path / "gcloud-config")
    for name in ("GCE_METADATA_ROOT", "GCE_METADATA_HOST", "GCE_METADATA_IP"):
        env[name] = emulator.host_port
    for name in ("CLOUDSDK_CORE_CHECK_GCE_METADATA", "CLOUDSDK_AUTH_TOKEN_HOST", "NO_GCE_CHECK"):
        env.pop(name, None)
    printed = run_gcloud(["auth", "print-identity-token", f"--audiences={AUD}", "--token-format=full"], env)
    assert printed.returncode == 0, printed.stderr
    claims = Verifier(AUD, certs=certs_url).verify(printed.stdout.strip())
    assert claims["email"] == emulator.state.default_account.email
    assert claims["google"]["compute_engine"]["project_id"] == emulator.state.project_id
