"""A random key of the user's own, mixed into the cache proof of a secret too small to hide in a
digest: a hardware key's PIN. A cache entry's name is a digest of its proof, and a six-digit PIN
hashed with a public reference is found in seconds by trying them all; keyed with this pepper, a
copy of the cache (a backup, a leaked home directory) tests no guess. It lives apart from the
cache, in ``$XDG_RUNTIME_DIR/gcptoken`` (the user's own tmpfs: never backed up, gone at logout)
where there is one, else ``$XDG_STATE_HOME/gcptoken`` (``~/.local/state``). Standard library only:
the CLI's cached path reads it."""

from __future__ import annotations

import os

from gcptoken.locations import xdg_home
from gcptoken.private_files import NotPrivateError, PrivateDir

__all__ = ["PEPPER_FILE", "cache_pepper", "pepper_dir"]

PEPPER_FILE = "cache-pepper"
_SIZE = 32


def pepper_dir() -> str:
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime) and os.path.isdir(runtime):
        return os.path.join(runtime, "gcptoken")
    return os.path.join(xdg_home("XDG_STATE_HOME", os.path.join(".local", "state")), "gcptoken")


def cache_pepper() -> bytes | None:
    """The user's pepper, made on first use; None where it cannot be kept privately (the caller
    then proves possession another way)."""
    try:
        with PrivateDir(pepper_dir()) as directory:
            pepper = directory.read(PEPPER_FILE, _SIZE + 1)
            if pepper is None:
                directory.create_once(PEPPER_FILE, os.urandom(_SIZE))
                pepper = directory.read(PEPPER_FILE, _SIZE + 1)
    except (OSError, NotPrivateError):
        return None
    return pepper if pepper is not None and len(pepper) == _SIZE else None
