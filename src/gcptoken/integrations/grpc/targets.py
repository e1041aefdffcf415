"""Where a gRPC channel goes, and the ID token audience that goes with it.

gRPC's own rule for the URL a call's credentials see (``AuthMetadataContext.service_url``) is
``<scheme>://<authority>/<package.Service>``: the scheme is ``https`` over TLS and empty over local
credentials, and over TLS a ``:443`` is dropped (grpc/grpc, src/core/credentials/call/
call_creds_util.cc, MakeServiceUrlAndMethod). The authority is the target without its resolver
prefix (``dns:///svc:443`` → ``svc:443``). The audience is that URL's ``scheme://host[:port]``, as
for HTTP (gcptoken.integrations.audience): ``https://HOST`` for ``HOST:443``, a non-default port
kept (Cloud Run accepts its URL without one: https://cloud.google.com/run/docs/authenticating/service-to-service).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from gcptoken import checks
from gcptoken.errors import InvalidArgumentError
from gcptoken.integrations.audience import audience_for

__all__ = ["Target", "audience_from_service_url", "parse_target"]

# gRPC's default port when a target names none (https://github.com/grpc/grpc/blob/master/doc/naming.md).
DEFAULT_PORT = 443
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>[0-9]{1,5}))?$")


class Target(NamedTuple):
    """A channel target split into what grpc dials (``target``) and what it says it calls (``authority``)."""

    host: str  # IPv6 in brackets
    port: int

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def audience(self, scheme: str) -> str:
        return audience_for(f"{scheme}://{self.host}:{self.port}")


def parse_target(value: str, what: str = "target") -> Target:
    """``host``, ``host:port``, ``[v6]:port``, ``dns:///host:port`` or an ``https://host[:port]`` URL
    pasted from the console; the port defaults to 443. Anything else (``unix:``, a path) is refused:
    no audience can be read from it, so pass ``audience=``."""
    text = value.strip() if isinstance(value, str) else ""
    for prefix in ("https://", "dns:///", "dns:", "ipv4:", "ipv6:"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
            break
    text = text.rstrip("/")
    match = _HOST_PORT.match(text)
    port = int(match.group("port")) if match and match.group("port") else DEFAULT_PORT
    if match is None or not 0 < port < 65536:
        raise InvalidArgumentError(f"{what} must be HOST, HOST:PORT or https://HOST[:PORT], not {str(value)[:80]!r}")
    return Target(match.group("host").lower(), port)


def audience_from_service_url(service_url: str) -> str:
    """The audience for a call whose credentials were given ``service_url`` (see the module's note):
    ``scheme://host[:port]`` with ``http`` for the empty scheme of local credentials."""
    scheme, separator, rest = service_url.partition("://")
    if not separator:
        raise InvalidArgumentError(f"gRPC gave no service URL to take an audience from ({service_url[:80]!r})")
    authority = rest.split("/", 1)[0]
    return checks.audience(audience_for(f"{scheme or 'http'}://{authority}"))
