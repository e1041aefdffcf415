"""One-line sync channels carrying ID tokens: ``cloud_run_channel("svc-xyz.a.run.app")`` (TLS, port
443 unless named, audience ``https://svc-xyz.a.run.app``) and ``local_channel("127.0.0.1:50051")``
(gRPC's local credentials, for a service on this machine; audience ``http://127.0.0.1:50051``).
The ``grpc.aio`` twins are in gcptoken.integrations.grpc.aio."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from gcptoken.credentials import Credentials
from gcptoken.integrations.audience import AUTHORIZATION
from gcptoken.integrations.grpc.authorized import AuthorizedChannel
from gcptoken.integrations.grpc.source import TokenSource
from gcptoken.integrations.grpc.targets import dial_target

__all__ = ["cloud_run_channel", "local_channel", "local_credentials"]

ChannelOptions = Sequence[tuple[str, Any]]


def local_credentials(target: str = "") -> grpc.ChannelCredentials:
    """gRPC's local credentials over TCP (over a Unix socket for a ``unix:`` target): they connect
    only to a loopback peer (grpc/grpc, src/core/credentials/transport/local/
    local_security_connector.cc), so a token sent through them never leaves the machine, and call
    credentials are allowed on them."""
    if target.lower().startswith("unix"):
        return grpc.local_channel_credentials(grpc.LocalConnectionType.UDS)
    return grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)


def cloud_run_channel(
    host: str,
    credentials: Credentials | None = None,
    *,
    audience: str | None = None,
    header: str = AUTHORIZATION,
    root_certificates: bytes | None = None,
    options: ChannelOptions = (),
    compression: grpc.Compression | None = None,
    interceptors: Sequence[Any] = (),
) -> grpc.Channel:
    """A TLS channel to ``host`` (``svc-xyz.a.run.app``, ``HOST:PORT`` or the service's
    ``https://`` URL) whose every RPC carries an ID token for ``audience`` (default: ``https://HOST``,
    with the port unless it is 443) from ``credentials`` (default: Application Default Credentials).
    ``root_certificates`` replaces the system's CAs; ``interceptors`` run before the token is added
    (a logging one never sees it)."""
    target, audience = dial_target(host, audience, "https", "host")
    source = TokenSource(audience, credentials, header)
    channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates), options, compression)
    return _with(AuthorizedChannel(channel, source), interceptors)


def local_channel(
    target: str,
    credentials: Credentials | None = None,
    *,
    audience: str | None = None,
    header: str = AUTHORIZATION,
    options: ChannelOptions = (),
    compression: grpc.Compression | None = None,
    interceptors: Sequence[Any] = (),
) -> grpc.Channel:
    """A channel to a service on this machine (``127.0.0.1:50051``, ``localhost:50051``,
    ``[::1]:50051``) over gRPC's local credentials, every RPC carrying an ID token for ``audience``
    (default: ``http://TARGET``; pass the Cloud Run URL your service checks for)."""
    target, audience = dial_target(target, audience, "http")
    source = TokenSource(audience, credentials, header)
    channel = grpc.secure_channel(target, local_credentials(target), options, compression)
    return _with(AuthorizedChannel(channel, source), interceptors)


def _with(channel: AuthorizedChannel, interceptors: Sequence[Any]) -> grpc.Channel:
    return grpc.intercept_channel(channel, *interceptors) if interceptors else channel
