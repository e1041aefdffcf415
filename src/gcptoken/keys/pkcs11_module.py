"""Which PKCS#11 module (a shared library) to load, and whether it is safe to: loading a module
runs its code in this process, so it must be a file only root or this user could have put there.

Choice: the URI's ``module-path`` (absolute only), else ``$GCPTOKEN_PKCS11_MODULE``, else
p11-kit's proxy module (which loads every module the system registered), else an error.

The check walks the path one step at a time through open directory fds (openat, O_NOFOLLOW), so
what is checked is what is used: every directory from / down (and through every symlink) must be
root's or this user's and not group/world-writable, except a sticky one like /tmp, where others
cannot rename or remove what is not theirs and the next step must itself be root's or this user's.
The file is then held open and loaded as /proc/self/fd/N (Linux). Standard library only.
"""

from __future__ import annotations

import errno
import os
import stat
import sysconfig
from dataclasses import dataclass
from typing import Final

from gcptoken.errors import HardwareKeyError
from gcptoken.keys.pkcs11_uri import Pkcs11Uri

__all__ = ["MODULE_ENV", "ModuleFile", "checked_module", "choose_module", "open_module", "p11_kit_proxy"]

MODULE_ENV: Final = "GCPTOKEN_PKCS11_MODULE"
MAX_LINKS: Final = 16  # as Linux's MAXSYMLINKS is 40; no packaged module needs more than two


def p11_kit_proxy() -> str | None:
    """p11-kit's proxy module where distributions install it (Debian: the p11-kit-modules
    package, /usr/lib/<multiarch>/p11-kit-proxy.so; Fedora: /usr/lib64)."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    for directory in (f"/usr/lib/{multiarch}" if multiarch else "", "/usr/lib64", "/usr/lib", "/usr/local/lib"):
        if directory and os.path.isfile(candidate := os.path.join(directory, "p11-kit-proxy.so")):
            return candidate
    return None


def choose_module(uri: Pkcs11Uri) -> str:
    """The module path to load for ``uri``, as named: ``open_module`` resolves and checks it
    when it is loaded."""
    if (path := uri.module_path) is not None:
        where = "the URI's module-path"
    elif path := os.environ.get(MODULE_ENV, ""):
        where = f"${MODULE_ENV}"
    elif uri.get("module-name") is not None:
        raise HardwareKeyError(
            "the PKCS#11 URI names a module by module-name, which gcptoken does not search for: "
            f"give its file as module-path= or ${MODULE_ENV}"
        )
    elif (proxy := p11_kit_proxy()) is not None:
        path, where = proxy, "p11-kit's proxy module"
    else:
        raise HardwareKeyError(
            f"no PKCS#11 module to load: add module-path=/path/to/module.so to the URI, set ${MODULE_ENV}, "
            "or install p11-kit's proxy module (Debian: p11-kit-modules)"
        )
    if not os.path.isabs(path):
        raise HardwareKeyError(f"the PKCS#11 module path from {where} must be absolute, not {path[:200]!r}")
    return path


def _trusted(owner: int) -> bool:
    return owner in (0, os.geteuid())


@dataclass(frozen=True)
class ModuleFile:
    """A checked module file, held open: ``fd`` is the very inode that was checked, so loading
    ``load_path`` (``/proc/self/fd/N``, which dlopen follows to that inode) loads it whatever the
    path names by then. ``identity`` is (st_dev, st_ino); ``real`` the path it was found at."""

    fd: int
    real: str
    identity: tuple[int, int]

    @property
    def load_path(self) -> str:
        return f"/proc/self/fd/{self.fd}"

    def close(self) -> None:
        os.close(self.fd)


def _refuse(path: str, why: str) -> HardwareKeyError:
    return HardwareKeyError(f"refusing PKCS#11 module {path}: {why} (loading a module runs its code)")


def _check_directory(info: os.stat_result, where: str, path: str) -> None:
    """A directory on the way: root's or ours, and not writable by others unless sticky. In a
    sticky directory (/tmp) others cannot rename or remove what is not theirs, and the next step
    is itself checked to be root's or ours, so what we found there stays what we found."""
    if not _trusted(info.st_uid):
        raise _refuse(path, f"the directory {where} on its path is owned by uid {info.st_uid}, not by root or you")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
        raise _refuse(path, f"the directory {where} on its path is writable by others")


def _check_step(info: os.stat_result, where: str, path: str) -> None:
    """A symlink or the file itself: root's or ours (a symlink's own mode means nothing)."""
    if not _trusted(info.st_uid):
        what = "a symlink" if stat.S_ISLNK(info.st_mode) else "a file"
        raise _refuse(path, f"{where} is {what} owned by uid {info.st_uid}, not by root or you")


def _join(names: list[str], name: str = "") -> str:
    return "/" + "/".join([*names, name] if name else names)


def open_module(path: str) -> ModuleFile:
    """The module file ``path`` names, opened after checking every step, each through the
    directory actually opened before it (so nothing can be swapped between check and use):
    every directory from / down, including those a symlink leads through, root's or yours and
    not group/world-writable (unless sticky); each symlink root's or yours; the file root's or
    yours, regular, not group/world-writable. ``HardwareKeyError`` otherwise."""
    if not os.path.isdir("/proc/self/fd"):
        # The checked file is loaded through /proc/self/fd/N (Linux): without /proc there is no
        # way to load exactly what was checked, so nothing is loaded.
        raise HardwareKeyError(f"loading {path} needs /proc (Linux's /proc/self/fd), which is not mounted here")
    if not os.path.isabs(path):
        raise HardwareKeyError(f"the PKCS#11 module path must be absolute, not {path[:200]!r}")
    pending = path.split("/")
    names: list[str] = []  # the real path so far
    dirs = [_open_dir("/", None, path, "/")]  # the open directories from / down to where we are
    links = 0
    try:
        while pending:
            name = pending.pop(0)
            if name in ("", "."):
                continue
            if name == "..":  # the real parent: the directory we came through
                if len(dirs) > 1:
                    os.close(dirs.pop())
                    names.pop()
                continue
            where = _join(names, name)
            info = _lstat(name, dirs[-1], path)
            if stat.S_ISLNK(info.st_mode):
                _check_step(info, where, path)
                links += 1
                if links > MAX_LINKS:
                    raise _refuse(path, f"more than {MAX_LINKS} symlinks")
                try:
                    target = os.readlink(name, dir_fd=dirs[-1])
                except OSError:  # no longer a symlink
                    raise _refuse(path, "it changed while being checked") from None
                if target.startswith("/"):
                    while len(dirs) > 1:
                        os.close(dirs.pop())
                    names.clear()
                pending[:0] = target.split("/")
            elif stat.S_ISDIR(info.st_mode) and any(part not in ("", ".") for part in pending):
                dirs.append(_open_dir(name, dirs[-1], path, where, info))
                names.append(name)
            elif pending and any(part not in ("", ".") for part in pending):
                raise HardwareKeyError(f"PKCS#11 module {path} not found")  # a file where a directory should be
            else:
                return _open_file(name, dirs[-1], path, info, where)
        raise _refuse(path, "it names a directory, not a file")
    finally:
        for fd in dirs:
            os.close(fd)


def _lstat(name: str, directory: int, path: str) -> os.stat_result:
    try:
        return os.stat(name, dir_fd=directory, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        raise HardwareKeyError(f"PKCS#11 module {path} not found") from None
    except OSError as exc:
        raise HardwareKeyError(f"PKCS#11 module {path}: {exc.strerror}") from None


def _opened(name: str, directory: int | None, flags: int, path: str) -> int:
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise HardwareKeyError(f"PKCS#11 module {path} not found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink now where a moment ago there was none
            raise _refuse(path, "it changed while being checked") from None
        raise HardwareKeyError(f"PKCS#11 module {path}: {exc.strerror}") from None


def _open_dir(name: str, directory: int | None, path: str, where: str, seen: os.stat_result | None = None) -> int:
    """The directory ``name`` opened (O_PATH: no read permission needed), checked by its fd."""
    fd = _opened(name, directory, os.O_PATH | os.O_DIRECTORY, path)
    try:
        info = os.fstat(fd)
        if seen is not None and not os.path.samestat(info, seen):
            raise _refuse(path, "it changed while being checked")
        _check_directory(info, where, path)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _open_file(name: str, directory: int, path: str, seen: os.stat_result, where: str) -> ModuleFile:
    """The module file itself, opened and checked by its fd: the inode that will be loaded."""
    if not stat.S_ISREG(seen.st_mode):
        raise _refuse(path, f"{where} is not a regular file")
    fd = _opened(name, directory, os.O_RDONLY, path)
    try:
        info = os.fstat(fd)
        if not os.path.samestat(info, seen):
            raise _refuse(path, "it changed while being checked")
        _check_step(info, where, path)
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(path, f"{where} is not a regular file")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise _refuse(path, f"{where} is group- or world-writable")
        return ModuleFile(fd, where, (info.st_dev, info.st_ino))
    except BaseException:
        os.close(fd)
        raise


def checked_module(path: str) -> str:
    """The real path of the module file ``path`` names, if ``open_module`` accepts it."""
    opened = open_module(path)
    opened.close()
    return opened.real
