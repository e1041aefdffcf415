"""The emulator's own admin API under ``/emulator/v1/`` (not a Google API)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gcptoken.emulator.admin import delegation, key_upload
from gcptoken.emulator.http.responses import api_error, json_object
from gcptoken.emulator.iam.service_agents import PRODUCTS, sender_id_token, service_agent
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.senders.refused import SenderRefusedError

__all__ = ["routes"]

_ACCOUNT_ID = re.compile(r"[a-z]([-a-z0-9]{4,28}[a-z0-9])")


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


async def info(request: Request) -> Response:
    state = _state(request)
    return JSONResponse(
        {
            "baseUrl": state.base_url,
            "projectId": state.project_id,
            "projectNumber": state.project_number,
            "defaultServiceAccount": state.default_account.email,
            "signingKeyIds": [key.kid for key in state.issuer_keys],
            "signingKid": state.current_key.kid,
            "users": sorted(state.users),
        }
    )


async def list_service_accounts(request: Request) -> Response:
    accounts = [account.to_json() for account in _state(request).service_accounts.values()]
    return JSONResponse({"accounts": accounts})


async def create_service_account(request: Request) -> Response:
    body = await json_object(request)
    if body is None:
        return api_error(400, "Request body must be a JSON object.")
    account_id = body.get("accountId")
    if not isinstance(account_id, str) or not _ACCOUNT_ID.fullmatch(account_id):
        return api_error(400, "accountId must be 6-30 characters: lowercase letters, digits and hyphens.")
    display_name = body.get("displayName", "")
    try:
        account = _state(request).create_service_account(account_id, str(display_name))
    except KeyError:
        return api_error(409, f"Service account {account_id} already exists within project.")
    _state(request).changed()
    return JSONResponse(account.to_json(), status_code=201)


async def create_key(request: Request) -> Response:
    email = request.path_params["email"]
    state = _state(request)
    if email not in state.service_accounts:
        return api_error(404, f"Service account {email} does not exist.")
    key_file = state.create_key(email)
    state.changed()
    return JSONResponse(key_file, status_code=201)


async def delete_key(request: Request) -> Response:
    state = _state(request)
    try:
        state.delete_key(request.path_params["email"], request.path_params["key_id"])
    except KeyError:
        return api_error(404, "No such service account or key.")
    state.changed()
    return JSONResponse({})


async def token_creators(request: Request) -> Response:
    """GET the members allowed to act as the account; POST ``{"member": "serviceAccount:…" | "user:…" |
    "principal://…" | "principalSet://…", "role"?}`` to grant roles/iam.serviceAccountTokenCreator (or
    roles/iam.workloadIdentityUser), DELETE …/{member} to revoke."""
    state = _state(request)
    email = request.path_params["email"]
    if email not in state.service_accounts:
        return api_error(404, f"Service account {email} does not exist.")
    if request.method == "POST":
        body = await json_object(request)
        member = body.get("member") if body is not None else None
        if not isinstance(member, str) or not re.fullmatch(r"(serviceAccount|user|principal|principalSet):.+", member):
            return api_error(400, "member must look like serviceAccount:EMAIL or user:EMAIL.")
        # Both roles let the member act as the account here (getAccessToken, getOpenIdToken, sign*).
        role = body.get("role", "roles/iam.serviceAccountTokenCreator") if body is not None else None
        if role not in ("roles/iam.serviceAccountTokenCreator", "roles/iam.workloadIdentityUser"):
            return api_error(
                400, "role must be roles/iam.serviceAccountTokenCreator or roles/iam.workloadIdentityUser."
            )
        state.grant_token_creator(email, member)
        state.changed()
    elif request.method == "DELETE":
        state.revoke_token_creator(email, request.path_params["member"])
        state.changed()
    return JSONResponse(
        {"role": "roles/iam.serviceAccountTokenCreator", "members": sorted(state.token_creators.get(email, ()))}
    )


async def lifetime_extension(request: Request) -> Response:
    """PUT ``{"serviceAccounts": [...]}``: who may mint access tokens living up to 12 hours."""
    state = _state(request)
    if request.method == "PUT":
        body = await json_object(request)
        accounts = body.get("serviceAccounts") if body is not None else None
        if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
            return api_error(400, "serviceAccounts must be a list of emails.")
        state.lifetime_extension = set(accounts)
        state.changed()
    return JSONResponse({"serviceAccounts": sorted(state.lifetime_extension)})


async def service_agent_role(request: Request) -> Response:
    """GET a product's service agent and whether it holds its project-level role (so may mint ID
    tokens for any account); PUT ``{"projectRole": false}`` to take that role away, as in projects
    set up before 2021 (the agent then needs roles/iam.serviceAccountTokenCreator on each account)."""
    state = _state(request)
    product = PRODUCTS.get(request.path_params["product"])
    if product is None:
        return api_error(404, f"No such product; one of {', '.join(PRODUCTS)}.")
    if request.method == "PUT":
        body = await json_object(request)
        granted = body.get("projectRole") if body is not None else None
        if not isinstance(granted, bool):
            return api_error(400, '"projectRole" must be true or false.')
        (state.removed_agent_roles.discard if granted else state.removed_agent_roles.add)(product.agent_domain)
        state.changed()
    return JSONResponse(
        {
            "product": product.name,
            "serviceAgent": service_agent(state, product),
            "projectRole": product.agent_domain not in state.removed_agent_roles,
        }
    )


async def sender_token(request: Request) -> Response:
    """POST ``{"serviceAccount": EMAIL, "audience": AUD}``: the ID token the product would send
    (403/404 with Google's reason when it could not mint one)."""
    body = await json_object(request)
    email = body.get("serviceAccount") if body is not None else None
    audience = body.get("audience") if body is not None else None
    if not isinstance(email, str) or not isinstance(audience, str):
        return api_error(400, '"serviceAccount" and "audience" must be strings.')
    try:
        token = sender_id_token(_state(request), request.path_params["product"], email, audience)
    except SenderRefusedError as exc:
        return api_error(exc.status, str(exc))
    except ValueError as exc:
        return api_error(400, str(exc))
    return JSONResponse({"token": token})


async def create_user_credentials(request: Request) -> Response:
    """POST ``{"email": "alice@example.com"}``: the user (created if new) and an ``authorized_user``
    credential file with a fresh refresh token, as ``gcloud auth application-default login`` writes."""
    body = await json_object(request)
    email = body.get("email") if body is not None else None
    if not isinstance(email, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
        return api_error(400, "email must be an email address.")
    state = _state(request)
    credentials = state.issue_refresh_token(email)
    state.changed()
    return JSONResponse(credentials, status_code=201)


async def rotate_signing_key(request: Request) -> Response:
    """Publish a new signing key; it signs once the published certs max-age has run out (or at
    once with ``{"immediate": true}``, or on ``signingKeys:promote``)."""
    state = _state(request)
    body = await json_object(request)
    immediate = body.get("immediate", False) if body is not None else None
    if not isinstance(immediate, bool):
        return api_error(400, '"immediate" must be true or false.')
    new = state.rotate_signing_key(immediate=immediate)
    state.changed()
    return JSONResponse(_signing(state) | {"kid": new.kid})


async def promote_signing_key(request: Request) -> Response:
    state = _state(request)
    state.promote_signing_key()
    state.changed()
    return JSONResponse(_signing(state))


def _signing(state: EmulatorState) -> dict[str, Any]:
    return {
        "signingKeyIds": [key.kid for key in state.issuer_keys],
        "currentKid": state.current_key.kid,
        "switchAt": state.switch_at,
    }


async def retire_signing_key(request: Request) -> Response:
    state = _state(request)
    try:
        state.retire_signing_key(request.path_params["kid"])
    except KeyError:
        return api_error(404, "No such published signing key.")
    except ValueError as exc:
        return api_error(400, str(exc))
    state.changed()
    return JSONResponse({"signingKeyIds": [key.kid for key in state.issuer_keys]})


async def requests_log(request: Request) -> Response:
    state = _state(request)
    if request.method == "DELETE":
        state.clear_requests()
        return JSONResponse({})
    return JSONResponse({"requests": state.request_log()})


routes = [
    Route("/emulator/v1/info", info),
    Route("/emulator/v1/serviceAccounts", list_service_accounts, methods=["GET"]),
    Route("/emulator/v1/serviceAccounts", create_service_account, methods=["POST"]),
    Route("/emulator/v1/serviceAccounts/{email}/keys", create_key, methods=["POST"]),
    Route("/emulator/v1/serviceAccounts/{email}/keys/{key_id}", delete_key, methods=["DELETE"]),
    Route("/emulator/v1/serviceAccounts/{email}/tokenCreators", token_creators, methods=["GET", "POST"]),
    Route("/emulator/v1/serviceAccounts/{email}/tokenCreators/{member}", token_creators, methods=["DELETE"]),
    Route("/emulator/v1/policies/credentialLifetimeExtension", lifetime_extension, methods=["GET", "PUT"]),
    Route("/emulator/v1/serviceAgents/{product}:generateIdToken", sender_token, methods=["POST"]),
    Route("/emulator/v1/serviceAgents/{product}", service_agent_role, methods=["GET", "PUT"]),
    Route("/emulator/v1/users", create_user_credentials, methods=["POST"]),
    Route("/emulator/v1/signingKeys:rotate", rotate_signing_key, methods=["POST"]),
    Route("/emulator/v1/signingKeys:promote", promote_signing_key, methods=["POST"]),
    Route("/emulator/v1/signingKeys/{kid}", retire_signing_key, methods=["DELETE"]),
    Route("/emulator/v1/requests", requests_log, methods=["GET", "DELETE"]),
    *delegation.routes,
    *key_upload.routes,
]
