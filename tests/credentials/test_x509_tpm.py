"""X.509 workload identity federation with the workload's key in a TPM 2.0 (swtpm, behind
tpm2-abrmd as /dev/tpmrm0 is behind the kernel's resource manager): the key made in the TPM by
OpenSSL's tpm2 provider, a certificate from the emulator's workload CA, mutual TLS to STS and IAM
signed by the TPM, to an access token and an ID token. Each flow runs in a process of its own
(the gcptoken command), as the provider changes its process's OpenSSL defaults."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gcptoken import Verifier, load_credentials
from gcptoken.credentials import x509_source
from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.state.models import Provider
from tests.cli.test_cli import Result, gcptoken
from tests.keys.tpm_resource_manager import resource_manager_missing, start_resource_manager
from tests.keys.tpm_sim import start_swtpm, swtpm_missing

AUD = "https://svc-x509-tpm.a.run.app"


def _tpm_provider_missing() -> str | None:
    modules = subprocess.run(["openssl", "version", "-m"], capture_output=True, text=True, check=False).stdout
    directory = modules.partition('"')[2].rstrip().rstrip('"') if modules else ""
    if not shutil.which("openssl") or not os.path.exists(os.path.join(directory, "tpm2.so")):
        return "OpenSSL's tpm2 provider is not installed (Debian: apt install tpm2-openssl)"
    return None


MISSING = swtpm_missing() or resource_manager_missing() or _tpm_provider_missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@pytest.fixture(scope="module")
def tpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The client environment reaching a fresh swtpm through tpm2-abrmd."""
    directory = tmp_path_factory.mktemp("tpm")
    with start_swtpm(directory / "state") as swtpm, start_resource_manager(swtpm, directory / "rm") as env:
        yield env


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(mtls_port=0) as emulator:
        state = emulator.state
        ca = state.workload_ca
        state.providers[("tpm-pool", "tpm-prov")] = Provider(
            "tpm-pool", "tpm-prov", "", trust_anchors=[ca.root_pem], intermediate_cas=[ca.intermediate_pem]
        )
        state.create_service_account("tpm-target")
        pool = f"//iam.googleapis.com/projects/{state.project_number}/locations/global/workloadIdentityPools/tpm-pool"
        state.grant_token_creator(f"tpm-target@{state.project_id}.iam.gserviceaccount.com", f"principalSet:{pool}/*")
        yield emulator


def openssl_tpm2(tpm: dict[str, str], *args: str) -> bytes:
    """``openssl ARGS`` with the tpm2 provider, on the test's TPM."""
    command = ["openssl", *args, "-provider", "tpm2", "-provider", "default"]
    env = {**os.environ, **tpm, "TSS2_LOG": "all+none"}
    return subprocess.run(command, env=env, capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def workload(tpm: dict[str, str], server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A key made in the TPM, its certificate from the workload CA, the config and credential files."""
    directory = tmp_path_factory.mktemp("tpm-workload")
    key, cert = directory / "workload.tss2.pem", directory / "workload.pem"
    openssl_tpm2(tpm, "genpkey", "-algorithm", "RSA", "-pkeyopt", "bits:2048", "-out", str(key))
    public = openssl_tpm2(tpm, "pkey", "-in", str(key), "-pubout")
    cert.write_text(server.state.workload_ca.workload_certificate_for("tpm-workload", public))
    config = directory / "certificate_config.json"
    config.write_text(json.dumps({"cert_configs": {"workload": {"cert_path": str(cert), "key_path": str(key)}}}))
    ca = directory / "emulator-ca.pem"
    ca.write_text(server.state.workload_ca.root_pem)
    info = federation(server, config)
    target = f"tpm-target@{server.state.project_id}.iam.gserviceaccount.com"
    info["service_account_impersonation_url"] = (
        f"{info['token_url'].removesuffix('/v1/token')}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
    )
    credentials = directory / "x509-tpm.json"
    credentials.write_text(json.dumps(info))
    return {"key": key, "cert": cert, "credentials": credentials, "ca": ca, "config": config}


def run(server: EmulatorServer, workload: dict[str, Path], env: dict[str, str], *args: str) -> Result:
    base = {"GCPTOKEN_EMULATOR_HOST": server.host_port, "SSL_CERT_FILE": str(workload["ca"])}
    return gcptoken(*args, "--credentials", str(workload["credentials"]), env={**base, **env})


def test_the_key_file_holds_no_private_key(workload: dict[str, Path]) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    assert workload["key"].read_bytes().startswith(b"-----BEGIN TSS2 PRIVATE KEY-----")
    with pytest.raises(ValueError, match="no BEGIN/END delimiters for a private key"):
        load_pem_private_key(workload["key"].read_bytes(), None)


def test_access_and_id_tokens_over_mutual_tls_signed_in_the_tpm(
    server: EmulatorServer, workload: dict[str, Path], tpm: dict[str, str]
) -> None:
    server.state.clear_requests()
    access = run(server, workload, tpm, "access")
    assert access.code == 0, access.err
    state = server.state
    assert state.access_tokens[access.out.strip()].email == f"tpm-target@{state.project_id}.iam.gserviceaccount.com"
    sts = [entry for entry in state.request_log() if entry["path"] == "/v1/token"]
    assert sts and all(entry.get("mtls") for entry in sts)
    assert sts[0]["detail"]["principal"].endswith("/subject/tpm-workload")
    token = run(server, workload, tpm, "id", AUD)
    assert token.code == 0, token.err
    claims = Verifier(AUD, certs=f"{server.url}/oauth2/v3/certs").verify(token.out.strip())
    assert claims["sub"] == state.service_accounts[f"tpm-target@{state.project_id}.iam.gserviceaccount.com"].unique_id


def one_error(result: Result) -> str:
    assert result.code != 0 and not result.out
    assert "Traceback" not in result.err
    errors = [line for line in result.err.splitlines() if line.strip()]
    assert len(errors) == 1, result.err
    return errors[0]


def test_the_key_works_only_in_its_own_tpm(server: EmulatorServer, workload: dict[str, Path], tmp_path: Path) -> None:
    with start_swtpm(tmp_path / "other") as other, start_resource_manager(other, tmp_path / "rm") as env:
        error = one_error(run(server, workload, env, "access"))
    assert "the TPM cannot load the workload key" in error


def test_no_tpm_is_one_line(server: EmulatorServer, workload: dict[str, Path], tmp_path: Path) -> None:
    env = {"TPM2OPENSSL_TCTI": f"swtpm:path={tmp_path}/absent.sock"}
    error = one_error(run(server, workload, env, "access"))
    assert f"no TPM answers at TPM2OPENSSL_TCTI=swtpm:path={tmp_path}/absent.sock" in error


def test_no_provider_is_one_line(
    server: EmulatorServer, workload: dict[str, Path], tpm: dict[str, str], tmp_path: Path
) -> None:
    error = one_error(run(server, workload, {**tpm, "OPENSSL_MODULES": str(tmp_path)}, "access"))
    assert "OpenSSL's tpm2 provider is not installed" in error and "apt install tpm2-openssl" in error


def test_other_keys_never_load_the_provider(
    server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = server.state.workload_ca.workload_certificate("file-key")
    cert, key, ca = tmp_path / "w.pem", tmp_path / "w.key", tmp_path / "ca.pem"
    cert.write_text(issued.cert_pem)
    key.write_text(issued.key_pem)
    key.chmod(0o600)
    ca.write_text(server.state.workload_ca.root_pem)
    config = tmp_path / "certificate_config.json"
    config.write_text(json.dumps({"cert_configs": {"workload": {"cert_path": str(cert), "key_path": str(key)}}}))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    path = tmp_path / "x509.json"
    path.write_text(json.dumps(federation(server, config)))
    assert load_credentials(path).access_token(use_cache=False).value
    with open("/proc/self/maps", encoding="utf-8") as maps:
        assert "ossl-modules/tpm2.so" not in maps.read()


def federation(server: EmulatorServer, config: Path) -> dict[str, Any]:
    """An external account of the TPM test pool, its certificate named by ``config``."""
    state, base = server.state, server.mtls.url if server.mtls else ""
    return {
        "type": "external_account",
        "audience": (
            f"//iam.googleapis.com/projects/{state.project_number}/locations/global/"
            "workloadIdentityPools/tpm-pool/providers/tpm-prov"
        ),
        "subject_token_type": x509_source.MTLS_SUBJECT_TOKEN_TYPE,
        "token_url": f"{base}/v1/token",
        "credential_source": {"certificate": {"certificate_config_location": str(config)}},
    }
