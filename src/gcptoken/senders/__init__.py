"""Google's products that call a user's service with an ID token, emulated one request at a time:
Cloud Tasks (tasks), Cloud Scheduler (scheduler), Eventarc (eventarc) and Workflows (workflows) have
no official emulators, so ``send_as`` (and ``gcptoken send --as PRODUCT``) delivers the request one of
them would make, with its headers and body shape and an ID token the local emulator mints as that
product's service agent would (or refuses to, as Google would: SenderRefusedError, nothing sent).

One module per product builds its request (tasks, scheduler, eventarc, workflows; request holds what
they share); deliver mints the token and sends it; refused is the error for "Google would not deliver".
"""

from gcptoken.senders.deliver import Delivery, Sender, emulator_url, send_as
from gcptoken.senders.eventarc import EventOptions
from gcptoken.senders.products import LABELS, outgoing_request
from gcptoken.senders.refused import SenderRefusedError
from gcptoken.senders.request import OutgoingRequest
from gcptoken.senders.scheduler import JobOptions
from gcptoken.senders.tasks import TaskOptions

__all__ = [
    "LABELS",
    "Delivery",
    "EventOptions",
    "JobOptions",
    "OutgoingRequest",
    "Sender",
    "SenderRefusedError",
    "TaskOptions",
    "emulator_url",
    "outgoing_request",
    "send_as",
]
