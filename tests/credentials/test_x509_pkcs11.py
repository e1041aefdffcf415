"""X.509 workload identity federation with the workload's key in a PKCS#11 token (SoftHSM2),
through OpenSSL's pkcs11 provider (latchset/pkcs11-provider): the key made in the token, the key
file a PKCS#11 URI PEM, mutual TLS to STS and IAM signed in the token, to an access token and an
ID token; the PIN from GCPTOKEN_KEY_PIN. The provider is Debian trixie's and Ubuntu 24.04's
``pkcs11-provider``; on bookworm, a build of it named by GCPTOKEN_TEST_PKCS11_PROVIDER."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key

from gcptoken import Verifier
from gcptoken.emulator import EmulatorServer
from tests.credentials.hardware_workloads import emulator_with_pool, one_error, run, target_email, write_workload

AUD = "https://svc-x509-pkcs11.a.run.app"
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
PIN, LABEL = "20261202", "workload-token"


def _modules_dir() -> str:
    version = subprocess.run(["openssl", "version", "-m"], capture_output=True, text=True, check=False).stdout
    return version.partition('"')[2].rstrip().rstrip('"')


def _provider_dir() -> str | None:
    built = os.environ.get("GCPTOKEN_TEST_PKCS11_PROVIDER")
    if built:
        return os.path.dirname(built) if os.path.basename(built) == "pkcs11.so" and os.path.exists(built) else None
    return _modules_dir() if os.path.exists(os.path.join(_modules_dir(), "pkcs11.so")) else None


def _missing() -> str | None:
    if not (shutil.which("softhsm2-util") and os.path.exists(SOFTHSM)):
        return "SoftHSM2 is not installed (Debian: apt install softhsm2)"
    if not shutil.which("pkcs11-tool"):
        return "pkcs11-tool is not installed (Debian: apt install opensc)"
    if _provider_dir() is None:
        return (
            "OpenSSL's pkcs11 provider is not installed (Debian trixie: apt install pkcs11-provider; elsewhere set "
            "GCPTOKEN_TEST_PKCS11_PROVIDER to a built pkcs11.so)"
        )
    return None


MISSING = _missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


def uri_pem(uri: str) -> str:
    """The pkcs11 provider's key file: SEQUENCE { VisibleString "PKCS#11 Provider URI v1.0",
    UTF8String uri }, as its tools/uri2pem.py writes it."""

    def tlv(tag: int, body: bytes) -> bytes:
        size = len(body)
        length = (
            bytes([size])
            if size < 128
            else bytes([0x81, size])
            if size < 256
            else bytes([0x82]) + size.to_bytes(2, "big")
        )
        return bytes([tag]) + length + body

    der = tlv(0x30, tlv(0x1A, b"PKCS#11 Provider URI v1.0") + tlv(0x0C, uri.encode()))
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN PKCS#11 PROVIDER URI-----\n{body}\n-----END PKCS#11 PROVIDER URI-----\n"


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A SoftHSM2 token in a temporary directory holding an RSA key made in it; the environment
    that reaches it (driver and configuration, the PIN, the provider)."""
    directory = tmp_path_factory.mktemp("softhsm")
    (directory / "tokens").mkdir()
    config = directory / "softhsm2.conf"
    config.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {"SOFTHSM2_CONF": str(config), "PKCS11_PROVIDER_MODULE": SOFTHSM, "OPENSSL_MODULES": _provider_dir() or ""}
    tool = {**os.environ, **env}
    # The test token's throwaway PINs on a command line: softhsm2-util and pkcs11-tool take no other way.
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", LABEL, "--pin", PIN, "--so-pin", "5678"],
        env=tool, capture_output=True, check=True,
    )  # fmt: skip
    pkcs11 = ["pkcs11-tool", "--module", SOFTHSM, "--token-label", LABEL]
    generate = ["--keypairgen", "--key-type", "rsa:2048", "--label", "workload", "--id", "01"]
    subprocess.run([*pkcs11, "--login", "--pin", PIN, *generate], env=tool, capture_output=True, check=True)
    public = subprocess.run(
        [*pkcs11, "--read-object", "--type", "pubkey", "--label", "workload"], env=tool, capture_output=True, check=True
    ).stdout
    env["public_pem"] = (
        load_der_public_key(public).public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    )
    return env


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with emulator_with_pool() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def credentials(token: dict[str, str], server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pkcs11-workload")
    key = directory / "workload.uri.pem"
    key.write_text(uri_pem(f"pkcs11:token={LABEL};object=workload;type=private"))
    return write_workload(server, directory, "hsm-workload", token["public_pem"].encode(), key)


def client(token: dict[str, str], **more: str) -> dict[str, str]:
    return {**{k: v for k, v in token.items() if k != "public_pem"}, **more}


def test_access_and_id_tokens_over_mutual_tls_signed_in_the_token(
    server: EmulatorServer, credentials: Path, token: dict[str, str]
) -> None:
    server.state.clear_requests()
    access = run(server, credentials, client(token, GCPTOKEN_KEY_PIN=PIN), "access")
    assert access.code == 0, access.err
    assert server.state.access_tokens[access.out.strip()].email == target_email(server)
    sts = [entry for entry in server.state.request_log() if entry["path"] == "/v1/token"]
    assert sts and all(entry.get("mtls") for entry in sts)
    assert sts[0]["detail"]["principal"].endswith("/subject/hsm-workload")
    result = run(server, credentials, client(token, GCPTOKEN_KEY_PIN=PIN), "id", AUD)
    assert result.code == 0, result.err
    claims = Verifier(AUD, certs=f"{server.url}/oauth2/v3/certs").verify(result.out.strip())
    assert claims["sub"] == server.state.service_accounts[target_email(server)].unique_id


def test_a_wrong_pin_is_one_line_without_it(server: EmulatorServer, credentials: Path, token: dict[str, str]) -> None:
    assert run(server, credentials, client(token, GCPTOKEN_KEY_PIN=PIN), "access").code == 0  # not cached on disk
    error = one_error(run(server, credentials, client(token, GCPTOKEN_KEY_PIN="11110000"), "access"))
    assert "the PKCS#11 token cannot load the workload key" in error and "11110000" not in error


def test_no_pin_and_no_terminal_says_which_variable(
    server: EmulatorServer, credentials: Path, token: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GCPTOKEN_KEY_PIN", raising=False)
    error = one_error(run(server, credentials, client(token), "access"))  # stdin is a pipe, not a terminal
    assert "set $GCPTOKEN_KEY_PIN" in error


def test_a_pin_in_the_key_file_is_refused(
    server: EmulatorServer, credentials: Path, token: dict[str, str], tmp_path: Path
) -> None:
    key = credentials.parent / "workload.uri.pem"
    saved = key.read_text()
    key.write_text(uri_pem(f"pkcs11:token={LABEL};object=workload;type=private?pin-value={PIN}"))
    try:
        error = one_error(run(server, credentials, client(token, GCPTOKEN_KEY_PIN=PIN), "access"))
    finally:
        key.write_text(saved)
    assert "may not carry the PIN" in error and PIN not in error


def test_no_provider_is_one_line(
    server: EmulatorServer, credentials: Path, token: dict[str, str], tmp_path: Path
) -> None:
    error = one_error(
        run(server, credentials, client(token, GCPTOKEN_KEY_PIN=PIN, OPENSSL_MODULES=str(tmp_path)), "access")
    )
    assert "OpenSSL's pkcs11 provider is not installed" in error
