"""Two tokens with the same label (another card, a re-initialised token): a generated key's URI
names its token's serial too, so it keeps naming one key; an ambiguous URI says which serials
there are."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from gcptoken.errors import HardwareKeyError
from gcptoken.keys.pkcs11 import generate_key, open_key
from tests.keys.softhsm import SoftHsm

pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed (pip install 'gcptoken[pkcs11]')")


def _serials(softhsm: SoftHsm, label: str) -> list[str]:
    """The serials of the tokens labelled ``label``, as softhsm2-util --show-slots lists them."""
    shown = subprocess.run(
        ["softhsm2-util", "--show-slots"],
        env={**os.environ, "SOFTHSM2_CONF": str(softhsm.conf)},
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    # In each "Token info" block the serial comes two lines before the label.
    found = re.findall(r"Serial number:[ \t]*(\S+)\n.*\n.*\n[ \t]*Label:[ \t]*(.*?)[ \t]*\n", shown)
    return [serial for serial, name in found if name == label]


def test_a_generated_uri_names_the_serial_and_survives_a_second_token_of_that_label(softhsm: SoftHsm) -> None:
    label = f"twin-{os.getpid()}"
    first = softhsm.token(label)
    uri = generate_key(first.uri(object="k"), first.pin)
    (serial,) = _serials(softhsm, label)
    assert uri.get("serial") == serial
    assert f";serial={serial};" in uri.text

    second = softhsm.token(label)  # same label, another token
    key = open_key(uri, first.pin)
    try:
        assert key.sign(b"x")
    finally:
        key.close()

    serials = _serials(softhsm, label)
    assert len(set(serials)) == 2
    with pytest.raises(HardwareKeyError) as caught:
        generate_key(second.uri(object="k2"), second.pin)
    listed = ", ".join(repr(each) for each in serials)
    assert str(caught.value) == (
        f"2 PKCS#11 tokens match token={label!r} in module {second.module}: "
        f"name one by adding serial= (theirs: {listed})"
    )
    other = next(each for each in serials if each != serial)
    made = generate_key(second.uri(object="k2", serial=other), second.pin)
    assert made.get("serial") == other
    open_key(made, second.pin).close()
