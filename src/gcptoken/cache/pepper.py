"""A random key of the user's own, mixed into the cache proof of a secret too small to hide in a
digest: a hardware key's PIN. A cache entry's name is a digest of its proof, and a six-digit PIN
hashed with a public reference is found in seconds by trying them all; keyed with this pepper, a
copy of the cache (a backup, a leaked home directory) tests no guess. So it never lives in the home
directory: it is kept in memory-backed storage, ``$XDG_RUNTIME_DIR/gcptoken`` (the user's own tmpfs:
never backed up, gone at logout) where there is one, else ``/dev/shm/gcptoken-UID`` (tmpfs, gone at
reboot; a directory someone else made there is refused). Where neither is to be had, there is no
pepper, and a key with a PIN proves possession by signing instead (keys.opened). Standard library
only: the CLI's cached path reads it."""

from __future__ import annotations

import os

from gcptoken.private_files import NotPrivateError, PrivateDir

__all__ = ["PEPPER_FILE", "cache_pepper", "pepper_dir"]

PEPPER_FILE = "cache-pepper"
_SIZE = 32


_SHARED_MEMORY = "/dev/shm"  # noqa: S108 - a per-user directory in it, ownership checked (PrivateDir)


def pepper_dir() -> str | None:
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime) and os.path.isdir(runtime):
        return os.path.join(runtime, "gcptoken")
    if os.path.isdir(_SHARED_MEMORY) and hasattr(os, "getuid"):
        return os.path.join(_SHARED_MEMORY, f"gcptoken-{os.getuid()}")
    return None


def cache_pepper() -> bytes | None:
    """The user's pepper, made on first use; None where it cannot be kept privately in memory-backed
    storage (the caller then proves possession another way)."""
    where = pepper_dir()
    if where is None:
        return None
    try:
        with PrivateDir(where, parents=False) as directory:
            pepper = directory.read(PEPPER_FILE, _SIZE + 1)
            if pepper is None:
                directory.create_once(PEPPER_FILE, os.urandom(_SIZE))
                pepper = directory.read(PEPPER_FILE, _SIZE + 1)
    except (OSError, NotPrivateError):
        return None
    return pepper if pepper is not None and len(pepper) == _SIZE else None
