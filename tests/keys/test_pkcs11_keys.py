"""Keys in a real SoftHSM2 token: made there, never extractable, signing RS256 there (the same
bytes as in-process RSA for the same key), from several threads and a second process at once,
and every way it can fail is one line without the PIN."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gcptoken.errors import HardwareKeyError
from gcptoken.keys.hardware import HardwareKey
from gcptoken.keys.pkcs11 import generate_key, load_module, open_key
from gcptoken.keys.pkcs11_uri import parse_uri
from tests.keys.softhsm import Token, logged_in_session

pkcs11 = pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed (pip install 'gcptoken[pkcs11]')")


_session = logged_in_session


def _verify(der: bytes, signature: bytes, data: bytes) -> None:
    public = serialization.load_der_public_key(der)
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def _one_line_without_pin(error: pytest.ExceptionInfo[HardwareKeyError], token: Token) -> str:
    message = str(error.value)
    assert "\n" not in message and token.pin not in message and token.so_pin not in message
    return message


def test_a_generated_key_signs_in_the_token_and_verifies(softhsm_token: Token) -> None:
    uri = generate_key(softhsm_token.uri(object="sa-key"), softhsm_token.pin)
    assert uri.token == softhsm_token.label and uri.object == "sa-key" and uri.type == "private"
    assert uri.module_path == softhsm_token.module and uri.id is not None and len(uri.id) == 16
    assert parse_uri(uri.text) == uri  # what a credential file will hold
    key: HardwareKey = open_key(uri, softhsm_token.pin)  # mypy checks it meets the seam
    try:
        assert key.alg == "RS256"
        signature = key.sign(b"header.claims")
        _verify(key.public_key_der(), signature, b"header.claims")
        assert key.sign(b"header.claims") == signature  # PKCS#1 v1.5 is deterministic
        public = serialization.load_der_public_key(key.public_key_der())
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    finally:
        key.close()
    with pytest.raises(HardwareKeyError, match="was closed"):
        key.sign(b"x")


def test_the_generated_private_key_never_leaves_the_token(softhsm_token: Token) -> None:
    uri = generate_key(softhsm_token.uri(object="sealed"), softhsm_token.pin)
    with _session(softhsm_token) as session:
        private = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, id=uri.id)
        attribute = pkcs11.Attribute
        assert private[attribute.SENSITIVE] and private[attribute.ALWAYS_SENSITIVE]
        assert not private[attribute.EXTRACTABLE] and private[attribute.NEVER_EXTRACTABLE]
        assert private[attribute.TOKEN] and private[attribute.PRIVATE] and private[attribute.SIGN]
        assert not private[attribute.DECRYPT]
        for secret in (attribute.PRIVATE_EXPONENT, attribute.PRIME_1, attribute.VALUE):
            with pytest.raises(pkcs11.PKCS11Error):  # AttributeSensitive (VALUE: not an RSA attribute)
                private[secret]
        with pytest.raises(pkcs11.PKCS11Error):  # no way to turn it extractable afterwards
            private[attribute.EXTRACTABLE] = True


@pytest.fixture
def imported(softhsm_token: Token) -> Iterator[tuple[rsa.RSAPrivateKey, Any]]:
    """An in-process RSA key, also imported into the token: the two must sign identically."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = private.private_numbers()
    attribute = pkcs11.Attribute

    def big(value: int) -> bytes:
        return value.to_bytes((value.bit_length() + 7) // 8, "big")

    with _session(softhsm_token) as session:
        session.create_object(
            {
                attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY,
                attribute.KEY_TYPE: pkcs11.KeyType.RSA,
                attribute.TOKEN: True,
                attribute.PRIVATE: True,
                attribute.SENSITIVE: True,
                attribute.SIGN: True,
                attribute.LABEL: "imported",
                attribute.ID: b"\x01",
                attribute.MODULUS: big(numbers.public_numbers.n),
                attribute.PUBLIC_EXPONENT: big(numbers.public_numbers.e),
                attribute.PRIVATE_EXPONENT: big(numbers.d),
                attribute.PRIME_1: big(numbers.p),
                attribute.PRIME_2: big(numbers.q),
                attribute.EXPONENT_1: big(numbers.dmp1),
                attribute.EXPONENT_2: big(numbers.dmq1),
                attribute.COEFFICIENT: big(numbers.iqmp),
            }
        )
    key = open_key(softhsm_token.uri(object="imported"), softhsm_token.pin)
    yield private, key
    key.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000))
def test_the_token_signs_exactly_as_in_process_rsa(imported: tuple[rsa.RSAPrivateKey, Any], data: bytes) -> None:
    private, key = imported
    assert key.sign(data) == private.sign(data, padding.PKCS1v15(), hashes.SHA256())
    assert key.public_key_der() == private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_one_key_signs_from_many_threads(softhsm_token: Token) -> None:
    key = open_key(generate_key(softhsm_token.uri(object="busy"), softhsm_token.pin), softhsm_token.pin)
    results: list[tuple[bytes, bytes]] = []
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(25):
                data = f"{worker}:{i}".encode()
                results.append((data, key.sign(data)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == [] and len(results) == 100
        for data, signature in results:
            _verify(key.public_key_der(), signature, data)
    finally:
        key.close()


SIGNER = """
import base64, os, sys
from gcptoken.keys.pkcs11 import open_key
from gcptoken.keys.pkcs11_uri import parse_uri
key = open_key(parse_uri(sys.argv[1]), os.environ["GCPTOKEN_KEY_PIN"])
print("ready", flush=True)
for i in range(60):
    print(base64.b64encode(key.sign(b"other-%d" % i)).decode(), flush=True)
key.close()
"""


def test_a_second_process_signs_with_the_same_token_at_once(softhsm_token: Token) -> None:
    uri = generate_key(softhsm_token.uri(object="shared"), softhsm_token.pin)
    key = open_key(uri, softhsm_token.pin)
    with subprocess.Popen(
        [sys.executable, "-c", SIGNER, uri.text],  # the PIN goes in the environment, never the command line
        env={**os.environ, **softhsm_token.env(), "GCPTOKEN_KEY_PIN": softhsm_token.pin},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as other:
        try:
            assert other.stdout is not None and other.stdout.readline() == "ready\n"
            mine = [key.sign(b"mine-%d" % i) for i in range(60)]
            lines = other.stdout.read().splitlines()  # to EOF: the other process signed meanwhile
            assert other.wait(timeout=120) == 0
        finally:
            key.close()
            if other.poll() is None:
                other.kill()
    for i, signature in enumerate(mine):
        _verify(key.public_key_der(), signature, b"mine-%d" % i)
    assert len(lines) == 60
    for i, line in enumerate(lines):
        _verify(key.public_key_der(), base64.b64decode(line), b"other-%d" % i)


def test_closing_one_key_leaves_the_others_logged_in(softhsm_token: Token) -> None:
    """Login is per process, and python-pkcs11 logs out (C_Logout: every session) when it closes a
    session it logged in with: the first key closed must not take the others' login with it."""
    uri = generate_key(softhsm_token.uri(object="k"), softhsm_token.pin)
    first, second = open_key(uri, softhsm_token.pin), open_key(uri, softhsm_token.pin)
    first.close()
    try:
        _verify(second.public_key_der(), second.sign(b"after"), b"after")
        other = generate_key(softhsm_token.uri(object="k2"), softhsm_token.pin)  # a R/W session, opened and closed
        _verify(second.public_key_der(), second.sign(b"still"), b"still")
        third = open_key(other, softhsm_token.pin)
        third.close()
        _verify(second.public_key_der(), second.sign(b"and still"), b"and still")
    finally:
        second.close()
    with pytest.raises(HardwareKeyError, match="no private key matches"):  # the last close logged out
        open_key(uri, None)


def test_a_module_is_loaded_once_whatever_path_names_it(softhsm_token: Token, module_dir: Path) -> None:
    from gcptoken.keys import pkcs11 as keys_pkcs11

    uri = generate_key(softhsm_token.uri(object="k"), softhsm_token.pin)
    link = module_dir / "softhsm.so"
    link.symlink_to(os.path.realpath(softhsm_token.module))
    by_link = uri.with_attributes(module_path=str(link))
    first = open_key(uri, softhsm_token.pin)
    loaded = dict(keys_pkcs11._modules)
    second = open_key(by_link, softhsm_token.pin)
    try:
        assert second.sign(b"x") == first.sign(b"x")
        real = os.stat(softhsm_token.module)
        assert keys_pkcs11._modules == loaded  # by (st_dev, st_ino): the link named a file already loaded
        assert load_module(str(link)) is loaded[(real.st_dev, real.st_ino)]
    finally:
        first.close()
        second.close()


def test_library_attributes_narrow_the_module(softhsm_token: Token) -> None:
    uri = generate_key(softhsm_token.uri(object="k"), softhsm_token.pin)
    library = load_module(softhsm_token.module)
    major, minor = library.library_version
    exact = uri.with_attributes(library_version=f"{major}.{minor}", library_manufacturer=library.manufacturer_id)
    open_key(exact, softhsm_token.pin).close()
    with pytest.raises(HardwareKeyError, match="no PKCS#11 token matches"):
        open_key(uri.with_attributes(library_version=f"{major + 1}"), softhsm_token.pin)
