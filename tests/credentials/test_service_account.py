"""The service-account key source through the library API, over real HTTP to the emulator."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gcptoken
from gcptoken import (
    CredentialsError,
    InvalidArgumentError,
    TokenRequestError,
    TransportError,
    Verifier,
    decode,
    load_credentials,
)
from gcptoken.testing import EmulatorClient, write_key_file
from tests.scopes import S1

AUD = "https://svc-lib.a.run.app"


def test_id_token_end_to_end(
    emulator: EmulatorClient, key_path: Path, key_info: dict[str, str], certs_url: str
) -> None:
    token = load_credentials(key_path).id_token(AUD)
    assert token.kind == "id_token"
    claims = Verifier(AUD, certs=certs_url).verify(token.value)
    assert claims == token.claims
    assert claims["email"] == key_info["client_email"]
    assert token.expires_at.timestamp() == claims["exp"]
    assert 3590 < token.expires_in() <= 3600
    assert len(emulator.token_requests_by(key_info["client_email"])) == 1


def test_access_token_end_to_end(emulator: EmulatorClient, key_path: Path, key_info: dict[str, str]) -> None:
    token = load_credentials(key_path).access_token(["https://www.googleapis.com/auth/devstorage.read_only"])
    assert token.kind == "access_token"
    assert token.value.startswith("ya29.")
    assert token.claims == {}
    assert 3590 < token.expires_in() <= 3600
    (entry,) = emulator.token_requests_by(key_info["client_email"])
    assert entry["detail"]["assertion"]["claims"]["scope"] == "https://www.googleapis.com/auth/devstorage.read_only"


def test_default_scope_is_cloud_platform(emulator: EmulatorClient, key_path: Path, key_info: dict[str, str]) -> None:
    load_credentials(key_path).access_token()
    (entry,) = emulator.token_requests_by(key_info["client_email"])
    assert entry["detail"]["assertion"]["claims"]["scope"] == "https://www.googleapis.com/auth/cloud-platform"


def test_assertion_claims_and_header(emulator: EmulatorClient, key_path: Path, key_info: dict[str, str]) -> None:
    before = time.time()
    load_credentials(key_path).id_token(AUD)
    (entry,) = emulator.token_requests_by(key_info["client_email"])
    header, claims = entry["detail"]["assertion"]["header"], entry["detail"]["assertion"]["claims"]
    assert header == {"alg": "RS256", "kid": key_info["private_key_id"], "typ": "JWT"}
    assert claims["iss"] == key_info["client_email"]
    assert claims["aud"] == "https://oauth2.googleapis.com/token"
    assert claims["target_audience"] == AUD
    assert abs(claims["iat"] - before) < 5
    assert claims["exp"] - claims["iat"] == 3600


def test_path_defaults_to_google_application_credentials(
    key_path: Path, monkeypatch: pytest.MonkeyPatch, certs_url: str
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_path))
    token = load_credentials().id_token(AUD)
    assert Verifier(AUD, certs=certs_url).verify(token.value)["aud"] == AUD


def test_emulator_host_redirects_googles_token_uri(
    emulator: EmulatorClient, key_info: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_downloaded = {**key_info, "token_uri": "https://oauth2.googleapis.com/token"}
    path = write_key_file(tmp_path, as_downloaded)
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    token = load_credentials(path).id_token(AUD)
    assert token.claims["email"] == key_info["client_email"]
    assert len(emulator.token_requests_by(key_info["client_email"])) == 1
    # The Verifier's default (Google's v3 certs URL) follows the same variable.
    assert Verifier(AUD).verify(token.value)["aud"] == AUD


def test_async_matches_sync(emulator: EmulatorClient, key_path: Path, key_info: dict[str, str], certs_url: str) -> None:
    credentials = load_credentials(key_path)

    async def both() -> tuple[gcptoken.Token, gcptoken.Token]:
        return await asyncio.gather(credentials.id_token_async(AUD), credentials.access_token_async([S1]))

    id_token, access = asyncio.run(both())
    assert Verifier(AUD, certs=certs_url).verify(id_token.value)["email"] == key_info["client_email"]
    assert access.value.startswith("ya29.")
    assert len(emulator.token_requests_by(key_info["client_email"])) == 2


def test_token_repr_never_shows_the_value(key_path: Path) -> None:
    token = load_credentials(key_path).id_token(AUD)
    assert token.value not in repr(token)
    assert token.value not in str(token)
    assert "redacted" in repr(token)


def test_decode_reads_header_and_claims_unverified(key_path: Path) -> None:
    token = load_credentials(key_path).id_token(AUD)
    decoded = decode(token.value)
    assert decoded.header["alg"] == "RS256"
    assert decoded.claims["aud"] == AUD


def test_private_key_is_not_in_the_credentials_repr(key_path: Path, key_info: dict[str, str]) -> None:
    credentials = load_credentials(key_path)
    assert key_info["private_key"][40:80] not in repr(credentials.__dict__)


# -- bad input ---------------------------------------------------------------------------------


def _write(tmp_path: Path, content: str | dict[str, Any]) -> Path:
    path = tmp_path / "creds.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ("[1, 2]", "not a JSON object"),
        ({"client_email": "x"}, "no 'type'"),
        ({"type": "martian"}, "unsupported credential type 'martian'"),
        ({"type": "service_account", "client_email": "a@b", "private_key_id": "k"}, "no 'private_key'"),
        (
            {
                "type": "service_account",
                "client_email": "a@b",
                "private_key_id": "k",
                "private_key": "hunter2",
            },
            "not a PEM",
        ),
        (
            {
                "type": "service_account",
                "private_key_id": "k",
                "private_key": "-----BEGIN PRIVATE KEY-----\n",
            },
            "client_email",
        ),
    ],
    ids=["not-json", "array", "no-type", "unknown-type", "no-key", "key-not-pem", "no-email"],
)
def test_unusable_credential_files(tmp_path: Path, content: str | dict[str, Any], message: str) -> None:
    with pytest.raises(CredentialsError, match=message) as caught:
        load_credentials(_write(tmp_path, content)).id_token(AUD)
    assert "hunter2" not in str(caught.value)


def test_broken_private_key_fails_before_any_request(
    emulator: EmulatorClient, key_info: dict[str, str], tmp_path: Path
) -> None:
    broken = {
        **key_info,
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIBroken\n-----END PRIVATE KEY-----\n",
    }
    with pytest.raises(CredentialsError, match="'private_key' is not") as caught:
        load_credentials(_write(tmp_path, broken)).id_token(AUD)
    assert "MIIBroken" not in str(caught.value)
    assert str(_write(tmp_path, broken)) in str(caught.value)
    assert emulator.token_requests_by(key_info["client_email"]) == []


def test_missing_file_and_no_credentials(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="does not exist"):
        load_credentials(tmp_path / "absent.json")
    with pytest.raises(CredentialsError, match="is a directory"):
        load_credentials(tmp_path)
    with pytest.raises(CredentialsError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        load_credentials()


@pytest.mark.parametrize("audience", ["", "   "])
def test_empty_audience(key_path: Path, audience: str) -> None:
    with pytest.raises(InvalidArgumentError, match="audience"):
        load_credentials(key_path).id_token(audience)


def test_empty_scopes(key_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="scope"):
        load_credentials(key_path).access_token([" "])


def test_a_key_the_server_does_not_know(emulator: EmulatorClient, key_info: dict[str, str], tmp_path: Path) -> None:
    emulator.state.delete_key(key_info["client_email"], key_info["private_key_id"])
    with pytest.raises(TokenRequestError) as caught:
        load_credentials(_write(tmp_path, key_info)).id_token(AUD)
    assert caught.value.status == 400
    assert caught.value.error == "invalid_grant"
    assert caught.value.description == "Invalid JWT Signature."
    assert "Invalid JWT Signature." in str(caught.value)


def test_unreachable_endpoint_fails_within_the_timeout(key_info: dict[str, str], tmp_path: Path) -> None:
    path = _write(tmp_path, {**key_info, "token_uri": "http://127.0.0.1:9/token"})
    with pytest.raises(TransportError, match=r"cannot reach .*: connection refused"):
        load_credentials(path).id_token(AUD, timeout=2)


class RawServer:
    """A TCP server that answers every request with fixed bytes: for responses no real server sends."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/token"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self._read_request(conn)
                conn.sendall(self.response)

    @staticmethod
    def _read_request(conn: socket.socket) -> None:
        """Read the whole request first: closing with unread bytes would send a reset instead."""
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
            0,
        )
        while len(body) < length:
            body += conn.recv(65536)

    def __enter__(self) -> RawServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


@pytest.fixture
def raw_server(request: pytest.FixtureRequest) -> Iterator[RawServer]:
    with RawServer(request.param) as server:
        yield server


def _http(status: str, body: bytes, length: int | None = None, content_type: str = "application/json") -> bytes:
    size = len(body) if length is None else length
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    ).encode() + body


@pytest.mark.parametrize(
    ("raw_server", "error", "fragment"),
    [
        (
            _http("200 OK", b"<html>hello</html>", content_type="text/html"),
            TokenRequestError,
            "not a JSON object",
        ),
        (_http("200 OK", b'{"id_tok', length=200), TransportError, "broke off the HTTP exchange"),
        (
            _http("502 Bad Gateway", b"upstream down", content_type="text/plain"),
            TokenRequestError,
            "HTTP 502",
        ),
        (_http("200 OK", b'{"access_token": "ya29.x"}'), TokenRequestError, "without a 'id_token'"),
        (_http("200 OK", b'{"id_token": "not.a.jwt"}'), TokenRequestError, "not a JWT"),
        (
            _http("400 Bad Request", b'{"error": "invalid_grant", "error_description": "Bad things."}'),
            TokenRequestError,
            "invalid_grant: Bad things.",
        ),
        (b"garbage\r\n\r\n", TransportError, "broke off the HTTP exchange"),
    ],
    indirect=["raw_server"],
    ids=["html", "truncated", "502-text", "no-id-token", "id-token-not-jwt", "google-error", "not-http"],
)
def test_bad_responses(
    raw_server: RawServer, key_info: dict[str, str], tmp_path: Path, error: type[Exception], fragment: str
) -> None:
    path = _write(tmp_path, {**key_info, "token_uri": raw_server.url})
    with pytest.raises(error, match=fragment):
        load_credentials(path).id_token(AUD, timeout=5)


@pytest.mark.parametrize(
    "raw_server",
    [_http("200 OK", b'{"access_token": "ya29.abc", "expires_in": "1800", "token_type": "Bearer"}')],
    indirect=True,
)
def test_expires_in_may_be_a_string(raw_server: RawServer, key_info: dict[str, str], tmp_path: Path) -> None:
    path = _write(tmp_path, {**key_info, "token_uri": raw_server.url})
    token = load_credentials(path).access_token()
    assert 1790 < token.expires_in() <= 1800


def test_public_api_is_explicit_and_sorted() -> None:
    assert gcptoken.__all__ == sorted(gcptoken.__all__)
    for name in gcptoken.__all__:
        assert hasattr(gcptoken, name), name
    public = {name for name in vars(gcptoken) if not name.startswith("_") and name[0].isupper()}
    assert public <= set(gcptoken.__all__)


def test_every_credentials_class_is_exported() -> None:
    from gcptoken import credentials

    classes = {name for name in credentials.__all__ if name.endswith("Credentials")}
    assert classes <= set(gcptoken.__all__)
