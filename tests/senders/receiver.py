"""A user's service on 127.0.0.1 for the senders' tests: records every request that arrives (method,
path, query, headers, body) and answers with the status it is told to (200 by default).

A test module takes it with ``receiver = receiver.receiver``: one server for the module; each test
starts with an empty record and a 200."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gcptoken.servers.serving import AsgiServer, bind

__all__ = ["Arrival", "Receiver", "receiver"]


@dataclass(frozen=True)
class Arrival:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names, as they arrived
    body: bytes

    @property
    def token(self) -> str:
        return self.headers["authorization"].removeprefix("Bearer ")


@dataclass
class Receiver:
    url: str = ""
    arrived: list[Arrival] = field(default_factory=list)
    status: int = 200
    answer_headers: dict[str, str] = field(default_factory=dict)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers.raw}
        self.arrived.append(Arrival(request.method, request.url.path, request.url.query, headers, body))
        text = f"handled {len(body)} bytes\n"
        return PlainTextResponse(text, status_code=self.status, headers=self.answer_headers)

    def only(self) -> Arrival:
        assert len(self.arrived) == 1, self.arrived
        return self.arrived[0]


@pytest.fixture(scope="module")
def _served() -> Iterator[Receiver]:
    recorder = Receiver()
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    app = Starlette(routes=[Route("/{path:path}", recorder.handle, methods=methods)])
    with AsgiServer(app, bind("127.0.0.1", 0)) as server:
        recorder.url = server.url
        yield recorder


@pytest.fixture
def receiver(_served: Receiver) -> Receiver:
    _served.arrived.clear()
    _served.status = 200
    _served.answer_headers = {}
    return _served
