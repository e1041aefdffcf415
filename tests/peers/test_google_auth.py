"""google-auth, unchanged, against the emulator: our emulator is honest if Google's client works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import google.auth.transport.requests
import jwt
import pytest
from google.auth import exceptions as google_exceptions
from google.oauth2 import id_token as google_id_token
from google.oauth2 import service_account as google_service_account

from gcptoken import Verifier, load_credentials
from gcptoken.testing import EmulatorClient

AUD = "https://svc-peer.a.run.app"


@pytest.fixture
def request_adapter() -> google.auth.transport.requests.Request:
    return google.auth.transport.requests.Request()


def test_google_auth_id_token_credentials_get_a_token_we_accept(
    emulator: EmulatorClient, key_info: dict[str, str], certs_url: str, request_adapter: Any
) -> None:
    credentials = google_service_account.IDTokenCredentials.from_service_account_info(key_info, target_audience=AUD)
    credentials.refresh(request_adapter)
    claims = Verifier(AUD, certs=certs_url).verify(credentials.token)
    assert claims["email"] == key_info["client_email"]
    assert credentials.expiry is not None
    assert len(emulator.token_requests_by(key_info["client_email"])) == 1


def test_google_auth_access_token_is_known_to_tokeninfo(
    emulator: EmulatorClient, key_info: dict[str, str], request_adapter: Any
) -> None:
    credentials = google_service_account.Credentials.from_service_account_info(
        key_info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    credentials.refresh(request_adapter)
    assert credentials.token.startswith("ya29.")
    info = request_adapter(f"{emulator.url}/oauth2/v3/tokeninfo?access_token={credentials.token}")
    assert info.status == 200


@pytest.mark.parametrize("certs_path", ["/oauth2/v1/certs", "/oauth2/v3/certs"])
def test_google_auth_verify_token_accepts_our_tokens(
    emulator: EmulatorClient, key_path: Path, request_adapter: Any, certs_path: str
) -> None:
    token = load_credentials(key_path).id_token(AUD).value
    claims = google_id_token.verify_token(token, request_adapter, audience=AUD, certs_url=emulator.url + certs_path)
    assert claims["aud"] == AUD
    # google-auth hands JWKS certs to PyJWT, which raises its own error type.
    with pytest.raises((ValueError, google_exceptions.GoogleAuthError, jwt.PyJWTError)):
        google_id_token.verify_token(
            token, request_adapter, audience="https://other", certs_url=emulator.url + certs_path
        )


@pytest.mark.parametrize(
    "extra", [{"target_audience": AUD}, {"scope": "https://www.googleapis.com/auth/cloud-platform"}]
)
def test_our_assertion_carries_the_same_claims_as_google_auths(
    emulator: EmulatorClient,
    key_info: dict[str, str],
    key_path: Path,
    request_adapter: Any,
    extra: dict[str, str],
) -> None:
    if "target_audience" in extra:
        google_service_account.IDTokenCredentials.from_service_account_info(key_info, target_audience=AUD).refresh(
            request_adapter
        )
        load_credentials(key_path).id_token(AUD)
    else:
        google_service_account.Credentials.from_service_account_info(key_info, scopes=[extra["scope"]]).refresh(
            request_adapter
        )
        load_credentials(key_path).access_token([extra["scope"]])
    theirs, ours = (entry["detail"]["assertion"] for entry in emulator.token_requests_by(key_info["client_email"]))
    assert set(ours["claims"]) == set(theirs["claims"])
    assert ours["header"] == theirs["header"]
    for name in ("iss", "aud", *extra):
        assert ours["claims"][name] == theirs["claims"][name]
    assert ours["claims"]["exp"] - ours["claims"]["iat"] == theirs["claims"]["exp"] - theirs["claims"]["iat"]
