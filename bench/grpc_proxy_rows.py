"""gRPC through ``gcptoken proxy``: unary RPCs per second from a real ``grpcio`` client on an
insecure channel to the proxy (HTTP/2, the token added to every call), beside the same RPCs sent
straight to the same ``grpcio`` server with a token the client already holds. The server verifies
the token on every call either way."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

from bench.bridges_rows import AUDIENCE, CLIENTS, _start, _stop, against_direct, side_by_side
from bench.timing import Row, in_threads
from gcptoken import VerificationError, Verifier
from gcptoken.emulator.http.server import EmulatorServer

__all__ = ["grpc_proxy_rows"]

# The proxy relays every frame in Python while client and server are grpcio's C core, and an RPC is
# a handful of small frames each way: a share of direct, not parity (measured ~0.3× on 2 busy CPUs).
GATE = 0.25
_OPTIONS = [("grpc.enable_http_proxy", 0)]


def _identity(data: bytes) -> bytes:
    return data


def _server(verifier: Verifier) -> Any:
    import grpc

    def echo(request: bytes, context: Any) -> bytes:
        header = dict(context.invocation_metadata()).get("authorization", "")
        try:
            verifier.verify(str(header).removeprefix("Bearer "))
        except VerificationError:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "no valid ID token")
        return request

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=CLIENTS * 2), options=_OPTIONS)
    handler = grpc.unary_unary_rpc_method_handler(echo, _identity, _identity)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler})])
    return server


def _rate(seconds: float, target: str, metadata: tuple[tuple[str, str], ...]) -> tuple[float, int]:
    """Unary RPCs per second from CLIENTS threads, one channel each; errors."""
    import grpc

    done, errors = [0] * CLIENTS, [0] * CLIENTS
    stop = time.perf_counter() + seconds

    def client(index: int) -> None:
        with grpc.insecure_channel(target, options=_OPTIONS) as channel:
            echo: Callable[..., bytes] = channel.unary_unary("/bench.Echo/Echo", _identity, _identity)
            while time.perf_counter() < stop:
                try:
                    ok = echo(b"ping", metadata=metadata, timeout=10) == b"ping"
                except grpc.RpcError:
                    ok = False
                done[index] += ok
                errors[index] += not ok

    elapsed = in_threads(CLIENTS, client)  # before counting: the threads fill done
    return sum(done) / elapsed, sum(errors)


def grpc_proxy_rows(emulator: EmulatorServer, scratch: Path, seconds: float) -> list[Row]:
    from gcptoken import load_credentials

    key = scratch / "grpc-proxy-key.json"
    key.write_text(json.dumps(emulator.key_file("bench-grpc-proxy")))
    server = _server(Verifier(AUDIENCE, certs=f"{emulator.url}/oauth2/v3/certs"))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    env = {"GCPTOKEN_EMULATOR_HOST": emulator.host_port}
    command = ["proxy", f"http://127.0.0.1:{port}", "--audience", AUDIENCE, "--credentials", str(key)]
    proxy, proxy_url = _start(command, env)
    try:
        token = load_credentials(key).id_token(AUDIENCE).value
        direct = f"127.0.0.1:{port}", (("authorization", f"Bearer {token}"),)
        through = proxy_url.removeprefix("http://"), ()
        best_direct, best_proxy, errors = side_by_side(
            seconds, lambda window: _rate(window, *direct), lambda window: _rate(window, *through)
        )
    finally:
        _stop(proxy)
        server.stop(None)
    name = f"gRPC unary RPCs/s through gcptoken proxy, {CLIENTS} clients"
    return [against_direct(name, "RPCs/s", best_direct, best_proxy, errors, GATE)]
