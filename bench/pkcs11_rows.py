"""Signing a jwt-bearer assertion with a key inside a PKCS#11 token (a SoftHSM2 token made for
the run, in a temporary directory) against in-process RSA signing the same bytes, interleaved in
one run: what keeping the key in hardware costs per signature. Skipped, with the reason on
stderr, where SoftHSM2 or python-pkcs11 is absent."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bench.timing import Contender, Row, interleaved
from gcptoken.jose import jws

__all__ = ["SOFTHSM_NAME", "pkcs11_rows", "softhsm_unavailable"]

SOFTHSM_NAME = "sign an assertion in SoftHSM2"
IN_PROCESS_NAME = "sign an assertion, in-process RSA"
MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
PIN = "bench-pin-1234"  # a throwaway token's PIN


def _module() -> str | None:
    return next((path for path in MODULES if os.path.isfile(path)), None)


def softhsm_unavailable() -> str | None:
    """Why the SoftHSM2 rows cannot run here, or None."""
    if _module() is None or shutil.which("softhsm2-util") is None:
        return "SoftHSM2 is not installed (Debian: softhsm2)"
    if importlib.util.find_spec("pkcs11") is None:
        return "python-pkcs11 is not installed (pip install 'gcptoken[pkcs11]')"
    return None


def pkcs11_rows(scratch: Path, count: int, rounds: int) -> list[Row]:
    reason, module = softhsm_unavailable(), _module()
    if reason is not None or module is None:
        print(f"bench: the PKCS#11 rows are skipped: {reason}", file=sys.stderr)
        return []
    directory = Path(tempfile.mkdtemp(prefix="softhsm-", dir=scratch))
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    # SoftHSM2 reads its configuration when first loaded: this process has not loaded it before.
    before, os.environ["SOFTHSM2_CONF"] = os.environ.get("SOFTHSM2_CONF"), str(conf)
    try:
        return _rows(module, count, rounds)
    finally:
        if before is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = before
        shutil.rmtree(directory, ignore_errors=True)


def _rows(module: str, count: int, rounds: int) -> list[Row]:
    from gcptoken.keys.pkcs11 import generate_key, open_key
    from gcptoken.keys.pkcs11_uri import parse_uri

    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", "so-" + PIN, "--pin", PIN],
        check=True,
        capture_output=True,
        timeout=60,
    )
    uri = generate_key(parse_uri(f"pkcs11:token=bench;object=bench-signer?module-path={module}"), PIN)
    key = open_key(uri, PIN)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"iss": "signer@p.iam.gserviceaccount.com", "aud": "https://oauth2.googleapis.com/token", "iat": 1}
    signing_input = jws.encode({**claims, "exp": 3601}, jws.SigningKey(private, "RS256")).rpartition(".")[0].encode()
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()

    def in_process(chunk: range) -> int:
        for _ in chunk:
            private.sign(signing_input, pkcs1, sha256)
        return len(chunk)

    def in_token(chunk: range) -> int:
        for _ in chunk:
            key.sign(signing_input)
        return len(chunk)

    contenders: dict[str, Contender] = {IN_PROCESS_NAME: in_process, SOFTHSM_NAME: in_token}
    try:
        rates = interleaved(contenders, count, rounds, chunk=10)
    finally:
        key.close()
    base = rates[IN_PROCESS_NAME]
    return [
        Row("sign", name, round(rate), "signatures/s", round(rate / base, 3), "in-process RSA")
        for name, rate in rates.items()
    ]
