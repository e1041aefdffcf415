"""Compact JWS/JWT *format*: base64url, splitting, decoding. No cryptography here, so code that
only reads tokens (``gcptoken decode``, cached CLI paths) never pays for importing it."""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C half of signal: no enums to build
import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gcptoken.errors import VerificationError

__all__ = [
    "MAX_TOKEN_LENGTH",
    "TO_STANDARD",
    "ParsedToken",
    "SignatureKey",
    "b64_decode_translated",
    "b64url_decode",
    "b64url_decode_bytes",
    "b64url_encode",
    "json_dumps",
    "json_loads",
    "json_segment",
    "parse",
    "signature_segment",
    "split",
]

# Google's ID tokens are ~1 KB; anything this large is refused before any decoding work.
MAX_TOKEN_LENGTH = 16 * 1024

json_loads: Callable[[bytes], Any]
json_dumps: Callable[[Any], bytes]


def _handled_first() -> None:
    """Calling a Python function runs the handlers of signals that have already arrived."""


def _orjson_functions() -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    """orjson's module init crashes the interpreter (SIGSEGV, not KeyboardInterrupt) when a signal
    handler raises while it runs, and it runs ~40 ms of imports: Ctrl-C then would kill us with no
    word. So SIGINT and SIGTERM wait until it is loaded, and one that came just before is handled
    first, outside it."""
    if not hasattr(_signal, "pthread_sigmask"):  # Windows: no signal masks (and no such signals)
        from orjson import dumps, loads

        return loads, dumps
    held = _signal.pthread_sigmask(_signal.SIG_BLOCK, (_signal.SIGINT, _signal.SIGTERM))
    try:
        _handled_first()
        from orjson import dumps, loads
    finally:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, held)
    return loads, dumps


try:  # JSON decoding is a third of verification's own cost; orjson makes it ~4× cheaper.
    _orjson_loads, _orjson_dumps = _orjson_functions()
    json_loads = _orjson_loads
    json_dumps = _orjson_dumps  # compact, UTF-8
except ImportError:  # pragma: no cover - PyPy, or a platform without an orjson wheel

    def _stdlib_loads(data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))

    def _stdlib_dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    json_loads = _stdlib_loads
    json_dumps = _stdlib_dumps


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url, as JWS uses."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# base64url → standard alphabet; '+', '/' and '=' (valid in standard base64, not in unpadded
# base64url) become '*', which strict decoding refuses like any other stray byte.
TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/***")
_PADDING = (b"", b"===", b"==", b"=")  # by length % 4; a length of 1 mod 4 is never valid
# The last character of an unpadded segment carries 2 (length % 4 == 3) or 4 (== 2) bits that
# decoders drop; only a character whose dropped bits are zero is the canonical spelling. Refusing
# the others (as PyJWT and joserfc do) gives each token exactly one spelling.
_CANONICAL_LAST = (None, None, frozenset(b"AQgw"), frozenset(b"AEIMQUYcgkosw048"))


def _canonical(data: bytes) -> bool:
    allowed = _CANONICAL_LAST[len(data) % 4]
    return allowed is None or data[-1] in allowed


try:  # base64 decoding is the largest share of verification's own cost; pybase64 halves it.
    from pybase64 import b64decode as _pybase64_decode

    def b64_decode_translated(data: bytes) -> bytes:
        """Strict decoding of unpadded base64url already passed through ``TO_STANDARD``."""
        if not _canonical(data):
            raise ValueError("not canonical base64url")
        try:
            return _pybase64_decode(data + _PADDING[len(data) % 4], validate=True)
        except ValueError:  # binascii.Error is one
            raise ValueError("not base64url") from None

except ImportError:  # pragma: no cover - PyPy, or a platform without a pybase64 wheel
    _STANDARD_B64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")

    def b64_decode_translated(data: bytes) -> bytes:
        """Strict decoding of unpadded base64url already passed through ``TO_STANDARD``."""
        padded = data + _PADDING[len(data) % 4]
        if not _canonical(data) or not _STANDARD_B64.fullmatch(padded):  # a2b_base64 alone skips stray bytes
            raise ValueError("not base64url")
        try:
            return binascii.a2b_base64(padded)
        except binascii.Error:
            raise ValueError("not base64url") from None


def b64url_decode_bytes(data: bytes) -> bytes:
    """Strict unpadded base64url: any byte outside the alphabet is a ValueError."""
    return b64_decode_translated(data.translate(TO_STANDARD))


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url: any character outside the alphabet is a ValueError."""
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("not base64url") from None
    return b64url_decode_bytes(data)


class SignatureKey(Protocol):
    """What verifying a parsed token needs of a key (jws.VerifyingKey is one); a protocol here, so
    this crypto-free module does not depend on jws, which depends on it."""

    @property
    def alg(self) -> str: ...

    def verify(self, signing_input: bytes, signature: bytes) -> bool: ...


@dataclass(frozen=True)
class ParsedToken:
    """A compact JWS split and decoded, not yet verified."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    def verify_with(self, key: SignatureKey) -> None:
        """Check the signature with ``key``; the header's alg must be exactly the key's."""
        alg = self.header.get("alg")
        if alg != key.alg:
            raise VerificationError(
                "algorithm",
                f"token algorithm {str(alg)[:20]!r} is not allowed for this key (needs {key.alg})",
            )
        if not key.verify(self.signing_input, self.signature):
            raise VerificationError("signature", "signature does not verify")


def json_segment(segment: str, what: str) -> dict[str, Any]:
    """A base64url JSON object segment (header or payload), or VerificationError("malformed")."""
    try:
        value = json_loads(b64url_decode(segment))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise VerificationError("malformed", f"token {what} is not base64url-encoded JSON") from exc
    if not isinstance(value, dict):
        raise VerificationError("malformed", f"token {what} is not a JSON object")
    return value


def signature_segment(segment: str) -> bytes:
    try:
        return b64url_decode(segment)
    except ValueError as exc:
        raise VerificationError("malformed", "token signature is not base64url") from exc


def split(token: str) -> tuple[str, str, str]:
    """The three segments of a compact JWS, or VerificationError("malformed")."""
    if not token:
        raise VerificationError("malformed", "token is empty")
    if len(token) > MAX_TOKEN_LENGTH:
        raise VerificationError("malformed", f"token is larger than {MAX_TOKEN_LENGTH} bytes")
    parts = token.split(".")
    if len(parts) != 3:
        count = len(parts)
        raise VerificationError("malformed", f"token has {count} part{'s' if count != 1 else ''}; a signed JWT has 3")
    return parts[0], parts[1], parts[2]


def parse(token: str) -> ParsedToken:
    """Split and decode a compact JWS; raises VerificationError(reason="malformed")."""
    header_b64, claims_b64, signature_b64 = split(token)
    header = json_segment(header_b64, "header")
    claims = json_segment(claims_b64, "payload")
    signature = signature_segment(signature_b64)
    signing_input = token[: len(header_b64) + 1 + len(claims_b64)].encode("ascii")
    return ParsedToken(header, claims, signing_input, signature)
