"""Reading Pub/Sub pushes and the products' headers without a server: each spelling Google writes
is read, each broken envelope is an InvalidPushError that says what is wrong (never echoing the
body), and unreadable Cloud Tasks numbers are None rather than an exception."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

import pytest

from gcptoken.receive.products import google_call
from gcptoken.receive.pubsub import ACK_STATUSES, InvalidPushError, acknowledges, parse_push, parse_unwrapped

MESSAGE = {
    "data": base64.b64encode(b"\xff\x00binary").decode(),
    "messageId": "1",
    "publishTime": "2024-05-01T10:00:00Z",
}
SUB = "projects/p/subscriptions/s"


def envelope(**message: Any) -> bytes:
    fields = {key: value for key, value in {**MESSAGE, **message}.items() if value is not None}
    return json.dumps({"message": fields, "subscription": SUB}).encode()


def test_the_documented_ack_statuses() -> None:
    assert {102, 200, 201, 202, 204} == ACK_STATUSES
    assert not any(acknowledges(status) for status in (203, 400, 401, 403, 404, 429, 500, 503))


def test_each_spelling_google_writes_is_read() -> None:
    snake = parse_push(
        envelope(messageId=None, publishTime=None, message_id="9", publish_time="2024-05-01T12:00:00+02:00")
    )
    assert snake.message_id == "9" and snake.publish_time == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
    camel = parse_push(envelope(orderingKey="k", data=None, attributes={"a": "b"}))
    assert (camel.data, camel.attributes, camel.ordering_key) == (b"", {"a": "b"}, "k")
    assert parse_push(envelope()).data == b"\xff\x00binary"
    assert parse_push(envelope(data=base64.urlsafe_b64encode(b"\xfb\xff").decode())).data == b"\xfb\xff"
    attempt = json.loads(envelope())
    attempt["deliveryAttempt"] = 3
    assert parse_push(json.dumps(attempt)).delivery_attempt == 3


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[]", "no 'message'"),
        (b'{"message": {}, "subscription": "topics/t"}', "subscription"),
        (envelope(data=7), "base64"),
        (envelope(attributes={"a": 1}), "attributes"),
        (envelope(message_id="2"), "differ"),
        (envelope(messageId=""), "messageId"),
        (envelope(publishTime="yesterday"), "RFC 3339"),
        (envelope(publishTime="2024-02-30T00:00:00Z"), "RFC 3339"),
        (envelope(orderingKey=5), "orderingKey"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_broken_envelopes_say_what_is_wrong(body: bytes, words: str) -> None:
    with pytest.raises(InvalidPushError, match=words) as refused:
        parse_push(body)
    assert isinstance(refused.value, ValueError) and len(str(refused.value)) < 120


@pytest.mark.parametrize("attempt", [0, True, "2", 1.5])
def test_a_delivery_attempt_is_a_positive_whole_number(attempt: Any) -> None:
    body = json.loads(envelope())
    body["deliveryAttempt"] = attempt
    with pytest.raises(InvalidPushError, match="deliveryAttempt"):
        parse_push(json.dumps(body))


def test_unwrapped_pushes() -> None:
    assert parse_unwrapped(b"raw", {}, write_metadata=False).data == b"raw"
    headers = {
        "X-Goog-Pubsub-Subscription-Name": SUB,
        "X-Goog-Pubsub-Message-Id": "5",
        "X-Goog-Pubsub-Publish-Time": "2024-05-01T10:00:00.5Z",
        "x-goog-ordering-key": "emulator's spelling",
        "x-goog-pubsub-delivery-attempt": "4",
    }
    message = parse_unwrapped(b"raw", headers, write_metadata=True)
    assert (message.message_id, message.ordering_key, message.delivery_attempt) == ("5", "emulator's spelling", 4)
    assert message.publish_time == datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=timezone.utc)
    with pytest.raises(InvalidPushError, match="delivery-attempt"):
        parse_unwrapped(b"", {**headers, "x-goog-pubsub-delivery-attempt": "-1"}, write_metadata=True)
    with pytest.raises(InvalidPushError, match="subscription-name"):
        parse_unwrapped(b"", {**headers, "X-Goog-Pubsub-Subscription-Name": "s"}, write_metadata=True)
    with pytest.raises(InvalidPushError, match="not UTF-8"):
        parse_unwrapped(b"\xff", {}, write_metadata=False).text()


def test_the_products_headers_are_read_leniently_and_only_when_there() -> None:
    claims = {"email": "sa@p.iam.gserviceaccount.com"}
    assert google_call(claims, {"User-Agent": "Google-Cloud-Tasks"}).tasks is None
    odd = google_call(
        claims, {"x-cloudtasks-queuename": "q", "X-CloudTasks-TaskRetryCount": "-1", "X-CloudTasks-TaskETA": "nan"}
    )
    assert odd.tasks is not None and (odd.tasks.retry_count, odd.tasks.eta, odd.tasks.task_name) == (None, None, None)
    assert google_call(claims, {"X-CloudScheduler": "false", "X-CloudScheduler-JobName": "j"}).scheduler is None
    scheduled = google_call({}, {"X-CloudScheduler": "true", "X-CloudScheduler-ScheduleTime": "2024-05-01T10:00:00Z"})
    assert scheduled.scheduler is not None and scheduled.scheduler.schedule_time == "2024-05-01T10:00:00Z"
    assert scheduled.email is None
