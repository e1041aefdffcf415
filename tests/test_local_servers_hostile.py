"""The same hostile requests against every server gcptoken starts, over raw sockets: what a web page
in the user's browser can send (a rebound Host, a foreign Origin, ``Sec-Fetch-Site: cross-site``, a
cross-site form's ``text/plain`` POST, a cross-origin WebSocket) and what a smuggler sends (both
Content-Length and Transfer-Encoding, an absolute-form target). Each is refused, and nothing behind
the server moved: no token minted, no upstream request, no state changed.

A server added later is covered by one more entry in ``targets`` (the Pub/Sub emulator's front,
whose JVM is shared with the session, by ``pubsub_front``) (the login receiver, a stdlib
server, has its own test at the end, over the same tricks).
"""

from __future__ import annotations

import base64
import queue
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gcptoken.credentials import ServiceAccountCredentials, load_credentials
from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.pubsub import PubsubEmulator
from gcptoken.emulator.run import FrontDoorServer, RunService
from gcptoken.inspector.server import inspector_app
from gcptoken.local.metadata_server import CredentialsInstance, InstanceValues, metadata_app
from gcptoken.local.proxy import proxy_app
from gcptoken.login import receiver
from gcptoken.servers.guard import GuardPolicy, Scrutiny, check, parse_networks
from gcptoken.servers.launch import OneTimeLink
from gcptoken.servers.serving import AsgiServer, HeaderTimeoutProtocol, bind
from gcptoken.testing import write_key_file

EVIL = "https://evil.example"


@dataclass
class Target:
    """One server and one request it answers when asked properly: ``method``, ``path``, the
    ``headers`` and ``body`` it needs; ``moved()`` counts what happened behind it. The proxy's
    target is a POST: it lets safe requests from other sites through when they carry no Origin."""

    host_port: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    moved: Callable[[], int] = lambda: 0
    answers: tuple[int, ...] = (200, 201)


def request(target: Target, **changes: Any) -> bytes:
    method = changes.pop("method", target.method)
    line_target = changes.pop("line_target", target.path)
    headers = {"Host": target.host_port, **target.headers, **changes.pop("headers", {})}
    body: bytes = changes.pop("body", target.body)
    if "Content-Length" not in headers and (body or method in ("POST", "PUT", "PATCH")):
        headers["Content-Length"] = str(len(body))
    head = f"{method} {line_target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items() if v)
    return head.encode() + b"Connection: close\r\n\r\n" + body


def send(target: Target, raw: bytes) -> int:
    host, port = target.host_port.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as connection:
        connection.sendall(raw)
        answer = b""
        while b"\r\n" not in answer:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), answer[:200]
    return int(answer.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        yield server


def _token_requests(emu: EmulatorServer) -> Callable[[], int]:
    return lambda: sum(1 for entry in emu.state.requests if entry["path"] in ("/token", "/oauth2/v4/token"))


class Recorder:
    """The private service behind the proxy: counts every request that reaches it."""

    def __init__(self) -> None:
        self.seen = 0

        async def anything(request: Request) -> PlainTextResponse:
            self.seen += 1
            return PlainTextResponse("ok")

        methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
        self.app = Starlette(routes=[Route("/{path:path}", anything, methods=methods)])


def _credentials(emu: EmulatorServer, tmp: Path) -> ServiceAccountCredentials:
    credentials = load_credentials(write_key_file(tmp, emu.key_file()))
    assert isinstance(credentials, ServiceAccountCredentials)
    return credentials


@pytest.fixture(scope="module")
def targets(emu: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Target]]:
    tmp = tmp_path_factory.mktemp("hostile-servers")
    flavor = {"Metadata-Flavor": "Google"}
    credentials = _credentials(emu, tmp)
    values = InstanceValues(email=credentials.key.client_email, project_id="p", project_number="1")
    metadata = AsgiServer(metadata_app(CredentialsInstance(credentials, credentials, values)), bind("127.0.0.1", 0))
    recorder = Recorder()
    service = AsgiServer(recorder.app, bind("127.0.0.1", 0))
    link = OneTimeLink("inspect")
    inspector = AsgiServer(inspector_app(link, None), bind("127.0.0.1", 0))
    with metadata, service, inspector:
        proxy = AsgiServer(proxy_app(service.url, credentials, "https://svc.example", 10), bind("127.0.0.1", 0))
        # allUsers: the proper request needs no token, so every refusal below is the guard's, not IAM's.
        front = FrontDoorServer(emu.state, RunService("hostile-front", service.url, invokers={"allUsers"}))
        with proxy, front:
            page = httpx.get(f"{inspector.url}/{link.secret}/")  # the browser that opened it
            session = page.headers["set-cookie"].split(";", 1)[0]
            accounts = lambda: len(emu.state.service_accounts)  # noqa: E731
            json_post = {"Content-Type": "application/json"}
            yield {
                "metadata-server": Target(
                    metadata.host_port,
                    "GET",
                    "/computeMetadata/v1/instance/service-accounts/default/token",
                    flavor,
                    moved=_token_requests(emu),
                ),
                "proxy": Target(
                    proxy.host_port,
                    "POST",
                    "/api/do",
                    json_post,
                    b"{}",
                    moved=lambda: recorder.seen,
                ),
                "Cloud Run front door": Target(
                    front.host_port, "POST", "/api/do", json_post, b"{}", moved=lambda: recorder.seen
                ),
                "emulator admin API": Target(
                    emu.host_port,
                    "POST",
                    "/emulator/v1/serviceAccounts",
                    json_post,
                    b'{"accountId": "planted-by-a-page"}',
                    moved=accounts,
                    answers=(201, 409),  # the first proper request creates it; later ones find it there
                ),
                "emulator console": Target(emu.host_port, "GET", "/emulator/ui"),
                "emulator metadata": Target(
                    emu.host_port, "GET", "/computeMetadata/v1/instance/service-accounts/default/token", flavor
                ),
                "inspector": Target(
                    inspector.host_port,
                    "POST",
                    f"/{link.secret}/api/inspect",
                    {**json_post, "Cookie": session},
                    b'{"token": "a.b.c"}',
                ),
            }


@pytest.fixture(scope="module")
def pubsub_front(gcptoken_pubsub_emulator: PubsubEmulator) -> Iterator[Target]:
    """The Pub/Sub emulator's front: the proper request publishes one message; ``moved()`` counts
    the messages that reached the emulator (pulled and acked from a pull subscription)."""
    base = f"{gcptoken_pubsub_emulator.jvm_url}/v1/projects/hostile-tests"  # behind the front
    with httpx.Client(base_url=base, trust_env=False) as jvm:
        jvm.put("/topics/planted").raise_for_status()
        jvm.put("/subscriptions/counted", json={"topic": "projects/hostile-tests/topics/planted"}).raise_for_status()
        seen = [0]

        def moved() -> int:
            pulled = jvm.post("/subscriptions/counted:pull", json={"maxMessages": 100, "returnImmediately": True})
            ids = [message["ackId"] for message in pulled.json().get("receivedMessages", [])]
            if ids:
                jvm.post("/subscriptions/counted:acknowledge", json={"ackIds": ids}).raise_for_status()
            seen[0] += len(ids)
            return seen[0]

        publish = b'{"messages": [{"data": "aGk="}]}'
        json_post = {"Content-Type": "application/json"}
        yield Target(
            gcptoken_pubsub_emulator.host_port,
            "POST",
            "/v1/projects/hostile-tests/topics/planted:publish",
            json_post,
            publish,
            moved=moved,
        )
        jvm.delete("/subscriptions/counted")
        jvm.delete("/topics/planted")


@pytest.fixture
def target_named(request: pytest.FixtureRequest, targets: dict[str, Target]) -> Callable[[str], Target]:
    """The Pub/Sub emulator's JVM starts only for its own entry (and skips where it is absent)."""
    return lambda name: request.getfixturevalue("pubsub_front") if name == PUBSUB else targets[name]


PUBSUB = "Pub/Sub emulator front"
SERVERS = [
    PUBSUB,
    "metadata-server",
    "proxy",
    "Cloud Run front door",
    "emulator admin API",
    "emulator console",
    "emulator metadata",
    "inspector",
]


@pytest.mark.parametrize("name", SERVERS)
def test_the_proper_request_is_answered(target_named: Callable[[str], Target], name: str) -> None:
    """The baseline: each hostile variant below differs from this one request only by its trick."""
    target = target_named(name)
    assert send(target, request(target)) in target.answers


def _websocket(target: Target, origin: str) -> bytes:
    key = base64.b64encode(b"0123456789abcdef").decode()
    headers = {
        "Upgrade": "websocket",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        "Origin": origin,
    }
    raw = request(target, method="GET", headers=headers, body=b"")
    return raw.replace(b"Connection: close\r\n", b"Connection: Upgrade\r\n")


# name → (the request, the statuses a refusal may have)
HOSTILE: dict[str, tuple[Callable[[Target], bytes], tuple[int, ...]]] = {
    "rebound Host": (
        lambda t: request(t, headers={"Host": f"rebind.attacker.example:{t.host_port.split(':')[1]}"}),
        (403,),
    ),
    "foreign Origin": (lambda t: request(t, headers={"Origin": EVIL}), (403,)),
    "null Origin": (lambda t: request(t, headers={"Origin": "null"}), (403,)),
    "Sec-Fetch-Site cross-site": (lambda t: request(t, headers={"Sec-Fetch-Site": "cross-site"}), (403,)),
    "cross-site text/plain form": (
        lambda t: request(t, method="POST", headers={"Origin": EVIL, "Content-Type": "text/plain"}, body=b"{}"),
        (403,),
    ),
    "cross-origin WebSocket": (lambda t: _websocket(t, EVIL), (403,)),
    "Content-Length with Transfer-Encoding": (
        lambda t: request(t, headers={"Transfer-Encoding": "chunked", "Content-Length": "3"}, body=b"0\r\n\r\n"),
        (400,),
    ),
    "absolute-form target": (lambda t: request(t, line_target=f"http://evil.example{t.path}"), (400,)),
    "70 KB of headers": (lambda t: request(t, headers={"X-Big": "a" * 70_000}), (400, 431)),
    "asterisk-form target": (lambda t: request(t, method="OPTIONS", line_target="*"), (400,)),
}


@pytest.mark.parametrize("trick", list(HOSTILE))
@pytest.mark.parametrize("name", SERVERS)
def test_every_server_refuses_every_trick(target_named: Callable[[str], Target], name: str, trick: str) -> None:
    target = target_named(name)
    build, refused = HOSTILE[trick]
    before = target.moved()
    assert send(target, build(target)) in refused
    assert target.moved() == before, "the request reached what the server guards"


def test_state_changing_admin_calls_take_json_only(targets: dict[str, Target], emu: EmulatorServer) -> None:
    target = targets["emulator admin API"]
    before = len(emu.state.service_accounts)
    for media in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
        assert send(target, request(target, headers={"Content-Type": media})) == 415
    assert len(emu.state.service_accounts) == before


def test_the_proxy_lets_only_links_from_other_sites_through(targets: dict[str, Target]) -> None:
    """A link followed from another site still opens through the proxy; what a page could include
    (a script, a style, an image, a frame) or read (a request with its Origin) is refused."""
    target = targets["proxy"]
    before = target.moved()
    link = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    assert send(target, request(target, method="GET", headers={**link, "Content-Type": ""}, body=b"")) == 200
    assert target.moved() == before + 1
    for mode, destination in (
        ("no-cors", "script"),
        ("no-cors", "style"),
        ("no-cors", "image"),
        ("navigate", "iframe"),
    ):
        included = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": mode, "Sec-Fetch-Dest": destination}
        assert send(target, request(target, method="GET", headers={**included, "Content-Type": ""}, body=b"")) == 403
    origin = {"Origin": EVIL, "Content-Type": ""}
    assert send(target, request(target, method="GET", headers=origin, body=b"")) == 403
    assert target.moved() == before + 1


@pytest.mark.parametrize("name", SERVERS)
def test_nothing_after_a_refused_request_is_read_as_another(target_named: Callable[[str], Target], name: str) -> None:
    """A refusal closes the connection: a request hidden in the refused one's body (a smuggler's
    second request, read as such by h11 after a chunked body) is never answered or forwarded."""
    target = target_named(name)
    before = target.moved()
    smuggled = request(target, method="GET").replace(b"Connection: close\r\n", b"")
    head = f"POST {target.path} HTTP/1.1\r\nHost: {target.host_port}\r\n".encode()
    body = b"0\r\n\r\n" + smuggled
    raw = head + f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + body
    host, port = target.host_port.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as connection:
        connection.sendall(raw)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and answer.count(b"HTTP/1.1 ") == 1, answer[:300]
    assert target.moved() == before


def test_the_docker_recipe_stays_safe_for_a_browser_inside_the_allowed_range() -> None:
    """``--host 172.17.0.1 --allow 172.16.0.0/12 --allow-host host.docker.internal``: the user's own
    browser reaches the bridge address from inside the allowed range, so peer checks let it in;
    the Host and Origin checks are what keep a page out. (No test may use a non-loopback
    address, so this is the guard's decision itself, fed the recipe's values.)"""
    policy = GuardPolicy(
        names=frozenset({"metadata.google.internal", "metadata", "host.docker.internal"}),
        allow=parse_networks(["172.16.0.0/12"]),
    )
    bound, browser = ("172.17.0.1", 8081), "172.17.0.1"
    flavor = {"metadata-flavor": "Google"}
    container = check(
        "GET", {**flavor, "host": "host.docker.internal:8081"}, "172.18.0.5", bound, policy, Scrutiny.SAME_ORIGIN
    )
    assert container is None
    assert check("GET", {**flavor, "host": "172.17.0.1:8081"}, browser, bound, policy, Scrutiny.SAME_ORIGIN) is None
    rebound = check(
        "GET", {**flavor, "host": "rebind.attacker.example:8081"}, browser, bound, policy, Scrutiny.SAME_ORIGIN
    )
    assert rebound is not None and rebound.status == 403
    cross = {**flavor, "host": "172.17.0.1:8081", "origin": EVIL}
    assert check("GET", cross, browser, bound, policy, Scrutiny.SAME_ORIGIN) is not None
    outsider = check("GET", {**flavor, "host": "172.17.0.1:8081"}, "192.168.1.20", bound, policy, Scrutiny.SAME_ORIGIN)
    assert outsider is not None and "--allow" in outsider.reason


@pytest.mark.parametrize("name", SERVERS)
def test_slow_headers_are_cut_off(
    target_named: Callable[[str], Target], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slowloris: a connection that says nothing, or trickles headers, is closed once the header
    deadline passes, while proper requests on other connections are answered meanwhile."""
    monkeypatch.setattr(HeaderTimeoutProtocol, "header_timeout", 1.0)
    target = target_named(name)
    host, port = target.host_port.rsplit(":", 1)
    idle = socket.create_connection((host, int(port)), timeout=10)
    trickling = socket.create_connection((host, int(port)), timeout=10)
    with idle, trickling:
        trickling.sendall(f"GET {target.path} HTTP/1.1\r\nHost: {target.host_port}\r\n".encode())
        assert send(target, request(target)) in target.answers  # not blocked by the two above
        trickling.sendall(b"X-Slow: 1\r\n")
        # Closed by the server (b""); were it not, recv would raise at the sockets' 10 s timeout.
        assert idle.recv(1) == b"" and trickling.recv(1) == b""


@pytest.mark.parametrize("name", SERVERS)
def test_trickled_bodies_are_cut_off(
    target_named: Callable[[str], Target], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body sent a byte at a time holds no connection: below the minimum pace it is closed."""
    monkeypatch.setattr(HeaderTimeoutProtocol, "body_window", 0.5)
    target = target_named(name)
    host, port = target.host_port.rsplit(":", 1)
    head = f"POST {target.path} HTTP/1.1\r\nHost: {target.host_port}\r\nContent-Length: 100000\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as slow:
        slow.sendall(head.encode() + b"Content-Type: application/json\r\n\r\n{")
        closed = False
        for _ in range(40):  # a byte every 0.1 s: 5 bytes a window, far below the pace
            time.sleep(0.1)
            try:
                slow.sendall(b" ")
            except OSError:
                closed = True
                break
        if not closed:
            slow.settimeout(10)
            answer = b""
            while chunk := slow.recv(65536):
                answer += chunk
            closed = True  # the server ended the connection (perhaps after answering early)
        assert closed
        assert send(target, request(target)) in target.answers  # the server is fine


# The login receiver is not an ASGI app (stdlib http.server, no extra needed): one receiver per
# trick, its link spent by "the browser", whose answer — the callback with the session cookie and
# the right state — is the proper request. A sign-in arrives by a cross-site redirect, so the
# receiver takes no Origin rule: those tricks must merely change nothing.
RECEIVER_EXEMPT = frozenset(
    {
        "foreign Origin",
        "null Origin",
        "Sec-Fetch-Site cross-site",
        "cross-site text/plain form",
        "cross-origin WebSocket",
    }
)


@pytest.mark.parametrize("trick", list(HOSTILE))
def test_the_login_receiver_refuses_every_trick(trick: str) -> None:
    events: queue.Queue[receiver.Event] = queue.Queue()
    with receiver.LoopbackReceiver(events) as running:
        running.expect("http://127.0.0.1:9/auth", "the-state")
        host_port = f"127.0.0.1:{running.port}"
        launched = httpx.get(running.launch_url, follow_redirects=False)  # the browser
        assert launched.status_code == 302
        cookie = launched.headers["set-cookie"].split(";", 1)[0]
        answers: list[receiver.Event] = []

        def moved(wait: float = 0.0) -> int:
            """Answers delivered so far (waiting up to ``wait`` s for one: it is queued after the page;
            notices of refusals may come first)."""
            deadline = time.monotonic() + wait
            while True:
                try:
                    answers.append(events.get(timeout=max(deadline - time.monotonic(), 0.01)))
                except queue.Empty:
                    break
                if wait and any(isinstance(event, receiver.Answer) for event in answers):
                    break
            return sum(isinstance(event, receiver.Answer) for event in answers)

        target = Target(host_port, "GET", "/?code=the-code&state=the-state", {"Cookie": cookie}, moved=moved)
        build, refused = HOSTILE[trick]
        status = send(target, build(target))
        if trick in RECEIVER_EXEMPT and status == 200:
            assert moved(wait=5) == 1  # the real answer, as a cross-site redirect brings it
            return
        assert status in ((403, 404, 405) if trick in RECEIVER_EXEMPT else refused)
        assert moved() == 0, "a refused request delivered an answer"
        assert send(target, request(target)) == 200 and moved(wait=5) == 1  # the browser's own answer
