"""Reading tokens from arguments or stdin, writing results to stdout, and the one line an error becomes."""

from __future__ import annotations

import json
import sys
from typing import Any

from gcptoken.errors import GcpTokenError, InvalidArgumentError
from gcptoken.untrusted import one_line

__all__ = ["error_line", "print_json", "read_token"]

# An error line is cut here (an upstream's own words are already cut to 300 characters where read).
MAX_MESSAGE = 2000


def read_token(argument: str) -> str:
    """The token from the argument, or from stdin for ``-``; a leading ``Bearer`` is dropped."""
    if argument == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InvalidArgumentError("no token given: pass TOKEN or pipe it on stdin")
        argument = sys.stdin.read()
    token = argument.strip()
    for prefix in ("Authorization:", "Bearer "):
        if token[: len(prefix)].lower() == prefix.lower():
            token = token[len(prefix) :].strip()
    if not token:
        raise InvalidArgumentError("the token is empty")
    return token


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def error_line(exc: GcpTokenError) -> str:
    """The line the command line prints for ``exc``, and the only way errors are shown: one
    printable line, always. Whitespace runs become one space; any other control character (ESC,
    DEL, C1, a lone surrogate), whatever a path, a file or an upstream put in the message, is
    shown escaped; the whole is cut at MAX_MESSAGE characters."""
    reason = getattr(exc, "reason", None)  # VerificationError: the code scripts can match on
    prefix = f"invalid token ({reason})" if reason else "error"
    return f"gcptoken: {prefix}: {one_line(' '.join(str(exc).split()), MAX_MESSAGE)}"
