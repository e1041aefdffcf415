"""google-auth's identity_pool credentials, unchanged, against the emulator's STS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from gcptoken.testing import EmulatorClient
from tests.emulator.sts.test_federation import JWT_TYPE, Federation


@pytest.fixture
def federation(emulator: EmulatorClient) -> Federation:
    return Federation(emulator)


def test_google_auth_identity_pool_against_the_emulator_sts(
    emulator: EmulatorClient, federation: Federation, tmp_path: Path
) -> None:
    from google.auth import identity_pool
    from google.auth.transport.requests import Request

    token_file = tmp_path / "subject-token"
    token_file.write_text(federation.subject_token())
    target = emulator.new_key("fed-peer")["client_email"]
    emulator.state.grant_token_creator(target, f"principal:{federation.pool_resource}/subject/workload-1")
    info: dict[str, Any] = {
        "type": "external_account",
        "audience": federation.audience,
        "subject_token_type": JWT_TYPE,
        "token_url": f"{emulator.url}/v1/token",
        "credential_source": {"file": str(token_file)},
    }
    federated = identity_pool.Credentials.from_info(info, scopes=["https://www.googleapis.com/auth/cloud-platform"])
    federated.refresh(Request())
    assert federated.token is not None and federated.token.startswith("ya29.")
    iam = f"{emulator.url}/v1/projects/-/serviceAccounts"
    impersonating = identity_pool.Credentials.from_info(
        {
            **info,
            "service_account_impersonation_url": f"{iam}/{target}:generateAccessToken",
        },
        scopes=["https://www.googleapis.com/auth/cloud-platform"],
    )
    impersonating.refresh(Request())
    tokeninfo = httpx.post(f"{emulator.url}/tokeninfo", data={"access_token": impersonating.token}).json()
    assert tokeninfo["email"] == target


def test_google_auth_identity_pool_url_source(emulator: EmulatorClient, federation: Federation) -> None:
    from google.auth import identity_pool
    from google.auth.transport.requests import Request
    from starlette.applications import Starlette
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    from gcptoken.servers.serving import AsgiServer, bind

    token = federation.subject_token()

    async def subject(request: StarletteRequest) -> Response:
        return PlainTextResponse(token if request.headers.get("x-ask") == "yes" else "", status_code=200)

    with AsgiServer(Starlette(routes=[Route("/subject", subject)]), bind("127.0.0.1", 0)) as server:
        info: dict[str, Any] = {
            "type": "external_account",
            "audience": federation.audience,
            "subject_token_type": JWT_TYPE,
            "token_url": f"{emulator.url}/v1/token",
            "credential_source": {"url": f"{server.url}/subject", "headers": {"x-ask": "yes"}},
        }
        credentials = identity_pool.Credentials.from_info(
            info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        credentials.refresh(Request())
        assert credentials.token is not None and credentials.token.startswith("ya29.")


@pytest.mark.filterwarnings("ignore:The load_credentials_from_file method is deprecated:DeprecationWarning")
def test_google_auth_loads_the_state_dir_external_account(tmp_path: Path) -> None:
    import google.auth
    from google.auth.transport.requests import Request

    from gcptoken.emulator import EmulatorServer

    with EmulatorServer(state_dir=tmp_path) as server:
        # Without scopes at load time google-auth does not look the project up at Google's
        # Resource Manager (which no test may contact); the scopes come after.
        loaded, _ = google.auth.load_credentials_from_file(str(tmp_path / "external-account.json"))
        credentials = loaded.with_scopes(["https://www.googleapis.com/auth/cloud-platform"])
        credentials.refresh(Request())
        info = httpx.post(f"{server.url}/tokeninfo", data={"access_token": credentials.token}).json()
        assert info["email"].startswith("impersonated@")
