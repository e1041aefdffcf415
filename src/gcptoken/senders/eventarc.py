"""The request Eventarc sends to a Cloud Run service (or an HTTP endpoint) for one event.

From https://cloud.google.com/eventarc/docs/cloudevents: a POST in CloudEvents 1.0 binary content
mode, the context attributes as ``ce-`` headers (ce-id, ce-source, ce-specversion ``1.0``, ce-type,
ce-time in RFC 3339, ce-subject when the event has one), the data as the body, ``application/json;
charset=utf-8``. An event of type ``google.cloud.pubsub.topic.v1.messagePublished`` has ce-source
``//pubsub.googleapis.com/projects/PROJECT/topics/TOPIC`` and, as its body, the Pub/Sub push envelope:
``{"message": {"data": BASE64, "attributes", "messageId", "publishTime", …}, "subscription":
"projects/PROJECT/subscriptions/SUB"}``. Direct events (``google.cloud.storage.object.v1.finalized``
with ce-source ``//storage.googleapis.com/projects/_/buckets/BUCKET`` and ce-subject
``objects/NAME``, say) carry the event's data as JSON.

Eventarc delivers through a Pub/Sub push subscription it manages, so the request is Pub/Sub's:
User-Agent ``APIs-Google`` (https://developers.google.com/search/docs/crawling-indexing/google-special-
case-crawlers, "APIs-Google": push notification messages), the token minted by Pub/Sub's service agent
for the trigger's service account. Its audience here is the Cloud Run service's URL (scheme and host,
the push endpoint without its path): no Google page found says which audience Eventarc puts on the
subscription it creates, so ``audience`` overrides it.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gcptoken.errors import InvalidArgumentError
from gcptoken.senders.request import OutgoingRequest, header_value

__all__ = ["PUBSUB_PUBLISHED", "EventOptions", "event_request"]

LABEL = "Eventarc"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"


@dataclass(frozen=True)
class EventOptions:
    """The event: its type; for a Pub/Sub message, the topic, the subscription (Eventarc's own, by
    default) and the message's attributes; for other types, ``source`` (required) and ``subject``.
    ``event_id`` None is a fresh one (for Pub/Sub, the message ID); ``time`` None is now."""

    event_type: str = PUBSUB_PUBLISHED
    source: str | None = None
    subject: str | None = None
    topic: str = "my-topic"
    subscription: str = "eventarc-us-central1-my-trigger-sub-000"
    attributes: Mapping[str, str] = field(default_factory=dict)
    event_id: str | None = None
    time: float | None = None


def _rfc3339(seconds: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{whole}.{int(seconds % 1 * 1000):03d}Z"


def _name(value: str, what: str) -> str:
    # Topic and subscription IDs: letters, digits and - _ . ~ + %, 3 to 255 characters.
    if not 3 <= len(value) <= 255 or not all(c.isascii() and (c.isalnum() or c in "-_.~+%") for c in value):
        raise InvalidArgumentError(f"the {what} must be a Pub/Sub ID (3-255 letters, digits, - _ . ~ + %)")
    return value


def _pubsub_envelope(body: bytes, options: EventOptions, project: str, event_id: str, moment: str) -> bytes:
    message: dict[str, object] = {}
    if options.attributes:
        message["attributes"] = {
            header_value(key, "an attribute name"): header_value(value, f"the attribute {key}")
            for key, value in options.attributes.items()
        }
    message["data"] = base64.b64encode(body).decode("ascii")
    # Pub/Sub push writes both spellings of these two fields.
    message.update({"messageId": event_id, "message_id": event_id, "publishTime": moment, "publish_time": moment})
    subscription = f"projects/{project}/subscriptions/{_name(options.subscription, 'subscription')}"
    return json.dumps({"message": message, "subscription": subscription}).encode("utf-8")


def _event_data(body: bytes, event_type: str) -> bytes:
    try:
        json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        raise InvalidArgumentError(f"the data of a {event_type[:80]} event must be its JSON") from None
    return body


def event_request(
    url: str,
    body: bytes = b"",
    options: EventOptions | None = None,
    *,
    project: str,
    headers: Mapping[str, str] | None = None,
    audience: str | None = None,
) -> OutgoingRequest:
    """``project``: the trigger's project (the emulator's, from the CLI)."""
    options = options or EventOptions()
    event_type = header_value(options.event_type, "the event type")
    event_id = options.event_id or str(secrets.randbelow(9 * 10**15) + 10**15)  # like Pub/Sub's IDs
    moment = _rfc3339(time.time() if options.time is None else options.time)
    attributes = {"ce-id": header_value(event_id, "the event ID"), "ce-specversion": "1.0", "ce-type": event_type}
    if event_type == PUBSUB_PUBLISHED:
        if options.source is not None:
            raise InvalidArgumentError("a Pub/Sub event's source is its topic: give the topic, not a source")
        attributes["ce-source"] = f"//pubsub.googleapis.com/projects/{project}/topics/{_name(options.topic, 'topic')}"
        body = _pubsub_envelope(body, options, project, event_id, moment)
    else:
        if not options.source:
            raise InvalidArgumentError(
                f"a {event_type[:80]} event needs its source, e.g. //storage.googleapis.com/projects/_/buckets/BUCKET"
            )
        attributes["ce-source"] = header_value(options.source, "the source")
        body = _event_data(body, event_type)
    attributes["ce-time"] = moment
    if options.subject is not None:
        attributes["ce-subject"] = header_value(options.subject, "the subject")
    if headers:
        # A trigger has no headers of its own: its destination is a Cloud Run service, a path and
        # a region (google.cloud.eventarc.v1.CloudRun), or an HTTP endpoint's URI; what the event
        # says is its attributes.
        name = next(iter(headers))
        raise InvalidArgumentError(
            f"the header {str(name)[:60]}: Eventarc sends no headers of a trigger's own; the event is set by "
            "--event-type, --source, --subject, --topic, --attribute (EventOptions)"
        )
    sent = {**attributes, "Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
    parts = urlsplit(url)
    service = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"  # the audience: the service's URL, not the path
    return OutgoingRequest("eventarc", "POST", url, service if audience is None else audience, sent, body)
