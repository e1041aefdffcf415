"""OpenTelemetry's real OTLP/HTTP exporters and SDK sending spans, metrics and logs to a collector on
loopback behind gcptoken's verifying middleware (keys from the emulator), which decodes each OTLP
body: with ``id_token_session``, with the credential-provider variable alone, and through ``gcptoken
proxy``; a token outlived by a long-lived exporter; a token fetch that fails."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from google.protobuf.message import Message
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from gcptoken import Verifier
from gcptoken.cache.memory import default_cache
from gcptoken.credentials import MetadataCredentials, credentials_from_info
from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.integrations.asgi import IdTokenMiddleware
from gcptoken.integrations.otel import ENTRY_POINT, id_token_session
from gcptoken.local.proxy import proxy_app
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient, write_key_file
from tests.clock import Clock

# What each OTLP/HTTP path carries, and the empty answer a collector gives.
SIGNALS: dict[str, tuple[type[Message], bytes]] = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse().SerializeToString()),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse().SerializeToString()),
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse().SerializeToString()),
}

_accounts = itertools.count(1)


def _names(path: str, body: bytes) -> list[str]:
    """The span names, metric names or log bodies an OTLP request carries."""
    message: Any = SIGNALS[path][0].FromString(body)
    if path == "/v1/traces":
        return [span.name for rs in message.resource_spans for ss in rs.scope_spans for span in ss.spans]
    if path == "/v1/metrics":
        return [m.name for rm in message.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    return [r.body.string_value for rl in message.resource_logs for sl in rl.scope_logs for r in sl.log_records]


@dataclass
class Export:
    path: str
    names: list[str]
    claims: dict[str, Any]
    token: str


@dataclass
class Collector:
    """An OTLP/HTTP receiver; behind IdTokenMiddleware, it sees only verified requests."""

    url: str = ""
    received: list[Export] = field(default_factory=list)
    refuse: int = 0  # this many verified requests get 401 invalid_token first (as if revoked)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await Request(scope, receive).body()
        if self.refuse > 0:
            self.refuse -= 1
            challenge = [(b"www-authenticate", b'Bearer error="invalid_token"'), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 401, "headers": challenge})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = dict(scope["headers"])
        token = headers[b"authorization"].decode().removeprefix("Bearer ")
        self.received.append(Export(scope["path"], _names(scope["path"], body), scope["state"]["claims"], token))
        answer = SIGNALS[scope["path"]][1]
        reply = [(b"content-type", b"application/x-protobuf"), (b"content-length", b"%d" % len(answer))]
        await send({"type": "http.response.start", "status": 200, "headers": reply})
        await send({"type": "http.response.body", "body": answer})

    def arrived(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for export in self.received:
            found.setdefault(export.path, []).extend(export.names)
        return found


# The emulator's clock (its tokens' times, its view of assertions): tests move it, and put it back.
CLOCK = Clock()


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorState(clock=CLOCK)) as server:
        yield server


@pytest.fixture(scope="module")
def running_collector(emu: EmulatorServer) -> Iterator[Collector]:
    sock = bind("127.0.0.1", 0)
    collector = Collector(f"http://127.0.0.1:{sock.getsockname()[1]}")
    # The audience a Cloud Run collector expects: its root URL (here, the loopback one).
    verifier = Verifier(collector.url, certs=f"{emu.url}/oauth2/v3/certs")
    with AsgiServer(IdTokenMiddleware(collector, verifier), sock):
        yield collector


@pytest.fixture
def collector(running_collector: Collector) -> Collector:
    running_collector.received.clear()
    running_collector.refuse = 0
    return running_collector


@pytest.fixture
def key(emu: EmulatorServer) -> dict[str, str]:
    return emu.key_file(f"otel-caller-{next(_accounts)}")  # a fresh account per test


def test_spans_metrics_and_logs_each_carry_a_verified_token(collector: Collector, key: dict[str, str]) -> None:
    """The SDK's own pipelines, each exporter with its own session: one token serves all three."""
    credentials = credentials_from_info(key, "test")
    url = collector.url
    tracing = TracerProvider()
    tracing.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(f"{url}/v1/traces", session=id_token_session(credentials=credentials)))
    )
    exporter = OTLPMetricExporter(f"{url}/v1/metrics", session=id_token_session(credentials=credentials))
    metering = MeterProvider(metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=3.6e6)])
    logging_ = LoggerProvider()
    logging_.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(f"{url}/v1/logs", session=id_token_session(credentials=credentials)))
    )
    try:
        with tracing.get_tracer("shop").start_as_current_span("checkout"):
            metering.get_meter("shop").create_counter("orders").add(3)
            logging_.get_logger("shop").emit(body="order placed")
        assert metering.force_flush()
    finally:
        for provider in (tracing, metering, logging_):
            provider.shutdown()
    arrived = collector.arrived()
    assert arrived["/v1/traces"] == ["checkout"] and arrived["/v1/logs"] == ["order placed"]
    assert set(arrived["/v1/metrics"]) == {"orders"}  # the flush's export, and the one at shutdown
    assert {(e.claims["email"], e.claims["aud"]) for e in collector.received} == {(key["client_email"], url)}
    assert len({e.token for e in collector.received}) == 1  # from gcptoken's cache after the first


def test_a_refused_token_is_replaced_once(collector: Collector, key: dict[str, str], emu: EmulatorServer) -> None:
    """A 401 saying invalid_token: the same export goes again with a token fetched anew."""
    spans = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(spans))
    with tracing.get_tracer("app").start_as_current_span("retried"):
        pass
    tracing.shutdown()
    exporter = OTLPSpanExporter(
        f"{collector.url}/v1/traces", session=id_token_session(credentials=credentials_from_info(key, "test"))
    )
    collector.refuse = 1
    assert exporter.export(spans.get_finished_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()  # type: ignore[no-untyped-call]  # (not annotated upstream)
    assert collector.arrived() == {"/v1/traces": ["retried"]}
    assert len(EmulatorClient(emu).token_requests_by(key["client_email"])) == 2


class World:
    """Time for the emulator and for gcptoken's token cache, moved forward together; the emulator
    starts an hour minus 10 s behind, so its tokens expire 10 s from now (and the collector checks
    them on the real clock)."""

    def __init__(self) -> None:
        self.moved = 0.0
        CLOCK.offset = -3590

    def cache_clock(self) -> float:
        return time.time() + self.moved

    def advance(self, seconds: float) -> None:
        self.moved += seconds
        CLOCK.offset += seconds


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    world = World()
    monkeypatch.setattr(default_cache(), "clock", world.cache_clock)
    yield world
    CLOCK.offset = 0


def test_a_long_lived_exporter_renews_the_token_it_outlives(
    collector: Collector, emu: EmulatorServer, world: World
) -> None:
    """A Cloud Run app's exporter (the metadata server's credential) keeps its session; the first
    token expires; the next export carries a new one, verified like the first."""
    session = id_token_session(credentials=MetadataCredentials(host=emu.host_port))
    tracing = TracerProvider()
    tracing.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(f"{collector.url}/v1/traces", session=session)))
    tracer = tracing.get_tracer("worker")
    try:
        with tracer.start_as_current_span("before"):
            pass
        assert tracing.force_flush()
        world.advance(11)  # the token's 10 s have passed
        with tracer.start_as_current_span("after"):
            pass
        assert tracing.force_flush()
    finally:
        tracing.shutdown()
    first, second = collector.received
    assert (first.names, second.names) == (["before"], ["after"])
    assert first.token != second.token and second.claims["exp"] == first.claims["exp"] + 11
    assert first.claims["aud"] == second.claims["aud"] == collector.url


def test_a_failing_token_fetch_fails_the_export_not_the_app(
    collector: Collector, key: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The emulator's clock two hours ahead refuses the key's assertion (as Google refuses a skewed
    machine): the export fails, one line from gcptoken says why; then the same exporter recovers."""
    spans = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(spans))
    with tracing.get_tracer("app").start_as_current_span("checkout"):
        pass
    exporter = OTLPSpanExporter(
        f"{collector.url}/v1/traces", session=id_token_session(credentials=credentials_from_info(key, "test"))
    )
    CLOCK.offset = 7200
    try:
        with caplog.at_level(logging.INFO):
            assert exporter.export(spans.get_finished_spans()) is SpanExportResult.FAILURE
    finally:
        CLOCK.offset = 0
    assert collector.received == []
    ours = [r for r in caplog.records if r.name == "gcptoken.integrations"]
    assert len(ours) == 1 and ours[0].levelno == logging.ERROR
    assert ours[0].getMessage().startswith(f"gcptoken: no ID token for {collector.url}, so this export is not sent: ")
    assert "short-lived" in ours[0].getMessage()  # Google's words for a skewed assertion
    private = key["private_key"].splitlines()[1]
    assert private not in caplog.text and "Bearer" not in caplog.text and "eyJ" not in caplog.text
    assert exporter.export(spans.get_finished_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()  # type: ignore[no-untyped-call]  # (not annotated upstream)
    tracing.shutdown()
    assert collector.arrived() == {"/v1/traces": ["checkout"]}


def test_an_exporter_configured_by_the_environment_alone(
    collector: Collector, key: dict[str, str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As auto-instrumentation builds it (no arguments): the credential-provider variable names
    gcptoken's entry point, Application Default Credentials give the tokens."""
    monkeypatch.setenv("OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER", ENTRY_POINT)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_key_file(tmp_path, key)))
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))  # not found: reinstall (pip install -e .)
    with tracing.get_tracer("auto").start_as_current_span("instrumented"):
        pass
    tracing.shutdown()
    assert collector.arrived() == {"/v1/traces": ["instrumented"]}
    assert collector.received[0].claims["email"] == key["client_email"]


def test_an_exporter_through_gcptoken_proxy(
    collector: Collector, key: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other env-only route: OTEL_EXPORTER_OTLP_ENDPOINT at ``gcptoken proxy COLLECTOR``."""
    app = proxy_app(collector.url, credentials_from_info(key, "test"), collector.url)
    with AsgiServer(app, bind("127.0.0.1", 0), date_header=False) as proxy:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", proxy.url)
        logging_ = LoggerProvider()
        logging_.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter()))
        logging_.get_logger("app").emit(body="through the proxy")
        logging_.shutdown()
    assert collector.arrived() == {"/v1/logs": ["through the proxy"]}
    assert collector.received[0].claims["email"] == key["client_email"]
