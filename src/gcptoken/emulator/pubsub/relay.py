"""The relay the Pub/Sub emulator's JVM uses as its HTTP proxy: each push gets the ``Authorization:
Bearer`` ID token Pub/Sub sends for the subscription's ``pushConfig.oidcToken`` (minted by gcptoken's
emulator for that service account and audience: the configured one, else the push endpoint URL), then
goes on to the push endpoint; the endpoint's status goes back to the JVM, which acks or pushes again
about a second later, as Google counts it (the emulator takes 203 for an ack and 202 for a nack).

It is a local server that mints tokens, so it refuses (one log line each, never a token): a peer
other than the JVM it serves (Linux; elsewhere any loopback peer), anything but a proxied ``POST
http://…`` (``https://`` endpoints never come here: the JVM pushes to them itself, with no token), a push
not known for sure to be from a push subscription the Pub/Sub emulator has, to that subscription's
push endpoint (``which``: so it is no open proxy, and never sends one account's token for another's
push), an endpoint with ``user:password@``, and an endpoint off this machine unless ``allow_remote``
(tests and local runs must not reach out). When the service agent may not mint for the account,
Google delivers nothing and retries
(https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions, "Service agent"): the relay
answers the JVM 503 without calling the endpoint, so it retries too."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.types import Receive, Scope, Send

from gcptoken.emulator.pubsub.subscriptions import PushSettings, SubscriptionReader, has_userinfo, shown
from gcptoken.emulator.pubsub.which import Unsure, subscription_of
from gcptoken.loopback import is_loopback_address, is_loopback_host
from gcptoken.untrusted import one_line

__all__ = ["MAX_BODY", "USER_AGENT", "PushRelay"]

MAX_BODY = 16 * 1024 * 1024  # a 10 MB message, base64 in its envelope
# Hop-by-hop headers, and the JVM's proxy header, are not forwarded (RFC 9110, section 7.6.1).
# content-length: httpx sets it for the body it sends.
_HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "proxy-authorization", "te", "trailer", "upgrade"}
_NOT_FORWARDED = _HOP_BY_HOP | {"host", "authorization", "content-length", "transfer-encoding"}
# Google's pushes come as "APIs-Google", its user agent for push notifications
# (https://developers.google.com/search/docs/crawling-indexing/apis-user-agent); the form with ";"
# is what Pub/Sub pushes carry as captured at endpoints. The JVM's own User-Agent ("Java/17…") and
# Accept (HttpURLConnection's default) are not Pub/Sub's: replaced, and dropped.
USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"
_JAVA_ACCEPT = "text/html, image/gif, image/jpeg, */*; q=0.2"
_REPEAT_AFTER = 30.0  # a refused push comes back every second: say the same thing at most this often


class _Refused(Exception):
    def __init__(self, status: int, line: str) -> None:
        self.status, self.line = status, line
        super().__init__(line)


class PushRelay:
    """An ASGI app: the Pub/Sub emulator's HTTP proxy. ``pubsub_url``: the Pub/Sub emulator's REST
    API; ``emulator_url``: gcptoken's emulator, which mints; ``is_pubsub_peer(peer, server)``: whether
    a connection comes from the Pub/Sub emulator's JVM (None: any loopback peer)."""

    def __init__(
        self,
        pubsub_url: str,
        emulator_url: str,
        *,
        allow_remote: bool = False,
        projects: set[str] | None = None,
        is_pubsub_peer: Callable[[tuple[str, int], tuple[str, int]], bool] | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.emulator_url = emulator_url.rstrip("/")
        self.allow_remote, self.is_pubsub_peer = allow_remote, is_pubsub_peer
        # Where a push that names no subscription is looked for; grows with every project seen.
        self.projects = projects if projects is not None else set()
        self.log = log or logging.getLogger("gcptoken.pubsub")
        # trust_env=False: the relay's own calls never go through a proxy from the environment.
        self._client = httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(30.0, connect=5.0))
        self._subscriptions = SubscriptionReader(pubsub_url, self._client)
        self._said: dict[str, float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            status, headers, body = await self._relay(scope, receive)
        except _Refused as refused:
            self._say(refused.line)
            status, headers, body = refused.status, [(b"content-type", b"text/plain")], refused.line.encode()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _say(self, line: str) -> None:
        now = time.monotonic()
        if now - self._said.get(line, -_REPEAT_AFTER) >= _REPEAT_AFTER:
            if len(self._said) > 1000:  # lines name subscriptions: forget the ones not said lately
                self._said = {said: at for said, at in self._said.items() if now - at < _REPEAT_AFTER}
            self._said[line] = now
            self.log.warning("%s", line)

    async def _relay(self, scope: Scope, receive: Receive) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        self._check_peer(scope)
        url = self._target(scope)
        body = await _body(receive)
        sent = [(name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in scope["headers"]]
        try:
            settings = await subscription_of(url, sent, body, self._subscriptions, self.projects)
        except Unsure as unsure:
            raise _Refused(403, str(unsure)) from None
        self.projects.add(settings.name.split("/")[1])  # where to look for the next push that names none
        if has_userinfo(settings.endpoint) or has_userinfo(url):
            # httpx would send it as Basic credentials in Authorization, where the token goes.
            raise _Refused(
                403,
                f"not pushing {settings.name} to {one_line(shown(url), 120)}: a push endpoint with user:password@ "
                "would send those instead of the token",
            )
        if not self.allow_remote and not is_loopback_host(urlsplit(url).hostname):
            raise _Refused(
                403,
                f"not pushing {settings.name} to {one_line(url, 120)}: the endpoint is not on this machine "
                "(gcptoken pubsub-emulator --allow-remote-endpoints sends it there)",
            )
        forwarded = [(k, v) for k, v in sent if k not in _NOT_FORWARDED and not _javas(k, v)]
        if not any(k == "user-agent" for k, _ in forwarded):
            forwarded.append(("user-agent", USER_AGENT))
        if settings.service_account is not None:
            forwarded.append(("authorization", "Bearer " + await self._token(settings)))
        try:
            response = await self._client.post(url, content=body, headers=forwarded)
        except httpx.HTTPError as exc:
            raise _Refused(
                502, f"push of {settings.name} to {one_line(url, 120)} failed: {type(exc).__name__}"
            ) from None
        self.log.info("pushed %s to %s: %s", settings.name, one_line(url, 120), response.status_code)
        kept = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items() if k == "content-type"]
        return _as_google_counts(response.status_code), kept, response.content

    def _check_peer(self, scope: Scope) -> None:
        client, server = scope.get("client"), scope.get("server")
        if not client or not server or not is_loopback_address(client[0]):
            raise _Refused(403, "refused a request from off this machine")
        if self.is_pubsub_peer is not None and not self.is_pubsub_peer(tuple(client), tuple(server)):
            raise _Refused(403, "refused a request from a process other than the Pub/Sub emulator's")

    def _target(self, scope: Scope) -> str:
        """The absolute URL of a proxied ``POST http://…``."""
        raw: bytes = scope.get("raw_path") or b""
        target = raw.decode("latin-1") + (
            "?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""
        )
        if scope["method"] != "POST" or not target.startswith("http://"):
            raise _Refused(400, f"refused {one_line(scope['method'], 10)} {one_line(shown(target), 80)}: not a push")
        return target

    async def _token(self, settings: PushSettings) -> str:
        assert settings.service_account is not None
        body = {"serviceAccount": settings.service_account, "audience": settings.audience}
        try:
            response = await self._client.post(
                f"{self.emulator_url}/emulator/v1/serviceAgents/pubsub:generateIdToken", json=body
            )
        except httpx.HTTPError as exc:
            raise _Refused(
                502, f"gcptoken's emulator at {self.emulator_url} did not answer: {type(exc).__name__}"
            ) from None
        answer: Any = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code in (403, 404):
            reason = answer.get("error", {}).get("message", "") if isinstance(answer, dict) else ""
            # What Pub/Sub does: nothing reaches the endpoint, and the push is retried.
            raise _Refused(503, f"not pushing {settings.name}: {one_line(str(reason), 300)}")
        token = answer.get("token") if isinstance(answer, dict) else None
        if response.status_code != 200 or not isinstance(token, str):
            raise _Refused(502, f"gcptoken's emulator answered {response.status_code} for {settings.name}'s token")
        return token


def _javas(name: str, value: str) -> bool:
    """A header the JVM's HttpURLConnection adds of its own (a message attribute keeps its own)."""
    return (name == "user-agent" and value.startswith("Java/")) or (name == "accept" and value == _JAVA_ACCEPT)


def _as_google_counts(status: int) -> int:
    """The endpoint's status as the JVM should take it for Pub/Sub's ack or nack: Google acks on 102,
    200, 201, 202 and 204 (https://cloud.google.com/pubsub/docs/push, "Receive messages"); the
    emulator on 102, 200, 201, 203 and 204 (its HttpEndpointPusher.ACK_RESPONSE_CODES)."""
    return {202: 200, 203: 500}.get(status, status)


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Refused(400, "the push was cut off")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _Refused(413, "refused a push over 16 MB")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
