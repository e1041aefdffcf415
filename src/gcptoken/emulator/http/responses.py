"""Response helpers in Google's shapes: OAuth errors, Google-API errors, form bodies."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse

__all__ = [
    "MAX_BODY",
    "GoogleJSONResponse",
    "api_error",
    "form_of",
    "json_body",
    "json_object",
    "log_detail",
    "not_emulated",
    "oauth_error",
]

# Set in a request's scope when the emulator lacks what it asks for (app.RequestLog marks the entry).
NOT_EMULATED = "gcptoken.not_emulated"

_API_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    500: "INTERNAL",
}

# Bodies larger than this are refused as they arrive (limits.BodyLimit): no token request and no
# admin call (a JWKS, say) is anywhere near it.
MAX_BODY = 256 * 1024
# A token request's form is far smaller still; a larger one is an invalid_request, as Google says.
MAX_FORM = 64 * 1024


class GoogleJSONResponse(JSONResponse):
    """JSON as Google's front ends send it: ``Content-Type: application/json; charset=utf-8``."""

    media_type = "application/json; charset=utf-8"


def oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    """``{"error": …, "error_description": …}`` as oauth2.googleapis.com answers."""
    return GoogleJSONResponse({"error": error, "error_description": description}, status_code=status)


def api_error(status: int, message: str) -> JSONResponse:
    """``{"error": {"code", "message", "status"}}`` as Google's JSON APIs answer."""
    return GoogleJSONResponse(
        {"error": {"code": status, "message": message, "status": _API_STATUS.get(status, "UNKNOWN")}},
        status_code=status,
    )


def not_emulated(request: Request, message: str) -> JSONResponse:
    """Google's JSON 404 for a path or method the emulator does not serve, marked as such in the
    request log so the gap shows at once (in the console, and on stderr)."""
    request.scope[NOT_EMULATED] = True
    return api_error(404, message)


async def form_of(request: Request) -> dict[str, str] | None:
    """The urlencoded form of a POST (or the query of a GET); None when unreadable."""
    if request.method == "GET":
        return dict(request.query_params)
    body = await request.body()
    if len(body) > MAX_FORM:
        return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    except (UnicodeDecodeError, ValueError):
        return None


def log_detail(request: Request) -> dict[str, Any]:
    """The mutable detail dict the request log records for this request (see app.RequestLog)."""
    detail: dict[str, Any] = request.scope.setdefault("gcptoken.detail", {})
    return detail


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def json_body(request: Request, empty: Any = None) -> Any:
    """The body as JSON (``empty`` when there is none); ValueError for anything that is not JSON,
    nesting too deep to parse included (a 400 for the caller, never a 500). So are NaN and
    Infinity and a lone surrogate (``"\\ud800"``), which Python's parser takes: kept, no answer that
    repeats them could be written (Starlette's JSON is strict UTF-8 without NaN)."""
    body = await request.body()
    if not body.strip():
        return empty
    try:
        value = json.loads(body, parse_constant=_no_constant)
        if b"\\u" in body:  # only an escape can make a lone surrogate
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        raise ValueError("not JSON") from None
    return value


async def json_object(request: Request) -> dict[str, Any] | None:
    """The body as a JSON object ({} when empty), or None: the caller answers 400."""
    try:
        value = await json_body(request, empty={})
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
