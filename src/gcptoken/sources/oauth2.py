"""Moved to ``gcptoken.credentials.oauth2``; this name keeps working for one release."""

from gcptoken.credentials.oauth2 import (
    access_token_from,
    id_token_from,
    post_form,
    raise_for_refusal,
)

__all__ = ["access_token_from", "id_token_from", "post_form", "raise_for_refusal"]
