"""Moved to ``gcptoken.credentials.impersonated``; this name keeps working for one release."""

from gcptoken.credentials.impersonated import (
    IAM_BASE,
    MAX_LIFETIME,
    delegate_names,
    generate_access_token_flow,
    generate_id_token_flow,
    parse_impersonation_url,
    sign_blob_flow,
    sign_jwt_flow,
)

__all__ = [
    "IAM_BASE",
    "MAX_LIFETIME",
    "delegate_names",
    "generate_access_token_flow",
    "generate_id_token_flow",
    "parse_impersonation_url",
    "sign_blob_flow",
    "sign_jwt_flow",
]
