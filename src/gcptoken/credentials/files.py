"""Credential files by ``type``: which kind of credential a JSON file holds, read safely."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gcptoken.credentials.fields as fields
from gcptoken.credentials import universes
from gcptoken.errors import CredentialsError
from gcptoken.private_files import read_json_file

if TYPE_CHECKING:
    from gcptoken.credentials.base import Credentials
    from gcptoken.credentials.impersonated import ImpersonatedCredentials

__all__ = ["SUPPORTED_TYPES", "credentials_from_info", "load_file"]

SUPPORTED_TYPES = (
    "service_account",
    "authorized_user",
    "impersonated_service_account",
    "external_account",
    "external_account_authorized_user",
)


def credentials_from_info(info: dict[str, Any], source: str) -> Credentials:
    credentials = _from_info(info, source)
    quota_project = info.get("quota_project_id")
    if isinstance(quota_project, str) and quota_project.strip():
        credentials.quota_project_id = quota_project.strip()
    universe = fields.text(info, "universe_domain", f"{source}: credential file", required=False)
    if universe is not None:
        credentials.universe_domain = universes.checked(universe, f"{source}: universe_domain")
    return credentials


def _from_info(info: dict[str, Any], source: str) -> Credentials:
    # Each kind's module is imported only when a file of that kind is read: a one-shot CLI run on a
    # key file does not pay for the external-account sources (AWS signing, executables, x509).
    kind = info.get("type")
    if kind == "service_account":
        from gcptoken.credentials.service_account import ServiceAccountCredentials, ServiceAccountKey

        return ServiceAccountCredentials(ServiceAccountKey.from_info(info, source), source)
    if kind == "authorized_user":
        from gcptoken.credentials.user import UserCredentials, UserKey

        return UserCredentials(UserKey.from_info(info, source), source)
    if kind == "impersonated_service_account":
        return _impersonated_from_info(info, source)
    if kind == "external_account":
        return _external_account_from_info(info, source)
    if kind == "external_account_authorized_user":
        from gcptoken.credentials.workforce_user import WorkforceUserCredentials, WorkforceUserKey

        return WorkforceUserCredentials(WorkforceUserKey.from_info(info, source), source)
    if kind is None:
        raise CredentialsError(f"{source}: no 'type' field; is this a Google credential file?")
    raise CredentialsError(
        f"{source}: unsupported credential type {fields.identifier(kind)} (supported: {', '.join(SUPPORTED_TYPES)})"
    )


def _impersonated_from_info(info: dict[str, Any], source: str) -> ImpersonatedCredentials:
    """As ``gcloud auth application-default login --impersonate-service-account`` writes it."""
    from gcptoken.credentials.impersonated import ImpersonatedCredentials, parse_impersonation_url

    inner = info.get("source_credentials")
    if not isinstance(inner, dict):
        raise CredentialsError(f"{source}: impersonated_service_account has no 'source_credentials' object")
    if inner.get("type") == "impersonated_service_account":
        raise CredentialsError(f"{source}: nested impersonated_service_account source credentials are not supported")
    url = info.get("service_account_impersonation_url")
    try:
        base, target = parse_impersonation_url(url if isinstance(url, str) else "")
    except ValueError:
        raise CredentialsError(
            f"{source}: service_account_impersonation_url must end in /serviceAccounts/EMAIL:generateAccessToken"
        ) from None
    delegates = info.get("delegates") or []
    if not isinstance(delegates, list) or not all(isinstance(d, str) for d in delegates):
        raise CredentialsError(f"{source}: 'delegates' must be a list of service accounts")
    emails = [d.removeprefix("projects/-/serviceAccounts/") for d in delegates]
    return ImpersonatedCredentials(
        credentials_from_info(inner, f"{source} (source_credentials)"), target, emails, iam_base=base
    )


def _external_account_from_info(info: dict[str, Any], source: str) -> Credentials:
    from gcptoken.credentials.external_account import ExternalAccountConfig, FederatedCredentials
    from gcptoken.credentials.impersonated import ImpersonatedCredentials, parse_impersonation_url

    config = ExternalAccountConfig.from_info(info, source)
    if config.impersonation_url is None:
        return FederatedCredentials(config)
    try:
        base, target = parse_impersonation_url(config.impersonation_url)
    except ValueError:
        raise CredentialsError(
            f"{source}: service_account_impersonation_url must end in /serviceAccounts/EMAIL:generateAccessToken"
        ) from None
    federated = FederatedCredentials(config, target)
    return ImpersonatedCredentials(federated, target, lifetime=config.token_lifetime, iam_base=base)


def load_file(path: str | os.PathLike[str]) -> Credentials:
    """Credentials from a JSON credential file (its ``type`` says which kind)."""
    file = Path(path)
    return credentials_from_info(read_json_file(file, "credential file"), str(file))
