"""gRPC through ``gcptoken proxy``: unary RPCs per second from a real ``grpcio`` client on an
insecure channel to the proxy (HTTP/2, the token added to every call), beside the same RPCs sent
straight to the same ``grpcio`` server with a token the client already holds. The server verifies
the token on every call either way."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

from bench.bridges_rows import AUDIENCE, CLIENTS, _start, _stop
from bench.timing import Row
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

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - began), sum(errors)


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
        direct_rates, proxy_rates, errors = [], [], 0
        for _ in range(2):  # interleaved: the machine's noise falls on both alike
            rate, failed = _rate(seconds / 4, f"127.0.0.1:{port}", (("authorization", f"Bearer {token}"),))
            direct_rates.append(rate)
            errors += failed
            rate, failed = _rate(seconds / 4, proxy_url.removeprefix("http://"), ())
            proxy_rates.append(rate)
            errors += failed
    finally:
        _stop(proxy)
        server.stop(None)
    best_direct, best_proxy = max(direct_rates), max(proxy_rates)
    ratio = round(best_proxy / best_direct, 2) if best_direct else 0.0
    row = Row("bridges", f"gRPC unary RPCs/s through gcptoken proxy, {CLIENTS} clients", round(best_proxy), "RPCs/s")
    row.ratio, row.ratio_of = ratio, f"of direct ({round(best_direct)}/s)"
    row.goal, row.meets = f"≥ {GATE}× direct, zero errors", ratio >= GATE and errors == 0
    row.notes = {"direct": round(best_direct), "errors": errors}
    return [row]
