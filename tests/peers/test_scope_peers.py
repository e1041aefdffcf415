"""google-auth against the emulator's scope refusals: the RefreshError Google's own answer gives it,
and its usual scopes still work; google-auth-oauthlib's sign-in URL for a scope Google does not
know gets Google's error page."""

from __future__ import annotations

import importlib
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import httpx
import pytest
from google.oauth2 import service_account as google_service_account

from gcptoken.emulator.state.state_dir import signin_clients
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


def test_google_auth_oauthlibs_flow_meets_googles_error_page(
    emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_module: Any = importlib.import_module("google_auth_oauthlib.flow")  # no type stubs
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the emulator speaks plain HTTP on loopback

    desktop, _ = signin_clients(emulator.state)
    installed = desktop.installed_file(emulator.url, emulator.state.project_id)
    for scopes, status in ((["openid", "not-a-scope"], 400), (["openid", S1], 200)):
        flow = flow_module.InstalledAppFlow.from_client_config(
            installed, scopes=scopes, redirect_uri="http://127.0.0.1:1/"
        )
        url, _ = flow.authorization_url()
        with httpx.Client() as browser:  # what the flow's browser is shown
            page = browser.get(url)
        assert page.status_code == status, page.text
        assert ("Error 400: invalid_scope" in page.text and "invalid=[not-a-scope]" in page.text) == (status == 400)
