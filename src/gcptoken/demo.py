"""``gcptoken demo``: the whole flow against an embedded emulator, nothing leaves the machine."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from gcptoken.credentials import load_credentials
from gcptoken.emulator.server import EmulatorServer
from gcptoken.emulator.serving import AsgiServer, bind
from gcptoken.errors import VerificationError
from gcptoken.verify import Verifier

__all__ = ["protected_service", "run"]


def protected_service(verifier: Verifier) -> ASGIApp:
    """A stand-in for a private Cloud Run service: 200 only for a verified ID token."""

    async def hello(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _unauthorized("missing bearer token")
        try:
            claims = await run_in_threadpool(verifier.verify, token)
        except VerificationError as exc:
            return _unauthorized(str(exc))
        return JSONResponse({"message": f"Hello, {claims.get('email', claims.get('sub'))}"})

    return Starlette(routes=[Route("/", hello)])


def _unauthorized(reason: str) -> Response:
    quoted = reason.replace('"', "'")
    return JSONResponse(
        {"error": "unauthorized", "reason": reason},
        status_code=401,
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{quoted}"'},
    )


@dataclass
class Step:
    name: str
    ok: bool
    detail: str


def _timed(action: Callable[[], str]) -> tuple[str, float]:
    started = time.perf_counter()
    result = action()
    return result, (time.perf_counter() - started) * 1000


def run(out: TextIO) -> bool:
    """Run the demo, writing a readable report to ``out``; True when every step behaved."""
    import httpx

    with tempfile.TemporaryDirectory(prefix="gcptoken-demo-") as scratch, EmulatorServer() as emulator:
        key_path = Path(scratch) / "service-account.json"
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600)
        key_file = emulator.key_file("demo-invoker")
        with os.fdopen(fd, "w") as handle:
            json.dump(key_file, handle)
        sock = bind("127.0.0.1", 0)
        verifier = Verifier(f"http://127.0.0.1:{sock.getsockname()[1]}", certs=f"{emulator.url}/oauth2/v3/certs")
        with AsgiServer(protected_service(verifier), sock) as service:
            credentials = load_credentials(key_path)
            emulator.state.clear_requests()
            token, elapsed = _timed(lambda: credentials.id_token(service.url).value)
            trips = len(emulator.state.request_log())
            other = credentials.id_token("https://another-service.a.run.app").value
            steps: list[Step] = [
                Step("ID token from a service-account key", True, f"{trips} round trip, {elapsed:.0f} ms")
            ]
            with httpx.Client(timeout=10, trust_env=False) as client:
                for name, headers, expected in (
                    ("call the service with that token", {"Authorization": f"Bearer {token}"}, 200),
                    ("call it with a token for another audience", {"Authorization": f"Bearer {other}"}, 401),
                    ("call it with no token", {}, 401),
                ):
                    response = client.get(service.url, headers=headers)
                    detail = response.json().get("message") or response.json().get("reason", "")
                    steps.append(Step(name, response.status_code == expected, f"{response.status_code} {detail}"))
        _report(out, emulator.url, service.url, f"service-account key for {key_file['client_email']}", steps)
    return all(step.ok for step in steps)


def _report(out: TextIO, emulator_url: str, service_url: str, who: str, steps: list[Step]) -> None:
    write = out.write
    write("gcptoken demo: every request below stays on this machine.\n\n")
    write(f"  emulator of Google's token service  {emulator_url}\n")
    write(f"  protected service (Cloud Run-like)  {service_url}  accepts ID tokens with aud = its URL\n")
    write(f"  credential                          {who}\n\n")
    width = max(len(step.name) for step in steps)
    for step in steps:
        mark = "✓" if step.ok else "✗"
        write(f"  {mark} {step.name:<{width}}  {step.detail}\n")
    write(
        "\nTry it by hand:\n"
        "  gcptoken emulator --port 0 --state-dir /tmp/gcptoken-emu &   # then: source /tmp/gcptoken-emu/env\n"
        "  TOKEN=$(gcptoken id https://svc.example.a.run.app)\n"
        '  gcptoken verify "$TOKEN" --audience https://svc.example.a.run.app\n'
        "Against real Google (a downloaded key, a real service URL):\n"
        "  GOOGLE_APPLICATION_CREDENTIALS=key.json gcptoken id https://SERVICE-HASH.a.run.app\n"
        '  curl -H "$(gcptoken id https://SERVICE-HASH.a.run.app --format header)" https://SERVICE-HASH.a.run.app\n'
    )
