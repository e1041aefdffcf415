"""``gcptoken docker-config`` edits docker's config as a careful person would: only credHelpers
entries change, everything else stays in its order, the file is replaced atomically with its mode
kept (0600 when new), and a symlink, a malformed file, a conflicting entry or a folder others can
write is refused with one line and nothing changed."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from gcptoken.cli.main import main
from gcptoken.helpers import docker_config

EXISTING = {
    "auths": {"registry.example.com": {"auth": "dXNlcjpwYXNzd29yZA=="}},
    "credHelpers": {"ghcr.io": "ghcr-helper"},
    "psFormat": "table {{.ID}}",
    "zz-unknown": [1, {"nested": True}],
}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "docker"
    monkeypatch.setenv("DOCKER_CONFIG", str(path))
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["docker-config", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _write(folder: Path, content: str, mode: int = 0o644) -> Path:
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / "config.json"
    path.write_text(content)
    path.chmod(mode)
    return path


def _refused(capsys: pytest.CaptureFixture[str], code: int, *args: str) -> str:
    got, out, err = _run(capsys, *args)
    assert got == code
    assert out == ""
    assert err.startswith("gcptoken: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_a_new_file_is_private_and_holds_the_entries(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "us-docker.pkg.dev,https://europe-west1-docker.pkg.dev")
    assert code == 0
    assert "add: us-docker.pkg.dev, europe-west1-docker.pkg.dev" in out
    path = folder / "config.json"
    assert json.loads(path.read_text()) == {
        "credHelpers": {"us-docker.pkg.dev": "gcptoken", "europe-west1-docker.pkg.dev": "gcptoken"}
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_the_default_is_gclouds_list(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys)[0] == 0
    helpers = json.loads((folder / "config.json").read_text())["credHelpers"]
    assert list(helpers) == list(docker_config.DEFAULT_REGISTRIES)
    assert "gcr.io" in helpers and "marketplace.gcr.io" in helpers


def test_everything_else_is_kept_in_order_with_its_mode(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(folder, json.dumps(EXISTING), 0o640)
    assert _run(capsys, "us-docker.pkg.dev")[0] == 0
    written = json.loads(path.read_text())
    assert list(written) == list(EXISTING)
    assert {k: v for k, v in written.items() if k != "credHelpers"} == {
        k: v for k, v in EXISTING.items() if k != "credHelpers"
    }
    assert written["credHelpers"] == {"ghcr.io": "ghcr-helper", "us-docker.pkg.dev": "gcptoken"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(os.listdir(folder)) == ["config.json"]  # no temporary file left behind
    again = _run(capsys, "us-docker.pkg.dev")
    assert again[0] == 0 and "already gcptoken's: us-docker.pkg.dev" in again[1] and "nothing to change" in again[1]


def test_another_helpers_entry_needs_force(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = json.dumps({"credHelpers": {"gcr.io": "gcloud"}, "auths": {}})
    path = _write(folder, before)
    err = _refused(capsys, 2, "gcr.io", "us.gcr.io")
    assert "gcr.io (→ gcloud)" in err and "--force" in err
    assert path.read_text() == before  # not even us.gcr.io was added
    code, out, _ = _run(capsys, "--force", "gcr.io", "us.gcr.io")
    assert code == 0 and "replace: gcr.io (was gcloud)" in out
    assert json.loads(path.read_text())["credHelpers"] == {"gcr.io": "gcptoken", "us.gcr.io": "gcptoken"}


def test_dry_run_writes_nothing_and_shows_no_secret(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = json.dumps(EXISTING)
    path = _write(folder, before)
    code, out, _ = _run(capsys, "--dry-run", "us-docker.pkg.dev")
    assert code == 0 and "would add: us-docker.pkg.dev" in out
    assert "dXNlcjpwYXNzd29yZA" not in out
    assert path.read_text() == before
    missing = folder.parent / "nowhere"
    monkeypatch.setenv("DOCKER_CONFIG", str(missing))
    assert _run(capsys, "--dry-run", "gcr.io")[0] == 0
    assert not missing.exists()


def test_remove_takes_only_gcptokens_entries(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        folder, json.dumps({"credHelpers": {"gcr.io": "gcptoken", "ghcr.io": "ghcr-helper", "a.gcr.io": "gcptoken"}})
    )
    code, out, _ = _run(capsys, "--remove")
    assert code == 0 and "remove: gcr.io, a.gcr.io" in out
    assert json.loads(path.read_text()) == {"credHelpers": {"ghcr.io": "ghcr-helper"}}


def test_a_registry_the_helper_would_not_answer_is_refused(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The helper answers Google's hosts and GCPTOKEN_HELPER_HOSTS only: an entry for another host does nothing.
    err = _refused(capsys, 2, "registry.example.com:5000")
    assert "not a Google registry" in err and "GCPTOKEN_HELPER_HOSTS=registry.example.com:5000" in err
    assert not folder.exists()
    monkeypatch.setenv("GCPTOKEN_HELPER_HOSTS", "registry.example.com:5000")
    assert _run(capsys, "registry.example.com:5000")[0] == 0
    assert json.loads((folder / "config.json").read_text())["credHelpers"] == {"registry.example.com:5000": "gcptoken"}
    monkeypatch.delenv("GCPTOKEN_HELPER_HOSTS")
    assert _run(capsys, "--remove", "registry.example.com:5000")[0] == 0  # taking one out is always allowed


@pytest.mark.parametrize(
    "name", ["us-docker.pkg.dev/project/repo", "user@gcr.io", "http://gcr.io", "a b", "gcr.io:x:1"]
)
def test_a_registry_must_be_a_host(folder: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    _refused(capsys, 2, name)
    assert not folder.exists()


@pytest.mark.parametrize(
    "content",
    ["{not json", "[1, 2]", '{"credHelpers": ["gcr.io"]}', '{"credHelpers": {"gcr.io": 1}}', "\xff\xfe"],
)
def test_a_malformed_config_is_refused_unchanged(
    folder: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    path = _write(folder, content)
    before = path.read_bytes()
    err = _refused(capsys, 3, "gcr.io")
    assert str(path) in err and "nothing changed" in err
    assert path.read_bytes() == before


def test_an_empty_file_is_an_empty_config(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(folder, "\n", 0o600)
    assert _run(capsys, "gcr.io")[0] == 0
    assert json.loads(path.read_text()) == {"credHelpers": {"gcr.io": "gcptoken"}}


def test_a_planted_symlink_is_not_followed(folder: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text("{}")
    folder.mkdir(mode=0o700)
    (folder / "config.json").symlink_to(target)
    err = _refused(capsys, 3, "gcr.io")
    assert "symbolic link" in err
    assert target.read_text() == "{}"


def test_a_folder_others_can_write_is_refused(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(folder, "{}")
    folder.chmod(0o777)
    err = _refused(capsys, 3, "gcr.io")
    assert "writable by others" in err
    assert path.read_text() == "{}"


def test_a_config_that_is_not_a_file_is_refused(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "config.json").mkdir(parents=True)
    assert "is not a regular file" in _refused(capsys, 3, "gcr.io")


def test_a_failed_write_leaves_the_old_file_whole(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = json.dumps(EXISTING)
    path = _write(folder, before)

    def no_room(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_room)
    err = _refused(capsys, 3, "gcr.io")
    assert "cannot be written" in err
    assert path.read_text() == before
    assert sorted(os.listdir(folder)) == ["config.json"]


def test_an_unwritable_folder_is_refused(tmp_path: Path) -> None:
    # Root writes anywhere: as root, the refusal is seen as an unprivileged user (setpriv) whose folder it is.
    nobody = 65534
    as_user: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, "setpriv (util-linux) runs the command as an unprivileged user"
        as_user = [setpriv, f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups"]
    home = Path(tempfile.mkdtemp(prefix="gcptoken-docker-"))  # pytest's own tmp is 0700: nobody could not enter
    try:
        home.chmod(0o711)
        folder = home / "docker"
        path = _write(folder, "{}")
        if as_user:
            os.chown(folder, nobody, nobody)
            os.chown(path, nobody, nobody)
        folder.chmod(0o500)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "DOCKER_CONFIG": str(folder), "LANG": "C.UTF-8"}
        gcptoken = Path(sys.executable).parent / "gcptoken"
        result = subprocess.run(
            [*as_user, str(gcptoken), "docker-config", "gcr.io"], capture_output=True, text=True, env=env, check=False
        )
        assert (result.returncode, result.stdout) == (3, "")
        assert result.stderr == f"gcptoken: error: {path} cannot be written (permission denied): nothing changed\n"
        assert path.read_text() == "{}" and sorted(os.listdir(folder)) == ["config.json"]
    finally:
        (home / "docker").chmod(0o700)
        shutil.rmtree(home)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"a": 1e400}', "1e400"),  # a float Python reads as inf and writes as Infinity: docker drops the file
        ('{"a": NaN}', "NaN"),
        ('{"a": -Infinity}', "Infinity"),
        ('{"a": 1.0e5}', "1.0e5"),  # would come back 100000.0
        ('{"a": -0}', "-0"),
        ('{"auths": {}, "auths": {"x": {}}}', "appears twice"),
        ('{"a": "\\ud800"}', "lone UTF-16 surrogate"),  # cannot be written back as UTF-8
    ],
)
def test_a_file_that_would_not_be_written_back_exactly_is_refused(
    folder: Path, capsys: pytest.CaptureFixture[str], content: str, why: str
) -> None:
    path = _write(folder, content)
    err = _refused(capsys, 3, "gcr.io")
    assert why in err and "nothing changed" in err
    assert path.read_text() == content


def test_numbers_are_written_back_as_they_were(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(folder, '{"a": 12345678901234567890123, "b": 0.1, "c": 1e+22, "d": -3, "e": 2.5e-07}')
    assert _run(capsys, "gcr.io")[0] == 0
    text = path.read_text()
    for number in ("12345678901234567890123", "0.1", "1e+22", "-3", "2.5e-07"):
        assert f": {number}," in text or f": {number}\n" in text


def test_parallel_runs_lose_no_entry(folder: Path) -> None:
    _write(folder, json.dumps(EXISTING), 0o600)
    gcptoken = Path(sys.executable).parent / "gcptoken"
    env = {**os.environ, "DOCKER_CONFIG": str(folder)}
    hosts = [f"r{number}-docker.pkg.dev" for number in range(10)]
    runs = [
        subprocess.Popen([str(gcptoken), "docker-config", host], env=env, stdout=subprocess.DEVNULL) for host in hosts
    ]
    assert [run.wait(timeout=120) for run in runs] == [0] * 10
    helpers = json.loads((folder / "config.json").read_text())["credHelpers"]
    assert sorted(helpers) == sorted(["ghcr.io", *hosts])


def test_a_write_by_someone_else_meanwhile_is_kept(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # docker login rewrites the file (its own temp file and rename) after our read, before our rename.
    path = _write(folder, json.dumps({"auths": {}}), 0o600)
    real_fsync = os.fsync
    logins: list[int] = []

    def docker_login_meanwhile(fd: int) -> None:
        real_fsync(fd)
        if not logins:
            logins.append(1)
            other = folder / "config.json.docker-login"
            other.write_text(json.dumps({"auths": {"registry.example.com": {"auth": "dTpw"}}}))
            other.replace(path)

    monkeypatch.setattr(os, "fsync", docker_login_meanwhile)
    assert _run(capsys, "gcr.io")[0] == 0
    assert json.loads(path.read_text()) == {
        "auths": {"registry.example.com": {"auth": "dTpw"}},
        "credHelpers": {"gcr.io": "gcptoken"},
    }


def test_the_users_own_linked_folder_is_followed(
    folder: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dotfiles = tmp_path / "dotfiles" / "docker"
    dotfiles.mkdir(parents=True, mode=0o700)
    folder.symlink_to(dotfiles)  # ~/.docker -> ~/dotfiles/docker
    assert _run(capsys, "gcr.io")[0] == 0
    assert json.loads((dotfiles / "config.json").read_text()) == {"credHelpers": {"gcr.io": "gcptoken"}}
    assert folder.is_symlink()
    dotfiles.chmod(0o777)  # a folder others can write is not the user's alone, linked or not
    assert "writable by others" in _refused(capsys, 3, "us.gcr.io")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can make a symbolic link owned by another user")
def test_a_link_owned_by_another_user_is_not_followed(
    folder: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "planted"
    target.mkdir(mode=0o700)
    folder.symlink_to(target)
    os.lchown(folder, 65534, 65534)
    err = _refused(capsys, 3, "gcr.io")
    assert "symbolic link owned by uid 65534" in err
    assert list(target.iterdir()) == []
