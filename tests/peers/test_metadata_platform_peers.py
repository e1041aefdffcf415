"""Google's clients, unchanged but for the metadata server's address, on the emulator answering as
each platform's metadata server: google-auth (compute_engine credentials, the identity endpoint,
``google.auth.default()``), gcloud (its own metadata reads, then google-auth's) and Node's
google-auth-library (its platform detection included, with the variables the platform's runtime
sets)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.auth
import google.auth.transport.requests
import httpx
import pytest
from google.auth import compute_engine
from google.auth.compute_engine import _metadata
from google.oauth2 import id_token as google_id_token

from gcptoken import Verifier
from gcptoken.emulator import EmulatorServer
from gcptoken.local.metadata_platforms import PLATFORMS, runtime_environment
from gcptoken.testing import EmulatorClient

from .test_gcloud import GCLOUD, gcloud_env, run_gcloud
from .test_node_peers import run_node

AUD = "https://svc-platform-peer.a.run.app"
VMS = ("gce", "app-engine")  # full tokens carry google.compute_engine only on a VM
# What Node's google-auth-library calls each platform (src/auth/envDetect.ts), given the variables
# that platform's runtime sets.
NODE_ENV = {
    "gce": "COMPUTE_ENGINE",
    "app-engine": "APP_ENGINE",
    "gke": "KUBERNETES_ENGINE",  # by instance/attributes/cluster-name answering
    "cloud-run": "CLOUD_RUN",
    "functions": "CLOUD_FUNCTIONS",
}


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer() as running:
        yield running


@pytest.fixture(params=list(PLATFORMS))
def platform(request: pytest.FixtureRequest, server: EmulatorServer) -> Iterator[str]:
    name = str(request.param)
    assert httpx.put(f"{server.url}/emulator/v1/metadata/platform", json={"platform": name}).status_code == 200
    yield name
    httpx.put(f"{server.url}/emulator/v1/metadata/platform", json={"platform": "gce"})


@pytest.fixture
def google_auth_on_it(server: EmulatorServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> EmulatorClient:
    """google-auth pointed at the emulator's metadata server, with no other credential around."""
    monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", server.host_port)  # read at google-auth's import
    monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", False)
    for name in ("GCE_METADATA_HOST", "GCE_METADATA_IP"):
        monkeypatch.setenv(name, server.host_port)
    for name in ("NO_GCE_CHECK", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "empty-gcloud-config"))
    monkeypatch.setenv("HOME", str(tmp_path))
    return EmulatorClient(server)


def verifier(client: EmulatorClient | EmulatorServer) -> Verifier:
    return Verifier(AUD, certs=f"{client.url}/oauth2/v3/certs")


def test_google_auth(platform: str, google_auth_on_it: EmulatorClient) -> None:
    client, request = google_auth_on_it, google.auth.transport.requests.Request()
    email = client.state.default_account.email
    identity = compute_engine.IDTokenCredentials(request, AUD, use_metadata_identity_endpoint=True)
    identity.refresh(request)  # format=full; the token read by the identity answer's Content-Type
    claims = verifier(client).verify(str(identity.token))
    assert claims["email"] == email and ("google" in claims) is (platform in VMS)
    credentials, project = google.auth.default()
    assert isinstance(credentials, compute_engine.Credentials) and project == client.state.project_id
    credentials.refresh(request)
    assert credentials.token is not None and credentials.token.startswith("ya29.")
    assert credentials.service_account_email == email and credentials.universe_domain == "googleapis.com"
    fetched = google_id_token.fetch_id_token(request, AUD)
    assert verifier(client).verify(fetched)["aud"] == AUD


@pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed on this machine")
def test_gcloud(platform: str, server: EmulatorServer, tmp_path: Path) -> None:
    client = EmulatorClient(server)
    env = gcloud_env(client, tmp_path / "gcloud-config")
    for name in ("GCE_METADATA_ROOT", "GCE_METADATA_HOST", "GCE_METADATA_IP"):
        env[name] = server.host_port
    for name in ("CLOUDSDK_CORE_CHECK_GCE_METADATA", "CLOUDSDK_AUTH_TOKEN_HOST", "NO_GCE_CHECK"):
        env.pop(name, None)
    env.update(runtime_environment(platform, client.state.project_id))
    printed = run_gcloud(["auth", "print-identity-token", f"--audiences={AUD}", "--token-format=full"], env)
    assert printed.returncode == 0, printed.stderr
    claims = verifier(client).verify(printed.stdout.strip())
    assert claims["email"] == client.state.default_account.email
    assert ("google" in claims) is (platform in VMS)


@pytest.mark.slow
def test_node(platform: str, server: EmulatorServer, node_peer: Path) -> None:
    client = EmulatorClient(server)
    env = {"GCE_METADATA_HOST": server.host_port, "GCE_METADATA_IP": server.host_port}
    env.update(runtime_environment(platform, client.state.project_id))
    result: dict[str, Any] = run_node(node_peer, "vm", {"audience": AUD}, env)
    assert result["env"] == NODE_ENV[platform]
    claims = result["idClaims"]  # Node asks for format=full
    assert claims["aud"] == AUD and claims["email"] == client.state.default_account.email
    assert ("google" in claims) is (platform in VMS)
    assert result["access"].startswith("ya29.") and result["projectId"] == client.state.project_id
