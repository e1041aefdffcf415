"""Which of the guard's rules each emulator path gets.

Google's endpoints (token, STS, IAM, certs, sign-in pages) answer any peer, as Google's do, but only
for Host names the emulator serves (no DNS rebinding). The metadata API refuses other origins, as
every metadata server of ours does. The admin API (``/emulator/v1/…``) and the console
(``/emulator/ui``) change the emulator's state and mint keys: loopback peers only (or
``--allow-admin``), our own origin only, state-changing calls as JSON only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import Scope

from gcptoken.servers.asgi_guard import Rules
from gcptoken.servers.guard import METADATA_NAMES, GuardPolicy, Network, Scrutiny

__all__ = ["emulator_rules"]

_ANY_PEER: tuple[Network, ...] = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def emulator_rules(allow_hosts: Sequence[str] = (), allow_admin: Sequence[Network] = ()) -> Rules:
    names = METADATA_NAMES | frozenset(allow_hosts)
    public = GuardPolicy(names=names, allow=_ANY_PEER)
    admin = GuardPolicy(names=names, allow=tuple(allow_admin), allow_hint="--allow-admin CIDR")

    def rules(scope: Scope) -> tuple[GuardPolicy, Scrutiny]:
        path = "/" + str(scope.get("path", "")).lstrip("/").lower()  # as routing could see it, or stricter
        if path.startswith("/emulator/v1"):
            return admin, Scrutiny.SAME_ORIGIN_JSON
        if path.startswith("/emulator"):
            return admin, Scrutiny.SAME_ORIGIN
        if path.startswith("/computemetadata"):
            return public, Scrutiny.SAME_ORIGIN
        return public, Scrutiny.HOST

    return rules
