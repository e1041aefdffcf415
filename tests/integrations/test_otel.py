"""OpenTelemetry's real OTLP/HTTP exporters and SDK sending spans, metrics and logs to a collector on
loopback behind gcptoken's verifying middleware (keys from the emulator), which decodes each OTLP
body: with ``id_token_session``, with the credential-provider variable alone, and through ``gcptoken
proxy``; a token outlived by a long-lived exporter; a token fetch that fails."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
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
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from gcptoken import Verifier
from gcptoken.cache.memory import default_cache
from gcptoken.credentials import MetadataCredentials, credentials_from_info
from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.errors import TransportError
from gcptoken.integrations.asgi import IdTokenMiddleware
from gcptoken.integrations.otel import (
    AUDIENCE_VARIABLE,
    BACKOFF,
    ENTRY_POINT,
    HEADER_VARIABLE,
    IdTokenSession,
    id_token_session,
    session_from_environment,
)
from gcptoken.local.proxy import proxy_app
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient, write_key_file
from gcptoken.tokens import Token
from tests.clock import Clock
from tests.integrations.redirects import cross_origin_redirector
from tests.integrations.refusals import refuse_as_revoked

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
    attempts: list[dict[bytes, bytes]] = field(default_factory=list)  # every request's headers, before any check
    refuse: int = 0  # this many verified requests get 401 invalid_token first (as if revoked)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await Request(scope, receive).body()
        if self.refuse > 0:
            self.refuse -= 1
            await refuse_as_revoked(send)
            return
        headers = dict(scope["headers"])
        token = headers[b"authorization"].decode().removeprefix("Bearer ")
        self.received.append(Export(scope["path"], _names(scope["path"], body), scope["state"]["claims"], token))
        answer = SIGNALS[scope["path"]][1]
        reply = [(b"content-type", b"application/x-protobuf"), (b"content-length", b"%d" % len(answer))]
        await send({"type": "http.response.start", "status": 200, "headers": reply})
        await send({"type": "http.response.body", "body": answer})

    def counted(self, app: ASGIApp) -> ASGIApp:
        """``app`` (the verifying middleware), with each request's headers noted before it runs."""

        async def counting(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                self.attempts.append(dict(scope["headers"]))
            await app(scope, receive, send)

        return counting

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
    with AsgiServer(collector.counted(IdTokenMiddleware(collector, verifier)), sock):
        yield collector


@pytest.fixture
def collector(running_collector: Collector) -> Collector:
    running_collector.received.clear()
    running_collector.attempts.clear()
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


def _finished(name: str) -> Sequence[ReadableSpan]:
    spans = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(spans))
    with tracing.get_tracer("app").start_as_current_span(name):
        pass
    tracing.shutdown()
    return spans.get_finished_spans()


def _ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "gcptoken.integrations"]


def test_a_failing_token_fetch_fails_the_export_not_the_app(
    collector: Collector, key: dict[str, str], emu: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The emulator's clock two hours ahead refuses the key's assertion (as Google refuses a skewed
    machine): the export fails (a refusal: not retried) and nothing is sent, one line from gcptoken
    says why; the exports after it, within BACKOFF, fail without asking again; then the same
    exporter recovers, and says so once."""
    spans = _finished("checkout")
    moment = [0.0]
    session = IdTokenSession(credentials=credentials_from_info(key, "test"), clock=lambda: moment[0])
    exporter = OTLPSpanExporter(f"{collector.url}/v1/traces", session=session)
    CLOCK.offset = 7200
    try:
        with caplog.at_level(logging.INFO):
            assert exporter.export(spans) is SpanExportResult.FAILURE
            moment[0] += BACKOFF - 1
            assert exporter.export(spans) is SpanExportResult.FAILURE
    finally:
        CLOCK.offset = 0
    assert collector.attempts == []  # not even without a token
    assert len(EmulatorClient(emu).token_requests_by(key["client_email"])) == 1
    ours = _ours(caplog)
    assert len(ours) == 1 and ours[0].levelno == logging.ERROR
    assert ours[0].getMessage().startswith(f"gcptoken: no ID token for {collector.url}, so this export is not sent: ")
    assert "short-lived" in ours[0].getMessage()  # Google's words for a skewed assertion
    private = key["private_key"].splitlines()[1]
    assert private not in caplog.text and "Bearer" not in caplog.text and "eyJ" not in caplog.text
    caplog.clear()
    moment[0] += 1
    with caplog.at_level(logging.INFO):
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()  # type: ignore[no-untyped-call]  # (not annotated upstream)
    assert collector.arrived() == {"/v1/traces": ["checkout", "checkout"]}
    assert [(r.levelno, r.getMessage()) for r in _ours(caplog)] == [
        (logging.WARNING, f"gcptoken: ID tokens for {collector.url} again (after 2 failures)")
    ]


def test_an_unreachable_token_endpoint_is_a_503_asked_again_only_after_the_backoff(
    collector: Collector, key: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A token endpoint answering 503: the exporter gets a 503 (retryable, Retry-After the backoff's
    rest, which the exporter's deadline does not wait for) and the endpoint is not asked again."""
    hits: list[str] = []

    async def unavailable(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hits.append(scope["path"])
            headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": b"{}"})

    with AsgiServer(unavailable, bind("127.0.0.1", 0)) as endpoint:
        credentials = credentials_from_info({**key, "token_uri": f"{endpoint.url}/token"}, "test")
        session = IdTokenSession(credentials=credentials)
        answer = session.post(f"{collector.url}/v1/traces", data=b"")
        assert (answer.status_code, answer.headers["retry-after"]) == (503, str(round(BACKOFF)))
        asked = len(hits)
        exporter = OTLPSpanExporter(f"{collector.url}/v1/traces", session=session)
        with caplog.at_level(logging.ERROR):
            assert exporter.export(_finished("lost")) is SpanExportResult.FAILURE
        exporter.shutdown()  # type: ignore[no-untyped-call]  # (not annotated upstream)
    assert asked >= 1 and len(hits) == asked and collector.attempts == []
    assert len(_ours(caplog)) == 1  # said at the first failure, not again within the minute


def test_gcptoken_s_failure_line_does_not_feed_a_failing_log_export(
    collector: Collector, key: dict[str, str], emu: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    """OpenTelemetry's LoggingHandler on the root logger, exporting through a failing session: our
    ERROR line becomes a log record whose export fails; that failure is not said again (else: the
    same again, for ever)."""
    logs = LoggerProvider()
    session = IdTokenSession(credentials=credentials_from_info(key, "test"))
    logs.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(f"{collector.url}/v1/logs", session=session))
    )
    with warnings.catch_warnings():  # deprecated in 1.45 for opentelemetry-instrumentation-logging's, same loop
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(logger_provider=logs)
    root = logging.getLogger()
    root.addHandler(handler)
    CLOCK.offset = 7200
    try:
        logging.getLogger("app").warning("the app's own line")
    finally:
        CLOCK.offset = 0
        root.removeHandler(handler)
        logs.shutdown()
    assert len(EmulatorClient(emu).token_requests_by(key["client_email"])) == 1
    assert len(_ours(caplog)) == 1 and 2 <= session.report.failures <= 3  # the app's line, ours, the exporter's


def test_an_id_token_is_never_sent_in_cleartext_off_this_machine(
    key: dict[str, str], emu: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    """http:// to a host other than loopback: refused before any token is fetched or byte sent."""
    exporter = OTLPSpanExporter(
        "http://collector-xyz.a.run.app/v1/traces",
        session=id_token_session(credentials=credentials_from_info(key, "t")),
    )
    with caplog.at_level(logging.ERROR):
        assert exporter.export(_finished("clear")) is SpanExportResult.FAILURE
    exporter.shutdown()  # type: ignore[no-untyped-call]  # (not annotated upstream)
    assert EmulatorClient(emu).token_requests_by(key["client_email"]) == []
    assert [r.getMessage() for r in _ours(caplog)] == [
        "gcptoken: no ID token is sent in cleartext to http://collector-xyz.a.run.app: "
        "give the exporter an https:// endpoint (plain http only to this machine)"
    ]


@pytest.mark.parametrize("header", ["Authorization", "X-Serverless-Authorization"])
def test_a_redirect_to_another_origin_carries_no_token(collector: Collector, key: dict[str, str], header: str) -> None:
    """OpenTelemetry 1.37 posts with requests' default, following redirects; requests strips only
    Authorization, and only for another host: the session strips its own header itself."""
    session = id_token_session(credentials=credentials_from_info(key, "t"), header=header)
    with cross_origin_redirector(collector.url) as redirector:
        session.post(f"{redirector}/v1/traces", data=b"", timeout=10)
    session.close()
    (reached,) = collector.attempts  # at localhost: another origin than the redirector's
    assert b"authorization" not in reached and b"x-serverless-authorization" not in reached


def test_header_and_audience_are_what_the_session_sends(collector: Collector, key: dict[str, str]) -> None:
    session = id_token_session(
        credentials=credentials_from_info(key, "t"),
        audience="https://otel.example.com",
        header="x-serverless-authorization",
    )
    exporter = OTLPSpanExporter(f"{collector.url}/v1/traces", session=session)
    exporter.export(_finished("elsewhere"))  # refused by the collector (its audience, its header)
    exporter.shutdown()  # type: ignore[no-untyped-call]  # (not annotated upstream)
    sent = collector.attempts[0]
    assert b"authorization" not in sent
    claims = _claims(sent[b"x-serverless-authorization"])
    assert claims["aud"] == "https://otel.example.com" and claims["email"] == key["client_email"]


def _claims(bearer: bytes) -> dict[str, Any]:
    payload = bearer.decode().removeprefix("Bearer ").split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def test_the_environment_sets_audience_and_header(
    collector: Collector,
    key: dict[str, str],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """GCPTOKEN_OTEL_AUDIENCE and GCPTOKEN_OTEL_HEADER for the entry point's session; a bad value
    still builds the exporter, and each export is refused unsent in one line naming the variable."""
    monkeypatch.setenv("OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER", ENTRY_POINT)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_key_file(tmp_path, key)))
    monkeypatch.setenv(AUDIENCE_VARIABLE, "https://otel.example.com")
    monkeypatch.setenv(HEADER_VARIABLE, "x-serverless-authorization")
    exporter = OTLPSpanExporter()
    exporter.export(_finished("configured"))  # refused by the collector (its audience, its header)
    exporter.shutdown()  # type: ignore[no-untyped-call]  # (not annotated upstream)
    sent, attempts = collector.attempts[0], len(collector.attempts)  # (and the one retry of a refused token)
    assert b"authorization" not in sent
    assert _claims(sent[b"x-serverless-authorization"])["aud"] == "https://otel.example.com"
    monkeypatch.setenv(HEADER_VARIABLE, "X-Token")
    exporter = OTLPSpanExporter()
    with caplog.at_level(logging.ERROR):
        assert exporter.export(_finished("unsent")) is SpanExportResult.FAILURE
    exporter.shutdown()  # type: ignore[no-untyped-call]  # (not annotated upstream)
    assert len(collector.attempts) == attempts
    (line,) = [r.getMessage() for r in _ours(caplog)]
    assert line.startswith(f"gcptoken: no export is sent: {HEADER_VARIABLE}: header must be ")


def test_the_entry_point_resolves_to_gcptoken_s_session() -> None:
    (found,) = entry_points(group="opentelemetry_otlp_credential_provider", name=ENTRY_POINT)
    assert found.load() is session_from_environment  # not found, or another: reinstall (pip install -e .)


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


def test_the_environment_alone_with_no_credential(
    collector: Collector, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No usable ADC: the exporter is still built (credentials are looked for at the first export),
    the export fails unsent, in one line; one signal's variable (_TRACES_) serves that signal only."""
    monkeypatch.setenv("OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER", ENTRY_POINT)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    spans, logs = OTLPSpanExporter(), OTLPLogExporter()
    with caplog.at_level(logging.ERROR):
        assert spans.export(_finished("unsent")) is SpanExportResult.FAILURE
    spans.shutdown()  # type: ignore[no-untyped-call]  # (not annotated upstream)
    logs.shutdown()  # type: ignore[no-untyped-call]  # (not annotated upstream)
    assert collector.attempts == []
    (line,) = [r.getMessage() for r in _ours(caplog)]
    assert line.startswith(f"gcptoken: no ID token for {collector.url}, so this export is not sent: ")
    assert "missing.json" in line and "\n" not in line
    assert not isinstance(logs._client._transport._session, IdTokenSession)  # type: ignore[attr-defined]


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


def test_a_renewal_that_fails_is_a_failed_export_too(
    collector: Collector, key: dict[str, str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector refuses the token (invalid_token) and the renewal's fetch fails: the export
    fails in the same way, never with an exception out of the exporter."""
    credentials = credentials_from_info(key, "test")
    cached = credentials.id_token

    def renewal_fails(audience: str, *, refresh: bool = False, **options: Any) -> Token:
        if refresh:
            raise TransportError("token endpoint unreachable (as if the network had gone)")
        return cached(audience, **options)

    monkeypatch.setattr(credentials, "id_token", renewal_fails)
    exporter = OTLPSpanExporter(f"{collector.url}/v1/traces", session=id_token_session(credentials=credentials))
    collector.refuse = 1
    with caplog.at_level(logging.ERROR):
        assert exporter.export(_finished("renewed")) is SpanExportResult.FAILURE
    exporter.shutdown()  # type: ignore[no-untyped-call]  # (not annotated upstream)
    assert len(collector.attempts) == 1 and "as if the network had gone" in _ours(caplog)[0].getMessage()
