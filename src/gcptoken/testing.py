"""Pytest fixtures that run the emulator on 127.0.0.1. Enable with
``pytest_plugins = ["gcptoken.testing"]`` in a conftest.py.

- ``gcptoken_emulator``: one emulator for the session (an ``EmulatorServer``);
- ``gcptoken_key_file``: a key file (path) for a fresh service account on it;
- ``gcptoken_pubsub_emulator``: the official Pub/Sub emulator (installed with gcloud) for the
  session, its pushes carrying ID tokens from ``gcptoken_emulator`` (a ``PubsubEmulator``; set
  PUBSUB_EMULATOR_HOST to its ``host_port``); tests that use it skip where it is not installed;
- ``gcptoken_env``: the environment pointed at the emulator: GCPTOKEN_EMULATOR_HOST,
  GOOGLE_APPLICATION_CREDENTIALS, and GCE_METADATA_HOST / _IP / _ROOT at its metadata server,
  so nothing reaches a real one;
- ``gcptoken_sender``: a ``gcptoken.senders.Sender`` on that emulator: ``gcptoken_sender.send("tasks",
  URL, SA_EMAIL, b"body")`` delivers the request Cloud Tasks (or scheduler, eventarc, workflows)
  would make to your local service, with the token its service agent would mint.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gcptoken.extras import require

require("emulator", "gcptoken's pytest plugin (gcptoken.testing)")  # names the plugin, not the emulator

from gcptoken.emulator import EmulatorServer  # noqa: E402
from gcptoken.emulator.pubsub import PubsubEmulator, PubsubEmulatorMissingError  # noqa: E402
from gcptoken.senders import Sender  # noqa: E402

if TYPE_CHECKING:
    from gcptoken.emulator.run import FrontDoorServer

__all__ = [
    "EmulatorClient",
    "gcptoken_emulator",
    "gcptoken_env",
    "gcptoken_key_file",
    "gcptoken_pubsub_emulator",
    "gcptoken_sender",
    "write_key_file",
]

_accounts = itertools.count(1)
# A loopback port nothing listens on: metadata lookups fail fast instead of leaving the machine.
CLOSED_LOOPBACK = "127.0.0.1:9"


def write_key_file(directory: Path, key: Mapping[str, Any], name: str = "key.json") -> Path:
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(key, handle)
    return path


class EmulatorClient:
    """Helpers over a running emulator for tests: fresh accounts, the request log."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.state = server.state
        self.url = server.url
        self.host_port = server.host_port

    def new_key(self, prefix: str = "sa") -> dict[str, str]:
        return self.server.key_file(f"{prefix}-{next(_accounts):06d}")

    def requests(self, path: str | None = None, **match: Any) -> list[dict[str, Any]]:
        """Requests received, oldest first, optionally only those to ``path``."""
        log = self.state.request_log()
        return [
            entry
            for entry in log
            if (path is None or entry["path"] == path) and all(entry.get(k) == v for k, v in match.items())
        ]

    def iap_assertion(self, email: str, audience: str | None = None, **options: Any) -> str:
        """The ``x-goog-iap-jwt-assertion`` IAP would send for ``email`` (admin API; options:
        lifetime, hd, accessLevels). The audience defaults to the emulated project's App Engine app."""
        body = {"email": email, **({"audience": audience} if audience else {}), **options}
        return str(self._admin("/emulator/v1/iap/assertions", body)["assertion"])

    def firebase_token(self, uid: str, **options: Any) -> str:
        """A Firebase ID token for ``uid`` (admin API; options: projectId, email, emailVerified,
        signInProvider, claims, authTime, lifetime)."""
        return str(self._admin("/emulator/v1/firebase/tokens", {"uid": uid, **options})["idToken"])

    def oidc_token(self, claims: dict[str, Any], lifetime: int = 3600) -> str:
        """A token from the emulator's own OIDC issuer (``{url}/oidc``, the stand-in outside IdP)."""
        return str(self._admin("/emulator/v1/oidc/tokens", {"claims": claims, "lifetime": lifetime})["token"])

    def upload_certificate(self, email: str, certificate_pem: str) -> str:
        """Upload a PEM certificate to service account ``email`` (admin API, IAM keys:upload's
        rules): its key id, the ``private_key_id`` a key file or hardware-key reference names."""
        key = self._admin(f"/emulator/v1/serviceAccounts/{email}/keys:upload", {"certificate": certificate_pem})
        return str(key["name"]).rsplit("/", 1)[1]

    def _admin(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        response = httpx.post(self.url + path, json=body, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def cloud_run(
        self, name: str, upstream: str, invokers: Sequence[str] = (), custom_audiences: Sequence[str] = ()
    ) -> FrontDoorServer:
        """Cloud Run's front door before the app at ``upstream``, as service ``name`` (one front door
        per name at a time), not yet started: ``with emulator.cloud_run("api", app_url, ["serviceAccount:…"]) as
        service:`` then call ``service.url`` (also its ID tokens' audience)."""
        from gcptoken.emulator.run import FrontDoorServer, RunService

        service = RunService(name, upstream, tuple(custom_audiences), set(invokers))
        return FrontDoorServer(self.state, service)

    def token_requests_by(self, email: str) -> list[dict[str, Any]]:
        """Token-endpoint requests whose assertion was issued by ``email``."""
        return [
            entry
            for entry in self.requests()
            if entry.get("detail", {}).get("assertion", {}).get("claims", {}).get("iss") == email
        ]


@pytest.fixture(scope="session")
def gcptoken_emulator() -> Iterator[EmulatorClient]:
    with EmulatorServer() as server:
        yield EmulatorClient(server)


@pytest.fixture(scope="session")
def gcptoken_pubsub_emulator(gcptoken_emulator: EmulatorClient) -> Iterator[PubsubEmulator]:
    try:
        pubsub = PubsubEmulator(gcptoken_emulator.url)
    except PubsubEmulatorMissingError as exc:
        pytest.skip(str(exc))
    with pubsub:
        yield pubsub


@pytest.fixture
def gcptoken_key_file(gcptoken_emulator: EmulatorClient, tmp_path: Path) -> Path:
    return write_key_file(tmp_path, gcptoken_emulator.new_key())


@pytest.fixture
def gcptoken_env(
    gcptoken_emulator: EmulatorClient, gcptoken_key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    env = {
        "GCPTOKEN_EMULATOR_HOST": gcptoken_emulator.host_port,
        "GOOGLE_APPLICATION_CREDENTIALS": str(gcptoken_key_file),
        "GCE_METADATA_HOST": gcptoken_emulator.host_port,
        "GCE_METADATA_IP": gcptoken_emulator.host_port,
        "GCE_METADATA_ROOT": gcptoken_emulator.host_port,  # gcloud's name for it
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(scope="session")
def gcptoken_sender(gcptoken_emulator: EmulatorClient) -> Sender:
    return Sender(gcptoken_emulator.url)
