"""``credHelpers`` entries naming ``gcptoken`` in docker's config file, added or removed without
disturbing the rest: every other key kept in its order, the file replaced atomically (a new file in
the same directory, fsynced, renamed over it), its mode kept (0600 when new), no symlink followed
but the user's own link to the folder, a malformed file refused with nothing changed. Lossless: a
file this cannot write back exactly (duplicate keys, NaN, numbers Python would reformat) is refused.
Concurrent runs take turns (``flock`` on the folder) and a change by someone else between the read
and the rename (``docker login``) is seen and the update made again on the new file. The same job
as ``gcloud auth configure-docker``."""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any

from gcptoken.errors import GcpTokenError, InvalidArgumentError
from gcptoken.helpers.docker import CONFIG_LIMIT, CONFIG_NAME, HELPER_NAME, docker_config_path
from gcptoken.helpers.hosts import HOSTS_ENV, answers_for, host_of
from gcptoken.private_files import NotPrivateError, PrivateDir, os_reason

__all__ = ["DEFAULT_REGISTRIES", "DockerConfigChange", "DockerConfigError", "registry_host", "update_docker_config"]

# gcloud auth configure-docker's default: constants.DEFAULT_REGISTRIES_TO_AUTHENTICATE in the
# Cloud SDK (googlecloudsdk/core/docker/constants.py): gcr.io, its regions, k8s staging, marketplace.
DEFAULT_REGISTRIES = ("gcr.io", "us.gcr.io", "eu.gcr.io", "asia.gcr.io", "staging-k8s.gcr.io", "marketplace.gcr.io")
_ATTEMPTS = 5  # reads and plans again when the file changed under us; then gives up
_HOST = re.compile(r"(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class DockerConfigError(GcpTokenError):
    """docker's config could not be read, understood or written; nothing was changed."""


class _Lossy(ValueError):
    """The file holds something json would not write back as it was."""


class _Changed(Exception):
    """Someone else replaced or edited the file between our read and our rename."""


def _exact_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or json.dumps(value) != text:  # 1e400 is inf; 1.0e5 comes back 100000.0
        raise _Lossy(f"the number {text[:40]} would not be written back as it is")
    return value


def _exact_int(text: str) -> int:
    value = int(text)
    if str(value) != text:  # "-0"
        raise _Lossy(f"the number {text[:40]} would not be written back as it is")
    return value


def _no_constant(text: str) -> Any:
    raise _Lossy(f"{text} is not JSON (docker would ignore the whole file)")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _Lossy(f"the key {json.dumps(key[:40])} appears twice (one would be lost)")
        seen.add(key)
    return dict(pairs)


@dataclass
class DockerConfigChange:
    """What an update did (or, dry, would do) to the file at ``path``."""

    path: str
    added: list[str] = field(default_factory=list)
    replaced: list[tuple[str, str]] = field(default_factory=list)  # (host, the helper it named before)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (host, its other helper), left alone
    created: bool = False
    written: bool = False


def registry_host(name: str) -> str:
    """``HOST`` or ``HOST:PORT`` from a registry as a person writes it (``https://`` allowed, no path)."""
    text = name.strip()
    bare = text.removeprefix("https://").rstrip("/")
    host = host_of(bare)
    if not _HOST.fullmatch(host) or host != bare.lower():
        raise InvalidArgumentError(f"{text!r} is not a registry host (HOST or HOST:PORT, e.g. us-docker.pkg.dev)")
    return host


def _parsed(raw: bytes, path: str) -> dict[str, Any]:
    if not raw.strip():
        return {}  # docker reads an empty file as an empty config
    try:
        config = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_unique_keys,
            parse_float=_exact_float,
            parse_int=_exact_int,
            parse_constant=_no_constant,
        )
        try:
            json.dumps(config, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise _Lossy("a string holds a lone UTF-16 surrogate (\\ud800…), which UTF-8 cannot hold") from None
    except _Lossy as exc:
        raise DockerConfigError(f"{path}: {exc}: nothing changed (fix it first)") from None
    except (UnicodeError, ValueError, RecursionError):
        raise DockerConfigError(f"{path} is not valid JSON: nothing changed (fix or move it first)") from None
    if not isinstance(config, dict):
        raise DockerConfigError(f"{path} is not a JSON object: nothing changed (fix or move it first)")
    helpers = config.get("credHelpers", {})
    if not isinstance(helpers, dict) or not all(isinstance(value, str) for value in helpers.values()):
        raise DockerConfigError(f"{path}: credHelpers is not an object of helper names: nothing changed")
    return config


_Identity = tuple[int, int, int, int] | None  # (inode, size, mtime, ctime) of the file; None: no file


def _identity(info: os.stat_result) -> _Identity:
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _current(directory: PrivateDir) -> _Identity:
    try:
        return _identity(os.stat(CONFIG_NAME, dir_fd=directory.fd, follow_symlinks=False))
    except FileNotFoundError:
        return None


def _read(directory: PrivateDir, path: str) -> tuple[dict[str, Any] | None, int | None, _Identity]:
    """(config, mode, identity), or Nones when there is no file yet. No symlink is followed."""
    try:
        fd = os.open(CONFIG_NAME, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK, dir_fd=directory.fd)
    except FileNotFoundError:
        return None, None, None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise DockerConfigError(f"{path} is a symbolic link; it is not followed: nothing changed") from None
        raise DockerConfigError(f"{path} cannot be read ({os_reason(exc)}): nothing changed") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise DockerConfigError(f"{path} is not a regular file: nothing changed")
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(CONFIG_LIMIT + 1)
    if len(raw) > CONFIG_LIMIT:
        raise DockerConfigError(f"{path} is over {CONFIG_LIMIT >> 20} MiB: nothing changed")
    return _parsed(raw, path), stat.S_IMODE(info.st_mode), _identity(info)


def _write(directory: PrivateDir, data: bytes, mode: int, expected: _Identity) -> None:
    """Replace the config atomically: a new file (O_EXCL, never through a symlink) in the same
    directory, given the mode, fsynced, renamed over the old one, and the directory fsynced.
    :class:`_Changed` (nothing written) when the file is no longer the one read (``expected``)."""
    temporary = f".{CONFIG_NAME}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600, dir_fd=directory.fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if _current(directory) != expected:  # docker login wrote it meanwhile: its change must survive
            raise _Changed
        os.replace(temporary, CONFIG_NAME, src_dir_fd=directory.fd, dst_dir_fd=directory.fd)
    except BaseException:
        try:  # noqa: SIM105 - as private_files does
            os.unlink(temporary, dir_fd=directory.fd)
        except OSError:
            pass
        raise
    os.fsync(directory.fd)  # the rename itself survives a crash


def _plan(
    config: dict[str, Any], hosts: list[str], change: DockerConfigChange, *, force: bool, remove: bool
) -> dict[str, Any]:
    helpers: dict[str, str] = dict(config.get("credHelpers", {}))
    for host in hosts:
        current = helpers.get(host)
        if remove:
            if current == HELPER_NAME:
                del helpers[host]
                change.removed.append(host)
            elif current is not None:
                change.kept.append((host, current))
        elif current == HELPER_NAME:
            change.unchanged.append(host)
        elif current is not None and not force:
            change.kept.append((host, current))
        else:
            if current is not None:
                change.replaced.append((host, current))
            else:
                change.added.append(host)
            helpers[host] = HELPER_NAME
    updated = dict(config)  # the same keys in the same order; credHelpers last when new, as docker adds it
    if helpers or "credHelpers" in config:
        updated["credHelpers"] = helpers
    return updated


def _open_folder(folder: str, dry_run: bool) -> PrivateDir | None:
    """The config's folder, checked; None for a dry run where there is none yet. A symbolic link
    there (dotfiles: ``~/.docker`` → ``~/dotfiles/docker``) is followed when it is the user's (or
    root's) and points straight at a folder the user owns and others cannot write."""
    try:
        link = os.lstat(folder)
    except OSError:
        link = None
    target = folder
    if link is not None and stat.S_ISLNK(link.st_mode):
        if link.st_uid not in (os.geteuid(), 0):
            raise DockerConfigError(
                f"{folder} is a symbolic link owned by uid {link.st_uid}, not by you: not followed, nothing changed"
            )
        target = os.path.join(os.path.dirname(folder), os.readlink(folder))  # one link; the target's own is refused
    try:
        return PrivateDir(target, create=not dry_run and link is None, tighten=False, parents=False)
    except NotPrivateError as exc:
        if dry_run and link is None:
            return None  # nothing there yet: the plan is made from an empty config
        raise DockerConfigError(f"{exc}: nothing changed") from None


def _update_once(
    directory: PrivateDir | None, path: str, hosts: list[str], change: DockerConfigChange, **how: bool
) -> None:
    config, mode, identity = _read(directory, path) if directory is not None else (None, None, None)
    current = config or {}
    if how["remove"] and not hosts:
        hosts = [key for key, value in current.get("credHelpers", {}).items() if value == HELPER_NAME]
    elif not hosts:
        hosts = list(DEFAULT_REGISTRIES)
    updated = _plan(current, hosts, change, force=how["force"], remove=how["remove"])
    if change.kept and not how["remove"]:
        named = ", ".join(f"{host} (→ {helper})" for host, helper in change.kept)
        raise InvalidArgumentError(f"{path} maps {named} to another helper: nothing changed (pass --force to replace)")
    change.created = config is None
    if how["dry_run"] or directory is None or not (change.added or change.replaced or change.removed):
        return
    data = json.dumps(updated, indent="\t", ensure_ascii=False).encode()  # as docker writes it
    try:
        _write(directory, data, 0o600 if mode is None else mode, identity)
    except OSError as exc:
        raise DockerConfigError(f"{path} cannot be written ({os_reason(exc)}): nothing changed") from None
    change.written = True


def update_docker_config(
    registries: list[str],
    *,
    force: bool = False,
    remove: bool = False,
    dry_run: bool = False,
    path: str | None = None,
) -> DockerConfigChange:
    """Map ``registries`` (default: :data:`DEFAULT_REGISTRIES`; with ``remove``: every host mapped
    to gcptoken) to the helper in docker's config (``path``: default ``$DOCKER_CONFIG/config.json``).
    A host mapped to another helper is replaced only with ``force`` (else refused, nothing written).
    A host the helper would not answer (not Google's, not in ``$GCPTOKEN_HELPER_HOSTS``) is refused:
    the entry would do nothing."""
    path = path or docker_config_path()
    hosts = list(dict.fromkeys(registry_host(name) for name in registries))
    strangers = [host for host in hosts if not answers_for(host)]
    if strangers and not remove:
        named = ", ".join(strangers)
        raise InvalidArgumentError(
            f"{named}: not a Google registry: docker-credential-gcptoken answers only Google's and the hosts in "
            f"{HOSTS_ENV}; to send it a Google access token, set {HOSTS_ENV}={named} here and where docker runs"
        )
    directory = _open_folder(os.path.dirname(os.path.abspath(path)), dry_run)
    try:
        if directory is not None and not dry_run:
            fcntl.flock(directory.fd, fcntl.LOCK_EX)  # another docker-config waits its turn; closing unlocks
        for _ in range(_ATTEMPTS):
            change = DockerConfigChange(path=path)
            try:
                _update_once(directory, path, hosts, change, force=force, remove=remove, dry_run=dry_run)
            except _Changed:
                continue  # someone else's write landed between our read and our rename: start again
            return change
        raise DockerConfigError(f"{path} kept changing while it was being updated: nothing changed (try again)")
    finally:
        if directory is not None:
            directory.close()
