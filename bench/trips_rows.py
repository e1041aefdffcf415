"""Round trips per flow, counted at the emulator: one cold token from every source, by gcptoken,
google-auth and gcloud, each where it can get that token at all."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cli_rows import gcloud_env
from bench.timing import Row
from gcptoken.credentials import ImpersonatedCredentials, MetadataCredentials, credentials_from_info
from gcptoken.emulator import scenarios
from gcptoken.emulator.http.server import EmulatorServer

__all__ = ["trips_rows"]

AUD = "https://bench-trips.a.run.app"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def _count(emulator: EmulatorServer, fetch: Callable[[], object]) -> int:
    emulator.state.clear_requests()
    fetch()
    return len(emulator.state.request_log())


class Flows:
    """Fresh credentials per measurement, so every count is of a cold fetch."""

    def __init__(self, emulator: EmulatorServer, scratch: Path) -> None:
        self.emulator = emulator
        self.scratch = scratch
        self.serial = 0

    def key(self) -> dict[str, str]:
        self.serial += 1
        return self.emulator.key_file(f"bench-trips-{self.serial}")

    def target(self, member_key: dict[str, str]) -> str:
        self.serial += 1
        email = scenarios.service_account(self.emulator, f"bench-target-{self.serial}")
        self.emulator.state.grant_token_creator(email, f"serviceAccount:{member_key['client_email']}")
        self.emulator.state.grant_token_creator(email, f"serviceAccount:{email}")  # google-auth's ID flow needs it
        return email

    @property
    def iam_base(self) -> str:
        return f"{self.emulator.url}/v1/projects/-/serviceAccounts/"


def _gcptoken(flows: Flows) -> dict[str, Callable[[], object]]:
    emulator = flows.emulator

    def impersonation() -> object:
        key = flows.key()
        target = flows.target(key)
        source = credentials_from_info(key, "bench key")
        return ImpersonatedCredentials(source, target, iam_base=flows.iam_base).id_token(AUD)

    user = scenarios.user(emulator, "bench-user@example.com")
    federation = scenarios.federation(emulator, flows.scratch)
    return {
        "service-account key → ID token": lambda: credentials_from_info(flows.key(), "k").id_token(AUD),
        "metadata server → ID token": lambda: MetadataCredentials(host=emulator.host_port).id_token(
            AUD, use_cache=False
        ),
        "user → ID token (OAuth client)": lambda: user.id_token(user.default_audience, use_cache=False),
        "key → impersonation → ID token": impersonation,
        "federation → impersonation → access token": lambda: federation.credentials().access_token(use_cache=False),
        "federation → impersonation → ID token": lambda: federation.credentials().id_token(AUD, use_cache=False),
    }


def _google_auth(flows: Flows) -> dict[str, Callable[[], object]]:
    import google.auth.transport.requests
    from google.auth import compute_engine, iam, identity_pool, impersonated_credentials
    from google.auth.compute_engine import _metadata
    from google.oauth2 import credentials as user_credentials
    from google.oauth2 import service_account

    emulator = flows.emulator
    request: Any = google.auth.transport.requests.Request()
    # google-auth hard-codes these hosts: point them at the emulator, as DESIGN.md describes.
    base = f"{emulator.url}/v1/projects/-/serviceAccounts/{{}}"
    iam._IAM_ENDPOINT = f"{base}:generateAccessToken"
    iam._IAM_IDTOKEN_ENDPOINT = f"{base}:generateIdToken"
    _metadata._GCE_METADATA_HOST = emulator.host_port
    user_credentials._GOOGLE_OAUTH2_TOKEN_ENDPOINT = f"{emulator.url}/token"  # it ignores the file's token_uri

    def key_id_token() -> None:
        service_account.IDTokenCredentials.from_service_account_info(flows.key(), target_audience=AUD).refresh(request)

    def metadata_id_token() -> None:
        compute_engine.IDTokenCredentials(request, AUD, use_metadata_identity_endpoint=True).refresh(request)

    def user_id_token() -> None:
        info = emulator.state.issue_refresh_token("bench-user@example.com")
        user_credentials.Credentials.from_authorized_user_info(info).refresh(request)

    def impersonation() -> None:
        key = flows.key()
        target = flows.target(key)
        source = service_account.Credentials.from_service_account_info(key, scopes=[CLOUD_PLATFORM])
        direct = impersonated_credentials.Credentials(
            source_credentials=source, target_principal=target, target_scopes=[CLOUD_PLATFORM]
        )
        impersonated_credentials.IDTokenCredentials(direct, target_audience=AUD).refresh(request)

    federation = scenarios.federation(emulator, flows.scratch)

    def federated_access() -> None:
        info = {
            **federation.info,
            "service_account_impersonation_url": f"{federation.iam_base}{federation.email}:generateAccessToken",
        }
        identity_pool.Credentials.from_info(info, scopes=[CLOUD_PLATFORM]).refresh(request)

    return {
        "service-account key → ID token": key_id_token,
        "metadata server → ID token": metadata_id_token,
        "user → ID token (OAuth client)": user_id_token,
        "key → impersonation → ID token": impersonation,
        "federation → impersonation → access token": federated_access,
    }


def _gcloud(flows: Flows) -> dict[str, Callable[[], object]]:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return {}
    emulator = flows.emulator
    key = flows.key()
    target = flows.target(key)
    key_path = flows.scratch / "trips-gcloud-key.json"
    key_path.write_text(json.dumps(key))
    env = gcloud_env(emulator, flows.scratch / "gcloud-trips-config")

    def run(*args: str) -> None:
        subprocess.run([gcloud, *args], env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)

    run("auth", "activate-service-account", "--key-file", str(key_path))
    return {
        "service-account key → ID token": lambda: run("auth", "print-identity-token", f"--audiences={AUD}"),
        "key → impersonation → ID token": lambda: run(
            "auth", "print-identity-token", f"--audiences={AUD}", f"--impersonate-service-account={target}"
        ),
    }


def trips_rows(emulator: EmulatorServer, scratch: Path) -> list[Row]:
    flows = Flows(emulator, scratch)
    with scenarios.environment({"GCE_METADATA_HOST": emulator.host_port, "GCE_METADATA_IP": emulator.host_port}):
        clients = {"gcptoken": _gcptoken(flows), "google-auth": _google_auth(flows), "gcloud": _gcloud(flows)}
        flows_measured = list(clients["gcptoken"])
        rows = []
        for flow in flows_measured:
            counts: dict[str, Any] = {}
            for client, fetches in clients.items():
                counts[client] = _count(emulator, fetches[flow]) if flow in fetches else None
            rows.append(Row("round trips", flow, counts["gcptoken"], "requests", notes=counts))
        return rows
