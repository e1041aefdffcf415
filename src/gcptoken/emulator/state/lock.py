"""One emulator per ``--state-dir``: a second one would rewrite ``env`` and every key file to point
at itself, and break the first one's clients when it stops.

The lock is the kernel's (``flock`` on a 0600 file in the state dir, opened without following a
symlink and held open for the emulator's life), so a lock left by a killed emulator is free again
the moment it died: staleness is never guessed from a PID. The file holds the holder's address,
only for the message that refuses the second emulator.
"""

from __future__ import annotations

import os

from gcptoken.private_files import NotPrivateError, PrivateDir
from gcptoken.untrusted import one_line

__all__ = ["LOCK_FILE", "StateDirInUseError", "StateDirLock"]

LOCK_FILE = "emulator.lock"
_MAX_ADDRESS = 200


class StateDirInUseError(ValueError):
    """Another emulator serves this state dir; ``address`` is where (as its lock file says), None
    while it is still starting."""

    def __init__(self, path: str, address: str | None) -> None:
        self.path, self.address = path, address
        holder = f"the emulator on {address}" if address else "another emulator (still starting)"
        super().__init__(f"state dir {path} is in use by {holder}; stop it first, or use another --state-dir")


class StateDirLock:
    """Held from construction (or StateDirInUseError) until ``release()``."""

    def __init__(self, directory: PrivateDir) -> None:
        import fcntl  # POSIX: a state dir is refused before this on platforms without it (PrivateDir)

        try:
            self._fd = directory.open_lock(LOCK_FILE)  # 0600, ours, a regular file, no symlink followed
        except NotPrivateError as exc:  # a symlink, a FIFO, a file of another user: never written through
            raise ValueError(f"state dir: {exc}") from None
        except OSError as exc:
            raise ValueError(f"state dir: {directory.path}/{LOCK_FILE} cannot be used ({exc.strerror})") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            address = self._holder()
            os.close(self._fd)
            raise StateDirInUseError(directory.path, address) from None
        except BaseException:
            os.close(self._fd)
            raise

    def _holder(self) -> str | None:
        """The address the holder wrote (as one printable line), None when there is none yet."""
        try:
            text = os.pread(self._fd, _MAX_ADDRESS, 0).decode("utf-8", "replace").strip()
        except OSError:
            text = ""
        return one_line(text, 80) if text else None

    def record(self, address: str) -> None:
        """Say where this emulator answers, for a second one's message."""
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{address}\n".encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # the kernel drops the lock with the last descriptor
            self._fd = -1
