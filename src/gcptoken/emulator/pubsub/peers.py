"""Which process holds the other end of a loopback TCP connection (Linux, through /proc): the relay
adds tokens only to pushes from the Pub/Sub emulator's JVM it started, not to requests any other
local process sends it. Elsewhere (no /proc) it cannot tell, and says so."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path

__all__ = ["can_tell_processes", "connection_of_process"]

_TABLES = {socket.AF_INET: Path("/proc/net/tcp"), socket.AF_INET6: Path("/proc/net/tcp6")}


def can_tell_processes() -> bool:
    return _TABLES[socket.AF_INET].is_file()


def _proc_address(host: str, port: int) -> str:
    """``host:port`` as /proc/net/tcp writes it: the address's 32-bit words in host byte order."""
    address = ipaddress.ip_address(host)
    packed = address.packed
    words = [packed[i : i + 4] for i in range(0, len(packed), 4)]
    native = b"".join(word[::-1] if sys.byteorder == "little" else word for word in words)
    return f"{native.hex().upper()}:{port:04X}"


def _socket_inode(local: tuple[str, int], remote: tuple[str, int]) -> str | None:
    """The inode of the socket whose local end is ``local`` and remote end ``remote``. A JVM's
    sockets are IPv6 ones even to 127.0.0.1: /proc/net/tcp6 lists them as ::ffff:127.0.0.1."""
    candidates = [(socket.AF_INET6, local, remote)]
    if ":" not in local[0]:
        mapped = [(f"::ffff:{host}", port) for host, port in (local, remote)]
        candidates = [(socket.AF_INET, local, remote), (socket.AF_INET6, mapped[0], mapped[1])]
    for family, near, far in candidates:
        wanted = (_proc_address(*near), _proc_address(*far))
        try:
            lines = _TABLES[family].read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and (fields[1], fields[2]) == wanted:
                return fields[9]
    return None


def connection_of_process(pid: int, peer: tuple[str, int], server: tuple[str, int]) -> bool:
    """Whether the connection from ``peer`` to our ``server`` address is one of ``pid``'s sockets."""
    inode = _socket_inode(peer, server)
    if inode is None or inode == "0":
        return False
    target = f"socket:[{inode}]"
    try:
        descriptors = os.scandir(f"/proc/{pid}/fd")
    except OSError:
        return False
    with descriptors:
        for entry in descriptors:
            try:
                if os.readlink(entry.path) == target:
                    return True
            except OSError:
                continue
    return False
