"""Pub/Sub push deliveries: the JSON envelope, the unwrapped (``noWrapper``) form, and the answers
Pub/Sub counts as an acknowledgement.

The envelope (https://cloud.google.com/pubsub/docs/push):
``{"message": {"data": BASE64, "attributes": {…}, "messageId", "message_id", "publishTime",
"publish_time", "orderingKey"}, "subscription": "projects/P/subscriptions/S", "deliveryAttempt": N}``
(``deliveryAttempt`` only with a dead-letter policy; the ids and times twice, camel and snake case).

Unwrapped (``pushConfig.noWrapper``, https://cloud.google.com/pubsub/docs/payload-unwrapping): the
body is the message's data itself. With ``writeMetadata`` the metadata comes as
``x-goog-pubsub-<KEY>`` headers and each attribute as a header of its own name (PushConfig.NoWrapper
in google/pubsub/v1/pubsub.proto), which cannot be told from the request's other headers, so
attributes are left to the caller. The official emulator (cloud-pubsub-emulator 0.8.20,
HttpEndpointPusher) writes x-goog-pubsub-message-id, -subscription-name, -publish-time and
``x-goog-ordering-key``; both spellings of the ordering key are read.

The push's token is checked before any of this (``gcptoken.receive.asgi``, ``.flask``): its
audience is the subscription's ``pushConfig.oidcToken.audience``, or when that is empty the push
endpoint URL (PushConfig.OidcToken.audience: "if not specified, the Push endpoint URL will be used").
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from gcptoken.errors import GcpTokenError

__all__ = [
    "ACK",
    "ACK_STATUSES",
    "MAX_PUSH_BYTES",
    "InvalidPushError",
    "PushMessage",
    "acknowledges",
    "parse_push",
    "parse_unwrapped",
    "whole_number",
]

# "Any of the following HTTP status codes is interpreted as success by the Pub/Sub system: 102,
# 200, 201, 202, or 204"; anything else is a negative acknowledgement, delivered again
# (https://cloud.google.com/pubsub/docs/push). The emulator 0.8.20 acks 102, 200, 201, 203, 204
# (HttpEndpointPusher.ACK_RESPONSE_CODES): 204 is an ack to both.
ACK_STATUSES = frozenset({102, 200, 201, 202, 204})
ACK = 204

# Pub/Sub's largest message is 10 MB, its data and attributes together
# (https://cloud.google.com/pubsub/quotas, "Resource limits": message size); its push envelope
# carries the data in base64 (4/3 as large) inside JSON, so 16 MiB holds any real push, and
# nothing more is read.
MAX_PUSH_BYTES = 16 * 1024 * 1024

_SUBSCRIPTION = re.compile(r"projects/[^/\s]+/subscriptions/[^/\s]+")
# RFC 3339 as Google writes timestamps: up to nine fractional digits, Z or an offset. ASCII digits
# only (\d alone matches any script's digits, which int() reads).
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))", re.ASCII
)
_HEADER = "x-goog-pubsub-"


class InvalidPushError(GcpTokenError, ValueError):
    """A request that is not a Pub/Sub push: the integrations answer it 400 (a negative
    acknowledgement, should Pub/Sub ever send one)."""


@dataclass(frozen=True)
class PushMessage:
    """One pushed message. ``data`` is decoded; ``attributes`` are the envelope's (empty for an
    unwrapped push). Unwrapped without ``writeMetadata``, only ``data`` is known."""

    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)
    message_id: str | None = None
    publish_time: datetime | None = None
    subscription: str | None = None
    ordering_key: str | None = None
    delivery_attempt: int | None = None

    def text(self) -> str:
        """``data`` as UTF-8 text; InvalidPushError when it is not."""
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidPushError("the message's data is not UTF-8 text") from None


def acknowledges(status: int) -> bool:
    """Whether Pub/Sub takes an answer with ``status`` as an acknowledgement."""
    return status in ACK_STATUSES


def _timestamp(value: object, where: str) -> datetime:
    match = _TIMESTAMP.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidPushError(f"{where} is not an RFC 3339 time")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    try:
        if not zulu and (int(off_h) > 23 or int(off_m) > 59):
            raise ValueError("offset out of range")
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=timezone.utc)
        moment += timedelta(microseconds=int((fraction or "0").ljust(6, "0")[:6]))
        if not zulu:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            moment -= offset if sign == "+" else -offset
    except (ValueError, OverflowError):  # no such day, or before year 1 / after 9999 once in UTC
        raise InvalidPushError(f"{where} is not an RFC 3339 time within years 1-9999") from None
    return moment


def _one_of(message: Mapping[str, Any], camel: str, snake: str, where: str) -> Any:
    """Pub/Sub writes some fields twice (``messageId`` and ``message_id``): either will do, and
    when both are there they must agree."""
    values = [message[name] for name in (camel, snake) if name in message]
    if not values:
        raise InvalidPushError(f"{where} has no {camel!r}")
    if len(values) == 2 and values[0] != values[1]:
        raise InvalidPushError(f"{where} has {camel!r} and {snake!r} that differ")
    return values[0]


def _data(value: object) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise InvalidPushError("message 'data' is not a base64 string")
    # Pub/Sub writes standard base64 with padding; protobuf's JSON mapping, which its push uses,
    # reads "standard or URL-safe base64 encoding with/without paddings"
    # (https://protobuf.dev/programming-guides/json/, bytes): read what it reads.
    if "=" not in value:
        value += "=" * (-len(value) % 4)
    try:
        return base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPushError("message 'data' is not base64") from None


def whole_number(value: str | None, *, at_least: int = 0) -> int | None:
    """A header's ASCII decimal number of at most 18 digits, else None: no int() of a value
    longer than Python reads (4300 digits: ValueError), no other script's digits."""
    if value is None or not (0 < len(value) <= 18 and value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if number >= at_least else None


def parse_push(body: bytes | str) -> PushMessage:
    """The message in a wrapped push's JSON ``body``; InvalidPushError (saying what is wrong, never
    echoing the body) when it is not a push envelope."""
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidPushError("the push body is not JSON") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("message"), dict):
        raise InvalidPushError("the push body has no 'message' object")
    message: dict[str, Any] = envelope["message"]
    subscription = envelope.get("subscription")
    if not isinstance(subscription, str) or not _SUBSCRIPTION.fullmatch(subscription):
        raise InvalidPushError("the push body's 'subscription' is not projects/PROJECT/subscriptions/NAME")
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
        raise InvalidPushError("message 'attributes' is not an object of strings")
    message_id = _one_of(message, "messageId", "message_id", "the message")
    if not isinstance(message_id, str) or not message_id:
        raise InvalidPushError("message 'messageId' is not a non-empty string")
    ordering_key = message.get("orderingKey", message.get("ordering_key"))
    if ordering_key is not None and not isinstance(ordering_key, str):
        raise InvalidPushError("message 'orderingKey' is not a string")
    attempt = envelope.get("deliveryAttempt")
    if attempt is not None and (type(attempt) is not int or attempt < 1):
        raise InvalidPushError("'deliveryAttempt' is not a positive whole number")
    return PushMessage(
        data=_data(message.get("data")),
        attributes=dict(attributes),
        message_id=message_id,
        publish_time=_timestamp(_one_of(message, "publishTime", "publish_time", "the message"), "'publishTime'"),
        subscription=subscription,
        ordering_key=ordering_key or None,
        delivery_attempt=attempt,
    )


def parse_unwrapped(body: bytes, headers: Mapping[str, str], *, write_metadata: bool) -> PushMessage:
    """An unwrapped push: ``body`` is the data. With ``write_metadata`` (the subscription's
    ``noWrapper.writeMetadata``) the metadata headers are required and checked."""
    if not write_metadata:
        return PushMessage(data=bytes(body))
    lowered = {name.lower(): value for name, value in headers.items()}

    def header(key: str) -> str:
        value = lowered.get(_HEADER + key)
        if not value:
            raise InvalidPushError(f"the push has no {_HEADER + key} header (is writeMetadata off?)")
        return value

    subscription = header("subscription-name")
    if not _SUBSCRIPTION.fullmatch(subscription):
        raise InvalidPushError(f"{_HEADER}subscription-name is not projects/PROJECT/subscriptions/NAME")
    attempt = lowered.get(_HEADER + "delivery-attempt")
    attempts = whole_number(attempt, at_least=1)
    if attempt is not None and attempts is None:
        raise InvalidPushError(f"{_HEADER}delivery-attempt is not a positive whole number")
    return PushMessage(
        data=bytes(body),
        message_id=header("message-id"),
        publish_time=_timestamp(header("publish-time"), f"{_HEADER}publish-time"),
        subscription=subscription,
        ordering_key=lowered.get(_HEADER + "ordering-key") or lowered.get("x-goog-ordering-key") or None,
        delivery_attempt=attempts,
    )
