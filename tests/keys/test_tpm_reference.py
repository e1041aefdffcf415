"""TPM key references parsed without a TPM: the TSS2 key file's ASN.1 read strictly, the short
handle form, and nothing but HardwareKeyError for any other input."""

from __future__ import annotations

import base64
import contextlib
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gcptoken.errors import HardwareKeyError
from gcptoken.keys.tpm_reference import OWNER_HIERARCHY, encode_key_file, parse_reference

PUBLIC = b"\x00\x04abcd"  # shaped as TPM2B structures; the TPM alone reads what is inside
PRIVATE = b"\x00\x03xyz"


def _pem(der: bytes) -> str:
    body = base64.b64encode(der).decode()
    return f"-----BEGIN TSS2 PRIVATE KEY-----\n{body}\n-----END TSS2 PRIVATE KEY-----\n"


def _key_der(*fields: bytes) -> bytes:
    body = b"".join(fields)
    return bytes([0x30, len(body)]) + body


OID = bytes.fromhex("06066781050a0103")  # 2.23.133.10.1.3, id-loadablekey
PARENT = bytes.fromhex("020440000001")
OCTETS = bytes([0x04, len(PUBLIC)]) + PUBLIC + bytes([0x04, len(PRIVATE)]) + PRIVATE


def test_a_key_file_round_trips_and_says_whether_it_needs_a_pin() -> None:
    with_pin = encode_key_file(PUBLIC, PRIVATE, empty_auth=False)
    assert with_pin.needs_auth and with_pin.handle is None
    assert (with_pin.public, with_pin.private, with_pin.parent) == (PUBLIC, PRIVATE, OWNER_HIERARCHY)
    assert with_pin.text.startswith("-----BEGIN TSS2 PRIVATE KEY-----\n") and with_pin.text.endswith("-----\n")
    assert parse_reference(with_pin.text) == with_pin
    empty = encode_key_file(PUBLIC, PRIVATE, empty_auth=True)
    assert not empty.needs_auth and parse_reference("\n  " + empty.text + "\n\n") == empty
    rsa = encode_key_file(PUBLIC, PRIVATE, empty_auth=True, rsa_parent=True, parent=0x81000001)
    assert (rsa.rsa_parent, rsa.parent, with_pin.rsa_parent) == (True, 0x81000001, False)


def test_tpm2_openssl_true_is_read_as_true() -> None:
    """tpm2-openssl writes emptyAuth TRUE as 01 (DER says FF): its keys must still load without a PIN."""
    der = _key_der(OID, bytes.fromhex("a003010101"), PARENT, OCTETS)
    assert parse_reference(_pem(der)).needs_auth is False
    der = _key_der(OID, bytes.fromhex("a003010100"), PARENT, OCTETS)
    assert parse_reference(_pem(der)).needs_auth is True


def test_a_persistent_parent_and_a_description_are_read() -> None:
    description = b"\xa4\x07\x0c\x05hello"
    der = _key_der(OID, description, bytes.fromhex("02050081000001"), OCTETS)
    assert parse_reference(_pem(der)).parent == 0x81000001


@pytest.mark.parametrize(
    ("der", "says"),
    [
        (_key_der(bytes.fromhex("06066781050a0105"), PARENT, OCTETS), "not a loadable key"),
        (_key_der(OID, bytes.fromhex("a1023000"), PARENT, OCTETS), "policy"),
        (_key_der(OID, PARENT, OCTETS) + b"\x00", "bytes after"),
        (_key_der(OID, PARENT, OCTETS, b"\x05\x00"), "unexpected fields"),
        (_key_der(OID, PARENT, bytes.fromhex("040400ffabcd"), OCTETS[8:]), "not a marshalled TPM2B"),
        (bytes.fromhex("3081") + bytes([len(_key_der(OID)) - 2]) + _key_der(OID)[2:], "not minimal"),
        (_key_der(OID, bytes.fromhex("0201ff"), OCTETS), "non-negative"),
        (b"\x30\x80" + OID + b"\x00\x00", "indefinite"),
        (b"\x30\x20" + OID, "truncated"),
    ],
)
def test_malformed_key_files_are_refused_in_one_line(der: bytes, says: str) -> None:
    with pytest.raises(HardwareKeyError, match=says) as caught:
        parse_reference(_pem(der))
    assert "\n" not in str(caught.value)


def test_the_handle_form() -> None:
    ref = parse_reference("tpm2:handle=0x81000001")
    assert (ref.handle, ref.needs_auth, ref.text) == (0x81000001, True, "tpm2:handle=0x81000001")
    ref = parse_reference(" tpm2:handle=0x81ABCDEF;empty-auth\n")
    assert (ref.handle, ref.needs_auth, ref.text) == (0x81ABCDEF, False, "tpm2:handle=0x81abcdef;empty-auth")


@pytest.mark.parametrize(
    "text",
    [
        "tpm2:handle=0x80000001",  # a transient handle: gone when its context is
        "tpm2:handle=0x40000001",
        "tpm2:handle=0x8100000",
        "tpm2:handle=81000001",
        "tpm2:handle=0x81000001;pin=1234",
        "pkcs11:token=x",
        "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN TSS2 PRIVATE KEY-----\n-----END TSS2 PRIVATE KEY-----",
        "-----BEGIN TSS2 PRIVATE KEY-----\nnot base64!\n-----END TSS2 PRIVATE KEY-----",
        "-----BEGIN TSS2 PRIVATE KEY-----\nAAAA\n",
        "-----BEGIN TSS2 PRIVATE KEY-----trailing\nMAA=\n-----END TSS2 PRIVATE KEY-----",
        "-----BEGIN TSS2 PRIVATE KEY-----\nMAA=\n-----END TSS2 PRIVATE KEY-----\n-----BEGIN TSS2 PRIVATE KEY-----",
        "x" * 20000,
    ],
)
def test_other_text_is_refused(text: str) -> None:
    with pytest.raises(HardwareKeyError):
        parse_reference(text)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_der_gives_a_reference_or_hardware_key_error(data: bytes) -> None:
    message = ""
    try:
        parse_reference(_pem(data) if data else "-----BEGIN TSS2 PRIVATE KEY-----\n")
    except HardwareKeyError as error:
        message = str(error)
    assert "\n" not in message


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(_key_der(OID, PARENT, OCTETS)) - 1), st.integers(0, 255))
def test_a_flipped_byte_of_a_valid_key_file_never_escapes(at: int, value: int) -> None:
    der = bytearray(_key_der(OID, bytes.fromhex("a0030101ff"), PARENT, OCTETS))
    der[at] = value
    with contextlib.suppress(HardwareKeyError):
        parse_reference(_pem(bytes(der)))


@given(st.text(max_size=200))
def test_any_text_gives_a_reference_or_hardware_key_error(text: str) -> None:
    with contextlib.suppress(HardwareKeyError):
        parse_reference(text)


def test_parsing_imports_the_standard_library_only() -> None:
    """The CLI's cached path reads references: it must not pay for cryptography or tpm2-pytss."""
    code = (
        "import sys\nimport gcptoken.keys.tpm_reference as r\n"
        "r.parse_reference('tpm2:handle=0x81000001')\n"
        "print(' '.join({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # _distutils_hack: setuptools' .pth hook, loaded by site before anything of ours
    assert set(result.stdout.split()) - {"__main__", "_distutils_hack"} == {"gcptoken"}, result.stdout
