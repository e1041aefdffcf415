"""What a call from Google's products says beside its token: Cloud Tasks' and Cloud Scheduler's
request headers, read into typed objects next to the verified claims.

These headers authenticate NOTHING: anyone can send ``X-CloudTasks-QueueName: my-queue`` or
``X-CloudScheduler: true``. Only the verified token says who called; the headers are details of a
call already known to come from an allowed service account (queue, retry count, schedule time).

Cloud Tasks, HTTP targets (https://cloud.google.com/tasks/docs/creating-http-target-tasks, "Reading
request headers"): X-CloudTasks-QueueName, -TaskName, -TaskRetryCount, -TaskExecutionCount,
-TaskETA (seconds since the epoch), -TaskPreviousResponse (the previous attempt's HTTP status),
-TaskRetryReason. Cloud Scheduler (google.cloud.scheduler.v1 HttpTarget / AppEngineHttpTarget
``headers``): ``X-CloudScheduler: true``, X-CloudScheduler-JobName, X-CloudScheduler-ScheduleTime
(RFC 3339, for unix-cron jobs).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gcptoken.receive.pubsub import PushMessage, whole_number

__all__ = ["CloudSchedulerHeaders", "CloudTasksHeaders", "GoogleCall", "PushDelivery", "google_call"]


# Seconds since the epoch as Cloud Tasks writes them ("1700000000.123456"): ASCII digits only
# (float() reads other scripts' digits, "1_0", "inf" and " 1 ").
_SECONDS = re.compile(r"\d{1,18}(?:\.\d{1,9})?", re.ASCII)


def _whole(value: str | None) -> int | None:
    return whole_number(value)


def _seconds(value: str | None) -> float | None:
    if value is None or not _SECONDS.fullmatch(value):
        return None
    seconds = float(value)
    return seconds if math.isfinite(seconds) else None


@dataclass(frozen=True)
class CloudTasksHeaders:
    """A Cloud Tasks HTTP target's headers (None where absent or unreadable). Not proof of
    anything: the token is."""

    queue_name: str
    task_name: str | None
    retry_count: int | None
    execution_count: int | None
    eta: float | None  # seconds since the epoch
    previous_response: int | None
    retry_reason: str | None


@dataclass(frozen=True)
class CloudSchedulerHeaders:
    """A Cloud Scheduler job's headers. Not proof of anything: the token is."""

    job_name: str | None
    schedule_time: str | None  # RFC 3339; absent for jobs run by hand or not in unix-cron format


@dataclass(frozen=True)
class GoogleCall:
    """A call whose token was verified: its claims, the service account it came as, and what
    Cloud Tasks or Cloud Scheduler added (None unless their headers are there)."""

    claims: dict[str, Any]
    email: str | None
    tasks: CloudTasksHeaders | None
    scheduler: CloudSchedulerHeaders | None


def google_call(claims: dict[str, Any], headers: Mapping[str, str]) -> GoogleCall:
    """The verified ``claims`` with the products' ``headers`` (any mapping; names in any case)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    tasks = None
    queue = lowered.get("x-cloudtasks-queuename")
    if queue:
        tasks = CloudTasksHeaders(
            queue_name=queue,
            task_name=lowered.get("x-cloudtasks-taskname") or None,
            retry_count=_whole(lowered.get("x-cloudtasks-taskretrycount")),
            execution_count=_whole(lowered.get("x-cloudtasks-taskexecutioncount")),
            eta=_seconds(lowered.get("x-cloudtasks-tasketa")),
            previous_response=_whole(lowered.get("x-cloudtasks-taskpreviousresponse")),
            retry_reason=lowered.get("x-cloudtasks-taskretryreason") or None,
        )
    scheduler = None
    if lowered.get("x-cloudscheduler", "").lower() == "true":
        scheduler = CloudSchedulerHeaders(
            job_name=lowered.get("x-cloudscheduler-jobname") or None,
            schedule_time=lowered.get("x-cloudscheduler-scheduletime") or None,
        )
    email = claims.get("email")
    return GoogleCall(claims, email if isinstance(email, str) else None, tasks, scheduler)


@dataclass(frozen=True)
class PushDelivery:
    """A Pub/Sub push whose token was verified: who pushed (``call``) and the message."""

    call: GoogleCall
    message: PushMessage
