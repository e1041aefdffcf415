"""An Artifact Registry Python repository: ``https://LOCATION-python.pkg.dev/PROJECT/REPOSITORY/``
(https://cloud.google.com/artifact-registry/docs/python/authentication) at
``/PROJECT/REPOSITORY/`` on the emulator, serving the PEP 503 simple index of the demo wheels
(:mod:`.wheels`) to callers with one of the emulator's own access tokens.

What it checks, as Artifact Registry does: credentials as HTTP Basic with the user name
``oauth2accesstoken`` and an access token as the password (a Bearer token too), else 401 with
``WWW-Authenticate: Basic realm="https://HOST"`` (the challenge Artifact Registry sends, which is
what makes pip and uv ask their keyring); a valid token without the cloud-platform scope: 403.
Credentials come first: any ``/PROJECT/REPOSITORY/simple…`` path, or a distribution file's, gets
the 401 without them, whichever project it names. A project page without its trailing slash
redirects to the slash form (PEP 503). HTTPS only: over the emulator's plain-HTTP port every such
path redirects to the HTTPS port (or, without one, is refused), credentials or not.
Deliberately different: one repository (:data:`REPOSITORY`) in the emulated project, HTML only
(PEP 503; no PEP 691 JSON), no IAM on it beyond the scope, no ``_json_key_base64`` user, no upload."""

from __future__ import annotations

import base64
import binascii
import html
import re

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Match, Route
from starlette.types import Scope

from gcptoken.emulator.artifactregistry.wheels import normalized, wheels
from gcptoken.emulator.http.responses import api_error, log_detail, not_emulated
from gcptoken.emulator.state.state import EmulatorState

__all__ = ["REPOSITORY", "TOKEN_USERNAME", "routes"]

REPOSITORY = "python-repo"
TOKEN_USERNAME = "oauth2accesstoken"
# Artifact Registry takes either scope for downloads (roles/artifactregistry.reader's callers).
_SCOPES = ("https://www.googleapis.com/auth/cloud-platform", "https://www.googleapis.com/auth/cloud-platform.read-only")
_UNAUTHENTICATED = "Unauthenticated request. Please provide a valid access token."
_DENIED = "Permission 'artifactregistry.repositories.downloadArtifacts' denied on resource (or it may not exist)."


def _bearer_of(request: Request) -> tuple[str, str] | None:
    """(scheme, token) from ``Authorization``: Basic ``oauth2accesstoken:TOKEN`` or Bearer."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return "bearer", value
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return ("basic", password) if user == TOKEN_USERNAME and password else None


def _unauthorized(request: Request) -> Response | None:
    """None when the caller may read the repository; else Artifact Registry's 401 or 403."""
    state: EmulatorState = request.app.state.emulator
    found = _bearer_of(request)
    grant = state.access_tokens.get(found[1]) if found else None
    detail = log_detail(request)
    detail["auth"] = found[0] if found else "none"  # the scheme only: never the token
    if grant is None or grant.expires_at <= state.clock():
        # Observed: Artifact Registry names its host as the realm (https://LOCATION-FORMAT.pkg.dev).
        # (The Host header is one the request guard allows: never a caller's quote in the realm.)
        realm = f"{request.url.scheme}://{request.url.netloc}"
        headers = {"WWW-Authenticate": f'Basic realm="{realm}"'}
        return PlainTextResponse(_UNAUTHENTICATED, status_code=401, headers=headers)
    detail["principal"] = grant.principal
    if not set(grant.scopes) & set(_SCOPES):
        return PlainTextResponse(_DENIED, status_code=403)
    return None


# A file path Artifact Registry's Python format owns (wheels and sdists): other paths of four
# segments belong to other APIs and stay "not emulated".
_DISTRIBUTION = re.compile(r"[^/]+\.(whl|tar\.gz|zip)")


def _plain_http(request: Request) -> Response | None:
    """Artifact Registry is HTTPS-only (and ``.dev`` is on browsers' HSTS preload list): over
    plain HTTP, Google's front end redirects to https without reading credentials. The
    emulator redirects to its own HTTPS port, or refuses when it has none."""
    if request.url.scheme == "https":
        return None
    state: EmulatorState = request.app.state.emulator
    if state.tls_url is None:
        return PlainTextResponse("This repository is served over HTTPS only.", status_code=403)
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"{state.tls_url}{request.url.path}{query}", status_code=301)


def _refusal(request: Request) -> Response | None:
    """None for a GET of this repository by a caller who may read it; else what the emulator or
    Artifact Registry answers: plain HTTP redirected, then credentials (any project's path of
    this shape), then "not emulated" for another project or repository, then the method."""
    state: EmulatorState = request.app.state.emulator
    params = request.path_params
    ours_in_shape = "package" not in params or "filename" not in params or _DISTRIBUTION.fullmatch(params["filename"])
    if not ours_in_shape:
        return not_emulated(request, f"The requested URL {request.url.path} was not found on this server.")
    refused = _plain_http(request) or _unauthorized(request)
    if refused is not None:
        return refused
    if params["project"] not in (state.project_id, state.project_number) or params["repository"] != REPOSITORY:
        return not_emulated(request, f"The requested URL {request.url.path} was not found on this server.")
    if request.method not in ("GET", "HEAD"):
        return api_error(405, f"Method {request.method} is not allowed for {request.url.path}.")
    return None


async def simple_root(request: Request) -> Response:
    """``GET /PROJECT/REPOSITORY/simple/``: every project, one link each (PEP 503)."""
    refused = _refusal(request)
    if refused is not None:
        return refused
    links = "".join(f'<a href="{name}/">{name}</a>\n' for name in sorted(wheels()))
    return _page("Simple index", links)


async def simple_project(request: Request) -> Response:
    """``GET /PROJECT/REPOSITORY/simple/PACKAGE/``: the package's files with ``#sha256=``; a name
    that is not normalized redirects to the normalized one, as PEP 503 allows."""
    refused = _refusal(request)
    if refused is not None:
        return refused
    name = request.path_params["package"]
    wheel = wheels().get(normalized(name))
    if wheel is None:
        return PlainTextResponse("Not Found", status_code=404)
    if name != wheel.project:
        return RedirectResponse(f"../{wheel.project}/", status_code=301)
    href = f"../../{wheel.project}/{wheel.filename}#sha256={wheel.sha256}"
    return _page(f"Links for {wheel.project}", f'<a href="{html.escape(href)}">{wheel.filename}</a>\n')


async def without_slash(request: Request) -> Response:
    """``GET /PROJECT/REPOSITORY/simple`` or ``…/simple/PACKAGE``: PEP 503 says a repository
    SHOULD redirect a URL without the trailing slash to the one with it (301, relative)."""
    refused = _refusal(request)
    if refused is not None:
        return refused
    name = request.path_params.get("package")
    if name is None:
        return RedirectResponse("simple/", status_code=301)
    wheel = wheels().get(normalized(name))
    if wheel is None:
        return PlainTextResponse("Not Found", status_code=404)
    return RedirectResponse(f"{wheel.project}/", status_code=301)  # a name of ours: no caller text


async def download(request: Request) -> Response:
    """``GET /PROJECT/REPOSITORY/PACKAGE/FILE``: a wheel, where the index's links point."""
    refused = _refusal(request)
    if refused is not None:
        return refused
    wheel = wheels().get(request.path_params["package"])
    if wheel is None or wheel.filename != request.path_params["filename"]:
        return PlainTextResponse("Not Found", status_code=404)
    return Response(wheel.data, media_type="application/octet-stream")


def _page(title: str, links: str) -> HTMLResponse:
    body = (
        f"<!DOCTYPE html>\n<html>\n<head><title>{html.escape(title)}</title></head>\n<body>\n{links}</body>\n</html>\n"
    )
    return HTMLResponse(body)


class _DistributionRoute(Route):
    """Matches only a distribution file's name: any other four-segment path is another API's
    (``/service_accounts/v1/jwk/EMAIL``), whose own route must answer it — a POST there is that
    route's 405, never this catch-all's 404."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and not _DISTRIBUTION.fullmatch(child["path_params"].get("filename", "")):
            return Match.NONE, {}
        return match, child


# Every method (Starlette's default is GET): _refusal answers the ones that are not ours.
_ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
routes = [
    Route("/{project}/{repository}/simple", without_slash, methods=_ANY),
    Route("/{project}/{repository}/simple/", simple_root, methods=_ANY),
    Route("/{project}/{repository}/simple/{package}", without_slash, methods=_ANY),
    Route("/{project}/{repository}/simple/{package}/", simple_project, methods=_ANY),
    _DistributionRoute("/{project}/{repository}/{package}/{filename}", download, methods=_ANY),
]
