"""google-auth and gcloud impersonating service accounts through the emulator's IAM Credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import google.auth.transport.requests
import pytest
from google.auth import iam as google_iam
from google.auth import impersonated_credentials
from google.oauth2 import service_account as google_service_account

from gcptoken import Verifier
from gcptoken.testing import EmulatorClient

from .test_gcloud import GCLOUD, gcloud_env, run_gcloud

AUD = "https://svc-imp-peer.a.run.app"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


@pytest.fixture
def iam_at_emulator(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> EmulatorClient:
    """google-auth's IAM endpoints are module constants read at call time (DESIGN.md)."""
    base = f"{emulator.url}/v1/projects/-/serviceAccounts/{{}}"
    for name, method in (
        ("_IAM_ENDPOINT", "generateAccessToken"),
        ("_IAM_IDTOKEN_ENDPOINT", "generateIdToken"),
        ("_IAM_SIGN_ENDPOINT", "signBlob"),
        ("_IAM_SIGNJWT_ENDPOINT", "signJwt"),
    ):
        monkeypatch.setattr(google_iam, name, f"{base}:{method}")
    return emulator


@pytest.fixture
def chain(emulator: EmulatorClient, key_info: dict[str, str]) -> tuple[str, str]:
    """A delegate and a target: source → delegate → target, each allowed to act as the next."""
    delegate = emulator.new_key("peer-hop")["client_email"]
    target = emulator.new_key("peer-target")["client_email"]
    emulator.state.grant_token_creator(delegate, f"serviceAccount:{key_info['client_email']}")
    emulator.state.grant_token_creator(target, f"serviceAccount:{delegate}")
    emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")
    return delegate, target


def test_google_auth_impersonated_and_id_token_credentials(
    iam_at_emulator: EmulatorClient, key_info: dict[str, str], chain: tuple[str, str], certs_url: str
) -> None:
    delegate, target = chain
    request: Any = google.auth.transport.requests.Request()
    source = google_service_account.Credentials.from_service_account_info(key_info, scopes=[CLOUD_PLATFORM])
    via_delegate = impersonated_credentials.Credentials(
        source_credentials=source,
        target_principal=target,
        target_scopes=[CLOUD_PLATFORM],
        delegates=[f"projects/-/serviceAccounts/{delegate}"],
    )
    via_delegate.refresh(request)
    assert via_delegate.token is not None and via_delegate.token.startswith("ya29.")
    # google-auth's IDTokenCredentials calls generateIdToken with the *target's* own token, so the
    # target needs Token Creator on itself: the same grant it needs against real Google.
    iam_at_emulator.state.grant_token_creator(target, f"serviceAccount:{target}")
    direct = impersonated_credentials.Credentials(
        source_credentials=source, target_principal=target, target_scopes=[CLOUD_PLATFORM]
    )
    id_credentials = impersonated_credentials.IDTokenCredentials(direct, target_audience=AUD, include_email=True)
    id_credentials.refresh(request)
    assert id_credentials.token is not None
    claims = Verifier(AUD, certs=certs_url).verify(id_credentials.token)
    assert claims["email"] == target
    calls = [e for e in iam_at_emulator.requests() if e.get("detail", {}).get("target") == target]
    methods = [c["detail"]["iam"] for c in calls]
    assert methods[0] == "generateAccessToken" and methods[-1] == "generateIdToken"
    assert calls[0]["detail"]["delegates"] == [f"projects/-/serviceAccounts/{delegate}"]


@pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed on this machine")
def test_gcloud_impersonate_service_account(
    emulator: EmulatorClient, key_path: Path, chain: tuple[str, str], certs_url: str, tmp_path: Path
) -> None:
    _, target = chain
    env = gcloud_env(emulator, tmp_path / "gcloud-config")
    env["CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS"] = f"{emulator.url}/"
    activate = run_gcloud(["auth", "activate-service-account", "--key-file", str(key_path)], env)
    assert activate.returncode == 0, activate.stderr
    printed = run_gcloud(
        [
            "auth",
            "print-identity-token",
            f"--impersonate-service-account={target}",
            f"--audiences={AUD}",
            "--include-email",
        ],
        env,
    )
    assert printed.returncode == 0, printed.stderr
    claims = Verifier(AUD, certs=certs_url).verify(printed.stdout.strip())
    assert claims["email"] == target
