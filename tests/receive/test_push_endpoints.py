"""Push endpoints written as a user writes them, one with FastAPI and one with Flask, behind real
servers on 127.0.0.1: a push with the subscription's service account's token (from the emulator)
is handled and acknowledged; a missing token, another account, another audience, an unverified
email and a person's token get 401; a body that is no push envelope gets 400; Cloud Tasks' and
Cloud Scheduler's headers reach the handler beside the claims."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Response
from flask import Flask

from gcptoken import Verifier
from gcptoken.receive import flask as on_flask
from gcptoken.receive.asgi import GoogleCaller, PubSubPush
from gcptoken.receive.products import GoogleCall, PushDelivery
from gcptoken.receive.pubsub import ACK, MAX_PUSH_BYTES, acknowledges
from gcptoken.testing import EmulatorClient
from tests.integrations.test_middleware import asgi_server, wsgi_server
from tests.receive.callers import AUD, DROP, forged, sa_token

ENVELOPE = {
    "message": {
        "attributes": {"kind": "order"},
        "data": base64.b64encode(b'{"id": 7}').decode(),
        "messageId": "2070443601311540",
        "message_id": "2070443601311540",
        "publishTime": "2021-02-26T19:13:55.749Z",
        "publish_time": "2021-02-26T19:13:55.749Z",
    },
    "subscription": "projects/emulated-project/subscriptions/orders",
}
TASK_HEADERS = {
    "X-CloudTasks-QueueName": "orders",
    "X-CloudTasks-TaskName": "task-1",
    "X-CloudTasks-TaskRetryCount": "2",
    "X-CloudTasks-TaskExecutionCount": "1",
    "X-CloudTasks-TaskETA": "1700000000.5",
    "X-CloudTasks-TaskPreviousResponse": "503",
    "X-CloudTasks-TaskRetryReason": "instance-unavailable",
}


def seen(push: PushDelivery) -> dict[str, Any]:
    message = push.message
    return {
        "email": push.call.email,
        "data": message.text(),
        "attributes": message.attributes,
        "id": message.message_id,
        "subscription": message.subscription,
        "time": message.publish_time.isoformat() if message.publish_time else None,
    }


def described(call: GoogleCall) -> dict[str, Any]:
    return {
        "email": call.email,
        "queue": call.tasks and call.tasks.queue_name,
        "retries": call.tasks and call.tasks.retry_count,
        "eta": call.tasks and call.tasks.eta,
        "job": call.scheduler and call.scheduler.job_name,
    }


def fastapi_app(verifier: Verifier, received: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()

    @app.post("/pubsub", status_code=ACK)
    async def pubsub(push: PushDelivery = Depends(PubSubPush(verifier))) -> Response:  # noqa: B008
        received.append(seen(push))
        return Response(status_code=ACK)

    @app.post("/raw", status_code=ACK)
    async def raw(push: PushDelivery = Depends(PubSubPush(verifier, unwrapped=True, write_metadata=True))) -> Response:  # noqa: B008
        received.append(seen(push))
        return Response(status_code=ACK)

    @app.post("/task")
    async def task(call: GoogleCall = Depends(GoogleCaller(verifier))) -> dict[str, Any]:  # noqa: B008
        return described(call)

    return app


def flask_app(verifier: Verifier, received: list[dict[str, Any]]) -> Flask:
    app = Flask("gcptoken-push")

    @app.post("/pubsub")
    @on_flask.pubsub_push(verifier)
    def pubsub(push: PushDelivery) -> tuple[str, int]:
        received.append(seen(push))
        return "", ACK

    @app.post("/raw")
    @on_flask.pubsub_push(verifier, unwrapped=True, write_metadata=True)
    def raw(push: PushDelivery) -> tuple[str, int]:
        received.append(seen(push))
        return "", ACK

    @app.post("/task")
    @on_flask.google_caller(verifier)
    def task(call: GoogleCall) -> dict[str, Any]:
        return described(call)

    return app


APPS: dict[str, tuple[Callable[..., Any], Callable[[Any], AbstractContextManager[str]]]] = {
    "fastapi": (fastapi_app, asgi_server),
    "flask": (flask_app, wsgi_server),
}


@pytest.fixture(params=list(APPS))
def endpoint(
    request: pytest.FixtureRequest, emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, dict[str, str], list[dict[str, Any]]]]:
    """(the app's URL, the subscription's service account's key, what the handler received)."""
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    pusher = emulator.new_key("pusher")
    received: list[dict[str, Any]] = []
    make_app, serve = APPS[request.param]
    with serve(make_app(Verifier.google_caller(AUD, service_accounts=[pusher["client_email"]]), received)) as url:
        yield url, pusher, received


def post(url: str, token: str | None, body: Any = ENVELOPE, **headers: str) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url, content=content, headers={"Content-Type": "application/json", **headers})


def test_a_push_is_handled_and_acknowledged(endpoint: tuple[str, dict[str, str], list[dict[str, Any]]]) -> None:
    url, pusher, received = endpoint
    answer = post(f"{url}/pubsub", sa_token(pusher))
    assert answer.status_code == 204 and acknowledges(answer.status_code)
    assert received == [
        {
            "email": pusher["client_email"],
            "data": '{"id": 7}',
            "attributes": {"kind": "order"},
            "id": "2070443601311540",
            "subscription": "projects/emulated-project/subscriptions/orders",
            "time": "2021-02-26T19:13:55.749000+00:00",
        }
    ]


def test_strangers_get_401_and_the_handler_never_runs(
    endpoint: tuple[str, dict[str, str], list[dict[str, Any]]], emulator: EmulatorClient
) -> None:
    url, pusher, received = endpoint
    email = pusher["client_email"]
    cases = {
        "missing token": (None, "no authorization header"),
        "another account": (sa_token(emulator.new_key("other")), "not one of the allowed service accounts"),
        "another audience": (sa_token(pusher, "https://other-service.a.run.app"), "audience"),
        "unverified email": (forged(emulator, email, email_verified=False), "email_verified"),
        "a person's token": (forged(emulator, "someone@gmail.com"), "someone@gmail.com"),
        "no audience at all": (forged(emulator, email, aud=DROP), "audience"),
    }
    for case, (token, words) in cases.items():
        answer = post(f"{url}/pubsub", token)
        assert answer.status_code == 401, case
        assert words in answer.json()["detail"] and not acknowledges(answer.status_code), case
    assert received == []


BAD_BODIES: list[tuple[Any, str]] = [
    (b"not json", "not JSON"),
    ({"message": {}}, "subscription"),
    ({**ENVELOPE, "message": {**ENVELOPE["message"], "data": "%%%"}}, "base64"),  # type: ignore[dict-item]
    ({**ENVELOPE, "message": {"data": "", "publishTime": "2021-02-26T19:13:55Z"}}, "messageId"),
    ({**ENVELOPE, "message": {"messageId": "1", "publishTime": "0001-01-01T00:00:00+01:00"}}, "RFC 3339"),
    ({**ENVELOPE, "message": {"messageId": "1", "publishTime": "9999-12-31T23:59:59-23:59"}}, "RFC 3339"),
]


def test_a_body_that_is_no_push_gets_400(endpoint: tuple[str, dict[str, str], list[dict[str, Any]]]) -> None:
    url, pusher, received = endpoint
    token = sa_token(pusher)
    for body, words in BAD_BODIES:
        answer = post(f"{url}/pubsub", token, body)
        assert answer.status_code == 400 and words in answer.json()["detail"], words
    assert received == []


def test_an_unwrapped_push_reads_its_metadata_headers(
    endpoint: tuple[str, dict[str, str], list[dict[str, Any]]],
) -> None:
    url, pusher, received = endpoint
    token = sa_token(pusher)
    metadata = {
        "x-goog-pubsub-subscription-name": "projects/emulated-project/subscriptions/raw",
        "x-goog-pubsub-message-id": "42",
        "x-goog-pubsub-publish-time": "2021-02-26T19:13:55.123456789Z",
    }
    assert post(f"{url}/raw", token, b"plain body", **metadata).status_code == 204
    assert received[0]["data"] == "plain body" and received[0]["id"] == "42"
    assert received[0]["time"] == "2021-02-26T19:13:55.123456+00:00" and received[0]["attributes"] == {}
    without = {name: value for name, value in metadata.items() if "message-id" not in name}
    refused = post(f"{url}/raw", token, b"plain body", **without)
    assert refused.status_code == 400 and "x-goog-pubsub-message-id" in refused.json()["detail"]
    huge = post(f"{url}/raw", token, b"plain body", **metadata, **{"x-goog-pubsub-delivery-attempt": "9" * 5000})
    assert huge.status_code == 400 and "delivery-attempt" in huge.json()["detail"]


def test_tasks_and_scheduler_headers_come_with_the_claims(
    endpoint: tuple[str, dict[str, str], list[dict[str, Any]]],
) -> None:
    url, pusher, _ = endpoint
    token = sa_token(pusher)
    task = post(f"{url}/task", token, {}, **TASK_HEADERS).json()
    assert task == {"email": pusher["client_email"], "queue": "orders", "retries": 2, "eta": 1700000000.5, "job": None}
    job = post(f"{url}/task", token, {}, **{"X-CloudScheduler": "true", "X-CloudScheduler-JobName": "nightly"}).json()
    assert job == {"email": pusher["client_email"], "queue": None, "retries": None, "eta": None, "job": "nightly"}
    huge = {**TASK_HEADERS, "X-CloudTasks-TaskRetryCount": "9" * 5000, "X-CloudTasks-TaskETA": "1_0"}
    assert post(f"{url}/task", token, {}, **huge).json()["retries"] is None  # a 5000-digit count: None, not a 500
    # The headers prove nothing: without the token they get nowhere.
    assert post(f"{url}/task", None, {}, **TASK_HEADERS).status_code == 401


@pytest.mark.parametrize("kind", list(APPS))
def test_a_body_larger_than_any_push_gets_413_unread(
    kind: str, emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process (the apps' own test clients): 16 MiB and one byte, declared or streamed."""
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    pusher = emulator.new_key("pusher")
    verifier = Verifier.google_caller(AUD, service_accounts=[pusher["client_email"]])
    received: list[dict[str, Any]] = []
    headers = {"Authorization": f"Bearer {sa_token(pusher)}"}
    body = b"x" * (MAX_PUSH_BYTES + 1)
    if kind == "fastapi":

        async def streamed() -> AsyncIterator[bytes]:
            yield body[:1000]
            yield body[1000:]

        async def both() -> list[httpx.Response]:
            transport = httpx.ASGITransport(fastapi_app(verifier, received))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return [
                    await client.post("/pubsub", content=body, headers=headers),
                    await client.post("/raw", content=streamed(), headers=headers),
                ]

        answers: list[Any] = asyncio.run(both())
    else:
        client = flask_app(verifier, received).test_client()
        answers = [client.post("/pubsub", data=body, headers=headers)]
        from werkzeug.test import EnvironBuilder, run_wsgi_app
        from werkzeug.wrappers import Response as WerkzeugResponse

        endless = Endless()
        environ = EnvironBuilder("/raw", method="POST", headers=list(headers.items())).get_environ()
        environ.pop("CONTENT_LENGTH", None)  # a chunked body: no Content-Length, and no end
        environ.update({"wsgi.input": endless, "wsgi.input_terminated": True})
        answers.append(WerkzeugResponse(*run_wsgi_app(client.application, environ)))
        assert endless.read_bytes <= MAX_PUSH_BYTES + 65536  # the cap, not the stream, ended the read
    for answer in answers:
        content = answer.content if kind == "fastapi" else answer.get_data()
        assert answer.status_code == 413 and str(MAX_PUSH_BYTES) in json.loads(content)["detail"]
    assert received == []


class Endless(io.RawIOBase):
    """A request body that does not end before twice the cap (a reader without one reads it all)."""

    read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.read_bytes >= 2 * MAX_PUSH_BYTES:
            return 0
        buffer[:] = b"x" * len(buffer)
        self.read_bytes += len(buffer)
        return len(buffer)
