"""Whether an address, or a host a request is about to go to, is this machine: one answer for the
local servers' guard, the senders and the Pub/Sub relay."""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["is_loopback_address", "is_loopback_host"]


def is_loopback_address(text: str) -> bool:
    """A literal loopback address (127/8, ::1, an IPv4-mapped 127/8; a zone or brackets allowed)."""
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def is_loopback_host(host: str | None) -> bool:
    """A literal loopback address, or exactly ``localhost`` when every address the system resolves
    it to is one: a name is what the resolver says it is (``foo.localhost``, ``localhost.`` go to
    the resolver, or to DNS, as any other name), so no other name is taken on trust."""
    if not host:
        return False
    if is_loopback_address(host):
        return True
    if host.lower() != "localhost":
        return False
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return bool(found) and all(is_loopback_address(str(info[4][0])) for info in found)
