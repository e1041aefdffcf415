"""What a server says when its port cannot be listened on: the address, the option that chose the
port (``--port``, ``--mtls-port``), why, and what to do, in one line. Standard library only: the
sign-in's redirect listener uses it too."""

from __future__ import annotations

import errno
import socket

__all__ = ["ListenError", "listen_problem"]


class ListenError(OSError):
    """A port that cannot be listened on; ``str()`` is one line naming the address and the option
    that chose it (an OSError still, with the system's errno)."""

    def __str__(self) -> str:
        return str(self.strerror)


def listen_problem(host: str, port: int, option: str, exc: OSError) -> str:
    """The one line for an address that cannot be listened on: which one, which option chose the
    part at fault (the port's ``option``, or ``--host`` for an address this machine does not have
    or a name that does not resolve), why, and what to do."""
    reason = (exc.strerror or type(exc).__name__).lower()
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot listen on {host} (--host {host}): {reason}; give an address of this machine, or leave --host out"
        )
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"cannot listen on {where} ({option} {port}): {reason}; choose another {option}, or 0 for a free port"
