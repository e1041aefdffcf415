"""Tokens Google's products would send, from the emulator: a service account's real ID token (its
key flow, over HTTP), and forged variants signed with the emulator's Google key (an unverified
email, a person's token, no email) that no real flow would give."""

from __future__ import annotations

import time
from typing import Any

from gcptoken.credentials.service_account import ServiceAccountCredentials, ServiceAccountKey
from gcptoken.testing import EmulatorClient
from tests.verify.issuers import DROP, issuers

AUD = "https://push-endpoint-abc123-uc.a.run.app/pubsub"
__all__ = ["AUD", "DROP", "forged", "sa_token"]


def sa_token(key_info: dict[str, str], audience: str = AUD) -> str:
    """What Pub/Sub sends for the subscription's service account: Google's ID token for it."""
    credentials = ServiceAccountCredentials(ServiceAccountKey.from_info(key_info, "test"))
    return credentials.id_token(audience, use_cache=False).value


def forged(emulator: EmulatorClient, who: str, **changes: Any) -> str:
    """A Google-signed ID token (the emulator's key) for ``who`` with ``changes`` to its claims."""
    google = issuers(emulator)["google"]
    now = int(time.time())
    claims = google.claims(**{"aud": AUD, "email": who, "azp": who, "iat": now, "exp": now + 3600, **changes})
    return google.sign(claims)
