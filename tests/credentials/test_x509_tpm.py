"""X.509 workload identity federation with the workload's key in a TPM 2.0 (swtpm, behind
tpm2-abrmd as /dev/tpmrm0 is behind the kernel's resource manager): the key made in the TPM by
OpenSSL's tpm2 provider, a certificate from the emulator's workload CA, mutual TLS to STS and IAM
signed by the TPM, to an access token and an ID token. Each flow runs in a process of its own
(the gcptoken command), as the provider changes its process's OpenSSL defaults."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from gcptoken import Verifier, load_credentials
from gcptoken.emulator import EmulatorServer
from gcptoken.errors import HardwareKeyError
from tests.cli.test_cli import COMMAND
from tests.credentials.hardware_workloads import (
    emulator_with_pool,
    federation,
    one_error,
    run,
    target_email,
    write_workload,
)
from tests.keys.tpm_resource_manager import resource_manager_missing, start_resource_manager
from tests.keys.tpm_sim import start_swtpm, swtpm_missing

AUD = "https://svc-x509-tpm.a.run.app"


def _tpm_provider_missing() -> str | None:
    version = subprocess.run(["openssl", "version", "-m"], capture_output=True, text=True, check=False).stdout
    directory = version.partition('"')[2].rstrip().rstrip('"')
    if not os.path.exists(os.path.join(directory, "tpm2.so")):
        return "OpenSSL's tpm2 provider is not installed (Debian: apt install tpm2-openssl)"
    return None


MISSING = (
    ("openssl is not installed" if not shutil.which("openssl") else None)
    or swtpm_missing()
    or resource_manager_missing()
    or _tpm_provider_missing()
)
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@pytest.fixture(scope="module")
def tpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The client environment reaching a fresh swtpm through tpm2-abrmd."""
    directory = tmp_path_factory.mktemp("tpm")
    with start_swtpm(directory / "state") as swtpm, start_resource_manager(swtpm, directory / "rm") as env:
        yield env


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with emulator_with_pool() as emulator:
        yield emulator


def openssl_tpm2(tpm: dict[str, str], *args: str) -> bytes:
    """``openssl ARGS`` with the tpm2 provider, on the test's TPM."""
    command = ["openssl", *args, "-provider", "tpm2", "-provider", "default"]
    env = {**os.environ, **tpm, "TSS2_LOG": "all+none"}
    return subprocess.run(command, env=env, capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def credentials(tpm: dict[str, str], server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key made in the TPM (as the README says), its certificate from the workload CA, the
    certificate config and the credential file naming them."""
    directory = tmp_path_factory.mktemp("tpm-workload")
    key = directory / "workload.tss2.pem"
    openssl_tpm2(tpm, "genpkey", "-algorithm", "RSA", "-pkeyopt", "bits:2048", "-out", str(key))
    public = openssl_tpm2(tpm, "pkey", "-in", str(key), "-pubout")
    return write_workload(server, directory, "tpm-workload", public, key)


def test_the_key_file_holds_no_private_key(credentials: Path) -> None:
    key = credentials.parent / "workload.tss2.pem"
    assert key.read_bytes().startswith(b"-----BEGIN TSS2 PRIVATE KEY-----")
    with pytest.raises(ValueError, match="no BEGIN/END delimiters for a private key"):
        load_pem_private_key(key.read_bytes(), None)


def test_access_and_id_tokens_over_mutual_tls_signed_in_the_tpm(
    server: EmulatorServer, credentials: Path, tpm: dict[str, str]
) -> None:
    server.state.clear_requests()
    access = run(server, credentials, tpm, "access")
    assert access.code == 0, access.err
    state = server.state
    assert state.access_tokens[access.out.strip()].email == target_email(server)
    sts = [entry for entry in state.request_log() if entry["path"] == "/v1/token"]
    assert sts and all(entry.get("mtls") for entry in sts)
    assert sts[0]["detail"]["principal"].endswith("/subject/tpm-workload")
    token = run(server, credentials, tpm, "id", AUD)
    assert token.code == 0, token.err
    claims = Verifier(AUD, certs=f"{server.url}/oauth2/v3/certs").verify(token.out.strip())
    assert claims["sub"] == state.service_accounts[target_email(server)].unique_id


def test_the_key_works_only_in_its_own_tpm(server: EmulatorServer, credentials: Path, tmp_path: Path) -> None:
    with start_swtpm(tmp_path / "other") as other, start_resource_manager(other, tmp_path / "rm") as env:
        error = one_error(run(server, credentials, env, "access"))
    assert "the TPM cannot load the workload key" in error


def test_a_cached_token_still_needs_the_tpm(
    server: EmulatorServer, credentials: Path, tpm: dict[str, str], tmp_path: Path
) -> None:
    """The key file's bytes prove nothing (a copy is read without the TPM): no token from the disk
    cache for them, and the library shares no identity for them."""
    assert load_credentials(credentials).shared_identity() is None
    assert run(server, credentials, tpm, "access").code == 0
    no_tpm = {"TPM2OPENSSL_TCTI": f"swtpm:path={tmp_path}/absent.sock"}
    assert "no TPM answers" in one_error(run(server, credentials, no_tpm, "access"))


def test_no_tpm_is_one_line(server: EmulatorServer, credentials: Path, tmp_path: Path) -> None:
    env = {"TPM2OPENSSL_TCTI": f"swtpm:path={tmp_path}/absent.sock"}
    error = one_error(run(server, credentials, env, "access"))
    assert f"no TPM answers at TPM2OPENSSL_TCTI=swtpm:path={tmp_path}/absent.sock" in error


def test_no_provider_is_one_line(
    server: EmulatorServer, credentials: Path, tpm: dict[str, str], tmp_path: Path
) -> None:
    error = one_error(run(server, credentials, {**tpm, "OPENSSL_MODULES": str(tmp_path)}, "access"))
    assert "OpenSSL's tpm2 provider is not installed" in error and "apt install tpm2-openssl" in error


def test_other_keys_never_load_a_provider(
    server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = server.state.workload_ca.workload_certificate("file-key")
    cert, key = tmp_path / "w.pem", tmp_path / "w.key"
    cert.write_text(issued.cert_pem)
    key.write_text(issued.key_pem)
    key.chmod(0o600)
    (tmp_path / "ca.pem").write_text(server.state.workload_ca.root_pem)
    config = tmp_path / "certificate_config.json"
    config.write_text(json.dumps({"cert_configs": {"workload": {"cert_path": str(cert), "key_path": str(key)}}}))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    path = tmp_path / "x509.json"
    path.write_text(json.dumps(federation(server, config, impersonate=False)))
    assert load_credentials(path).access_token(use_cache=False).value
    with open("/proc/self/maps", encoding="utf-8") as maps:
        assert "ossl-modules/" not in maps.read()


def test_gcptoken_tpm_tcti_names_the_tpm_as_for_service_account_keys(
    server: EmulatorServer, credentials: Path, tpm: dict[str, str]
) -> None:
    env = {**tpm, "GCPTOKEN_TPM_TCTI": tpm["TPM2OPENSSL_TCTI"], "TPM2OPENSSL_TCTI": ""}
    result = run(server, credentials, env, "access")
    assert result.code == 0, result.err


def test_the_library_gets_tokens_with_the_provider_kept_out_of_its_process(
    server: EmulatorServer, credentials: Path, tpm: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider's defaults are process-wide: mutual TLS with the TPM key runs in a child, so
    this process's OpenSSL is untouched, sync and async."""
    env = {
        **tpm,
        "GCPTOKEN_EMULATOR_HOST": server.host_port,
        "SSL_CERT_FILE": str(credentials.parent / "emulator-ca.pem"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    loaded = load_credentials(credentials)
    assert loaded.access_token(use_cache=False).value
    token = asyncio.run(load_credentials(credentials).id_token_async(AUD, use_cache=False))
    assert Verifier(AUD, certs=f"{server.url}/oauth2/v3/certs").verify(token.value)["aud"] == AUD
    with open("/proc/self/maps", encoding="utf-8") as maps:
        assert "ossl-modules/" not in maps.read()


def test_the_child_process_reports_its_errors_typed_and_in_one_line(
    server: EmulatorServer, credentials: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "TPM2OPENSSL_TCTI": f"swtpm:path={tmp_path}/absent.sock",
        "GCPTOKEN_EMULATOR_HOST": server.host_port,
        "SSL_CERT_FILE": str(credentials.parent / "emulator-ca.pem"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(HardwareKeyError) as caught:
        load_credentials(credentials).access_token(use_cache=False)
    assert "no TPM answers" in str(caught.value) and "\n" not in str(caught.value)


def test_a_tpm_workload_key_with_a_pin(
    server: EmulatorServer, tpm: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("tpm-pin-workload")
    key = directory / "workload.tss2.pem"
    openssl_tpm2(
        tpm, "genpkey", "-algorithm", "RSA", "-pkeyopt", "bits:2048", "-pkeyopt", "user-auth:pin-3141", "-out", str(key)
    )
    public = openssl_tpm2(tpm, "pkey", "-in", str(key), "-passin", "pass:pin-3141", "-pubout")
    credentials = write_workload(server, directory, "tpm-pin-workload", public, key)
    result = run(server, credentials, {**tpm, "GCPTOKEN_KEY_PIN": "pin-3141"}, "access", "--no-cache")
    assert result.code == 0, result.err
    error = one_error(run(server, credentials, {**tpm, "GCPTOKEN_KEY_PIN": ""}, "access", "--no-cache"))
    assert "is a TPM key with a PIN: set GCPTOKEN_KEY_PIN" in error


def test_the_tls_child_imports_nothing_from_the_current_directory(
    server: EmulatorServer, credentials: Path, tpm: dict[str, str], tmp_path: Path
) -> None:
    """The child runs with the token and the TPM key: a module planted where the user stands
    (another user's /tmp file, a cloned repository) must never be imported by it."""
    planted = tmp_path / "planted"
    planted.mkdir()
    marker = tmp_path / "PWNED"
    for name in ("base64", "json", "httpx"):
        (planted / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit(9)\n")
    base = {"GCPTOKEN_EMULATOR_HOST": server.host_port, "SSL_CERT_FILE": str(credentials.parent / "emulator-ca.pem")}
    result = subprocess.run(
        [*COMMAND, "access", "--no-cache", "--credentials", str(credentials)],
        cwd=planted,
        env={**os.environ, **base, **tpm},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert not marker.exists()


def test_a_fifo_as_the_workload_key_is_one_line_not_a_hang(server: EmulatorServer, tmp_path: Path) -> None:
    directory = tmp_path / "fifo"
    directory.mkdir()
    key = directory / "workload.key"
    os.mkfifo(key)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    credentials = write_workload(server, directory, "fifo-key", pem, key)
    error = one_error(run(server, credentials, {}, "access", "--no-cache", "--timeout", "3"))
    assert "workload key" in error
