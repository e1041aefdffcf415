"""MCP with the official Python SDK on both sides: its server (streamable HTTP and SSE) behind a
token check (gcptoken's ASGI middleware, or the emulator's Cloud Run front door), its clients
reaching it through ``gcptoken proxy``, with gcptoken's httpx2 auth, or with the header
``gcptoken id --format header`` prints.

Everything runs on one test clock (the emulator minting, the token cache, the checks), so a
session outlives its token without sleeping: the clock jumps past the token's hour while the
session and its event stream stay open, and the next request goes out with a new token."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp", reason="the MCP SDK 2.x needs Python 3.11+")

import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Context, MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

from gcptoken import Verifier
from gcptoken.cache import memory
from gcptoken.cli.main import main
from gcptoken.credentials.metadata import MetadataCredentials
from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.run import FrontDoorServer
from gcptoken.emulator.run.services import run_services
from gcptoken.integrations.asgi import IdTokenMiddleware
from gcptoken.integrations.httpx2_auth import IdTokenAuth
from gcptoken.local.proxy import proxy_app
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient, write_key_file
from tests.clock import Clock
from tests.integrations.refusals import refuse_as_revoked

AUD = "https://mcp-xyz-uc.a.run.app"  # the README's service
HOUR_AND_MORE = 3700.0  # past an ID token's hour, on every clock at once
BOUND = 15.0  # seconds a whole session may take before the test fails


class Recorder:
    """In front of the MCP app: each request's method, path, bearer token, and whether it ended
    (``refuse`` > 0: that many answered 401 invalid_token, as a revoked token would be)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[dict[str, Any]] = []
        self.refuse = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        entry = {
            "method": scope["method"],
            "path": scope["path"],
            "token": headers.get(b"authorization", b"").removeprefix(b"Bearer "),
            "session": headers.get(b"mcp-session-id"),
            "ended": False,
        }
        self.seen.append(entry)
        try:
            if self.refuse > 0:
                self.refuse -= 1
                await refuse_as_revoked(send)
                return
            await self.app(scope, receive, send)
        finally:
            entry["ended"] = True

    def methods(self) -> list[str]:
        return [entry["method"] for entry in self.seen]


class ClockedVerifier(Verifier):
    """A Verifier judging expiry on the test clock (a service's own clock, as the emulator's)."""

    def __init__(self, clock: Clock, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock

    async def verify_async(self, token: str, now: float | None = None) -> dict[str, Any]:
        return await super().verify_async(token, self.clock() if now is None else now)


def mcp_server() -> MCPServer:
    server = MCPServer("cloud-run-tools")

    @server.tool()
    async def echo(text: str) -> str:
        return text

    @server.tool()
    async def announce(ctx: Context) -> str:
        """Sends a notification unrelated to this request: it goes out on the session's GET stream."""
        await ctx.session.send_tool_list_changed()
        return "announced"

    return server


@pytest.fixture(scope="module")
def emu(clocked_emulator: EmulatorServer) -> EmulatorServer:
    return clocked_emulator


@pytest.fixture(autouse=True)
def tokens_on_the_clock(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tokens cached on the test clock (so they expire when it jumps); the clock back at now."""
    monkeypatch.setattr(memory, "_default", memory.TokenCache(clock=clock))
    clock.offset = 0
    yield
    clock.offset = 0


@pytest.fixture(scope="module")
def streamable(emu: EmulatorServer, clock: Clock) -> Iterator[tuple[str, Recorder]]:
    """The SDK's streamable-HTTP server behind gcptoken's ASGI middleware (audience AUD)."""
    verifier = ClockedVerifier(clock, AUD, certs=f"{emu.url}/oauth2/v3/certs")
    recorder = Recorder(IdTokenMiddleware(mcp_server().streamable_http_app(), verifier))
    with AsgiServer(recorder, bind("127.0.0.1", 0)) as server:
        yield server.url, recorder


@pytest.fixture(scope="module")
def sse_front_door(emu: EmulatorServer) -> Iterator[tuple[str, Recorder]]:
    """The SDK's SSE server as a private Cloud Run service: the emulator's front door before it."""
    recorder = Recorder(mcp_server().sse_app())
    with AsgiServer(recorder, bind("127.0.0.1", 0)) as app:
        invoker = f"serviceAccount:{emu.state.default_account.email}"
        with EmulatorClient(emu).cloud_run("mcp-sse", app.url, [invoker]) as front_door:
            yield front_door.url, recorder


@pytest.fixture(scope="module")
def streamable_front_door(emu: EmulatorServer) -> Iterator[FrontDoorServer]:
    """The SDK's streamable-HTTP server as a private Cloud Run service (audience: the front door's URL)."""
    with AsgiServer(mcp_server().streamable_http_app(), bind("127.0.0.1", 0)) as app:
        invoker = f"serviceAccount:{emu.state.default_account.email}"
        with EmulatorClient(emu).cloud_run("mcp-http", app.url, [invoker]) as front_door:
            yield front_door


def proxy_to(emu: EmulatorServer, url: str, audience: str | None = None) -> AsgiServer:
    """``gcptoken proxy URL [--audience …]`` as the CLI serves it, on the emulated VM's account."""
    credentials = MetadataCredentials(host=emu.host_port)
    return AsgiServer(proxy_app(url, credentials, audience or url), bind("127.0.0.1", 0))


def identity_requests(emu: EmulatorServer) -> list[dict[str, Any]]:
    """The emulated VM's ID-token requests to its metadata server, so far."""
    return [entry for entry in emu.state.request_log() if entry["path"].endswith("/service-accounts/default/identity")]


def run(session: Callable[..., Awaitable[None]], *args: Any) -> None:
    """``session(*args)`` on a fresh event loop, failing (not hanging) after BOUND seconds."""

    async def bounded() -> None:
        with anyio.fail_after(BOUND):
            await session(*args)

    anyio.run(bounded)


async def waiting_for(received: list[Any], count: int) -> None:
    with anyio.fail_after(10):
        while len(received) < count:
            await anyio.sleep(0.01)


def test_a_streamable_http_session_outlives_its_token_through_the_proxy(
    emu: EmulatorServer, streamable: tuple[str, Recorder], clock: Clock
) -> None:
    """The GET stream opened with the first token keeps carrying server notifications after the
    token expired and the proxy sent the next requests with a new one; the session ends with a
    DELETE through the proxy."""
    url, recorder = streamable
    before = len(recorder.seen)
    notifications: list[Any] = []

    async def collect(message: Any) -> None:
        notifications.append(message)

    async def session(proxy_url: str) -> None:
        transport = streamable_http_client(f"{proxy_url}/mcp")
        async with Client(transport, mode="legacy", message_handler=collect) as client:
            assert sorted(tool.name for tool in (await client.list_tools()).tools) == ["announce", "echo"]
            assert (await client.call_tool("announce", {})).content[0].text == "announced"  # type: ignore[union-attr]
            await waiting_for(notifications, 1)
            clock.offset += HOUR_AND_MORE  # the proxy's token is now expired for its cache and the service
            assert (await client.call_tool("echo", {"text": "still here"})).content[0].text == "still here"  # type: ignore[union-attr]
            await client.call_tool("announce", {})
            await waiting_for(notifications, 2)

    with proxy_to(emu, url, AUD) as proxy:
        run(session, proxy.url)
    seen = recorder.seen[before:]
    streams = [entry for entry in seen if entry["method"] == "GET"]
    assert len(streams) == 1  # one event stream for the whole session, never reopened
    assert [n.method for n in notifications] == ["notifications/tools/list_changed"] * 2
    first, last = seen[0]["token"], seen[-1]["token"]
    assert first != last and streams[0]["token"] == first  # renewed per request; the stream kept its own
    assert seen[-1]["method"] == "DELETE" and seen[-1]["session"] == seen[1]["session"] is not None


def test_a_stream_ends_at_the_service_when_its_client_leaves(
    emu: EmulatorServer, streamable: tuple[str, Recorder]
) -> None:
    """A client gone without ending its session (no DELETE): the proxy ends the service's GET
    stream too, instead of holding it open (the session would refuse the client's next GET with
    409, one stream per session)."""
    url, recorder = streamable
    before = len(recorder.seen)

    async def leave_without_deleting(proxy_url: str) -> None:
        transport = streamable_http_client(f"{proxy_url}/mcp", terminate_on_close=False)
        async with Client(transport, mode="legacy") as client:
            await client.list_tools()
            with anyio.fail_after(10):
                while "GET" not in [entry["method"] for entry in recorder.seen[before:]]:
                    await anyio.sleep(0.01)

    with proxy_to(emu, url, AUD) as proxy:
        run(leave_without_deleting, proxy.url)
        stream = next(entry for entry in recorder.seen[before:] if entry["method"] == "GET")

        async def stream_ended() -> None:
            with anyio.fail_after(5):
                while not stream["ended"]:
                    await anyio.sleep(0.01)

        run(stream_ended)  # while the proxy still runs: it, not its shutdown, ended the stream
    assert "DELETE" not in recorder.methods()[before:]


def test_an_sse_session_outlives_its_token_through_the_proxy_and_the_front_door(
    emu: EmulatorServer, sse_front_door: tuple[str, Recorder], clock: Clock
) -> None:
    """The SDK's SSE transport: every answer comes back on the one event stream, opened with the
    first token; after the clock passes the token's hour, requests carry a new one and their
    answers still arrive on that stream. The audience is the front door's URL (the proxy's default)."""
    url, recorder = sse_front_door
    before = len(recorder.seen)

    async def session(proxy_url: str) -> None:
        async with Client(sse_client(f"{proxy_url}/sse"), mode="legacy") as client:
            assert (await client.call_tool("echo", {"text": "one"})).content[0].text == "one"  # type: ignore[union-attr]
            clock.offset += HOUR_AND_MORE
            assert (await client.call_tool("echo", {"text": "two"})).content[0].text == "two"  # type: ignore[union-attr]

    with proxy_to(emu, url) as proxy:
        run(session, proxy.url)
    seen = recorder.seen[before:]
    assert [entry["method"] for entry in seen if entry["method"] == "GET"] == ["GET"]
    assert seen[0]["path"] == "/sse" and seen[-1]["path"] == "/messages/"
    assert seen[0]["token"] != seen[-1]["token"]  # (the front door passes the token on, unsigned)


def streamable_client(url: str, http: httpx2.AsyncClient) -> Client:
    """The SDK's client over streamable HTTP with ``http`` (which the caller closes: the SDK does not)."""
    return Client(streamable_http_client(url, http_client=http), mode="legacy")


@asynccontextmanager
async def client_with_auth(kind: str, url: str, auth: IdTokenAuth) -> AsyncIterator[Client]:
    """The SDK's client of ``kind`` with gcptoken's httpx2 auth: the streamable-HTTP transport
    takes an ``httpx2.AsyncClient`` (the caller closes it), the SSE one an ``auth`` of its own."""
    if kind == "sse":
        async with Client(sse_client(f"{url}/sse", auth=auth), mode="legacy") as client:
            yield client
        return
    async with httpx2.AsyncClient(auth=auth) as http, streamable_client(f"{url}/mcp", http) as client:
        yield client


@pytest.mark.parametrize("kind", ["streamable", "sse"])
def test_the_sdks_clients_take_gcptokens_httpx2_auth_as_is(
    kind: str,
    emu: EmulatorServer,
    streamable_front_door: FrontDoorServer,
    sse_front_door: tuple[str, Recorder],
    clock: Clock,
) -> None:
    """Straight to the Cloud Run front door, no proxy: the audience comes from the endpoint's URL,
    path and all (``…/mcp``, ``…/sse``): the service's root URL, as Cloud Run wants; a session
    outlives its token here too."""
    url = streamable_front_door.url if kind == "streamable" else sse_front_door[0]

    async def session() -> None:
        async with client_with_auth(kind, url, IdTokenAuth(MetadataCredentials(host=emu.host_port))) as client:
            assert (await client.call_tool("echo", {"text": "direct"})).content[0].text == "direct"  # type: ignore[union-attr]
            clock.offset += HOUR_AND_MORE
            assert (await client.call_tool("echo", {"text": "later"})).content[0].text == "later"  # type: ignore[union-attr]

    run(session)


def test_a_refused_token_is_renewed_once_on_the_sdks_requests(
    emu: EmulatorServer, streamable: tuple[str, Recorder]
) -> None:
    """A 401 invalid_token (a revoked token): IdTokenAuth fetches a new token and sends again."""
    url, recorder = streamable
    recorder.refuse = 1
    before = len(recorder.seen)
    auth = IdTokenAuth(MetadataCredentials(host=emu.host_port), audience=AUD)

    async def session() -> None:
        async with httpx2.AsyncClient(auth=auth) as http, streamable_client(f"{url}/mcp", http) as client:
            assert (await client.call_tool("echo", {"text": "again"})).content[0].text == "again"  # type: ignore[union-attr]

    fetched = len(identity_requests(emu))
    run(session)
    refused, retried = recorder.seen[before], recorder.seen[before + 1]
    assert refused["method"] == retried["method"] == "POST"
    # (a token minted anew in the same second is the same token: the fetch is what shows)
    assert len(identity_requests(emu)) == fetched + 2  # the first token, then one forced anew


@pytest.mark.parametrize("output", ["header", "headers"])
def test_the_headers_gcptoken_id_prints_are_what_an_mcp_client_sends(
    output: str,
    emu: EmulatorServer,
    streamable: tuple[str, Recorder],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """``--format header``: one ``Name: value`` line, as clients' header options take it;
    ``--format headers``: a JSON object of headers, run as the README's ``headersHelper`` runs it
    (a key file found as Application Default Credentials). The SDK's client sending them is let in."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_key_file(tmp_path, emu.key_file("mcp-headers"))))
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emu.host_port)
    if output == "headers":
        command = next(
            server["headersHelper"]
            for config in readme_configs()
            for server in _servers(config)
            if "headersHelper" in server
        )
        argv = shlex.split(command)
        assert argv[0] == "gcptoken" and AUD in argv
        assert main([*argv[1:], "--no-cache"]) == 0
        headers = json.loads(capsys.readouterr().out)
    else:
        assert main(["id", AUD, "--format", "header", "--no-cache"]) == 0
        line = capsys.readouterr().out
        name, _, value = line.rstrip("\n").partition(": ")
        assert line.count("\n") == 1
        headers = {name: value}
    assert list(headers) == ["Authorization"] and headers["Authorization"].startswith("Bearer ")

    async def session() -> None:
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            streamable_client(f"{streamable[0]}/mcp", http) as client,
        ):
            assert (await client.call_tool("echo", {"text": output})).is_error is False

    run(session)


def test_the_readmes_headers_helper_runs_in_a_shell(emu: EmulatorServer, tmp_path: Path) -> None:
    """The command as Claude Code runs it: one line for a shell, ``gcptoken`` found on PATH."""
    script = Path(sys.executable).with_name("gcptoken")
    if not script.exists():
        pytest.skip("no gcptoken script beside this Python")
    command = next(
        server["headersHelper"]
        for config in readme_configs()
        for server in _servers(config)
        if "headersHelper" in server
    )
    environment = {
        **os.environ,
        "PATH": f"{script.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GOOGLE_APPLICATION_CREDENTIALS": str(write_key_file(tmp_path, emu.key_file("mcp-shell"))),
        "GCPTOKEN_EMULATOR_HOST": emu.host_port,
    }
    done = subprocess.run(["/bin/sh", "-c", command], env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    headers = json.loads(done.stdout)
    token = headers["Authorization"].removeprefix("Bearer ")
    assert list(headers) == ["Authorization"] and Verifier(AUD, certs=f"{emu.url}/oauth2/v3/certs").verify(token)


def readme_configs() -> list[dict[str, Any]]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", readme_mcp_section(), re.DOTALL)]


def readme_mcp_section() -> str:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    return text.split("### MCP clients", 1)[1].split("\n### ", 1)[0]


def test_the_readmes_client_configurations_point_at_the_proxy() -> None:
    section = readme_mcp_section()
    port = re.search(r"gcptoken proxy \S+ --port (\d+)", section)
    assert port is not None
    servers = [server for config in readme_configs() for server in _servers(config)]
    urls = [server.get("url") or server["httpUrl"] for server in servers if "headersHelper" not in server]
    assert len(servers) == 3 and urls == [f"http://127.0.0.1:{port.group(1)}/mcp"] * 2
    assert f"http://127.0.0.1:{port.group(1)}/mcp" in section.split("```sh", 1)[1].split("```", 1)[0]


def _servers(config: dict[str, Any]) -> list[dict[str, Any]]:
    return list((config.get("servers") or config["mcpServers"]).values())


def test_the_readmes_python_recipe_runs_as_written(
    emu: EmulatorServer,
    streamable_front_door: FrontDoorServer,
    sse_front_door: tuple[str, Recorder],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's Python block, its service URLs swapped for the emulated services', run with a
    key file found as Application Default Credentials (the SDK's default protocol negotiation)."""
    block = re.search(r"```python\n(.*?)```", readme_mcp_section(), re.DOTALL)
    assert block is not None
    code = block.group(1).replace("https://mcp-xyz-uc.a.run.app/mcp", f"{streamable_front_door.url}/mcp")
    code = code.replace("https://mcp-xyz-uc.a.run.app/sse", f"{sse_front_door[0]}/sse")
    key = emu.key_file("mcp-readme")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_key_file(tmp_path, key)))
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emu.host_port)
    streamable_front_door.grant(f"serviceAccount:{key['client_email']}")
    run_services(emu.state).grant("mcp-sse", [f"serviceAccount:{key['client_email']}"])
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # the README's own code, as a reader would paste it
    run(namespace["main"])
    assert capsys.readouterr().out == "['echo', 'announce']\n" * 2
