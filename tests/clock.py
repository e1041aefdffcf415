"""Clocks for tests: one an emulator can run on, set ahead or behind (``offset`` seconds), and a
timer that stands still until the test moves it (``now``)."""

from __future__ import annotations

import time


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Timer:
    """A key cache's timer, moved by the test (token times use the real clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
