"""An emulated VM / Cloud Run instance's metadata server, on the emulator's port.

Paths, headers and refusals as Google's: every response carries ``Metadata-Flavor: Google``;
``/computeMetadata/v1/…`` requires the request header ``Metadata-Flavor: Google`` and refuses
proxied requests (``X-Forwarded-For``) with 403.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gcptoken.emulator.state import EmulatorState, ServiceAccount

__all__ = ["routes"]

FLAVOR = {"Metadata-Flavor": "Google", "Server": "Metadata Server for VM"}
PREFIX = "/computeMetadata/v1/"
LICENSE_ID = "1000201"


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/text", headers=FLAVOR)


def _json(value: Any) -> Response:
    return Response(json.dumps(value), media_type="application/json", headers=FLAVOR)


def _html_error(status: int, message: str) -> Response:
    return Response(f"<html><body>{message}</body></html>", status_code=status, media_type="text/html", headers=FLAVOR)


async def root(request: Request) -> Response:
    """``/``: what a metadata ping sees (google-auth checks only the response header)."""
    return _text("computeMetadata/\n")


def _account(state: EmulatorState, name: str) -> ServiceAccount | None:
    if name == "default":
        return state.default_account
    return state.service_accounts.get(name)


def _identity(state: EmulatorState, account: ServiceAccount, request: Request) -> Response:
    audience = request.query_params.get("audience", "")
    if not audience:
        return _html_error(400, "non-empty audience parameter required")
    full = request.query_params.get("format", "standard") == "full"
    claims = state.identity_claims(account, audience)
    if full:
        instance = state.instance
        compute: dict[str, Any] = {
            "instance_creation_timestamp": instance.creation_timestamp,
            "instance_id": instance.instance_id,
            "instance_name": instance.name,
            "project_id": state.project_id,
            "project_number": int(state.project_number),
            "zone": instance.zone_name,  # tokens carry the bare zone; instance/zone the full path
        }
        if request.query_params.get("licenses", "FALSE").upper() == "TRUE":
            compute["license_id"] = [LICENSE_ID]
        claims.update({"email": account.email, "email_verified": True, "google": {"compute_engine": compute}})
    return _text(state.sign_id_token(dict(sorted(claims.items()))))


def _service_account_path(state: EmulatorState, request: Request, rest: str) -> Response | None:
    name, _, leaf = rest.partition("/")
    account = _account(state, name)
    if account is None:
        return None
    if leaf == "identity":
        return _identity(state, account, request)
    if leaf == "token":
        requested = request.query_params.get("scopes")
        scopes = tuple(s for s in requested.split(",") if s) if requested else state.instance.scopes
        grant = state.issue_access_token(account, scopes)
        lifetime = int(grant.expires_at - state.clock())
        return _json({"access_token": grant.token, "expires_in": lifetime, "token_type": "Bearer"})
    if leaf == "email":
        return _text(account.email)
    if leaf == "scopes":
        return _text("\n".join(state.instance.scopes) + "\n")
    if leaf == "aliases":
        return _text("default\n")
    if leaf == "" and request.query_params.get("recursive", "").lower() == "true":
        return _json({"aliases": ["default"], "email": account.email, "scopes": list(state.instance.scopes)})
    if leaf == "":
        return _text("aliases\nemail\nidentity\nscopes\ntoken\n")
    return None


def _value(state: EmulatorState, request: Request, path: str) -> Response | None:
    instance = state.instance
    values = {
        "": "instance/\nproject/\n",
        "project/project-id": state.project_id,
        "project/numeric-project-id": state.project_number,
        "instance/id": instance.instance_id,
        "instance/name": instance.name,
        "instance/hostname": f"{instance.name}.{instance.zone_name}.c.{state.project_id}.internal",
        "instance/zone": instance.zone,
        "instance/region": instance.region,
        "instance/service-accounts/": f"default/\n{state.default_account.email}/\n",
        "universe/universe-domain": "googleapis.com",
    }
    if path in values:
        return _text(values[path])
    if path.startswith("instance/service-accounts/"):
        return _service_account_path(state, request, path.removeprefix("instance/service-accounts/"))
    return None


async def compute_metadata(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    if "x-forwarded-for" in request.headers:
        return _html_error(403, "Request had X-Forwarded-For header; metadata requests must not be proxied.")
    if request.headers.get("metadata-flavor") != "Google":
        return _html_error(403, "Missing required header: Metadata-Flavor: Google")
    path = request.url.path[len(PREFIX) - 1 :].lstrip("/")
    response = _value(state, request, path)
    if response is None:
        return _html_error(404, f"The requested URL {request.url.path} was not found on this server.")
    return response


routes = [
    Route("/computeMetadata/v1/{path:path}", compute_metadata, methods=["GET"]),
    Route("/computeMetadata/v1", compute_metadata, methods=["GET"]),
]
