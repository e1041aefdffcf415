"""Resource Manager's project lookup (cloudresourcemanager.googleapis.com), which google-auth's
external accounts and Node's ``getProjectId()`` use to learn a project's id from its number."""

from __future__ import annotations

from datetime import datetime, timezone

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gcptoken.emulator.http.responses import GoogleJSONResponse, api_error
from gcptoken.emulator.state.state import EmulatorState

__all__ = ["routes"]

UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential."
)
# When the emulated project came to be, as Resource Manager reports it.
CREATED = datetime(2024, 1, 1, tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def get_project(request: Request) -> Response:
    """``GET /v1/projects/{projectIdOrNumber}`` with a valid access token."""
    state: EmulatorState = request.app.state.emulator
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    grant = state.access_tokens.get(token.strip()) if scheme.lower() == "bearer" else None
    if grant is None or grant.expires_at <= state.clock():
        return api_error(401, UNAUTHENTICATED)
    wanted = request.path_params["project"]
    if wanted not in (state.project_id, state.project_number):
        # Google does not say whether a project it will not show you exists.
        return api_error(403, "The caller does not have permission")
    return GoogleJSONResponse(
        {
            "projectNumber": state.project_number,
            "projectId": state.project_id,
            "lifecycleState": "ACTIVE",
            "name": state.project_id,
            "createTime": CREATED,
        }
    )


routes = [Route("/v1/projects/{project}", get_project, methods=["GET"])]
