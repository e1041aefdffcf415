"""The emulator's admin API for domain-wide delegation (what a Workspace admin sets in the Admin
console under Security > API controls > Domain-wide delegation): client id → allowed scopes.

``GET /emulator/v1/domainWideDelegation`` lists the grants; ``PUT …/{clientId}`` with
``{"scopes": [...]}`` sets one (the client id is the service account's unique id; its email is
accepted too); ``DELETE …/{clientId}`` removes it."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gcptoken.checks import unknown_scopes
from gcptoken.emulator.http.responses import api_error, json_object
from gcptoken.emulator.state.state import EmulatorState

__all__ = ["grant_delegation", "routes"]

_CLIENT_ID = re.compile(r"[0-9]{1,30}")


def grant_delegation(state: EmulatorState, client: str, scopes: list[str] | tuple[str, ...]) -> str:
    """Set the grant of ``client`` (a unique id, or a service account's email): its client id.
    ValueError for a client or scope the Admin console would refuse."""
    account = state.service_accounts.get(client)
    client_id = account.unique_id if account is not None else client
    if not _CLIENT_ID.fullmatch(client_id):
        raise ValueError("the client id is a service account's unique id (digits) or its email")
    if not all(isinstance(s, str) for s in scopes):
        raise ValueError("scopes must be a non-empty list of Google OAuth scopes")
    # The Admin console takes the scopes comma-separated; one entry "A B" is two scopes, as a token
    # request's space-separated scope is.
    split = [scope for entry in scopes for scope in entry.replace(",", " ").split()]
    if not split or unknown_scopes(split):
        raise ValueError("scopes must be a non-empty list of Google OAuth scopes")
    with state.lock:
        state.delegation_grants[client_id] = tuple(dict.fromkeys(split))
    return client_id


def _listing(state: EmulatorState) -> dict[str, Any]:
    emails = {account.unique_id: account.email for account in state.service_accounts.values()}
    grants = [
        {"clientId": client, "serviceAccount": emails.get(client), "scopes": list(scopes)}
        for client, scopes in sorted(state.delegation_grants.items())
    ]
    return {"grants": grants}


async def delegation(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    client = request.path_params.get("client")
    if request.method == "PUT" and client is not None:
        body = await json_object(request)
        scopes = body.get("scopes") if body is not None else None
        if not isinstance(scopes, list):
            return api_error(400, '"scopes" must be a list of OAuth scopes.')
        try:
            grant_delegation(state, client, scopes)
        except ValueError as exc:
            return api_error(400, str(exc))
        state.changed()
    elif request.method == "DELETE" and client is not None:
        account = state.service_accounts.get(client)
        with state.lock:
            state.delegation_grants.pop(account.unique_id if account is not None else client, None)
        state.changed()
    return JSONResponse(_listing(state))


routes = [
    Route("/emulator/v1/domainWideDelegation", delegation, methods=["GET"]),
    Route("/emulator/v1/domainWideDelegation/{client}", delegation, methods=["PUT", "DELETE"]),
]
