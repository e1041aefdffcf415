"""Which PKCS#11 module (a shared library) to load, and whether it is safe to: loading a module
runs its code in this process, so it must be a file only root or this user could have put there.

Choice: the URI's ``module-path`` (absolute only), else ``$GCPTOKEN_PKCS11_MODULE``, else
p11-kit's proxy module (which loads every module the system registered), else an error.
Standard library only.
"""

from __future__ import annotations

import os
import stat
import sysconfig
from typing import Final

from gcptoken.errors import HardwareKeyError
from gcptoken.keys.pkcs11_uri import Pkcs11Uri

__all__ = ["MODULE_ENV", "checked_module", "choose_module", "p11_kit_proxy"]

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
    """The module path to load for ``uri``, checked (``checked_module``): the path as named,
    which ``checked_module`` resolves before loading."""
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


def _check_directory(directory: str, module: str) -> None:
    try:
        info = os.stat(directory)
    except FileNotFoundError:
        raise HardwareKeyError(f"PKCS#11 module {module} not found") from None
    except OSError as exc:
        raise HardwareKeyError(f"PKCS#11 module {module}: cannot read its directory ({exc.strerror})") from None
    if not _trusted(info.st_uid) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise HardwareKeyError(
            f"refusing PKCS#11 module {module}: its directory {directory} is "
            + ("writable by others" if _trusted(info.st_uid) else f"owned by uid {info.st_uid}")
            + " (loading a module runs its code; it must be root's or yours and not group/world-writable)"
        )


def checked_module(path: str) -> str:
    """The real path of the module file ``path`` names, after checking every step: each symlink
    on the way and the file itself owned by root or this user, the file regular and not group- or
    world-writable, and the directory of each step likewise. ``HardwareKeyError`` otherwise."""
    if not os.path.isabs(path):
        raise HardwareKeyError(f"the PKCS#11 module path must be absolute, not {path[:200]!r}")
    current = os.path.normpath(path)
    for _ in range(MAX_LINKS):
        _check_directory(os.path.dirname(current), path)
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            raise HardwareKeyError(f"PKCS#11 module {path} not found") from None
        except OSError as exc:
            raise HardwareKeyError(f"PKCS#11 module {path}: {exc.strerror}") from None
        if not _trusted(info.st_uid):
            what = "a symlink" if stat.S_ISLNK(info.st_mode) else "a file"
            raise HardwareKeyError(
                f"refusing PKCS#11 module {path}: {current} is {what} owned by uid {info.st_uid}, "
                "not by root or you (loading a module runs its code)"
            )
        if stat.S_ISLNK(info.st_mode):
            # Resolve one step against the real directory, so ".." in the target means what it says.
            target = os.readlink(current)
            current = os.path.normpath(os.path.join(os.path.realpath(os.path.dirname(current)), target))
            continue
        if not stat.S_ISREG(info.st_mode):
            raise HardwareKeyError(f"refusing PKCS#11 module {path}: {current} is not a regular file")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise HardwareKeyError(
                f"refusing PKCS#11 module {path}: {current} is group- or world-writable "
                "(loading a module runs its code)"
            )
        real = os.path.realpath(current)
        if real != current:  # a symlinked directory on the way: check where it really is
            _check_directory(os.path.dirname(real), path)
            if not os.path.samestat(os.stat(real), info):
                raise HardwareKeyError(f"refusing PKCS#11 module {path}: it changed while being checked")
        return real
    raise HardwareKeyError(f"refusing PKCS#11 module {path}: more than {MAX_LINKS} symlinks")
