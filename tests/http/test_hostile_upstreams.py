"""Hostile bytes from upstreams end in one line: every JSON answer the client side parses (token
endpoint, STS, IAM Credentials, the metadata server, AWS IMDS, OIDC discovery, JWKS, tokeninfo, a
subject-token URL), every token and every error text it takes from one, served by a real HTTP
server on 127.0.0.1 that answers whatever bytes a test gives it (the emulator, being faithful,
never says such things). Each becomes the typed error of its step, in one printable line that
never repeats a token; the command line says that one line; the verifying middleware answers 503
and, during its failure backoff, does not ask again."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gcptoken import (
    CredentialsError,
    GcpTokenError,
    TokenRequestError,
    TransportError,
    Verifier,
    load_credentials,
)
from gcptoken.credentials import ImpersonatedCredentials, MetadataCredentials
from gcptoken.testing import EmulatorClient, write_key_file
from tests.cli.test_cli import gcptoken
from tests.http.hostile_server import HostileServer, hostile_server
from tests.integrations.test_middleware import asgi_server, wsgi_server

AUD = "https://svc-hostile.a.run.app"
SECRET = "ya29.SECRET-do-not-show-me"
TARGET = "target@proj.iam.gserviceaccount.com"
WIF_AUDIENCE = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x"
MAX_LINE = 1000  # what a one-line error may be at most, however long the upstream's words


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt(claims: dict[str, Any], kid: str = "k1") -> str:
    """A well-formed (unsigned in truth) JWT: enough for a client that only reads its exp, and for a
    verifier that must first fetch keys for its kid."""
    header = _b64(json.dumps({"alg": "RS256", "kid": kid, "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(b'signature')}"


ID_TOKEN = jwt({"aud": AUD, "exp": int(time.time()) + 3600, "iat": int(time.time())})
GOOD_ACCESS = json.dumps({"access_token": "ya29.source", "expires_in": 3600, "token_type": "Bearer"}).encode()

# Bodies no JSON parser of ours may choke on: each must become the step's typed error.
HOSTILE_JSON = [
    ("nested-arrays", b"[" * 100_000),
    ("nested-objects", b'{"a":' * 100_000),
    ("nested-inside", b'{"access_token": "' + SECRET.encode() + b'", "x": ' + b"[" * 100_000),
    ("1e400", b'{"access_token": "%s", "expires_in": 1e400, "token": "%s", "keys": [], "issuer": 1e400}'),
    ("NaN", b'{"access_token": "%s", "expires_in": NaN, "token": "%s", "keys": NaN}'),
    ("Infinity", b'{"access_token": "%s", "expires_in": Infinity, "token": "%s", "keys": Infinity}'),
    ("-Infinity", b'{"access_token": "%s", "expires_in": -Infinity, "token": "%s", "keys": -Infinity}'),
    ("5000-digits", b'{"access_token": "%s", "expires_in": ' + b"9" * 5000 + b', "token": "%s", "keys": []}'),
    ("400-digits", b'{"access_token": "%s", "expires_in": ' + b"9" * 400 + b', "token": "%s", "keys": []}'),
    ("lone-high-surrogate", b'{"access_token": "%s\\ud800", "token": "%s\\ud800", "keys": [], "issuer": "\\ud800"}'),
    ("lone-low-surrogate", b'{"access_token": "\\udc00%s", "token": "\\udc00%s", "keys": [], "issuer": "\\udc00"}'),
    ("invalid-utf8", b'{"access_token": "%s\xff\xfe", "token": "%s\xc3", "keys": [], "issuer": "\xff"}'),
    ("array", b'[{"access_token": "%s", "expires_in": 3600, "token": "%s"}]'),
    ("string", b'"%s"'),
    ("number", b"3600"),
    ("null", b"null"),
    ("empty", b""),
    ("html", b"<html><body>\x1b[2J%s</body></html>"),
]


def hostile_body(template: bytes) -> bytes:
    return template.replace(b"%s", SECRET.encode())


JSON_CASES = [pytest.param(hostile_body(body), id=name) for name, body in HOSTILE_JSON]


def assert_one_safe_line(message: str, *secrets: str) -> None:
    """One printable line (no CR, LF, ESC, DEL, C1 controls, lone surrogates), bounded, no secret."""
    assert message, "an empty message"
    assert message.isprintable(), repr(message)
    assert len(message) <= MAX_LINE, len(message)
    for secret in (SECRET, *secrets):
        assert secret not in message


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with hostile_server() as server:
        yield server


@pytest.fixture
def google_is(hostile: HostileServer, monkeypatch: pytest.MonkeyPatch) -> HostileServer:
    """Every Google endpoint the client calls goes to the hostile server."""
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", hostile.host_port)
    return hostile


@pytest.fixture(scope="module")
def key_info(gcptoken_emulator: EmulatorClient) -> dict[str, str]:
    """A real service-account key whose token_uri is Google's (so: the hostile server's); one for
    the module (a key costs an RSA key generation), never cached across tests (conftest clears)."""
    return {**gcptoken_emulator.new_key(), "token_uri": "https://oauth2.googleapis.com/token"}


@pytest.fixture
def key_file(key_info: dict[str, str], tmp_path: Path) -> Path:
    return write_key_file(tmp_path, key_info)


def external_account(tmp_path: Path, source: dict[str, Any], token_url: str) -> Path:
    path = tmp_path / "external.json"
    info = {
        "type": "external_account",
        "audience": WIF_AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": token_url,
        "credential_source": source,
    }
    path.write_text(json.dumps(info))
    return path


# -- every step that parses an upstream's JSON --------------------------------------------------------

Step = Callable[[HostileServer, Path, bytes], tuple[type[GcpTokenError], Callable[[], object]]]


def _token_endpoint_access(server: HostileServer, tmp_path: Path, body: bytes) -> Any:
    server.answer("/token", body)
    return TokenRequestError, lambda: load_credentials(tmp_path / "key.json").access_token()


def _token_endpoint_id(server: HostileServer, tmp_path: Path, body: bytes) -> Any:
    server.answer("/token", body)
    return TokenRequestError, lambda: load_credentials(tmp_path / "key.json").id_token(AUD)


def _sts(server: HostileServer, tmp_path: Path, body: bytes) -> Any:
    server.answer("/v1/token", body)
    (tmp_path / "subject.jwt").write_text(ID_TOKEN)
    path = external_account(tmp_path, {"file": str(tmp_path / "subject.jwt")}, f"{server.url}/v1/token")
    return TokenRequestError, lambda: load_credentials(path).access_token()


def _impersonated(method: str) -> Step:
    def step(server: HostileServer, tmp_path: Path, body: bytes) -> Any:
        server.answer("/token", GOOD_ACCESS)
        server.answer(f"/v1/projects/-/serviceAccounts/{TARGET}:{method}", body)
        credentials = ImpersonatedCredentials(load_credentials(tmp_path / "key.json"), TARGET)
        if method == "generateIdToken":
            return TokenRequestError, lambda: credentials.id_token(AUD)
        return TokenRequestError, credentials.access_token

    return step


def _metadata(server: HostileServer, tmp_path: Path, body: bytes) -> Any:
    server.answer("/computeMetadata/v1/instance/service-accounts/default/token", body)
    return TokenRequestError, lambda: MetadataCredentials(host=server.host_port).access_token(["s"])


def _tokeninfo(server: HostileServer, tmp_path: Path, body: bytes) -> Any:
    from gcptoken.verify.tokeninfo import tokeninfo

    server.answer("/tokeninfo", body)
    return TokenRequestError, lambda: tokeninfo(ID_TOKEN)


def _certs(server: HostileServer, tmp_path: Path, body: bytes) -> Any:
    server.answer("/certs", body)
    return TransportError, lambda: Verifier(AUD, certs=f"{server.url}/certs").verify(ID_TOKEN)


def _discovery(server: HostileServer, tmp_path: Path, body: bytes) -> Any:
    server.answer("/.well-known/openid-configuration", body)
    return TransportError, lambda: Verifier.oidc(server.url, AUD).verify(ID_TOKEN)


def _jwks_after_discovery(server: HostileServer, tmp_path: Path, body: bytes) -> Any:
    document = {"issuer": server.url, "jwks_uri": f"{server.url}/jwks"}
    server.answer("/.well-known/openid-configuration", json.dumps(document).encode())
    server.answer("/jwks", body)
    return TransportError, lambda: Verifier.oidc(server.url, AUD).verify(ID_TOKEN)


def _subject_token_url(server: HostileServer, tmp_path: Path, body: bytes) -> Any:
    server.answer("/subject", body)
    source = {
        "url": f"{server.url}/subject",
        "format": {"type": "json", "subject_token_field_name": "access_token"},
    }
    path = external_account(tmp_path, source, f"{server.url}/v1/token")
    return CredentialsError, lambda: load_credentials(path).access_token()


def _aws_imds(server: HostileServer, tmp_path: Path, body: bytes) -> Any:
    server.answer("/latest/meta-data/iam/security-credentials", b"role-name", content_type="text/plain")
    server.answer("/latest/meta-data/iam/security-credentials/role-name", body)
    source = {
        "environment_id": "aws1",
        "url": f"{server.url}/latest/meta-data/iam/security-credentials",
        "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity",
    }
    path = tmp_path / "aws.json"
    info = {
        "type": "external_account",
        "audience": WIF_AUDIENCE,
        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
        "token_url": f"{server.url}/v1/token",
        "credential_source": source,
    }
    path.write_text(json.dumps(info))
    return CredentialsError, lambda: load_credentials(path).access_token()


STEPS: dict[str, Step] = {
    "token-endpoint-access": _token_endpoint_access,
    "token-endpoint-id": _token_endpoint_id,
    "sts": _sts,
    "iam-generateIdToken": _impersonated("generateIdToken"),
    "iam-generateAccessToken": _impersonated("generateAccessToken"),
    "metadata": _metadata,
    "tokeninfo": _tokeninfo,
    "certs": _certs,
    "oidc-discovery": _discovery,
    "jwks": _jwks_after_discovery,
    "subject-token-url": _subject_token_url,
    "aws-imds": _aws_imds,
}


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.mark.usefixtures("aws_environment")
@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("body", JSON_CASES)
def test_hostile_json_is_the_steps_typed_error(
    google_is: HostileServer, key_file: Path, tmp_path: Path, step: str, body: bytes
) -> None:
    expected, call = STEPS[step](google_is, tmp_path, body)
    with pytest.raises(GcpTokenError) as caught:
        call()
    assert type(caught.value) is expected, f"{type(caught.value).__name__}: {caught.value}"
    assert_one_safe_line(str(caught.value))


# -- expires_in: Google sends an int or a string; absurd values are clamped, nonsense refused -------------

MAX_LIFETIME = 43200  # the longest an access token of Google's lives (IAM generateAccessToken, 12 h)


@pytest.mark.parametrize(
    ("expires_in", "expected"),
    [
        (b"3599", 3599),
        (b'"3599"', 3599),
        (b'" 3599 "', 3599),
        (b"3599.5", 3599),
        (b"0", 0),
        (b"1e300", MAX_LIFETIME),
        (b"9" * 300, MAX_LIFETIME),
        (b'"' + b"9" * 5000 + b'"', MAX_LIFETIME),
        (b"86400", MAX_LIFETIME),
    ],
    ids=["int", "string", "padded-string", "float", "zero", "1e300", "300-digits", "5000-digit-string", "a-day"],
)
def test_expires_in_as_int_or_string_and_absurd_values_clamped(
    google_is: HostileServer, key_file: Path, expires_in: bytes, expected: int
) -> None:
    google_is.answer("/token", b'{"access_token": "ya29.fine", "expires_in": ' + expires_in + b"}")
    before = time.time()
    token = load_credentials(key_file).access_token()
    assert token.value == "ya29.fine"
    assert before + expected - 2 <= token.expires_at.timestamp() <= time.time() + expected + 1


@pytest.mark.parametrize(
    "expires_in",
    [b"-1", b'"-1"', b"-1e300", b"true", b'"soon"', b'"1e3"', b'"3_600"', b'"\xd9\xa3"', b"[3600]", b"{}"],
    ids=["negative", "negative-string", "-1e300", "boolean", "word", "exponent-string", "underscores", "arabic-digit",
         "array", "object"],
)  # fmt: skip
def test_expires_in_that_is_no_number_of_seconds_is_refused(
    google_is: HostileServer, key_file: Path, expires_in: bytes
) -> None:
    google_is.answer("/token", b'{"access_token": "' + SECRET.encode() + b'", "expires_in": ' + expires_in + b"}")
    with pytest.raises(TokenRequestError, match="expires_in") as caught:
        load_credentials(key_file).access_token()
    assert_one_safe_line(str(caught.value))


@pytest.mark.parametrize("exp", [b"1e300", b"-5", b"1e20", b"true", b'"3600"'], ids=str)
def test_an_id_token_with_an_absurd_exp_is_refused(google_is: HostileServer, key_file: Path, exp: bytes) -> None:
    token = jwt({"aud": AUD, "exp": 0}).split(".")
    token[1] = _b64(b'{"aud": "' + AUD.encode() + b'", "exp": ' + exp + b"}")
    google_is.answer("/token", json.dumps({"id_token": ".".join(token)}).encode())
    with pytest.raises(TokenRequestError, match="exp") as caught:
        load_credentials(key_file).id_token(AUD)
    assert_one_safe_line(str(caught.value), ".".join(token))


@pytest.mark.parametrize(
    ("expire_time", "expected"),
    [
        ("9999-12-31T23:59:59Z", "clamped"),
        ("2099-01-01T00:00:00+00:00", "clamped"),
        ("2099-01-01T00:00:00", "refused"),  # no zone: no moment
        ("1969-12-31T23:59:59Z", "refused"),
        ("soon", "refused"),
        ("\u0000", "refused"),
    ],
    ids=["year-9999", "offset", "naive", "before-1970", "word", "NUL"],
)
def test_iam_expire_time_far_away_is_clamped_and_nonsense_refused(
    google_is: HostileServer, key_file: Path, expire_time: str, expected: str
) -> None:
    google_is.answer("/token", GOOD_ACCESS)
    answer = json.dumps({"accessToken": SECRET, "expireTime": expire_time}).encode()
    google_is.answer(f"/v1/projects/-/serviceAccounts/{TARGET}:generateAccessToken", answer)
    credentials = ImpersonatedCredentials(load_credentials(key_file), TARGET)
    if expected == "clamped":
        token = credentials.access_token()
        assert token.expires_at.timestamp() <= time.time() + MAX_LIFETIME + 1
        return
    with pytest.raises(TokenRequestError, match="expireTime") as caught:
        credentials.access_token()
    assert_one_safe_line(str(caught.value))


# -- tokens with control characters are no tokens --------------------------------------------------------

BAD_CHARACTERS = [
    pytest.param("\r\nX-Injected: yes", id="CRLF"),
    pytest.param("\n", id="LF"),
    pytest.param("\x1b[2J\x1b[31m", id="ESC"),
    pytest.param("\x00", id="NUL"),
    pytest.param("\x7f", id="DEL"),
    pytest.param("\x85", id="C1-NEL"),
    pytest.param("\x9b31m", id="C1-CSI"),
    pytest.param("\t", id="TAB"),
    pytest.param(" and more", id="space"),
    pytest.param("\u2028", id="line-separator"),
    pytest.param("é", id="non-ASCII"),
]


def _spoiled(token: str, bad: str) -> str:
    """``token`` with ``bad`` in its middle (no stripping can save it)."""
    return token[:-6] + bad + token[-6:]


def _token_answers(server: HostileServer, value: str, kind: str) -> None:
    """The upstream of ``kind`` answers ``value`` where a token belongs."""
    if kind == "access_token":
        server.answer("/token", json.dumps({"access_token": value, "expires_in": 3600}).encode())
    elif kind == "id_token":
        server.answer("/token", json.dumps({"id_token": value}).encode())
    elif kind == "iam-accessToken":
        server.answer("/token", GOOD_ACCESS)
        answer = {"accessToken": value, "expireTime": "2099-01-01T00:00:00Z"}
        server.answer(f"/v1/projects/-/serviceAccounts/{TARGET}:generateAccessToken", json.dumps(answer).encode())
    elif kind == "iam-token":
        server.answer("/token", GOOD_ACCESS)
        server.answer(f"/v1/projects/-/serviceAccounts/{TARGET}:generateIdToken", json.dumps({"token": value}).encode())
    else:
        path = "/computeMetadata/v1/instance/service-accounts/default/identity"
        server.answer(path, value.encode(), 200, "text/plain")


@pytest.mark.parametrize("bad", BAD_CHARACTERS)
@pytest.mark.parametrize("kind", ["access_token", "id_token", "iam-accessToken", "iam-token", "metadata-identity"])
def test_a_token_with_control_characters_is_refused(
    google_is: HostileServer, key_file: Path, kind: str, bad: str
) -> None:
    value = _spoiled(ID_TOKEN if kind in ("id_token", "iam-token", "metadata-identity") else SECRET, bad)
    _token_answers(google_is, value, kind)
    credentials = load_credentials(key_file)
    calls: dict[str, Callable[[], object]] = {
        "access_token": credentials.access_token,
        "id_token": lambda: credentials.id_token(AUD),
        "iam-accessToken": ImpersonatedCredentials(credentials, TARGET).access_token,
        "iam-token": lambda: ImpersonatedCredentials(credentials, TARGET).id_token(AUD),
        "metadata-identity": lambda: MetadataCredentials(host=google_is.host_port).id_token(AUD),
    }
    with pytest.raises(TokenRequestError) as caught:
        calls[kind]()
    assert_one_safe_line(str(caught.value), value, ID_TOKEN)


# -- error text from upstreams: escaped, capped ----------------------------------------------------------

NASTY_WORDS = "Bad\r\nthings\x1b[2J\x1b]0;owned\x07 happened\x7f\x9b31m\u202e" + "A" * 5000


def _refusals(server: HostileServer, words: str, where: str) -> None:
    if where == "oauth":
        body = {"error": "invalid_grant", "error_description": words}
        server.answer("/token", json.dumps(body).encode(), 400)
    elif where == "iam":
        server.answer("/token", GOOD_ACCESS)
        body2 = {"error": {"code": 403, "message": words, "status": "PERMISSION_DENIED"}}
        server.answer(f"/v1/projects/-/serviceAccounts/{TARGET}:generateIdToken", json.dumps(body2).encode(), 403)
    elif where == "oauth-error-code":
        server.answer("/token", json.dumps({"error": words}).encode(), 400)
    else:
        page = f"<html><title>{words}</title></html>".encode()
        server.answer("/computeMetadata/v1/instance/service-accounts/default/token", page, 502, "text/html")


@pytest.mark.parametrize("where", ["oauth", "oauth-error-code", "iam", "metadata-html"])
def test_upstream_error_text_is_escaped_and_capped(google_is: HostileServer, key_file: Path, where: str) -> None:
    _refusals(google_is, NASTY_WORDS, where)
    credentials = load_credentials(key_file)
    call: Callable[[], object] = credentials.access_token
    if where == "iam":
        call = lambda: ImpersonatedCredentials(credentials, TARGET).id_token(AUD)  # noqa: E731
    elif where == "metadata-html":
        call = lambda: MetadataCredentials(host=google_is.host_port).access_token(["s"])  # noqa: E731
    with pytest.raises(TokenRequestError) as caught:
        call()
    message = str(caught.value)
    assert_one_safe_line(message)
    assert "Bad\\r\\nthings\\x1b[2J" in message  # escaped, still readable
    assert message.count("A") < 400  # capped near 300 characters
    for text in (caught.value.description, caught.value.error):
        assert text is None or (text.isprintable() and len(text) <= 400)


# -- the command line: one line, whatever came back ----------------------------------------------------


def _cli_env(server: HostileServer, key_file: Path) -> dict[str, str]:
    return {"GCPTOKEN_EMULATOR_HOST": server.host_port, "GOOGLE_APPLICATION_CREDENTIALS": str(key_file)}


def assert_cli_one_line(result: Any, *secrets: str) -> None:
    assert result.code in (1, 3), (result.code, result.err)
    assert result.out == ""
    assert "Traceback" not in result.err
    lines = result.err.split("\n")
    assert len(lines) == 2 and lines[1] == "", repr(result.err)
    assert lines[0].startswith("gcptoken: ")
    assert_one_safe_line(lines[0], *secrets)


CLI_JSON_CASES = [
    pytest.param(hostile_body(body), id=name)
    for name, body in HOSTILE_JSON
    if name in ("nested-arrays", "1e400", "NaN", "5000-digits", "lone-high-surrogate", "invalid-utf8", "array", "html")
]


@pytest.mark.parametrize("command", [["id", AUD], ["access"]], ids=["id", "access"])
@pytest.mark.parametrize("body", CLI_JSON_CASES)
def test_cli_says_one_line_for_hostile_json(
    hostile: HostileServer, key_file: Path, command: list[str], body: bytes
) -> None:
    hostile.answer("/token", body)
    assert_cli_one_line(gcptoken(*command, "--no-cache", env=_cli_env(hostile, key_file)))


@pytest.mark.parametrize("bad", BAD_CHARACTERS)
@pytest.mark.parametrize("command", ["id", "access"])
def test_cli_format_header_is_one_line_or_an_error(
    hostile: HostileServer, key_file: Path, command: str, bad: str
) -> None:
    value = _spoiled(ID_TOKEN if command == "id" else SECRET, bad)
    _token_answers(hostile, value, "id_token" if command == "id" else "access_token")
    argv = ["id", AUD] if command == "id" else ["access"]
    result = gcptoken(*argv, "--format", "header", "--no-cache", env=_cli_env(hostile, key_file))
    assert_cli_one_line(result, value, ID_TOKEN)


def test_cli_format_header_is_exactly_one_line_for_a_good_token(hostile: HostileServer, key_file: Path) -> None:
    """The check above can pass: a fine token is printed, as one line."""
    _token_answers(hostile, SECRET, "access_token")
    result = gcptoken("access", "--format", "header", "--no-cache", env=_cli_env(hostile, key_file))
    assert (result.code, result.err, result.out) == (0, "", f"Authorization: Bearer {SECRET}\n")


@pytest.mark.parametrize("where", ["oauth", "oauth-error-code", "iam", "metadata-html"])
def test_cli_error_text_from_upstreams_is_one_escaped_line(hostile: HostileServer, key_file: Path, where: str) -> None:
    _refusals(hostile, NASTY_WORDS, where)
    env = _cli_env(hostile, key_file)
    if where == "iam":
        argv = ["id", AUD, "--impersonate-service-account", TARGET]
    elif where == "metadata-html":
        argv = ["access", "--source", "metadata"]
        env["GCE_METADATA_HOST"] = hostile.host_port
    else:
        argv = ["access"]
    result = gcptoken(*argv, "--no-cache", env=env)
    assert_cli_one_line(result)
    assert "\x1b" not in result.err and result.err.count("A") < 400


# -- the verifying middleware: 503, and one fetch during the backoff -------------------------------------

MIDDLEWARE_CASES = [
    pytest.param(hostile_body(body), id=name)
    for name, body in HOSTILE_JSON
    if name in ("nested-arrays", "nested-objects", "1e400", "NaN", "lone-high-surrogate", "invalid-utf8", "array")
]


@contextmanager
def _asgi(verifier: Verifier) -> Iterator[str]:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from gcptoken.integrations.asgi import IdTokenMiddleware

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    with asgi_server(IdTokenMiddleware(Starlette(routes=[Route("/", hello)]), verifier)) as url:
        yield url


@contextmanager
def _wsgi(verifier: Verifier) -> Iterator[str]:
    from gcptoken.integrations.wsgi import IdTokenWSGIMiddleware

    def hello(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"hello"]

    with wsgi_server(IdTokenWSGIMiddleware(hello, verifier)) as url:
        yield url


@pytest.mark.parametrize("serve", [_asgi, _wsgi], ids=["asgi", "wsgi"])
@pytest.mark.parametrize("body", MIDDLEWARE_CASES)
def test_middleware_answers_503_and_fetches_once_during_the_backoff(
    hostile: HostileServer, serve: Callable[[Verifier], Any], body: bytes
) -> None:
    hostile.answer("/certs", body)
    verifier = Verifier(AUD, certs=f"{hostile.url}/certs", failure_backoff=300, timeout=5)
    with serve(verifier) as url:
        answers = [httpx.get(url, headers={"Authorization": f"Bearer {ID_TOKEN}"}, timeout=10) for _ in range(6)]
    assert [answer.status_code for answer in answers] == [503] * 6, answers[0].text
    assert answers[0].json() == {"detail": "token signing keys are unavailable"}  # as every integration says it
    assert hostile.hits["/certs"] == 1  # one fetch; the rest answered from the remembered failure
