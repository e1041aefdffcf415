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

__all__ = ["Target", "audience_from_service_url", "dial_target", "parse_target"]

# gRPC's default port when a target names none (https://github.com/grpc/grpc/blob/master/doc/naming.md).
DEFAULT_PORT = 443
# A DNS name (labels of letters, digits and inner hyphens; a trailing dot, the root, dropped), an
# IPv4 address (that shape too) or a bracketed IPv6 one; then an optional port.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_PORT = re.compile(rf"^(?P<host>\[[0-9A-Fa-f:.]+\]|{_LABEL}(?:\.{_LABEL})*)\.?(?::(?P<port>[0-9]{{1,5}}))?$")
# Resolver prefixes before a single host[:port] (naming.md); ``dns://DNS-SERVER/`` names a server.
_ROOT_DOT = re.compile(r"\.(?=(?::[0-9]+)?$)")  # the trailing dot of a host, before any port
_PREFIX = re.compile(r"^(?:https://|dns://[^/]*/|dns:|ipv4:|ipv6:)", re.IGNORECASE)


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
    pasted from the console; the port defaults to 443. Anything else (``unix:``, ``xds:``, a list of
    addresses) is refused: no audience can be read from it (the helpers take it with ``audience=``)."""
    text = value.strip() if isinstance(value, str) else ""
    text = _PREFIX.sub("", text, count=1).rstrip("/")
    match = _HOST_PORT.match(text)
    port = int(match.group("port")) if match and match.group("port") else DEFAULT_PORT
    if match is None or not 0 < port < 65536:
        raise InvalidArgumentError(
            f"{what} must be HOST, HOST:PORT or https://HOST[:PORT] to take the audience from, not "
            f"{str(value)[:80]!r}; for any other gRPC target, pass audience="
        )
    return Target(match.group("host").lower(), port)


def dial_target(value: str, audience: str | None, scheme: str, what: str = "target") -> tuple[str, str]:
    """What a helper dials, and the audience: ``audience``, else ``scheme://HOST[:PORT]`` read from
    ``value``. With ``audience=`` any gRPC target (``unix:``, ``xds:///``, ``ipv4:a,b``) goes to grpc
    as given, unless parse_target reads it (a pasted ``https://`` URL becomes ``HOST:443``)."""
    try:
        where = parse_target(value, what)
    except InvalidArgumentError:
        if audience is None or not isinstance(value, str) or not value.strip():
            raise
        return value.strip(), audience
    return where.target, audience or where.audience(scheme)


def audience_from_service_url(service_url: str) -> str:
    """The audience for a call whose credentials were given ``service_url`` (see the module's note):
    ``scheme://host[:port]`` with ``http`` for the empty scheme of local credentials, a trailing
    dot of the host dropped."""
    scheme, separator, rest = service_url.partition("://")
    if not separator:
        raise InvalidArgumentError(f"gRPC gave no service URL to take an audience from ({service_url[:80]!r})")
    authority = _ROOT_DOT.sub("", rest.split("/", 1)[0])
    return checks.audience(audience_for(f"{scheme or 'http'}://{authority}"))
