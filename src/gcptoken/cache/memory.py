"""In-process token cache: reuse until a refresh margin before expiry, one upstream fetch for any
number of concurrent callers (threads or asyncio tasks), failures never cached.

Keys are hashes of a credential's *identity* (account, key id, endpoint, options) plus the token
request; never a private key or a secret.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from gcptoken.cache.rules import refresh_margin
from gcptoken.tokens import Token

if TYPE_CHECKING:
    import asyncio

__all__ = ["TokenCache", "default_cache"]


class _Shared:
    """One fetch's outcome, for the threads that wait on it: a threading.Event, not a
    concurrent.futures.Future, whose module imports logging (a one-shot CLI run pays for neither)."""

    __slots__ = ("_done", "_error", "_token")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._token: Token | None = None
        self._error: BaseException | None = None

    def set_result(self, token: Token) -> None:
        self._token = token
        self._done.set()

    def set_exception(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    def result(self) -> Token:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._token is not None
        return self._token


class _Entry:
    __slots__ = ("expires", "fresh_until", "token")

    def __init__(self, token: Token, fetched_at: float) -> None:
        self.token = token
        self.expires = token.expires_at.timestamp()
        self.fresh_until = self.expires - refresh_margin(self.expires - fetched_at)  # decided once, not per hit


class TokenCache:
    """Thread-safe; usable from many event loops at once. ``clock`` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.time, max_entries: int = 1024) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._inflight: dict[str, _Shared] = {}
        self._inflight_async: dict[tuple[int, str], asyncio.Future[Token]] = {}

    def fresh(self, key: str) -> Token | None:
        """The cached token if it is not yet due for refresh, else None; never fetches."""
        entry = self._entries.get(key)  # a single dict read: safe without the lock
        if entry is not None and self.clock() < entry.fresh_until:
            return entry.token
        return None

    def usable(self, key: str) -> Token | None:
        """A cached token that has not expired yet, even inside the refresh margin."""
        entry = self._entries.get(key)
        if entry is not None and self.clock() < entry.expires:
            return entry.token
        return None

    def _store(self, key: str, token: Token) -> None:
        if len(self._entries) >= self.max_entries and key not in self._entries:
            self._entries.pop(next(iter(self._entries)))  # oldest first: dicts keep insertion order
        self._entries[key] = _Entry(token, self.clock())

    def _after_failure(self, key: str, exc: BaseException) -> Token:
        """A refresh ahead of expiry failed: the still-valid token serves; otherwise the error."""
        with self._lock:
            usable = self.usable(key)
        if usable is None:
            raise exc
        import logging  # only when it has something to say: a one-shot CLI run never imports it

        logging.getLogger("gcptoken.cache.memory").warning(
            "token refresh failed (%s); using the cached token until it expires", type(exc).__name__
        )
        return usable

    def get(self, key: str, fetch: Callable[[], Token], force: bool = False) -> Token:
        """The cached token, or ``fetch()`` run once for all threads asking at the same time;
        ``force`` skips the cached token (it was refused) but still shares and stores the fetch."""
        if not force:
            token = self.fresh(key)  # the common case, without the lock
            if token is not None:
                return token
        with self._lock:
            token = None if force else self.fresh(key)
            if token is not None:
                return token
            future = self._inflight.get(key)
            leader = future is None
            if future is None:
                future = self._inflight[key] = _Shared()
            elif not force and (usable := self.usable(key)) is not None:
                return usable  # refresh ahead: the leader refreshes, the others go on with the valid token
        if not leader:
            return future.result()
        try:
            token = fetch()
        except BaseException as exc:
            if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: not a failed refresh
                future.set_exception(exc)
                raise
            try:
                token = self._after_failure(key, exc)
            except BaseException as final:
                future.set_exception(final)
                raise
        else:
            with self._lock:
                self._store(key, token)
        finally:
            with self._lock:
                self._inflight.pop(key, None)
        future.set_result(token)
        return token

    async def get_async(self, key: str, fetch: Callable[[], Awaitable[Token]], force: bool = False) -> Token:
        """As ``get``, for asyncio tasks: one ``fetch()`` per key and event loop at a time."""
        import asyncio  # only async callers pay for it

        loop_key = (id(asyncio.get_running_loop()), key)
        with self._lock:
            token = None if force else self.fresh(key)
            if token is not None:
                return token
            future = self._inflight_async.get(loop_key)
            leader = future is None
            if future is None:
                future = self._inflight_async[loop_key] = asyncio.get_running_loop().create_future()
            elif not force and (usable := self.usable(key)) is not None:
                return usable  # refresh ahead: the leader refreshes, the others go on with the valid token
        if not leader:
            return await asyncio.shield(future)
        try:
            token = await fetch()
        except BaseException as exc:
            if not isinstance(exc, Exception):  # the leader was cancelled: not a failed refresh
                future.set_exception(exc)
                future.exception()
                raise
            try:
                token = self._after_failure(key, exc)
            except BaseException as final:
                future.set_exception(final)
                future.exception()  # retrieved here, so a future no follower awaited stays quiet
                raise
        else:
            with self._lock:
                self._store(key, token)
        finally:
            with self._lock:
                self._inflight_async.pop(loop_key, None)
        future.set_result(token)
        return token

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_default = TokenCache()


def default_cache() -> TokenCache:
    """The process-wide cache every Credentials uses unless given another."""
    return _default
