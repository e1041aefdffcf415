"""Moved to ``gcptoken.credentials.service_account``; this name keeps working for one release."""

from gcptoken.credentials.service_account import (
    JWT_BEARER,
    ServiceAccountKey,
    access_token_flow,
    assertion,
    assertion_claims,
    id_token_flow,
    self_signed_jwt,
)

__all__ = [
    "JWT_BEARER",
    "ServiceAccountKey",
    "access_token_flow",
    "assertion",
    "assertion_claims",
    "id_token_flow",
    "self_signed_jwt",
]
