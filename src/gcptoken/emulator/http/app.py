"""The emulator's ASGI app: every Google host's paths on one port, plus the request log."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gcptoken.emulator.admin import api as admin
from gcptoken.emulator.admin import console
from gcptoken.emulator.artifactregistry import docker as artifactregistry_docker
from gcptoken.emulator.artifactregistry import python as artifactregistry_python
from gcptoken.emulator.http import faults
from gcptoken.emulator.http.faults import FaultInjector, InjectedDrop, quiet_injected_drops
from gcptoken.emulator.http.guard_rules import emulator_rules
from gcptoken.emulator.http.limits import BodyLimit
from gcptoken.emulator.http.responses import NOT_EMULATED, api_error, not_emulated
from gcptoken.emulator.iam import access_boundaries, service_account_keys
from gcptoken.emulator.iam import credentials as iam
from gcptoken.emulator.keys import account_keys, firebase, iap
from gcptoken.emulator.keys.certs import certs_v1, certs_v3, openid_configuration, tokeninfo
from gcptoken.emulator.metadata import server as metadata
from gcptoken.emulator.oauth2 import signin, signin_admin, user_grants
from gcptoken.emulator.oauth2.token import token_endpoint
from gcptoken.emulator.resourcemanager import projects as resourcemanager
from gcptoken.emulator.run import admin as run_admin
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.emulator.sts import aws, federation
from gcptoken.emulator.sts import exchange as sts
from gcptoken.emulator.sts.mtls import CLIENT_CERT_SCOPE_KEY
from gcptoken.servers.asgi_guard import RequestGuard, Rules
from gcptoken.untrusted import one_line

__all__ = ["create_app", "routes"]

log = logging.getLogger("gcptoken.emulator")


class RequestLog:
    """Records every request (method, path, status, and what the handler chose to note) in
    arrival order, and turns any unexpected failure into a Google-shaped 500 without a traceback."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail: dict[str, Any] = {}
        scope["gcptoken.detail"] = detail
        entry: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"],
            "status": None,
            "time": time.time(),
        }
        if scope.get(CLIENT_CERT_SCOPE_KEY):
            entry["mtls"] = True  # came over the mTLS port with a client certificate
        recorded = False

        def record(status: int) -> None:
            nonlocal recorded
            entry["status"] = status
            if scope.get(NOT_EMULATED):
                entry["notEmulated"] = True
                log.warning("not emulated: %s %s", one_line(scope["method"], 20), one_line(scope["path"]))
            if detail:
                entry["detail"] = detail
            self.state.record(entry)
            recorded = True

        async def recording_send(message: Message) -> None:
            # Record before the client can see the response, so a client that reads the log right
            # after its call always finds the call there.
            if message["type"] == "http.response.start":
                record(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except InjectedDrop as drop:
            if not recorded:  # a lost response: carried out, so it is in the log
                record(drop.status or 0)
            raise  # deliberate: the server closes the connection mid-response
        except ClientDisconnect:
            if not recorded:
                record(499)  # the client went away mid-request: nothing to answer, nothing to log
        except asyncio.CancelledError:
            if not recorded:
                record(499)  # the server is shutting down under a slow (delayed) request
        except Exception:
            log.exception("emulator handler failed on %s %s", one_line(scope["method"], 20), one_line(scope["path"]))
            if not recorded:
                record(500)
                await api_error(500, "Internal error in the emulator.")(scope, receive, send)


async def not_found(request: Request, exc: Exception) -> Response:
    return not_emulated(request, f"The requested URL {request.url.path} was not found on this server.")


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    return api_error(405, f"Method {request.method} is not allowed for {request.url.path}.")


def routes() -> list[Route]:
    """Every path the emulator serves (README's fidelity table lists each Google one)."""
    token_methods = ["POST"]
    info_methods = ["GET", "POST"]
    return [
        Route("/token", token_endpoint, methods=token_methods),
        Route("/oauth2/v4/token", token_endpoint, methods=token_methods),
        Route("/oauth2/v1/certs", certs_v1, methods=["GET"]),
        Route("/oauth2/v3/certs", certs_v3, methods=["GET"]),
        Route("/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
        Route("/tokeninfo", tokeninfo, methods=info_methods),
        Route("/oauth2/v1/tokeninfo", tokeninfo, methods=info_methods),
        Route("/oauth2/v3/tokeninfo", tokeninfo, methods=info_methods),
        Route("/", metadata.root, methods=["GET"]),
        *metadata.routes,
        *iam.routes,
        *service_account_keys.routes,
        *access_boundaries.routes,
        *resourcemanager.routes,
        *federation.routes,
        *sts.routes,
        *signin.routes,
        *signin_admin.routes,
        Route("/revoke", user_grants.revoke, methods=["POST"]),
        Route("/o/oauth2/revoke", user_grants.revoke, methods=["POST"]),
        *aws.routes,
        *iap.routes,
        *firebase.routes,
        *account_keys.routes,
        *faults.routes,
        *admin.routes,
        *run_admin.routes,
        *artifactregistry_docker.routes,
        *console.routes,
        # Last: its /{project}/{repository}/… shapes must never shadow another API's path.
        *artifactregistry_python.routes,
    ]


def create_app(state: EmulatorState, rules: Rules | None = None) -> ASGIApp:
    """Every endpoint behind the request guard (``rules``: :func:`emulator_rules`' defaults)."""
    app = Starlette(
        routes=routes(),
        exception_handlers={404: not_found, 405: method_not_allowed},
    )
    app.state.emulator = state
    quiet_injected_drops()
    logged = RequestLog(BodyLimit(FaultInjector(app, state)), state)
    return RequestGuard(logged, rules or emulator_rules(), log)
