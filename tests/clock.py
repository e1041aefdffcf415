"""A clock an emulator can run on, set ahead or behind by tests (``offset`` seconds)."""

from __future__ import annotations

import time


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset
