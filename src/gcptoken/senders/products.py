"""The four products ``gcptoken send`` speaks for, by the name the CLI and the emulator use, and the
request each one makes (its own module builds it)."""

from __future__ import annotations

from collections.abc import Mapping

from gcptoken.errors import InvalidArgumentError
from gcptoken.receive.pubsub import ACK_STATUSES
from gcptoken.senders.eventarc import EventOptions, event_request
from gcptoken.senders.request import OutgoingRequest
from gcptoken.senders.scheduler import JobOptions, job_request
from gcptoken.senders.tasks import TaskOptions, task_request
from gcptoken.senders.workflows import step_request

__all__ = ["LABELS", "SUCCESS", "Options", "acknowledges", "label", "outgoing_request"]

# name -> what Google calls it
LABELS = {"tasks": "Cloud Tasks", "scheduler": "Cloud Scheduler", "eventarc": "Eventarc", "workflows": "Workflows"}
Options = TaskOptions | JobOptions | EventOptions
_OPTIONS: dict[str, type | None] = {
    "tasks": TaskOptions,
    "scheduler": JobOptions,
    "eventarc": EventOptions,
    "workflows": None,
}


# What each product counts as a successful attempt, in words (for the CLI) and as a rule below.
# Cloud Tasks: "a successful HTTP response code ([200 - 299])" (google/cloud/tasks/v2/target.proto,
# HttpRequest); Cloud Scheduler: "an HTTP response code in the range [200 - 299]" (scheduler/v1
# target.proto, HttpTarget); Eventarc delivers through a Pub/Sub push subscription, which acks only
# 102, 200, 201, 202, 204 (https://cloud.google.com/pubsub/docs/push); Workflows' http.* raise
# HttpError "if the response status is >= 400" (https://cloud.google.com/workflows/docs/reference/stdlib/http/get).
SUCCESS = {
    "tasks": "2xx",
    "scheduler": "2xx",
    "eventarc": "102, 200, 201, 202 or 204, as Pub/Sub push",
    "workflows": "below 400",
}


def acknowledges(product: str, status: int) -> bool:
    """Whether ``product`` counts an answer with ``status`` as a successful attempt."""
    if product == "eventarc":
        return status in ACK_STATUSES
    if product == "workflows":
        return status < 400
    return 200 <= status < 300


def label(product: str) -> str:
    if product not in LABELS:
        raise InvalidArgumentError(f"unknown product {str(product)[:40]!r}; one of {', '.join(LABELS)}")
    return LABELS[product]


def outgoing_request(
    product: str,
    url: str,
    body: bytes,
    options: Options | None = None,
    *,
    method: str | None = None,
    headers: Mapping[str, str] | None = None,
    audience: str | None = None,
    project: str = "my-project",
) -> OutgoingRequest:
    """The request ``product`` makes to ``url``; ``options`` must be that product's (TaskOptions for
    tasks, JobOptions for scheduler, EventOptions for eventarc, none for workflows)."""
    name = label(product)
    wanted = _OPTIONS[product]
    if options is not None and (wanted is None or not isinstance(options, wanted)):
        expected = wanted.__name__ if wanted is not None else "no options"
        raise InvalidArgumentError(f"{name} takes {expected}, not {type(options).__name__}")
    if product == "tasks":
        tasks = options if isinstance(options, TaskOptions) else None
        return task_request(url, body, tasks, method=method, headers=headers, audience=audience)
    if product == "scheduler":
        job = options if isinstance(options, JobOptions) else None
        return job_request(url, body, job, method=method, headers=headers, audience=audience)
    if product == "eventarc":
        if method is not None and method.upper() != "POST":
            raise InvalidArgumentError("Eventarc always sends POST")
        event = options if isinstance(options, EventOptions) else None
        return event_request(url, body, event, project=project, headers=headers, audience=audience)
    return step_request(url, body, method=method, headers=headers, audience=audience)
