"""The hosts every credential helper hands tokens to: Google's registries and the ones the user
names, never a look-alike, another port, or a host smuggled into a URL's user part."""

from __future__ import annotations

import pytest

from gcptoken.helpers import hosts
from gcptoken.helpers.hosts import HOSTS_ENV, answers_for, host_of


@pytest.mark.parametrize(
    "server",
    [
        "us-docker.pkg.dev",
        "https://europe-west1-python.pkg.dev/project/repo/simple/",
        "us-python.pkg.dev:443",
        "gcr.io",
        "https://gcr.io/v2/",
        "eu.gcr.io",
        "GCR.IO",
        "gcr.io.",
        "gcr.io\n",  # as a helper reads it from stdin
        "oauth2accesstoken@us-python.pkg.dev/p/r/simple",
    ],
)
def test_googles_registries_are_answered(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HOSTS_ENV, raising=False)
    assert answers_for(server)


@pytest.mark.parametrize(
    "server",
    [
        "pkg.dev",
        "evilpkg.dev",
        "us-docker.pkg.dev.evil.example",
        "us-docker.pkg.dev:5000",
        "gcr.io:8443",
        "notgcr.io",
        "docker.io",
        "https://index-docker.io/v1/",
        "https://pypi.org/simple/",
        "https://evil.example/?next=https://gcr.io/",
        "https://evil.example#gcr.io",
        "https://gcr.io@evil.example/",
        "gcr.io:443x",
        "",
        "   ",
        "gcr .io",
        "gcr.io\x00",
        "http://us-python.pkg.dev/p/r/simple/",  # plain HTTP: a token would cross the wire readable
        "HTTP://gcr.io/v2/",
        "ftp://gcr.io",
        "ws://us-docker.pkg.dev",
        "https://[::1",  # brackets that do not close, or close on something else: no host
        "[::1]x",
        "https://]:",
    ],
)
def test_other_hosts_are_not(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HOSTS_ENV, raising=False)
    assert not answers_for(server)


def test_the_user_adds_hosts_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HOSTS_ENV, " 127.0.0.1:5999 , registry.internal,*.corp.example, [::1]:7000,")
    assert answers_for("127.0.0.1:5999")
    assert answers_for("https://127.0.0.1:5999/p/r/simple/")
    assert not answers_for("127.0.0.1:6000")
    assert not answers_for("127.0.0.1")
    assert answers_for("registry.internal")
    assert answers_for("https://registry.internal:443/v2/")
    assert not answers_for("registry.internal:8080")
    assert answers_for("a.corp.example")
    assert not answers_for("corp.example")
    assert answers_for("[::1]:7000")
    assert not answers_for("[::1]:7001")
    assert answers_for("gcr.io")  # Google's stay answered


def test_host_of_keeps_the_authority_only() -> None:
    assert host_of("https://User:pw@Us-Docker.PKG.dev:443/v2/x?y#z") == "us-docker.pkg.dev:443"
    assert host_of("gcr.io/project/image") == "gcr.io"
    assert host_of("https://[::1]:7000/x") == "[::1]:7000"
    assert host_of("bad\x00host") == ""


def test_a_bare_host_is_answered_only_where_asked_for_by_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    # docker hands a helper a bare host; pip and uv ask a keyring for the bare host only after
    # the URL (http:// included) got nothing, so the keyring backend wants the https URL itself.
    monkeypatch.setenv(HOSTS_ENV, "127.0.0.1")
    for server in ("us-python.pkg.dev", "127.0.0.1", "gcr.io:443"):
        assert answers_for(server)
        assert not answers_for(server, url_only=True)
    assert answers_for("https://us-python.pkg.dev/p/r/simple/", url_only=True)
    assert answers_for("HTTPS://127.0.0.1/p/r/simple/", url_only=True)
    assert not answers_for("http://127.0.0.1/p/r/simple/", url_only=True)
    assert not answers_for("http://127.0.0.1:443/p/r/simple/")


@pytest.fixture
def warnings_anew() -> None:
    hosts._warned.clear()  # each entry is told once per process: each test is its own


@pytest.mark.usefixtures("warnings_anew")
@pytest.mark.parametrize(
    ("entry", "server"),
    [
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443/p/r/simple/"),
        ("127.0.0.1:8443/", "127.0.0.1:8443"),
        ("HTTPS://Registry.Internal/p/r/simple/", "registry.internal"),
        ("https://*.corp.example", "a.corp.example:443"),
    ],
)
def test_a_url_entry_means_its_authority(
    entry: str, server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(HOSTS_ENV, entry)
    assert answers_for(server)
    assert not answers_for("127.0.0.1:8444") and not answers_for("https://b.internal")
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("warnings_anew")
@pytest.mark.parametrize(
    "entry",
    [
        "http://127.0.0.1:8080",
        "ftp://127.0.0.1",
        "alice@127.0.0.1",
        "127.0.0.1:80x",
        "bad host",
        "h\x1b[2J",
        "[::1",
        "]:",
        "*",
        "*.",
        "**.com",
        "*.*",
        "*.com",
        "evil.example:99999",
        "evil.example:0",
        "b\u00fccher.de",
    ],
)
def test_an_entry_no_server_can_match_is_ignored_with_one_warning(
    entry: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(HOSTS_ENV, f"{entry},127.0.0.2")
    assert not answers_for("127.0.0.1:8080") and not answers_for("http://127.0.0.1:8080/")
    assert not answers_for("https://127.0.0.1/") and not answers_for("127.0.0.1")
    assert answers_for("127.0.0.2")  # the good entries still count
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"gcptoken: ignoring {HOSTS_ENV} entry ")
    assert "\x1b" not in lines[0]  # shown escaped: never a control character on a terminal
    assert "\\\\" not in lines[0]  # escaped once, not twice
