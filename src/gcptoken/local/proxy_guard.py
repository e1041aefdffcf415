"""The proxy behind the request guard: loopback peers and ``--allow``; loopback, the bound address
and ``--allow-host`` as Host; a page of another origin may neither send state-changing requests
nor open WebSockets through it (it would act as the user), nor read answers (its ``Origin`` is
refused on every method). Links and images from other sites still open (safe methods, no Origin)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.types import ASGIApp

from gcptoken.servers.asgi_guard import RequestGuard, everywhere
from gcptoken.servers.guard import GuardPolicy, Network, Scrutiny
from gcptoken.servers.request_log import RequestLogger

__all__ = ["guarded_proxy"]

log = logging.getLogger("gcptoken.proxy")


def guarded_proxy(
    app: ASGIApp, allow: Sequence[Network] = (), hosts: Sequence[str] = (), origins: Sequence[str] = ()
) -> ASGIApp:
    policy = GuardPolicy(names=frozenset(hosts), allow=tuple(allow), origins=frozenset(origins))
    return RequestGuard(RequestLogger(app, log), everywhere(policy, Scrutiny.UNSAFE), log)
