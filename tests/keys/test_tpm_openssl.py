"""The key files are the format other TPM software reads: a key generated here is used by
OpenSSL's tpm2 provider (tpm2-openssl), and one that provider generates signs here, with the
same PKCS#1 v1.5 signature bytes both ways."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gcptoken.keys.tpm_reference import parse_reference

tpm = pytest.importorskip(
    "gcptoken.keys.tpm", reason="tpm2-pytss is not installed (the [tpm] extra)", exc_type=ImportError
)

PROVIDERS = ["-provider", "tpm2", "-provider", "default"]
MESSAGE = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0cG0ifQ"


def _openssl(tcti: str, *args: str, pin: str | None = None, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "TPM2OPENSSL_TCTI": tcti, "TSS2_LOG": "all+none"}
    if pin is not None:
        env["KEY_PIN"] = pin  # -passin env:KEY_PIN, never on the command line
    return subprocess.run(["openssl", *args], env=env, cwd=cwd, capture_output=True, timeout=60, check=False)


@pytest.fixture
def openssl_tcti(tpm_tcti: str, tmp_path: Path) -> str:
    probe = _openssl(tpm_tcti, "list", "-providers", *PROVIDERS, cwd=tmp_path)
    if probe.returncode != 0 or b"tpm2" not in probe.stdout:
        pytest.skip("OpenSSL's tpm2 provider is not installed (Debian: apt-get install tpm2-openssl)")
    return tpm_tcti


@pytest.mark.parametrize("pin", [None, "open sesame"])
def test_openssl_uses_a_key_generated_here(openssl_tcti: str, tmp_path: Path, pin: str | None) -> None:
    ref = tpm.generate_key(pin, tcti=openssl_tcti)
    (tmp_path / "key.pem").write_text(ref.text)
    (tmp_path / "message").write_bytes(MESSAGE)
    with tpm.open_key(ref, pin, tcti=openssl_tcti) as key:
        ours, public = key.sign(MESSAGE), key.public_key_der()
    passin = [] if pin is None else ["-passin", "env:KEY_PIN"]
    pkey = ["pkey", *PROVIDERS, "-in", "key.pem", *passin, "-pubout", "-outform", "DER"]
    exported = _openssl(openssl_tcti, *pkey, pin=pin, cwd=tmp_path)
    assert exported.returncode == 0 and exported.stdout == public, exported.stderr
    # ?provider=tpm2: dgst must take the provider's signer, the default one has no private key
    dgst = ["dgst", *PROVIDERS, "-propquery", "?provider=tpm2", "-sha256", "-sign", "key.pem", *passin, "message"]
    signed = _openssl(openssl_tcti, *dgst, pin=pin, cwd=tmp_path)
    assert signed.returncode == 0 and signed.stdout == ours, signed.stderr
    digest = _openssl(openssl_tcti, "dgst", "-sha256", "-binary", "message", cwd=tmp_path).stdout
    (tmp_path / "digest").write_bytes(digest)
    pkeyutl = [
        "pkeyutl",
        *PROVIDERS,
        "-sign",
        "-inkey",
        "key.pem",
        *passin,
        "-in",
        "digest",
        "-pkeyopt",
        "digest:sha256",
    ]
    signed = _openssl(openssl_tcti, *pkeyutl, pin=pin, cwd=tmp_path)
    assert signed.returncode == 0 and signed.stdout == ours, signed.stderr


@pytest.mark.parametrize("pin", [None, "open sesame"])
def test_a_key_openssl_generated_signs_here(openssl_tcti: str, tmp_path: Path, pin: str | None) -> None:
    options = ["-pkeyopt", "bits:2048"] + ([] if pin is None else ["-pkeyopt", f"user-auth:{pin}"])
    made = _openssl(openssl_tcti, "genpkey", *PROVIDERS, "-algorithm", "RSA", *options, "-out", "key.pem", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    ref = parse_reference((tmp_path / "key.pem").read_text())
    assert ref.needs_auth is (pin is not None)
    (tmp_path / "message").write_bytes(MESSAGE)
    passin = [] if pin is None else ["-passin", "env:KEY_PIN"]
    dgst = ["dgst", *PROVIDERS, "-propquery", "?provider=tpm2", "-sha256", "-sign", "key.pem", *passin, "message"]
    theirs = _openssl(openssl_tcti, *dgst, pin=pin, cwd=tmp_path)
    assert theirs.returncode == 0, theirs.stderr
    pkey = ["pkey", *PROVIDERS, "-in", "key.pem", *passin, "-pubout", "-outform", "DER"]
    exported = _openssl(openssl_tcti, *pkey, pin=pin, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    with tpm.open_key(ref, pin, tcti=openssl_tcti) as key:
        assert key.sign(MESSAGE) == theirs.stdout
        assert key.public_key_der() == exported.stdout
