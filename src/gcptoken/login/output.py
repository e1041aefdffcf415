"""Where ``gcptoken login`` writes its ``authorized_user`` file: checked before anyone signs in
(a directory, a missing folder, a symlink, a folder that is not ours or cannot be written, a file
holding another account's sign-in), then written 0600, atomically, never through a symlink.

No folder is created for a path the person named: a typo must not leave directories behind. The
one exception is gcloud's own config folder (the default, gcloud's ADC file), which gcloud creates
too when it writes that file: it is made before the sign-in, so a folder chain that cannot hold it
is found before anyone signs in."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gcptoken.errors import CredentialsError
from gcptoken.private_files import NotPrivateError, PrivateDir
from gcptoken.untrusted import UnreadableJson, json_object, one_line

__all__ = ["Output", "check_output", "write_credentials"]


@dataclass(frozen=True)
class Output:
    """A checked place to write: ``account`` is who an existing sign-in file there names (signing
    in as them again replaces it without --force)."""

    path: str
    account: str = ""


def _another_account(previous: Any, account: str | None) -> str | None:
    """What an existing file holds, unless it is this very account's. A file that names no account
    (gcloud writes ``"account": ""``) may be anyone's: replacing it takes --force too."""
    if not isinstance(previous, dict) or previous.get("type") != "authorized_user":
        return "credentials of another kind"
    theirs = previous.get("account")
    if not isinstance(theirs, str) or not theirs:
        return "credentials for an account it does not name"
    shown = theirs[:200] if theirs.isprintable() else repr(theirs[:200])
    return None if account and theirs == account else f"credentials for {shown}"


def _previous(existing: bytes) -> dict[str, Any] | None:
    try:
        return json_object(existing)
    except UnreadableJson:
        return None


def _replace_refused(path: str, problem: str) -> CredentialsError:
    return CredentialsError(f"{path} already holds {problem}; pass --force to replace them, or --output FILE")


def _make_config_folder(shown: str, directory: str) -> None:
    """gcloud's config folder made now, as gcloud makes it (with the folders above it), so that a
    folder chain that cannot hold it (a file on the way, /proc, a folder not ours) is found before
    anyone signs in rather than after."""
    above = os.path.dirname(directory)
    while not os.path.lexists(above) and os.path.dirname(above) != above:
        above = os.path.dirname(above)
    if not os.path.isdir(above):  # a file where a folder must be (symlinked folders are followed, as gcloud does)
        raise CredentialsError(f"cannot write {shown}: {one_line(above)} is not a directory")
    try:
        PrivateDir(directory, create=True, tighten=False).close()
    except NotPrivateError as exc:
        raise CredentialsError(f"cannot write {shown}: {exc}") from None


def check_output(path: str, force: bool, default: bool) -> Output:
    """``path`` checked as far as it can be before signing in; CredentialsError in one line when it
    cannot be written. ``default``: the path is gcloud's ADC file (its folder may be created)."""
    shown = one_line(path)
    absolute = os.path.abspath(path)
    directory, name = os.path.split(absolute)
    if path.endswith(os.sep) or (os.path.isdir(absolute) and not os.path.islink(absolute)):
        raise CredentialsError(
            f"--output {shown} is a directory; name a file in it ({os.path.join(shown, 'adc.json')})"
        )
    if default and not os.path.lexists(directory):
        _make_config_folder(shown, directory)  # gcloud's config folder: gcloud creates it too
    if not os.path.lexists(directory):
        raise CredentialsError(
            f"cannot write {shown}: the folder {one_line(directory)} does not exist (gcptoken creates no folder "
            "for --output; create it first, or choose another path)"
        )
    try:
        with PrivateDir(directory, create=False, tighten=False) as folder:
            existing = folder.read(name)  # refuses a symlink or anything but a regular file
    except NotPrivateError as exc:
        raise CredentialsError(f"cannot write {shown}: {exc}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CredentialsError(f"cannot write {shown}: the folder {one_line(directory)} is not writable")
    previous = _previous(existing) if existing is not None else None
    if existing is None or force:
        return Output(path)
    account = previous.get("account") if previous is not None and previous.get("type") == "authorized_user" else None
    if isinstance(account, str) and account:
        return Output(path, account=account)  # whether the same account signs in is known only after
    raise _replace_refused(shown, _another_account(previous, None) or "credentials")


def write_credentials(output: Output, info: Mapping[str, str], force: bool) -> None:
    """``info`` at the checked ``output``, 0600, atomically, never through a symlink; an existing
    file for another account is kept unless ``force`` (checked again: the file may have changed)."""
    path = output.path
    directory, name = os.path.split(os.path.abspath(path))
    try:
        with PrivateDir(directory, create=False, tighten=False) as folder:
            existing = folder.read(name)
            if existing is not None and not force:
                problem = _another_account(_previous(existing), info.get("account"))
                if problem:
                    raise _replace_refused(path, problem)
            folder.write_atomically(name, (json.dumps(info, indent=2) + "\n").encode("utf-8"))
    except NotPrivateError as exc:
        raise CredentialsError(f"cannot write {path}: {exc}") from None
