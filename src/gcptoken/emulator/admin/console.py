"""The emulator console at ``/emulator/ui``: a page over the admin API (the only way it changes
anything), for loopback clients only (the request guard sees to that: emulator.http.guard_rules).
Server-rendered HTML, a little vanilla script, no other origin (a strict Content-Security-Policy)."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gcptoken.servers.page_headers import PAGE_HEADERS

__all__ = ["routes"]

HEADERS = PAGE_HEADERS
FILES = {
    "": ("console.html", "text/html; charset=utf-8"),
    "console.js": ("console.js", "text/javascript; charset=utf-8"),
    "console.css": ("console.css", "text/css; charset=utf-8"),
}


async def console(request: Request) -> Response:
    found = FILES.get(request.path_params.get("name", ""))
    if found is None:
        return Response("Not Found\n", status_code=404, media_type="text/plain")
    body = resources.files("gcptoken.emulator.admin").joinpath("static").joinpath(found[0]).read_bytes()
    return Response(body, media_type=found[1], headers=HEADERS)


routes = [
    Route("/emulator/ui", console, methods=["GET"]),
    Route("/emulator/ui/{name}", console, methods=["GET"]),
]
