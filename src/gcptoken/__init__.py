"""gcptoken: Google Cloud ID tokens from any credential, verified fast, tested offline.

Names are imported on first use (PEP 562), so ``import gcptoken`` and the CLI's fast paths do not
pay for cryptography or httpx until they need them.
"""

from __future__ import annotations

from gcptoken.errors import (
    CredentialsError,
    GcpTokenError,
    InvalidArgumentError,
    RefusedError,
    TokenRequestError,
    TransportError,
    VerificationError,
)

# Not typing.TYPE_CHECKING: importing typing costs the CLI's cached path ~10 ms (mypy reads it alike).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import typing as _typing

    from gcptoken.credentials import (
        Credentials,
        FederatedCredentials,
        GcloudCredentials,
        ImpersonatedCredentials,
        MetadataCredentials,
        ServiceAccountCredentials,
        UserCredentials,
        WorkforceUserCredentials,
        load_credentials,
    )
    from gcptoken.tokens import DecodedToken, Token, decode
    from gcptoken.verify.verifier import Verifier
del TYPE_CHECKING  # not part of the package's namespace

__all__ = [
    "Credentials",
    "CredentialsError",
    "DecodedToken",
    "FederatedCredentials",
    "GcloudCredentials",
    "GcpTokenError",
    "ImpersonatedCredentials",
    "InvalidArgumentError",
    "MetadataCredentials",
    "RefusedError",
    "ServiceAccountCredentials",
    "Token",
    "TokenRequestError",
    "TransportError",
    "UserCredentials",
    "VerificationError",
    "Verifier",
    "WorkforceUserCredentials",
    "decode",
    "load_credentials",
]
__version__ = "0.1.0"

_LAZY = {
    "Credentials": "gcptoken.credentials",
    "FederatedCredentials": "gcptoken.credentials",
    "GcloudCredentials": "gcptoken.credentials",
    "ImpersonatedCredentials": "gcptoken.credentials",
    "MetadataCredentials": "gcptoken.credentials",
    "ServiceAccountCredentials": "gcptoken.credentials",
    "UserCredentials": "gcptoken.credentials",
    "WorkforceUserCredentials": "gcptoken.credentials",
    "load_credentials": "gcptoken.credentials",
    "DecodedToken": "gcptoken.tokens",
    "Token": "gcptoken.tokens",
    "decode": "gcptoken.tokens",
    "Verifier": "gcptoken.verify.verifier",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gcptoken' has no attribute {name!r}")
    import importlib  # here, not at the top: the CLI's cached path imports this package

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
