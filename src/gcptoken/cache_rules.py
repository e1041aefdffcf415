"""What the in-process and on-disk caches agree on: how a key is made from a credential's
identity, and when a token is due for refresh. Standard library only, so the CLI's cached path
can use it without loading anything else."""

from __future__ import annotations

import hashlib

__all__ = ["MAX_MARGIN", "cache_key", "refresh_margin", "service_account_identity", "user_identity"]

# One-hour tokens are refreshed five minutes early; shorter ones proportionately (a twelfth).
MAX_MARGIN = 300.0


def refresh_margin(lifetime: float) -> float:
    return min(MAX_MARGIN, max(lifetime, 0.0) / 12)


def cache_key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def service_account_identity(client_email: str, private_key_id: str, token_url: str) -> str:
    """A key file's identity; ``token_url`` is the endpoint actually called (emulator resolved)."""
    return f"service_account|{client_email}|{private_key_id}|{token_url}"


def user_identity(client_id: str, refresh_token: str, token_url: str) -> str:
    """A user credential's identity: a one-way digest of the refresh token, never the token."""
    secret_digest = hashlib.sha256(refresh_token.encode()).hexdigest()[:32]
    return f"authorized_user|{client_id}|{secret_digest}|{token_url}"
