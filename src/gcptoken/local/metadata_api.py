"""The GCE metadata API as Google's metadata server serves it, over any source of values: the
emulator's emulated VM, or ``gcptoken metadata-server``'s real credentials.

Paths, headers and refusals as Google's: every response carries ``Metadata-Flavor: Google`` and
one ``Server: Metadata Server for VM``; ``/computeMetadata/v1/…`` requires the request header
``Metadata-Flavor: Google`` and refuses proxied requests (``X-Forwarded-For``) with 403.

The values form a tree. A directory named without its trailing slash answers 301 to the slashed
path (Node's gcp-metadata detects GCE by GET ``…/v1/instance``); a directory lists its entries one
per line (sub-directories with a trailing ``/``), or with ``?recursive=true`` is the whole subtree as
JSON (camelCase keys, as Google's). ``alt=json|text`` chooses the format, every answer carries an
``ETag``, and ``?wait_for_change=true`` (``last_etag``, ``timeout_sec``) waits for the value to
change. A service account's ``identity`` and ``token`` are asked of the source per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["FLAVOR", "PREFIX", "MetadataRefusal", "MetadataSource", "compute_metadata", "html_error", "root"]

FLAVOR = {"Metadata-Flavor": "Google", "Server": "Metadata Server for VM"}
PREFIX = "/computeMetadata/v1/"
MAX_WAIT = 300.0
DEFAULT_WAIT = 60.0
# Entries whose children are names (attribute keys, accounts), kept as they are in recursive JSON.
_NAMED_CHILDREN = frozenset({"attributes", "service-accounts"})
# Leaves of a service-account directory that are computed per request, not part of its JSON.
_ACCOUNT_ENDPOINTS = ("identity", "token")


@dataclass(frozen=True)
class MetadataRefusal:
    """What the server answers instead of a token: a status and a short plain-text reason."""

    status: int
    message: str


class MetadataSource(Protocol):
    def tree(self) -> dict[str, Any]:
        """Every static value, as nested dicts (``instance/service-accounts/NAME/`` included)."""

    async def identity(self, account: str, audience: str, full: bool, licenses: bool) -> str | MetadataRefusal:
        """An ID token for ``audience`` from service account ``account`` (a name in the tree)."""

    async def token(self, account: str, scopes: tuple[str, ...] | None) -> dict[str, Any] | MetadataRefusal:
        """``{"access_token", "expires_in", "token_type"}`` for ``scopes`` (None: the instance's)."""


def text_response(body: str, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/text", headers=FLAVOR)


def html_error(status: int, message: str) -> Response:
    return Response(f"<html><body>{message}</body></html>", status_code=status, media_type="text/html", headers=FLAVOR)


async def root(request: Request) -> Response:
    """``/``: what a metadata ping sees (google-auth checks only the response header)."""
    return text_response("computeMetadata/\n")


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


def _lookup(source: MetadataSource, path: str) -> tuple[bool, Any] | None:
    """(is a directory, value) for ``path`` (no trailing slash), or None when there is none."""
    node: Any = source.tree()
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
        return html_error(400, f"Invalid alt parameter: {alt[:20]}")
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


def _text_or_json(body: str, media: str) -> Response:
    return Response(body, media_type=media, headers={**FLAVOR, "ETag": _etag(body)})


async def _account_endpoint(source: MetadataSource, request: Request, path: str) -> Response | None:
    """``instance/service-accounts/NAME/identity|token``: asked of the source per request."""
    parts = path.split("/")
    if len(parts) != 4 or parts[:2] != ["instance", "service-accounts"] or parts[3] not in _ACCOUNT_ENDPOINTS:
        return None
    name = parts[2]
    if name not in source.tree()["instance"]["service-accounts"]:
        return None
    if parts[3] == "identity":
        audience = request.query_params.get("audience", "")
        if not audience:
            return html_error(400, "non-empty audience parameter required")
        full = request.query_params.get("format", "standard") == "full"
        licenses = request.query_params.get("licenses", "FALSE").upper() == "TRUE"
        token = await source.identity(name, audience, full, licenses)
        if isinstance(token, MetadataRefusal):
            return html_error(token.status, token.message)
        return _text_or_json(token, "application/text")
    requested = request.query_params.get("scopes")
    scopes = tuple(s for s in requested.split(",") if s) if requested else None
    answer = await source.token(name, scopes)
    if isinstance(answer, MetadataRefusal):
        return html_error(answer.status, answer.message)
    return _text_or_json(json.dumps(answer, separators=(",", ":")), "application/json")


def _wait_seconds(request: Request) -> float | None:
    text = request.query_params.get("timeout_sec")
    if text is None:
        return DEFAULT_WAIT
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 <= value <= MAX_WAIT else None


async def compute_metadata(request: Request, source: MetadataSource) -> Response:
    if "x-forwarded-for" in request.headers:
        return html_error(403, "Request had X-Forwarded-For header; metadata requests must not be proxied.")
    if request.headers.get("metadata-flavor") != "Google":
        return html_error(403, "Missing required header: Metadata-Flavor: Google")
    raw = request.url.path[len(PREFIX) :] if request.url.path.startswith(PREFIX) else ""
    trailing_slash = raw.endswith("/") or request.url.path == PREFIX
    path = raw.strip("/")
    computed = await _account_endpoint(source, request, path)
    if computed is not None:
        return computed
    found = _lookup(source, path)
    if found is None or (trailing_slash and not found[0]):
        return html_error(404, f"The requested URL {request.url.path} was not found on this server.")
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
        return html_error(400, f"timeout_sec must be a number of seconds, 0 to {MAX_WAIT:g}")
    last = request.query_params.get("last_etag") or response.headers["etag"]
    deadline = time.monotonic() + wait
    while response.headers["etag"] == last and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        found = _lookup(source, path)
        if found is None:
            return html_error(404, f"The requested URL {request.url.path} was not found on this server.")
        response = _render(request, path, *found)
    return response


def handler(source_of: Callable[[Request], MetadataSource]) -> Callable[[Request], Any]:
    """A Starlette endpoint serving the metadata API from the source ``source_of(request)`` gives."""

    async def endpoint(request: Request) -> Response:
        return await compute_metadata(request, source_of(request))

    return endpoint
