"""Application Default Credentials discovery: the order, forcing a source, and clear failures."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gcptoken import CredentialsError, MetadataCredentials, ServiceAccountCredentials, load_credentials
from gcptoken.credentials.adc import find_credentials
from gcptoken.servers.serving import AsgiServer, bind
from gcptoken.testing import EmulatorClient, write_key_file
from tests.cli.test_cli import gcptoken

AUD = "https://svc-adc.a.run.app"


class Machine:
    """A temp HOME, gcloud config dir and environment, set up one situation at a time."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator: EmulatorClient) -> None:
        self.tmp, self.env, self.emulator = tmp_path, monkeypatch, emulator
        self.home = tmp_path / "home"
        self.home.mkdir()
        monkeypatch.setenv("HOME", str(self.home))
        monkeypatch.delenv("CLOUDSDK_CONFIG")
        monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
        monkeypatch.setenv("NO_GCE_CHECK", "true")

    def key(self, name: str) -> Path:
        return write_key_file(self.tmp, self.emulator.new_key(), f"{name}.json")

    def adc_file(self, directory: Path, content: str | None = None) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "application_default_credentials.json"
        path.write_text(content if content is not None else self.key("adc").read_text())
        return path

    def metadata_at(self, host_port: str) -> None:
        self.env.delenv("NO_GCE_CHECK")
        self.env.setenv("GCE_METADATA_IP", host_port)
        self.env.setenv("GCE_METADATA_HOST", host_port)


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator: EmulatorClient) -> Machine:
    return Machine(tmp_path, monkeypatch, emulator)


def email_of(path: Path) -> str:
    return str(json.loads(path.read_text())["client_email"])


def test_the_environment_variable_comes_first(machine: Machine) -> None:
    key = machine.key("env")
    machine.env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    machine.adc_file(machine.home / ".config" / "gcloud")
    machine.metadata_at(machine.emulator.host_port)
    found = find_credentials()
    assert (found.source, found.location, found.tried) == ("file", str(key), ())
    assert isinstance(found.credentials, ServiceAccountCredentials)
    assert found.credentials.key.client_email == email_of(key)


def test_gcloud_adc_file_in_cloudsdk_config_then_in_home(machine: Machine) -> None:
    in_home = machine.adc_file(machine.home / ".config" / "gcloud")
    found = find_credentials()
    assert (found.source, found.location) == ("application-default", str(in_home))
    assert found.tried == ("GOOGLE_APPLICATION_CREDENTIALS (not set)",)
    configured = machine.adc_file(machine.tmp / "custom-config")
    machine.env.setenv("CLOUDSDK_CONFIG", str(configured.parent))
    found = find_credentials()
    assert found.location == str(configured)
    assert isinstance(found.credentials, ServiceAccountCredentials)
    assert found.credentials.key.client_email == email_of(configured)


def test_the_metadata_server_last(machine: Machine, certs_url: str) -> None:
    machine.metadata_at(machine.emulator.host_port)
    found = find_credentials()
    assert found.source == "metadata"
    assert isinstance(found.credentials, MetadataCredentials)
    assert len(found.tried) == 2 and "no such file" in found.tried[1]
    token = load_credentials().id_token(AUD)  # the library's default path is the same discovery
    assert token.claims["aud"] == AUD


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        ("env-missing-file", "does not exist"),
        ("env-not-json", "is not JSON"),
        ("adc-not-json", "application_default_credentials.json is not JSON"),
        ("adc-user-credentials-broken", "authorized_user file has no 'refresh_token'"),
    ],
)
def test_a_broken_credential_is_an_error_not_a_fall_through(machine: Machine, setup: str, fragment: str) -> None:
    machine.metadata_at(machine.emulator.host_port)  # would answer, if we fell through
    if setup == "env-missing-file":
        machine.env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(machine.tmp / "gone.json"))
    elif setup == "env-not-json":
        (machine.tmp / "bad.json").write_text("{")
        machine.env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(machine.tmp / "bad.json"))
    elif setup == "adc-not-json":
        machine.adc_file(machine.home / ".config" / "gcloud", "{")
    else:
        user = {"type": "authorized_user", "client_id": "c", "client_secret": "s"}
        machine.adc_file(machine.home / ".config" / "gcloud", json.dumps(user))
    with pytest.raises(CredentialsError, match=fragment):
        find_credentials()


async def not_metadata(request: Request) -> Response:
    return PlainTextResponse("hello from a web server")  # no Metadata-Flavor header


@pytest.fixture
def web_server() -> Iterator[str]:
    """Something at the metadata address that answers, but is not a metadata server."""
    with AsgiServer(Starlette(routes=[Route("/", not_metadata)]), bind("127.0.0.1", 0)) as server:
        yield server.host_port


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: the ping must give up on its own."""
    sock = socket.create_server(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.mark.parametrize("where", ["closed-port", "web-server", "silent-server", "no-gce-check"])
def test_nothing_found_names_everything_it_tried(machine: Machine, where: str, request: pytest.FixtureRequest) -> None:
    if where == "closed-port":
        machine.metadata_at("127.0.0.1:9")
    elif where == "web-server":
        machine.metadata_at(request.getfixturevalue("web_server"))
    elif where == "silent-server":
        machine.metadata_at(request.getfixturevalue("silent_server"))
    with pytest.raises(CredentialsError) as caught:
        find_credentials()
    message = str(caught.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS (not set)" in message
    assert "application_default_credentials.json: no such file" in message
    assert ("NO_GCE_CHECK" in message) == (where == "no-gce-check")
    assert "gcloud auth application-default login" in message


def test_forcing_a_source(machine: Machine) -> None:
    key = machine.key("env")
    machine.env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    machine.metadata_at(machine.emulator.host_port)
    assert find_credentials("metadata").source == "metadata"
    with pytest.raises(CredentialsError, match="no gcloud application default credentials"):
        find_credentials("application-default")
    adc = machine.adc_file(machine.home / ".config" / "gcloud")
    assert find_credentials("application-default").location == str(adc)
    assert find_credentials("file").location == str(key)
    machine.env.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    with pytest.raises(CredentialsError, match="is not set"):
        find_credentials("file")


def test_whoami_and_id_through_discovery_from_the_cli(machine: Machine, certs_url: str) -> None:
    machine.metadata_at(machine.emulator.host_port)
    env = {
        "HOME": str(machine.home),
        "GCE_METADATA_IP": machine.emulator.host_port,
        "GCE_METADATA_HOST": machine.emulator.host_port,
        "NO_GCE_CHECK": "",
    }
    report = gcptoken("whoami", "--format", "json", env=env)
    assert report.code == 0, report.err
    shown = json.loads(report.out)
    assert shown["source"] == "metadata"
    assert machine.emulator.state.default_account.email in shown["credential"]
    assert "metadata server answered" in shown["why"]
    text = gcptoken("whoami", env=env)
    assert "source:     metadata" in text.out and text.out.count("skipped:") == 2
    full = gcptoken("id", AUD, "--token-format", "full", "--format", "claims", env=env)
    assert full.code == 0, full.err
    assert json.loads(full.out)["google"]["compute_engine"]["project_id"] == machine.emulator.state.project_id


def test_cli_without_any_credential_fails_with_one_clear_line(machine: Machine) -> None:
    result = gcptoken("id", AUD, env={"HOME": str(machine.home), "NO_GCE_CHECK": "true"})
    assert (result.code, result.out) == (3, "")
    assert len(result.err.splitlines()) == 1
    assert "no credentials found" in result.err and "GOOGLE_APPLICATION_CREDENTIALS" in result.err
