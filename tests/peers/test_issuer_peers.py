"""google-auth, unchanged, verifies the emulator's IAP assertions and Firebase ID tokens the way
Google's own samples do: so those tokens, and the keys they are checked with, are Google-shaped."""

from __future__ import annotations

import google.auth.transport.requests
import pytest
from google.auth import exceptions as google_exceptions
from google.oauth2 import id_token as google_id_token

from gcptoken.testing import EmulatorClient


@pytest.fixture
def request_adapter() -> google.auth.transport.requests.Request:
    return google.auth.transport.requests.Request()


def test_google_auth_verifies_an_iap_assertion(
    emulator: EmulatorClient, request_adapter: google.auth.transport.requests.Request
) -> None:
    audience = "/projects/123456789012/global/backendServices/77"
    assertion = emulator.iap_assertion("gina@example.com", audience)
    certs_url = f"{emulator.url}/iap/verify/public_key"  # IAP's sample uses the PEM form
    claims = google_id_token.verify_token(assertion, request_adapter, audience=audience, certs_url=certs_url)
    assert claims["email"] == "gina@example.com" and claims["iss"] == "https://cloud.google.com/iap"
    with pytest.raises(ValueError, match="audience"):
        google_id_token.verify_token(assertion, request_adapter, audience="/projects/1/apps/x", certs_url=certs_url)


def test_google_auth_verifies_a_firebase_token(
    emulator: EmulatorClient, request_adapter: google.auth.transport.requests.Request, monkeypatch: pytest.MonkeyPatch
) -> None:
    # google-auth hard-codes securetoken's URL; point it at the emulator, as DESIGN.md describes.
    monkeypatch.setattr(
        google_id_token,
        "_GOOGLE_APIS_CERTS_URL",
        f"{emulator.url}/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com",
    )
    token = emulator.firebase_token("uid-42", email="hal@example.com")
    claims = google_id_token.verify_firebase_token(token, request_adapter, audience=emulator.state.project_id)
    assert claims["user_id"] == "uid-42" and claims["email"] == "hal@example.com"
    with pytest.raises((ValueError, google_exceptions.GoogleAuthError)):
        google_id_token.verify_firebase_token(token, request_adapter, audience="another-project")
