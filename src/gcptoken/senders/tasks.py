"""The request Cloud Tasks sends to an HTTP target task's URL.

From Google's references: the method is the task's ``httpMethod`` (POST by default); Cloud Tasks sets
User-Agent ``Google-Cloud-Tasks`` and computes Host and Content-Length, and does not set a
Content-Type (the task's own headers may) (google/cloud/tasks/v2/target.proto, ``HttpRequest``, in
googleapis/googleapis). Every request carries X-CloudTasks-QueueName (the queue's short name),
-TaskName (the task's short name, or a system-generated id), -TaskRetryCount, -TaskExecutionCount and
-TaskETA (the schedule time in seconds since 1970); a retry may add -TaskPreviousResponse (the last
HTTP code) and -TaskRetryReason (https://cloud.google.com/tasks/docs/creating-http-target-tasks,
"Provide your own HTTP target task handlers"). The OIDC token's audience is the task's ``oidcToken.
audience``, else the task's URL (``OidcToken.audience``: "If not specified, the URI specified in
target will be used").
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from gcptoken.errors import InvalidArgumentError
from gcptoken.senders.request import OutgoingRequest, checked_method, header_value, merged, user_headers

__all__ = ["TaskOptions", "task_request"]

LABEL = "Cloud Tasks"


@dataclass(frozen=True)
class TaskOptions:
    """What the headers say about the task; ``task_name`` None is a system-generated id, ``eta``
    None is now."""

    queue: str = "default"
    task_name: str | None = None
    retry_count: int = 0
    execution_count: int = 0
    eta: float | None = None
    previous_response: int | None = None
    retry_reason: str | None = None


# The headers Cloud Tasks sets itself, and what sets them here. Its HttpRequest.headers reference
# (google/cloud/tasks/v2/target.proto): "Some HTTP request headers will be ignored or replaced":
# X-CloudTasks-* ("service headers"), and User-Agent "will be set to Google-Cloud-Tasks". A value of
# the task's own would never arrive, so it is refused rather than quietly replaced.
OWNED = {
    "x-cloudtasks-queuename": "use --queue (TaskOptions.queue)",
    "x-cloudtasks-taskname": "use --task-name (TaskOptions.task_name)",
    "x-cloudtasks-taskretrycount": "use --retry-count (TaskOptions.retry_count)",
    "x-cloudtasks-taskexecutioncount": "use --execution-count (TaskOptions.execution_count)",
    "x-cloudtasks-tasketa": "use --eta (TaskOptions.eta)",
    "x-cloudtasks-taskpreviousresponse": "use --previous-response (TaskOptions.previous_response)",
    "x-cloudtasks-taskretryreason": "use --retry-reason (TaskOptions.retry_reason)",
    "x-cloudtasks-*": "X-CloudTasks-* are its service headers",
    "user-agent": "it replaces a task's User-Agent with Google-Cloud-Tasks",
}


def _short_name(value: str, what: str) -> str:
    # Queue and task IDs: letters, digits, hyphens and underscores, at most 100 (queues) / 500 (tasks).
    if not value or len(value) > 500 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in value):
        raise InvalidArgumentError(f"the {what} must be letters, digits, - or _ (its short ID), not {value[:60]!r}")
    return value


def _counts(options: TaskOptions) -> None:
    if options.retry_count < 0 or options.execution_count < 0:
        raise InvalidArgumentError("the retry and execution counts must not be negative")
    if options.execution_count > options.retry_count:
        # Executions count the attempts that got an answer, so they are never more than the attempts.
        raise InvalidArgumentError("the execution count cannot exceed the retry count")
    if options.previous_response is not None and not 100 <= options.previous_response <= 599:
        raise InvalidArgumentError("the previous response must be an HTTP status code (100-599)")


def task_request(
    url: str,
    body: bytes = b"",
    options: TaskOptions | None = None,
    *,
    method: str | None = None,
    headers: Mapping[str, str] | None = None,
    audience: str | None = None,
) -> OutgoingRequest:
    options = options or TaskOptions()
    _counts(options)
    chosen = checked_method(method, "POST", LABEL, body=body)
    own = user_headers(headers, LABEL, OWNED)
    task_id = options.task_name if options.task_name is not None else str(secrets.randbelow(10**19) + 10**19)
    eta = time.time() if options.eta is None else options.eta
    sent = {
        "User-Agent": "Google-Cloud-Tasks",
        "X-CloudTasks-QueueName": _short_name(options.queue, "queue"),
        "X-CloudTasks-TaskName": _short_name(task_id, "task name"),
        "X-CloudTasks-TaskRetryCount": str(options.retry_count),
        "X-CloudTasks-TaskExecutionCount": str(options.execution_count),
        "X-CloudTasks-TaskETA": f"{eta:.6f}",
    }
    if options.previous_response is not None:
        sent["X-CloudTasks-TaskPreviousResponse"] = str(options.previous_response)
    if options.retry_reason is not None:
        sent["X-CloudTasks-TaskRetryReason"] = header_value(options.retry_reason, "the retry reason")
    return OutgoingRequest("tasks", chosen, url, url if audience is None else audience, merged(own, sent), body)
