"""Keeps ``gcptoken demo``'s output within WIDTH columns: a service account's address shows as its
name (``demo-runner@…``, the project is the same on every row), a long answer continues on the
next line under its column, and a long command for real Google is continued with ``\\``, its
comment on a line of its own."""

from __future__ import annotations

import re

__all__ = ["WIDTH", "answer_lines", "command_lines", "fit"]

WIDTH = 100
_SERVICE_ACCOUNT = re.compile(r"@[\w.-]+\.iam\.gserviceaccount\.com\b")


def fit(text: str, room: int) -> str:
    """``text`` cut to ``room`` columns, the cut marked with ``…``."""
    return text if len(text) <= room else text[: max(room - 1, 0)] + "…"


def answer_lines(answer: str, room: int) -> list[str]:
    """The service's answer in lines of at most ``room`` columns (at least one line)."""
    words = _SERVICE_ACCOUNT.sub("@…", answer).split()
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= room:
            lines[-1] += " " + word
        else:
            lines.append(fit(word, room))
    return lines or [""]


def command_lines(command: str, indent: int) -> list[str]:
    """``command`` (``COMMAND   # comment``) as lines within WIDTH: the comment first, then the
    command, broken at spaces with a trailing `` \\`` so it still pastes as one command."""
    command, _, comment = command.partition("   # ")
    lines = [f"{' ' * indent}# {line}" for line in answer_lines(comment, WIDTH - indent - 2)] if comment else []
    current = " " * indent
    for word in command.split(" "):
        if current.strip() and len(current) + 1 + len(word) + 2 > WIDTH:
            lines.append(current + " \\")
            current = " " * (indent + 4) + word
        else:
            current = current + " " + word if current.strip() else current + word
    return [*lines, current]
