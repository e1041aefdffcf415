"""A token fetch that failed, as the status of the RPC that needed it.

The rule is gRFC A83's for its GCP identity call credentials
(https://github.com/grpc/proposal/blob/master/A83-xds-gcp-authn-filter.md): a token endpoint
answering with an HTTP status gRPC maps to UNAVAILABLE (429, 502, 503, 504:
https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md) or no answer at all
(network trouble) → ``UNAVAILABLE``, worth retrying; any other refusal → ``UNAUTHENTICATED``.
The details are gcptoken's one-line message, which never carries a token or a key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import grpc

from gcptoken.errors import GcpTokenError, TokenRequestError, TransportError

__all__ = ["FailedCall", "details_for", "status_for"]

_UNAVAILABLE_HTTP = frozenset({429, 502, 503, 504})


def status_for(error: GcpTokenError) -> grpc.StatusCode:
    if isinstance(error, TransportError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(error, TokenRequestError) and error.status in _UNAVAILABLE_HTTP:
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.UNAUTHENTICATED


def details_for(error: GcpTokenError, audience: str) -> str:
    return f"gcptoken: no ID token for {audience}: {error}"


class FailedCall(grpc.RpcError, grpc.Call, grpc.Future):  # type: ignore[type-arg]  # not generic at run time
    """What a sync interceptor gives back for an RPC it could not authorize: a call already over
    with the status above, raising itself where grpc's own failed calls raise (``result()``, the
    response iterator), so ``except grpc.RpcError as e: e.code()`` reads as for any other failure."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> tuple[Any, ...]:
        return ()

    def trailing_metadata(self) -> tuple[Any, ...]:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float:
        return 0.0

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False  # over already: grpc's contract says the callback is not called

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        fn(self)

    def result(self, timeout: float | None = None) -> NoReturn:
        raise self

    def exception(self, timeout: float | None = None) -> FailedCall:
        return self

    def traceback(self, timeout: float | None = None) -> None:
        return None

    def __iter__(self) -> FailedCall:
        return self

    def __next__(self) -> NoReturn:
        raise self

    def __str__(self) -> str:
        return f"<FailedCall {self._code.name}: {self._details}>"
