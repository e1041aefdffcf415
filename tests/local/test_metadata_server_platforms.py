"""``gcptoken metadata-server --platform``: a real credential behind the metadata server of GKE or
Cloud Run, as that platform's server answers (headers, paths, refusals), with google-auth on it;
and a platform it does not know is one line and exit 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.auth
import google.auth.transport.requests
import httpx
import pytest
from google.auth import compute_engine
from google.auth.compute_engine import _metadata

from gcptoken import Verifier
from gcptoken.emulator import EmulatorServer
from tests.cli.test_cli import gcptoken
from tests.local import test_metadata_server as metadata_server_tests
from tests.local.test_metadata_server import Server

pytestmark = pytest.mark.slow

AUD = "https://svc-md-platform.a.run.app"
FLAVOR = {"Metadata-Flavor": "Google"}


# The metadata server tests' emulator and key file: one of each for this module too.
emu, key_path = metadata_server_tests.emu, metadata_server_tests.key_path


@pytest.fixture(scope="module", params=["gke", "cloud-run"])
def on(request: pytest.FixtureRequest, emu: EmulatorServer, key_path: Path) -> Iterator[tuple[str, Server]]:
    """(platform, the metadata server answering as it)."""
    running = Server(
        {"GCPTOKEN_EMULATOR_HOST": emu.host_port},
        "--credentials",
        str(key_path),
        "--platform",
        str(request.param),
        "--attribute",
        "role=web",
    )
    yield str(request.param), running
    code, err = running.stop()
    assert code == 0 and f"answering as {request.param}" in err


def test_headers_paths_and_refusals(on: tuple[str, Server], key_path: Path) -> None:
    platform, server = on
    email = json.loads(key_path.read_text())["client_email"]
    root = f"http://{server.host_port}/"
    assert httpx.get(root).status_code == 403  # both need Metadata-Flavor at /, unlike a VM
    answer = server.get("instance/service-accounts/default/email")
    assert answer.text == email and answer.headers["content-type"] == "application/text"
    if platform == "gke":
        assert answer.headers["server"] == "GKE Metadata Server" and "etag" in answer.headers
        assert server.get("instance/attributes/").text.splitlines() == [
            "cluster-location",
            "cluster-name",
            "cluster-uid",
        ]
        assert server.get("instance/attributes/role").status_code == 404  # no VM metadata on GKE
        refused = httpx.get(f"{root}computeMetadata/v1/project/project-id")
        assert (
            refused.headers["content-type"] == "text/plain; charset=utf-8" and "metadata-flavor" not in refused.headers
        )
    else:
        assert answer.headers["server"] == "Metadata Server for Serverless" and "etag" not in answer.headers
        assert server.get("instance/region").text.endswith("/regions/us-central1")
        assert server.get("instance/attributes/").status_code == 404
        assert server.get("instance/service-accounts/nobody@x.iam.gserviceaccount.com/token").status_code == 500
    identity = server.get("instance/service-accounts/default/identity", audience=AUD)
    assert identity.status_code == 200 and identity.headers["content-type"] == "application/text"


def test_google_auth_on_it(
    on: tuple[str, Server], emu: EmulatorServer, key_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = on[1]
    monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", server.host_port)
    monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", False)
    for name in ("GCE_METADATA_HOST", "GCE_METADATA_IP"):
        monkeypatch.setenv(name, server.host_port)
    for name in ("NO_GCE_CHECK", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "empty"))
    request: Any = google.auth.transport.requests.Request()
    credentials, project = google.auth.default()
    assert isinstance(credentials, compute_engine.Credentials) and project == emu.state.project_id
    engine: Any = compute_engine  # google-auth ships no annotations
    identity = engine.IDTokenCredentials(request, AUD, use_metadata_identity_endpoint=True)
    identity.refresh(request)
    claims = Verifier(AUD, certs=f"{emu.url}/oauth2/v3/certs").verify(str(identity.token))
    assert claims["email"] == json.loads(key_path.read_text())["client_email"]


@pytest.mark.parametrize("command", ["metadata-server", "emulator"])
def test_an_unknown_platform_is_one_line(command: str) -> None:
    result = gcptoken(command, "--platform", "lambda")
    assert result.code == 2
    assert result.err.count("\n") == 1 and "--platform" in result.err and "gke" in result.err
