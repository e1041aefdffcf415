"""Hostile pushes and headers: any JSON value in any envelope field, any string in any header, times
out of range once moved to UTC, numbers longer than Python reads and other scripts' digits. Each
is an InvalidPushError (a 400) or, for a Cloud Tasks / Scheduler detail, None; never an
OverflowError, a ValueError from int() or a TypeError (a 500)."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gcptoken.receive.products import google_call
from gcptoken.receive.pubsub import InvalidPushError, parse_push, parse_unwrapped

SUB = "projects/p/subscriptions/s"
GOOD = {"messageId": "1", "publishTime": "2024-05-01T10:00:00Z", "data": "eA=="}
HUGE = "9" * 5000  # past Python's int() digit limit
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELDS = ["data", "attributes", "messageId", "message_id", "publishTime", "publish_time", "orderingKey"]
HEADERS = [
    "x-goog-pubsub-subscription-name",
    "x-goog-pubsub-message-id",
    "x-goog-pubsub-publish-time",
    "x-goog-pubsub-delivery-attempt",
    "x-goog-pubsub-ordering-key",
]
PRODUCT_HEADERS = [
    "X-CloudTasks-QueueName",
    "X-CloudTasks-TaskName",
    "X-CloudTasks-TaskRetryCount",
    "X-CloudTasks-TaskExecutionCount",
    "X-CloudTasks-TaskETA",
    "X-CloudTasks-TaskPreviousResponse",
    "X-CloudScheduler",
    "X-CloudScheduler-JobName",
]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def envelope(**message: Any) -> str:
    return json.dumps({"message": {**GOOD, **message}, "subscription": SUB})


def parsed_or_refused(body: str | bytes) -> None:
    refusal = ""
    try:
        parse_push(body)
    except InvalidPushError as error:
        refusal = str(error)
    assert len(refusal) < 120


@pytest.mark.parametrize(
    "moment",
    [
        "0001-01-01T00:00:00+01:00",  # before year 1 once in UTC
        "9999-12-31T23:59:59-23:59",  # after 9999
        "9999-12-31T23:59:59.999999999-00:01",
        "2024-05-01T10:00:00+24:00",  # offsets are at most 23:59
        "2024-05-01T10:00:00+10:60",
        "٢٠٢٤-05-01T10:00:00Z",  # Arabic-Indic digits: \d without re.ASCII took them
        "2024-05-01T10:00:00.١Z",
    ],
)
def test_times_out_of_range_or_in_other_digits_are_refused(moment: str) -> None:
    with pytest.raises(InvalidPushError, match="RFC 3339"):
        parse_push(envelope(publishTime=moment, publish_time=moment))
    headers = {HEADERS[0]: SUB, HEADERS[1]: "1", HEADERS[2]: moment}
    with pytest.raises(InvalidPushError, match="RFC 3339"):
        parse_unwrapped(b"", headers, write_metadata=True)


def test_unpadded_and_url_safe_data_is_read_as_protobuf_reads_it() -> None:
    for data in (b"x", b"xy", b"\xfb\xff\xfe", b""):
        padded = base64.b64encode(data).decode()
        for text in (padded, padded.rstrip("="), base64.urlsafe_b64encode(data).decode().rstrip("=")):
            assert parse_push(envelope(data=text)).data == data, text
    for broken in ("e", "eA=", "eA===", "e A=", "eA==eA=="):
        with pytest.raises(InvalidPushError, match="base64"):
            parse_push(envelope(data=broken))


def test_numbers_longer_than_python_reads_are_refused_or_none() -> None:
    headers = {HEADERS[0]: SUB, HEADERS[1]: "1", HEADERS[2]: "2024-05-01T10:00:00Z"}
    for attempt in (HUGE, "٣", "1_0", " 1", ""):
        with pytest.raises(InvalidPushError, match="delivery-attempt"):
            parse_unwrapped(b"", {**headers, "x-goog-pubsub-delivery-attempt": attempt}, write_metadata=True)
    parsed_or_refused(f'{{"message": {json.dumps(GOOD)}, "subscription": "{SUB}", "deliveryAttempt": {HUGE}}}')
    call = google_call(
        {},
        {
            "X-CloudTasks-QueueName": "q",
            "X-CloudTasks-TaskRetryCount": HUGE,
            "X-CloudTasks-TaskExecutionCount": "٣",
            "X-CloudTasks-TaskETA": HUGE + "." + HUGE,
            "X-CloudTasks-TaskPreviousResponse": "1_0",
        },
    )
    assert call.tasks is not None
    assert (call.tasks.retry_count, call.tasks.execution_count, call.tasks.eta, call.tasks.previous_response) == (
        None,
        None,
        None,
        None,
    )
    for eta in ("٣", "1_0", "inf", " 1", "1e3"):
        assert google_call({}, {"X-CloudTasks-QueueName": "q", "X-CloudTasks-TaskETA": eta}).tasks.eta is None  # type: ignore[union-attr]


@FUZZ
@given(field=st.sampled_from(FIELDS), value=JSON_VALUES)
def test_any_json_value_in_any_message_field(field: str, value: Any) -> None:
    parsed_or_refused(envelope(**{field: value}))


@FUZZ
@given(top=st.dictionaries(st.sampled_from(["message", "subscription", "deliveryAttempt"]), JSON_VALUES))
def test_any_json_value_in_the_envelope(top: dict[str, Any]) -> None:
    parsed_or_refused(json.dumps(top))


@FUZZ
@given(body=st.binary(max_size=64))
def test_any_bytes_as_the_body(body: bytes) -> None:
    parsed_or_refused(body)


@FUZZ
@given(
    values=st.dictionaries(st.sampled_from(HEADERS), st.text(max_size=30) | st.sampled_from([HUGE, "٣", "-1"])),
    products=st.dictionaries(st.sampled_from(PRODUCT_HEADERS), st.text(max_size=30) | st.sampled_from([HUGE, "٣"])),
)
def test_any_string_in_any_header(values: dict[str, str], products: dict[str, str]) -> None:
    with contextlib.suppress(InvalidPushError):
        parse_unwrapped(b"", values, write_metadata=True)
    google_call({"email": 5}, {**values, **products})
