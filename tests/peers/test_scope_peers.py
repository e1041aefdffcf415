"""google-auth against the emulator's scope refusals: the RefreshError Google's own answer gives it,
and its usual scopes still work."""

from __future__ import annotations

import google.auth.exceptions
import google.auth.transport.requests
import pytest
from google.oauth2 import service_account as google_service_account

from gcptoken.testing import EmulatorClient
from tests.scopes import S1


def test_google_auth_reads_invalid_scope_as_from_google(emulator: EmulatorClient, key_info: dict[str, str]) -> None:
    info = {**key_info, "token_uri": f"{emulator.url}/token"}
    request = google.auth.transport.requests.Request()
    refused = google_service_account.Credentials.from_service_account_info(info, scopes=["https://svc.a.run.app"])
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_scope: Invalid OAuth scope"):
        refused.refresh(request)
    granted = google_service_account.Credentials.from_service_account_info(info, scopes=[S1, "openid"])
    granted.refresh(request)
    assert granted.token.startswith("ya29.")
