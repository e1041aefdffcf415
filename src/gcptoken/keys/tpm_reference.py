"""What names a TPM 2.0 key in a credential file, parsed without a TPM: a TSS2 key file (PEM
``TSS2 PRIVATE KEY``, the format of tpm2-openssl and openssl_tpm2_engine) or our short form for a
persistent key, ``tpm2:handle=0x81xxxxxx`` (``;empty-auth`` when the key has no authorization value).

Standard library only: the CLI's cached path imports this. The DER reader is small, strict and
bounded: definite minimal lengths, no trailing bytes, a size cap; anything else is one
``HardwareKeyError`` line.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from gcptoken.errors import HardwareKeyError

__all__ = ["OWNER_HIERARCHY", "TpmReference", "encode_key_file", "handle_reference", "parse_reference"]

# TPM_RH_OWNER: the storage hierarchy. A TSS2 key whose parent is this handle sits under the
# primary key created from a fixed template (tpm2-openssl: src/tpm2-provider-pkey.c).
OWNER_HIERARCHY = 0x40000001
_PERSISTENT_FIRST, _PERSISTENT_LAST = 0x81000000, 0x81FFFFFF  # TPM 2.0 Part 2, §7.2: TPM_HT_PERSISTENT

# "ASN.1 Specification for TPM 2.0 Key Files" (J. Bottomley), §3.1: id-loadablekey. The importable
# (…1.4) and sealed (…1.5) forms are not signing keys a TPM can load as they are.
_LOADABLE_KEY_OID = "2.23.133.10.1.3"
_PEM_LABEL = "TSS2 PRIVATE KEY"
_MAX_TEXT = 16 * 1024  # an RSA-2048 TSS2 key is about 1.2 kB of PEM
_HANDLE_FORM = re.compile(r"tpm2:handle=0x([0-9a-fA-F]{8})(;empty-auth)?")

_BOOLEAN, _INTEGER, _OCTET_STRING, _OID, _SEQUENCE = 0x01, 0x02, 0x04, 0x06, 0x30
_CONTEXT_EMPTY_AUTH, _CONTEXT_POLICY, _CONTEXT_SECRET, _CONTEXT_AUTH_POLICY = 0xA0, 0xA1, 0xA2, 0xA3
_CONTEXT_DESCRIPTION, _CONTEXT_RSA_PARENT = 0xA4, 0xA5


@dataclass(frozen=True)
class TpmReference:
    """A TPM key's name: a persistent ``handle``, or a key blob (``public``: TPM2B_PUBLIC and
    ``private``: TPM2B_PRIVATE, both marshalled as the TPM gave them) under ``parent``.

    ``needs_auth`` is False when the key's authorization value is empty; ``text`` is the exact
    text to put in a credential file; ``rsa_parent`` asks for the RSA storage primary even on a
    TPM that has ECC (the key file's ``rsaParent``).
    """

    text: str
    needs_auth: bool
    handle: int | None = None
    parent: int = OWNER_HIERARCHY
    public: bytes = b""
    private: bytes = b""
    rsa_parent: bool = False


def parse_reference(text: str) -> TpmReference:
    """Parse a TSS2 PEM key file or ``tpm2:handle=0x81…``; ``HardwareKeyError`` otherwise."""
    if not isinstance(text, str) or len(text) > _MAX_TEXT:
        raise HardwareKeyError("a TPM key reference must be a TSS2 PEM key or tpm2:handle=0x81…, at most 16 KiB")
    stripped = text.strip()
    if stripped.startswith("tpm2:"):
        return _parse_handle(stripped)
    if stripped.startswith(f"-----BEGIN {_PEM_LABEL}-----"):
        return _parse_key_file(_pem_body(stripped))
    raise HardwareKeyError(
        "not a TPM key reference: expected a TSS2 PRIVATE KEY PEM or tpm2:handle=0x81000000–0x81ffffff"
    )


def handle_reference(handle: int, *, empty_auth: bool) -> TpmReference:
    """The reference to a persistent key at ``handle``."""
    if not _PERSISTENT_FIRST <= handle <= _PERSISTENT_LAST:
        raise HardwareKeyError("a persistent TPM handle is between 0x81000000 and 0x81ffffff")
    return TpmReference(
        text=f"tpm2:handle=0x{handle:08x}" + (";empty-auth" if empty_auth else ""),
        needs_auth=not empty_auth,
        handle=handle,
    )


def _parse_handle(text: str) -> TpmReference:
    match = _HANDLE_FORM.fullmatch(text)
    if match is None:
        raise HardwareKeyError(
            "a TPM handle reference reads tpm2:handle=0x81xxxxxx (8 hex digits), optionally ;empty-auth"
        )
    return handle_reference(int(match.group(1), 16), empty_auth=match.group(2) is not None)


def _pem_body(text: str) -> bytes:
    lines = text.splitlines()
    if lines[0].strip() != f"-----BEGIN {_PEM_LABEL}-----" or lines[-1].strip() != f"-----END {_PEM_LABEL}-----":
        raise HardwareKeyError("the TSS2 key's PEM must be one BEGIN line, base64 lines and one END line")
    if len(lines) < 3:
        raise HardwareKeyError("the TSS2 key's PEM has nothing between BEGIN and END")
    body = "".join(line.strip() for line in lines[1:-1])
    if not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", body):
        raise HardwareKeyError("the TSS2 key's PEM body is not base64")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise HardwareKeyError("the TSS2 key's PEM body is not valid base64") from None


def _pem(der: bytes) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {_PEM_LABEL}-----", *lines, f"-----END {_PEM_LABEL}-----", ""])


class _Der:
    """A cursor over DER bytes: each read checks the tag, a definite minimal length, the bounds."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def done(self) -> bool:
        return self.at == len(self.data)

    def peek(self) -> int | None:
        return self.data[self.at] if self.at < len(self.data) else None

    def read(self, tag: int) -> bytes:
        if self.peek() != tag:
            raise HardwareKeyError("the TSS2 key is not the TPMKey ASN.1 structure")
        length, self.at = self._length(self.at + 1)
        if length > len(self.data) - self.at:
            raise HardwareKeyError("the TSS2 key's DER is truncated")
        value = self.data[self.at : self.at + length]
        self.at += length
        return value

    def _length(self, at: int) -> tuple[int, int]:
        if at >= len(self.data):
            raise HardwareKeyError("the TSS2 key's DER is truncated")
        first = self.data[at]
        if first < 0x80:
            return first, at + 1
        count = first & 0x7F
        if count == 0 or count > 3 or at + 1 + count > len(self.data):
            raise HardwareKeyError("the TSS2 key's DER has an indefinite, oversized or truncated length")
        length = int.from_bytes(self.data[at + 1 : at + 1 + count], "big")
        if length < 0x80 or length < 1 << (8 * (count - 1)):
            raise HardwareKeyError("the TSS2 key's DER length is not minimal (not DER)")
        return length, at + 1 + count


def _oid(value: bytes) -> str:
    if not value or value[-1] & 0x80 or value[0] == 0x80:
        raise HardwareKeyError("the TSS2 key's type is not a valid OBJECT IDENTIFIER")
    arcs, current = [], 0
    for byte in value:
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(current)
            current = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first, *arcs[1:]])


def _boolean(wrapped: bytes) -> bool:
    inner = _Der(wrapped)
    value = inner.read(_BOOLEAN)
    if not inner.done() or len(value) != 1:
        raise HardwareKeyError("the TSS2 key's emptyAuth/rsaParent is not a BOOLEAN")
    return value != b"\x00"  # tpm2-openssl writes TRUE as 01, DER says FF: both are true


def _unsigned(value: bytes) -> int:
    if not value or value[0] & 0x80 or (len(value) > 1 and value[0] == 0 and not value[1] & 0x80):
        raise HardwareKeyError("the TSS2 key's parent is not a minimal non-negative INTEGER")
    return int.from_bytes(value, "big")


def _tpm2b(value: bytes, what: str) -> bytes:
    """A marshalled TPM2B_*: a 2-byte big-endian size, then exactly that many bytes."""
    if len(value) < 3 or int.from_bytes(value[:2], "big") != len(value) - 2:
        raise HardwareKeyError(f"the TSS2 key's {what} is not a marshalled TPM2B structure")
    return value


def _parse_key_file(der: bytes) -> TpmReference:
    outer = _Der(der)
    fields = _Der(outer.read(_SEQUENCE))
    if not outer.done():
        raise HardwareKeyError("the TSS2 key has bytes after its ASN.1 structure")
    if _oid(fields.read(_OID)) != _LOADABLE_KEY_OID:
        raise HardwareKeyError("the TSS2 key is not a loadable key (importable and sealed keys cannot sign here)")
    empty_auth, rsa_parent = False, False
    if fields.peek() == _CONTEXT_EMPTY_AUTH:
        empty_auth = _boolean(fields.read(_CONTEXT_EMPTY_AUTH))
    if fields.peek() in (_CONTEXT_POLICY, _CONTEXT_SECRET, _CONTEXT_AUTH_POLICY):
        raise HardwareKeyError("the TSS2 key needs a TPM policy or an imported secret: not supported here")
    if fields.peek() == _CONTEXT_DESCRIPTION:
        fields.read(_CONTEXT_DESCRIPTION)  # a free-text label; nothing to act on
    if fields.peek() == _CONTEXT_RSA_PARENT:
        rsa_parent = _boolean(fields.read(_CONTEXT_RSA_PARENT))
    parent = _unsigned(fields.read(_INTEGER)) or OWNER_HIERARCHY  # 0 means the owner (tpm2-openssl)
    if parent > 0xFFFFFFFF:
        raise HardwareKeyError("the TSS2 key's parent is not a TPM handle")
    public = _tpm2b(fields.read(_OCTET_STRING), "public part")
    private = _tpm2b(fields.read(_OCTET_STRING), "private part")
    if not fields.done():
        raise HardwareKeyError("the TSS2 key has unexpected fields after its private part")
    return TpmReference(
        text=_pem(der),
        needs_auth=not empty_auth,
        parent=parent,
        public=public,
        private=private,
        rsa_parent=rsa_parent,
    )


def encode_key_file(
    public: bytes, private: bytes, *, empty_auth: bool, parent: int = OWNER_HIERARCHY, rsa_parent: bool = False
) -> TpmReference:
    """The TSS2 key file for a key's marshalled TPM2B_PUBLIC and TPM2B_PRIVATE (``rsa_parent``: made
    under the owner's RSA storage primary on a TPM that also has ECC)."""

    def tlv(tag: int, value: bytes) -> bytes:
        n = len(value)
        length = (
            bytes([n])
            if n < 0x80
            else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
        )
        return bytes([tag]) + length + value

    oid = bytes([2 * 40 + 23, 0x81, 0x05, 10, 1, 3])  # 2.23.133.10.1.3 (133 = 0x81 0x05 in base 128)
    parent_bytes = parent.to_bytes((parent.bit_length() + 8) // 8, "big")  # a leading 0 keeps it positive
    # emptyAuth always written, FALSE too: tpm2-openssl 1.1 asks for no password when it is absent.
    body = tlv(_OID, oid) + tlv(_CONTEXT_EMPTY_AUTH, tlv(_BOOLEAN, b"\xff" if empty_auth else b"\x00"))
    if rsa_parent:
        body += tlv(_CONTEXT_RSA_PARENT, tlv(_BOOLEAN, b"\xff"))
    body += tlv(_INTEGER, parent_bytes) + tlv(_OCTET_STRING, public) + tlv(_OCTET_STRING, private)
    return parse_reference(_pem(tlv(_SEQUENCE, body)))
