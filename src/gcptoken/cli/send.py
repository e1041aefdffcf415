"""``gcptoken send --as PRODUCT``: one request to the user's service as Cloud Tasks, Cloud Scheduler,
Eventarc or Workflows would make it, with an ID token the emulator mints as that product's service
agent; the answer's status on stderr, its body on stdout."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from gcptoken.cli.call import request_body
from gcptoken.cli.send_parser import PRODUCT_OPTIONS
from gcptoken.errors import InvalidArgumentError
from gcptoken.untrusted import one_line

if TYPE_CHECKING:
    from gcptoken.senders import OutgoingRequest
    from gcptoken.senders.products import Options

__all__ = ["EXIT_NOT_ACKNOWLEDGED", "EXIT_NOT_DELIVERED", "run_send"]

EXIT_NOT_ACKNOWLEDGED = 1  # the target answered, and the product would count a failed attempt
EXIT_NOT_DELIVERED = 4  # Google would send nothing: its service agent may not mint the token


# What Google does after an answer it counts as a failure (each product's reference on retries).
_AFTER_FAILURE = {
    "tasks": "Cloud Tasks would retry the task by its queue's retry settings",
    "scheduler": "Cloud Scheduler would retry the job by its retry settings",
    "eventarc": "Pub/Sub would push the event again (Eventarc's subscription retries)",
    "workflows": "the workflow step would raise an HttpError",
}


def _pairs(raw: list[str], separator: str, option: str, form: str) -> dict[str, str]:
    pairs = {}
    for item in raw:
        name, found, value = item.partition(separator)
        if not found or not name.strip():
            raise InvalidArgumentError(f"{option} must be {form}, not {item[:60]!r}")
        pairs[name.strip()] = value.strip()
    return pairs


def _not_for_this_product(args: argparse.Namespace) -> None:
    for product, dests in PRODUCT_OPTIONS.items():
        given = [dest for dest in dests if getattr(args, dest) not in (None, [])]
        if product != args.product and given:
            flag = "--" + given[0].replace("_", "-")
            raise InvalidArgumentError(f"{flag} is for --as {product}, not --as {args.product}")


def _options(args: argparse.Namespace) -> Options | None:
    """The product's options: its defaults, with what the command line gave."""
    from dataclasses import replace

    from gcptoken.senders import EventOptions, JobOptions, TaskOptions

    defaults: dict[str, Options] = {"tasks": TaskOptions(), "scheduler": JobOptions(), "eventarc": EventOptions()}
    if args.product not in defaults:
        return None
    given = {dest: getattr(args, dest) for dest in PRODUCT_OPTIONS[args.product] if getattr(args, dest) is not None}
    if "attribute" in given:
        given["attributes"] = _pairs(given.pop("attribute"), "=", "--attribute", "KEY=VALUE")
    return replace(defaults[args.product], **given)


def _show_request(label: str, request: OutgoingRequest) -> None:
    print(f"gcptoken: {label} sends {request.method} {request.url}", file=sys.stderr)
    for name, value in request.headers.items():
        print(f"gcptoken:   {name}: {value}", file=sys.stderr)
    print(f"gcptoken:   Authorization: Bearer <ID token, aud {request.audience}>", file=sys.stderr)


def run_send(args: argparse.Namespace) -> int:
    from gcptoken.senders import LABELS, SenderRefusedError, send_as
    from gcptoken.senders.products import SUCCESS

    _not_for_this_product(args)
    headers = _pairs(args.header, ":", "--header", "'Name: value'")
    label = LABELS[args.product]
    try:
        delivery = send_as(
            args.product,
            args.url,
            args.service_account,
            request_body(args.data) or b"",
            _options(args),
            method=args.method,
            headers=headers,
            audience=args.audience,
            emulator=args.emulator,
            allow_remote=args.allow_remote,
            timeout=args.timeout,
        )
    except SenderRefusedError as exc:  # bad input (2) and TransportError (3) are main's to say
        print(f"gcptoken: not delivered: {one_line(str(exc), 600)}; the target receives nothing", file=sys.stderr)
        return EXIT_NOT_DELIVERED
    if args.verbose:
        _show_request(label, delivery.request)
    request = delivery.request
    status = f"HTTP {delivery.status} {one_line(delivery.reason, 100)}".rstrip()
    print(f"gcptoken: {label}: {request.method} {request.url}: {status}", file=sys.stderr)
    location = delivery.headers.get("location")
    if 300 <= delivery.status < 400 and location:
        print(f"gcptoken: redirected to {one_line(location, 300)}: not followed here", file=sys.stderr)
    if not delivery.acknowledged:
        success = SUCCESS[args.product]
        print(f"gcptoken: not acknowledged (only {success} is): {_AFTER_FAILURE[args.product]}", file=sys.stderr)
    sys.stdout.buffer.write(delivery.body)
    sys.stdout.flush()
    return 0 if delivery.acknowledged else EXIT_NOT_ACKNOWLEDGED
