"""gcptoken: Google Cloud ID tokens from any credential, verified fast, tested offline."""

from gcptoken.credentials import Credentials, ServiceAccountCredentials, load_credentials
from gcptoken.errors import (
    CredentialsError,
    GcpTokenError,
    InvalidArgumentError,
    TokenRequestError,
    TransportError,
    VerificationError,
)
from gcptoken.tokens import DecodedToken, Token, decode
from gcptoken.verify import Verifier

__all__ = [
    "Credentials",
    "CredentialsError",
    "DecodedToken",
    "GcpTokenError",
    "InvalidArgumentError",
    "ServiceAccountCredentials",
    "Token",
    "TokenRequestError",
    "TransportError",
    "VerificationError",
    "Verifier",
    "decode",
    "load_credentials",
]
__version__ = "0.1.0"
