"""Moved to ``gcptoken.credentials.external_account``; this name keeps working for one release."""

from gcptoken.credentials.external_account import (
    STS_URL,
    ExternalAccountConfig,
    access_token_flow,
    subject_token_flow,
    subject_token_from_file,
)

__all__ = ["STS_URL", "ExternalAccountConfig", "access_token_flow", "subject_token_flow", "subject_token_from_file"]
