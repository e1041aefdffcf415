"""The demo's local-bridge rows: a plain HTTP client (no gcptoken code, no token) calling the
protected service through ``gcptoken proxy``, and a google-auth program that finds
``gcptoken metadata-server`` as it would find a VM's metadata server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from gcptoken.credentials import Credentials
from gcptoken.http.failures import network_failure
from gcptoken.local.metadata_server import CredentialsInstance, InstanceValues, metadata_app
from gcptoken.local.proxy import proxy_app
from gcptoken.servers.serving import AsgiServer, bind

__all__ = ["bridge_rows"]

SERVICE = "https://SERVICE-HASH.a.run.app"
GOOGLE_AUTH_PROGRAM = """
import json, google.auth, google.auth.transport.requests
from google.auth import compute_engine
request = google.auth.transport.requests.Request()
credentials = compute_engine.IDTokenCredentials(request, "{audience}", use_metadata_identity_endpoint=True)
credentials.refresh(request)
print(json.dumps({{"token": credentials.token}}))
"""


def _plain_get(url: str) -> tuple[int, str]:
    """What curl or a browser would do: no token, no gcptoken."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - a loopback URL of ours
            body = json.loads(answer.read())
            return answer.status, f"{answer.status} {body.get('message', '')}"[:90]
    except urllib.error.HTTPError as exc:  # a 4xx or 5xx: the answer, not a failure to connect
        return exc.code, f"{exc.code} {exc.reason}"[:90]
    except OSError as exc:
        return 0, network_failure(exc, url)


def bridge_rows(
    add_row: Callable[..., None],
    credentials: Credentials,
    email: str,
    project: tuple[str, str],
    service_url: str,
    audience: str,
    verified: Callable[[str], str],
) -> None:
    """Two rows through ``add_row(name, ok, trips, latency, verified, answer, command[, skipped])``."""
    with AsgiServer(proxy_app(service_url, credentials, audience), bind("127.0.0.1", 0)) as proxy:
        started = time.perf_counter()
        status, answer = _plain_get(proxy.url)
        add_row(
            "plain HTTP client via proxy",
            status == 200,
            "",
            f"{(time.perf_counter() - started) * 1000:.0f} ms",
            "✓" if status == 200 else "✗",
            answer,
            f"gcptoken proxy {SERVICE} --port 8080 &  curl http://127.0.0.1:8080/   # no token in sight",
        )
    values = InstanceValues(email=email, project_id=project[0], project_number=project[1])
    source = CredentialsInstance(credentials, credentials, values)
    with AsgiServer(metadata_app(source), bind("127.0.0.1", 0)) as server:
        name = "google-auth via metadata-server"
        command = "gcptoken metadata-server --port 8081 &  GCE_METADATA_HOST=127.0.0.1:8081 python app.py"
        try:
            import google.auth  # noqa: F401 - only to know whether the program below can run
        except ImportError:
            add_row(name, True, "", "", "", "", command, "google-auth is not installed")
            return
        environment: dict[str, Any] = {
            **os.environ,
            "GCE_METADATA_HOST": server.host_port,
            "GCE_METADATA_IP": server.host_port,
            "NO_GCE_CHECK": "false",
        }
        started = time.perf_counter()
        ran = subprocess.run(
            [sys.executable, "-c", GOOGLE_AUTH_PROGRAM.format(audience=audience)],
            capture_output=True,
            text=True,
            env=environment,
            timeout=60,
            check=False,
        )
        token = json.loads(ran.stdout)["token"] if ran.returncode == 0 else ""
        mark = verified(token) if token else "✗"
        answer = "ID token from the local metadata server" if token else f"failed: {ran.stderr.strip()[-80:]}"
        add_row(name, mark == "✓", "", f"{(time.perf_counter() - started) * 1000:.0f} ms", mark, answer, command)
