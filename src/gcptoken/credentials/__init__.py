"""Every kind of credential gcptoken can get tokens from, one module each (its token flows and its
Credentials class together), how files name them (files), and how Application Default
Credentials choose one (adc)."""

from __future__ import annotations

import os

from gcptoken.credentials.adc import default_credentials
from gcptoken.credentials.base import CREDENTIALS_ENV, DEFAULT_SCOPES, Credentials
from gcptoken.credentials.files import SUPPORTED_TYPES, credentials_from_info, load_file
from gcptoken.credentials.gcloud import GcloudCredentials
from gcptoken.credentials.metadata import MetadataCredentials

TYPE_CHECKING = False  # the kinds below are imported on first use (PEP 562), as gcptoken's names are
if TYPE_CHECKING:
    from gcptoken.credentials.external_account import FederatedCredentials
    from gcptoken.credentials.impersonated import ImpersonatedCredentials
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


def load_credentials(path: str | os.PathLike[str] | None = None) -> Credentials:
    """Credentials from a JSON credential file; without a path, Application Default Credentials
    ($GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file, then the metadata server)."""
    if path is None or not str(path).strip():  # an empty path means "not given", as an empty variable
        return default_credentials()
    return load_file(path)


# A one-shot CLI run on a key file loads only the service-account module, not the external-account
# sources (AWS signing, executables, x509) nor the workforce and impersonation flows.
_LAZY = {
    "FederatedCredentials": "gcptoken.credentials.external_account",
    "ImpersonatedCredentials": "gcptoken.credentials.impersonated",
    "ServiceAccountCredentials": "gcptoken.credentials.service_account",
    "UserCredentials": "gcptoken.credentials.user",
    "WorkforceUserCredentials": "gcptoken.credentials.workforce_user",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
