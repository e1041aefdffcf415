"""``gcptoken demo``: the whole flow against an embedded emulator, nothing leaves the machine."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from gcptoken import jws
from gcptoken.credentials import (
    Credentials,
    FederatedCredentials,
    GcloudCredentials,
    ImpersonatedCredentials,
    MetadataCredentials,
    credentials_from_info,
    load_credentials,
)
from gcptoken.emulator.server import EmulatorServer
from gcptoken.emulator.serving import AsgiServer, bind
from gcptoken.emulator.state import Provider
from gcptoken.errors import CredentialsError, GcpTokenError, VerificationError
from gcptoken.sources.external_account import ExternalAccountConfig
from gcptoken.sources.gcloud import run_gcloud
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
    trips: str
    latency: str
    answer: str


def _fetch(emulator: EmulatorServer, credentials: Credentials, audience: str) -> tuple[str, int, float]:
    """A token, the round trips it cost (counted at the emulator) and its latency in ms."""
    emulator.state.clear_requests()
    started = time.perf_counter()
    token = credentials.id_token(audience).value
    elapsed = (time.perf_counter() - started) * 1000
    return token, len(emulator.state.request_log()), elapsed


def _demo_user(emulator: EmulatorServer) -> Credentials:
    return credentials_from_info(emulator.state.issue_refresh_token("demo-user@example.com"), "demo user")


def _impersonating(emulator: EmulatorServer, source: Credentials, account_id: str) -> Credentials:
    state = emulator.state
    email = f"{account_id}@{state.project_id}.iam.gserviceaccount.com"
    if email not in state.service_accounts:
        state.create_service_account(account_id)
    state.grant_token_creator(email, "user:demo-user@example.com")
    return ImpersonatedCredentials(
        source, email, include_email=True, iam_base=f"{emulator.url}/v1/projects/-/serviceAccounts/"
    )


def _federated(emulator: EmulatorServer, scratch: Path) -> Credentials:
    """An external_account file as `gcloud iam workload-identity-pools create-cred-config` writes
    it, whose subject token the emulator's OIDC issuer minted: no outside IdP needed."""
    state = emulator.state
    provider = Provider("demo-pool", "demo-oidc", f"{emulator.url}/oidc")
    state.providers[("demo-pool", "demo-oidc")] = provider
    audience = provider.resource(state.project_number)
    now = int(state.clock())
    subject = {"iss": provider.issuer, "sub": "ci-job-42", "aud": f"https:{audience}", "iat": now, "exp": now + 600}
    (scratch / "subject-token").write_text(jws.encode(subject, state.oidc_key.key, kid=state.oidc_key.kid))
    email = f"demo-federated@{state.project_id}.iam.gserviceaccount.com"
    if email not in state.service_accounts:
        state.create_service_account("demo-federated")
    state.grant_token_creator(email, f"principal:{audience.split('/providers/')[0]}/subject/ci-job-42")
    iam_base = f"{emulator.url}/v1/projects/-/serviceAccounts/"
    info = {
        "type": "external_account",
        "audience": audience,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": f"{emulator.url}/v1/token",
        "credential_source": {"file": str(scratch / "subject-token")},
    }
    federated = FederatedCredentials(ExternalAccountConfig.from_info(info, "demo external_account"), email)
    return ImpersonatedCredentials(federated, email, include_email=True, iam_base=iam_base)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """gcloud is configured through its environment: set it for the demo's gcloud runs only."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _gcloud_step(
    emulator: EmulatorServer,
    key_path: Path,
    scratch: Path,
    service_url: str,
    call: Callable[[str | None], tuple[int, str]],
) -> Step:
    name = "gcloud, logged in with the key"
    if shutil.which("gcloud") is None:
        return Step(name + " (gcloud not installed: skipped)", True, "", "", "-")
    env = {
        "CLOUDSDK_CONFIG": str(scratch / "gcloud-config"),
        "CLOUDSDK_AUTH_TOKEN_HOST": f"{emulator.url}/token",
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
        "GCE_METADATA_ROOT": emulator.host_port,
        "GCE_METADATA_IP": emulator.host_port,
    }
    try:
        with _environment(env):
            run_gcloud(["auth", "activate-service-account", "--key-file", str(key_path)])
            token, trips, elapsed = _fetch(emulator, GcloudCredentials(), service_url)
    except GcpTokenError as exc:
        return Step(name, False, "", "", str(exc)[:120])
    status, answer = call(token)
    return Step(name, status == 200, str(trips), f"{elapsed:.0f} ms", answer)


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
        service_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        verifier = Verifier(service_url, certs=f"{emulator.url}/oauth2/v3/certs")
        user = _demo_user(emulator)
        sources: list[tuple[str, Credentials]] = [
            ("service-account key file", load_credentials(key_path)),
            ("metadata server (emulated VM, full format)", MetadataCredentials("full", host=emulator.host_port)),
            ("user credentials, impersonating demo-runner", _impersonating(emulator, user, "demo-runner")),
            ("workload identity federation (OIDC file)", _federated(emulator, Path(scratch))),
        ]
        steps: list[Step] = []
        with AsgiServer(protected_service(verifier), sock), httpx.Client(timeout=10, trust_env=False) as client:

            def call(token: str | None) -> tuple[int, str]:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                response = client.get(service_url, headers=headers)
                body = response.json()
                return response.status_code, f"{response.status_code} {body.get('message') or body.get('reason', '')}"

            for name, credentials in sources:
                token, trips, elapsed = _fetch(emulator, credentials, service_url)
                status, answer = call(token)
                steps.append(Step(name, status == 200, str(trips), f"{elapsed:.0f} ms", answer))
            steps.append(_gcloud_step(emulator, key_path, Path(scratch), service_url, call))
            try:
                user.id_token(service_url)
                steps.append(Step("refused: a user's own ID token for the service", False, "", "", "not refused"))
            except CredentialsError:
                hint = "refused before any request: use --impersonate-service-account"
                steps.append(Step("refused: a user's own ID token for the service", True, "0", "", hint))
            other, _, _ = _fetch(emulator, sources[0][1], "https://another-service.a.run.app")
            refusals: list[tuple[str, str | None]] = [
                ("refused: token for another audience", other),
                ("refused: no token", None),
            ]
            for name, bad_token in refusals:
                status, answer = call(bad_token)
                steps.append(Step(name, status == 401, "", "", answer))
        _report(out, emulator.url, service_url, steps)
    return all(step.ok for step in steps)


def _report(out: TextIO, emulator_url: str, service_url: str, steps: list[Step]) -> None:
    write = out.write
    write("gcptoken demo: every request below stays on this machine.\n\n")
    write(f"  emulator of Google's token service  {emulator_url}  (OAuth2, certs, metadata server)\n")
    write(f"  protected service (Cloud Run-like)  {service_url}  accepts ID tokens with aud = its URL\n\n")
    width = max(len(step.name) for step in steps)
    write(f"    {'ID token from':<{width}}  {'trips':>5}  {'latency':>8}  the service answers\n")
    for step in steps:
        mark = "✓" if step.ok else "✗"
        write(f"  {mark} {step.name:<{width}}  {step.trips:>5}  {step.latency:>8}  {step.answer}\n")
    write(
        "\nTry it by hand:\n"
        "  gcptoken emulator --port 0 --state-dir /tmp/gcptoken-emu &   # then: source /tmp/gcptoken-emu/env\n"
        "  TOKEN=$(gcptoken id https://svc.example.a.run.app)\n"
        '  gcptoken verify "$TOKEN" --audience https://svc.example.a.run.app\n'
        "  gcptoken id https://svc.example.a.run.app --source metadata --token-format full\n"
        "  gcptoken id https://svc.example.a.run.app --credentials /tmp/gcptoken-emu/external-account.json\n"
        "Against real Google (a downloaded key, or on GCE / Cloud Run, a real service URL):\n"
        "  GOOGLE_APPLICATION_CREDENTIALS=key.json gcptoken id https://SERVICE-HASH.a.run.app\n"
        '  curl -H "$(gcptoken id https://SERVICE-HASH.a.run.app --format header)" https://SERVICE-HASH.a.run.app\n'
        "  gcptoken id https://SERVICE-HASH.a.run.app --impersonate-service-account SA@PROJECT.iam.gserviceaccount.com"
        "\n"
        "  gcptoken id https://SERVICE-HASH.a.run.app --source gcloud\n"
        "  gcptoken whoami   # which credential, from where, and why\n"
    )
