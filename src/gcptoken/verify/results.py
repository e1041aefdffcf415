"""Recently verified tokens, so a token seen again skips the signature check.

Services see the same token many times (a client reuses its token for up to an hour), and the
RSA operation is nearly all of a verification's cost. Entries are keyed by the token: the dict
hashes it (SipHash with a per-process secret, computed once per string) and a hit also compares
the whole token, so only the identical token, signature included, can ever hit. A SHA-256 key
would cost a third of what a hit saves. An entry holds the payload bytes (every hit decodes fresh
claims, so a caller that edits its claims cannot change what the next caller gets) and the window
in which the token is valid, so it can never outlive ``exp`` (plus the verifier's clock skew).
The cache lives in process memory only, like the requests that carried the tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["DEFAULT_SIZE", "Entry", "ResultCache"]

DEFAULT_SIZE = 4096


# (payload, valid_from, valid_until, kid): a plain tuple, the cheapest thing to build per token.
# The kid lets a result be forgotten when its key leaves the published set.
Entry = tuple[bytes, float, float, str]


class ResultCache:
    """Bounded; the oldest entry goes first. ``entries.get`` is the lock-free read path."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self.entries: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def put(self, key: str, entry: Entry) -> None:
        if self.size <= 0:
            return
        with self._lock:
            entries = self.entries
            while len(entries) >= self.size:
                del entries[next(iter(entries))]  # dicts keep insertion order: the oldest first
            entries[key] = entry

    def drop_where(self, condition: Callable[[Entry], bool]) -> None:
        with self._lock:
            for key in [key for key, entry in self.entries.items() if condition(entry)]:
                del self.entries[key]

    def drop(self, key: str) -> None:
        with self._lock:
            self.entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()

    def __len__(self) -> int:
        return len(self.entries)
