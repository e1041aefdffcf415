"""ID tokens on gRPC calls (the ``grpc`` extra: grpcio).

- ``cloud_run_channel("svc-xyz.a.run.app")``: a TLS channel whose RPCs carry an ID token for
  ``https://svc-xyz.a.run.app``; ``local_channel("127.0.0.1:50051", audience=...)`` for a service
  on this machine; ``gcptoken.integrations.grpc.aio`` has both for ``grpc.aio``;
- ``authorized_channel(channel, audience)`` (sync) and ``aio.id_token_interceptors`` for channels
  built by hand;
- ``id_token_call_credentials()``: ``grpc.CallCredentials`` for composite channel credentials or
  one call, the audience taken from each call's service URL unless given;
- ``gcptoken.integrations.grpc.server``: server interceptors verifying the tokens calls carry.
"""

from __future__ import annotations

from gcptoken.extras import require

require("grpc", "gcptoken.integrations.grpc")  # before any import of its modules: one clear line if missing

from gcptoken.integrations.grpc.authorized import AuthorizedChannel, authorized_channel
from gcptoken.integrations.grpc.call_credentials import id_token_call_credentials
from gcptoken.integrations.grpc.channels import cloud_run_channel, local_channel, local_credentials
from gcptoken.integrations.grpc.failures import FailedCall

__all__ = [
    "AuthorizedChannel",
    "FailedCall",
    "authorized_channel",
    "cloud_run_channel",
    "id_token_call_credentials",
    "local_channel",
    "local_credentials",
]
