"""An Artifact Registry Docker repository (``LOCATION-docker.pkg.dev``) as docker pulls from it: the
registry API v2 behind Google's credentials, every tag of every ``PROJECT/REPOSITORY/IMAGE`` naming
one small image of that name (a schema-2 manifest and its config blob, made here).

Authentication as Artifact Registry takes it
(https://cloud.google.com/artifact-registry/docs/docker/authentication): an OAuth access token as
the password of the user ``oauth2accesstoken`` (Basic), or the token as a Bearer. Without one, the
distribution token flow (https://distribution.github.io/distribution/spec/auth/token/): ``401`` with
``WWW-Authenticate: Bearer realm="…/v2/token",service=HOST[,scope=…]``; the token endpoint trades
Basic credentials for ``{"token": …}``. The token it hands back is the access token itself (an
opaque string to docker, checked again on every call). Errors use the registry's JSON shape
(``{"errors": [{"code", "message"}]}``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gcptoken.emulator.http.responses import log_detail
from gcptoken.emulator.state.models import AccessTokenGrant
from gcptoken.emulator.state.state import EmulatorState

__all__ = ["MANIFEST_TYPE", "image_manifest", "routes"]

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
_API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
# The user names Artifact Registry takes with an access token as the password: the documented one,
# and those gcloud's and docker-credential-gcr's helpers have sent.
_TOKEN_USERS = frozenset(("oauth2accesstoken", "_token", "_dcgcloud_token"))
_READ_SCOPES = frozenset(
    "https://www.googleapis.com/auth/" + name
    for name in (
        "cloud-platform",
        "cloud-platform.read-only",
        "devstorage.read_only",
        "devstorage.read_write",
        "devstorage.full_control",
    )
)
_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*){2,}")  # PROJECT/REPO/IMAGE…
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def _errors(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"errors": [{"code": code, "message": message}]}
    return JSONResponse(body, status_code=status, headers={**_API_VERSION, **(headers or {})})


def _challenge(request: Request, scope: str | None) -> dict[str, str]:
    host = request.headers.get("host", "")  # the guard has already refused a Host it does not serve
    value = f'Bearer realm="{request.url.scheme}://{host}/v2/token",service="{host}"'
    return {"WWW-Authenticate": value + (f',scope="{scope}"' if scope else "")}


def _presented_token(request: Request) -> str | None:
    """The access token of ``Authorization``: Bearer, or Basic with a token user name."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return password if user in _TOKEN_USERS and password else None


def _grant(request: Request) -> AccessTokenGrant | None:
    state: EmulatorState = request.app.state.emulator
    token = _presented_token(request)
    grant = state.access_tokens.get(token) if token else None
    return grant if grant is not None and grant.expires_at > state.clock() else None


def _refusal(request: Request, name: str | None) -> Response | None:
    """401 (with the challenge) without a valid token, 403 without a scope that reads; else None."""
    scope = f"repository:{name}:pull" if name else None
    grant = _grant(request)
    if grant is None:
        return _errors(401, "UNAUTHORIZED", "Unauthenticated request.", _challenge(request, scope))
    log_detail(request)["caller"] = grant.email  # who pulled, never the token
    if not _READ_SCOPES.intersection(grant.scopes):
        return _errors(403, "DENIED", "Request had insufficient authentication scopes.")
    return None


async def base(request: Request) -> Response:
    """``GET /v2/``: 200 ``{}`` to a caller with a valid token, else the challenge."""
    return _refusal(request, None) or JSONResponse({}, headers=_API_VERSION)


async def token(request: Request) -> Response:
    """``GET /v2/token?service&scope``: Basic ``oauth2accesstoken:ACCESS_TOKEN`` → ``{"token"}``."""
    state: EmulatorState = request.app.state.emulator
    grant = _grant(request)
    if grant is None:
        return _errors(401, "UNAUTHORIZED", "Unauthenticated request.")
    log_detail(request)["caller"] = grant.email
    now = state.clock()
    issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    body = {"token": _presented_token(request), "expires_in": int(grant.expires_at - now), "issued_at": issued}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def image_manifest(name: str) -> tuple[bytes, bytes]:
    """The (manifest, config blob) every tag of ``name`` serves: deterministic, so a digest read
    twice is the same."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"dev.gcptoken.emulator.image": name}},
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    config_bytes = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "size": len(config_bytes), "digest": _digest(config_bytes)},
        "layers": [],
    }
    return json.dumps(manifest, indent=3).encode(), config_bytes


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob_response(request: Request, data: bytes, media_type: str) -> Response:
    headers = {**_API_VERSION, "Docker-Content-Digest": _digest(data), "Content-Length": str(len(data))}
    body = b"" if request.method == "HEAD" else data
    return Response(body, media_type=media_type, headers=headers)


async def manifest(request: Request) -> Response:
    """``GET|HEAD /v2/NAME/manifests/TAG_OR_DIGEST``: the image's schema-2 manifest."""
    name, reference = request.path_params["name"], request.path_params["reference"]
    if not _NAME.fullmatch(name):
        return _errors(404, "NAME_UNKNOWN", f"Repository name {name!r} is not PROJECT/REPOSITORY/IMAGE.")
    refused = _refusal(request, name)
    if refused is not None:
        return refused
    served = image_manifest(name)[0]
    if not _TAG.fullmatch(reference) and reference != _digest(served):
        return _errors(404, "MANIFEST_UNKNOWN", f"Failed to fetch {reference!r}.")
    return _blob_response(request, served, MANIFEST_TYPE)


async def blob(request: Request) -> Response:
    """``GET|HEAD /v2/NAME/blobs/DIGEST``: the image's config blob (the one blob there is)."""
    name, digest = request.path_params["name"], request.path_params["digest"]
    if not _NAME.fullmatch(name):
        return _errors(404, "NAME_UNKNOWN", f"Repository name {name!r} is not PROJECT/REPOSITORY/IMAGE.")
    refused = _refusal(request, name)
    if refused is not None:
        return refused
    config = image_manifest(name)[1]
    if digest != _digest(config):
        return _errors(404, "BLOB_UNKNOWN", "Blob unknown to registry.")
    return _blob_response(request, config, CONFIG_TYPE)


routes = [
    Route("/v2/", base, methods=["GET"]),
    Route("/v2/token", token, methods=["GET"]),
    Route("/v2/{name:path}/manifests/{reference}", manifest, methods=["GET", "HEAD"]),
    Route("/v2/{name:path}/blobs/{digest}", blob, methods=["GET", "HEAD"]),
]
