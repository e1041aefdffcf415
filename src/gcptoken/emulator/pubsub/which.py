"""Which subscription a push is for, so that it gets that subscription's token and never another's.

The JVM's push request says it in two forms only, both written by the JVM itself:

- ``pushConfig.noWrapper.writeMetadata``: the ``x-goog-pubsub-subscription-name`` header (the
  message's attributes become headers too, so it must appear once, and name a subscription that
  pushes to this very URL with ``writeMetadata``);
- the envelope of a wrapping subscription: ``{"subscription": …, "message": {…}}``.

A ``noWrapper`` push without ``writeMetadata`` names nothing, and its body is the publisher's data,
which may look like an envelope. So a body is evidence only for a subscription that wraps and pushes
to this URL, and then only when no subscription that names nothing pushes there with another token
(that push could be its data, posing). Every other push is found by its URL: the subscriptions that
name nothing and push there, in the projects known (``--project``, ``PUBSUB_PROJECT_ID``, those
clients used through the front, those pushes named). When those send different tokens, or none is
found, the push is refused with a line saying why: never a guess, never another account's token."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from gcptoken.emulator.pubsub.subscriptions import SUBSCRIPTION, PushSettings, SubscriptionReader, comparable, shown
from gcptoken.untrusted import one_line

__all__ = ["NAME_HEADER", "Unsure", "subscription_of"]

NAME_HEADER = "x-goog-pubsub-subscription-name"


class Unsure(Exception):
    """No subscription can be named with certainty; ``str()`` is the line to log."""


def _envelope_name(body: bytes) -> str | None:
    """The subscription an envelope-shaped body names (it may be a raw push's data)."""
    if not body.startswith(b"{"):
        return None
    try:
        envelope: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("message"), dict):
        return None
    name = envelope.get("subscription")
    return name if isinstance(name, str) and SUBSCRIPTION.fullmatch(name) else None


async def subscription_of(
    url: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    reader: SubscriptionReader,
    projects: Collection[str],
) -> PushSettings:
    """The subscription whose push this is; :class:`Unsure` when it cannot be told for sure.
    ``headers``: lower-case names, as sent (repeats kept)."""
    target = comparable(url)
    named = [value for name, value in headers if name == NAME_HEADER]
    if len(named) > 1:
        raise Unsure(f"refused a push to {one_line(shown(url), 120)}: it names {len(named)} subscriptions")
    if named:
        settings = await reader.settings(named[0])
        if settings is None or not settings.metadata or comparable(settings.endpoint) != target:
            raise Unsure(
                f"refused a push to {one_line(shown(url), 120)} naming {one_line(named[0], 120)}: "
                "no subscription with noWrapper.writeMetadata of that name pushes there"
            )
        return settings
    candidates: list[PushSettings] = []
    for project in sorted(list(projects)):  # a copy: the front adds projects from another thread
        found = await reader.pushing_to(project, url)
        candidates.extend(settings for settings in found if not settings.names_itself)
    envelope = _envelope_name(body)
    if envelope is not None:
        wrapping = await reader.settings(envelope)
        # Anything else that looks like an envelope is a raw push's data: found by URL below.
        if wrapping is not None and not wrapping.unwrapped and comparable(wrapping.endpoint) == target:
            candidates.insert(0, wrapping)
    if len({(found.service_account, found.audience) for found in candidates}) > 1:
        names = ", ".join(sorted({found.name for found in candidates}))
        raise Unsure(
            f"refused a push to {one_line(shown(url), 120)}: it may be from any of {one_line(names, 300)}, which "
            "send different tokens (a noWrapper subscription without writeMetadata does not say it is the "
            "sender): give them different push endpoints, or set writeMetadata"
        )
    if not candidates:
        where = ", ".join(sorted(list(projects))) or "none yet"
        raise Unsure(
            f"refused a push to {one_line(shown(url), 120)}: no push subscription that could have sent it pushes "
            f"there (projects looked in: {one_line(where, 200)}; a noWrapper push without writeMetadata names "
            "none: gcptoken pubsub-emulator --project PROJECT adds one)"
        )
    return candidates[0]
