"""The emulated instance's metadata server, on the emulator's port: its values and its default
service account's tokens, served by local.metadata_api as the chosen platform's server serves
them (a Compute Engine VM unless ``--platform`` or the admin API says GKE, Cloud Run, functions or
App Engine flexible); and the admin API for the platform and the custom attributes (whose changes
``wait_for_change`` sees)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gcptoken.checks import unknown_scopes
from gcptoken.emulator.http.responses import NOT_EMULATED, api_error, json_body
from gcptoken.emulator.state.models import ServiceAccount
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.local.metadata_api import MetadataRefusal, handler, root_handler
from gcptoken.local.metadata_platforms import PLATFORMS, Platform, platform_named
from gcptoken.local.metadata_tree import InstanceFacts, build_tree
from gcptoken.untrusted import one_line

__all__ = ["EmulatedInstance", "facts", "root", "routes", "set_platform", "tree"]

LICENSE_ID = "1000201"
# As Compute Engine's metadata keys: no "/" or line break can split a path or a listing line.
_ATTRIBUTE_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
_KEY_RULE = "Attribute keys are 1-128 letters, digits, '-' or '_'."


def facts(state: EmulatorState) -> InstanceFacts:
    """What the emulated instance says about itself."""
    instance = state.instance
    return InstanceFacts(
        project_id=state.project_id,
        project_number=state.project_number,
        email=state.default_account.email,
        zone=instance.zone_name,
        name=instance.name,
        instance_id=instance.instance_id,
        scopes=instance.scopes,
        attributes=dict(instance.attributes),
        project_attributes=dict(instance.project_attributes),
        universe_domain=instance.universe_domain,
    )


def set_platform(state: EmulatorState, name: str) -> None:
    """Answer as ``name``'s metadata server from now on (KeyError: no such platform)."""
    platform_named(name)
    with state.lock:
        state.instance = dataclasses.replace(state.instance, platform=name)


def tree(state: EmulatorState) -> dict[str, Any]:
    """Every static value the metadata server holds, as its platform serves them."""
    return build_tree(platform_named(state.instance.platform), facts(state))


class EmulatedInstance:
    """The emulated VM as a metadata source: tokens minted by the emulator for its default account."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def platform(self) -> Platform:
        return platform_named(self.state.instance.platform)

    def tree(self) -> dict[str, Any]:
        return tree(self.state)

    def _account(self, name: str) -> ServiceAccount:
        return self.state.default_account  # "default" and its email are the only names in the tree

    async def identity(self, account: str, audience: str, full: bool, licenses: bool) -> str | MetadataRefusal:
        state = self.state
        service_account = self._account(account)
        claims = state.identity_claims(service_account, audience)
        if full:  # email on every platform; the VM's own claims only on a VM
            claims.update({"email": service_account.email, "email_verified": True})
        if full and self.platform().compute_engine_claims:
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
            claims["google"] = {"compute_engine": compute}
        return state.sign_id_token(dict(sorted(claims.items())))

    async def token(self, account: str, scopes: tuple[str, ...] | None) -> dict[str, Any] | MetadataRefusal:
        state = self.state
        invalid = unknown_scopes(scopes or ())
        if invalid:
            # The metadata server asks Google's token service, which refuses a scope it does not know;
            # no sample of the metadata server's own words is published, so these are ours.
            return MetadataRefusal(400, f"invalid scope: {one_line(', '.join(invalid), 200)}")
        grant = state.issue_access_token(self._account(account), scopes or state.instance.scopes)
        return {
            "access_token": grant.token,
            "expires_in": int(grant.expires_at - state.clock()),
            "token_type": "Bearer",
        }


def _instance(request: Request) -> EmulatedInstance:
    return EmulatedInstance(request.app.state.emulator)


root = root_handler(_instance)
_serve = handler(_instance)


async def compute_metadata(request: Request) -> Response:
    """The metadata API; a key the emulated server lacks is marked "not emulated" in the request
    log, since Google's servers hold keys (``network-interfaces/``, ``tags``, …) the emulator does
    not. An unknown service account is the server's own answer, not a gap."""
    response: Response = await _serve(request)
    if response.status_code == 404 and "/service-accounts/" not in request.url.path:
        request.scope[NOT_EMULATED] = True
    return response


async def platform_setting(request: Request) -> Response:
    """Admin: ``GET|PUT /emulator/v1/metadata/platform`` (``{"platform": "gke"}``): whose metadata
    server the emulated instance has, switched at once for every later request."""
    state: EmulatorState = request.app.state.emulator
    if request.method == "PUT":
        try:
            body = await json_body(request, empty={})
        except ValueError:
            body = None
        name = body.get("platform") if isinstance(body, dict) else None
        if not isinstance(name, str) or name not in PLATFORMS:
            return api_error(400, f'The platform is {{"platform": one of {", ".join(PLATFORMS)}}}.')
        set_platform(state, name)
    return JSONResponse({"platform": state.instance.platform, "platforms": list(PLATFORMS)})


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
    Route("/computeMetadata/v1/{path:path}", compute_metadata, methods=["GET"]),
    Route("/computeMetadata/v1", compute_metadata, methods=["GET"]),
    Route("/emulator/v1/metadata/platform", platform_setting, methods=["GET", "PUT"]),
    Route("/emulator/v1/metadata/{scope}/attributes", attributes, methods=["GET", "PUT"]),
    Route("/emulator/v1/metadata/{scope}/attributes/{key}", attributes, methods=["PUT", "DELETE"]),
]
