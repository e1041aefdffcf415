"""One wording for a network failure, from its cause, in both transports and every command: a
closed port is "cannot reach HOST:PORT: connection refused", a server whose certificate does not
chain to a trusted CA is "… TLS certificate not trusted (certificate verify failed: …)"."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gcptoken.cli.main import main
from gcptoken.emulator.sts.mtls import WorkloadCa
from gcptoken.errors import TransportError
from gcptoken.http import flows, transport
from gcptoken.http.failures import network_failure
from gcptoken.http.flows import HttpRequest
from gcptoken.http.light_transport import LightTransport
from gcptoken.http.transport import AsyncHttpxTransport, HttpxTransport
from gcptoken.testing import CLOSED_LOOPBACK, EmulatorClient

AUD = "https://svc-wording.a.run.app"
# A token that gets as far as the key fetch: RS256, a key id, a payload (the signature never matters).
TOKEN = (
    ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
        for part in ({"alg": "RS256", "kid": "k1", "typ": "JWT"}, {"aud": AUD, "iss": "x", "exp": 1})
    )
    + ".AA"
)
REFUSED = f"cannot reach {CLOSED_LOOPBACK}: connection refused"
UNTRUSTED = "TLS certificate not trusted (certificate verify failed: "
_CA_FILES: dict[str, Path] = {}


@pytest.fixture(scope="module")
def untrusted_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a TLS server whose certificate chains to a CA nobody trusts (its
    root is in ``ca.pem`` beside ``PORT``: see ``_ca_of``)."""
    ca = WorkloadCa()
    issued = ca.server_certificate()
    folder = tmp_path_factory.mktemp("tls")
    (folder / "ca.pem").write_text(ca.root_pem)
    (folder / "cert.pem").write_text(issued.cert_pem)
    (folder / "key.pem").write_text(issued.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(5)
                    context.wrap_socket(conn, server_side=True).close()
                except (OSError, ssl.SSLError):
                    pass  # the client refuses the certificate: the handshake fails, as it should

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    _CA_FILES[f"127.0.0.1:{listener.getsockname()[1]}"] = folder / "ca.pem"
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    socket.create_connection(listener.getsockname()).close()  # wakes accept() to see the stop
    thread.join(5)
    listener.close()


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flows, "RETRY_BASE_DELAY", 0.001)


@pytest.fixture(params=["httpx", "http.client"])
def which_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every command run once on each transport (in this process httpx is loaded, so the CLI
    would otherwise always take httpx's)."""
    if request.param == "http.client":
        monkeypatch.setattr(transport, "shared_transport", lambda timeout=10.0: LightTransport(timeout))
    return str(request.param)


def _send(kind: type[LightTransport] | type[HttpxTransport], url: str) -> str:
    with pytest.raises(TransportError) as caught:
        kind().send(HttpRequest("GET", url))
    return str(caught.value)


async def _send_async(url: str) -> str:
    client = AsyncHttpxTransport()
    try:
        with pytest.raises(TransportError) as caught:
            await client.send(HttpRequest("GET", url))
    finally:
        await client.aclose()
    return str(caught.value)


def test_both_transports_say_the_same_words(untrusted_tls: str) -> None:
    """http.client, httpx, and httpx's asyncio client (the ASGI Verifier logs what it says)."""
    for url, expected in [(f"http://{CLOSED_LOOPBACK}/x", REFUSED), (f"https://{untrusted_tls}/x", UNTRUSTED)]:
        light, pooled = _send(LightTransport, url), _send(HttpxTransport, url)
        assert light == pooled == asyncio.run(_send_async(url)), (light, pooled)
        assert light.startswith(f"GET {url}: ") and expected in light and "ConnectError" not in light


def test_both_transports_trust_the_ca_ssl_cert_file_names(untrusted_tls: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's CA trusted through SSL_CERT_FILE: the handshake passes in both (the tiny
    server then hangs up, which both say alike)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(_CA_FILES[untrusted_tls]))
    url = f"https://{untrusted_tls}/x"
    light, pooled = _send(LightTransport, url), _send(HttpxTransport, url)
    assert "not trusted" not in light + pooled and "broke off" in light and "broke off" in pooled, (light, pooled)


def test_the_words_come_from_the_cause() -> None:
    url = "https://svc.example:8443/x"
    assert network_failure(socket.gaierror(-2, "Name or service not known"), url) == (
        "cannot reach svc.example:8443: name not resolved"
    )
    assert network_failure(TimeoutError(), url) == "svc.example:8443 timed out (no answer in time)"
    assert network_failure(OSError(101, "x"), "http://[::1]/") == "cannot reach [::1]:80: network is unreachable"
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = ConnectionRefusedError(111, "x")
    assert network_failure(wrapped, url) == "cannot reach svc.example:8443: connection refused"
    assert network_failure(RuntimeError(), url) == "cannot reach svc.example:8443: connection failed (RuntimeError)"


def _key_to(tmp_path: Path, key_info: dict[str, str], token_uri: str) -> str:
    path = tmp_path / "key.json"
    path.write_text(json.dumps({**key_info, "token_uri": token_uri}))
    return str(path)


def _commands(host: str, scheme: str, key: str, emulated_key: str) -> list[list[str]]:
    base = f"{scheme}://{host}"
    return [
        ["id", AUD, "--credentials", key, "--no-cache"],
        ["access", "--credentials", key, "--no-cache"],
        ["verify", TOKEN, "--audience", AUD, "--certs", f"{base}/certs"],
        ["verify", TOKEN, "--audience", AUD, "--issuer", base],
        ["call", f"{base}/path", "--credentials", emulated_key, "--audience", AUD],
    ]


@pytest.mark.parametrize("where", ["closed port", "untrusted certificate"])
def test_every_command_says_the_same_words(
    where: str,
    which_transport: str,
    untrusted_tls: str,
    emulator: EmulatorClient,
    key_info: dict[str, str],
    key_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)  # call's own token comes from it
    host, scheme, expected = (
        (CLOSED_LOOPBACK, "http", REFUSED) if where == "closed port" else (untrusted_tls, "https", UNTRUSTED)
    )
    key = _key_to(tmp_path, key_info, f"{scheme}://{host}/token")
    failures = []
    for argv in _commands(host, scheme, key, str(key_path)):
        code = main(argv)
        err = capsys.readouterr().err
        lines = err.splitlines()
        if code != 3 or len(lines) != 1 or expected not in err or "Error)" in err.replace("(after", ""):
            failures.append((argv[0], code, err))
    if where == "closed port":  # tokeninfo is reached through the emulator's host only
        monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", CLOSED_LOOPBACK)
        code = main(["info", "ya29.x"])
        err = capsys.readouterr().err
        if code != 3 or expected not in err:
            failures.append(("info", code, err))
    assert not failures, failures
