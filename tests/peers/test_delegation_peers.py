"""google-auth's domain-wide delegation, unchanged, against the emulator's grants: a key file's
``with_subject`` and impersonated credentials with a ``subject`` (IAM signJwt, then the token
endpoint) get the user's token when granted, and Google's refusal when not."""

from __future__ import annotations

from typing import Any

import google.auth.transport.requests
import pytest
from google.auth import exceptions as google_exceptions
from google.auth import impersonated_credentials
from google.oauth2 import service_account as google_service_account

from gcptoken.emulator.admin.delegation import grant_delegation
from gcptoken.emulator.oauth2.delegation import UNAUTHORIZED_CLIENT
from gcptoken.testing import EmulatorClient
from gcptoken.verify.tokeninfo import tokeninfo

from .test_impersonation_peers import CLOUD_PLATFORM, point_iam_at

USER = "carol@example.com"
GMAIL = "https://www.googleapis.com/auth/gmail.readonly"


@pytest.fixture(autouse=True)
def _at_the_emulator(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)  # our tokeninfo
    emulator.state.create_user(USER)


def test_google_auth_with_subject(emulator: EmulatorClient, key_info: dict[str, str]) -> None:
    request: Any = google.auth.transport.requests.Request()
    credentials = google_service_account.Credentials.from_service_account_info(key_info, scopes=[GMAIL])
    delegated = credentials.with_subject(USER)
    with pytest.raises(google_exceptions.RefreshError) as refused:
        delegated.refresh(request)
    assert "unauthorized_client" in str(refused.value) and UNAUTHORIZED_CLIENT in str(refused.value)
    grant_delegation(emulator.state, key_info["client_email"], [GMAIL])
    delegated.refresh(request)
    assert tokeninfo(delegated.token)["email"] == USER


def test_google_auth_impersonated_credentials_with_subject(
    emulator: EmulatorClient, key_info: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    point_iam_at(monkeypatch, emulator.url)
    monkeypatch.setattr(impersonated_credentials, "_GOOGLE_OAUTH2_TOKEN_ENDPOINT", f"{emulator.url}/token")
    target = emulator.new_key("peer-delegating")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")
    grant_delegation(emulator.state, target, [GMAIL])
    source = google_service_account.Credentials.from_service_account_info(key_info, scopes=[CLOUD_PLATFORM])
    delegated = impersonated_credentials.Credentials(
        source_credentials=source, target_principal=target, target_scopes=[GMAIL], subject=USER
    )
    delegated.refresh(google.auth.transport.requests.Request())
    assert isinstance(delegated.token, str) and tokeninfo(delegated.token)["email"] == USER
    assert emulator.requests(f"/v1/projects/-/serviceAccounts/{target}:signJwt")[0]["status"] == 200
