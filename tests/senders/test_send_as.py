"""Each product's request, delivered over real HTTP to a service on 127.0.0.1 by the pytest plugin's
``gcptoken_sender``: the headers and body the product documents, and a token that gcptoken's
Verifier and google-auth's verify_oauth2_token, both pointed at the emulator's keys, accept for the
audience the product uses."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest
from google.auth.transport.requests import Request
from google.oauth2 import id_token

from gcptoken import Verifier
from gcptoken.errors import InvalidArgumentError
from gcptoken.senders import EventOptions, JobOptions, Sender, SenderRefusedError, TaskOptions, send_as
from gcptoken.senders.request import checked_target
from gcptoken.testing import EmulatorClient
from tests.senders.receiver import Arrival, Receiver


@pytest.fixture
def account(emulator: EmulatorClient) -> str:
    return emulator.new_key("invoker")["client_email"]


def _verified(emulator: EmulatorClient, arrival: Arrival, audience: str, monkeypatch: pytest.MonkeyPatch) -> None:
    claims = Verifier(audience, certs=f"{emulator.url}/oauth2/v1/certs").verify(arrival.token)
    # google-auth's own check of a Google ID token, its certs URL pointed at the emulator's.
    monkeypatch.setattr(id_token, "_GOOGLE_OAUTH2_CERTS_URL", f"{emulator.url}/oauth2/v1/certs")
    theirs = id_token.verify_oauth2_token(arrival.token, Request(), audience)  # type: ignore[no-untyped-call]
    assert claims == theirs and claims["aud"] == audience
    assert claims["iss"] == "https://accounts.google.com" and claims["email_verified"] is True


def test_cloud_tasks(
    gcptoken_sender: Sender, emulator: EmulatorClient, receiver: Receiver, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{receiver.url}/tasks/run?mode=full"
    options = TaskOptions(queue="emails", task_name="t-1", retry_count=2, execution_count=1, eta=1700000000.5)
    options = replace(options, previous_response=503, retry_reason="HTTP 503")
    delivery = gcptoken_sender.send("tasks", url, account, b"\x00raw", options, headers={"X-Mine": "1"})
    assert delivery.acknowledged and delivery.body == b"handled 4 bytes\n"
    arrived = receiver.only()
    assert (arrived.method, arrived.path, arrived.query, arrived.body) == (
        "POST",
        "/tasks/run",
        "mode=full",
        b"\x00raw",
    )
    assert {name: value for name, value in arrived.headers.items() if name.startswith("x-")} == {
        "x-mine": "1",
        "x-cloudtasks-queuename": "emails",
        "x-cloudtasks-taskname": "t-1",
        "x-cloudtasks-taskretrycount": "2",
        "x-cloudtasks-taskexecutioncount": "1",
        "x-cloudtasks-tasketa": "1700000000.500000",
        "x-cloudtasks-taskpreviousresponse": "503",
        "x-cloudtasks-taskretryreason": "HTTP 503",
    }
    assert arrived.headers["user-agent"] == "Google-Cloud-Tasks"
    assert "content-type" not in arrived.headers  # Cloud Tasks sets none of its own
    assert arrived.headers["authorization"].startswith("Bearer ")
    _verified(emulator, arrived, url, monkeypatch)  # the audience: the task's URL, query and all


def test_cloud_scheduler(
    gcptoken_sender: Sender, emulator: EmulatorClient, receiver: Receiver, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{receiver.url}/cron"
    gcptoken_sender.send("scheduler", url, account, "tick", JobOptions(job="nightly", schedule_time=1700000000))
    arrived = receiver.only()
    assert arrived.method == "POST" and arrived.body == b"tick"
    assert arrived.headers["x-cloudscheduler"] == "true"
    assert arrived.headers["x-cloudscheduler-jobname"] == "nightly"
    assert arrived.headers["x-cloudscheduler-scheduletime"] == "2023-11-14T22:13:20Z"
    assert arrived.headers["user-agent"] == "Google-Cloud-Scheduler"
    assert arrived.headers["content-type"] == "application/octet-stream"
    _verified(emulator, arrived, url, monkeypatch)


def test_eventarc_pubsub_event(
    gcptoken_sender: Sender, emulator: EmulatorClient, receiver: Receiver, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = EventOptions(topic="orders", attributes={"kind": "new"}, event_id="42", time=1700000000.25)
    gcptoken_sender.send("eventarc", f"{receiver.url}/", account, b"hello", options)
    arrived = receiver.only()
    project = emulator.state.project_id
    assert {name: value for name, value in arrived.headers.items() if name.startswith("ce-")} == {
        "ce-id": "42",
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": f"//pubsub.googleapis.com/projects/{project}/topics/orders",
        "ce-time": "2023-11-14T22:13:20.250Z",
    }
    assert arrived.headers["content-type"] == "application/json; charset=utf-8"
    assert arrived.headers["user-agent"].startswith("APIs-Google")
    envelope = json.loads(arrived.body)
    message = envelope["message"]
    assert base64.b64decode(message["data"]) == b"hello" and message["attributes"] == {"kind": "new"}
    assert message["messageId"] == message["message_id"] == "42"
    assert message["publishTime"] == message["publish_time"] == "2023-11-14T22:13:20.250Z"
    assert envelope["subscription"].startswith(f"projects/{project}/subscriptions/eventarc-")
    _verified(emulator, arrived, receiver.url, monkeypatch)  # the audience: the service's URL


def test_eventarc_direct_event(gcptoken_sender: Sender, receiver: Receiver, account: str) -> None:
    source = "//storage.googleapis.com/projects/_/buckets/uploads"
    options = EventOptions(
        event_type="google.cloud.storage.object.v1.finalized", source=source, subject="objects/a.txt"
    )
    data = b'{"bucket": "uploads", "name": "a.txt"}'
    gcptoken_sender.send("eventarc", f"{receiver.url}/events", account, data, options)
    arrived = receiver.only()
    assert arrived.body == data and arrived.path == "/events"
    assert arrived.headers["ce-source"] == source and arrived.headers["ce-subject"] == "objects/a.txt"
    assert arrived.headers["ce-type"] == "google.cloud.storage.object.v1.finalized"


def test_workflows(
    gcptoken_sender: Sender, emulator: EmulatorClient, receiver: Receiver, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.status = 503
    url = f"{receiver.url}/step"
    delivery = gcptoken_sender.send("workflows", url, account, '{"a": [1, 2]}', headers={"User-Agent": "mine/1"})
    assert not delivery.acknowledged and delivery.status == 503
    arrived = receiver.only()
    assert arrived.body == b'{"a":[1,2]}'  # the step's body is a value, sent as compact JSON
    assert arrived.headers["content-type"] == "application/json; charset=utf-8"
    assert arrived.headers["user-agent"] == "mine/1 GoogleCloudWorkflows; (+https://cloud.google.com/workflows/docs)"
    _verified(emulator, arrived, url, monkeypatch)


def test_an_audience_of_the_users_own(
    gcptoken_sender: Sender, emulator: EmulatorClient, receiver: Receiver, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gcptoken_sender.send("tasks", f"{receiver.url}/x", account, audience="https://svc.a.run.app", method="GET")
    arrived = receiver.only()
    assert arrived.method == "GET" and arrived.body == b""
    _verified(emulator, arrived, "https://svc.a.run.app", monkeypatch)


def test_google_would_not_deliver(
    gcptoken_sender: Sender, receiver: Receiver, account: str, tasks_agent_without_its_role: None
) -> None:
    with pytest.raises(SenderRefusedError) as refused:
        gcptoken_sender.send("tasks", f"{receiver.url}/x", account, b"body")
    assert refused.value.status == 403 and refused.value.product == "Cloud Tasks"
    assert "roles/iam.serviceAccountTokenCreator" in str(refused.value)
    assert receiver.arrived == []
    # Another product's agent still may; the unknown account is refused by every one.
    gcptoken_sender.send("scheduler", f"{receiver.url}/x", account)
    with pytest.raises(SenderRefusedError) as missing:
        gcptoken_sender.send("workflows", f"{receiver.url}/x", "nobody@emulated-project.iam.gserviceaccount.com")
    assert missing.value.status == 404 and "does not exist" in str(missing.value)
    assert len(receiver.arrived) == 1


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda s, url: s.send("tasks", "https://example.com/x", "a@b.c"), "not this machine"),
        (lambda s, url: s.send("pubsub", url, "a@b.c"), "unknown product"),
        (lambda s, url: s.send("tasks", url, "a@b.c", b"x", method="GET"), "only with POST, PUT or PATCH"),
        (lambda s, url: s.send("tasks", url, "a@b.c", options=JobOptions()), "takes TaskOptions"),
        (lambda s, url: s.send("tasks", url, "a@b.c", headers={"Host": "x"}), "sets it itself"),
        (lambda s, url: s.send("workflows", url, "a@b.c", b"{not json"), "not JSON"),
        (lambda s, url: s.send("eventarc", url, "a@b.c", options=EventOptions(event_type="x.y")), "needs its source"),
        (lambda s, url: s.send("tasks", url, "a@b.c", audience=""), "audience"),
    ],
)
def test_bad_input_is_a_typed_error_and_sends_nothing(
    gcptoken_sender: Sender, receiver: Receiver, call: object, words: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=words):
        call(gcptoken_sender, f"{receiver.url}/x")  # type: ignore[operator]
    assert receiver.arrived == []


@pytest.mark.parametrize(
    "url", ["http://foo.localhost:1/", "http://localhost.:1/", "http://127.1:1/", "http://[::2]:1/"]
)
def test_only_loopback_addresses_are_this_machine(url: str) -> None:
    """A name is what the resolver makes of it: only literal loopback addresses, and ``localhost``
    when it resolves to nothing else, are taken as this machine."""
    with pytest.raises(InvalidArgumentError, match="not this machine"):
        send_as("tasks", url, "sa@p.iam.gserviceaccount.com", emulator="127.0.0.1:9")
    for here in ("http://127.0.0.1:1/", "http://127.8.9.10/", "http://[::1]:1/", "http://[::ffff:127.0.0.1]/"):
        assert checked_target(here) == here
    assert checked_target("http://LocalHost:1/") == "http://LocalHost:1/"


def test_bad_input_is_refused_before_the_emulator_is_asked() -> None:
    for product, headers in (("eventarc", {"X-Mine": "1"}), ("tasks", {"X-CloudTasks-QueueName": "q"})):
        with pytest.raises(InvalidArgumentError, match=r"sets it itself|no headers"):
            send_as(
                product, "http://127.0.0.1:1/", "sa@p.iam.gserviceaccount.com", headers=headers, emulator="127.0.0.1:9"
            )


def test_localhost_counts_only_when_it_resolves_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def elsewhere(host: str, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0)),
            (socket.AF_INET, 1, 6, "", ("10.0.0.5", 0)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", elsewhere)
    with pytest.raises(InvalidArgumentError, match="not this machine"):
        checked_target("http://localhost:1/")
