"""What every gRPC integration of gcptoken shares: the credentials, the audience, the metadata key
(gRPC keys are lower case: ``authorization`` or ``x-serverless-authorization``), and a token for
one call within that call's timeout.

A token not at hand is fetched once per source at a time, in a thread of its own (sync and aio
alike: no event loop runs it, waits on it or cancels it half way), through gcptoken's cache: a call
waits for it no longer than its own timeout (then DEADLINE_EXCEEDED, and the fetch goes on for the
next calls), and the time left goes to the RPC. While a token is due for refresh but still valid,
calls go on with it and the refresh runs behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterable

import grpc

from gcptoken import checks
from gcptoken.credentials import Credentials, load_credentials
from gcptoken.errors import GcpTokenError
from gcptoken.integrations.audience import id_token_header
from gcptoken.integrations.grpc.failures import FailedCall, details_for, status_for
from gcptoken.tokens import Token

__all__ = ["Metadata", "TokenSource"]

Metadata = Iterable[tuple[str, str | bytes]]


class _Fetch:
    """One fetch in a thread of its own, for the calls that wait on it (each as long as it may):
    sync calls block on ``future``, aio calls await it wrapped, so no fetch is tied to an event
    loop (none is cancelled half way when a loop ends, none blocks one)."""

    def __init__(self, source: TokenSource) -> None:
        self.future: concurrent.futures.Future[Token] = concurrent.futures.Future()
        threading.Thread(target=self._run, args=(source,), name="gcptoken-grpc-fetch", daemon=True).start()

    def _run(self, source: TokenSource) -> None:
        try:
            self.future.set_result(source.credentials.id_token(source.audience))
        except BaseException as error:  # handed to every waiting call
            self.future.set_exception(error)


class TokenSource:
    def __init__(self, audience: str, credentials: Credentials | None, header: str) -> None:
        self.audience = checks.audience(audience)
        self.credentials = credentials or load_credentials()
        self.key = id_token_header(header).lower()
        self._lock = threading.Lock()
        self._fetch: _Fetch | None = None

    def metadata(self, given: Metadata | None, token: str) -> tuple[tuple[str, str | bytes], ...]:
        """``given`` with the token in place of any value the caller set for the same key."""
        if not given:
            return ((self.key, f"Bearer {token}"),)
        return (*((key, value) for key, value in given if key.lower() != self.key), (self.key, f"Bearer {token}"))

    def failure(self, error: GcpTokenError) -> tuple[grpc.StatusCode, str]:
        return status_for(error), details_for(error, self.audience)

    def late(self, timeout: float) -> tuple[grpc.StatusCode, str]:
        return grpc.StatusCode.DEADLINE_EXCEEDED, (
            f"gcptoken: no ID token for {self.audience} within the call's timeout ({timeout:g} s)"
        )

    def _usable(self) -> Token | None:
        return self.credentials.cached_id_token(self.audience, until_expiry=True)

    def authorized(
        self, given: Metadata | None, timeout: float | None
    ) -> tuple[tuple[tuple[str, str | bytes], ...], float | None]:
        """``given`` with a token, and the time left of ``timeout`` for the RPC; FailedCall raised
        when the fetch fails or outlasts ``timeout``."""
        token = self.credentials.cached_id_token(self.audience)
        if token is not None:  # the common case
            return self.metadata(given, token.value), timeout
        started = time.monotonic()
        fetch = self._fetching()
        usable = self._usable()
        if usable is not None:  # due for refresh, still valid: the refresh runs behind
            return self.metadata(given, usable.value), timeout
        try:
            token = fetch.future.result(timeout)
        except TimeoutError:
            assert timeout is not None
            raise FailedCall(*self.late(timeout)) from None
        except GcpTokenError as error:
            raise FailedCall(*self.failure(error)) from None
        return self.metadata(given, token.value), _left(timeout, started)

    def _fetching(self) -> _Fetch:
        """The fetch under way, or a new one."""
        with self._lock:
            fetch = self._fetch
            if fetch is None or fetch.future.done():
                fetch = self._fetch = _Fetch(self)
            return fetch

    async def authorized_async(
        self, given: Metadata | None, timeout: float | None
    ) -> tuple[tuple[tuple[str, str | bytes], ...], float | None]:
        """As ``authorized``, awaiting the fetch instead of blocking; the failure raised as
        ``grpc.aio.AioRpcError``."""
        import grpc.aio

        token = self.credentials.cached_id_token(self.audience)
        if token is not None:
            return self.metadata(given, token.value), timeout
        started = time.monotonic()
        fetch = self._fetching()
        usable = self._usable()
        if usable is not None:
            return self.metadata(given, usable.value), timeout
        failure: tuple[grpc.StatusCode, str]
        try:
            waited = asyncio.wrap_future(fetch.future)
            waited.add_done_callback(_retrieved)
            token = await asyncio.wait_for(asyncio.shield(waited), timeout)
        except TimeoutError:
            assert timeout is not None
            failure = self.late(timeout)
        except GcpTokenError as error:
            failure = self.failure(error)
        else:
            return self.metadata(given, token.value), _left(timeout, started)
        raise grpc.aio.AioRpcError(failure[0], grpc.aio.Metadata(), grpc.aio.Metadata(), failure[1])


def _retrieved(waited: asyncio.Future[Token]) -> None:
    if not waited.cancelled():
        waited.exception()  # a failure no call waited for to the end stays quiet


def _left(timeout: float | None, started: float) -> float | None:
    return None if timeout is None else max(timeout - (time.monotonic() - started), 0.001)
