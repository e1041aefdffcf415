"""Measuring on a noisy machine: contenders alternate in small chunks within one run, so drift hits
each alike; medians over rounds are reported, and only ratios between contenders mean anything."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Row", "in_threads", "interleaved", "machine", "median_wall", "median_walls"]

# A contender processes the chunk's indices it wants (a slow one may take every k-th) and says
# how many items it handled.
Contender = Callable[[range], int]


@dataclass
class Row:
    """One line of the results: a measured value, and where there is one, the ratio it is judged by."""

    group: str
    name: str
    value: float
    unit: str
    ratio: float | None = None
    ratio_of: str = ""
    goal: str = ""
    meets: bool | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def in_threads(count: int, work: Callable[[int], None]) -> float:
    """Runs ``work(0)`` … ``work(count - 1)`` in as many threads at once; the seconds they took."""
    began = time.perf_counter()
    threads = [threading.Thread(target=work, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def interleaved(
    contenders: dict[str, Contender],
    items: int,
    rounds: int,
    chunk: int,
    before_chunk: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Median items per second for each contender, all measured in the same rounds."""
    for run in contenders.values():
        run(range(min(items, chunk)))  # warm-up: caches, allocator, connections
    per_round: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        spent = dict.fromkeys(contenders, 0.0)
        done = dict.fromkeys(contenders, 0)
        for start in range(0, items, chunk):
            indices = range(start, min(start + chunk, items))
            if before_chunk is not None:
                before_chunk()
            for name, run in contenders.items():
                began = time.perf_counter()
                done[name] += run(indices)
                spent[name] += time.perf_counter() - began
        for name in contenders:
            per_round[name].append(done[name] / spent[name])
    return {name: statistics.median(samples) for name, samples in per_round.items()}


def median_wall(command: Sequence[str], env: dict[str, str], runs: int) -> float:
    """Median wall time of a command in milliseconds; it must succeed every time."""
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples)


def median_walls(commands: dict[str, tuple[Sequence[str], dict[str, str]]], runs: int) -> dict[str, float]:
    """Median wall times (ms) of several commands run in turn, round after round, so that drift
    on a noisy machine hits each alike; each must succeed every time."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (command, env) in commands.items():
            began = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
            samples[name].append((time.perf_counter() - began) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
