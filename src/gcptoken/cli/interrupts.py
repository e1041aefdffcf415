"""How a one-shot command ends when it is stopped: Ctrl-C says "interrupted" and exits 130, SIGTERM
says "terminated" and exits 143 (128 + the signal's number, as shells report it); one line, no
traceback, and every ``finally`` on the way out runs (a sign-in's listener closes, a temporary
file is removed). Servers stop gracefully on both and exit 0 instead (``servers.serving``).

Cheap: the cached path installs it before anything else, so it uses ``_signal``, the C half of
``signal`` that Python loads at start (``signal`` itself builds its enums: about a millisecond).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]
import sys

TYPE_CHECKING = False  # not typing's: the cached path must not import it
if TYPE_CHECKING:
    from types import FrameType

__all__ = ["EXIT_INTERRUPTED", "EXIT_TERMINATED", "Terminated", "drop_stdout", "stopped", "unwind_on_sigterm"]

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + 15


class Terminated(BaseException):
    """SIGTERM arrived: raised where the program is, it unwinds as Ctrl-C does (not an Exception:
    no ``except Exception`` takes it for a failure to report)."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def unwind_on_sigterm() -> None:
    """From now on SIGTERM raises Terminated in the main thread (unless SIGTERM is ignored: a
    parent that ignores it for us is obeyed)."""
    if _signal.getsignal(_signal.SIGTERM) != _signal.SIG_IGN:
        _signal.signal(_signal.SIGTERM, _raise_terminated)


def stopped(exc: KeyboardInterrupt | Terminated) -> int:
    """Says how the command was stopped, in one line; the exit code for it."""
    if isinstance(exc, Terminated):
        sys.stderr.write("gcptoken: terminated\n")
        return EXIT_TERMINATED
    sys.stderr.write("gcptoken: interrupted\n")
    return EXIT_INTERRUPTED


def drop_stdout() -> None:
    """Points fd 1 at /dev/null once stdout failed (closed, full): the interpreter's last flush of
    what is left then writes nowhere instead of printing a traceback."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass
