"""A sync ``future()`` that returns at once while its call's token is still being fetched: the call
starts in a thread when the token comes (or fails as the RPC's status), and the future stands for
it meanwhile, as ``grpc.Future`` and ``grpc.Call`` both."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc

from gcptoken.integrations.grpc.failures import FailedCall

__all__ = ["DeferredCall"]


class DeferredCall(grpc.Call, grpc.Future):  # type: ignore[type-arg]  # not generic at run time
    def __init__(self, start: Callable[[], Any]) -> None:
        """``start()`` makes the call (a grpc future, or a FailedCall: it never raises); before it
        makes one it asks ``cancel_requested`` and returns None when the caller cancelled meanwhile."""
        self._lock = threading.Lock()
        self._started = threading.Event()
        self._call: Any = None
        self._cancelled = False
        self._done_callbacks: list[Callable[[Any], None]] = []
        threading.Thread(target=self._start, args=(start,), name="gcptoken-grpc-future", daemon=True).start()

    @property
    def cancel_requested(self) -> bool:
        return self._cancelled

    def _start(self, start: Callable[[], Any]) -> None:
        call = start()
        if call is None:  # cancelled before it started: nothing was sent
            call = FailedCall(grpc.StatusCode.CANCELLED, "cancelled before it started")
        with self._lock:
            self._call, cancelled, callbacks = call, self._cancelled, self._done_callbacks
        self._started.set()
        if cancelled:
            call.cancel()
        for callback in callbacks:
            self._chain(call, callback)

    def _chain(self, call: Any, fn: Callable[[Any], None]) -> None:
        call.add_done_callback(lambda _: fn(self))  # callbacks get this future, as they were given it

    def _wait(self, timeout: float | None) -> Any:
        if not self._started.wait(timeout):
            raise grpc.FutureTimeoutError()
        return self._call

    def cancel(self) -> bool:
        with self._lock:
            if self._call is None:
                self._cancelled = True
                return True
        return bool(self._call.cancel())

    def cancelled(self) -> bool:
        with self._lock:
            if self._call is None:
                return self._cancelled
        return bool(self._call.cancelled())

    def running(self) -> bool:
        return self._call is None or bool(self._call.running())

    def done(self) -> bool:
        return self._call is not None and bool(self._call.done())

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        with self._lock:
            if self._call is None:
                self._done_callbacks.append(fn)
                return
        self._chain(self._call, fn)

    def result(self, timeout: float | None = None) -> Any:
        call = self._wait(timeout)
        if isinstance(call, FailedCall) and call.code() == grpc.StatusCode.CANCELLED:
            raise grpc.FutureCancelledError()  # as a grpc future cancelled by its caller
        return call.result(timeout)

    def exception(self, timeout: float | None = None) -> Any:
        call = self._wait(timeout)
        if isinstance(call, FailedCall) and call.code() == grpc.StatusCode.CANCELLED:
            raise grpc.FutureCancelledError()
        return call.exception(timeout)

    def traceback(self, timeout: float | None = None) -> Any:
        return self._wait(timeout).traceback(timeout)

    # grpc.Call: what the started call says, once it has started (these block until then)
    def code(self) -> grpc.StatusCode:
        return self._wait(None).code()  # type: ignore[no-any-return]

    def details(self) -> str:
        return self._wait(None).details()  # type: ignore[no-any-return]

    def initial_metadata(self) -> Any:
        return self._wait(None).initial_metadata()

    def trailing_metadata(self) -> Any:
        return self._wait(None).trailing_metadata()

    def is_active(self) -> bool:
        return self._call is None or bool(self._call.is_active())

    def time_remaining(self) -> float:
        return float(self._wait(None).time_remaining() or 0.0)

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return bool(self._wait(None).add_callback(callback))
