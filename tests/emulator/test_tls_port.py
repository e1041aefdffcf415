"""The emulator's HTTPS port without client certificates (``tls_port``, ``--tls-port``): every
endpoint answers over TLS with a certificate from the emulator's CA, and the state dir tells
clients where it is and which CA to trust."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from gcptoken.cli.main import main
from gcptoken.emulator import EmulatorServer
from tests.cli.test_cli import COMMAND


def test_every_endpoint_answers_over_https_with_the_emulators_ca() -> None:
    with EmulatorServer(tls_port=0) as server:
        assert server.tls is not None
        assert server.state.tls_url == server.tls.url
        assert server.tls.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cadata=server.state.workload_ca.root_pem)
        with httpx.Client(verify=context) as client:
            certs = client.get(f"{server.tls.url}/oauth2/v3/certs")
            assert certs.status_code == 200
            assert certs.json()["keys"]
            key = server.key_file()
            assert key["client_email"].endswith(".iam.gserviceaccount.com")
        # Without the emulator's CA, the certificate is not trusted: nothing is served in the clear.
        with pytest.raises(httpx.ConnectError), httpx.Client() as untrusting:
            untrusting.get(f"{server.tls.url}/oauth2/v3/certs")
        # Plain HTTP to the TLS port gets no answer from the app.
        with pytest.raises(httpx.HTTPError):
            httpx.get(server.tls.url.replace("https://", "http://") + "/oauth2/v3/certs", timeout=5)


def test_no_tls_port_unless_asked() -> None:
    with EmulatorServer() as server:
        assert server.tls is None
        assert server.state.tls_url is None


def test_the_state_dir_names_the_https_port_and_its_ca(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    with EmulatorServer(state_dir=state_dir, tls_port=0) as server:
        assert server.tls is not None
        env = (state_dir / "env").read_text()
        host = server.tls.url.removeprefix("https://")
        assert f"export GCPTOKEN_EMULATOR_TLS_HOST={host}\n" in env
        ca = state_dir / "ca.pem"
        assert f"export GCPTOKEN_EMULATOR_CA={ca.resolve()}\n" in env
        assert env.count("GCPTOKEN_EMULATOR_CA=") == 1
        assert (ca.stat().st_mode & 0o777) == 0o600
        with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as client:
            assert client.get(f"{server.tls.url}/oauth2/v1/certs").status_code == 200


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_bad_tls_port_is_one_line(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulator", "--port", "0", "--tls-port", port]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"gcptoken: error: --tls-port must be 0-65535, not {port}\n")


@pytest.mark.slow
def test_the_command_line_announces_the_https_port() -> None:
    process = subprocess.Popen(
        [*COMMAND, "emulator", "--port", "0", "--tls-port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "(HTTPS on https://127.0.0.1:" in line, line
    finally:
        process.terminate()
        process.communicate(timeout=20)
