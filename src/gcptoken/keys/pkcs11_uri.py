"""RFC 7512 ``pkcs11:`` URIs: which token, which key and which module a credential names.

Standard library only (the CLI's cached path imports this). The grammar is RFC 7512 §2.3
(https://www.rfc-editor.org/rfc/rfc7512#section-2.3): path attributes split by ``;``, query
attributes after ``?`` split by ``&``, values percent-encoded. A PIN in the URI (``pin-value``,
``pin-source``) is refused: the PIN comes from an environment variable or a prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from gcptoken.errors import HardwareKeyError

__all__ = ["MAX_URI_LENGTH", "Pkcs11Uri", "parse_uri"]

# A URI names a key, it does not carry data: longer than this is a mistake or an attack.
MAX_URI_LENGTH: Final = 4096

# RFC 7512 §2.3, in the order canonical text writes them.
PATH_ATTRIBUTES: Final = (
    "token",
    "manufacturer",
    "serial",
    "model",
    "library-manufacturer",
    "library-description",
    "library-version",
    "slot-description",
    "slot-manufacturer",
    "slot-id",
    "object",
    "type",
    "id",
)
QUERY_ATTRIBUTES: Final = ("module-name", "module-path")
OBJECT_TYPES: Final = frozenset({"public", "private", "cert", "secret-key", "data"})
PIN_ATTRIBUTES: Final = frozenset({"pin-value", "pin-source"})

# pk11-pchar / pk11-qchar: unreserved (RFC 3986), pk11-res-avail, plus "&" in the path and
# "/", "?", "|" in the query. Anything else must arrive percent-encoded.
_UNRESERVED = "A-Za-z0-9\\-._~"
_RES_AVAIL = ":\\[\\]@!$'()*+,="
_PATH_VALUE = re.compile(f"(?:[{_UNRESERVED}{_RES_AVAIL}&]|%[0-9A-Fa-f]{{2}})*")
_QUERY_VALUE = re.compile(f"(?:[{_UNRESERVED}{_RES_AVAIL}/?|]|%[0-9A-Fa-f]{{2}})*")
_SAFE_PATH = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:[]@!$'()*+,=&")
_SAFE_QUERY = (_SAFE_PATH - {"&"}) | {"/", "?", "|"}
_DIGITS = re.compile(r"[0-9]+")
_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)?")


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed ``pkcs11:`` URI: ``pairs`` holds each path and query attribute given with its
    decoded text, in canonical order (so equal URIs compare and hash equal); ``id`` (CKA_ID) is
    bytes, kept apart because it need not be UTF-8."""

    pairs: tuple[tuple[str, str], ...] = ()
    id: bytes | None = None

    @property
    def attributes(self) -> dict[str, str]:
        return dict(self.pairs)

    def get(self, name: str) -> str | None:
        return self.attributes.get(name)

    @property
    def token(self) -> str | None:
        return self.attributes.get("token")

    @property
    def object(self) -> str | None:
        return self.attributes.get("object")

    @property
    def type(self) -> str | None:
        return self.attributes.get("type")

    @property
    def module_path(self) -> str | None:
        return self.attributes.get("module-path")

    @property
    def text(self) -> str:
        """The canonical text: attributes in RFC order, every byte outside pk11-pchar as ``%XX``
        (the id entirely so, as RFC 7512's examples write it); ``parse_uri(u.text) == u``."""
        path = []
        for name in PATH_ATTRIBUTES:
            if name == "id":
                if self.id is not None:
                    path.append("id=" + "".join(f"%{byte:02X}" for byte in self.id))
            elif (value := self.attributes.get(name)) is not None:
                path.append(f"{name}={_encode(value, _SAFE_PATH)}")
        query = [
            f"{name}={_encode(value, _SAFE_QUERY)}"
            for name in QUERY_ATTRIBUTES
            if (value := self.attributes.get(name)) is not None
        ]
        return "pkcs11:" + ";".join(path) + ("?" + "&".join(query) if query else "")

    def with_id(self, key_id: bytes | None) -> Pkcs11Uri:
        """This URI naming the object whose CKA_ID is ``key_id`` (None: any id)."""
        return Pkcs11Uri(self.pairs, key_id)

    def with_attributes(self, **changes: str | None) -> Pkcs11Uri:
        """This URI with attributes set (``module_path=`` for ``module-path``) or removed (None)."""
        merged = dict(self.attributes)
        for key, value in changes.items():
            name = key.replace("_", "-")
            if (name not in PATH_ATTRIBUTES and name not in QUERY_ATTRIBUTES) or name == "id":
                raise ValueError(f"not a PKCS#11 URI attribute: {name}")
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        return _make(merged, self.id)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Pkcs11Uri({self.text!r})"


def _encode(value: str, safe: frozenset[str]) -> str:
    return "".join(char if char in safe else "".join(f"%{b:02X}" for b in char.encode()) for char in value)


def _decode(raw: str) -> bytes:
    """Percent-decoding (RFC 3986 §2.1): ``%XX`` is one byte; the grammar already checked each."""
    out = bytearray()
    index = 0
    while index < len(raw):
        if raw[index] == "%":
            out.append(int(raw[index + 1 : index + 3], 16))
            index += 3
        else:
            out += raw[index].encode("ascii")
            index += 1
    return bytes(out)


def _refuse(why: str) -> HardwareKeyError:
    return HardwareKeyError(f"invalid PKCS#11 URI: {why}")


def _attribute(part: str, grammar: re.Pattern[str], where: str, known: tuple[str, ...]) -> tuple[str, str]:
    name, equals, raw = part.partition("=")
    if not equals:
        raise _refuse(f"{where} attribute {name[:40]!r} has no '='")
    if name in PIN_ATTRIBUTES:
        raise HardwareKeyError(
            f"a PKCS#11 URI may not carry the PIN ({name}): gcptoken reads it from $GCPTOKEN_KEY_PIN or asks for it"
        )
    if name not in known:
        raise _refuse(f"unknown {where} attribute {name[:40]!r}" + _where_it_belongs(name))
    if grammar.fullmatch(raw) is None:
        raise _refuse(f"the value of {name[:40]!r} has a character that must be percent-encoded")
    return name, raw


def _text_value(name: str, raw: str) -> str:
    try:
        value = _decode(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse(f"{name} is not UTF-8 text once percent-decoded") from None
    if name == "type" and value not in OBJECT_TYPES:
        raise _refuse(f"type must be one of {', '.join(sorted(OBJECT_TYPES))}")
    if name == "slot-id" and _DIGITS.fullmatch(value) is None:
        raise _refuse("slot-id must be a decimal number")
    if name == "library-version" and _VERSION.fullmatch(value) is None:
        raise _refuse("library-version must be MAJOR or MAJOR.MINOR")
    if "\x00" in value:
        raise _refuse(f"{name} contains a NUL character")
    return value


def parse_uri(text: str) -> Pkcs11Uri:
    """Parse a ``pkcs11:`` URI (RFC 7512); ``HardwareKeyError`` for anything it does not allow.

    Attribute names are case-sensitive and each appears at most once (§2.3); unknown ones, vendor
    attributes included, are refused, as a consumer may (§2.4): they would match nothing here.
    """
    if not isinstance(text, str):
        raise _refuse("not a string")
    if len(text) > MAX_URI_LENGTH:
        raise _refuse(f"longer than {MAX_URI_LENGTH} characters")
    scheme, colon, rest = text.partition(":")
    if not colon or scheme.lower() != "pkcs11":
        raise _refuse("it must start with 'pkcs11:'")
    if "#" in rest:
        raise _refuse("a fragment ('#') is not allowed")
    path, question, query = rest.partition("?")
    attributes: dict[str, str] = {}
    key_id: bytes | None = None
    for part in path.split(";") if path else []:
        name, raw = _attribute(part, _PATH_VALUE, "path", PATH_ATTRIBUTES)
        if name in attributes or (name == "id" and key_id is not None):
            raise _refuse(f"{name} appears twice")
        if name == "id":
            key_id = _decode(raw)
        else:
            attributes[name] = _text_value(name, raw)
    if question and not query:
        raise _refuse("an empty query after '?'")
    for part in query.split("&") if query else []:
        name, raw = _attribute(part, _QUERY_VALUE, "query", QUERY_ATTRIBUTES)
        if name in attributes:
            raise _refuse(f"{name} appears twice")
        attributes[name] = _text_value(name, raw)
    return _make(attributes, key_id)


def _make(attributes: dict[str, str], key_id: bytes | None) -> Pkcs11Uri:
    order = PATH_ATTRIBUTES + QUERY_ATTRIBUTES
    return Pkcs11Uri(tuple(sorted(attributes.items(), key=lambda item: order.index(item[0]))), key_id)


def _where_it_belongs(name: str) -> str:
    if name in QUERY_ATTRIBUTES:
        return " (it belongs in the query, after '?')"
    if name in PATH_ATTRIBUTES:
        return " (it belongs in the path, before '?')"
    return ""
