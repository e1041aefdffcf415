"""The fronted services' invoker policies over the admin API, in IAM's getIamPolicy /
setIamPolicy shapes (https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.services/getIamPolicy):

- ``GET /emulator/v1/run/services``: the services, their URLs, audiences and upstreams;
- ``GET|POST /emulator/v1/run/services/NAME:getIamPolicy``: ``{"version", "etag", "bindings"}``;
- ``POST /emulator/v1/run/services/NAME:setIamPolicy`` with ``{"policy": {"bindings": [...]}}``:
  only ``roles/run.invoker`` bindings mean anything here; others are refused, and so is a
  service account the emulator does not know (400, IAM's "Service account … does not exist.")."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gcptoken.emulator.http.responses import api_error, json_object
from gcptoken.emulator.run.services import INVOKER, RunServices, missing_account, run_services
from gcptoken.errors import InvalidArgumentError

__all__ = ["routes"]


def _services(request: Request) -> RunServices:
    return run_services(request.app.state.emulator)


async def list_services(request: Request) -> Response:
    registry = _services(request)
    listed = []
    for name in registry.names():
        service = registry.get(name)
        if service is not None:
            listed.append(
                {
                    "name": name,
                    "urls": list(service.urls),
                    "customAudiences": list(service.custom_audiences),
                    "upstream": service.upstream,
                }
            )
    return JSONResponse({"services": listed})


async def get_policy(request: Request) -> Response:
    policy = _services(request).policy(request.path_params["name"])
    if policy is None:
        return api_error(404, f"Service {request.path_params['name'][:60]} is not fronted by this emulator.")
    return JSONResponse(policy)


def _invokers(body: dict[str, Any]) -> list[str]:
    policy = body.get("policy")
    if not isinstance(policy, dict) or not isinstance(policy.get("bindings", []), list):
        raise InvalidArgumentError('the body is {"policy": {"bindings": [{"role", "members"}]}}')
    members: list[str] = []
    for binding in policy.get("bindings", []):
        if not isinstance(binding, dict) or binding.get("role") != INVOKER:
            raise InvalidArgumentError(f"only {INVOKER} bindings are emulated")
        listed = binding.get("members", [])
        if not isinstance(listed, list) or not all(isinstance(m, str) for m in listed):
            raise InvalidArgumentError("members is a list of strings")
        members.extend(listed)
    return members


async def set_policy(request: Request) -> Response:
    registry, name = _services(request), request.path_params["name"]
    if registry.get(name) is None:
        return api_error(404, f"Service {name[:60]} is not fronted by this emulator.")
    body = await json_object(request)
    if body is None:
        return api_error(400, "The request body must be a JSON object.")
    try:
        invokers = _invokers(body)
        missing = missing_account(invokers, request.app.state.emulator)
        if missing is not None:
            raise InvalidArgumentError(missing)
        registry.set_invokers(name, invokers)
    except InvalidArgumentError as exc:
        return api_error(400, str(exc))
    return JSONResponse(registry.policy(name))


routes = [
    Route("/emulator/v1/run/services", list_services, methods=["GET"]),
    Route("/emulator/v1/run/services/{name}:getIamPolicy", get_policy, methods=["GET", "POST"]),
    Route("/emulator/v1/run/services/{name}:setIamPolicy", set_policy, methods=["POST"]),
]
