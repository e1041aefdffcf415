"""One audience rule and one scope-list rule for the library, every command and the integrations:
``ftp://x`` and an empty ``--scopes`` are refused everywhere in one line (exit 2) or a typed error,
before anything is sent; a URL audience with a path or query works but is noted once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gcptoken import InvalidArgumentError, ServiceAccountCredentials, checks, load_credentials
from gcptoken.cli import fast
from gcptoken.cli.main import main
from gcptoken.credentials import base as credentials_base
from gcptoken.integrations import httpx_auth, requests_auth
from gcptoken.jose import compact
from gcptoken.testing import EmulatorClient

AUD = "https://svc-rule.a.run.app"
WITH_PATH = "https://svc-rule.a.run.app/path?x=1"
IAP_CLIENT = "123-abc.apps.googleusercontent.com"
POOL = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x"


@pytest.fixture(autouse=True)
def _env(emulator: EmulatorClient, key_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_path))
    monkeypatch.setattr(checks, "_NOTED", set())  # each test sees its own first note
    monkeypatch.setattr(credentials_base, "_CHECKED_AUDIENCES", {})


def _sent(emulator: EmulatorClient) -> int:
    return sum(1 for entry in emulator.requests() if not entry["path"].startswith("/emulator/"))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


BAD_AUDIENCE = [
    ["id", "ftp://x"],
    ["id", "--audience", "ftp://x"],
    ["jwt", "--audience", "ftp://x"],
    ["call", AUD, "--audience", "ftp://x"],
    ["curl", AUD, "--audience", "ftp://x"],
    ["proxy", AUD, "--audience", "ftp://x"],
]


@pytest.mark.parametrize("argv", BAD_AUDIENCE, ids=lambda argv: "-".join(argv[:2]))
def test_the_commands_refuse_what_the_library_refuses(
    emulator: EmulatorClient, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    before = _sent(emulator)
    code, out, err = _run(capsys, *argv)
    assert (code, out, len(err)) == (2, "", 1) and "must start with http:// or https://" in err[0], err
    assert _sent(emulator) == before


MALFORMED = ["https:/x", "http:svc-rule.a.run.app", "HTTPS:/x//y"]


@pytest.mark.parametrize("audience", MALFORMED)
@pytest.mark.parametrize("argv", BAD_AUDIENCE, ids=lambda argv: "-".join(argv[:2]))
def test_a_url_with_a_malformed_scheme_is_refused_everywhere(
    emulator: EmulatorClient,
    capsys: pytest.CaptureFixture[str],
    key_path: Path,
    argv: list[str],
    audience: str,
) -> None:
    """``https:/x`` starts like a URL and is not one: refused, not minted as a custom audience."""
    before = _sent(emulator)
    code, out, err = _run(capsys, *[audience if arg == "ftp://x" else arg for arg in argv])
    assert (code, out, len(err)) == (2, "", 1) and "is a malformed URL: write" in err[0], err
    assert _sent(emulator) == before
    credentials = load_credentials(key_path)
    assert isinstance(credentials, ServiceAccountCredentials)
    for refusal in (
        lambda: credentials.id_token(audience),
        lambda: credentials.self_signed_jwt(audience),
        lambda: httpx_auth.IdTokenAuth(credentials, audience=audience),
    ):
        with pytest.raises(InvalidArgumentError, match="malformed URL"):
            refusal()


def test_the_library_and_integrations_refuse_the_same(key_path: Path) -> None:
    credentials = load_credentials(key_path)
    assert isinstance(credentials, ServiceAccountCredentials)
    refusals: list[Callable[[], object]] = [
        lambda: credentials.id_token("ftp://x"),
        lambda: asyncio.run(credentials.id_token_async("ftp://x")),
        lambda: credentials.self_signed_jwt("ftp://x"),
        lambda: httpx_auth.IdTokenAuth(credentials, audience="ftp://x"),
        lambda: requests_auth.IdTokenAuth(credentials, audience="ftp://x"),
        lambda: httpx_auth.IdTokenAuth(credentials, audience=""),  # was: the URL's, silently
    ]
    for refusal in refusals:
        with pytest.raises(InvalidArgumentError):
            refusal()


def test_non_url_audiences_work_without_a_note(
    key_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    for audience in (IAP_CLIENT, POOL, f"{AUD}/", "https://us-central1-p.cloudfunctions.net/fn"):
        code, out, err = _run(capsys, "id", audience, "--format", "claims")
        assert code == 0 and err == [] and f'"aud": "{audience}"' in out, err
        assert load_credentials(key_path).id_token(audience).claims["aud"] == audience
    assert caplog.records == []


def test_a_url_audience_with_a_path_works_and_is_noted_once(
    key_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    code, out, err = _run(capsys, "id", WITH_PATH)
    assert code == 0 and compact.parse(out.strip()).claims["aud"] == WITH_PATH
    assert len(err) == 1 and err[0].startswith("gcptoken: note: the audience has a path and a query"), err
    assert f"Cloud Run checks only {AUD} unless" in err[0] and checks.CUSTOM_AUDIENCES_DOC in err[0]
    # The library says it on its logger, not on stderr: once per audience per process.
    checks._NOTED.clear()
    credentials_base._CHECKED_AUDIENCES.clear()
    with caplog.at_level(logging.WARNING, logger="gcptoken"):
        for _ in range(2):
            load_credentials(key_path).id_token("https://user@svc-rule.a.run.app#top", use_cache=False)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["the audience has a fragment and user info"]


def test_a_cache_hit_says_the_note_too(
    emulator: EmulatorClient, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cached path (cli.fast) answers before the full command line: it says the same note, once,
    and only for an audience that has one."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for audience, noted in ((WITH_PATH, True), (AUD, False)):
        code, first, err = _run(capsys, "id", audience)  # a miss: the full command line fills the cache
        assert code == 0 and len(err) == int(noted), err
        sent = _sent(emulator)
        assert fast.answer_from_cache(["id", audience]) == 0
        out, said = capsys.readouterr()
        assert out == first and _sent(emulator) == sent  # answered from the cache
        assert said.splitlines() == err, said


def test_the_proxy_notes_its_audience_before_anything_else(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "proxy", AUD, "--audience", WITH_PATH, "--credentials", "/nonexistent.json")
    assert code == 3 and len(err) == 2 and err[0].startswith("gcptoken: note: the audience has a path"), err


EMPTY_SCOPES = [
    ["access", "--scopes", ""],
    ["access", "--scopes", " , ,"],
    ["jwt", "--scopes", ","],
    ["login", "--scopes", ""],
    ["metadata-server", "--scopes", " "],
]


@pytest.mark.parametrize("argv", EMPTY_SCOPES, ids=lambda argv: f"{argv[0]}-{argv[-1]!r}")
def test_empty_scopes_are_a_usage_error(
    emulator: EmulatorClient, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    before = _sent(emulator)
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    out, err = capsys.readouterr()
    assert (stopped.value.code, out, len(err.splitlines())) == (2, "", 1)
    assert "argument --scopes: the list names no scope" in err, err
    assert _sent(emulator) == before


def test_the_library_refuses_empty_scopes(key_path: Path) -> None:
    credentials = load_credentials(key_path)
    assert isinstance(credentials, ServiceAccountCredentials)
    for scopes in ([], "", " , ", [" "], ["a\x00b"]):
        with pytest.raises(InvalidArgumentError):
            credentials.access_token(scopes)
        with pytest.raises(InvalidArgumentError):
            credentials.self_signed_jwt(scopes=scopes)
        with pytest.raises(InvalidArgumentError):
            httpx_auth.AccessTokenAuth(credentials, scopes=scopes)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["jwt"], "gcptoken jwt needs one of --audience (the API, e.g. https://pubsub.googleapis.com/) or --scopes"),
        (["jwt", "--audience", AUD, "--scopes", "openid"], "one of --audience or --scopes, not both"),
    ],
)
def test_jwt_needs_one_of(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")  # said before any credential is looked for
    code, out, err = _run(capsys, *argv)
    assert (code, out, len(err)) == (2, "", 1) and fragment in err[0], err


def test_access_scopes_reach_google_as_given(emulator: EmulatorClient, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "access", "--scopes", " openid,, email ", "--no-cache")
    info = httpx.post(f"{emulator.url}/tokeninfo", data={"access_token": out.strip()}).json()
    assert code == 0 and info["scope"] == "openid email"
