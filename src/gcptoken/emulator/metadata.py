"""An emulated VM / Cloud Run instance's metadata server, on the emulator's port: the emulated
instance's values and its default service account's tokens, served by local.metadata_api as
Google's server serves them; and the admin API for its custom attributes (whose changes
``wait_for_change`` sees)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gcptoken.emulator.responses import api_error, json_body
from gcptoken.emulator.state import EmulatorState, ServiceAccount
from gcptoken.local.metadata_api import MetadataRefusal, handler, root

__all__ = ["EmulatedInstance", "root", "routes", "tree"]

LICENSE_ID = "1000201"
# As Compute Engine's metadata keys: no "/" or line break can split a path or a listing line.
_ATTRIBUTE_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
_KEY_RULE = "Attribute keys are 1-128 letters, digits, '-' or '_'."


def _account_dir(state: EmulatorState, account: ServiceAccount) -> dict[str, Any]:
    return {"aliases": ["default"], "email": account.email, "scopes": list(state.instance.scopes)}


def tree(state: EmulatorState) -> dict[str, Any]:
    """Every static value the metadata server holds, as nested dicts."""
    instance, project_number = state.instance, state.project_number
    account = _account_dir(state, state.default_account)
    return {
        "instance": {
            "attributes": dict(instance.attributes),
            "cpu-platform": "Intel Broadwell",
            "description": "",
            "hostname": f"{instance.name}.{instance.zone_name}.c.{state.project_id}.internal",
            "id": int(instance.instance_id),
            "image": "projects/debian-cloud/global/images/debian-12-bookworm-v20260101",
            "machine-type": f"projects/{project_number}/machineTypes/e2-medium",
            "name": instance.name,
            "region": instance.region,
            "service-accounts": {"default": account, state.default_account.email: account},
            "zone": instance.zone,
        },
        "project": {
            "attributes": dict(instance.project_attributes),
            "numeric-project-id": int(project_number),
            "project-id": state.project_id,
        },
        "universe": {"universe-domain": instance.universe_domain},
    }


class EmulatedInstance:
    """The emulated VM as a metadata source: tokens minted by the emulator for its default account."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def tree(self) -> dict[str, Any]:
        return tree(self.state)

    def _account(self, name: str) -> ServiceAccount:
        return self.state.default_account  # "default" and its email are the only names in the tree

    async def identity(self, account: str, audience: str, full: bool, licenses: bool) -> str | MetadataRefusal:
        state = self.state
        service_account = self._account(account)
        claims = state.identity_claims(service_account, audience)
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
            if licenses:
                compute["license_id"] = [LICENSE_ID]
            claims.update(
                {"email": service_account.email, "email_verified": True, "google": {"compute_engine": compute}}
            )
        return state.sign_id_token(dict(sorted(claims.items())))

    async def token(self, account: str, scopes: tuple[str, ...] | None) -> dict[str, Any] | MetadataRefusal:
        state = self.state
        grant = state.issue_access_token(self._account(account), scopes or state.instance.scopes)
        return {
            "access_token": grant.token,
            "expires_in": int(grant.expires_at - state.clock()),
            "token_type": "Bearer",
        }


def _instance(request: Request) -> EmulatedInstance:
    return EmulatedInstance(request.app.state.emulator)


async def attributes(request: Request) -> Response:
    """Admin: ``GET|PUT /emulator/v1/metadata/{instance|project}/attributes`` (PUT replaces them all
    with a JSON object of strings), ``PUT|DELETE …/attributes/{key}`` (PUT ``{"value": "…"}``)."""
    state: EmulatorState = request.app.state.emulator
    scope = request.path_params["scope"]
    if scope not in ("instance", "project"):
        return api_error(404, "Metadata attributes belong to 'instance' or 'project'.")
    store = state.instance.attributes if scope == "instance" else state.instance.project_attributes
    key = request.path_params.get("key")
    if key is not None and not _ATTRIBUTE_KEY.fullmatch(key):
        return api_error(400, _KEY_RULE)
    if request.method in ("PUT", "DELETE"):
        try:
            body = await json_body(request, empty={})
        except ValueError:
            body = None
        if key is None:
            if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
                return api_error(400, "Attributes are a JSON object of strings.")
            if not all(_ATTRIBUTE_KEY.fullmatch(name) for name in body):
                return api_error(400, _KEY_RULE)
            with state.lock:
                store.clear()
                store.update(body)
        elif request.method == "DELETE":
            with state.lock:
                store.pop(key, None)
        else:
            value = body.get("value") if isinstance(body, dict) else None
            if not isinstance(value, str):
                return api_error(400, 'An attribute is set with {"value": "…"}.')
            with state.lock:
                store[key] = value
    with state.lock:
        return JSONResponse({"attributes": dict(store)})


routes = [
    Route("/computeMetadata/v1/{path:path}", handler(_instance), methods=["GET"]),
    Route("/computeMetadata/v1", handler(_instance), methods=["GET"]),
    Route("/emulator/v1/metadata/{scope}/attributes", attributes, methods=["GET", "PUT"]),
    Route("/emulator/v1/metadata/{scope}/attributes/{key}", attributes, methods=["PUT", "DELETE"]),
]
