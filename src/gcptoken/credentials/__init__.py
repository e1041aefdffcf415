"""Every kind of credential gcptoken can get tokens from, one module each (its token flows and its
Credentials class together), how files name them (files), and how Application Default
Credentials choose one (adc).

Names load on first use (PEP 562): the CLI's cached path reads ``subject_token`` from here without
paying for the credential classes (httpx, cryptography)."""

from __future__ import annotations

import importlib as _importlib

TYPE_CHECKING = False  # not typing's: the cached path must not import it (mypy reads it alike)
if TYPE_CHECKING:
    import os
    from typing import Any

    from gcptoken.credentials.base import CREDENTIALS_ENV, DEFAULT_SCOPES, Credentials
    from gcptoken.credentials.external_account import FederatedCredentials
    from gcptoken.credentials.files import SUPPORTED_TYPES, credentials_from_info
    from gcptoken.credentials.gcloud import GcloudCredentials
    from gcptoken.credentials.impersonated import ImpersonatedCredentials
    from gcptoken.credentials.metadata import MetadataCredentials
    from gcptoken.credentials.service_account import ServiceAccountCredentials
    from gcptoken.credentials.user import UserCredentials
    from gcptoken.credentials.workforce_user import WorkforceUserCredentials
del TYPE_CHECKING

__all__ = [
    "CREDENTIALS_ENV",
    "DEFAULT_SCOPES",
    "SUPPORTED_TYPES",
    "Credentials",
    "FederatedCredentials",
    "GcloudCredentials",
    "ImpersonatedCredentials",
    "MetadataCredentials",
    "ServiceAccountCredentials",
    "UserCredentials",
    "WorkforceUserCredentials",
    "credentials_from_info",
    "load_credentials",
]

_LAZY = {
    "CREDENTIALS_ENV": "base",
    "DEFAULT_SCOPES": "base",
    "Credentials": "base",
    "FederatedCredentials": "external_account",
    "SUPPORTED_TYPES": "files",
    "credentials_from_info": "files",
    "GcloudCredentials": "gcloud",
    "ImpersonatedCredentials": "impersonated",
    "MetadataCredentials": "metadata",
    "ServiceAccountCredentials": "service_account",
    "UserCredentials": "user",
    "WorkforceUserCredentials": "workforce_user",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gcptoken.credentials' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"gcptoken.credentials.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def load_credentials(path: str | os.PathLike[str] | None = None) -> Credentials:
    """Credentials from a JSON credential file; without a path, Application Default Credentials
    ($GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file, then the metadata server)."""
    from gcptoken.credentials.adc import default_credentials
    from gcptoken.credentials.files import load_file

    if path is None or not str(path).strip():  # an empty path means "not given", as an empty variable
        return default_credentials()
    return load_file(path)
