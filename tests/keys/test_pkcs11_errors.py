"""Every way a PKCS#11 key can fail to open, against a real SoftHSM2 token: one line, saying
what to do, never the PIN."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gcptoken.errors import HardwareKeyError
from gcptoken.keys.pkcs11 import generate_key, load_module, open_key
from gcptoken.keys.pkcs11_uri import Pkcs11Uri
from tests.keys.softhsm import Token, logged_in_session

pkcs11 = pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed (pip install 'gcptoken[pkcs11]')")


_session = logged_in_session


def _fails(token: Token, call: Callable[[], object]) -> str:
    """The one line ``call`` fails with; it never carries either PIN."""
    with pytest.raises(HardwareKeyError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and token.pin not in message and token.so_pin not in message, message
    return message


def test_a_wrong_pin(softhsm_token: Token) -> None:
    uri = generate_key(softhsm_token.uri(object="k"), softhsm_token.pin)
    wrong = "wrong-pin-7777"
    assert _fails(softhsm_token, lambda: open_key(uri, wrong)) == f"wrong PIN for PKCS#11 token {softhsm_token.label!r}"
    # With a key already open the token is logged in for the whole process: still a wrong PIN.
    key = open_key(uri, softhsm_token.pin)
    try:
        assert _fails(softhsm_token, lambda: open_key(uri, wrong)).startswith("wrong PIN for PKCS#11 token")
        second = open_key(uri, softhsm_token.pin)  # the right one shares the login
        assert second.sign(b"x") == key.sign(b"x")
        second.close()
    finally:
        key.close()
    assert _fails(softhsm_token, lambda: open_key(uri, wrong)).startswith("wrong PIN")  # logged out again


def test_a_locked_pin_is_said_so() -> None:
    """SoftHSM2 never locks a PIN (no retry counter), so this is python-pkcs11's own
    CKR_PIN_LOCKED exception through the same mapping C_Login's errors go through."""
    from gcptoken.keys.pkcs11 import _login_error

    assert str(_login_error(pkcs11.PinLocked(), "t")) == (
        "the user PIN of PKCS#11 token 't' is locked: unlock it with the SO PIN"
    )


def test_no_such_token(softhsm_token: Token) -> None:
    uri = softhsm_token.uri(object="k").with_attributes(token="absent")
    message = _fails(softhsm_token, lambda: open_key(uri, softhsm_token.pin))
    assert message.startswith(f"no PKCS#11 token matches token='absent' in module {softhsm_token.module} (tokens: ")
    assert repr(softhsm_token.label) in message  # what there is instead
    wrong_library = softhsm_token.uri(object="k", library_description="Another Library")
    assert _fails(softhsm_token, lambda: open_key(wrong_library, softhsm_token.pin)).startswith("no PKCS#11 token")


def test_no_such_key_and_the_hint_without_a_pin(softhsm_token: Token) -> None:
    generate_key(softhsm_token.uri(object="k"), softhsm_token.pin)
    uri = softhsm_token.uri(object="other")
    assert _fails(softhsm_token, lambda: open_key(uri, softhsm_token.pin)) == (
        f"no private key matches object='other' in PKCS#11 token {softhsm_token.label!r}"
    )
    # Without a PIN the private key exists but is invisible: say why.
    message = _fails(softhsm_token, lambda: open_key(softhsm_token.uri(object="k"), None))
    assert message.endswith("(no PIN given: a token shows private keys only after login; set $GCPTOKEN_KEY_PIN)")


def test_several_keys_match_and_id_narrows(softhsm_token: Token) -> None:
    first = generate_key(softhsm_token.uri(object="a"), softhsm_token.pin)
    generate_key(softhsm_token.uri(object="b"), softhsm_token.pin)
    message = _fails(softhsm_token, lambda: open_key(softhsm_token.uri(), softhsm_token.pin))
    assert message.startswith(f"2 private keys match (any) in PKCS#11 token {softhsm_token.label!r}: name one with id=")
    assert first.id is not None and "".join(f"%{b:02X}" for b in first.id) in message
    narrowed = open_key(softhsm_token.uri().with_id(first.id), softhsm_token.pin)
    assert narrowed.public_key_der() == open_key_der(first, softhsm_token)
    narrowed.close()


def open_key_der(uri: Pkcs11Uri, token: Token) -> bytes:
    key = open_key(uri, token.pin)
    try:
        return key.public_key_der()
    finally:
        key.close()


def test_a_key_that_is_not_rsa(softhsm_token: Token) -> None:
    with _session(softhsm_token) as session:
        parameters = session.create_domain_parameters(
            pkcs11.KeyType.EC,
            {pkcs11.Attribute.EC_PARAMS: pkcs11.util.ec.encode_named_curve_parameters("secp256r1")},
            local=True,
        )
        parameters.generate_keypair(store=True, label="ec-key")
    message = _fails(softhsm_token, lambda: open_key(softhsm_token.uri(object="ec-key"), softhsm_token.pin))
    assert message == (
        f"the private key object='ec-key' in PKCS#11 token {softhsm_token.label!r} is not RSA "
        "(service-account keys are RSA)"
    )


def test_a_key_that_cannot_sign(softhsm_token: Token) -> None:
    with _session(softhsm_token) as session:
        session.generate_keypair(
            pkcs11.KeyType.RSA,
            2048,
            store=True,
            label="decrypt-only",
            capabilities=pkcs11.MechanismFlag.DECRYPT | pkcs11.MechanismFlag.ENCRYPT,
            private_template={pkcs11.Attribute.SIGN: False},
        )
    message = _fails(softhsm_token, lambda: open_key(softhsm_token.uri(object="decrypt-only"), softhsm_token.pin))
    assert message.endswith("cannot sign (CKA_SIGN is false)")


def test_a_uri_naming_something_else_than_a_private_key(softhsm_token: Token) -> None:
    uri = softhsm_token.uri(object="k", type="cert")
    assert _fails(softhsm_token, lambda: open_key(uri, softhsm_token.pin)) == (
        "the PKCS#11 URI names a cert object: a signing key is type=private"
    )


def test_generate_refuses_a_taken_label_and_bad_requests(softhsm_token: Token) -> None:
    made = generate_key(softhsm_token.uri(object="k"), softhsm_token.pin)
    assert _fails(softhsm_token, lambda: generate_key(softhsm_token.uri(object="k"), softhsm_token.pin)) == (
        f"PKCS#11 token {softhsm_token.label!r} already holds an object labelled 'k'"
    )
    assert "needs a label" in _fails(softhsm_token, lambda: generate_key(softhsm_token.uri(), softhsm_token.pin))
    assert "leave id= and type= out" in _fails(softhsm_token, lambda: generate_key(made, softhsm_token.pin))
    too_small = softhsm_token.uri(object="small")
    assert "must be one of 2048, 3072, 4096" in _fails(
        softhsm_token, lambda: generate_key(too_small, softhsm_token.pin, bits=1024)
    )
    assert _fails(softhsm_token, lambda: generate_key(too_small, "wrong-pin-7777")).startswith("wrong PIN")


def test_a_key_whose_session_is_gone_says_so(softhsm_token: Token) -> None:
    key = open_key(generate_key(softhsm_token.uri(object="k"), softhsm_token.pin), softhsm_token.pin)
    load_module(softhsm_token.module).reinitialize()  # every session of the process ends
    try:
        assert _fails(softhsm_token, lambda: key.sign(b"x")) == (
            f"PKCS#11 token {softhsm_token.label!r} is gone (removed, or its session closed)"
        )
    finally:
        key.close()
