"""``XDG_CACHE_HOME`` (and every XDG variable) counts only as an absolute path: "If an
implementation encounters a relative path in any of these variables it should consider the path
invalid and ignore it." (https://specifications.freedesktop.org/basedir-spec/latest/)"""

from __future__ import annotations

from pathlib import Path

import pytest

from gcptoken.cli.main import main
from gcptoken.credentials import x509_source


@pytest.mark.parametrize("value", ["relative/cache", ".", "", "~/cache"])
def test_a_relative_xdg_cache_home_is_ignored(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", value)
    assert main(["cache", "path"]) == 0
    assert capsys.readouterr().out == f"{tmp_path}/.cache/gcptoken/tokens.json\n"


def test_an_absolute_xdg_cache_home_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert main(["cache", "path"]) == 0
    assert capsys.readouterr().out == f"{tmp_path}/xdg/gcptoken/tokens.json\n"


def test_the_certificate_config_is_where_gcloud_keeps_it_whatever_xdg_config_home_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gcloud's configuration directory is $CLOUDSDK_CONFIG, else ~/.config/gcloud; gcloud never
    reads XDG_CONFIG_HOME (_GetGlobalConfigDir, googlecloudsdk/core/config.py)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("CLOUDSDK_CONFIG")
    for variable in x509_source.CONFIG_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    assert x509_source._config_path({}) == tmp_path / ".config" / "gcloud" / "certificate_config.json"
