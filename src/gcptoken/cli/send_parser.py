"""The ``send`` command's options: what every product's request takes (URL, service account, data,
headers, method, audience), then one group per product for what its headers and body say. argparse
only: the parser is built on every run."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from gcptoken.cli.parser_kit import finite, seconds

__all__ = ["PRODUCT_OPTIONS", "add_send_command"]

# product -> the dests of its own options (the others' are refused with it)
PRODUCT_OPTIONS = {
    "tasks": ("queue", "task_name", "retry_count", "execution_count", "eta", "previous_response", "retry_reason"),
    "scheduler": ("job", "schedule_time"),
    "eventarc": ("event_type", "source", "subject", "topic", "subscription", "attribute", "event_id"),
    "workflows": (),
}


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise argparse.ArgumentTypeError(f"a whole number of 0 or more is needed, not {text[:20]!r}")
    return int(text)


def add_send_command(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    send = command(
        "send",
        "gcptoken.cli.send:run_send",
        "deliver one request as Cloud Tasks, Cloud Scheduler, Eventarc or Workflows would, with an ID "
        "token from the emulator",
    )
    send.add_argument("url", metavar="URL", help="your service's URL (this machine's, unless --allow-remote)")
    send.add_argument(
        "--as",
        dest="product",
        required=True,
        choices=tuple(PRODUCT_OPTIONS),
        help="the product whose request to make",
    )
    send.add_argument(
        "--service-account",
        required=True,
        metavar="EMAIL",
        help="the account the task, job, trigger or workflow names for its OIDC token (an emulator account)",
    )
    send.add_argument(
        "--data", help="the body (Eventarc: the message data or the event's JSON); @FILE reads a file, - stdin"
    )
    send.add_argument(
        "--header",
        "-H",
        action="append",
        default=[],
        help="a header of the task's, job's or step's own, 'Name: value' (repeatable); Eventarc has none, "
        "and those the product sets itself (X-CloudTasks-*, X-CloudScheduler*, User-Agent) are refused",
    )
    send.add_argument("--method", "-X", help="HTTP method (default POST; Eventarc always POSTs)")
    send.add_argument("--audience", help="the OIDC token's audience (default: the product's, see below)")
    send.add_argument(
        "--emulator", metavar="HOST:PORT", help="the emulator that mints the token ($GCPTOKEN_EMULATOR_HOST)"
    )
    send.add_argument("--allow-remote", action="store_true", help="send to a host other than this machine")
    send.add_argument("--timeout", type=seconds, default=30.0, metavar="SECONDS", help="per request")

    tasks = send.add_argument_group("Cloud Tasks (--as tasks)")
    tasks.add_argument("--queue", help="X-CloudTasks-QueueName (default: default)")
    tasks.add_argument("--task-name", metavar="ID", help="X-CloudTasks-TaskName (default: a generated id)")
    tasks.add_argument("--retry-count", type=_count, metavar="N", help="X-CloudTasks-TaskRetryCount (default 0)")
    tasks.add_argument(
        "--execution-count", type=_count, metavar="N", help="X-CloudTasks-TaskExecutionCount (default 0)"
    )
    tasks.add_argument(
        "--eta", type=finite, metavar="EPOCH_SECONDS", help="X-CloudTasks-TaskETA, in seconds since 1970 (default: now)"
    )
    tasks.add_argument("--previous-response", type=_count, metavar="CODE", help="X-CloudTasks-TaskPreviousResponse")
    tasks.add_argument("--retry-reason", metavar="TEXT", help="X-CloudTasks-TaskRetryReason")

    scheduler = send.add_argument_group("Cloud Scheduler (--as scheduler)")
    scheduler.add_argument("--job", metavar="ID", help="X-CloudScheduler-JobName (default: my-job)")
    scheduler.add_argument(
        "--schedule-time",
        type=finite,
        metavar="EPOCH_SECONDS",
        help="X-CloudScheduler-ScheduleTime, given in seconds since 1970, sent in RFC 3339 "
        "(2024-05-01T10:00:00Z) as Cloud Scheduler writes it (default: this minute)",
    )

    eventarc = send.add_argument_group("Eventarc (--as eventarc)")
    eventarc.add_argument(
        "--event-type", metavar="TYPE", help="ce-type (default: google.cloud.pubsub.topic.v1.messagePublished)"
    )
    eventarc.add_argument("--topic", metavar="ID", help="a Pub/Sub event's topic (default: my-topic)")
    eventarc.add_argument("--subscription", metavar="ID", help="a Pub/Sub event's subscription (default: Eventarc's)")
    eventarc.add_argument(
        "--attribute", action="append", metavar="KEY=VALUE", help="a Pub/Sub message attribute (repeatable)"
    )
    eventarc.add_argument(
        "--source",
        metavar="CE_SOURCE",
        help="ce-source of other events, e.g. //storage.googleapis.com/projects/_/buckets/B",
    )
    eventarc.add_argument("--subject", metavar="CE_SUBJECT", help="ce-subject, e.g. objects/NAME")
    eventarc.add_argument("--event-id", metavar="ID", help="ce-id (default: a generated one)")
    send.epilog = SEND_EPILOG


SEND_EPILOG = """\
Each product's request, as Google documents it:
  tasks      POST (or the task's method); User-Agent Google-Cloud-Tasks; X-CloudTasks-* headers;
             no Content-Type unless you set one; token audience: the URL.
  scheduler  POST; User-Agent Google-Cloud-Scheduler; X-CloudScheduler: true, -JobName, -ScheduleTime;
             a body is application/octet-stream unless you set a type; token audience: the URL.
  eventarc   POST of a CloudEvent in binary mode (ce-* headers), a Pub/Sub event's body the push
             envelope (message.data base64); token audience: the service URL (scheme://host).
  workflows  http.post with auth: {type: OIDC}; User-Agent GoogleCloudWorkflows; a body sent as JSON
             unless you set a type; token audience: the URL.
The token is minted by the emulator as the product's service agent would; when Google would deliver
nothing (the account is missing, or the agent may not mint for it), nothing is sent and send exits 4.
Exit status: 0 an answer the product counts as success (tasks, scheduler: 2xx; eventarc, as Pub/Sub
push: 102, 200, 201, 202, 204; workflows: below 400), 1 another answer (Google would retry, or the
step raises), 2 bad input, 3 not reachable, 4 Google would not deliver. Targets off this machine
need --allow-remote: the request carries a token and headers that look like Google's, meant for
your service under test.
"""
