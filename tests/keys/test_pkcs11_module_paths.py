"""The PKCS#11 module's whole path is checked, and the file loaded is the file checked: another
user who can write any directory on the way (not only the module's own) is refused, and renaming
things on the path after the check cannot swap in another library."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gcptoken.errors import HardwareKeyError
from gcptoken.keys.pkcs11_module import ModuleFile, checked_module, open_module
from tests.keys.softhsm import SoftHsm, softhsm_module

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="making files owned by someone else needs root")


def _module_in(directory: Path) -> Path:
    module = softhsm_module()
    if module is None:
        pytest.skip("SoftHSM2 is not installed (Debian: apt-get install softhsm2)")
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    copy = directory / "libsofthsm2.so"
    shutil.copyfile(module, copy)
    copy.chmod(0o644)
    return copy


@as_root
def test_an_ancestor_owned_by_another_user_is_refused(module_dir: Path) -> None:
    attacker = module_dir / "attacker"
    copy = _module_in(attacker / "lib")  # lib/ and the file are root's: only their parent is not
    os.chown(attacker, NOBODY, NOBODY)
    with pytest.raises(HardwareKeyError, match=f"the directory {attacker} on its path is owned by uid {NOBODY}"):
        checked_module(str(copy))
    link = module_dir / "module.so"  # ours, leading through the other user's directory
    link.symlink_to(copy)
    with pytest.raises(HardwareKeyError, match=f"the directory {attacker} on its path is owned by uid {NOBODY}"):
        checked_module(str(link))


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_an_ancestor_writable_by_others_is_refused_unless_sticky(module_dir: Path, mode: int) -> None:
    shared = module_dir / "shared"
    copy = _module_in(shared / "lib")
    shared.chmod(mode)
    with pytest.raises(HardwareKeyError, match=f"the directory {shared} on its path is writable by others"):
        checked_module(str(copy))
    shared.chmod(mode | 0o1000)  # sticky, like /tmp: lib/ is ours, so no one else can move it
    assert checked_module(str(copy)) == str(copy)


@as_root
def test_in_a_sticky_directory_the_next_step_must_be_root_or_yours(module_dir: Path) -> None:
    shared = module_dir / "shared"
    copy = _module_in(shared / "lib")
    shared.chmod(0o1777)
    os.chown(shared / "lib", NOBODY, NOBODY)
    with pytest.raises(HardwareKeyError, match=f"the directory {shared / 'lib'} on its path is owned by uid {NOBODY}"):
        checked_module(str(copy))


@as_root
def test_the_renaming_race_of_another_user_never_loads_their_file() -> None:
    """The attack as reported: another user's directory holding a root-owned lib/ with the real
    module, renamed back and forth with their own evil/ while the victim loads."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    top = Path(tempfile.mkdtemp(prefix="gcptoken-race-", dir="/tmp"))  # root's, in sticky /tmp
    try:
        top.chmod(0o755)
        attacker = top / "attacker"
        copy = _module_in(attacker / "lib")
        evil = attacker / "evil"
        evil.mkdir()
        (evil / "libsofthsm2.so").write_text("evil\n")
        for owned in (attacker, evil, evil / "libsofthsm2.so"):
            os.chown(owned, NOBODY, NOBODY)
        swap = (
            "import os,sys,time\nd=sys.argv[1]\nend=time.time()+30\n"
            "while time.time()<end:\n"
            " os.rename(d+'/lib',d+'/x');os.rename(d+'/evil',d+'/lib');os.rename(d+'/x',d+'/evil')\n"
        )
        argv = ["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups"]
        racer = subprocess.Popen(
            [*argv, sys.executable, "-I", "-c", swap, str(attacker)], cwd="/", stderr=subprocess.PIPE
        )
        try:
            for _ in range(40):
                with pytest.raises(HardwareKeyError, match=f"on its path is owned by uid {NOBODY}"):
                    open_module(str(copy)).close()
            still_racing = racer.poll() is None
        finally:
            racer.kill()
            _, complaint = racer.communicate()
        assert still_racing, complaint.decode(errors="replace")  # it was renaming all along
    finally:
        shutil.rmtree(top)


@pytest.fixture
def held(module_dir: Path) -> Iterator[list[ModuleFile]]:
    opened: list[ModuleFile] = []
    yield opened
    for module in opened:
        module.close()


def test_the_open_file_is_the_inode_checked(module_dir: Path, held: list[ModuleFile]) -> None:
    copy = _module_in(module_dir)
    checked = os.stat(copy)
    held.append(opened := open_module(str(copy)))
    (module_dir / "evil.so").write_text("evil\n")
    os.replace(module_dir / "evil.so", copy)  # the path now names another file
    now = os.stat(opened.load_path)  # what dlopen would open: /proc/self/fd/N
    assert (now.st_dev, now.st_ino) == (checked.st_dev, checked.st_ino) == opened.identity
    assert opened.real == str(copy)


def test_a_module_swapped_right_after_the_check_is_not_loaded(
    softhsm: SoftHsm, module_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gcptoken.keys import pkcs11 as keys_pkcs11

    copy = _module_in(module_dir)
    evil = module_dir / "evil.so"
    evil.write_text("not the module that was checked\n")
    evil.chmod(0o644)
    checked = open_module

    def check_then_swap(path: str) -> ModuleFile:
        opened = checked(path)
        os.replace(evil, copy)  # between the check and dlopen
        return opened

    monkeypatch.setattr(keys_pkcs11, "open_module", check_then_swap)
    module = keys_pkcs11.load_module(str(copy))
    assert module.manufacturer_id.startswith("SoftHSM")  # the checked file was loaded, not the swapped-in one
    monkeypatch.undo()
    with pytest.raises(HardwareKeyError, match=rf"^could not load PKCS#11 module {copy}: \w+$"):
        keys_pkcs11.load_module(str(copy))  # the path, checked afresh, now names the other file
