"""What every gRPC integration of gcptoken shares: the credentials, the audience, the metadata key
(gRPC keys are lower case: ``authorization`` or ``x-serverless-authorization``), and the request
metadata with the token put in."""

from __future__ import annotations

from collections.abc import Iterable

import grpc

from gcptoken import checks
from gcptoken.credentials import Credentials, load_credentials
from gcptoken.errors import GcpTokenError
from gcptoken.integrations.audience import id_token_header
from gcptoken.integrations.grpc.failures import FailedCall, details_for, status_for

__all__ = ["Metadata", "TokenSource"]

Metadata = Iterable[tuple[str, str | bytes]]


class TokenSource:
    def __init__(self, audience: str, credentials: Credentials | None, header: str) -> None:
        self.audience = checks.audience(audience)
        self.credentials = credentials or load_credentials()
        self.key = id_token_header(header).lower()

    def metadata(self, given: Metadata | None, token: str) -> tuple[tuple[str, str | bytes], ...]:
        """``given`` with the token in place of any value the caller set for the same key."""
        if not given:
            return ((self.key, f"Bearer {token}"),)
        return (*((key, value) for key, value in given if key.lower() != self.key), (self.key, f"Bearer {token}"))

    def failure(self, error: GcpTokenError) -> tuple[grpc.StatusCode, str]:
        return status_for(error), details_for(error, self.audience)

    def authorized(self, given: Metadata | None) -> tuple[tuple[str, str | bytes], ...]:
        """``given`` with a token (blocking while one is fetched), or FailedCall raised."""
        try:
            token = self.credentials.id_token(self.audience).value
        except GcpTokenError as error:
            raise FailedCall(*self.failure(error)) from None
        return self.metadata(given, token)
