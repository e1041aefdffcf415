"""The hosts every credential helper hands tokens to: Google's registries and the ones the user
names, never a look-alike, another port, or a host smuggled into a URL's user part."""

from __future__ import annotations

import pytest

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
