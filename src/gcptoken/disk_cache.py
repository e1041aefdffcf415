"""The CLI's on-disk token cache, so repeated ``gcptoken id`` calls make no network call.

``$XDG_CACHE_HOME/gcptoken`` (else ``~/.cache/gcptoken``): directory 0700, ``tokens.json`` 0600,
written atomically (temp file + rename). A miss takes an exclusive lock across processes and
checks again before fetching, so concurrent processes on a cold cache share one fetch. A corrupt
or foreign-version file is ignored and rebuilt. Only tokens and their expiry are stored: never
keys, refresh tokens or other secrets; entries are keyed by a hash of the credential's identity.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

from gcptoken import locations
from gcptoken.cache_rules import refresh_margin

TYPE_CHECKING = False  # not typing's: the CLI's cached path reads this module without typing
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from typing import Any

    from gcptoken.tokens import Token

__all__ = ["VERSION", "DiskTokenCache", "cache_dir", "fresh_entry", "read_tokens"]

VERSION = 1
MAX_ENTRIES = 256

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock, atomic writes still hold
    fcntl = None  # type: ignore[assignment]


def cache_dir() -> Path:
    import pathlib  # not at import: the CLI's cached path never needs it

    return pathlib.Path(locations.token_cache_dir())


def read_tokens(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The cache file's entries; nothing at all for a missing, corrupt or foreign file."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(document, dict) or document.get("version") != VERSION:
        return {}
    tokens = document.get("tokens")
    return tokens if isinstance(tokens, dict) else {}


def fresh_entry(entry: Any, now: float) -> dict[str, Any] | None:
    """The entry, if it is well-formed and not yet due for refresh at ``now``."""
    try:
        expires = float(entry["expires_at"])
        fetched = float(entry["fetched_at"])
        if not (isinstance(entry["value"], str) and isinstance(entry["kind"], str)):
            return None
        if not isinstance(entry["expires_at_iso"], str):
            return None
    except (TypeError, KeyError, ValueError):
        return None
    return entry if now < expires - refresh_margin(expires - fetched) else None


class DiskTokenCache:
    def __init__(self, directory: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory or cache_dir()
        self.path = self.directory / "tokens.json"
        self.clock = clock

    def _read(self) -> dict[str, dict[str, Any]]:
        return read_tokens(self.path)

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

    def get(self, key: str) -> Token | None:
        return self._fresh(self._read().get(key))

    def _write(self, tokens: dict[str, dict[str, Any]]) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        now = self.clock()
        live = {k: v for k, v in tokens.items() if isinstance(v, dict) and float(v.get("expires_at", 0)) > now}
        newest = dict(sorted(live.items(), key=lambda item: float(item[1]["fetched_at"]))[-MAX_ENTRIES:])
        import tempfile  # only writers need it

        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tokens-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp creates it 0600
                json.dump({"version": VERSION, "tokens": newest}, handle)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover
            yield
            return
        fd = os.open(self.directory / "tokens.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def get_or_fetch(self, key: str, fetch: Callable[[], Token]) -> Token:
        token = self.get(key)
        if token is not None:
            return token
        with self._locked():
            tokens = self._read()
            token = self._fresh(tokens.get(key))
            if token is not None:
                return token  # another process fetched it while we waited
            token = fetch()
            tokens[key] = {
                "value": token.value,
                "kind": token.kind,
                "expires_at": token.expires_at.timestamp(),
                "expires_at_iso": token.expires_at.isoformat(),
                "fetched_at": self.clock(),
            }
            self._write(tokens)
            return token

    def clear(self) -> bool:
        """Remove the cache file; True if there was one."""
        with self._locked():
            try:
                self.path.unlink()
            except FileNotFoundError:
                return False
            return True
