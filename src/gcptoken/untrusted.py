"""Bytes and text from outside (upstreams' answers, credential files, other programs' output) made
safe to use and to show.

``json_object`` is the one JSON parser for all of them: a JSON object or ``UnreadableJson``, never
a RecursionError (``[`` nested 100,000 deep), an infinity (``1e400``) or a number no double holds,
``NaN`` / ``Infinity`` (Python's json accepts them; JSON does not), a lone surrogate (``"\\ud800"``,
which no UTF-8 encoder can write back), bytes that are not UTF-8, or a top-level array or string.
Each caller turns ``UnreadableJson`` into its own step's typed error.

``is_token_text`` says whether what an upstream handed over as a token can be one.

``one_line`` is how text an upstream wrote (an ``error_description``, an HTML page, a program's
stderr) is shown: control characters escaped, capped, so a message stays one printable line.

Standard library only, and no ``typing`` at run time: the CLI's cached path reads files with it.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False  # not typing's: the cached path must not import it
if TYPE_CHECKING:
    from typing import Any

__all__ = ["MAX_SHOWN", "UnreadableJson", "is_token_text", "json_object", "one_line"]

# How much of an upstream's own words a message shows (Google's error descriptions are shorter).
MAX_SHOWN = 300
# A JSON number must fit a double (as JavaScript and Google's own parsers read JSON): an integer of
# more digits than the largest finite double's (309) cannot, and would only overflow arithmetic.
_MAX_DIGITS = 308


class UnreadableJson(ValueError):
    """Bytes that are not a JSON object gcptoken accepts. ``reason`` is a few words ("nested too
    deeply", "an array"); ``str()`` says it as a predicate ("is not JSON …"). Neither ever repeats
    the bytes."""

    def __init__(self, reason: str, predicate: str | None = None) -> None:
        super().__init__(predicate or f"is not JSON gcptoken accepts ({reason})")
        self.reason = reason


def _no_constant(name: str) -> Any:
    raise UnreadableJson("NaN or Infinity")


def _finite(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # inf (a literal cannot be NaN)
        raise UnreadableJson("a number out of range")
    return value


def _fitting(text: str) -> int:
    if len(text) - text.startswith("-") > _MAX_DIGITS:
        raise UnreadableJson("a number out of range")
    return int(text)


_DECODER = json.JSONDecoder(parse_float=_finite, parse_int=_fitting, parse_constant=_no_constant)
_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false"}


def json_object(data: bytes | str) -> dict[str, Any]:
    """The JSON object in ``data`` (UTF-8 bytes, or text), or UnreadableJson saying why not."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UnreadableJson("not UTF-8", "is not UTF-8 text") from None
    else:
        text = data
    if not text.strip():
        raise UnreadableJson("empty", "is empty")
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise UnreadableJson("nested too deeply") from None
    except UnreadableJson:
        raise
    except ValueError:  # JSONDecodeError, and int()'s own digit limit
        raise UnreadableJson("not JSON", "is not JSON") from None
    if type(value) is not dict:
        kind = "null" if value is None else _KINDS.get(type(value), "no object")
        raise UnreadableJson(kind, f"is not a JSON object but {kind}")
    if "\\u" in text:  # only an escape can make a lone surrogate: check when there is one
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise UnreadableJson("a lone surrogate") from None
        except RecursionError:
            raise UnreadableJson("nested too deeply") from None
    return value


def one_line(text: str, limit: int | None = MAX_SHOWN) -> str:
    """``text`` as one printable line: every character that is not printable (CR, LF, tab, ESC
    and the other C0 and C1 controls, DEL, line separators, bidi overrides, lone surrogates) shown
    as its escape (``\\x1b``), the whole cut to ``limit`` characters (None: no cut) with "…"."""
    cut = limit is not None and len(text) > limit
    if limit is not None:
        text = text[:limit]  # first: a megabyte of someone's words is never walked whole
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    if limit is not None and len(text) > limit:
        text, cut = text[:limit], True
    return text + "…" if cut else text


def is_token_text(value: object) -> bool:
    """Whether ``value`` can be a token: printable ASCII without spaces, all that travels in an
    ``Authorization`` header (RFC 6750's b64token and compact JWS are narrower still). CR, LF, ESC,
    DEL, other controls or non-ASCII characters make it something else, which is neither printed
    (``--format header`` is one line) nor sent."""
    return isinstance(value, str) and value.isascii() and value.isprintable() and bool(value) and " " not in value
