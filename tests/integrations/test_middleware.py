"""Server integrations over real HTTP on 127.0.0.1: the ASGI middleware (Starlette, WebSocket),
the FastAPI dependency, the WSGI middleware and the Flask decorator, each behind a real server,
verifying tokens whose keys come from the emulator."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
from fastapi import Depends, FastAPI
from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from gcptoken import Verifier
from gcptoken.integrations.asgi import IdTokenMiddleware, VerifiedClaims
from gcptoken.integrations.wsgi import CLAIMS_KEY, IdTokenWSGIMiddleware, require_id_token
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient
from tests.verify.issuers import Issuer, issuers

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

CHALLENGE = re.compile(r'^Bearer error="invalid_token", error_description="([\x20\x21\x23-\x5b\x5d-\x7e]*)"$')


@pytest.fixture
def everyone(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> dict[str, Issuer]:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    return issuers(emulator)


def fresh(issuer: Issuer, **changes: Any) -> str:
    """A token valid now (the table's NOW is in the future)."""
    import time

    now = int(time.time())
    return issuer.sign(issuer.claims(iat=now, exp=now + issuer.lifetime, auth_time=now - 5, **changes))


def expired(issuer: Issuer) -> str:
    import time

    now = int(time.time())
    return issuer.sign(issuer.claims(iat=now - 2 * issuer.lifetime, exp=now - issuer.lifetime))


def description_of(response: httpx.Response) -> str:
    assert response.status_code == 401
    match = CHALLENGE.match(response.headers["www-authenticate"])
    assert match, response.headers["www-authenticate"]
    return match.group(1)


# -- servers ---------------------------------------------------------------------------------------


@contextmanager
def asgi_server(app: Any) -> Iterator[str]:
    with AsgiServer(app, bind("127.0.0.1", 0)) as server:
        yield server.url


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def wsgi_server(app: WSGIApplication) -> Iterator[str]:
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def starlette_app(verifier: Verifier) -> Any:
    async def whoami(request: Request) -> Response:
        return JSONResponse({"sub": request.state.claims["sub"], "iss": request.state.claims["iss"]})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.scope["state"]["claims"]["sub"])
        await websocket.close()

    routes = [Route("/whoami", whoami), Route("/healthz", healthz), WebSocketRoute("/ws", echo)]
    return IdTokenMiddleware(Starlette(routes=routes), verifier, exempt_paths=["/healthz"])


def fastapi_app(verifier: Verifier) -> FastAPI:
    app = FastAPI()
    verified = VerifiedClaims(verifier)

    @app.get("/whoami")
    async def whoami(claims: dict[str, Any] = Depends(verified)) -> dict[str, Any]:  # noqa: B008
        return {"sub": claims["sub"], "iss": claims["iss"]}

    return app


def wsgi_app(verifier: Verifier) -> WSGIApplication:

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        claims = environ.get(CLAIMS_KEY, {})
        body = json.dumps({"sub": claims.get("sub"), "iss": claims.get("iss")}).encode()
        start_response("200 OK", [("content-type", "application/json")])
        return [body]

    return IdTokenWSGIMiddleware(app, verifier, exempt_paths=["/healthz"])


def flask_app(verifier: Verifier) -> Flask:
    app = Flask("gcptoken-test")

    @app.get("/whoami")
    @require_id_token(verifier)
    def whoami(claims: dict[str, Any]) -> dict[str, Any]:
        return {"sub": claims["sub"], "iss": claims["iss"]}

    return app


SERVERS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "asgi-middleware": (starlette_app, asgi_server),
    "fastapi-dependency": (fastapi_app, asgi_server),
    "wsgi-middleware": (wsgi_app, wsgi_server),
    "flask-decorator": (flask_app, wsgi_server),
}


@contextmanager
def serving(kind: str, verifier: Verifier) -> Iterator[str]:
    make_app, make_server_for = SERVERS[kind]
    with make_server_for(make_app(verifier)) as url:
        yield url


# -- every integration alike -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", SERVERS)
def test_valid_token_reaches_the_handler_with_its_claims(everyone: dict[str, Issuer], kind: str) -> None:
    google = everyone["google"]
    with serving(kind, google.make_verifier()) as url:
        response = httpx.get(f"{url}/whoami", headers={"Authorization": f"Bearer {fresh(google)}"})
        assert response.status_code == 200, response.text
        assert response.json() == {"sub": google.claims()["sub"], "iss": google.issuer}


@pytest.mark.parametrize("kind", SERVERS)
def test_missing_and_invalid_tokens_get_401_with_a_bearer_challenge(everyone: dict[str, Issuer], kind: str) -> None:
    google = everyone["google"]
    cases = {
        "no header": ({}, "authorization"),
        "not bearer": ({"Authorization": "Basic dXNlcjpwYXNz"}, "Bearer"),
        "bare scheme": ({"Authorization": "Bearer"}, "Bearer"),
        "garbage": ({"Authorization": "Bearer not.a.token"}, "base64url"),
        "wrong audience": ({"Authorization": f"Bearer {fresh(google, aud='https://other.example')}"}, "audience"),
        "expired": ({"Authorization": f"Bearer {expired(google)}"}, "expired"),
        "IAP's token": ({"Authorization": f"Bearer {fresh(everyone['iap'])}"}, "algorithm"),
    }
    with serving(kind, google.make_verifier()) as url:
        for name, (headers, words) in cases.items():
            response = httpx.get(f"{url}/whoami", headers=headers)
            assert words in description_of(response), name
            # One builder (bearer.refusal) for all four: FastAPI's {"detail"} body, the same bytes.
            assert response.headers["content-type"] == "application/json", name
            assert response.content == json.dumps({"detail": description_of(response)}, separators=(",", ":")).encode()
            token = headers.get("Authorization", "")[7:]
            assert not token or token[-16:] not in response.text + response.headers["www-authenticate"]


@pytest.mark.parametrize("kind", SERVERS)
def test_claims_cannot_inject_into_the_challenge_header(everyone: dict[str, Issuer], kind: str) -> None:
    google = everyone["google"]
    hostile = fresh(google, aud='x", error="insufficient_scope\\" \u2028 \x7f')
    with serving(kind, google.make_verifier()) as url:
        response = httpx.get(f"{url}/whoami", headers={"Authorization": f"Bearer {hostile}"})
        assert "audience" in description_of(response)  # the challenge still parses as one description


@pytest.mark.parametrize("kind", SERVERS)
def test_unreachable_keys_are_503_not_401(kind: str) -> None:
    verifier = Verifier("https://svc.example", certs="http://127.0.0.1:9/certs", timeout=1)
    token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJhdWQiOiJ4In0.c2ln"
    with serving(kind, verifier) as url:
        response = httpx.get(f"{url}/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert response.status_code == 503
        assert "www-authenticate" not in response.headers
        assert (response.headers["content-type"], response.headers["retry-after"]) == ("application/json", "5")
        assert response.content == b'{"detail":"token signing keys are unavailable"}'
        assert "127.0.0.1" not in response.text  # internals go to the log, not to the caller


# -- specifics -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["asgi-middleware", "wsgi-middleware"])
def test_exempt_paths_pass_without_a_token(everyone: dict[str, Issuer], kind: str) -> None:
    with serving(kind, everyone["google"].make_verifier()) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/whoami").status_code == 401


@pytest.mark.parametrize("kind", SERVERS)
def test_iap_preset_reads_the_iap_header(emulator: EmulatorClient, everyone: dict[str, Issuer], kind: str) -> None:
    audience = "/projects/123456789012/apps/emulated-project"
    assertion = emulator.iap_assertion("carol@example.com", audience)
    with serving(kind, Verifier.iap(audience)) as url:
        ok = httpx.get(f"{url}/whoami", headers={"x-goog-iap-jwt-assertion": assertion})
        assert ok.status_code == 200 and ok.json()["iss"] == "https://cloud.google.com/iap"
        in_bearer = httpx.get(f"{url}/whoami", headers={"Authorization": f"Bearer {assertion}"})
        assert "x-goog-iap-jwt-assertion" in description_of(in_bearer)


def test_websocket_needs_a_valid_token(everyone: dict[str, Issuer]) -> None:
    google = everyone["google"]
    with serving("asgi-middleware", google.make_verifier()) as url:
        ws_url = url.replace("http://", "ws://") + "/ws"
        with connect(ws_url, additional_headers={"Authorization": f"Bearer {fresh(google)}"}) as socket:
            assert socket.recv(timeout=5) == google.claims()["sub"]
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url, additional_headers={"Authorization": f"Bearer {expired(google)}"}, open_timeout=5)
        assert refused.value.response.status_code == 403
