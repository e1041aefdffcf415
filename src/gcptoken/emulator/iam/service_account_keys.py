"""IAM's admin API for service-account keys (``iam.googleapis.com/v1``), what ``gcloud iam
service-accounts keys list|get-public-key|upload|disable|enable|delete`` call
(cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts.keys):

- ``GET    /v1/projects/P/serviceAccounts/A/keys[?keyTypes=USER_MANAGED|SYSTEM_MANAGED]`` → ``{"keys": [...]}``
- ``GET    /v1/projects/P/serviceAccounts/A/keys/K[?publicKeyType=TYPE_X509_PEM_FILE|TYPE_RAW_PUBLIC_KEY]``
- ``POST   /v1/projects/P/serviceAccounts/A/keys:upload`` ``{"publicKeyData": base64(PEM certificate)}``
- ``POST   /v1/projects/P/serviceAccounts/A/keys/K:disable`` and ``…:enable`` → ``{}``
- ``DELETE /v1/projects/P/serviceAccounts/A/keys/K`` → ``{}``

``P`` is the project id or number or ``-``; ``A`` the account's email or unique id. The caller
authenticates as for IAM Credentials and needs ``roles/iam.serviceAccountKeyAdmin`` on the account
(the role the keys-upload page names; the emulator grants it per account, admin API ``keyAdmins``).
An unknown account is a 403 through ``-`` and a 404 through a project, as the reference says.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gcptoken.emulator.http.responses import GoogleJSONResponse as JSONResponse
from gcptoken.emulator.http.responses import api_error, json_object, log_detail
from gcptoken.emulator.iam.credentials import UNAUTHENTICATED
from gcptoken.emulator.iam.credentials import _caller as iam_caller
from gcptoken.emulator.keys import uploaded
from gcptoken.emulator.keys.account_keys import published_keys
from gcptoken.emulator.state.models import ServiceAccount
from gcptoken.emulator.state.state import EmulatorState

__all__ = ["KEY_ADMIN", "find_account", "routes"]

KEY_ADMIN = "roles/iam.serviceAccountKeyAdmin"
_PERMISSION = {
    "list": "iam.serviceAccountKeys.list",
    "get": "iam.serviceAccountKeys.get",
    "upload": "iam.serviceAccountKeys.create",
    "delete": "iam.serviceAccountKeys.delete",
    "disable": "iam.serviceAccountKeys.disable",
    "enable": "iam.serviceAccountKeys.enable",
}
_KEY_TYPES = ("USER_MANAGED", "SYSTEM_MANAGED")
_PUBLIC_KEY_TYPES = ("TYPE_NONE", "TYPE_X509_PEM_FILE", "TYPE_RAW_PUBLIC_KEY")


def _error(code: int, status: str, message: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message, "status": status}}, status_code=code)


def find_account(state: EmulatorState, project: str, account: str) -> ServiceAccount | None:
    """The account named by email or unique id, in the emulated project (or ``-``)."""
    if project not in ("-", state.project_id, state.project_number):
        return None
    found = state.service_accounts.get(account)
    if found is None:
        found = next((a for a in state.service_accounts.values() if a.unique_id == account), None)
    return found


def _authorized(request: Request, method: str) -> tuple[EmulatorState, ServiceAccount] | Response:
    """The state and the account, or Google's 401 / 403 / 404."""
    state: EmulatorState = request.app.state.emulator
    caller = iam_caller(state, request)
    if caller is None:
        return api_error(401, UNAUTHENTICATED)
    project, name = request.path_params["project"], request.path_params["account"]
    log_detail(request).update({"method": f"keys.{method}", "caller": caller[0]})
    account = find_account(state, project, name)
    if account is not None and set(caller) & state.key_admins.get(account.email, set()):
        return state, account
    if account is None and project != "-":
        return api_error(404, f"Service account projects/{project}/serviceAccounts/{name} does not exist.")
    return api_error(403, f"Permission '{_PERMISSION[method]}' denied on resource (or it may not exist).")


def _key_id(account: ServiceAccount, key: str) -> str | Response:
    if key in account.keys or key in account.disabled_keys:
        return key
    return api_error(404, f"Service account key projects/-/serviceAccounts/{account.email}/keys/{key} does not exist.")


def _is_system(state: EmulatorState, account: ServiceAccount, kid: str) -> bool:
    return state.system_keys.get(account.email, ("",))[0] == kid


async def list_keys(request: Request) -> Response:
    found = _authorized(request, "list")
    if isinstance(found, Response):
        return found
    state, account = found
    wanted = request.query_params.getlist("keyTypes")
    if any(kind not in _KEY_TYPES for kind in wanted):
        return api_error(400, "Invalid value for keyTypes: use USER_MANAGED or SYSTEM_MANAGED.")
    published_keys(state, account.email)  # its Google-managed key made, every key with a certificate
    with state.lock:
        keys = [uploaded.key_resource(state, account, kid, None) for kid in account.keys | account.disabled_keys]
    return JSONResponse({"keys": [key for key in keys if not wanted or key["keyType"] in wanted]})


async def get_key(request: Request) -> Response:
    found = _authorized(request, "get")
    if isinstance(found, Response):
        return found
    state, account = found
    kind = request.query_params.get("publicKeyType", "TYPE_NONE")
    published_keys(state, account.email)
    if kind not in _PUBLIC_KEY_TYPES:
        return api_error(400, f"Invalid value for publicKeyType: {kind[:40]!r}.")
    with state.lock:
        kid = _key_id(account, request.path_params["key"])
        if isinstance(kid, Response):
            return kid
        return JSONResponse(uploaded.key_resource(state, account, kid, None if kind == "TYPE_NONE" else kind))


async def delete_key(request: Request) -> Response:
    found = _authorized(request, "delete")
    if isinstance(found, Response):
        return found
    state, account = found
    with state.lock:
        kid = _key_id(account, request.path_params["key"])
        if isinstance(kid, Response):
            return kid
        if _is_system(state, account, kid):
            return api_error(400, "A system-managed key cannot be deleted; Google rotates it.")
        state.delete_key(account.email, kid)
    state.changed()
    return JSONResponse({})


async def key_action(request: Request) -> Response:
    """``POST …/keys/K:disable`` and ``…:enable``."""
    key, _, action = request.path_params["key"].rpartition(":")
    if action not in ("disable", "enable"):
        return api_error(404, f"The requested URL {request.url.path} was not found on this server.")
    found = _authorized(request, action)
    if isinstance(found, Response):
        return found
    state, account = found
    with state.lock:
        kid = _key_id(account, key)
        if isinstance(kid, Response):
            return kid
        if _is_system(state, account, kid):
            return api_error(400, "A system-managed key cannot be disabled.")
        if action == "disable" and kid in account.keys:
            account.disabled_keys[kid] = account.keys.pop(kid)
        elif action == "enable" and kid in account.disabled_keys:
            account.keys[kid] = account.disabled_keys.pop(kid)
    state.changed()
    return JSONResponse({})


def certificate_data(body: dict[str, Any] | None) -> bytes | Response:
    """The PEM bytes of ``{"publicKeyData": base64}``, or Google's 400."""
    value = body.get("publicKeyData") if body is not None else None
    if not isinstance(value, str) or not value:
        return api_error(400, "Request contains an invalid argument: publicKeyData is required.")
    try:
        # protobuf's JSON bytes: standard or URL-safe base64, padding optional.
        return base64.b64decode(value.replace("-", "+").replace("_", "/") + "==", validate=False)
    except (binascii.Error, ValueError):
        return api_error(400, "Invalid value at 'public_key_data' (TYPE_BYTES), Base64 decoding failed.")


async def upload_key(request: Request) -> Response:
    found = _authorized(request, "upload")
    if isinstance(found, Response):
        return found
    state, account = found
    data = certificate_data(await json_object(request))
    if isinstance(data, Response):
        return data
    try:
        kid = uploaded.upload(state, account.email, data)
    except uploaded.UploadRefusedError as refused:
        return _error(refused.code, refused.status, refused.message)
    with state.lock:
        return JSONResponse(uploaded.key_resource(state, account, kid, "TYPE_X509_PEM_FILE"))


_BASE = "/v1/projects/{project}/serviceAccounts/{account}/keys"
routes = [
    Route(_BASE, list_keys, methods=["GET"]),
    Route(_BASE + ":upload", upload_key, methods=["POST"]),
    Route(_BASE + "/{key}", get_key, methods=["GET"]),
    Route(_BASE + "/{key}", delete_key, methods=["DELETE"]),
    Route(_BASE + "/{key}", key_action, methods=["POST"]),
]
