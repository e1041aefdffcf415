"""The GCE metadata API as Google's metadata servers serve it, over any source of values: the
emulator's emulated instance, or ``gcptoken metadata-server``'s real credentials; each answer
shaped by the source's platform (``local.metadata_platforms``: headers, content types, paths,
refusals).

``/computeMetadata/v1/…`` requires the request header ``Metadata-Flavor: Google`` and refuses
proxied requests (``X-Forwarded-For``) with 403; ``/`` does too where the platform's server does.

The values form a tree. A directory named without its trailing slash answers 301 to the slashed
path (Node's gcp-metadata detects GCE by GET ``…/v1/instance``); a directory lists its entries one
per line (sub-directories with a trailing ``/``), or with ``?recursive=true`` is the whole subtree as
JSON (camelCase keys, as Google's). ``alt=json|text`` chooses the format, answers carry an ``ETag``
where the platform's do, and ``?wait_for_change=true`` (``last_etag``, ``timeout_sec``) waits for
the value to change. A service account's ``identity`` and ``token`` are asked of the source per
request.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from gcptoken.local.metadata_platforms import JSON, MISSING_FLAVOR, TEXT, Platform, Refusal

__all__ = ["PREFIX", "MetadataRefusal", "MetadataSource", "compute_metadata", "handler", "root_handler"]

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
    def platform(self) -> Platform:
        """Whose metadata server this is: its headers, paths and refusals."""

    def tree(self) -> dict[str, Any]:
        """Every static value, as nested dicts (``instance/service-accounts/NAME/`` included)."""

    async def identity(self, account: str, audience: str, full: bool, licenses: bool) -> str | MetadataRefusal:
        """An ID token for ``audience`` from service account ``account`` (a name in the tree)."""

    async def token(self, account: str, scopes: tuple[str, ...] | None) -> dict[str, Any] | MetadataRefusal:
        """``{"access_token", "expires_in", "token_type"}`` for ``scopes`` (None: the instance's)."""


def refuse(platform: Platform, shape: Refusal, status: int, message: str = "", path: str = "") -> Response:
    """A refusal as ``platform`` words it; outside text is escaped where the answer is HTML."""
    if "html" in shape.content_type:
        message, path = html.escape(message, quote=False), html.escape(path, quote=False)
    body = shape.body.format(message=message, path=path)
    headers = {**(platform.identity_headers() if shape.identified else {}), **dict(shape.headers)}
    return Response(body, status_code=status, headers={**headers, "Content-Type": shape.content_type})


def _answer(platform: Platform, body: str, media: str) -> Response:
    headers = {**platform.identity_headers(), "Content-Type": media}
    if platform.etag:
        headers["ETag"] = _etag(body)
    return Response(body, headers=headers)


def _etag(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def root_handler(source_of: Callable[[Request], MetadataSource]) -> Callable[[Request], Any]:
    """``/``: what a metadata ping sees (google-auth checks only the response header)."""

    async def root(request: Request) -> Response:
        platform = source_of(request).platform()
        if platform.root_needs_flavor and request.headers.get("metadata-flavor") != "Google":
            return refuse(platform, platform.forbidden, 403, MISSING_FLAVOR)
        return _answer(platform, "computeMetadata/\n", TEXT)

    return root


def _camel(name: str) -> str:
    head, *rest = name.split("-")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _as_json(value: Any, names: bool = False) -> Any:
    """The subtree as Google's recursive JSON: structural keys in camelCase, names kept, and a
    numbered directory (``network-interfaces/0/``) as a list, as GCE renders it."""
    if not isinstance(value, dict):
        return value
    if not names and value and sorted(value) == [str(index) for index in range(len(value))]:
        return [_as_json(value[str(index)]) for index in range(len(value))]
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


def _render(request: Request, path: str, is_dir: bool, node: Any) -> tuple[str, str] | str:
    """(body, media type) for a value, or the reason the parameters are refused."""
    recursive = request.query_params.get("recursive", "").lower() == "true"
    alt = request.query_params.get("alt", "json" if is_dir and recursive else "text")
    if alt not in ("json", "text"):
        return f"Invalid alt parameter: {alt[:20]}"
    if is_dir and not recursive:
        entries = _listing(path, node)
        body = json.dumps(entries) if alt == "json" else "".join(f"{entry}\n" for entry in entries)
    elif is_dir:
        value = _as_json(node, names=path.rsplit("/", 1)[-1] in _NAMED_CHILDREN)
        body = json.dumps(value, separators=(",", ":")) if alt == "json" else "\n".join(_flat(node)) + "\n"
    else:
        body = json.dumps(node) if alt == "json" else _leaf_text(node)
    return body, JSON if alt == "json" else TEXT


async def _account_endpoint(source: MetadataSource, request: Request, path: str) -> Response | None:
    """``instance/service-accounts/NAME/identity|token``: asked of the source per request."""
    parts = path.split("/")
    if len(parts) != 4 or parts[:2] != ["instance", "service-accounts"] or parts[3] not in _ACCOUNT_ENDPOINTS:
        return None
    platform = source.platform()
    name = parts[2]
    if name not in source.tree()["instance"]["service-accounts"]:
        status, shape = platform.unknown_account
        return refuse(platform, shape, status, "Not Found", _uri(request))
    if parts[3] == "identity":
        audience = request.query_params.get("audience", "")
        if not audience:
            return refuse(platform, platform.error, 400, "non-empty audience parameter required")
        full = request.query_params.get("format", "standard") == "full"
        licenses = request.query_params.get("licenses", "FALSE").upper() == "TRUE"
        token = await source.identity(name, audience, full, licenses)
        if isinstance(token, MetadataRefusal):
            return refuse(platform, platform.error, token.status, token.message)
        return _answer(platform, token, platform.identity_type)
    requested = request.query_params.get("scopes")
    scopes = tuple(s for s in requested.split(",") if s) if requested else None
    answer = await source.token(name, scopes)
    if isinstance(answer, MetadataRefusal):
        return refuse(platform, platform.error, answer.status, answer.message)
    return _answer(platform, json.dumps(answer, separators=(",", ":")), JSON)


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
    platform = source.platform()
    if "x-forwarded-for" in request.headers:
        message = "Request had X-Forwarded-For header; metadata requests must not be proxied."
        return refuse(platform, platform.forbidden, 403, message)
    if request.headers.get("metadata-flavor") != "Google":
        return refuse(platform, platform.forbidden, 403, MISSING_FLAVOR)
    raw = request.url.path[len(PREFIX) :] if request.url.path.startswith(PREFIX) else ""
    trailing_slash = raw.endswith("/") or request.url.path == PREFIX
    path = raw.strip("/")
    computed = await _account_endpoint(source, request, path)
    if computed is not None:
        return computed
    found = _lookup(source, path)
    if found is None or (trailing_slash and not found[0]):
        return _not_found(platform, request)
    is_dir, node = found
    if is_dir and not trailing_slash:  # as Google's server: a directory lives at its slashed path
        query = f"?{request.url.query}" if request.url.query else ""
        location = f"{PREFIX}{path}/" if path else PREFIX
        return Response(status_code=301, headers={**platform.identity_headers(), "Location": location + query})
    rendered = _render(request, path, is_dir, node)
    if isinstance(rendered, str):
        return refuse(platform, platform.error, 400, rendered)
    if request.query_params.get("wait_for_change", "").lower() != "true":
        return _answer(platform, *rendered)
    wait = _wait_seconds(request)
    if wait is None:
        return refuse(platform, platform.error, 400, f"timeout_sec must be a number of seconds, 0 to {MAX_WAIT:g}")
    last = request.query_params.get("last_etag") or _etag(rendered[0])
    deadline = time.monotonic() + wait
    while _etag(rendered[0]) == last and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        found = _lookup(source, path)
        if found is None:
            return _not_found(platform, request)
        again = _render(request, path, *found)
        if isinstance(again, str):
            return refuse(platform, platform.error, 400, again)
        rendered = again
    return _answer(platform, *rendered)


def _uri(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _not_found(platform: Platform, request: Request) -> Response:
    return refuse(platform, platform.not_found, 404, "404 page not found", _uri(request))


def handler(source_of: Callable[[Request], MetadataSource]) -> Callable[[Request], Any]:
    """A Starlette endpoint serving the metadata API from the source ``source_of(request)`` gives."""

    async def endpoint(request: Request) -> Response:
        return await compute_metadata(request, source_of(request))

    return endpoint
