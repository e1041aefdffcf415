"""Admin calls for sign-in: OAuth clients (desktop apps and IAP's web clients, per project) and
users who must reauthenticate before their refresh tokens work again."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gcptoken.emulator.http.responses import GoogleJSONResponse as JSONResponse
from gcptoken.emulator.http.responses import api_error, json_object
from gcptoken.emulator.oauth2.signin_state import OAuthClient
from gcptoken.emulator.state.state import EmulatorState

__all__ = ["client_json", "routes"]


def client_json(state: EmulatorState, client: OAuthClient) -> dict[str, object]:
    shown: dict[str, object] = {
        "clientId": client.client_id,
        "clientSecret": client.client_secret,
        "kind": client.kind,
        "projectNumber": client.project_number,
        "name": client.name,
    }
    if client.kind == "desktop":
        shown["installed"] = client.installed_file(state.base_url, state.project_id)["installed"]
    return shown


async def oauth_clients(request: Request) -> Response:
    """GET: the registered clients. POST ``{"kind": "desktop"|"web", "name"?, "projectNumber"?}``:
    register one (``web`` is an IAP app's client; another project's number makes a client whose
    audience a desktop client of this project may not ask for)."""
    state: EmulatorState = request.app.state.emulator
    if request.method == "GET":
        return JSONResponse({"clients": [client_json(state, c) for c in state.signin.clients.values()]})
    body = await json_object(request)
    if not isinstance(body, dict):
        return api_error(400, "Request body must be a JSON object.")
    kind, name = body.get("kind", "desktop"), body.get("name", "")
    number = body.get("projectNumber", state.project_number)
    if kind not in ("desktop", "web") or not isinstance(name, str) or len(name) > 120:
        return api_error(400, 'kind must be "desktop" or "web"; name a short string.')
    if not isinstance(number, str) or not re.fullmatch(r"\d{1,20}", number):
        return api_error(400, "projectNumber must be digits.")
    with state.lock:
        client = state.signin.register(kind, number, name or ("Desktop app" if kind == "desktop" else "IAP app"))
    state.changed()
    return JSONResponse(client_json(state, client), status_code=201)


async def reauth(request: Request) -> Response:
    """``POST /emulator/v1/users/{email}:reauth`` ``{"required": true|false}``: the user's refresh
    grants fail with ``invalid_grant`` / ``invalid_rapt`` until it is lifted."""
    state: EmulatorState = request.app.state.emulator
    email = request.path_params["email"]
    body = await json_object(request)
    required = body.get("required", True) if isinstance(body, dict) else None
    if not isinstance(required, bool):
        return api_error(400, "required must be true or false.")
    if email not in state.users:
        return api_error(404, f"No user {email[:100]}.")
    with state.lock:
        (state.signin.reauth_required.add if required else state.signin.reauth_required.discard)(email)
    return JSONResponse({"email": email, "reauthRequired": required})


routes = [
    Route("/emulator/v1/oauthClients", oauth_clients, methods=["GET", "POST"]),
    Route("/emulator/v1/users/{email}:reauth", reauth, methods=["POST"]),
]
