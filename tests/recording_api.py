"""A stand-in Google API on 127.0.0.1 for tests of what an auth class sends with a call: it records
each call's headers and answers 200, or 401 invalid_token for a token it is told to refuse.

A test module takes the ``api`` fixture with ``api = recording_api.api``: one server for the module,
yielding (the recorder, the URL of its ``/v1/things``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gcptoken.servers.serving import AsgiServer, bind

__all__ = ["Api", "api"]


class Api:
    """Records the headers of each call; refuses a bearer token in ``refuse`` as Google APIs refuse
    one that has expired or was revoked."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.refuse: set[str] = set()

    async def call(self, request: Request) -> Response:
        headers = dict(request.headers)
        self.seen.append(headers)
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if token in self.refuse:
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return JSONResponse({"ok": True})


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[Api, str]]:
    recorder = Api()
    app = Starlette(routes=[Route("/v1/things", recorder.call, methods=["GET"])])
    with AsgiServer(app, bind("127.0.0.1", 0)) as server:
        yield recorder, f"{server.url}/v1/things"
