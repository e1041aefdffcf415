"""Moved to ``gcptoken.credentials.metadata``; this name keeps working for one release."""

from gcptoken.credentials.metadata import (
    DEFAULT_HOST,
    METADATA_TIMEOUT,
    access_token_flow,
    email_flow,
    id_token_flow,
    metadata_host,
)

__all__ = ["DEFAULT_HOST", "METADATA_TIMEOUT", "access_token_flow", "email_flow", "id_token_flow", "metadata_host"]
