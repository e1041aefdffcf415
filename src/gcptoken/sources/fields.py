"""Moved to ``gcptoken.credentials.fields``; this name keeps working for one release."""

from gcptoken.credentials.fields import (
    identifier,
    text,
    url,
)

__all__ = ["identifier", "text", "url"]
