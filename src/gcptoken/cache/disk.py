"""The CLI's on-disk token cache, so repeated ``gcptoken id`` calls make no network call.

``$XDG_CACHE_HOME/gcptoken`` (absolute, else ``~/.cache/gcptoken``): a directory that must be ours and
writable by nobody else, ``tokens.json`` 0600 written atomically (a new ``O_EXCL`` file renamed
over it), nothing reached through a symlink (see private_files). A directory or file that fails
those checks gets one warning on stderr, and the command works without the disk cache.

A miss locks its own entry across processes (a byte-range lock per entry in ``tokens.lock``) and
checks again before fetching: concurrent processes on a cold cache share one fetch, and an
unrelated credential never waits behind another's slow fetch. A lock is waited for at most the
caller's ``wait`` (its request timeout): a process stopped or stuck while holding one (Ctrl-Z, a
hung token server) only costs the others their de-duplication, and they fetch without it.
Entries are validated on every read; anything odd is a miss. Only tokens and their expiry are
stored, keyed by a hash of a credential's identity, which binds a digest of its secret
(cache_rules): never keys or refresh tokens.
"""

from __future__ import annotations

import errno
import json
import math
import os
import sys
import time

from gcptoken import locations
from gcptoken.cache.rules import refresh_margin
from gcptoken.private_files import NotPrivateError, PrivateDir

TYPE_CHECKING = False  # not typing's: the CLI's cached path reads this module without typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from gcptoken.tokens import Token

__all__ = ["VERSION", "DiskTokenCache", "cache_dir", "fresh_entry", "read_tokens"]

VERSION = 1
MAX_ENTRIES = 256
TOKENS_FILE = "tokens.json"
LOCK_FILE = "tokens.lock"
# Seconds a lock is waited for when the caller names no timeout (the CLI's default --timeout).
LOCK_WAIT = 10.0
_LOCK_POLL = 0.02
_WRITE_WAIT = 2.0
KINDS = ("id_token", "access_token")
# Google's tokens live at most 12 hours; an entry claiming more than this is not ours.
MAX_LIFETIME = 2 * 86400.0
MAX_VALUE_LENGTH = 16 * 1024
MAX_FILE_SIZE = 4 * 1024 * 1024
_IMPERSONATED = "impersonated|"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock, atomic writes still hold
    fcntl = None  # type: ignore[assignment]

_warned = False


def cache_dir() -> Path:
    import pathlib  # not at import: the CLI's cached path never needs it

    return pathlib.Path(locations.token_cache_dir())


def read_tokens(directory: PrivateDir) -> dict[str, Any]:
    """The cache file's entries; nothing at all for a missing, corrupt or foreign file.
    Raises NotPrivateError when the file is not safely ours."""
    data = directory.read(TOKENS_FILE, MAX_FILE_SIZE)
    if not data:
        return {}
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    if not isinstance(document, dict) or document.get("version") != VERSION:
        return {}
    tokens = document.get("tokens")
    return tokens if isinstance(tokens, dict) else {}


def _number(value: Any) -> float | None:
    if type(value) not in (int, float):  # not bool, not str
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _printable(value: Any) -> bool:
    """A token value as Google issues them: printable ASCII, no whitespace, bounded."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_VALUE_LENGTH
        and value.isascii()
        and value.isprintable()
        and " " not in value
    )


def fresh_entry(entry: Any, now: float) -> dict[str, Any] | None:
    """The entry, if it is well-formed, plausible and not yet due for refresh at ``now``."""
    if not isinstance(entry, dict):
        return None
    expires, fetched = _number(entry.get("expires_at")), _number(entry.get("fetched_at"))
    if expires is None or fetched is None or not fetched <= expires <= fetched + MAX_LIFETIME:
        return None
    if fetched > now + 300 or entry.get("kind") not in KINDS or not _printable(entry.get("value")):
        return None  # fetched in the future: a planted or clock-broken entry
    iso = entry.get("expires_at_iso")
    if not isinstance(iso, str) or not 19 <= len(iso) <= 40 or not iso.isascii() or not iso.isprintable():
        return None
    return entry if now < expires - refresh_margin(expires - fetched) else None


def _warn_once(problem: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        print(f"gcptoken: warning: not using the token cache: {problem}", file=sys.stderr)


def _log_hit(token: Token, now: float) -> None:
    import logging

    logging.getLogger("gcptoken.cache.memory").debug("cache hit, %d s left", token.expires_at.timestamp() - now)


def _entry_offset(key: str) -> int:
    """The byte of the lock file that stands for ``key`` (byte 0 guards tokens.json itself)."""
    import hashlib

    return 1 + int.from_bytes(hashlib.sha256(key.encode()).digest()[:7], "big")


def owner_of(identity: str) -> str:
    """The tag of a credential's entries: a digest of the (already secret-bound) identity of the
    credential whose secret they come from. Tokens minted by impersonation through a credential
    are that credential's too (``impersonated|SOURCE|chain|…``, see cache.rules), so signing it out
    forgets them as well."""
    import hashlib

    while identity.startswith(_IMPERSONATED):
        import re  # only on this path: the CLI's cached path reads no impersonated entry's owner

        # SOURCE|chain|include_email|lifetime|iam_base: the source ends before the last chain.
        source = re.match(r"(.*)\|[^|]*\|(?:True|False)\|[0-9]+\|", identity[len(_IMPERSONATED) :], re.DOTALL)
        if source is None:
            break
        identity = source.group(1)
    return hashlib.sha256(b"gcptoken-cache-owner\x00" + identity.encode("utf-8")).hexdigest()[:32]


class DiskTokenCache:
    def __init__(self, directory: str | os.PathLike[str] | None = None, clock: Callable[[], float] = time.time) -> None:
        import pathlib

        self.directory = pathlib.Path(directory) if directory is not None else cache_dir()
        self.path = self.directory / TOKENS_FILE
        self.clock = clock

    def _open(self) -> PrivateDir | None:
        """The checked cache directory, or None (after one warning) when it is not safely ours."""
        try:
            return PrivateDir(str(self.directory))
        except NotPrivateError as exc:
            _warn_once(str(exc))
            return None

    def _fresh(self, entry: Any) -> Token | None:
        from datetime import datetime

        from gcptoken.tokens import Token

        fresh = fresh_entry(entry, self.clock())
        if fresh is None:
            return None
        try:
            return Token(fresh["value"], datetime.fromisoformat(fresh["expires_at_iso"]), fresh["kind"])
        except ValueError:
            return None

    def _read(self, directory: PrivateDir) -> dict[str, Any] | None:
        try:
            return read_tokens(directory)
        except NotPrivateError as exc:
            _warn_once(str(exc))
            return None

    def get(self, key: str) -> Token | None:
        directory = self._open()
        if directory is None:
            return None
        with directory:
            tokens = self._read(directory)
            return None if tokens is None else self._fresh(tokens.get(key))

    def _write(self, directory: PrivateDir, key: str, token: Token, owner: str | None = None) -> None:
        tokens = self._read(directory)
        if tokens is None:
            return
        now = self.clock()
        tokens[key] = {
            "value": token.value,
            "kind": token.kind,
            "expires_at": token.expires_at.timestamp(),
            "expires_at_iso": token.expires_at.isoformat(),
            "fetched_at": now,
            **({"owner": owner} if owner else {}),
        }
        live = {k: v for k, v in tokens.items() if fresh_entry(v, now) is not None or k == key}
        newest = dict(sorted(live.items(), key=lambda item: float(item[1]["fetched_at"]))[-MAX_ENTRIES:])
        try:
            directory.write_atomically(TOKENS_FILE, json.dumps({"version": VERSION, "tokens": newest}).encode())
        except NotPrivateError as exc:
            _warn_once(str(exc))

    def get_or_fetch(
        self, key: str, fetch: Callable[[], Token], owner: str | None = None, wait: float = LOCK_WAIT
    ) -> Token:
        """The cached token for ``key``, else ``fetch()``'s, stored; ``owner`` (see ``owner_of``)
        tags the entry so ``forget_owner`` can remove every token derived from one credential.
        ``wait``: at most this many seconds for another process's fetch of the same entry (give
        the request timeout); after that this one fetches too, without the lock."""
        directory = self._open()
        if directory is None:
            return fetch()
        with directory:
            tokens = self._read(directory)
            if tokens is None:
                return fetch()
            token = self._fresh(tokens.get(key))
            if token is not None:
                _log_hit(token, self.clock())
                return token
            try:
                lock = directory.open_lock(LOCK_FILE)
            except (NotPrivateError, OSError) as exc:
                _warn_once(str(exc) if isinstance(exc, NotPrivateError) else f"{LOCK_FILE}: {exc.strerror}")
                return fetch()
            try:
                with _locked(lock, _entry_offset(key), wait):
                    tokens = self._read(directory)
                    token = None if tokens is None else self._fresh(tokens.get(key))
                    if token is not None:
                        _log_hit(token, self.clock())
                        return token  # another process fetched it while we waited
                    token = fetch()
                    if tokens is not None:
                        # Only the read-modify-write of the file itself: held for milliseconds.
                        with _locked(lock, 0, min(wait, _WRITE_WAIT)):
                            self._write(directory, key, token, owner)
                    return token
            finally:
                os.close(lock)  # closing also releases every lock this process held on it

    def forget_owner(self, owner: str) -> int:
        """Remove every entry tagged ``owner`` (a signed-out credential's tokens); how many."""
        directory = self._open()
        if directory is None:
            return 0
        with directory:
            lock = directory.open_lock(LOCK_FILE)
            try:
                with _locked(lock, 0):
                    tokens = self._read(directory)
                    if not tokens:
                        return 0
                    kept = {k: v for k, v in tokens.items() if not (isinstance(v, dict) and v.get("owner") == owner)}
                    if len(kept) != len(tokens):
                        payload = json.dumps({"version": VERSION, "tokens": kept}).encode()
                        directory.write_atomically(TOKENS_FILE, payload)
                    return len(tokens) - len(kept)
            finally:
                os.close(lock)

    def clear(self) -> bool:
        """Remove the cache file; True if there was one."""
        directory = self._open()
        if directory is None:
            return False
        with directory:
            lock = directory.open_lock(LOCK_FILE)
            try:
                with _locked(lock, 0):
                    return directory.remove(TOKENS_FILE)
            finally:
                os.close(lock)


class _locked:
    """An exclusive lock on one byte of ``fd`` across processes (POSIX record lock), waited for at
    most ``wait`` seconds: POSIX locks have no timeout, so a non-blocking attempt is repeated. Past
    the deadline the block runs unlocked (the lock only de-duplicates fetches and orders writes,
    which are atomic renames anyway). A class, not contextlib: the CLI's cached path imports this
    module and must not pay for contextlib."""

    def __init__(self, fd: int, offset: int, wait: float = LOCK_WAIT) -> None:
        self.fd, self.offset, self.wait = fd, offset, wait
        self.held = False

    def __enter__(self) -> bool:
        if fcntl is None:
            return False
        deadline = time.monotonic() + max(self.wait, 0.0)
        while True:
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self.offset)
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EAGAIN):  # fcntl(2): held by another process
                    return False  # ENOLCK (a file system without locks, say): no lock to wait for
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                time.sleep(min(_LOCK_POLL, left))
                continue
            self.held = True
            return True

    def __exit__(self, *exc: object) -> None:
        if fcntl is not None and self.held:
            self.held = False
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, self.offset)
