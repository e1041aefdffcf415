"""The subscription a push is for, read from the Pub/Sub emulator's own REST API
(``GET /v1/projects/P/subscriptions/S``, the API ``PUBSUB_EMULATOR_HOST`` clients use) and kept for
a moment: one publish fans out to several pushes, and a failing push is retried every second."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["PROJECT_ID", "PushSettings", "SubscriptionReader", "subscription_named"]

CACHE_SECONDS = 2.0
# projects/{project}/subscriptions/{subscription}: the names Pub/Sub accepts
# (https://cloud.google.com/pubsub/docs/pubsub-basics#resource_names).
PROJECT_ID = re.compile(r"[a-z][-a-z0-9.:]{2,62}")
_NAME = re.compile(rf"projects/{PROJECT_ID.pattern}/subscriptions/[A-Za-z][-A-Za-z0-9._~+%]{{2,254}}")
_PAGES = 20  # of 1000 subscriptions: far more than a local project holds


@dataclass(frozen=True)
class PushSettings:
    """What a push subscription says about its pushes."""

    name: str
    endpoint: str
    unwrapped: bool  # pushConfig.noWrapper: the raw payload is the body
    service_account: str | None  # pushConfig.oidcToken.serviceAccountEmail; None: no token is sent
    audience: str  # pushConfig.oidcToken.audience, else the push endpoint URL


def subscription_named(headers: dict[str, str], body: bytes) -> str | None:
    """The subscription a push names: the envelope's ``subscription``, or the header that
    ``pushConfig.noWrapper.writeMetadata`` adds (seen in the Pub/Sub emulator's pushes)."""
    name = headers.get("x-goog-pubsub-subscription-name")
    if name is None:
        try:
            envelope: Any = json.loads(body)
        except ValueError:
            return None
        name = envelope.get("subscription") if isinstance(envelope, dict) else None
    return name if isinstance(name, str) and _NAME.fullmatch(name) else None


def _settings(name: str, subscription: dict[str, Any]) -> PushSettings | None:
    push = subscription.get("pushConfig")
    endpoint = push.get("pushEndpoint") if isinstance(push, dict) else None
    if not isinstance(push, dict) or not isinstance(endpoint, str) or not endpoint:
        return None  # a pull subscription pushes nothing
    oidc = push.get("oidcToken")
    email = oidc.get("serviceAccountEmail") if isinstance(oidc, dict) else None
    audience = oidc.get("audience") if isinstance(oidc, dict) else None
    # "If not specified, the Push endpoint URL will be used." (PushConfig.OidcToken.audience,
    # https://cloud.google.com/pubsub/docs/reference/rest/v1/projects.subscriptions#oidctoken)
    return PushSettings(
        name,
        endpoint,
        isinstance(push.get("noWrapper"), dict),
        email if isinstance(email, str) and email else None,
        audience if isinstance(audience, str) and audience else endpoint,
    )


class SubscriptionReader:
    """Push settings by subscription name, from the Pub/Sub emulator at ``pubsub_url``."""

    def __init__(self, pubsub_url: str, client: httpx.AsyncClient) -> None:
        self.pubsub_url, self._client = pubsub_url.rstrip("/"), client
        self._cache: dict[str, tuple[float, PushSettings | None]] = {}
        self._listed: dict[str, tuple[float, list[PushSettings]]] = {}

    async def settings(self, name: str) -> PushSettings | None:
        """None when there is no such push subscription."""
        now = time.monotonic()
        cached = self._cache.get(name)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        response = await self._client.get(f"{self.pubsub_url}/v1/{name}")
        found = response.json() if response.status_code == 200 else None
        settings = _settings(name, found) if isinstance(found, dict) else None
        self._cache = {key: value for key, value in self._cache.items() if now - value[0] < CACHE_SECONDS}
        self._cache[name] = (now, settings)
        return settings

    async def pushing_to(self, project: str, endpoint: str) -> list[PushSettings]:
        """``project``'s push subscriptions without the envelope whose push endpoint is ``endpoint``:
        a push with ``noWrapper`` and no ``writeMetadata`` names no subscription."""
        now = time.monotonic()
        cached = self._listed.get(project)
        if cached is None or now - cached[0] >= CACHE_SECONDS:
            found: list[PushSettings] = []
            page = ""
            for _ in range(_PAGES):
                response = await self._client.get(
                    f"{self.pubsub_url}/v1/projects/{project}/subscriptions",
                    params={"pageSize": "1000", **({"pageToken": page} if page else {})},
                )
                listing = response.json() if response.status_code == 200 else {}
                for item in listing.get("subscriptions", []) if isinstance(listing, dict) else []:
                    settings = _settings(str(item.get("name", "")), item) if isinstance(item, dict) else None
                    if settings is not None:
                        found.append(settings)
                page = listing.get("nextPageToken", "") if isinstance(listing, dict) else ""
                if not page:
                    break
            cached = self._listed[project] = (now, found)
        return [settings for settings in cached[1] if settings.unwrapped and settings.endpoint == endpoint]
