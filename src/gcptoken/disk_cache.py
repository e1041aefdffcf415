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
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from gcptoken.cache import refresh_margin
from gcptoken.tokens import Token

__all__ = ["VERSION", "DiskTokenCache", "cache_dir"]

VERSION = 1
MAX_ENTRIES = 256

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock, atomic writes still hold
    fcntl = None  # type: ignore[assignment]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gcptoken"


class DiskTokenCache:
    def __init__(self, directory: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory or cache_dir()
        self.path = self.directory / "tokens.json"
        self.clock = clock

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return {}
        if not isinstance(document, dict) or document.get("version") != VERSION:
            return {}
        tokens = document.get("tokens")
        return tokens if isinstance(tokens, dict) else {}

    def _fresh(self, entry: Any) -> Token | None:
        try:
            expires = float(entry["expires_at"])
            fetched = float(entry["fetched_at"])
            token = Token(str(entry["value"]), datetime.fromisoformat(entry["expires_at_iso"]), entry["kind"])
        except (TypeError, KeyError, ValueError):
            return None
        if self.clock() < expires - refresh_margin(expires - fetched):
            return token
        return None

    def get(self, key: str) -> Token | None:
        return self._fresh(self._read().get(key))

    def _write(self, tokens: dict[str, dict[str, Any]]) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        now = self.clock()
        live = {k: v for k, v in tokens.items() if isinstance(v, dict) and float(v.get("expires_at", 0)) > now}
        newest = dict(sorted(live.items(), key=lambda item: float(item[1]["fetched_at"]))[-MAX_ENTRIES:])
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
