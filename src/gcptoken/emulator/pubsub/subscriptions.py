"""A push subscription's settings, read from the Pub/Sub emulator's own REST API
(``GET /v1/projects/P/subscriptions/S``, the API ``PUBSUB_EMULATOR_HOST`` clients use) for every
push, never kept: after ``modifyPushConfig`` the very next push uses the new settings.

Push endpoints are compared as the JVM sends them: it drops a ``#fragment`` and a bare trailing
``?`` from the request line (seen in the emulator's pushes), so both sides are put in that form."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

__all__ = ["PROJECT_ID", "PushSettings", "SubscriptionReader", "comparable", "has_userinfo", "shown"]

# The Pub/Sub emulator takes far more than Google's project IDs (my_project, My-Project, 1abc, ab:
# seen): anything one path segment can hold. Pushes to a project it takes must work here too.
PROJECT_ID = re.compile(r"[^/\s?#]{1,255}")
SUBSCRIPTION = re.compile(rf"projects/{PROJECT_ID.pattern}/subscriptions/[^/\s?#]{{1,255}}")
_PAGES = 20  # of 1000 subscriptions: far more than a local project holds


@dataclass(frozen=True)
class PushSettings:
    """What a push subscription says about its pushes."""

    name: str
    endpoint: str
    unwrapped: bool  # pushConfig.noWrapper: the raw payload is the body
    metadata: bool  # pushConfig.noWrapper.writeMetadata: its name in x-goog-pubsub-subscription-name
    service_account: str | None  # pushConfig.oidcToken.serviceAccountEmail; None: no token is sent
    audience: str  # pushConfig.oidcToken.audience, else the push endpoint URL

    @property
    def names_itself(self) -> bool:
        """Whether its pushes say which subscription they are (an envelope, or the header)."""
        return not self.unwrapped or self.metadata


def comparable(url: str) -> str:
    """``url`` as the JVM's request line has it: no fragment, no bare ``?``; scheme and host in
    lower case (the JVM's Host header is)."""
    parts = urlsplit(url.split("#", 1)[0])
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, parts.query, ""))


def has_userinfo(url: str) -> bool:
    return "@" in urlsplit(url).netloc


def shown(url: str) -> str:
    """``url`` fit for a log line: any ``user:password@`` replaced."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, "…@" + parts.netloc.rsplit("@", 1)[1], parts.path, parts.query, ""))


def _settings(name: str, subscription: dict[str, Any]) -> PushSettings | None:
    push = subscription.get("pushConfig")
    endpoint = push.get("pushEndpoint") if isinstance(push, dict) else None
    if not isinstance(push, dict) or not isinstance(endpoint, str) or not endpoint:
        return None  # a pull subscription pushes nothing
    oidc = push.get("oidcToken")
    email = oidc.get("serviceAccountEmail") if isinstance(oidc, dict) else None
    audience = oidc.get("audience") if isinstance(oidc, dict) else None
    wrapper = push.get("noWrapper")
    # "If not specified, the Push endpoint URL will be used." (PushConfig.OidcToken.audience,
    # https://cloud.google.com/pubsub/docs/reference/rest/v1/projects.subscriptions#oidctoken)
    return PushSettings(
        name,
        endpoint,
        isinstance(wrapper, dict),
        isinstance(wrapper, dict) and wrapper.get("writeMetadata") is True,
        email if isinstance(email, str) and email else None,
        audience if isinstance(audience, str) and audience else endpoint,
    )


class SubscriptionReader:
    """Push settings from the Pub/Sub emulator at ``pubsub_url`` (its private port)."""

    def __init__(self, pubsub_url: str, client: httpx.AsyncClient) -> None:
        self.pubsub_url, self._client = pubsub_url.rstrip("/"), client

    async def settings(self, name: str) -> PushSettings | None:
        """None when there is no such push subscription."""
        if not SUBSCRIPTION.fullmatch(name):
            return None
        response = await self._client.get(f"{self.pubsub_url}/v1/{quote(name, safe='/:~@!$&()*+,;=')}")
        found = response.json() if response.status_code == 200 else None
        return _settings(name, found) if isinstance(found, dict) else None

    async def pushing_to(self, project: str, endpoint: str) -> list[PushSettings]:
        """``project``'s push subscriptions whose push endpoint is ``endpoint`` (as :func:`comparable`)."""
        wanted = comparable(endpoint)
        found: list[PushSettings] = []
        page = ""
        for _ in range(_PAGES):
            response = await self._client.get(
                f"{self.pubsub_url}/v1/projects/{quote(project, safe=':~@!$&()*+,;=')}/subscriptions",
                params={"pageSize": "1000", **({"pageToken": page} if page else {})},
            )
            listing = response.json() if response.status_code == 200 else {}
            for item in listing.get("subscriptions", []) if isinstance(listing, dict) else []:
                settings = _settings(str(item.get("name", "")), item) if isinstance(item, dict) else None
                if settings is not None and comparable(settings.endpoint) == wanted:
                    found.append(settings)
            page = listing.get("nextPageToken", "") if isinstance(listing, dict) else ""
            if not page:
                break
        return found
