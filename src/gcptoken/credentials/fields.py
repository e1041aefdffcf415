"""Reading fields of a credential file. Messages name the field and what is wrong with it (missing,
not a string, empty, not a URL), never its value: a refresh token or key pasted into the wrong
field must not end up on a terminal or in a log."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gcptoken.errors import CredentialsError, InvalidArgumentError

__all__ = ["identifier", "text", "url"]

_IDENTIFIER = re.compile(r"[A-Za-z0-9_:.\-]{1,80}")


def text(info: Mapping[str, Any], name: str, where: str, *, required: bool = True) -> str | None:
    """The field as a non-empty string; None when it is absent and not ``required``."""
    value = info.get(name)
    if value is None:
        if not required:
            return None
        raise CredentialsError(f"{where} has no {name!r}")
    if not isinstance(value, str):
        raise CredentialsError(f"{where}: {name!r} is not a string (it is a JSON {_json_type(value)})")
    if not value.strip():
        raise CredentialsError(f"{where}: {name!r} is empty")
    return value


def url(info: Mapping[str, Any], name: str, where: str, *, required: bool = False) -> str | None:
    """The field as an http(s) URL with a host (checked here, not when a request is sent)."""
    from gcptoken.checks import http_url

    value = text(info, name, where, required=required)
    if value is None:
        return None
    try:
        return http_url(value, "it")
    except InvalidArgumentError as exc:
        problem = str(exc).split("' ", 1)[-1] if "' " in str(exc) else str(exc)
        raise CredentialsError(f"{where}: {name!r} is not a usable http(s) URL ({problem})") from None


def identifier(value: object) -> str:
    """``value`` quoted when it looks like a type name or URN, else a neutral stand-in."""
    return repr(value) if isinstance(value, str) and _IDENTIFIER.fullmatch(value) else "(not shown)"


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
