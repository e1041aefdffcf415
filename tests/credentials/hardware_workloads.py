"""What the X.509 tests with the workload key in hardware share: an emulator with an X.509 pool
trusting its workload CA, the federation file of that pool, and the gcptoken command run on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gcptoken.credentials import x509_source
from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.state.models import Provider
from tests.cli.test_cli import Result, gcptoken

POOL, PROVIDER, TARGET = "hw-pool", "hw-prov", "hw-target"


@contextmanager
def emulator_with_pool() -> Iterator[EmulatorServer]:
    """The emulator with its mTLS port, a pool trusting its workload CA, and a service account the
    pool's workloads may impersonate."""
    with EmulatorServer(mtls_port=0) as emulator:
        state = emulator.state
        ca = state.workload_ca
        state.providers[(POOL, PROVIDER)] = Provider(
            POOL, PROVIDER, "", trust_anchors=[ca.root_pem], intermediate_cas=[ca.intermediate_pem]
        )
        state.create_service_account(TARGET)
        pool = f"//iam.googleapis.com/projects/{state.project_number}/locations/global/workloadIdentityPools/{POOL}"
        state.grant_token_creator(target_email(emulator), f"principalSet:{pool}/*")
        yield emulator


def target_email(server: EmulatorServer) -> str:
    return f"{TARGET}@{server.state.project_id}.iam.gserviceaccount.com"


def federation(server: EmulatorServer, config: Path, impersonate: bool = True) -> dict[str, Any]:
    """An external account of the pool, its certificate named by the certificate config ``config``."""
    state, base = server.state, server.mtls.url if server.mtls else ""
    info: dict[str, Any] = {
        "type": "external_account",
        "audience": (
            f"//iam.googleapis.com/projects/{state.project_number}/locations/global/"
            f"workloadIdentityPools/{POOL}/providers/{PROVIDER}"
        ),
        "subject_token_type": x509_source.MTLS_SUBJECT_TOKEN_TYPE,
        "token_url": f"{base}/v1/token",
        "credential_source": {"certificate": {"certificate_config_location": str(config)}},
    }
    if impersonate:
        info["service_account_impersonation_url"] = (
            f"{base}/v1/projects/-/serviceAccounts/{target_email(server)}:generateAccessToken"
        )
    return info


def write_workload(server: EmulatorServer, directory: Path, name: str, public_pem: bytes, key: Path) -> Path:
    """The certificate the workload CA issues for ``public_pem``, the certificate config naming it
    and ``key``, the emulator's CA and the credential file; returns the credential file."""
    cert = directory / f"{name}.pem"
    cert.write_text(server.state.workload_ca.workload_certificate_for(name, public_pem))
    config = directory / "certificate_config.json"
    config.write_text(json.dumps({"cert_configs": {"workload": {"cert_path": str(cert), "key_path": str(key)}}}))
    (directory / "emulator-ca.pem").write_text(server.state.workload_ca.root_pem)
    credentials = directory / "x509-hardware.json"
    credentials.write_text(json.dumps(federation(server, config)))
    return credentials


def run(server: EmulatorServer, credentials: Path, env: dict[str, str], *args: str) -> Result:
    """``gcptoken ARGS --credentials FILE`` against the emulator, trusting its CA."""
    base = {"GCPTOKEN_EMULATOR_HOST": server.host_port, "SSL_CERT_FILE": str(credentials.parent / "emulator-ca.pem")}
    return gcptoken(*args, "--credentials", str(credentials), env={**base, **env})


def one_error(result: Result) -> str:
    """The one error line of a failed command: nothing on stdout, no traceback."""
    assert result.code != 0 and not result.out, result
    assert "Traceback" not in result.err
    errors = [line for line in result.err.splitlines() if line.strip()]
    assert len(errors) == 1, result.err
    return errors[0]
