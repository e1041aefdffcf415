"""Regional access boundaries (IAM Credentials ``…/allowedLocations``): where a service account's,
workload identity pool's or workforce pool's credentials may be used. Clients look the boundary up
with the credential's own access token and send ``encodedLocations`` as ``x-allowed-locations``.

Google's API (https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/getAllowedLocations,
…/projects.locations.workloadIdentityPools/getAllowedLocations, …/locations.workforcePools/getAllowedLocations):
``GET https://iamcredentials.googleapis.com/v1/{name}/allowedLocations``, an empty body, the
permission ``iam.serviceAccounts.get`` (``iam.workloadIdentityPools.get``, ``iam.workforcePools.get``)
on ``name``; the answer is ``{"locations": ["us-central1", …], "encodedLocations": "<hex bitmap>"}``.

Without a boundary the answer is the "no-op" one, ``encodedLocations: "0x0"`` (the value Google's
clients name ``NoOpEncodedLocations``: google-cloud-go auth/internal/trustboundary/trust_boundary.go,
google-auth-library-nodejs src/auth/trustboundary.ts; google-auth-library-python's tests use
``{"locations": [], "encodedLocations": "0x0"}``). Google's bit numbering of the bitmap is not
published: the emulator numbers ``REGIONS`` in order, or takes an ``encodedLocations`` from the admin.

Who may look up: the principal itself (the token google-auth, Go, Java and Node send), or for a
service account anyone holding Token Creator on it (that role includes ``iam.serviceAccounts.get``).

Admin: ``GET /emulator/v1/allowedLocations`` lists the boundaries set; ``GET|PUT|DELETE
/emulator/v1/allowedLocations/{name}`` with ``name`` one of ``projects/-/serviceAccounts/EMAIL``,
``projects/NUMBER/locations/global/workloadIdentityPools/POOL``,
``locations/global/workforcePools/POOL``; PUT ``{"locations": [...], "encodedLocations"?: "0x…"}``.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gcptoken.emulator.http.responses import GoogleJSONResponse as JSONResponse
from gcptoken.emulator.http.responses import api_error, json_object, log_detail
from gcptoken.emulator.iam.credentials import UNAUTHENTICATED
from gcptoken.emulator.iam.credentials import _caller as iam_caller
from gcptoken.emulator.state.state import EmulatorState

__all__ = ["NO_BOUNDARY", "REGIONS", "encoded", "routes"]

NO_BOUNDARY = "0x0"
# The emulator's own numbering of the bitmap: bit i stands for REGIONS[i]. Append only, so encoded
# values saved with --state-dir keep their meaning.
REGIONS = (
    "africa-south1",
    "asia-east1",
    "asia-east2",
    "asia-northeast1",
    "asia-northeast2",
    "asia-northeast3",
    "asia-south1",
    "asia-south2",
    "asia-southeast1",
    "asia-southeast2",
    "australia-southeast1",
    "australia-southeast2",
    "europe-central2",
    "europe-north1",
    "europe-north2",
    "europe-southwest1",
    "europe-west1",
    "europe-west2",
    "europe-west3",
    "europe-west4",
    "europe-west6",
    "europe-west8",
    "europe-west9",
    "europe-west10",
    "europe-west12",
    "me-central1",
    "me-central2",
    "me-west1",
    "northamerica-northeast1",
    "northamerica-northeast2",
    "northamerica-south1",
    "southamerica-east1",
    "southamerica-west1",
    "us-central1",
    "us-east1",
    "us-east4",
    "us-east5",
    "us-south1",
    "us-west1",
    "us-west2",
    "us-west3",
    "us-west4",
)
_ENCODED = re.compile(r"0x[0-9A-Fa-f]{1,256}")
_SERVICE_ACCOUNT = re.compile(r"projects/[^/]+/serviceAccounts/([^/]+@[^/]+)")
_WORKLOAD_POOL = re.compile(r"projects/[^/]+/locations/global/workloadIdentityPools/[^/]+")
_WORKFORCE_POOL = re.compile(r"locations/global/workforcePools/[^/]+")


def encoded(locations: list[str]) -> str:
    """``locations`` as the emulator's hex bitmap (``0x0`` for none); ValueError for an unknown one."""
    bits = 0
    for location in locations:
        bits |= 1 << REGIONS.index(location)
    return f"0x{bits:X}"


def canonical(name: str) -> str | None:
    """The stored form of a resource name (a service account under ``projects/-``), or None when
    ``name`` is none of the three kinds."""
    account = _SERVICE_ACCOUNT.fullmatch(name)
    if account is not None:
        return f"projects/-/serviceAccounts/{account.group(1)}"
    if _WORKLOAD_POOL.fullmatch(name) or _WORKFORCE_POOL.fullmatch(name):
        return name
    return None


def _answer(state: EmulatorState, name: str) -> dict[str, Any]:
    with state.lock:
        boundary = state.allowed_locations.get(name)
    return dict(boundary) if boundary is not None else {"locations": [], "encodedLocations": NO_BOUNDARY}


def _may_look_up(state: EmulatorState, members: tuple[str, ...], name: str) -> bool:
    account = _SERVICE_ACCOUNT.fullmatch(name)
    if account is not None:
        email = account.group(1)
        return email in state.service_accounts and (
            f"serviceAccount:{email}" in members or any(state.may_act_as(member, email) for member in members)
        )
    # A federated principal of the pool: its members include principalSet://…/POOL/* (models).
    return f"principalSet://iam.googleapis.com/{name}/*" in members


async def _lookup(request: Request, name: str, permission: str) -> Response:
    state: EmulatorState = request.app.state.emulator
    members = iam_caller(state, request)
    if members is None:
        return api_error(401, UNAUTHENTICATED)
    key = canonical(name)
    log_detail(request).update({"allowedLocations": key, "caller": members[0]})
    if key is None or not _may_look_up(state, members, key):
        return api_error(403, f"Permission '{permission}' denied on resource (or it may not exist).")
    answer = _answer(state, key)
    log_detail(request)["encodedLocations"] = answer["encodedLocations"]
    return JSONResponse(answer)


async def service_account(request: Request) -> Response:
    params = request.path_params
    name = f"projects/{params['project']}/serviceAccounts/{params['email']}"
    return await _lookup(request, name, "iam.serviceAccounts.get")


async def workload_pool(request: Request) -> Response:
    params = request.path_params
    location, pool = params["location"], params["pool"]
    name = f"projects/{params['project']}/locations/{location}/workloadIdentityPools/{pool}"
    return await _lookup(request, name, "iam.workloadIdentityPools.get")


async def workforce_pool(request: Request) -> Response:
    params = request.path_params
    name = f"locations/{params['location']}/workforcePools/{params['pool']}"
    return await _lookup(request, name, "iam.workforcePools.get")


# -- admin ------------------------------------------------------------------------------------------


async def list_boundaries(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    with state.lock:
        boundaries = [{"name": name, **boundary} for name, boundary in sorted(state.allowed_locations.items())]
    default = {"locations": [], "encodedLocations": NO_BOUNDARY}
    return JSONResponse({"allowedLocations": boundaries, "default": default, "regions": list(REGIONS)})


async def boundary(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    given = request.path_params["name"]
    name = canonical(given)
    if name is None:
        return api_error(
            400,
            "name must be projects/-/serviceAccounts/EMAIL, projects/NUMBER/locations/global/"
            "workloadIdentityPools/POOL or locations/global/workforcePools/POOL.",
        )
    account = _SERVICE_ACCOUNT.fullmatch(name)
    if account is not None and account.group(1) not in state.service_accounts:
        return api_error(404, f"Service account {account.group(1)} does not exist.")
    if request.method == "PUT":
        body = await json_object(request)
        problem = None if body is None else _boundary_problem(body)
        if body is None or problem is not None:
            return api_error(400, problem or "Request body must be a JSON object.")
        locations = list(dict.fromkeys(body["locations"]))
        value = body.get("encodedLocations") or encoded(locations)
        with state.lock:
            state.allowed_locations[name] = {"locations": locations, "encodedLocations": value}
        state.changed()
    elif request.method == "DELETE":
        with state.lock:
            state.allowed_locations.pop(name, None)
        state.changed()
    return JSONResponse({"name": name, **_answer(state, name)})


def _boundary_problem(body: dict[str, Any]) -> str | None:
    locations = body.get("locations")
    if not isinstance(locations, list) or not all(isinstance(item, str) for item in locations):
        return 'locations must be a list of region names, e.g. ["us-central1", "europe-west1"].'
    value = body.get("encodedLocations")
    if value is not None:
        if not isinstance(value, str) or not _ENCODED.fullmatch(value):
            return "encodedLocations must be a hex bitmap such as 0xA30."
        return None
    unknown = [location for location in locations if location not in REGIONS]
    if unknown:
        return (
            f"Unknown region {unknown[0][:60]!r}: the emulator encodes only the regions it lists "
            "(GET /emulator/v1/allowedLocations); pass encodedLocations for others."
        )
    return None


routes = [
    Route("/v1/projects/{project}/serviceAccounts/{email}/allowedLocations", service_account, methods=["GET"]),
    Route(
        "/v1/projects/{project}/locations/{location}/workloadIdentityPools/{pool}/allowedLocations",
        workload_pool,
        methods=["GET"],
    ),
    Route("/v1/locations/{location}/workforcePools/{pool}/allowedLocations", workforce_pool, methods=["GET"]),
    Route("/emulator/v1/allowedLocations", list_boundaries, methods=["GET"]),
    Route("/emulator/v1/allowedLocations/{name:path}", boundary, methods=["GET", "PUT", "DELETE"]),
]
