"""An echo app behind the emulated front door: what reached the app comes back as JSON."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from gcptoken.emulator.run import FrontDoorServer
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient

_names = itertools.count(1)


async def _echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {"method": request.method, "path": request.url.path, "headers": request.headers.items(), "length": len(body)}
    )


async def _socket(websocket: WebSocket) -> None:
    await websocket.accept()
    identity = websocket.headers.get("authorization", "").rsplit(".", 1)[-1]
    async for text in websocket.iter_text():
        await websocket.send_text(f"{text} ({identity})")


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    app = Starlette(routes=[WebSocketRoute("/ws", _socket), Route("/{path:path}", _echo, methods=methods)])
    with AsgiServer(app, bind("127.0.0.1", 0)) as server:
        yield server.url


@pytest.fixture(scope="module")
def service(gcptoken_emulator: EmulatorClient, echo_url: str) -> Iterator[FrontDoorServer]:
    """One front door for the module (its invokers reset by ``front``)."""
    name = f"front-{next(_names)}"
    with gcptoken_emulator.cloud_run(name, echo_url, custom_audiences=["https://api.example.com"]) as server:
        yield server


@pytest.fixture
def front(service: FrontDoorServer) -> FrontDoorServer:
    service.set_invokers()  # private, no invoker: as gcloud run deploy leaves a service
    return service


def headers_of(answer: dict[str, Any]) -> dict[str, str]:
    seen: dict[str, str] = {}
    for name, value in answer["headers"]:
        seen[name] = value
    return seen
