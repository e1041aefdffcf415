"""The middlewares' opt-in mode for apps behind Cloud Run's front door (CloudRunIdentity): the
claims the front door checked, and nothing unless told twice it runs there."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gcptoken.emulator.run import FrontDoorServer
from gcptoken.errors import InvalidArgumentError
from gcptoken.integrations.asgi import IdTokenMiddleware
from gcptoken.integrations.cloud_run import CloudRunIdentity
from gcptoken.integrations.wsgi import CLAIMS_KEY, IdTokenWSGIMiddleware
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient


def test_it_refuses_to_exist_unless_told_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError):
        CloudRunIdentity("https://svc.a.run.app")  # type: ignore[call-arg]  # the keyword has no default
    with pytest.raises(InvalidArgumentError, match="only behind a Cloud Run service that requires authentication"):
        CloudRunIdentity("https://svc.a.run.app", trust_cloud_run_authentication=False)
    with pytest.raises(InvalidArgumentError, match="K_SERVICE is not set"):
        CloudRunIdentity("https://svc.a.run.app", trust_cloud_run_authentication=True)
    monkeypatch.setenv("K_SERVICE", "svc")
    assert CloudRunIdentity("https://svc.a.run.app", trust_cloud_run_authentication=True).audiences


def _unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.SIGNATURE_REMOVED_BY_GOOGLE"


@pytest.fixture(scope="module")
def behind(gcptoken_emulator: EmulatorClient) -> Iterator[tuple[FrontDoorServer, str]]:
    """An app trusting the front door's identity, and that front door: (front door, the app's own URL)."""
    sock = bind("127.0.0.1", 0)
    app_url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def who(request: Request) -> Response:
        return JSONResponse({"email": request.state.claims["email"]})

    with gcptoken_emulator.cloud_run("behind-front", app_url) as front:
        identity = CloudRunIdentity(
            front.service.audiences, trust_cloud_run_authentication=True, k_service_required=False
        )
        app = IdTokenMiddleware(Starlette(routes=[Route("/", who)]), identity)
        with AsgiServer(app, sock):
            yield front, app_url


def test_the_app_reads_the_identity_the_front_door_checked(
    gcptoken_emulator: EmulatorClient, behind: tuple[FrontDoorServer, str]
) -> None:
    front, app_url = behind
    key = gcptoken_emulator.new_key("behind")
    front.set_invokers(f"serviceAccount:{key['client_email']}")
    state = gcptoken_emulator.state
    token = state.service_account_id_token(state.service_accounts[key["client_email"]], front.url)
    response = httpx.get(front.url, headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {"email": key["client_email"]}
    # The caller's own Authorization, unchecked by Cloud Run when X-Serverless-Authorization is sent,
    # is never read as the identity; one carrying Cloud Run's marker there is a forgery: refused.
    both = {"X-Serverless-Authorization": f"Bearer {token}", "Authorization": "Basic YXBwOm93bg=="}
    assert httpx.get(front.url, headers=both).json() == {"email": key["client_email"]}
    forged = _unsigned(
        {"iss": "https://accounts.google.com", "aud": front.url, "exp": 4e9, "email": "boss@example.com"}
    )
    both = {"X-Serverless-Authorization": f"Bearer {token}", "Authorization": f"Bearer {forged}"}
    refused = httpx.get(front.url, headers=both)
    assert refused.status_code == 401 and "marker" in refused.json()["detail"]
    # Around the front door, a genuine signed token is refused: it did not pass Cloud Run's check.
    direct = httpx.get(app_url, headers={"Authorization": f"Bearer {token}"})
    assert direct.status_code == 401 and "signature was not removed" in direct.json()["detail"]


def test_wsgi_middleware_in_the_same_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K_SERVICE", "svc")
    identity = CloudRunIdentity("https://svc.a.run.app", trust_cloud_run_authentication=True)
    seen: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ[CLAIMS_KEY]["email"])
        start_response("200 OK", [])
        return [b"ok"]

    middleware = IdTokenWSGIMiddleware(app, identity)
    claims = {"iss": "accounts.google.com", "aud": "https://svc.a.run.app", "exp": 4e9, "email": "a@example.com"}
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)

    environ = {"PATH_INFO": "/", "HTTP_X_SERVERLESS_AUTHORIZATION": f"Bearer {_unsigned(claims)}"}
    assert middleware(environ, start_response) == [b"ok"]
    assert seen == ["a@example.com"]
    expired = {**claims, "exp": 1000}
    environ = {"PATH_INFO": "/", "HTTP_AUTHORIZATION": f"Bearer {_unsigned(expired)}"}
    middleware(environ, start_response)
    assert statuses[-1].startswith("401")


def test_the_fastapi_dependency_in_the_same_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi import Depends, FastAPI

    from gcptoken.integrations.asgi import VerifiedClaims

    monkeypatch.setenv("K_SERVICE", "svc")
    identity = CloudRunIdentity("https://svc.a.run.app", trust_cloud_run_authentication=True)
    verified = VerifiedClaims(identity)
    app = FastAPI()

    @app.get("/")
    async def who(claims: dict[str, Any] = Depends(verified)) -> dict[str, Any]:  # noqa: B008
        return {"email": claims["email"]}

    claims = {
        "iss": "https://accounts.google.com",
        "aud": "https://svc.a.run.app",
        "exp": 4e9,
        "email": "b@example.com",
    }
    with AsgiServer(app, bind("127.0.0.1", 0)) as server:
        token = {"X-Serverless-Authorization": f"Bearer {_unsigned(claims)}"}
        assert httpx.get(server.url, headers=token).json() == {"email": "b@example.com"}
        assert httpx.get(server.url).status_code == 401


@pytest.mark.parametrize("connection", ["X-Serverless-Authorization", "keep-alive, x-serverless-authorization"])
def test_a_connection_header_cannot_drop_the_checked_token_and_forward_a_forged_one(
    gcptoken_emulator: EmulatorClient, behind: tuple[FrontDoorServer, str], connection: str
) -> None:
    front, _ = behind
    key = gcptoken_emulator.new_key("behind")
    front.set_invokers(f"serviceAccount:{key['client_email']}")
    state = gcptoken_emulator.state
    token = state.service_account_id_token(state.service_accounts[key["client_email"]], front.url)
    forged = _unsigned({"iss": "https://accounts.google.com", "aud": front.url, "exp": 4e9, "email": "admin@x.com"})
    sent = {"X-Serverless-Authorization": f"Bearer {token}", "Authorization": f"Bearer {forged}"}
    response = httpx.get(front.url, headers={**sent, "Connection": connection})
    # Hop-by-hop headers go before the check (as a front end drops them on receipt): what is left
    # to check is the forged Authorization, refused like any unsigned token; never the app's admin.
    assert response.status_code == 401, response.text
    assert "admin@x.com" not in response.text


@pytest.mark.parametrize("platform", ["cloud-run", "functions"])
def test_the_emulators_own_k_service_is_not_cloud_runs_word(platform: str) -> None:
    from gcptoken.integrations.cloud_run import EMULATED_K_SERVICE
    from gcptoken.local.metadata_platforms import runtime_environment

    # What `gcptoken emulator --platform …` tells users to set (and writes to its env file) for
    # clients that detect the platform: an app run that way is local, reachable around any front door.
    environ = runtime_environment(platform, "p")
    assert environ["K_SERVICE"] in EMULATED_K_SERVICE
    with pytest.raises(InvalidArgumentError, match="is the emulator's, not Cloud Run's"):
        CloudRunIdentity("http://127.0.0.1:1", trust_cloud_run_authentication=True, environ=environ)
    explicit = CloudRunIdentity(
        "http://127.0.0.1:1", trust_cloud_run_authentication=True, k_service_required=False, environ=environ
    )
    assert explicit.audiences
