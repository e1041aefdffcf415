"""Private directories and files on a shared host, as OpenSSH treats ``~/.ssh``: a directory we
use must be ours and writable by nobody else, and no symlink is followed on the way in.

Everything goes through a directory file descriptor opened with ``O_NOFOLLOW``, so a path swapped
after the check cannot redirect a read or a write; files are opened relative to it with
``O_NOFOLLOW`` (and ``O_EXCL`` for new ones), and checked with ``fstat`` after opening.

Credential files (key files, certificates and their configs, subject tokens, certs) are read the
one way ``open_small_file`` opens them: a regular file of credential size, or one line saying what
it is instead (a FIFO, a device, a directory), never a read that stalls. Standard library only:
the CLI's cached path uses it.
"""

from __future__ import annotations

import errno
import os
import stat

from gcptoken.errors import CredentialsError, GcpTokenError
from gcptoken.untrusted import UnreadableJson, json_object, one_line

TYPE_CHECKING = False  # not typing's: the cached path must not import it
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "MAX_SMALL_FILE",
    "NotPrivateError",
    "PrivateDir",
    "UnreadableFile",
    "file_error",
    "open_credential_file",
    "open_small_file",
    "os_reason",
    "read_credential_file",
    "read_json_file",
    "read_small_file",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
_OTHERS_ANY = stat.S_IRWXG | stat.S_IRWXO
# What open() says of a symlink met with O_NOFOLLOW: ELOOP (Linux, macOS), EMLINK (FreeBSD).
_SYMLINK_ERRNOS = frozenset((errno.ELOOP, errno.EMLINK))


class NotPrivateError(Exception):
    """A directory or file is not safely ours; ``str()`` is one line saying why (a path and a
    reason, never a file's contents)."""


def _owner_problem(info: os.stat_result, what: str) -> str | None:
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        return f"{what} belongs to uid {info.st_uid}, not to you (uid {os.geteuid()})"
    if info.st_mode & _OTHERS_WRITE:
        return f"{what} is writable by others (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


class PrivateDir:
    """An open, checked directory. Use as a context manager, or ``close()``."""

    def __init__(self, path: str, *, create: bool = True, tighten: bool = True, parents: bool = True) -> None:
        """``tighten``: make a directory others may read 0700 (ours to keep private); without
        it a readable directory is used as it is (a user's own folder for one 0600 file).
        ``parents=False``: create the directory itself, never a missing folder above it (a path a
        person named: a typo must not leave folders behind)."""
        self.path = path
        self.fd = -1
        if os.open not in os.supports_dir_fd:  # pragma: no cover - Windows
            raise NotPrivateError(f"{path}: this platform cannot open files relative to a checked directory")
        if create:
            parent = os.path.dirname(os.path.abspath(path))
            try:
                if parents:
                    os.makedirs(parent, exist_ok=True)
                elif not os.path.isdir(parent):
                    raise NotPrivateError(f"{path} cannot be created: the folder {parent} does not exist")
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass
            except OSError as exc:
                raise NotPrivateError(f"{path} cannot be created ({os_reason(exc)})") from None
        try:
            self.fd = os.open(path, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
        except OSError as exc:
            if os.path.islink(path):
                raise NotPrivateError(f"{path} is a symbolic link; it is not followed") from None
            raise NotPrivateError(f"{path} cannot be opened ({os_reason(exc)})") from None
        try:
            info = os.fstat(self.fd)
            problem = None if stat.S_ISDIR(info.st_mode) else f"{path} is not a directory"
            problem = problem or _owner_problem(info, path)
            if problem is not None:
                raise NotPrivateError(problem)
            if info.st_mode & _OTHERS_ANY and tighten:
                os.fchmod(self.fd, 0o700)  # ours: keep others from even listing it
        except BaseException:
            os.close(self.fd)
            raise

    def __enter__(self) -> PrivateDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _checked(self, fd: int, name: str) -> int:
        try:
            info = os.fstat(fd)
            problem = None if stat.S_ISREG(info.st_mode) else f"{self.path}/{name} is not a regular file"
            problem = problem or _owner_problem(info, f"{self.path}/{name}")
            if problem is not None:
                raise NotPrivateError(problem)
            if info.st_mode & _OTHERS_ANY:
                os.fchmod(fd, 0o600)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open(self, name: str, flags: int, mode: int = 0o600) -> int:
        try:
            return os.open(name, flags | _NOFOLLOW | _CLOEXEC, mode, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno is not None and exc.errno in _SYMLINK_ERRNOS:
                raise NotPrivateError(f"{self.path}/{name} is a symbolic link; it is not followed") from None
            raise

    def read(self, name: str, limit: int = 1 << 20) -> bytes | None:
        """The file's bytes (at most ``limit``), or None when it does not exist."""
        try:
            fd = self._open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a planted FIFO must not block
        except FileNotFoundError:
            return None
        except PermissionError as exc:  # said as every unreadable file is, never taken for something else
            raise NotPrivateError(f"{self.path}/{name} cannot be read ({os_reason(exc)})") from None
        fd = self._checked(fd, name)
        try:
            with os.fdopen(fd, "rb") as handle:
                return handle.read(limit)
        except OSError:
            return None

    def open_lock(self, name: str) -> int:
        """A descriptor of a (created if missing) private lock file; the caller closes it."""
        return self._checked(self._open(name, os.O_RDWR | os.O_CREAT, 0o600), name)

    def write_atomically(self, name: str, data: bytes) -> None:
        """Replace ``name`` with ``data``: a new 0600 file (``O_EXCL``) renamed over it."""
        temporary = f".{name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
        fd = self._open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)  # no fsync: a cache torn by a crash is read as a miss
            os.replace(temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            try:  # noqa: SIM105 - contextlib costs the CLI's cached path an import
                os.unlink(temporary, dir_fd=self.fd)
            except OSError:
                pass
            raise

    def create_exclusive(self, name: str, data: bytes) -> None:
        """Write a file that must not exist yet (no replacing, no following)."""
        fd = self._open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    def create_once(self, name: str, data: bytes) -> None:
        """Make ``name`` hold ``data`` unless it exists already: written whole to a new file first,
        then linked into place (``linkat`` fails on an existing name), so a reader racing the
        writer sees either nothing or all of it, never a part."""
        temporary = f".{name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
        fd = self._open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            try:  # noqa: SIM105 - contextlib costs the CLI's cached path an import
                os.link(temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
            except FileExistsError:
                pass  # another process made it first: theirs stands
        finally:
            try:  # noqa: SIM105
                os.unlink(temporary, dir_fd=self.fd)
            except OSError:
                pass

    def remove(self, name: str) -> bool:
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            return False
        return True


MAX_SMALL_FILE = 1 << 20


class UnreadableFile(Exception):
    """A file that is not a small regular file; ``str()`` says why in a few words."""


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "something else"


def open_small_file(path: str | os.PathLike[str], limit: int = MAX_SMALL_FILE) -> int:
    """A descriptor of a credential-sized regular file, for reading; the caller closes it.

    Opened without blocking, so a FIFO nobody writes to opens at once (and is refused), as are a
    directory, a device (``/dev/zero``), a socket and a file over ``limit``: UnreadableFile, whose
    few words say which. Nothing read through it can stall (no ``--timeout`` could stop a read
    that blocks) or fill memory. FileNotFoundError passes through for the caller's own words."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"is {_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise UnreadableFile(f"is larger than {limit} bytes")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_small_file(path: str | os.PathLike[str], limit: int = MAX_SMALL_FILE) -> bytes:
    """A credential-sized file's bytes, opened by ``open_small_file`` (whose refusals it raises)."""
    with os.fdopen(open_small_file(path, limit), "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:  # it grew since
        raise UnreadableFile(f"is larger than {limit} bytes")
    return data


def file_error(
    path: str | os.PathLike[str],
    what: str,
    exc: OSError | UnreadableFile,
    kind: type[GcpTokenError] = CredentialsError,
) -> GcpTokenError:
    """The one line (a ``kind``) that says why ``what`` at ``path`` could not be opened or read,
    for every file gcptoken reads: "… does not exist", "… cannot be read (permission denied)"."""
    shown = one_line(os.fspath(path), None)
    if isinstance(exc, FileNotFoundError):
        return kind(f"{what} {shown} does not exist")
    if isinstance(exc, UnreadableFile):
        return kind(f"{what} {shown} {exc}")
    return kind(f"{what} {shown} cannot be read ({os_reason(exc)})")


def os_reason(exc: OSError) -> str:
    """The system's few words for ``exc``, as every file error says them: "permission denied"."""
    return os.strerror(exc.errno).lower() if exc.errno else type(exc).__name__


def open_credential_file(path: str | os.PathLike[str], what: str, limit: int = MAX_SMALL_FILE) -> int:
    """``open_small_file``, every failure a CredentialsError in one line: "``what`` PATH is a FIFO
    (named pipe), not a regular file", "… does not exist", "… cannot be read (Permission denied)"."""
    try:
        return open_small_file(path, limit)
    except (OSError, UnreadableFile) as exc:
        raise file_error(path, what, exc) from None


def read_credential_file(path: str | os.PathLike[str], what: str, limit: int = MAX_SMALL_FILE) -> bytes:
    """The bytes of a file that names or holds key material (key files, certificates, certificate
    configs, subject tokens, certs), read as ``read_small_file`` reads; failures as
    ``open_credential_file`` says them."""
    try:
        return read_small_file(path, limit)
    except (OSError, UnreadableFile) as exc:
        raise file_error(path, what, exc) from None


def read_json_file(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """The JSON object in a credential file (``read_credential_file``, ``untrusted.json_object``):
    "``what`` PATH is not JSON", "… is not JSON gcptoken accepts (nested too deeply)", …"""
    data = read_credential_file(path, what)
    try:
        return json_object(data)
    except UnreadableJson as exc:
        raise CredentialsError(f"{what} {one_line(os.fspath(path), None)} {exc}") from None
