"""Calling services with ID tokens: httpx and requests authentication, and sessions for
OpenTelemetry's OTLP/HTTP exporters (otel)."""
