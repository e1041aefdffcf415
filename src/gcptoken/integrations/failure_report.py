"""Saying that tokens cannot be had, without flooding a log that may itself be exported: the
first failure is said, then at most once per REPEAT_INTERVAL while it goes on, and once when it is
over. A line said while another is being said, in the same thread, is dropped: OpenTelemetry's
LoggingHandler on the root logger turns our line into a log record whose export (through a session
that fails the same way) would say it again, for ever."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["REPEAT_INTERVAL", "FailureReport"]

REPEAT_INTERVAL = 60.0

_saying = threading.local()  # per thread: a line of ours is being handed to the log's handlers


class FailureReport:
    """One failing thing's lines on ``log``."""

    def __init__(self, log: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.clock = clock
        self.failures = 0  # since the last success
        self._said_at = float("-inf")
        self._lock = threading.Lock()

    def failed(self, message: str) -> None:
        with self._lock:
            self.failures += 1
            now = self.clock()
            due = self.failures == 1 or now - self._said_at >= REPEAT_INTERVAL
            if due:
                self._said_at = now
            count = self.failures
        if due:
            more = "" if count == 1 else f" ({count} failures so far)"
            self._say(logging.ERROR, f"{message}{more}")

    def succeeded(self, message: str) -> None:
        with self._lock:
            count, self.failures = self.failures, 0
        if count:
            self._say(logging.WARNING, f"{message} (after {count} failures)")

    def _say(self, level: int, line: str) -> None:
        if getattr(_saying, "now", False):
            return  # our own line, coming back through a handler that exports it: not again
        _saying.now = True
        try:
            self.log.log(level, "%s", line)
        finally:
            _saying.now = False
