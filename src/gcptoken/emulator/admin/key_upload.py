"""The emulator's admin API for uploaded keys and who may manage keys (not a Google API):

- ``POST /emulator/v1/serviceAccounts/{email}/keys:upload`` with ``{"certificate": PEM}`` (or IAM's
  ``{"publicKeyData": base64(PEM)}``): the key joins the account as IAM's keys:upload adds it, with
  the same refusals; the answer is IAM's ServiceAccountKey (its ``name`` ends with the key id).
- ``GET /emulator/v1/serviceAccounts/{email}/keys``: every key as IAM's keys.list describes it.
- ``GET|POST /emulator/v1/serviceAccounts/{email}/keyAdmins`` (``{"member": …}``) and ``DELETE
  …/keyAdmins/{member}``: who holds roles/iam.serviceAccountKeyAdmin on the account (IAM's key API).
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gcptoken.emulator.http.responses import api_error, json_object
from gcptoken.emulator.iam.service_account_keys import KEY_ADMIN, certificate_data
from gcptoken.emulator.keys import uploaded
from gcptoken.emulator.keys.account_keys import published_keys
from gcptoken.emulator.state.state import EmulatorState

__all__ = ["routes"]

_MEMBER = re.compile(r"(serviceAccount|user|principal|principalSet):.+")


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


async def upload(request: Request) -> Response:
    state = _state(request)
    account = state.service_accounts.get(request.path_params["email"])
    if account is None:
        return api_error(404, f"Service account {request.path_params['email']} does not exist.")
    body = await json_object(request)
    pem = body.get("certificate") if body is not None else None
    data = pem.encode("utf-8") if isinstance(pem, str) else certificate_data(body)
    if isinstance(data, Response):
        return api_error(400, '"certificate" must be a PEM X.509 certificate.')
    try:
        kid = uploaded.upload(state, account.email, data)
    except uploaded.UploadRefusedError as refused:
        return JSONResponse(
            {"error": {"code": refused.code, "message": refused.message, "status": refused.status}},
            status_code=refused.code,
        )
    with state.lock:
        return JSONResponse(uploaded.key_resource(state, account, kid, "TYPE_X509_PEM_FILE"), status_code=201)


async def list_keys(request: Request) -> Response:
    state = _state(request)
    account = state.service_accounts.get(request.path_params["email"])
    if account is None:
        return api_error(404, f"Service account {request.path_params['email']} does not exist.")
    published_keys(state, account.email)  # its Google-managed key made, every key with a certificate
    with state.lock:
        kids = list(account.keys | account.disabled_keys)
        return JSONResponse({"keys": [uploaded.key_resource(state, account, kid, None) for kid in kids]})


async def key_admins(request: Request) -> Response:
    state = _state(request)
    email = request.path_params["email"]
    if email not in state.service_accounts:
        return api_error(404, f"Service account {email} does not exist.")
    if request.method == "POST":
        body = await json_object(request)
        member = body.get("member") if body is not None else None
        if not isinstance(member, str) or not _MEMBER.fullmatch(member):
            return api_error(400, "member must look like serviceAccount:EMAIL or user:EMAIL.")
        with state.lock:
            state.key_admins.setdefault(email, set()).add(member)
        state.changed()
    elif request.method == "DELETE":
        with state.lock:
            state.key_admins.get(email, set()).discard(request.path_params["member"])
        state.changed()
    return JSONResponse({"role": KEY_ADMIN, "members": sorted(state.key_admins.get(email, ()))})


routes = [
    Route("/emulator/v1/serviceAccounts/{email}/keys:upload", upload, methods=["POST"]),
    Route("/emulator/v1/serviceAccounts/{email}/keys", list_keys, methods=["GET"]),
    Route("/emulator/v1/serviceAccounts/{email}/keyAdmins", key_admins, methods=["GET", "POST"]),
    Route("/emulator/v1/serviceAccounts/{email}/keyAdmins/{member}", key_admins, methods=["DELETE"]),
]
