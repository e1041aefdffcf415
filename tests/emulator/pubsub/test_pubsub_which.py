"""Which subscription's token a push carries: the one that sent it, or none when that cannot be
told for sure. A message's data is the publisher's (it may look like an envelope naming another
subscription), project IDs are whatever the Pub/Sub emulator takes, and a subscription's settings
are read afresh for every push. Set up over REST through the front, as gcloud does."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from gcptoken.cli.main import main
from gcptoken.emulator.pubsub import PubsubEmulator
from gcptoken.emulator.pubsub.relay import USER_AGENT
from gcptoken.emulator.pubsub.subscriptions import PROJECT_ID
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient
from tests.emulator.pubsub.test_pubsub_push import relay_said

PROJECT = "which-tests"
_names = itertools.count(1)


@dataclass
class Recorder:
    """A push endpoint that takes every push (204) and keeps its path, body and token's claims."""

    url: str = ""
    pushes: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        claims = None
        if headers.get("authorization", "").startswith("Bearer "):
            payload = headers["authorization"].split(" ", 1)[1].split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        self.pushes.append({"path": scope["path"], "body": body, "claims": claims, "headers": headers})
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def wait_for(self, path: str, body: bytes, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for push in self.pushes:
                if push["path"] == path and body in push["body"]:
                    return push
            time.sleep(0.02)
        raise AssertionError(f"no push of {body!r} reached {path}")


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    endpoint = Recorder()
    with AsgiServer(endpoint, bind("127.0.0.1", 0)) as server:
        endpoint.url = server.url
        yield endpoint


@pytest.fixture(scope="module")
def accounts(gcptoken_emulator: EmulatorClient) -> tuple[str, str]:
    return gcptoken_emulator.new_key("which-a")["client_email"], gcptoken_emulator.new_key("which-b")["client_email"]


@dataclass
class Rest:
    client: httpx.Client
    created: list[str] = field(default_factory=list)

    def topic(self, project: str = PROJECT) -> str:
        name = f"projects/{project}/topics/topic-{next(_names):04d}"
        self.client.put(f"/v1/{name}").raise_for_status()
        self.created.append(name)
        return name

    def subscribe(self, topic: str, push: dict[str, Any], project: str = PROJECT) -> str:
        name = f"projects/{project}/subscriptions/sub-{next(_names):04d}"
        self.client.put(f"/v1/{name}", json={"topic": topic, "pushConfig": push}).raise_for_status()
        self.created.insert(0, name)  # deleted before the topics
        return name

    def publish(self, topic: str, data: bytes) -> None:
        message = {"data": base64.b64encode(data).decode()}
        self.client.post(f"/v1/{topic}:publish", json={"messages": [message]}).raise_for_status()


@pytest.fixture
def rest(gcptoken_pubsub_emulator: PubsubEmulator, caplog: pytest.LogCaptureFixture) -> Iterator[Rest]:
    caplog.set_level(logging.INFO, "gcptoken.pubsub")
    with httpx.Client(base_url=gcptoken_pubsub_emulator.url, trust_env=False) as client:
        session = Rest(client)
        try:
            yield session
        finally:
            for name in session.created:  # no retries left running for the next test
                client.delete(f"/v1/{name}")


def oidc(email: str) -> dict[str, str]:
    return {"serviceAccountEmail": email}


def test_a_raw_push_whose_data_names_another_subscription_gets_no_token(
    rest: Rest, recorder: Recorder, accounts: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    private, public = rest.topic(), rest.topic()
    url = f"{recorder.url}/shared"
    wrapped = rest.subscribe(private, {"pushEndpoint": url, "oidcToken": oidc(accounts[0])})
    raw = rest.subscribe(public, {"pushEndpoint": url, "noWrapper": {}})
    rest.publish(public, json.dumps({"subscription": wrapped, "message": {"data": ""}}).encode())
    line = relay_said(caplog, f"refused a push to {url}: it may be from any of")
    assert wrapped in line and raw in line
    assert all(push["claims"] is None for push in recorder.pushes if push["path"] == "/shared")


def test_raw_data_that_looks_like_an_envelope_is_found_by_its_endpoint(
    rest: Rest, recorder: Recorder, accounts: tuple[str, str]
) -> None:
    topic = rest.topic()
    rest.subscribe(topic, {"pushEndpoint": f"{recorder.url}/raw", "noWrapper": {}, "oidcToken": oidc(accounts[0])})
    data = json.dumps({"subscription": f"projects/{PROJECT}/subscriptions/none-such", "message": {}}).encode()
    rest.publish(topic, data)
    assert recorder.wait_for("/raw", b"none-such")["claims"]["email"] == accounts[0]


def test_same_url_in_two_projects_is_refused_never_the_wrong_account(
    rest: Rest, recorder: Recorder, accounts: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The second project is one only a client named (through the front): the relay knows it."""
    url = f"{recorder.url}/two-projects"
    rest.subscribe(rest.topic(), {"pushEndpoint": url, "noWrapper": {}, "oidcToken": oidc(accounts[0])})
    other = rest.topic("which-other")
    rest.subscribe(other, {"pushEndpoint": url, "noWrapper": {}, "oidcToken": oidc(accounts[1])}, "which-other")
    rest.publish(other, b"from the other project")
    relay_said(caplog, f"refused a push to {url}: it may be from any of")
    assert not [push for push in recorder.pushes if push["path"] == "/two-projects"]


def test_a_project_named_percent_encoded_is_known_as_the_pubsub_emulator_decodes_it(
    rest: Rest, recorder: Recorder, accounts: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A project created only as ``sec%72et`` is ``secret`` to the JVM: a raw push from it whose data
    poses as another subscription's envelope is ambiguous, never that subscription's token."""
    url = f"{recorder.url}/encoded"
    wrapped = rest.subscribe(rest.topic(), {"pushEndpoint": url, "oidcToken": oidc(accounts[0])})
    project = f"pct-{next(_names):04d}"
    topic, raw = f"projects/{project}/topics/raw", f"projects/{project}/subscriptions/raw"
    encoded = project.replace("pct-", "pc%74-")  # named only so through the front
    rest.client.put(f"/v1/projects/{encoded}/topics/raw").raise_for_status()
    push = {"pushEndpoint": url, "noWrapper": {}, "oidcToken": oidc(accounts[1])}
    rest.client.put(
        f"/v1/projects/{encoded}/subscriptions/raw", json={"topic": topic, "pushConfig": push}
    ).raise_for_status()
    rest.created[:0] = [raw, topic]
    data = json.dumps({"subscription": wrapped, "message": {"data": "cG9zZWQ=", "messageId": "1"}}).encode()
    rest.publish(f"projects/{encoded}/topics/raw", data)
    relay_said(caplog, f"refused a push to {url}: it may be from any of")
    assert all(push["claims"] is None for push in recorder.pushes if push["path"] == "/encoded")


def test_subscriptions_that_name_themselves_do_not_make_a_raw_push_ambiguous(
    rest: Rest, recorder: Recorder, accounts: tuple[str, str]
) -> None:
    topic, url = rest.topic(), f"{recorder.url}/mixed"
    rest.subscribe(topic, {"pushEndpoint": url, "noWrapper": {}, "oidcToken": oidc(accounts[0])})
    rest.subscribe(topic, {"pushEndpoint": url, "noWrapper": {"writeMetadata": True}, "oidcToken": oidc(accounts[1])})
    rest.publish(topic, b"fan-out")
    deadline = time.monotonic() + 20
    while len([p for p in recorder.pushes if p["path"] == "/mixed"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    pushes = [p for p in recorder.pushes if p["path"] == "/mixed"]
    by_form = {"x-goog-pubsub-subscription-name" in p["headers"]: p["claims"]["email"] for p in pushes}
    assert by_form == {False: accounts[0], True: accounts[1]}  # the raw one's, and writeMetadata's


def test_pushes_come_as_apis_google_not_as_java(rest: Rest, recorder: Recorder) -> None:
    topic = rest.topic()
    rest.subscribe(topic, {"pushEndpoint": f"{recorder.url}/agent"})
    rest.publish(topic, b"agent")
    headers = recorder.wait_for("/agent", base64.b64encode(b"agent"))["headers"]
    assert headers["user-agent"] == USER_AGENT and "image/gif" not in headers.get("accept", "")


def test_the_next_push_after_modify_push_config_carries_the_new_account(
    rest: Rest, recorder: Recorder, accounts: tuple[str, str]
) -> None:
    topic, url = rest.topic(), f"{recorder.url}/modified"
    name = rest.subscribe(topic, {"pushEndpoint": url, "oidcToken": oidc(accounts[0])})
    rest.publish(topic, b"before")
    assert recorder.wait_for("/modified", base64.b64encode(b"before"))["claims"]["email"] == accounts[0]
    config = {"pushConfig": {"pushEndpoint": url, "oidcToken": oidc(accounts[1])}}
    rest.client.post(f"/v1/{name}:modifyPushConfig", json=config).raise_for_status()
    rest.publish(topic, b"after")
    assert recorder.wait_for("/modified", base64.b64encode(b"after"))["claims"]["email"] == accounts[1]


def test_project_ids_the_pubsub_emulator_takes_work(
    rest: Rest, recorder: Recorder, accounts: tuple[str, str], emulator: EmulatorClient, monkeypatch: Any, capsys: Any
) -> None:
    topic = rest.topic("my_project")
    rest.subscribe(topic, {"pushEndpoint": f"{recorder.url}/underscore", "oidcToken": oidc(accounts[0])}, "my_project")
    rest.publish(topic, b"underscored")
    assert recorder.wait_for("/underscore", base64.b64encode(b"underscored"))["claims"]["email"] == accounts[0]
    assert all(PROJECT_ID.fullmatch(p) for p in ("my_project", "My-Project", "1abc", "ab", "a.b:c"))
    monkeypatch.setenv("PUBSUB_PROJECT_ID", "not/one")
    assert main(["pubsub-emulator", "--emulator", emulator.host_port, "--port", "0"]) == 2
    assert capsys.readouterr().err == "gcptoken: error: PUBSUB_PROJECT_ID: 'not/one' is not a project ID\n"


@pytest.mark.parametrize("suffix", ["#fragment", "?"])
def test_endpoints_are_compared_as_the_jvm_sends_them(
    rest: Rest, recorder: Recorder, accounts: tuple[str, str], suffix: str
) -> None:
    topic, path = rest.topic(), f"/normalised-{len(suffix)}"
    rest.subscribe(topic, {"pushEndpoint": f"{recorder.url}{path}{suffix}", "oidcToken": oidc(accounts[0])})
    rest.publish(topic, b"normalised")
    assert recorder.wait_for(path, base64.b64encode(b"normalised"))["claims"]["email"] == accounts[0]


def test_an_endpoint_with_a_password_is_refused_and_the_password_never_logged(
    rest: Rest, recorder: Recorder, accounts: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    topic = rest.topic()
    url = recorder.url.replace("http://", "http://user:s3cret@") + "/userinfo"
    name = rest.subscribe(topic, {"pushEndpoint": url, "oidcToken": oidc(accounts[0])})
    rest.publish(topic, b"userinfo")
    relay_said(caplog, f"not pushing {name} to http://…@{recorder.url[7:]}/userinfo: a push endpoint with user")
    assert "s3cret" not in caplog.text
    assert not [push for push in recorder.pushes if push["path"] == "/userinfo"]
