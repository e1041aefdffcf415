"""``gcptoken demo``: every credential source against an embedded emulator, a service behind
Cloud Run's emulated front door (which checks the token and the caller's roles/run.invoker; the app
reads the identity it checked), the refusals, and what to type against real Google. Nothing leaves
the machine."""

from __future__ import annotations

from gcptoken.extras import require

require("emulator", "gcptoken demo")  # before any import of its modules: one clear line if missing

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from gcptoken.credentials import Credentials, GcloudCredentials, MetadataCredentials, load_credentials
from gcptoken.credentials.gcloud import run_gcloud
from gcptoken.demo.bridges import bridge_rows
from gcptoken.demo.narrow import WIDTH, answer_lines, command_lines
from gcptoken.emulator import scenarios
from gcptoken.emulator.http.server import EmulatorServer
from gcptoken.emulator.keys import iap
from gcptoken.emulator.run import FrontDoorServer, RunService
from gcptoken.errors import CredentialsError, GcpTokenError, VerificationError
from gcptoken.http.tls import EMULATOR_CA_ENV
from gcptoken.integrations.asgi import IdTokenMiddleware
from gcptoken.integrations.cloud_run import CloudRunIdentity
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.verify.verifier import Verifier

__all__ = ["protected_service", "run"]

SERVICE = "https://SERVICE-HASH.a.run.app"  # how the commands for real Google name your service
USER = "user:demo-user@example.com"


def protected_service(verifier: Verifier | CloudRunIdentity) -> ASGIApp:
    """A private service's app (behind Cloud Run's front door, or IAP): the middleware lets a
    request through only with a token ``verifier`` accepts, and the handler greets its owner."""

    async def hello(request: Request) -> Response:
        claims = request.state.claims
        who = claims.get("email") or f"sub {str(claims.get('sub'))[:8]}…"  # a standard-format token: no email
        return JSONResponse({"message": f"Hello, {who}"})

    return IdTokenMiddleware(Starlette(routes=[Route("/", hello)]), verifier)


@dataclass
class Row:
    name: str
    ok: bool
    trips: str = ""
    latency: str = ""
    verified: str = ""
    answer: str = ""
    command: str = ""
    skipped: str = ""  # why the row could not run here (shown as skipped, never as passed)


class Demo:
    def __init__(self, emulator: EmulatorServer, scratch: Path, service_url: str, iap_url: str) -> None:
        self.emulator = emulator
        self.scratch = scratch
        self.service_url = service_url
        self.iap_url = iap_url
        self.verifier = Verifier(service_url, certs=f"{emulator.url}/oauth2/v3/certs")
        self.rows: list[Row] = []

    def fetch(self, credentials: Credentials, audience: str) -> tuple[str, int, float]:
        """A token, the round trips it cost (counted at the emulator) and its latency in ms."""
        self.emulator.state.clear_requests()
        started = time.perf_counter()
        token = credentials.id_token(audience).value
        return token, len(self.emulator.state.request_log()), (time.perf_counter() - started) * 1000

    def verified(self, token: str) -> str:
        try:
            self.verifier.verify(token)
        except VerificationError as exc:
            return f"✗ {exc.reason}"
        return "✓"

    def source(
        self, name: str, credentials: Credentials, call: Callable[[str | None], tuple[int, str]], command: str
    ) -> None:
        token, trips, elapsed = self.fetch(credentials, self.service_url)
        status, answer = call(token)
        verified = self.verified(token)
        self.rows.append(
            Row(name, status == 200 and verified == "✓", str(trips), f"{elapsed:.0f} ms", verified, answer, command)
        )

    def refusal(
        self, name: str, token: str | None, call: Callable[[str | None], tuple[int, str]], command: str
    ) -> None:
        """A request Cloud Run's front door refuses: 401 for a bad token, 403 for none, or for a
        caller without roles/run.invoker (whose token itself is fine: verified ✓)."""
        status, answer = call(token)
        verified = "-" if token is None else self.verified(token)
        ok = status == 403 if token is None or verified == "✓" else status == 401
        self.rows.append(Row(name, ok, verified=verified, answer=answer, command=command))

    def expired_token(self) -> str:
        """A token the emulator signed an hour and a half ago: genuine, but expired."""
        state = self.emulator.state
        account = state.default_account
        then = int(state.clock()) - 5400
        return state.sign_id_token(
            {**state.identity_claims(account, self.service_url), "iat": then, "exp": then + 3600}
        )


def _gcloud_row(demo: Demo, key_path: Path, call: Callable[[str | None], tuple[int, str]]) -> None:
    name, command = "gcloud (the key, activated)", f"gcptoken id {SERVICE} --source gcloud"
    if shutil.which("gcloud") is None:
        demo.rows.append(Row(name, True, command=command, skipped="gcloud is not installed"))
        return
    emulator = demo.emulator
    env = scenarios.gcloud_environment(emulator.url, demo.scratch / "gcloud-config", emulator.host_port)
    try:
        with scenarios.environment(env):
            run_gcloud(["auth", "activate-service-account", "--key-file", str(key_path)])
            demo.source(name, GcloudCredentials(), call, command)
    except GcpTokenError as exc:
        demo.rows.append(Row(name, False, answer=str(exc)[:120], command=command))


def _federation_rows(demo: Demo, call: Callable[[str | None], tuple[int, str]]) -> None:
    """AWS, X.509 and a workforce person, each acting as a service account for its ID token."""
    emulator, create = demo.emulator, "gcloud iam workload-identity-pools create-cred-config"
    demo.source(
        "federation: AWS (EC2 role)",
        scenarios.aws_workload(emulator),
        call,
        f"gcptoken id {SERVICE} --credentials aws.json   # {create} … --aws --service-account=SA",
    )
    ca = demo.scratch / "ca.pem"
    credentials = scenarios.x509_workload(emulator, demo.scratch)
    with scenarios.environment({EMULATOR_CA_ENV: str(ca)}):
        demo.source(
            "federation: X.509 (mTLS)",
            credentials,
            call,
            f"gcptoken id {SERVICE} --credentials x509.json   # {create} … --credential-cert-path=… "
            "--service-account=SA",
        )
    demo.source(
        "workforce person, impersonating",
        scenarios.workforce_person(emulator),
        call,
        f"gcptoken id {SERVICE} --impersonate-service-account SA   # after gcloud auth login --login-config=…",
    )


def _iap_person_rows(
    demo: Demo,
    user: Credentials,
    call: Callable[..., tuple[int, str]],
    front_url: str,
    verifier: Verifier,
    client_id: str,
) -> None:
    """A signed-in person calling an app behind IAP as themselves: an ID token for the IAP app's
    OAuth client (IAP's programmatic access), and their own token refused there."""
    demo.emulator.state.clear_requests()
    started = time.perf_counter()
    token = user.id_token(client_id).value
    elapsed = (time.perf_counter() - started) * 1000
    trips = str(len(demo.emulator.state.request_log()))
    status, answer = call(token, front_url)
    try:
        verifier.verify(token)
        verified = "✓"
    except VerificationError as exc:
        verified = f"✗ {exc.reason}"
    command = (
        "gcptoken login --client-id-file desktop.json && gcptoken call https://APP --audience "
        "IAP_CLIENT_ID.apps.googleusercontent.com"
    )
    ok = status == 200 and verified == "✓"
    demo.rows.append(Row("IAP: a person's token for it", ok, trips, f"{elapsed:.0f} ms", verified, answer, command))
    own = user.id_token(getattr(user, "default_audience", client_id)).value
    status, answer = call(own, front_url)
    demo.rows.append(
        Row(
            "refused: own token at IAP",
            status == 401,
            verified="✗ audience",
            answer=answer,
            command="gcptoken id   # a user's own token: aud is the desktop client, not the IAP app's",
        )
    )


def _cloud_run_service(emulator: EmulatorServer, app_url: str) -> FrontDoorServer:
    """The demo's private Cloud Run service before the app at ``app_url``: roles/run.invoker for the
    service accounts the rows call as (``gcloud run services add-iam-policy-binding``), no one else."""
    project = emulator.state.project_id
    accounts = ("demo-invoker", "demo-runner", "demo-federated", "impersonated")
    invokers = {f"serviceAccount:{a}@{project}.iam.gserviceaccount.com" for a in accounts}
    invokers.add(f"serviceAccount:{emulator.state.default_account.email}")
    return FrontDoorServer(emulator.state, RunService("demo-service", app_url, invokers=invokers))


def _behind_front_door(cloud_run: FrontDoorServer) -> CloudRunIdentity:
    # Only the front door reaches this app (a loopback port nobody is told about): on Cloud Run,
    # K_SERVICE would be set; here the front door is gcptoken's own.
    return CloudRunIdentity(cloud_run.service.audiences, trust_cloud_run_authentication=True, k_service_required=False)


def _page_heading(page: str) -> str:
    start = page.find("<h1>")
    return page[start + 4 : page.find("</h1>", start)] if start >= 0 else page[:60]


def _write_key(path: Path, key: dict[str, str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(key, handle)


def run(out: TextIO) -> bool:
    """Run the demo, writing a readable report to ``out``; True when every row behaved."""
    import httpx

    with (
        tempfile.TemporaryDirectory(prefix="gcptoken-demo-") as scratch,
        EmulatorServer(mtls_port=0) as emulator,
    ):
        key_path = Path(scratch) / "service-account.json"
        _write_key(key_path, emulator.key_file("demo-invoker"))
        app_sock, iap_sock, front_sock = bind("127.0.0.1", 0), bind("127.0.0.1", 0), bind("127.0.0.1", 0)
        cloud_run = _cloud_run_service(emulator, f"http://127.0.0.1:{app_sock.getsockname()[1]}")
        front_url = f"http://127.0.0.1:{front_sock.getsockname()[1]}"
        iap_client = emulator.state.signin.register("web", emulator.state.project_number, "IAP app").client_id
        front_verifier = Verifier.google(audience=iap_client, certs=f"{emulator.url}/oauth2/v3/certs")
        service_url = cloud_run.service.url
        iap_url = f"http://127.0.0.1:{iap_sock.getsockname()[1]}"
        demo = Demo(emulator, Path(scratch), service_url, iap_url)
        iap_audience = iap.default_audience(emulator.state)
        iap_verifier = Verifier.iap(iap_audience, certs=f"{emulator.url}/iap/verify/public_key-jwk")
        user = scenarios.user(emulator)
        with (
            cloud_run,
            AsgiServer(protected_service(_behind_front_door(cloud_run)), app_sock),
            AsgiServer(protected_service(iap_verifier), iap_sock),
            AsgiServer(protected_service(front_verifier), front_sock),
            httpx.Client(timeout=10, trust_env=False) as client,
        ):

            def call(token: str | None, url: str = service_url, header: str = "authorization") -> tuple[int, str]:
                value = (f"Bearer {token}" if header == "authorization" else token) if token else None
                response = client.get(url, headers={header: value} if value else {})
                if response.headers.get("content-type", "").startswith("text/html"):  # Cloud Run's own pages
                    return response.status_code, f"{response.status_code} {_page_heading(response.text)}"
                body = response.json()
                text = body.get("message") or body.get("error_description", "")
                return response.status_code, f"{response.status_code} {text}"[:90]

            demo.source(
                "service-account key",
                load_credentials(key_path),
                call,
                f"GOOGLE_APPLICATION_CREDENTIALS=key.json gcptoken id {SERVICE}",
            )
            demo.source(  # the standard format (no email): the front door knows the account by its sub
                "metadata server",
                MetadataCredentials(host=emulator.host_port),
                call,
                f"gcptoken id {SERVICE}   # on GCE, Cloud Run, GKE: found by itself",
            )
            demo.source(
                "user, impersonating demo-runner",
                scenarios.impersonating(emulator, user, "demo-runner", USER),
                call,
                f"gcptoken id {SERVICE} --impersonate-service-account demo-runner@PROJECT.iam.gserviceaccount.com",
            )
            demo.source(
                "federation: OIDC file",
                scenarios.federation(emulator, Path(scratch)).credentials(),
                call,
                f"gcptoken id {SERVICE} --credentials external-account.json   # from gcloud iam "
                "workload-identity-pools create-cred-config --service-account=SA",
            )
            _federation_rows(demo, call)
            _gcloud_row(demo, key_path, call)
            key_credentials = load_credentials(key_path)
            bridge_rows(
                lambda *row: demo.rows.append(Row(*row)),
                key_credentials,
                json.loads(key_path.read_text())["client_email"],
                (emulator.state.project_id, emulator.state.project_number),
                service_url,
                service_url,
                demo.verified,
            )
            assertion = iap.assertion(emulator.state, "demo-user@example.com", iap_audience)
            status, answer = call(assertion, iap_url, "x-goog-iap-jwt-assertion")
            demo.rows.append(
                Row(
                    "IAP: its signed header",
                    status == 200,
                    verified="✓" if status == 200 else "✗",
                    answer=answer,
                    command='gcptoken verify "$ASSERTION" --preset iap --audience /projects/NUMBER/apps/PROJECT_ID',
                )
            )
            _iap_person_rows(demo, user, call, front_url, front_verifier, iap_client)
            try:
                user.id_token(service_url)
                demo.rows.append(Row("refused: a user's own token", False, answer="not refused"))
            except CredentialsError:
                demo.rows.append(
                    Row(
                        "refused: a user's own token",
                        True,
                        "0",
                        answer="refused before any request: use --impersonate-service-account",
                        command=f"gcptoken id {SERVICE}   # with user credentials: exit 1, says why",
                    )
                )
            other, _, _ = demo.fetch(load_credentials(key_path), "https://another-service.a.run.app")
            verify = f'gcptoken verify "$TOKEN" --audience {SERVICE}   # exit 1, one line: why'
            demo.refusal("refused: another audience", other, call, verify)
            demo.refusal("refused: expired token", demo.expired_token(), call, verify)
            demo.refusal("refused: no token", None, call, f"curl {SERVICE}   # 403 from Cloud Run itself")
            outsider, _, _ = demo.fetch(scenarios.impersonating(emulator, user, "demo-outsider", USER), service_url)
            demo.refusal(
                "refused: no run.invoker binding",
                outsider,
                call,
                "gcloud run services add-iam-policy-binding SERVICE --member=serviceAccount:SA "
                "--role=roles/run.invoker   # 403 until then",
            )
        _report(out, emulator.url, service_url, (iap_url, front_url), demo.rows)
    return all(row.ok for row in demo.rows)


def _report(out: TextIO, emulator_url: str, service_url: str, iap_urls: tuple[str, str], rows: list[Row]) -> None:
    iap_url, front_url = iap_urls
    write = out.write
    write("gcptoken demo: every request below stays on this machine.\n\n")
    write(f"  emulator of Google's token service  {emulator_url}  OAuth2, IAM, STS, metadata, IMDS, IAP\n")
    write(f"  Cloud Run service (front door)      {service_url}  checks ID token and roles/run.invoker\n")
    write(f"  app behind IAP                      {iap_url}  accepts IAP's signed header\n")
    write(f"  IAP itself (programmatic access)    {front_url}  accepts ID tokens for the IAP app\n\n")
    width = max(len(row.name) for row in rows)
    write(f"    {'ID token from':<{width}}  {'trips':>5}  {'latency':>8}  {'verified':<10}  the service answers\n")
    answer_at = 4 + width + 2 + 5 + 2 + 8 + 2 + 10 + 2
    for row in rows:
        mark, verified, answer = ("✓" if row.ok else "✗"), row.verified, row.answer
        if row.skipped:
            mark, verified, answer = "-", "skipped", row.skipped
        first, *more = answer_lines(answer, WIDTH - answer_at)
        write(
            f"  {mark} {row.name:<{width}}  {row.trips:>5}  {row.latency:>8}  {verified:<10}  {first}".rstrip() + "\n"
        )
        write("".join(f"{' ' * answer_at}{line}\n" for line in more))
    if any(row.skipped for row in rows):
        write("  (-: skipped, could not run on this machine)\n")
    write("\nThe same against real Google, row by row:\n")
    for row in rows:
        if row.command:
            write(f"  {row.name}\n" + "".join(line + "\n" for line in command_lines(row.command, 6)))
    write(
        "\nTry it by hand against the emulator:\n"
        '  EMU=$(mktemp -d); gcptoken emulator --port 0 --state-dir "$EMU" &   # then: source "$EMU/env"\n'
        "  TOKEN=$(gcptoken id https://svc.example.a.run.app)\n"
        '  gcptoken verify "$TOKEN" --audience https://svc.example.a.run.app\n'
        "  gcptoken whoami   # which credential, from where, and why\n"
        "  # your app (on :8000) behind Cloud Run's front door, the emulator's keys and IAM:\n"
        "  gcptoken emulator --run api=http://127.0.0.1:8000 --run-invoker api=serviceAccount:SA_EMAIL\n"
    )
