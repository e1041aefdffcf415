"""Pub/Sub push with ID tokens, end to end: the official Pub/Sub emulator (driven by Google's
google-cloud-pubsub, subscriptions set as in production) pushes to a FastAPI and a Flask endpoint
that verify the token as a real service would; google-auth accepts the same tokens."""

from __future__ import annotations

import base64
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import make_server

import google.auth.transport.requests
import google.oauth2.id_token
import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from flask import Flask
from flask import request as flask_request
from google.cloud import pubsub_v1

from gcptoken import Verifier
from gcptoken.emulator.pubsub import PubsubEmulator, PushRelay
from gcptoken.integrations.asgi import VerifiedClaims
from gcptoken.integrations.wsgi import require_id_token
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient
from tests.integrations.test_middleware import QuietHandler

PROJECT = "push-tests"
CUSTOM_AUDIENCE = "https://push.example.test/custom"
_names = itertools.count(1)


@dataclass
class Endpoint:
    """A push endpoint: ``/push`` wants the endpoint URL as audience, ``/custom`` CUSTOM_AUDIENCE;
    both only ``caller``'s tokens, email verified. What its handlers accepted lands in ``received``."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)

    def wait_for(self, subscription: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for push in self.received:
                if push["envelope"].get("subscription") == subscription:
                    return push
            time.sleep(0.02)
        raise AssertionError(f"no push of {subscription} reached {self.url}")

    def got(self, subscription: str) -> bool:
        return any(push["envelope"].get("subscription") == subscription for push in self.received)


def verifiers(url: str, caller: str) -> dict[str, Verifier]:
    return {
        "/push": Verifier.google_caller(f"{url}/push", service_accounts={caller}),
        "/custom": Verifier.google_caller(CUSTOM_AUDIENCE, service_accounts={caller}),
    }


def fastapi_endpoint(url: str, caller: str, received: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()
    for path, verifier in verifiers(url, caller).items():
        verified = VerifiedClaims(verifier)

        async def push(request: Request, claims: dict[str, Any] = Depends(verified)) -> None:  # noqa: B008
            token = request.headers["authorization"].split(" ", 1)[1]
            received.append({"claims": claims, "envelope": await request.json(), "token": token})

        app.add_api_route(path, push, methods=["POST"], status_code=204)
    return app


def flask_endpoint(url: str, caller: str, received: list[dict[str, Any]]) -> Flask:
    app = Flask("pubsub-push")
    for path, verifier in verifiers(url, caller).items():

        @require_id_token(verifier)
        def push(claims: dict[str, Any]) -> tuple[str, int]:
            token = flask_request.headers["Authorization"].split(" ", 1)[1]
            received.append({"claims": claims, "envelope": flask_request.get_json(force=True), "token": token})
            return "", 204

        app.add_url_rule(path, f"push{path.replace('/', '_')}", push, methods=["POST"])
    return app


@pytest.fixture(scope="module")
def caller(gcptoken_emulator: EmulatorClient) -> str:
    """The service account the push subscriptions name, and the one the endpoints accept."""
    return gcptoken_emulator.new_key("pusher")["client_email"]


@pytest.fixture(scope="module")
def stranger(gcptoken_emulator: EmulatorClient) -> str:
    return gcptoken_emulator.new_key("stranger")["client_email"]


def _fastapi_server(caller: str) -> Iterator[Endpoint]:
    sock = bind("127.0.0.1", 0)
    endpoint = Endpoint(f"http://127.0.0.1:{sock.getsockname()[1]}")
    with AsgiServer(fastapi_endpoint(endpoint.url, caller, endpoint.received), sock):
        yield endpoint


def _flask_server(caller: str) -> Iterator[Endpoint]:
    server = make_server("127.0.0.1", 0, lambda environ, start: [], handler_class=QuietHandler)
    endpoint = Endpoint(f"http://127.0.0.1:{server.server_port}")
    server.set_app(flask_endpoint(endpoint.url, caller, endpoint.received))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module", params=["fastapi", "flask"])
def endpoint(request: pytest.FixtureRequest, caller: str) -> Iterator[Endpoint]:
    serve: Callable[[str], Iterator[Endpoint]] = _fastapi_server if request.param == "fastapi" else _flask_server
    yield from serve(caller)


@dataclass
class Pubsub:
    """Google's client on the Pub/Sub emulator: a topic and push subscriptions, deleted afterwards."""

    publisher: Any
    subscriber: Any
    topic: str
    subscriptions: list[str] = field(default_factory=list)

    def subscribe(self, push_config: dict[str, Any]) -> str:
        name: str = self.subscriber.subscription_path(PROJECT, f"push-{next(_names):04d}")
        self.subscriber.create_subscription(request={"name": name, "topic": self.topic, "push_config": push_config})
        self.subscriptions.append(name)
        return name

    def publish(self, data: bytes, **attributes: str) -> None:
        self.publisher.publish(self.topic, data, **attributes).result(timeout=10)


@pytest.fixture
def pubsub(
    gcptoken_pubsub_emulator: PubsubEmulator, gcptoken_emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Pubsub]:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", gcptoken_pubsub_emulator.host_port)
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", gcptoken_emulator.host_port)  # the endpoints' verifiers' keys
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.create_topic(name=publisher.topic_path(PROJECT, f"topic-{next(_names):04d}")).name
    session = Pubsub(publisher, subscriber, topic)
    try:
        yield session
    finally:
        for name in session.subscriptions:  # no retries left running for the next test
            subscriber.delete_subscription(subscription=name)
        publisher.delete_topic(topic=topic)
        publisher.transport.close()
        subscriber.close()


def relay_said(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in caplog.records:
            if record.name == "gcptoken.pubsub" and text in record.getMessage():
                return record.getMessage()
        time.sleep(0.02)
    raise AssertionError(f"the relay never said {text!r}")


def oidc(email: str, audience: str | None = None) -> dict[str, str]:
    return {"service_account_email": email, **({"audience": audience} if audience else {})}


# -- what the endpoint receives --------------------------------------------------------------------


def test_push_carries_the_token_pubsub_sends_for_the_endpoint_url(
    pubsub: Pubsub, endpoint: Endpoint, caller: str, gcptoken_emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = pubsub.subscribe({"push_endpoint": f"{endpoint.url}/push", "oidc_token": oidc(caller)})
    pubsub.publish(b"hello", colour="blue")
    push = endpoint.wait_for(name)
    claims = push["claims"]
    assert claims["aud"] == f"{endpoint.url}/push"  # no audience configured: the push endpoint URL
    assert (claims["email"], claims["email_verified"], claims["iss"]) == (caller, True, "https://accounts.google.com")
    message = push["envelope"]["message"]
    assert base64.b64decode(message["data"]) == b"hello" and message["attributes"] == {"colour": "blue"}
    # google-auth's own verifier, pointed at the emulator's certs, accepts the same token.
    monkeypatch.setattr(google.oauth2.id_token, "_GOOGLE_OAUTH2_CERTS_URL", f"{gcptoken_emulator.url}/oauth2/v1/certs")
    verified = google.oauth2.id_token.verify_oauth2_token(  # type: ignore[no-untyped-call]
        push["token"], google.auth.transport.requests.Request(), audience=f"{endpoint.url}/push"
    )
    assert verified["email"] == caller


def test_a_configured_audience_is_the_tokens_audience(pubsub: Pubsub, endpoint: Endpoint, caller: str) -> None:
    name = pubsub.subscribe({"push_endpoint": f"{endpoint.url}/custom", "oidc_token": oidc(caller, CUSTOM_AUDIENCE)})
    pubsub.publish(b"custom")
    assert endpoint.wait_for(name)["claims"]["aud"] == CUSTOM_AUDIENCE


@pytest.mark.parametrize("endpoint", ["fastapi"], indirect=True)  # the relay's side: one framework is enough
def test_no_wrapper_pushes_with_metadata_carry_the_token_too(pubsub: Pubsub, endpoint: Endpoint, caller: str) -> None:
    name = pubsub.subscribe(
        {"push_endpoint": f"{endpoint.url}/push", "oidc_token": oidc(caller), "no_wrapper": {"write_metadata": True}}
    )
    pubsub.publish(b'{"subscription": "not this one"}')  # the raw payload is the body
    assert endpoint.wait_for("not this one")["claims"]["email"] == caller
    assert name


@pytest.mark.parametrize("endpoint", ["flask"], indirect=True)  # the relay's side: one framework is enough
def test_no_wrapper_pushes_without_metadata_are_found_by_their_endpoint(
    pubsub: Pubsub, endpoint: Endpoint, caller: str, gcptoken_pubsub_emulator: PubsubEmulator
) -> None:
    """Such a push names no subscription: the relay finds the one pushing to that URL in the
    projects it knows (--project, PUBSUB_PROJECT_ID, those clients named: here over gRPC)."""
    gcptoken_pubsub_emulator.projects.discard(PROJECT)  # learnt again from create_subscription
    pubsub.subscribe({"push_endpoint": f"{endpoint.url}/push", "oidc_token": oidc(caller), "no_wrapper": {}})
    pubsub.publish(b'{"subscription": "unwrapped"}')
    assert endpoint.wait_for("unwrapped")["claims"]["email"] == caller


@pytest.mark.parametrize(
    "case",
    ["wrong audience", "wrong account", "missing token"],
)
def test_the_endpoint_refuses_pushes_it_must_not_trust(
    pubsub: Pubsub, endpoint: Endpoint, caller: str, stranger: str, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "gcptoken.pubsub")
    url = f"{endpoint.url}/push"
    configs: dict[str, dict[str, Any]] = {
        "wrong audience": {"push_endpoint": url, "oidc_token": oidc(caller, "https://another-service.example.test")},
        "wrong account": {"push_endpoint": url, "oidc_token": oidc(stranger)},
        "missing token": {"push_endpoint": url},  # no oidcToken: Pub/Sub sends no Authorization header
    }
    name = pubsub.subscribe(configs[case])
    pubsub.publish(b"refused")
    relay_said(caplog, f"pushed {name} to {url}: 401")
    assert not endpoint.got(name)


def test_an_unverified_email_is_refused(endpoint: Endpoint, caller: str, gcptoken_emulator: EmulatorClient) -> None:
    state = gcptoken_emulator.state
    claims = state.identity_claims(state.service_accounts[caller], f"{endpoint.url}/push")
    claims.update({"email": caller, "email_verified": False})
    forged = f"projects/{PROJECT}/subscriptions/forged"
    envelope = {"subscription": forged, "message": {"data": "", "messageId": "1"}}
    headers = {"Authorization": f"Bearer {state.sign_id_token(claims)}"}
    response = httpx.post(f"{endpoint.url}/push", json=envelope, headers=headers)
    assert response.status_code == 401
    assert not endpoint.got(forged)


# -- when no token can be minted, and what the relay refuses ---------------------------------------


@pytest.fixture
def project_role_removed(gcptoken_emulator: EmulatorClient) -> Iterator[Callable[[bool], None]]:
    def set_role(granted: bool) -> None:
        url = f"{gcptoken_emulator.url}/emulator/v1/serviceAgents/pubsub"
        httpx.put(url, json={"projectRole": granted}).raise_for_status()

    set_role(False)
    try:
        yield set_role
    finally:
        set_role(True)


@pytest.mark.parametrize("endpoint", ["fastapi"], indirect=True)  # the relay's side: one framework is enough
def test_without_the_service_agents_role_nothing_is_delivered_and_the_push_is_retried(
    pubsub: Pubsub,
    endpoint: Endpoint,
    caller: str,
    project_role_removed: Callable[[bool], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = pubsub.subscribe({"push_endpoint": f"{endpoint.url}/push", "oidc_token": oidc(caller)})
    pubsub.publish(b"later")
    line = relay_said(caplog, f"not pushing {name}: Pub/Sub cannot mint an ID token for {caller}")
    assert "roles/iam.serviceAccountTokenCreator" in line and "eyJ" not in line
    assert not endpoint.got(name)
    project_role_removed(True)  # Google's default grant back: the retried push now arrives
    assert endpoint.wait_for(name)["claims"]["email"] == caller


def test_an_endpoint_off_this_machine_is_never_contacted(
    pubsub: Pubsub, caller: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = "http://192.0.2.7:8080/push"  # TEST-NET-1 (RFC 5737): the relay must not even try
    name = pubsub.subscribe({"push_endpoint": url, "oidc_token": oidc(caller)})
    pubsub.publish(b"stays here")
    line = relay_said(caplog, f"not pushing {name} to {url}: the endpoint is not on this machine")
    assert "--allow-remote-endpoints" in line


@pytest.mark.parametrize("endpoint", ["fastapi"], indirect=True)  # the relay's side: one framework is enough
def test_the_relay_adds_tokens_only_to_the_pubsub_emulators_own_pushes(
    pubsub: Pubsub, endpoint: Endpoint, caller: str, gcptoken_pubsub_emulator: PubsubEmulator
) -> None:
    """Another local process using the relay as its proxy, for a real subscription, gets nothing."""
    name = pubsub.subscribe({"push_endpoint": f"{endpoint.url}/push", "oidc_token": oidc(caller)})
    envelope = {"subscription": name, "message": {"data": "", "messageId": "1"}}
    with httpx.Client(proxy=gcptoken_pubsub_emulator.relay_url, trust_env=False) as client:
        response = client.post(f"{endpoint.url}/push", json=envelope)
    assert response.status_code == 403 and "other than the Pub/Sub emulator's" in response.text
    assert not endpoint.got(name)


@pytest.mark.parametrize("endpoint", ["fastapi"], indirect=True)  # the relay's side: one framework is enough
def test_the_relay_is_no_open_proxy(
    pubsub: Pubsub,
    endpoint: Endpoint,
    caller: str,
    gcptoken_pubsub_emulator: PubsubEmulator,
    gcptoken_emulator: EmulatorClient,
) -> None:
    """Even a peer it trusts gets a token only for a real subscription's own push endpoint."""
    name = pubsub.subscribe({"push_endpoint": f"{endpoint.url}/push", "oidc_token": oidc(caller)})
    relay = PushRelay(gcptoken_pubsub_emulator.url, gcptoken_emulator.url)  # any loopback peer
    with AsgiServer(relay, bind("127.0.0.1", 0)) as server, httpx.Client(proxy=server.url, trust_env=False) as client:
        elsewhere = client.post(f"{endpoint.url}/custom", json={"subscription": name, "message": {}})
        unknown = client.post(
            f"{endpoint.url}/push", json={"subscription": f"projects/{PROJECT}/subscriptions/none-such"}
        )
        not_proxied = httpx.post(f"{server.url}/push", json={"subscription": name})
        relayed = client.post(f"{endpoint.url}/push", json={"subscription": name, "message": {"data": ""}})
    assert [elsewhere.status_code, unknown.status_code, not_proxied.status_code] == [403, 403, 400]
    assert "no push subscription that could have sent it pushes there" in elsewhere.text
    assert relayed.status_code == 204 and endpoint.wait_for(name)["claims"]["email"] == caller


def test_a_202_acks_as_it_does_at_google(pubsub: Pubsub, caplog: pytest.LogCaptureFixture) -> None:
    """Google acks 202 (the Pub/Sub emulator alone would push it again every second)."""
    from starlette.responses import Response

    hits: list[int] = []

    async def accepted(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            hits.append(1)
            await Response(status_code=202)(scope, receive, send)

    caplog.set_level(logging.INFO, "gcptoken.pubsub")
    with AsgiServer(accepted, bind("127.0.0.1", 0)) as server:
        name = pubsub.subscribe({"push_endpoint": f"{server.url}/accepted"})
        pubsub.publish(b"once")
        relay_said(caplog, f"pushed {name} to {server.url}/accepted: 202")
        time.sleep(1.5)  # the emulator's retry interval is about 1 s: a nack would have come back by now
    assert len(hits) == 1
