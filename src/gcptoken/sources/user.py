"""Moved to ``gcptoken.credentials.user``; this name keeps working for one release."""

from gcptoken.credentials.user import (
    UserKey,
    access_token_flow,
    id_token_flow,
    refresh_flow,
)

__all__ = ["UserKey", "access_token_flow", "id_token_flow", "refresh_flow"]
