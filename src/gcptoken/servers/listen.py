"""What a server says when its port cannot be listened on: the address, the option that chose the
port (``--port``, ``--mtls-port``), why, and what to do, in one line. Standard library only: the
sign-in's redirect listener uses it too."""

from __future__ import annotations

__all__ = ["ListenError", "listen_problem"]


class ListenError(OSError):
    """A port that cannot be listened on; ``str()`` is one line naming the address and the option
    that chose it (an OSError still, with the system's errno)."""

    def __str__(self) -> str:
        return str(self.strerror)


def listen_problem(host: str, port: int, option: str, exc: OSError) -> str:
    """The one line for a port that cannot be listened on: which address, which option chose it,
    why, and what to do."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    reason = (exc.strerror or type(exc).__name__).lower()
    return f"cannot listen on {where} ({option} {port}): {reason}; choose another {option}, or 0 for a free port"
