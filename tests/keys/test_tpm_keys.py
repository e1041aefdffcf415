"""RSA keys in a real TPM 2.0 (swtpm through tpm2-pytss): generated there, signing there; the
errors a user meets (wrong PIN, lockout, a blob from another TPM, an empty handle) in one line."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gcptoken.errors import HardwareKeyError
from gcptoken.keys.hardware import HardwareKey
from gcptoken.keys.tpm_reference import TpmReference, encode_key_file, parse_reference
from tests.keys.tpm_sim import start_swtpm

tpm = pytest.importorskip(
    "gcptoken.keys.tpm", reason="tpm2-pytss is not installed (the [tpm] extra)", exc_type=ImportError
)

PIN = "4711-secret"

if TYPE_CHECKING:
    from gcptoken.keys.tpm import TpmKey

    def _a_tpm_key_is_a_hardware_key(key: TpmKey) -> HardwareKey:
        return key  # mypy --strict checks TpmKey against the HardwareKey protocol here


def _verify(der: bytes, signature: bytes, message: bytes) -> None:
    key = serialization.load_der_public_key(der)
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


def _sign_with(ref: TpmReference, auth: str | None, tcti: str, message: bytes = b"eyJhbGciOiJSUzI1NiJ9.e30") -> bytes:
    with tpm.open_key(ref, auth, tcti=tcti) as key:
        signature: bytes = key.sign(message)
    return signature


def test_a_generated_key_signs_rs256_in_the_tpm(tpm_tcti: str) -> None:
    ref = tpm.generate_key(PIN, tcti=tpm_tcti)
    assert ref.needs_auth and ref.text.startswith("-----BEGIN TSS2 PRIVATE KEY-----")
    assert parse_reference(ref.text) == ref
    key: HardwareKey = tpm.open_key(parse_reference(ref.text), PIN, tcti=tpm_tcti)
    try:
        assert key.alg == "RS256"
        message = b"header.claims"
        first, second = key.sign(message), key.sign(message)
        assert first == second  # PKCS#1 v1.5 is deterministic
        _verify(key.public_key_der(), first, message)
        with pytest.raises(InvalidSignature):
            _verify(key.public_key_der(), first, b"header.claimz")
    finally:
        key.close()
    with pytest.raises(HardwareKeyError, match="closed"):
        key.sign(b"x")
    key.close()  # twice is fine


def test_the_private_key_was_born_in_the_tpm_and_cannot_leave_it(tpm_tcti: str) -> None:
    from tpm2_pytss.constants import TPMA_OBJECT
    from tpm2_pytss.types import TPM2B_PUBLIC

    ref = tpm.generate_key(None, tcti=tpm_tcti)
    assert not ref.needs_auth
    public, _ = TPM2B_PUBLIC.unmarshal(ref.public)
    attributes = int(public.publicArea.objectAttributes)
    for must in (
        TPMA_OBJECT.FIXEDTPM,
        TPMA_OBJECT.FIXEDPARENT,
        TPMA_OBJECT.SENSITIVEDATAORIGIN,
        TPMA_OBJECT.SIGN_ENCRYPT,
    ):
        assert attributes & must, must  # made by the TPM, never duplicable to another
    assert not attributes & TPMA_OBJECT.DECRYPT and not attributes & TPMA_OBJECT.RESTRICTED
    _verify(
        tpm.open_key(ref, None, tcti=tpm_tcti).public_key_der(),
        _sign_with(ref, None, tpm_tcti),
        b"eyJhbGciOiJSUzI1NiJ9.e30",
    )


def test_a_wrong_pin_is_refused_and_never_shown(tpm_tcti: str) -> None:
    ref = tpm.generate_key(PIN, tcti=tpm_tcti)
    with pytest.raises(HardwareKeyError, match="wrong PIN") as caught:
        _sign_with(ref, "not-the-pin", tpm_tcti)
    assert "not-the-pin" not in str(caught.value) and PIN not in str(caught.value)
    with pytest.raises(HardwareKeyError, match="needs its PIN"):
        tpm.open_key(ref, None, tcti=tpm_tcti)
    with pytest.raises(HardwareKeyError, match="at most 32 bytes"):
        tpm.generate_key("p" * 33, tcti=tpm_tcti)
    assert _sign_with(ref, PIN, tpm_tcti)  # the right one still works


def test_repeated_wrong_pins_lock_the_tpm_out(tpm_tcti: str) -> None:
    ref = tpm.generate_key(PIN, tcti=tpm_tcti)
    messages = []
    for _ in range(12):  # swtpm's (libtpms') default dictionary-attack threshold is lower
        try:
            _sign_with(ref, "guess", tpm_tcti)
        except HardwareKeyError as error:
            messages.append(str(error))
        if "locked out" in messages[-1]:
            break
    assert "wrong PIN" in messages[0] and "locked out" in messages[-1], messages
    with pytest.raises(HardwareKeyError, match="locked out"):
        _sign_with(ref, PIN, tpm_tcti)  # even the right PIN, until the lockout ends


def test_a_blob_from_another_tpm_is_refused(tpm_tcti: str, tmp_path: Path) -> None:
    with start_swtpm(tmp_path / "other") as other:
        foreign = tpm.generate_key(None, tcti=other.tcti)
        assert _sign_with(foreign, None, other.tcti)
    with pytest.raises(HardwareKeyError, match="another TPM"):
        _sign_with(foreign, None, tpm_tcti)


def test_a_persistent_key_signs_through_its_handle(tpm_tcti: str) -> None:
    ref = tpm.generate_key(PIN, tcti=tpm_tcti, persist=0x81000010)
    assert ref.text == "tpm2:handle=0x81000010" and ref.needs_auth
    with tpm.open_key(parse_reference(ref.text), PIN, tcti=tpm_tcti) as key:
        _verify(key.public_key_der(), key.sign(b"m"), b"m")
    with tpm.open_key(ref, PIN, tcti=tpm_tcti) as again:  # close() left the persistent key in place
        assert again.public_key_der() == key.public_key_der()
    empty = tpm.generate_key(None, tcti=tpm_tcti, persist=0x81000011)
    assert empty.text == "tpm2:handle=0x81000011;empty-auth"
    with pytest.raises(HardwareKeyError, match="already holds a key"):
        tpm.generate_key(None, tcti=tpm_tcti, persist=0x81000011)
    with pytest.raises(HardwareKeyError, match="no key at that TPM handle"):
        tpm.open_key(parse_reference("tpm2:handle=0x81000099;empty-auth"), None, tcti=tpm_tcti)


def test_a_key_that_cannot_sign_rs256_is_refused(tpm_tcti: str) -> None:
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR
    from tpm2_pytss.types import TPM2B_PUBLIC, TPM2B_SENSITIVE_CREATE, TPMT_PUBLIC

    esys = ESAPI(tpm_tcti)
    try:
        parent, *_ = esys.create_primary(TPM2B_SENSITIVE_CREATE(), "ecc256:aes128cfb", ESYS_TR.OWNER)
        template = TPM2B_PUBLIC(
            publicArea=TPMT_PUBLIC.parse(
                "rsa2048:null:null", objectAttributes="userwithauth|decrypt|fixedtpm|fixedparent|sensitivedataorigin"
            )
        )
        private, public, *_ = esys.create(parent, TPM2B_SENSITIVE_CREATE(), template)
    finally:
        esys.close()
    decrypt_only = encode_key_file(public.marshal(), private.marshal(), empty_auth=True)
    with pytest.raises(HardwareKeyError, match="not an unrestricted RSA signing key"):
        tpm.open_key(decrypt_only, None, tcti=tpm_tcti)


@pytest.mark.parametrize(
    "tcti", ["swtpm:path={tmp}/nothing.sock", "device:{tmp}/tpmrm0", "no-such-tcti:x", "swtpm:port=notaport"]
)
def test_no_tpm_is_one_line(tmp_path: Path, tcti: str, capfd: pytest.CaptureFixture[str]) -> None:
    ref = parse_reference("tpm2:handle=0x81000001;empty-auth")
    with pytest.raises(HardwareKeyError, match="no TPM reachable through TCTI") as caught:
        tpm.open_key(ref, None, tcti=tcti.format(tmp=tmp_path))
    assert "\n" not in str(caught.value)
    with pytest.raises(HardwareKeyError, match="no TPM reachable"):
        tpm.generate_key(None, tcti=tcti.format(tmp=tmp_path))
    assert capfd.readouterr().err == ""  # tpm2-tss's own WARNING/ERROR lines stay quiet


def test_without_a_tcti_argument_the_environment_chooses(tpm_tcti: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCPTOKEN_TPM_TCTI", tpm_tcti)
    ref = tpm.generate_key(None)
    with tpm.open_key(ref, None) as key:
        assert key.sign(b"m")


def test_the_tcti_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GCPTOKEN_TPM_TCTI", raising=False)
    monkeypatch.delenv("TPM2TOOLS_TCTI", raising=False)
    assert tpm.tcti_from_env() == "device:/dev/tpmrm0"
    monkeypatch.setenv("TPM2TOOLS_TCTI", "swtpm:path=/a")
    assert tpm.tcti_from_env() == "swtpm:path=/a"
    monkeypatch.setenv("GCPTOKEN_TPM_TCTI", "swtpm:path=/b")
    assert tpm.tcti_from_env() == "swtpm:path=/b"


def test_one_key_signs_from_many_threads(tpm_tcti: str) -> None:
    ref = tpm.generate_key(None, tcti=tpm_tcti)
    results: dict[int, bytes] = {}
    with tpm.open_key(ref, None, tcti=tpm_tcti) as key:

        def sign(i: int) -> None:
            results[i] = key.sign(b"message %d" % i)

        threads = [threading.Thread(target=sign, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for i, signature in results.items():
            _verify(key.public_key_der(), signature, b"message %d" % i)
    assert len(results) == 8 and base64.b64encode(results[0])


def test_the_pin_never_crosses_the_bus(tpm_tcti: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tpm2-tss's pcap TCTI records every byte to and from the TPM: neither generating a key with a
    PIN nor signing with it sends the PIN in clear (a salted HMAC session, parameter encryption),
    where a password session, the control, does."""
    from tpm2_pytss import ESAPI

    capture = tmp_path / "bus.pcap"
    monkeypatch.setenv("TCTI_PCAP_FILE", str(capture))
    recorded = f"pcap:{tpm_tcti}"
    ref = tpm.generate_key(PIN, tcti=recorded)
    with tpm.open_key(ref, PIN, tcti=recorded) as key:
        key.sign(b"m")
    assert capture.stat().st_size > 1000 and PIN.encode() not in capture.read_bytes()
    # The control: the same key signing through a password session, which sends the PIN as it is.
    from tpm2_pytss.constants import TPM2_ALG, TPM2_RH, TPM2_ST
    from tpm2_pytss.types import TPMS_SCHEME_HASH, TPMT_SIG_SCHEME, TPMT_TK_HASHCHECK, TPMU_SIG_SCHEME

    control = ESAPI(recorded)
    try:
        parent, _ = tpm._parent(control, ref.parent, rsa_parent=False)
        handle = control.load(parent, *_unmarshalled(ref))
        control.tr_set_auth(handle, PIN.encode())
        rsassa = TPMU_SIG_SCHEME(rsassa=TPMS_SCHEME_HASH(hashAlg=TPM2_ALG.SHA256))
        scheme = TPMT_SIG_SCHEME(scheme=TPM2_ALG.RSASSA, details=rsassa)
        control.sign(handle, b"d" * 32, scheme, TPMT_TK_HASHCHECK(tag=TPM2_ST.HASHCHECK, hierarchy=TPM2_RH.NULL))
    finally:
        control.close()
    assert PIN.encode() in capture.read_bytes()


def _unmarshalled(ref: TpmReference) -> tuple[object, object]:
    from tpm2_pytss.types import TPM2B_PRIVATE, TPM2B_PUBLIC

    return TPM2B_PRIVATE.unmarshal(ref.private)[0], TPM2B_PUBLIC.unmarshal(ref.public)[0]


@pytest.mark.skipif(shutil.which("tpm2_changeauth") is None, reason="tpm2-tools is not installed")
def test_an_owner_password_is_named_not_taken_for_a_wrong_pin(tpm_tcti: str) -> None:
    ref = tpm.generate_key(None, tcti=tpm_tcti)
    env = {**os.environ, "TPM2TOOLS_TCTI": tpm_tcti, "TSS2_LOG": "all+none"}
    subprocess.run(["tpm2_changeauth", "-c", "owner", "file:-"], input=b"owner-secret", env=env, check=True)
    with pytest.raises(HardwareKeyError, match="owner hierarchy has a password") as caught:
        tpm.generate_key(None, tcti=tpm_tcti)
    assert "owner-secret" not in str(caught.value)
    with pytest.raises(HardwareKeyError, match="owner hierarchy has a password"):
        tpm.open_key(ref, None, tcti=tpm_tcti)


def test_a_process_that_forgets_close_leaves_nothing_in_the_tpm(tpm_tcti: str) -> None:
    """Without a resource manager (swtpm's socket, /dev/tpm0) the TPM keeps a process's transient
    objects and sessions after it exits: a key never closed is released at interpreter exit, so
    the TPM's few object slots (three in swtpm) never fill up."""
    ref = tpm.generate_key(None, tcti=tpm_tcti)
    code = (
        "import sys\nfrom gcptoken.keys import tpm\nfrom gcptoken.keys.tpm_reference import parse_reference\n"
        "key = tpm.open_key(parse_reference(sys.stdin.read()), None, tcti=sys.argv[1])\nkey.sign(b'm')\n"
    )
    for _ in range(4):
        subprocess.run([sys.executable, "-c", code, tpm_tcti], input=ref.text, text=True, check=True)
    assert tpm.generate_key(None, tcti=tpm_tcti)  # a primary and a new key: two free object slots


def test_a_full_tpm_says_so(tpm_tcti: str) -> None:
    """Objects another process left behind (killed, on a TPM without a resource manager) fill it: the
    error says what to do instead of the TPM's 'out of memory for object contexts'."""
    ref = tpm.generate_key(None, tcti=tpm_tcti)
    held = [tpm.open_key(ref, None, tcti=tpm_tcti) for _ in range(2)]  # the third needs two slots
    try:
        with pytest.raises(HardwareKeyError, match="no room for another object"):
            tpm.open_key(ref, None, tcti=tpm_tcti)
    finally:
        for key in held:
            key.close()
    tpm.open_key(ref, None, tcti=tpm_tcti).close()


def _made_under(tcti: str, *, ecc: bool, persist_parent: int | None = None) -> tuple[bytes, bytes]:
    """A signing key made with tpm2-pytss alone under the owner's ECC or RSA storage primary (made
    persistent at ``persist_parent`` if given): its marshalled public and private parts."""
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR
    from tpm2_pytss.types import TPM2B_SENSITIVE_CREATE

    from gcptoken.keys.tpm_objects import signing_template, storage_template

    esys = ESAPI(tcti)
    try:
        primary, *_ = esys.create_primary(TPM2B_SENSITIVE_CREATE(), storage_template(ecc), ESYS_TR.OWNER)
        if persist_parent is not None:
            esys.evict_control(ESYS_TR.OWNER, primary, persist_parent)
        private, public, *_ = esys.create(primary, TPM2B_SENSITIVE_CREATE(), signing_template())
        esys.flush_context(primary)
        return public.marshal(), private.marshal()
    finally:
        esys.close()


def test_a_key_under_the_rsa_storage_primary_says_rsa_parent(tpm_tcti: str) -> None:
    public, private = _made_under(tpm_tcti, ecc=False)
    with tpm.open_key(encode_key_file(public, private, empty_auth=True, rsa_parent=True), None, tcti=tpm_tcti) as key:
        _verify(key.public_key_der(), key.sign(b"m"), b"m")
    with pytest.raises(HardwareKeyError, match="another TPM, or under another parent"):
        tpm.open_key(encode_key_file(public, private, empty_auth=True), None, tcti=tpm_tcti)  # the ECC primary


def test_a_key_under_a_persistent_parent(tpm_tcti: str) -> None:
    public, private = _made_under(tpm_tcti, ecc=True, persist_parent=0x81000100)
    ref = encode_key_file(public, private, empty_auth=True, parent=0x81000100)
    assert parse_reference(ref.text).parent == 0x81000100
    with tpm.open_key(ref, None, tcti=tpm_tcti) as key:
        _verify(key.public_key_der(), key.sign(b"m"), b"m")
    with pytest.raises(HardwareKeyError, match="no key at that TPM handle"):
        tpm.open_key(encode_key_file(public, private, empty_auth=True, parent=0x81000101), None, tcti=tpm_tcti)
