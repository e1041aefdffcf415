"""Moved to ``gcptoken.credentials.gcloud``; this name keeps working for one release."""

from gcptoken.credentials.gcloud import (
    run_gcloud,
)

__all__ = ["run_gcloud"]
