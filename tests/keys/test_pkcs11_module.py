"""Which PKCS#11 module is loaded, and the refusal to load one someone else could have written:
loading a module runs its code in this process."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gcptoken.errors import HardwareKeyError
from gcptoken.keys.pkcs11_module import MODULE_ENV, checked_module, choose_module, p11_kit_proxy
from gcptoken.keys.pkcs11_uri import parse_uri
from tests.keys.softhsm import missing, softhsm_module

NOBODY = 65534


def _module_copy(directory: Path, mode: int = 0o644) -> Path:
    module = softhsm_module()
    if module is None:
        pytest.skip("SoftHSM2 is not installed (Debian: apt-get install softhsm2)")
    copy = directory / "libsofthsm2.so"
    shutil.copyfile(module, copy)
    copy.chmod(mode)
    return copy


def test_the_uri_module_path_comes_first_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODULE_ENV, "/from/env.so")
    assert choose_module(parse_uri("pkcs11:?module-path=/from/uri.so")) == "/from/uri.so"
    assert choose_module(parse_uri("pkcs11:token=t")) == "/from/env.so"


def test_without_either_p11_kits_proxy_or_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODULE_ENV, raising=False)
    proxy = p11_kit_proxy()
    if proxy is not None:
        assert choose_module(parse_uri("pkcs11:token=t")) == proxy
        return
    with pytest.raises(HardwareKeyError, match=r"^no PKCS#11 module to load: add module-path=") as caught:
        choose_module(parse_uri("pkcs11:token=t"))
    assert MODULE_ENV in str(caught.value) and "p11-kit" in str(caught.value)


def test_module_name_alone_is_not_searched_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODULE_ENV, raising=False)
    with pytest.raises(HardwareKeyError, match="module-name, which gcptoken does not search for"):
        choose_module(parse_uri("pkcs11:?module-name=softhsm2"))


@pytest.mark.parametrize("where", ["uri", "env"])
def test_a_relative_module_path_is_refused(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODULE_ENV, "libsofthsm2.so")
    uri = parse_uri("pkcs11:?module-path=lib/libsofthsm2.so" if where == "uri" else "pkcs11:")
    with pytest.raises(HardwareKeyError, match="must be absolute"):
        choose_module(uri)
    with pytest.raises(HardwareKeyError, match="must be absolute"):
        checked_module("libsofthsm2.so")


def test_the_packaged_module_through_its_symlink_is_accepted() -> None:
    module = softhsm_module()
    if module is None:
        pytest.skip("SoftHSM2 is not installed (Debian: apt-get install softhsm2)")
    assert checked_module(module) == os.path.realpath(module)


def test_a_private_copy_is_accepted(module_dir: Path) -> None:
    copy = _module_copy(module_dir)
    assert checked_module(str(copy)) == str(copy)


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_a_group_or_world_writable_module_is_refused(module_dir: Path, mode: int) -> None:
    copy = _module_copy(module_dir, mode)
    with pytest.raises(HardwareKeyError, match="is group- or world-writable") as caught:
        checked_module(str(copy))
    assert str(caught.value).startswith(f"refusing PKCS#11 module {copy}")


def test_a_module_in_a_writable_directory_is_refused(module_dir: Path) -> None:
    copy = _module_copy(module_dir)
    module_dir.chmod(0o777)
    with pytest.raises(HardwareKeyError, match=rf"the directory {module_dir} on its path is writable by others"):
        checked_module(str(copy))


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file owned by someone else needs root")
def test_a_symlink_planted_by_someone_else_is_refused(module_dir: Path) -> None:
    copy = _module_copy(module_dir)
    link = module_dir / "planted.so"
    link.symlink_to(copy)
    os.lchown(link, NOBODY, NOBODY)
    with pytest.raises(HardwareKeyError, match=f"{link} is a symlink owned by uid {NOBODY}, not by root or you"):
        checked_module(str(link))
    os.lchown(link, 0, 0)
    assert checked_module(str(link)) == str(copy)  # the same link, ours: fine


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file owned by someone else needs root")
def test_a_module_or_directory_owned_by_someone_else_is_refused(module_dir: Path) -> None:
    copy = _module_copy(module_dir)
    os.chown(copy, NOBODY, NOBODY)
    with pytest.raises(HardwareKeyError, match=f"is a file owned by uid {NOBODY}"):
        checked_module(str(copy))
    os.chown(copy, 0, 0)
    os.chown(module_dir, NOBODY, NOBODY)
    with pytest.raises(HardwareKeyError, match=f"the directory {module_dir} on its path is owned by uid {NOBODY}"):
        checked_module(str(copy))


def test_not_a_regular_file_or_missing_is_refused(module_dir: Path) -> None:
    (module_dir / "dir.so").mkdir()
    with pytest.raises(HardwareKeyError, match="is not a regular file"):
        checked_module(str(module_dir / "dir.so"))
    with pytest.raises(HardwareKeyError, match=r"^PKCS#11 module .*/absent\.so not found$"):
        checked_module(str(module_dir / "absent.so"))
    (module_dir / "loop.so").symlink_to(module_dir / "loop.so")
    with pytest.raises(HardwareKeyError, match="more than 16 symlinks"):
        checked_module(str(module_dir / "loop.so"))


@pytest.mark.skipif(missing() is not None, reason=missing() or "")
def test_a_file_that_is_not_a_pkcs11_module_is_one_line(module_dir: Path) -> None:
    from gcptoken.keys.pkcs11 import open_key

    fake = module_dir / "fake.so"
    fake.write_text("not a shared library\n")
    fake.chmod(0o644)
    with pytest.raises(HardwareKeyError, match=rf"^could not load PKCS#11 module {fake}: \w+$"):
        open_key(parse_uri(f"pkcs11:token=t?module-path={fake}"), None)
    with pytest.raises(HardwareKeyError, match=r"^PKCS#11 module /nonexistent/lib\.so not found$"):
        open_key(parse_uri("pkcs11:token=t?module-path=/nonexistent/lib.so"), None)
