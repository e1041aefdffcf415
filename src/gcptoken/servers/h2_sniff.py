"""HTTP/2 with prior knowledge on the same port as HTTP/1.1: a connection that opens with the
HTTP/2 connection preface (RFC 9113 §3.4, what gRPC's insecure channels send) is handed over to an
HTTP/2 handler; any other goes on to uvicorn's HTTP/1.1, unchanged (WebSockets included)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from gcptoken.servers.serving import HeaderTimeoutProtocol

__all__ = ["PREFACE", "Handover", "sniffing"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Handover(Protocol):
    """What takes a connection over once it said the preface (the transport stays uvicorn's)."""

    def data_received(self, data: bytes) -> None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
    def shutdown(self) -> None: ...


TakeOver = Callable[[asyncio.Transport, bytes], Handover]


def sniffing(take_over: TakeOver) -> type[HeaderTimeoutProtocol]:
    """A uvicorn protocol class that gives HTTP/2 connections to ``take_over(transport, first_bytes)``."""

    class Sniffing(_Sniffing):
        handler = staticmethod(take_over)

    return Sniffing


class _Sniffing(HeaderTimeoutProtocol):
    handler: TakeOver
    _h2: Handover | None = None
    _sniffed = False
    _start = b""

    def data_received(self, data: bytes) -> None:
        if self._h2 is not None:
            self._h2.data_received(data)
            return
        if not self._sniffed:
            data = self._start + data
            if len(data) < len(PREFACE) and PREFACE.startswith(data):
                self._start = data  # the preface so far: wait for the rest (the header timer runs)
                return
            self._sniffed, self._start = True, b""
            if data.startswith(PREFACE):
                self._disarm_header_timer()  # the HTTP/2 side keeps its own deadlines
                self._h2 = self.handler(self.transport, data)  # h2 reads the preface itself
                return
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._h2 is not None:
            self._h2.connection_lost(exc)
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        if self._h2 is not None:
            self._h2.pause_writing()
        else:
            super().pause_writing()

    def resume_writing(self) -> None:
        if self._h2 is not None:
            self._h2.resume_writing()
        else:
            super().resume_writing()

    def shutdown(self) -> None:
        if self._h2 is not None:
            self._h2.shutdown()
        else:
            super().shutdown()
