"""A token for one origin never reaches another through httpx's (or httpx2's) redirects.

Those clients follow a redirect inside the client, after the auth flow signed the request, copying
every header but ``Authorization`` (and that one too for an http -> https move of the same host):
``X-Serverless-Authorization`` would reach the other origin. The auth flow never sees those hops;
the transport does: httpcore and httpcore2 call a request's ``trace`` extension just before they
write its headers, and a redirect's request keeps the extensions of the one it follows. So the
guard, put there by the auth flow, drops our header from a request to any origin other than the
token's. A transport that calls no ``trace`` (a mock, a custom one) is not covered by it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gcptoken.integrations.refresh import Origin, origin_of

__all__ = ["AsyncOriginGuard", "OriginGuard", "guard_origin"]

Trace = Callable[[str, dict[str, Any]], Any]


def _wire_origin(request: Any) -> Origin:
    """The origin a transport-level request goes to (through a forward proxy: its target's)."""
    url = request.url
    target = bytes(url.target)
    if target.startswith((b"http://", b"https://")):
        return origin_of(target.decode("ascii", "replace"))
    scheme, host = bytes(url.scheme).decode("ascii").lower(), bytes(url.host).decode("ascii", "replace")
    return scheme, host.lower(), url.port or origin_of(f"{scheme}://h")[2]  # the scheme's default port


class OriginGuard:
    """A ``trace`` extension (sync clients) that passes every event on to the one it replaced."""

    def __init__(self, origin: Origin, header: str, previous: Trace | None) -> None:
        self.origin, self.header, self.previous = origin, header.lower().encode("ascii"), previous

    def _strip(self, event: str, info: dict[str, Any]) -> None:
        request: Any = info.get("request")
        if not event.endswith("send_request_headers.started") or request is None:
            return
        if _wire_origin(request) != self.origin:
            request.headers[:] = [(k, v) for k, v in request.headers if k.lower() != self.header]

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        self._strip(event, info)
        if self.previous is not None:
            self.previous(event, info)


class AsyncOriginGuard(OriginGuard):
    """The same, for async clients (whose ``trace`` must be a coroutine function)."""

    async def __call__(self, event: str, info: dict[str, Any]) -> None:  # type: ignore[override]
        self._strip(event, info)
        if self.previous is not None:
            awaited: Awaitable[None] = self.previous(event, info)
            await awaited


def guard_origin(request: Any, header: str, asynchronous: bool) -> bool:
    """Guard ``request`` (an httpx or httpx2 Request) for its own origin. False: it is a redirect's
    hop from another origin (it carries that origin's guard), to be sent without a token of ours."""
    origin = origin_of(str(request.url))
    current = request.extensions.get("trace")
    if isinstance(current, OriginGuard):
        if current.origin == origin:
            return True
        request.headers.pop(header, None)  # copied from the request it follows
        return False
    kind = AsyncOriginGuard if asynchronous else OriginGuard
    request.extensions["trace"] = kind(origin, header, current)
    return True
