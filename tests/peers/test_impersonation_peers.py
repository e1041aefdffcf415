"""google-auth and gcloud impersonating service accounts through the emulator's IAM Credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import google.auth
import google.auth.transport.requests
import httpx
import pytest
from google.auth import iam as google_iam
from google.auth import impersonated_credentials
from google.oauth2 import service_account as google_service_account

from gcptoken import Verifier
from gcptoken.testing import EmulatorClient

from .test_gcloud import GCLOUD, gcloud_env, run_gcloud

AUD = "https://svc-imp-peer.a.run.app"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def point_iam_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """google-auth's IAM endpoints are module constants read at call time (DESIGN.md); it takes only
    the target from an impersonated file's service_account_impersonation_url, not the host."""
    base = f"{url}/v1/projects/-/serviceAccounts/{{}}"
    for name, method in (
        ("_IAM_ENDPOINT", "generateAccessToken"),
        ("_IAM_IDTOKEN_ENDPOINT", "generateIdToken"),
        ("_IAM_SIGN_ENDPOINT", "signBlob"),
        ("_IAM_SIGNJWT_ENDPOINT", "signJwt"),
    ):
        monkeypatch.setattr(google_iam, name, f"{base}:{method}")


@pytest.fixture
def iam_at_emulator(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> EmulatorClient:
    point_iam_at(monkeypatch, emulator.url)
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


@pytest.fixture
def user_token_endpoint_at(monkeypatch: pytest.MonkeyPatch) -> Any:
    """google-auth ignores an authorized_user file's token_uri ("always overrides" with this module
    constant, read at call time), so that constant is what points user refreshes at the emulator."""
    from google.oauth2 import credentials as user_credentials

    def point(url: str) -> None:
        monkeypatch.setattr(user_credentials, "_GOOGLE_OAUTH2_TOKEN_ENDPOINT", f"{url}/token")

    return point


def test_google_auth_user_credentials_refresh(
    emulator: EmulatorClient, certs_url: str, user_token_endpoint_at: Any
) -> None:
    from google.oauth2 import credentials as user_credentials

    user_token_endpoint_at(emulator.url)
    info = emulator.state.issue_refresh_token("peer-user@example.com")
    credentials = user_credentials.Credentials.from_authorized_user_info(info)
    credentials.refresh(google.auth.transport.requests.Request())
    assert credentials.token is not None and credentials.token.startswith("ya29.")
    assert Verifier(info["client_id"], certs=certs_url).verify(credentials.id_token)["email"] == "peer-user@example.com"


@pytest.mark.filterwarnings("ignore:The load_credentials_from_file method is deprecated:DeprecationWarning")
def test_google_auth_loads_the_state_dir_files_unchanged(
    tmp_path: Path, user_token_endpoint_at: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gcptoken.emulator import EmulatorServer

    with EmulatorServer(state_dir=tmp_path) as server:
        user_token_endpoint_at(server.url)
        point_iam_at(monkeypatch, server.url)
        request: Any = google.auth.transport.requests.Request()
        for name in ("authorized-user.json", "impersonated-service-account.json"):
            credentials, _ = google.auth.load_credentials_from_file(str(tmp_path / name), scopes=[CLOUD_PLATFORM])
            credentials.refresh(request)
            assert credentials.token.startswith("ya29."), name
            info = httpx.post(f"{server.url}/tokeninfo", data={"access_token": credentials.token}).json()
            expected = "user@example.com" if name.startswith("authorized") else "impersonated@"
            assert info["email"].startswith(expected), name
