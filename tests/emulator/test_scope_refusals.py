"""A scope Google does not know (``not a scope``, a Cloud Run URL) is refused by every emulated
token service and sign-in endpoint in that service's own words (google-auth's and
google-auth-oauthlib's side: tests/peers/test_scope_peers.py)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gcptoken import ImpersonatedCredentials, TokenRequestError, load_credentials
from gcptoken.emulator.state.state_dir import signin_clients
from gcptoken.testing import EmulatorClient, write_key_file
from tests.emulator.sts.test_federation import Federation
from tests.scopes import S1

NOT_A_SCOPE = ["not", "a", "scope"]
FLAVOR = {"Metadata-Flavor": "Google"}


@pytest.fixture(autouse=True)
def _at_the_emulator(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)


def test_the_token_endpoint_refuses_as_google_does(key_path: Path) -> None:
    with pytest.raises(TokenRequestError) as refused:
        load_credentials(key_path).access_token(NOT_A_SCOPE)
    assert (refused.value.status, refused.value.error) == (400, "invalid_scope")
    assert refused.value.description == "Invalid OAuth scope or ID token audience provided."
    assert load_credentials(key_path).access_token([S1]).value.startswith("ya29.")  # a real scope still works


def test_the_refresh_grant_names_the_invalid_scopes(emulator: EmulatorClient, tmp_path: Path) -> None:
    info = emulator.state.issue_refresh_token("scopes-user@example.com")
    form = {k: info[k] for k in ("client_id", "client_secret", "refresh_token")} | {"grant_type": "refresh_token"}
    response = httpx.post(f"{emulator.url}/token", data={**form, "scope": "openid not a not"})
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_scope",
        "error_description": "Some requested scopes were invalid. {invalid=[not, a]}",
        "error_uri": "https://developers.google.com/identity/protocols/oauth2",
    }
    user = load_credentials(write_key_file(tmp_path, info, "user.json"))
    with pytest.raises(TokenRequestError, match=r"invalid=\[not, a, scope\]"):
        user.access_token(NOT_A_SCOPE)


def test_iam_refuses_with_invalid_argument(emulator: EmulatorClient, key_path: Path, key_info: dict[str, str]) -> None:
    target = emulator.new_key("scopes-target")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")
    impersonated = ImpersonatedCredentials(load_credentials(key_path), target)
    with pytest.raises(TokenRequestError) as refused:
        impersonated.access_token(["https://svc.a.run.app"])
    assert (refused.value.status, refused.value.error) == (400, "INVALID_ARGUMENT")
    assert refused.value.description == "Request contains an invalid argument."
    assert impersonated.access_token([S1]).kind == "access_token"


def test_sts_and_the_metadata_server_refuse_too(emulator: EmulatorClient) -> None:
    federation = Federation(emulator)
    refused = federation.exchange(federation.subject_token(), scope="not a scope")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope", refused.text
    assert federation.exchange(federation.subject_token()).status_code == 200
    token_path = "/computeMetadata/v1/instance/service-accounts/default/token"
    answer = httpx.get(f"{emulator.url}{token_path}", params={"scopes": "not,a,scope"}, headers=FLAVOR)
    assert answer.status_code == 400 and "invalid scope: not, a, scope" in answer.text
    good = httpx.get(f"{emulator.url}{token_path}", params={"scopes": S1}, headers=FLAVOR)
    assert good.status_code == 200 and json.loads(good.text)["access_token"].startswith("ya29.")


@pytest.mark.parametrize("path", ["/o/oauth2/v2/auth", "/o/oauth2/auth"])
def test_the_authorization_endpoint_shows_googles_error_page(emulator: EmulatorClient, path: str) -> None:
    desktop, _ = signin_clients(emulator.state)
    request = {"client_id": desktop.client_id, "redirect_uri": "http://127.0.0.1:1/", "response_type": "code"}
    page = httpx.get(f"{emulator.url}{path}", params={**request, "scope": f"openid not-a-scope {S1} not"})
    assert page.status_code == 400 and "location" not in page.headers  # Google's page, no redirect
    assert "Error 400: invalid_scope" in page.text
    assert f"Some requested scopes were invalid. {{valid=[openid, {S1}], invalid=[not-a-scope, not]}}" in page.text
    assert httpx.get(f"{emulator.url}{path}", params={**request, "scope": f"openid {S1}"}).status_code == 200
    admin = httpx.post(f"{emulator.url}/emulator/v1/consents", json={"url": str(page.request.url)})
    assert admin.status_code == 400 and "invalid_scope" in admin.text


@pytest.mark.parametrize(
    ("scope", "named"),
    [
        ("not-a-scope", "not-a-scope"),
        ("openid not a scope", "not"),
        ("https://svc.a.run.app", "https://svc.a.run.app"),
        (f"{S1} not-a-scope", "not-a-scope"),  # the scope Google does not know is the one named
    ],
)
def test_the_device_code_endpoint_refuses_as_google_does(emulator: EmulatorClient, scope: str, named: str) -> None:
    desktop, _ = signin_clients(emulator.state)
    answer = httpx.post(f"{emulator.url}/device/code", data={"client_id": desktop.client_id, "scope": scope})
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "invalid_scope", "error_description": f"Invalid device flow scope: {named}"},
    )
