"""What every gRPC integration of gcptoken shares: the credentials, the audience, the metadata key
(gRPC keys are lower case: ``authorization`` or ``x-serverless-authorization``), and a token for
one call within that call's timeout.

A token not at hand is fetched once per source at a time, in a thread (sync) or a task (aio) of its
own, through gcptoken's cache: a call waits for it no longer than its own timeout (then
DEADLINE_EXCEEDED, and the fetch goes on for the next calls), and the time left goes to the RPC.
While a token is due for refresh but still valid, calls go on with it and the refresh runs behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import grpc

from gcptoken import checks
from gcptoken.credentials import Credentials, load_credentials
from gcptoken.errors import GcpTokenError
from gcptoken.integrations.audience import id_token_header
from gcptoken.integrations.grpc.failures import FailedCall, details_for, status_for
from gcptoken.tokens import Token

if TYPE_CHECKING:
    import asyncio

__all__ = ["Metadata", "TokenSource"]

Metadata = Iterable[tuple[str, str | bytes]]


class _Fetch:
    """One fetch in a thread of its own, for the sync calls that wait on it (each as long as it may)."""

    def __init__(self, source: TokenSource) -> None:
        self.done = threading.Event()
        self.token: Token | None = None
        self.error: BaseException | None = None
        threading.Thread(target=self._run, args=(source,), name="gcptoken-grpc-fetch", daemon=True).start()

    def _run(self, source: TokenSource) -> None:
        try:
            self.token = source.credentials.id_token(source.audience)
        except BaseException as error:  # handed to every waiting call
            self.error = error
        finally:
            self.done.set()


def _retrieved(task: asyncio.Task[Token]) -> None:
    if not task.cancelled():
        task.exception()  # a fetch no call waited for to the end stays quiet


class TokenSource:
    def __init__(self, audience: str, credentials: Credentials | None, header: str) -> None:
        self.audience = checks.audience(audience)
        self.credentials = credentials or load_credentials()
        self.key = id_token_header(header).lower()
        self._lock = threading.Lock()
        self._fetch: _Fetch | None = None
        self._tasks: dict[int, asyncio.Task[Token]] = {}  # per event loop

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
        with self._lock:
            fetch = self._fetch
            if fetch is None or fetch.done.is_set():
                fetch = self._fetch = _Fetch(self)
        usable = self._usable()
        if usable is not None:  # due for refresh, still valid: the refresh runs behind
            return self.metadata(given, usable.value), timeout
        if not fetch.done.wait(timeout):
            assert timeout is not None
            raise FailedCall(*self.late(timeout))
        if isinstance(fetch.error, GcpTokenError):
            raise FailedCall(*self.failure(fetch.error)) from None
        if fetch.error is not None:
            raise fetch.error
        assert fetch.token is not None
        return self.metadata(given, fetch.token.value), _left(timeout, started)

    async def authorized_async(
        self, given: Metadata | None, timeout: float | None
    ) -> tuple[tuple[tuple[str, str | bytes], ...], float | None]:
        """As ``authorized``, awaiting the fetch (a task of this loop) instead of blocking; the
        failure raised as ``grpc.aio.AioRpcError``."""
        import asyncio

        import grpc.aio

        token = self.credentials.cached_id_token(self.audience)
        if token is not None:
            return self.metadata(given, token.value), timeout
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        task = self._tasks.get(id(loop))
        if task is None or task.done():
            if len(self._tasks) > 16:  # loops come and go (asyncio.run): forget finished ones
                self._tasks = {key: value for key, value in self._tasks.items() if not value.done()}
            task = self._tasks[id(loop)] = loop.create_task(self.credentials.id_token_async(self.audience))
            task.add_done_callback(_retrieved)
        usable = self._usable()
        if usable is not None:
            return self.metadata(given, usable.value), timeout
        failure: tuple[grpc.StatusCode, str]
        try:
            token = await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            assert timeout is not None
            failure = self.late(timeout)
        except GcpTokenError as error:
            failure = self.failure(error)
        else:
            return self.metadata(given, token.value), _left(timeout, started)
        raise grpc.aio.AioRpcError(failure[0], grpc.aio.Metadata(), grpc.aio.Metadata(), failure[1])


def _left(timeout: float | None, started: float) -> float | None:
    return None if timeout is None else max(timeout - (time.monotonic() - started), 0.001)
