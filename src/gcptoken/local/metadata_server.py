"""``gcptoken metadata-server``: the GCE metadata API backed by a real credential, so apps and
containers in any language get tokens locally exactly as they would on Google Cloud, answered as
the chosen platform's metadata server answers (``InstanceValues.platform``).

Tokens come from gcptoken's cache (one fetch per audience however many clients ask at once, renewed
ahead of expiry). What the credential cannot give is refused as the real server refuses (a 400 or a
503 with a plain reason) and said on stderr. Requests are logged with ``-v`` (path, audience, status,
cache hit), never a token.
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp

from gcptoken.credentials import Credentials
from gcptoken.errors import GcpTokenError, InvalidArgumentError, RefusedError, TokenRequestError
from gcptoken.local.metadata_api import MetadataRefusal, handler, root_handler
from gcptoken.local.metadata_platforms import Platform, platform_named
from gcptoken.local.metadata_tree import InstanceFacts, build_tree
from gcptoken.servers.asgi_guard import RequestGuard, everywhere
from gcptoken.servers.guard import METADATA_NAMES, GuardPolicy, Network, Scrutiny
from gcptoken.servers.request_log import RequestLogger, note
from gcptoken.untrusted import one_line

__all__ = ["CredentialsInstance", "InstanceValues", "metadata_app"]

log = logging.getLogger("gcptoken.metadata_server")


@dataclass
class InstanceValues:
    """What the instance says about itself: flags, else what the credential tells, else defaults."""

    email: str
    project_id: str
    project_number: str
    zone: str = "us-central1-a"
    instance_name: str = field(default_factory=lambda: socket.gethostname().split(".")[0] or "gcptoken-local")
    instance_id: str = field(default_factory=lambda: str(secrets.randbelow(9 * 10**18) + 10**18))
    scopes: tuple[str, ...] = ("https://www.googleapis.com/auth/cloud-platform",)
    attributes: dict[str, str] = field(default_factory=dict)
    project_attributes: dict[str, str] = field(default_factory=dict)
    universe_domain: str = "googleapis.com"
    platform: str = "gce"  # whose metadata server to answer as (local.metadata_platforms)


class CredentialsInstance:
    """A metadata source whose service account is a real credential: ``standard`` answers
    ``format=standard`` ID tokens, ``full`` the ``format=full`` ones (with the email where the
    credential can add it), both access tokens."""

    def __init__(self, standard: Credentials, full: Credentials, values: InstanceValues) -> None:
        self.standard, self.full, self.values = standard, full, values
        self._platform = platform_named(values.platform)
        self._tree = self._build_tree()

    def _build_tree(self) -> dict[str, Any]:
        v = self.values
        facts = InstanceFacts(
            project_id=v.project_id,
            project_number=v.project_number if v.project_number.isdigit() else "0",
            email=v.email,
            zone=v.zone,
            name=v.instance_name,
            instance_id=v.instance_id,
            scopes=v.scopes,
            attributes=dict(v.attributes),
            project_attributes=dict(v.project_attributes),
            universe_domain=v.universe_domain,
        )
        return build_tree(self._platform, facts)

    def platform(self) -> Platform:
        return self._platform

    def tree(self) -> dict[str, Any]:
        return self._tree

    async def identity(self, account: str, audience: str, full: bool, licenses: bool) -> str | MetadataRefusal:
        credentials = self.full if full else self.standard
        note(audience=audience, cache="hit" if credentials.is_cached("id_token", audience) else "miss")
        try:
            return (await credentials.id_token_async(audience)).value
        except (RefusedError, InvalidArgumentError) as exc:  # ?audience=ftp://x: the client's mistake
            return _refused(400, f"this credential cannot give an ID token for {one_line(audience, 200)}: {exc}")
        except GcpTokenError as exc:
            return _refused(503, f"the upstream token request failed: {exc}")

    async def token(self, account: str, scopes: tuple[str, ...] | None) -> dict[str, Any] | MetadataRefusal:
        wanted = scopes or self.values.scopes
        subject = " ".join(sorted(wanted))
        note(scopes=",".join(wanted), cache="hit" if self.standard.is_cached("access_token", subject) else "miss")
        try:
            token = await self.standard.access_token_async(wanted)
        except (RefusedError, InvalidArgumentError) as exc:
            return _refused(400, f"this credential cannot give an access token for these scopes: {exc}")
        except TokenRequestError as exc:
            if exc.error == "invalid_scope":  # Google does not know a scope the client asked for
                return _refused(400, f"Google refused these scopes: {exc}")
            return _refused(503, f"the upstream token request failed: {exc}")
        except GcpTokenError as exc:
            return _refused(503, f"the upstream token request failed: {exc}")
        return {"access_token": token.value, "expires_in": max(int(token.expires_in()), 0), "token_type": "Bearer"}


def _refused(status: int, message: str) -> MetadataRefusal:
    text = one_line(" ".join(message.split()))
    log.warning("refused: %s", text)  # always on the server's stderr, -v or not
    return MetadataRefusal(status, text)


def metadata_app(
    source: CredentialsInstance,
    allow: Sequence[Network] = (),
    allow_hosts: Sequence[str] = (),
) -> ASGIApp:
    """The metadata API on ``source`` behind the request guard: loopback peers and ``allow``;
    loopback, the bound address, ``metadata.google.internal``, ``metadata`` and ``allow_hosts`` as
    Host; no request from another origin (every answer here is or leads to a token)."""
    endpoint = handler(lambda request: source)
    app = Starlette(
        routes=[
            Route("/", root_handler(lambda request: source), methods=["GET"]),
            Route("/computeMetadata/v1/{path:path}", endpoint, methods=["GET"]),
            Route("/computeMetadata/v1", endpoint, methods=["GET"]),
        ]
    )
    policy = GuardPolicy(names=METADATA_NAMES | frozenset(allow_hosts), allow=tuple(allow))
    return RequestGuard(RequestLogger(app, log), everywhere(policy, Scrutiny.SAME_ORIGIN), log)
