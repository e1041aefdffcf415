"""``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` naming something unusable: one line naming the variable
and the reason, exit 3, no traceback; the same in both transports, with and without mutual TLS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gcptoken import CredentialsError, load_credentials
from gcptoken.cli.main import main
from gcptoken.emulator import EmulatorServer
from gcptoken.http import transport
from gcptoken.http.flows import HttpRequest
from gcptoken.http.light_transport import LightTransport
from gcptoken.http.transport import HttpxTransport
from tests.credentials.test_x509 import Workload, write


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(mtls_port=0) as emulator:
        yield emulator


def _bad_settings(tmp_path: Path) -> list[tuple[dict[str, str], str]]:
    """(environment, the line it gives) for every way the variables can name something unusable."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    plain_file = tmp_path / "plain"
    plain_file.write_text("")
    return [
        ({"SSL_CERT_FILE": str(garbage)}, f"SSL_CERT_FILE {garbage} holds no PEM CA certificate"),
        ({"SSL_CERT_FILE": str(tmp_path / "absent.pem")}, f"SSL_CERT_FILE {tmp_path}/absent.pem does not exist"),
        ({"SSL_CERT_FILE": str(tmp_path)}, f"SSL_CERT_FILE {tmp_path} is a directory, not a regular file"),
        ({"SSL_CERT_DIR": str(tmp_path / "absent")}, f"SSL_CERT_DIR {tmp_path}/absent does not exist"),
        ({"SSL_CERT_DIR": str(plain_file)}, f"SSL_CERT_DIR {plain_file} is not a directory"),
    ]


@pytest.mark.parametrize("which", ["httpx", "http.client"])
def test_a_bad_ca_variable_is_one_line_on_the_x509_path(
    which: str,
    server: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if which == "http.client":
        monkeypatch.setattr(transport, "shared_transport", lambda timeout=10.0: LightTransport(timeout))
    credentials = write(tmp_path, Workload(server, tmp_path).info(impersonate=False))
    for environment, line in _bad_settings(tmp_path):
        with monkeypatch.context() as patched:
            for name, value in environment.items():
                patched.setenv(name, value)
            with pytest.raises(CredentialsError) as caught:
                load_credentials(credentials).access_token()
            assert str(caught.value).startswith(line)
            code = main(["access", "--credentials", str(credentials), "--no-cache"])
            err = capsys.readouterr().err
            assert (code, err.startswith(f"gcptoken: error: {line}"), len(err.splitlines())) == (3, True, 1), err


def test_a_bad_ca_variable_is_the_same_line_in_both_transports_without_mtls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = HttpRequest("GET", "https://127.0.0.1:9/x")
    for environment, line in _bad_settings(tmp_path):
        with monkeypatch.context() as patched:
            for name, value in environment.items():
                patched.setenv(name, value)
            said = []
            for send in (LightTransport().send, lambda r: HttpxTransport().send(r)):
                with pytest.raises(CredentialsError) as caught:
                    send(request)
                said.append(str(caught.value))
            assert said[0] == said[1] and said[0].startswith(line), said
