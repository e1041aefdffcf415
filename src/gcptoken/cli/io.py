"""Reading tokens from arguments or stdin, and writing results to stdout."""

from __future__ import annotations

import json
import sys
from typing import Any

from gcptoken.errors import InvalidArgumentError

__all__ = ["print_json", "read_token"]


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
