"""gcptoken's line about tokens that cannot be had: said once, then once a minute, once on recovery,
and never again from inside a handler that is handling it."""

from __future__ import annotations

import logging

import pytest

from gcptoken.integrations.failure_report import REPEAT_INTERVAL, FailureReport


def test_first_failure_then_once_a_minute_then_recovery(caplog: pytest.LogCaptureFixture) -> None:
    moment = [0.0]
    report = FailureReport(logging.getLogger("gcptoken.test.report"), clock=lambda: moment[0])
    with caplog.at_level(logging.INFO, logger="gcptoken.test.report"):
        for _ in range(3):  # within the minute: said once
            report.failed("gcptoken: down")
        moment[0] += REPEAT_INTERVAL
        report.failed("gcptoken: down")
        report.succeeded("gcptoken: up")
        report.succeeded("gcptoken: up")  # said once, not per success
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, "gcptoken: down"),
        (logging.ERROR, "gcptoken: down (4 failures so far)"),
        (logging.WARNING, "gcptoken: up (after 4 failures)"),
    ]


def test_a_line_said_while_handling_one_is_dropped() -> None:
    """A handler that exports each record through something failing the same way (another report:
    the log exporter's own session) makes no second line, and no endless loop."""
    log = logging.getLogger("gcptoken.test.reentrant")
    inner = FailureReport(log)
    handled: list[str] = []

    class Exporting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handled.append(record.getMessage())
            inner.failed("gcptoken: the log export failed too")

    handler = Exporting()
    log.addHandler(handler)
    try:
        FailureReport(log).failed("gcptoken: the span export failed")
    finally:
        log.removeHandler(handler)
    assert handled == ["gcptoken: the span export failed"] and inner.failures == 1
