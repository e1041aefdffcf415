"""An Artifact Registry Docker repository (``LOCATION-docker.pkg.dev``) as docker pulls from it: the
registry API v2 behind Google's credentials, every tag of every ``PROJECT/REPOSITORY/IMAGE`` naming
one small image of that name (a schema-2 manifest and its config blob, made here).

Authentication as Artifact Registry takes it
(https://cloud.google.com/artifact-registry/docs/docker/authentication): an OAuth access token as
the password of the user ``oauth2accesstoken`` (Basic), or the token as a Bearer. Without one, the
distribution token flow (https://distribution.github.io/distribution/spec/auth/token/): ``401`` with
``WWW-Authenticate: Bearer realm="…/v2/token",service=HOST[,scope=…]``; the token endpoint trades
Basic credentials for ``{"token": …}``. The token it hands back is the access token itself (an
opaque string to docker, checked again on every call). A service account key works too, as Artifact
Registry documents (#json-key on that page): Basic with the user ``_json_key`` and the key file's
JSON as the password, or ``_json_key_base64`` and that JSON in base64; the key must be one the
account holds (its private half proves it by signing). ``GET /v2/NAME/tags/list`` answers the
registry's ``{"name", "tags"}``. Nothing can be pushed: an upload or a manifest ``PUT`` answers the
distribution spec's ``UNSUPPORTED`` (405), after the same authentication. Errors use the
registry's JSON shape (``{"errors": [{"code", "message"}]}``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gcptoken.emulator.http.responses import log_detail
from gcptoken.emulator.state.models import AccessTokenGrant
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.errors import CredentialsError
from gcptoken.jose import jws

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
_KEY_USERS = ("_json_key", "_json_key_base64")  # the password: a key file's JSON, as is or in base64
_KEY_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def _errors(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"errors": [{"code": code, "message": message}]}
    return JSONResponse(body, status_code=status, headers={**_API_VERSION, **(headers or {})})


def _challenge(request: Request, scope: str | None) -> dict[str, str]:
    host = request.headers.get("host", "")  # the guard has already refused a Host it does not serve
    value = f'Bearer realm="{request.url.scheme}://{host}/v2/token",service="{host}"'
    return {"WWW-Authenticate": value + (f',scope="{scope}"' if scope else "")}


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def _presented_token(request: Request) -> str | None:
    """The access token of ``Authorization``: Bearer, or Basic with a token user name."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    basic = _basic(request)
    return basic[1] if basic is not None and basic[0] in _TOKEN_USERS and basic[1] else None


def _key_account(state: EmulatorState, user: str, password: str) -> str | None:
    """The service account whose key file ``password`` is (``_json_key``: its JSON; ``_base64``:
    that JSON in base64), when the account holds that key and the private half signs for it."""
    try:
        text = base64.b64decode(password, validate=True).decode("utf-8") if user.endswith("_base64") else password
        info: Any = json.loads(text)
        email, key_id = info["client_email"], info["private_key_id"]
        key = jws.load_private_key_pem(info["private_key"])
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError, TypeError, KeyError, CredentialsError):
        return None
    account = state.service_accounts.get(email) if isinstance(email, str) else None
    public = account.keys.get(key_id) if account is not None and isinstance(key_id, str) else None
    challenge = b"artifact-registry-json-key"
    return (
        email
        if public is not None
        and info.get("type") == "service_account"
        and public.verify(challenge, key.sign(challenge))
        else None
    )


def _grant(request: Request) -> AccessTokenGrant | None:
    state: EmulatorState = request.app.state.emulator
    basic = _basic(request)
    if basic is not None and basic[0] in _KEY_USERS:
        email = _key_account(state, *basic)
        return state.issue_access_token(state.service_accounts[email], _KEY_SCOPES) if email else None
    token = _presented_token(request)
    grant = state.access_tokens.get(token) if token else None
    return grant if grant is not None and grant.expires_at > state.clock() else None


def _refusal(request: Request, name: str | None, action: str = "pull") -> Response | None:
    """401 (with the challenge) without a valid token, 403 without a scope that reads; else None."""
    scope = f"repository:{name}:{action}" if name else None
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
    body = {"token": grant.token, "expires_in": int(grant.expires_at - now), "issued_at": issued}
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


async def tags(request: Request) -> Response:
    """``GET /v2/NAME/tags/list``: ``{"name", "tags"}``. Every tag names the one image, so the list
    is the one tag a pull takes by default."""
    name = request.path_params["name"]
    if not _NAME.fullmatch(name):
        return _errors(404, "NAME_UNKNOWN", f"Repository name {name!r} is not PROJECT/REPOSITORY/IMAGE.")
    return _refusal(request, name) or JSONResponse({"name": name, "tags": ["latest"]}, headers=_API_VERSION)


async def push(request: Request) -> Response:
    """An upload or a manifest ``PUT``: authenticated as any call, then the distribution spec's
    ``UNSUPPORTED`` (405, errcode's status for it): this stand-in is read only."""
    name = request.path_params["name"]
    refused = _refusal(request, name if _NAME.fullmatch(name) else None, "pull,push")
    return refused or _errors(405, "UNSUPPORTED", "The emulator's registry is read only: nothing can be pushed.")


routes = [
    Route("/v2/", base, methods=["GET"]),
    Route("/v2/token", token, methods=["GET"]),
    Route("/v2/{name:path}/tags/list", tags, methods=["GET"]),
    Route("/v2/{name:path}/blobs/uploads/{rest:path}", push, methods=["POST", "PUT", "PATCH", "DELETE", "GET"]),
    Route("/v2/{name:path}/manifests/{reference}", manifest, methods=["GET", "HEAD"]),
    Route("/v2/{name:path}/manifests/{reference}", push, methods=["PUT", "DELETE"]),
    Route("/v2/{name:path}/blobs/{digest}", blob, methods=["GET", "HEAD"]),
]
