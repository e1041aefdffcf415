"""The guarded front on PUBSUB_EMULATOR_HOST: the official Pub/Sub emulator answers any Host and
every CORS preflight, so a web page could otherwise plant a push subscription naming any service
account. Pages are refused; Google's gRPC client and REST clients work as before."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.cloud import pubsub_v1

from gcptoken.emulator.pubsub import PubsubEmulator
from gcptoken.emulator.pubsub.launcher import BROWSER_REFUSED_PORTS
from gcptoken.testing import EmulatorClient

EVIL = "https://evil.example"
PROJECT = "front-tests"
BROWSERISH = {
    "CORS preflight": ("OPTIONS", {"Origin": EVIL, "Access-Control-Request-Method": "PUT"}),
    "foreign Origin": ("PUT", {"Origin": EVIL, "Content-Type": "application/json"}),
    "null Origin": ("PUT", {"Origin": "null"}),
    "Sec-Fetch-Site cross-site": ("PUT", {"Sec-Fetch-Site": "cross-site"}),
    "rebound Host": ("PUT", {"Host": "rebind.attacker.example"}),
}


@pytest.fixture
def rest(gcptoken_pubsub_emulator: PubsubEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gcptoken_pubsub_emulator.url, trust_env=False) as client:
        yield client


@pytest.mark.parametrize("trick", list(BROWSERISH))
def test_what_a_web_page_sends_is_refused(rest: httpx.Client, trick: str) -> None:
    method, headers = BROWSERISH[trick]
    topic = f"/v1/projects/{PROJECT}/topics/planted-{trick.replace(' ', '-').lower()}"
    response = rest.request(method, topic, headers=headers)
    assert response.status_code == 403 and "access-control-allow-origin" not in response.headers
    assert rest.get(topic).status_code == 404  # nothing reached the Pub/Sub emulator


def test_each_request_of_a_kept_alive_connection_is_checked(rest: httpx.Client) -> None:
    topic = f"/v1/projects/{PROJECT}/topics/kept-alive"
    assert rest.put(topic, json={}).status_code == 200  # REST, as gcloud sends it
    assert rest.get(topic).json()["name"] == f"projects/{PROJECT}/topics/kept-alive"
    assert rest.delete(topic, headers={"Origin": EVIL}).status_code == 403
    assert rest.delete(topic).status_code == 200


def test_grpc_goes_through_and_a_preface_in_pieces_too(
    gcptoken_pubsub_emulator: PubsubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", gcptoken_pubsub_emulator.host_port)
    publisher = pubsub_v1.PublisherClient()
    try:
        topic = publisher.create_topic(name=publisher.topic_path(PROJECT, "grpc")).name
        assert [t.name for t in publisher.list_topics(project=f"projects/{PROJECT}")] == [topic]
        publisher.delete_topic(topic=topic)
    finally:
        publisher.transport.close()
    # A client whose preface arrives in two writes is still taken for HTTP/2: the JVM answers with
    # its SETTINGS frame (type 4), not the front with an HTTP/1.1 error.
    with socket.create_connection(("127.0.0.1", gcptoken_pubsub_emulator.port), timeout=10) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.sendall(b"PRI * HTTP/2.0\r\n")
        connection.sendall(b"\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # an empty SETTINGS
        frame = connection.recv(9)
    assert frame[3] == 4, frame


# fetch() from a page: what it resolved with, or why it failed.
_FETCH = """const [url, init, done] = arguments;
fetch(url, init).then(r => done('answered ' + r.status), e => done('failed ' + e));"""


def test_a_page_cannot_reach_the_pubsub_emulators_own_port(
    gcptoken_pubsub_emulator: PubsubEmulator, gcptoken_emulator: EmulatorClient, browser: Any
) -> None:
    """The JVM answers any Host and any Origin: its port is one browsers refuse to connect to."""
    assert gcptoken_pubsub_emulator.jvm_port in BROWSER_REFUSED_PORTS
    browser.get(f"{gcptoken_emulator.url}/emulator/v1/info")  # a page of another origin
    topic = f"/v1/projects/{PROJECT}/topics/from-a-page"
    planted = browser.execute_async_script(_FETCH, gcptoken_pubsub_emulator.jvm_url + topic, {"method": "PUT"})
    assert planted.startswith("failed"), planted
    front = browser.execute_async_script(_FETCH, gcptoken_pubsub_emulator.url + topic, {"mode": "no-cors"})
    assert front == "answered 0"  # the same page reaches other loopback ports (the front refuses it)
    with httpx.Client(base_url=gcptoken_pubsub_emulator.url, trust_env=False) as client:
        assert client.get(topic).status_code == 404  # nothing reached the Pub/Sub emulator
