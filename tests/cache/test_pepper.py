"""The cache's pepper (cache.pepper): memory-backed storage only, the user's own, never a file or
directory someone else planted; none at all rather than one in the home directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gcptoken.cache import pepper


@pytest.fixture
def shared_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for /dev/shm (a sticky, world-writable directory), and no XDG_RUNTIME_DIR."""
    directory = tmp_path / "shm"
    directory.mkdir()
    directory.chmod(0o1777)
    monkeypatch.setattr(pepper, "_SHARED_MEMORY", str(directory))
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    return directory


def test_the_runtime_directory_holds_it_private_and_stable() -> None:
    first = pepper.cache_pepper()
    assert first is not None and len(first) == 32 and pepper.cache_pepper() == first
    where = pepper.pepper_dir()
    assert where is not None and where.startswith(os.environ["XDG_RUNTIME_DIR"])
    assert os.stat(where).st_mode & 0o777 == 0o700
    assert os.stat(os.path.join(where, pepper.PEPPER_FILE)).st_mode & 0o777 == 0o600


def test_without_a_runtime_directory_it_is_in_shared_memory_never_home(shared_memory: Path) -> None:
    made = pepper.cache_pepper()
    assert made is not None and (shared_memory / f"gcptoken-{os.getuid()}" / pepper.PEPPER_FILE).read_bytes() == made


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory another user owns needs root")
def test_a_directory_another_user_made_there_is_refused(shared_memory: Path) -> None:
    planted = shared_memory / f"gcptoken-{os.getuid()}"
    planted.mkdir(mode=0o700)
    (planted / pepper.PEPPER_FILE).write_bytes(b"k" * 32)
    os.chown(planted, 65534, 65534)
    assert pepper.cache_pepper() is None  # and possession is proved by signing instead


def test_a_planted_symlink_or_short_file_gives_no_pepper(shared_memory: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"k" * 32)
    own = shared_memory / f"gcptoken-{os.getuid()}"
    own.symlink_to(tmp_path)
    assert pepper.cache_pepper() is None
    own.unlink()
    own.mkdir(mode=0o700)
    (own / pepper.PEPPER_FILE).write_bytes(b"short")
    assert pepper.cache_pepper() is None


def test_nowhere_to_keep_it_means_no_pepper(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr(pepper, "_SHARED_MEMORY", str(tmp_path / "absent"))
    assert pepper.pepper_dir() is None and pepper.cache_pepper() is None
