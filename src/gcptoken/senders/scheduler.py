"""The request Cloud Scheduler sends to an HTTP target job's URI.

From Google's references (google/cloud/scheduler/v1/target.proto, ``HttpTarget``, in
googleapis/googleapis): the method is the job's ``httpMethod`` (POST when unspecified); User-Agent is
set to ``Google-Cloud-Scheduler``; ``X-CloudScheduler: true``; ``X-CloudScheduler-JobName`` holds the
job's name; ``X-CloudScheduler-ScheduleTime``, for jobs with a unix-cron schedule, the schedule time in
RFC 3339. A job with a body and no Content-Type of its own is sent with ``application/octet-stream``
(https://cloud.google.com/scheduler/docs/reference/rest/v1/projects.locations.jobs#HttpTarget,
``headers``). The OIDC token's audience is the job's ``oidcToken.audience``, else its URI (``OidcToken.
audience``: "If not specified, the URI specified in target will be used").
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from gcptoken.errors import InvalidArgumentError
from gcptoken.senders.request import OutgoingRequest, checked_method, header, merged, user_headers

__all__ = ["JobOptions", "job_request"]

LABEL = "Cloud Scheduler"


@dataclass(frozen=True)
class JobOptions:
    """``job``: the job's ID; ``schedule_time``: seconds since 1970 (None: this minute, as a cron
    schedule fires on the minute)."""

    job: str = "my-job"
    schedule_time: float | None = None


# The headers Cloud Scheduler sets itself (HttpTarget.headers, google/cloud/scheduler/v1/target.proto:
# "Some HTTP request headers will be ignored or replaced": User-Agent "will be set to
# Google-Cloud-Scheduler", X-CloudScheduler "will be set to true", X-CloudScheduler-JobName,
# X-CloudScheduler-ScheduleTime), and what sets them here.
OWNED = {
    "x-cloudscheduler": "it is always true",
    "x-cloudscheduler-jobname": "use --job (JobOptions.job)",
    "x-cloudscheduler-scheduletime": "use --schedule-time (JobOptions.schedule_time)",
    "x-cloudscheduler-*": "X-CloudScheduler-* are its own",
    "user-agent": "it replaces a job's User-Agent with Google-Cloud-Scheduler",
}


def _schedule_time(seconds: float | None) -> str:
    moment = time.time() // 60 * 60 if seconds is None else seconds
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def job_request(
    url: str,
    body: bytes = b"",
    options: JobOptions | None = None,
    *,
    method: str | None = None,
    headers: Mapping[str, str] | None = None,
    audience: str | None = None,
) -> OutgoingRequest:
    options = options or JobOptions()
    job = options.job
    # Job IDs: letters, digits, hyphens and underscores, at most 500.
    if not job or len(job) > 500 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in job):
        raise InvalidArgumentError(f"the job must be letters, digits, - or _ (its ID), not {job[:60]!r}")
    chosen = checked_method(method, "POST", LABEL, body=body)
    own = user_headers(headers, LABEL, OWNED)
    sent = {
        "User-Agent": "Google-Cloud-Scheduler",
        "X-CloudScheduler": "true",
        "X-CloudScheduler-JobName": job,
        "X-CloudScheduler-ScheduleTime": _schedule_time(options.schedule_time),
    }
    if body and header(own, "Content-Type") is None:
        sent["Content-Type"] = "application/octet-stream"
    return OutgoingRequest("scheduler", chosen, url, url if audience is None else audience, merged(own, sent), body)
