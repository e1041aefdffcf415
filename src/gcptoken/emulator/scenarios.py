"""Ready-made credentials of every kind against a running emulator: a user, impersonation, a
federated workload (OIDC, AWS, X.509), a workforce person. The demo and the benchmarks use them;
so can anyone exploring the emulator."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gcptoken.credentials import (
    Credentials,
    FederatedCredentials,
    ImpersonatedCredentials,
    UserCredentials,
    credentials_from_info,
)
from gcptoken.credentials.external_account import ExternalAccountConfig
from gcptoken.emulator.http.server import EmulatorServer
from gcptoken.emulator.state import state_dir
from gcptoken.emulator.state.models import Provider
from gcptoken.jose import jws
from gcptoken.private_files import PrivateDir

__all__ = [
    "Federation",
    "aws_workload",
    "environment",
    "federation",
    "gcloud_environment",
    "impersonating",
    "service_account",
    "user",
    "workforce_person",
    "x509_workload",
]

JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"


def service_account(emulator: EmulatorServer, account_id: str) -> str:
    """The email of service account ``account_id``, created if need be."""
    state = emulator.state
    email = f"{account_id}@{state.project_id}.iam.gserviceaccount.com"
    if email not in state.service_accounts:
        state.create_service_account(account_id)
    return email


def user(emulator: EmulatorServer, email: str = "demo-user@example.com") -> UserCredentials:
    """A user as ``gcloud auth application-default login`` leaves them."""
    credentials = credentials_from_info(emulator.state.issue_refresh_token(email), f"user {email}")
    assert isinstance(credentials, UserCredentials)
    return credentials


def impersonating(
    emulator: EmulatorServer, source: Credentials, account_id: str, member: str
) -> ImpersonatedCredentials:
    """``source`` (known to IAM as ``member``) acting as service account ``account_id``."""
    email = service_account(emulator, account_id)
    emulator.state.grant_token_creator(email, member)
    return ImpersonatedCredentials(
        source, email, include_email=True, iam_base=f"{emulator.url}/v1/projects/-/serviceAccounts/"
    )


class Federation:
    """A workload identity pool provider trusting the emulator's OIDC issuer, a subject token
    from it in a file, and a service account the federated workload may act as."""

    def __init__(self, emulator: EmulatorServer, scratch: Path, subject: str = "ci-job-42") -> None:
        state = emulator.state
        provider = Provider("demo-pool", "demo-oidc", f"{emulator.url}/oidc")
        state.providers[("demo-pool", "demo-oidc")] = provider
        self.audience = provider.resource(state.project_number)
        now = int(state.clock())
        claims = {
            "iss": provider.issuer,
            "sub": subject,
            "aud": f"https:{self.audience}",
            "iat": now,
            "exp": now + 3600,
        }
        self.subject_token_file = scratch / "subject-token"
        self.subject_token_file.write_text(jws.encode(claims, state.oidc_key.key, kid=state.oidc_key.kid))
        self.email = service_account(emulator, "demo-federated")
        pool = self.audience.split("/providers/")[0]
        state.grant_token_creator(self.email, f"principal:{pool}/subject/{subject}")
        self.iam_base = f"{emulator.url}/v1/projects/-/serviceAccounts/"
        self.info: dict[str, Any] = {
            "type": "external_account",
            "audience": self.audience,
            "subject_token_type": JWT_TYPE,
            "token_url": f"{emulator.url}/v1/token",
            "credential_source": {"file": str(self.subject_token_file)},
        }

    def credentials(self) -> ImpersonatedCredentials:
        """An external_account file as ``gcloud iam workload-identity-pools create-cred-config``
        writes it, acting as the service account."""
        config = ExternalAccountConfig.from_info(self.info, "external_account")
        federated = FederatedCredentials(config, self.email)
        return ImpersonatedCredentials(federated, self.email, include_email=True, iam_base=self.iam_base)


def federation(emulator: EmulatorServer, scratch: Path) -> Federation:
    return Federation(emulator, scratch)


def aws_workload(emulator: EmulatorServer) -> Credentials:
    """The emulated EC2 instance's role through AWS workload identity federation (IMDSv2, SigV4),
    acting as service account ``impersonated``."""
    service_account(emulator, "impersonated")
    return _with_email(credentials_from_info(state_dir.aws_file(emulator.state), "external-account-aws.json"))


def x509_workload(emulator: EmulatorServer, scratch: Path) -> Credentials:
    """A workload certificate from the emulator's CA, over its mTLS port (the emulator needs
    ``mtls_port``; the caller must trust ``scratch/ca.pem``, e.g. with GCPTOKEN_EMULATOR_CA)."""
    service_account(emulator, "impersonated")
    info = state_dir.x509_file(emulator.state, PrivateDir(str(scratch)))
    return _with_email(credentials_from_info(info, "external-account-x509.json"))


def _with_email(credentials: Credentials) -> Credentials:
    """ID tokens that name the service account by email (``includeEmail``), as the demo shows them."""
    if isinstance(credentials, ImpersonatedCredentials):
        credentials.include_email = True
    return credentials


def workforce_person(emulator: EmulatorServer) -> ImpersonatedCredentials:
    """A person signed in through a workforce pool (what ``gcloud auth login --login-config``
    leaves), acting as service account ``impersonated``."""
    email = service_account(emulator, "impersonated")
    person = credentials_from_info(state_dir.workforce_user_file(emulator.state), "login.json")
    iam_base = f"{emulator.url}/v1/projects/-/serviceAccounts/"
    return ImpersonatedCredentials(person, email, include_email=True, iam_base=iam_base)


def gcloud_environment(emulator_url: str, config: Path, metadata: str) -> dict[str, str]:
    """The variables that point an unchanged gcloud at the emulator, with its own throwaway
    configuration; ``metadata`` is where it may look for a metadata server (host:port)."""
    return {
        "CLOUDSDK_CONFIG": str(config),
        "CLOUDSDK_AUTH_TOKEN_HOST": f"{emulator_url}/token",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS": f"{emulator_url}/",
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
        "GCE_METADATA_ROOT": metadata,
        "GCE_METADATA_IP": metadata,
    }


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` set in this process's environment for the block, then put back as they were."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
