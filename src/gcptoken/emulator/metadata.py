"""An emulated VM / Cloud Run instance's metadata server, on the emulator's port.

Paths, headers and refusals as Google's: every response carries ``Metadata-Flavor: Google`` and
one ``Server: Metadata Server for VM``; ``/computeMetadata/v1/…`` requires the request header
``Metadata-Flavor: Google`` and refuses proxied requests (``X-Forwarded-For``) with 403.

The values form a tree. A directory named without its trailing slash answers 301 to the slashed
path (Node's gcp-metadata detects GCE by GET ``…/v1/instance``); a directory lists its entries one
per line (sub-directories with a trailing ``/``), or with ``?recursive=true`` is the whole subtree as
JSON (camelCase keys, as Google's). ``alt=json|text`` chooses the format, every answer carries an
``ETag``, and ``?wait_for_change=true`` (``last_etag``, ``timeout_sec``) waits for the value to
change, which the admin API's attributes make possible.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gcptoken.emulator.responses import api_error, json_body
from gcptoken.emulator.state import EmulatorState, ServiceAccount

__all__ = ["routes"]

FLAVOR = {"Metadata-Flavor": "Google", "Server": "Metadata Server for VM"}
PREFIX = "/computeMetadata/v1/"
LICENSE_ID = "1000201"
MAX_WAIT = 300.0
DEFAULT_WAIT = 60.0
# Entries whose children are names (attribute keys, accounts), kept as they are in recursive JSON.
_NAMED_CHILDREN = frozenset({"attributes", "service-accounts"})
# As Compute Engine's metadata keys: no "/" or line break can split a path or a listing line.
_ATTRIBUTE_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
_KEY_RULE = "Attribute keys are 1-128 letters, digits, '-' or '_'."
# Leaves of a service-account directory that are computed per request, not part of its JSON.
_ACCOUNT_ENDPOINTS = ("identity", "token")


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/text", headers=FLAVOR)


def _html_error(status: int, message: str) -> Response:
    return Response(f"<html><body>{message}</body></html>", status_code=status, media_type="text/html", headers=FLAVOR)


async def root(request: Request) -> Response:
    """``/``: what a metadata ping sees (google-auth checks only the response header)."""
    return _text("computeMetadata/\n")


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


def _camel(name: str) -> str:
    head, *rest = name.split("-")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _as_json(value: Any, names: bool = False) -> Any:
    """The subtree as Google's recursive JSON: structural keys in camelCase, names kept."""
    if not isinstance(value, dict):
        return value
    return {(key if names else _camel(key)): _as_json(child, key in _NAMED_CHILDREN) for key, child in value.items()}


def _leaf_text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(f"{item}\n" for item in value)
    return str(value)


def _flat(value: Any, prefix: str = "") -> list[str]:
    """``alt=text`` for a recursive directory: one ``path value`` line per leaf."""
    if isinstance(value, dict):
        lines = []
        for key, child in value.items():
            lines += _flat(child, f"{prefix}{key}/" if isinstance(child, dict) else f"{prefix}{key}")
        return lines
    if isinstance(value, list):
        return [f"{prefix} {item}" for item in value]
    return [f"{prefix} {value}"]


def _lookup(state: EmulatorState, path: str) -> tuple[bool, Any] | None:
    """(is a directory, value) for ``path`` (no trailing slash), or None when there is none."""
    node: Any = tree(state)
    if not path:
        return True, node
    for part in path.split("/"):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return isinstance(node, dict), node


def _listing(path: str, node: dict[str, Any]) -> list[str]:
    entries = [f"{key}/" if isinstance(child, dict) else key for key, child in node.items()]
    if path.startswith("instance/service-accounts/") and path.count("/") == 2:
        entries += list(_ACCOUNT_ENDPOINTS)
    return sorted(entries)


def _render(request: Request, path: str, is_dir: bool, node: Any) -> Response:
    recursive = request.query_params.get("recursive", "").lower() == "true"
    alt = request.query_params.get("alt", "json" if is_dir and recursive else "text")
    if alt not in ("json", "text"):
        return _html_error(400, f"Invalid alt parameter: {alt[:20]}")
    if is_dir and not recursive:
        entries = _listing(path, node)
        body = json.dumps(entries) if alt == "json" else "".join(f"{entry}\n" for entry in entries)
    elif is_dir:
        value = _as_json(node, names=path.rsplit("/", 1)[-1] in _NAMED_CHILDREN)
        body = json.dumps(value, separators=(",", ":")) if alt == "json" else "\n".join(_flat(node)) + "\n"
    else:
        body = json.dumps(node) if alt == "json" else _leaf_text(node)
    media = "application/json" if alt == "json" else "application/text"
    return Response(body, media_type=media, headers={**FLAVOR, "ETag": _etag(body)})


def _etag(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _identity(state: EmulatorState, account: ServiceAccount, request: Request) -> Response:
    audience = request.query_params.get("audience", "")
    if not audience:
        return _html_error(400, "non-empty audience parameter required")
    full = request.query_params.get("format", "standard") == "full"
    claims = state.identity_claims(account, audience)
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
        if request.query_params.get("licenses", "FALSE").upper() == "TRUE":
            compute["license_id"] = [LICENSE_ID]
        claims.update({"email": account.email, "email_verified": True, "google": {"compute_engine": compute}})
    token = state.sign_id_token(dict(sorted(claims.items())))
    return Response(token, media_type="application/text", headers={**FLAVOR, "ETag": _etag(token)})


def _token(state: EmulatorState, account: ServiceAccount, request: Request) -> Response:
    requested = request.query_params.get("scopes")
    scopes = tuple(s for s in requested.split(",") if s) if requested else state.instance.scopes
    grant = state.issue_access_token(account, scopes)
    lifetime = int(grant.expires_at - state.clock())
    body = json.dumps(
        {"access_token": grant.token, "expires_in": lifetime, "token_type": "Bearer"}, separators=(",", ":")
    )
    return Response(body, media_type="application/json", headers={**FLAVOR, "ETag": _etag(body)})


def _account_endpoint(state: EmulatorState, request: Request, path: str) -> Response | None:
    """``instance/service-accounts/NAME/identity|token``: computed per request."""
    parts = path.split("/")
    if len(parts) != 4 or parts[:2] != ["instance", "service-accounts"] or parts[3] not in _ACCOUNT_ENDPOINTS:
        return None
    name = parts[2]
    account = state.default_account if name == "default" else state.service_accounts.get(name)
    if account is None or (name != "default" and account is not state.default_account):
        return None
    return _identity(state, account, request) if parts[3] == "identity" else _token(state, account, request)


def _wait_seconds(request: Request) -> float | None:
    text = request.query_params.get("timeout_sec")
    if text is None:
        return DEFAULT_WAIT
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 <= value <= MAX_WAIT else None


async def compute_metadata(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    if "x-forwarded-for" in request.headers:
        return _html_error(403, "Request had X-Forwarded-For header; metadata requests must not be proxied.")
    if request.headers.get("metadata-flavor") != "Google":
        return _html_error(403, "Missing required header: Metadata-Flavor: Google")
    raw = request.url.path[len(PREFIX) :] if request.url.path.startswith(PREFIX) else ""
    trailing_slash = raw.endswith("/") or request.url.path == PREFIX
    path = raw.strip("/")
    computed = _account_endpoint(state, request, path)
    if computed is not None:
        return computed
    found = _lookup(state, path)
    if found is None or (trailing_slash and not found[0]):
        return _html_error(404, f"The requested URL {request.url.path} was not found on this server.")
    is_dir, node = found
    if is_dir and not trailing_slash:  # as Google's server: a directory lives at its slashed path
        query = f"?{request.url.query}" if request.url.query else ""
        location = f"{PREFIX}{path}/" if path else PREFIX
        return Response(status_code=301, headers={**FLAVOR, "Location": location + query})
    response = _render(request, path, is_dir, node)
    if request.query_params.get("wait_for_change", "").lower() != "true":
        return response
    wait = _wait_seconds(request)
    if wait is None:
        return _html_error(400, f"timeout_sec must be a number of seconds, 0 to {MAX_WAIT:g}")
    last = request.query_params.get("last_etag") or response.headers["etag"]
    deadline = time.monotonic() + wait
    while response.headers["etag"] == last and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        found = _lookup(state, path)
        if found is None:
            return _html_error(404, f"The requested URL {request.url.path} was not found on this server.")
        response = _render(request, path, *found)
    return response


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
    Route("/emulator/v1/metadata/{scope}/attributes", attributes, methods=["GET", "PUT"]),
    Route("/emulator/v1/metadata/{scope}/attributes/{key}", attributes, methods=["PUT", "DELETE"]),
]
