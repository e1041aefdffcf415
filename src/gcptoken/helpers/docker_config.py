"""``credHelpers`` entries naming ``gcptoken`` in docker's config file, added or removed without
disturbing the rest: every other key kept in its order, the file replaced atomically (a new file in
the same directory, fsynced, renamed over it), its mode kept (0600 when new), no symlink followed,
a malformed file refused with nothing changed. The same job as ``gcloud auth configure-docker``."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any

from gcptoken.errors import GcpTokenError, InvalidArgumentError
from gcptoken.helpers.docker import CONFIG_NAME, HELPER_NAME, docker_config_path
from gcptoken.helpers.hosts import answers_for, host_of
from gcptoken.private_files import NotPrivateError, PrivateDir, os_reason

__all__ = ["DEFAULT_REGISTRIES", "DockerConfigChange", "DockerConfigError", "registry_host", "update_docker_config"]

# gcloud auth configure-docker's default: constants.DEFAULT_REGISTRIES_TO_AUTHENTICATE in the
# Cloud SDK (googlecloudsdk/core/docker/constants.py): gcr.io, its regions, k8s staging, marketplace.
DEFAULT_REGISTRIES = ("gcr.io", "us.gcr.io", "eu.gcr.io", "asia.gcr.io", "staging-k8s.gcr.io", "marketplace.gcr.io")
_MAX_CONFIG = 4 << 20
_HOST = re.compile(r"(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class DockerConfigError(GcpTokenError):
    """docker's config could not be read, understood or written; nothing was changed."""


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
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DockerConfigError(f"{path} is not valid JSON: nothing changed (fix or move it first)") from None
    if not isinstance(config, dict):
        raise DockerConfigError(f"{path} is not a JSON object: nothing changed (fix or move it first)")
    helpers = config.get("credHelpers", {})
    if not isinstance(helpers, dict) or not all(isinstance(value, str) for value in helpers.values()):
        raise DockerConfigError(f"{path}: credHelpers is not an object of helper names: nothing changed")
    return config


def _read(directory: PrivateDir, path: str) -> tuple[dict[str, Any] | None, int | None]:
    """(config, mode), or (None, None) when there is no file yet. No symlink is followed."""
    try:
        fd = os.open(CONFIG_NAME, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK, dir_fd=directory.fd)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise DockerConfigError(f"{path} is a symbolic link; it is not followed: nothing changed") from None
        raise DockerConfigError(f"{path} cannot be read ({os_reason(exc)}): nothing changed") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise DockerConfigError(f"{path} is not a regular file: nothing changed")
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(_MAX_CONFIG + 1)
    if len(raw) > _MAX_CONFIG:
        raise DockerConfigError(f"{path} is over 4 MiB: nothing changed")
    return _parsed(raw, path), stat.S_IMODE(info.st_mode)


def _write(directory: PrivateDir, data: bytes, mode: int) -> None:
    """Replace the config atomically: a new file (O_EXCL, never through a symlink) in the same
    directory, given the mode, fsynced, renamed over the old one, and the directory fsynced."""
    temporary = f".{CONFIG_NAME}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600, dir_fd=directory.fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
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


def update_docker_config(
    registries: list[str],
    *,
    force: bool = False,
    remove: bool = False,
    dry_run: bool = False,
    any_registry: bool = False,
    path: str | None = None,
) -> DockerConfigChange:
    """Map ``registries`` (default: :data:`DEFAULT_REGISTRIES`; with ``remove``: every host mapped
    to gcptoken) to the helper in docker's config (``path``: default ``$DOCKER_CONFIG/config.json``).
    A host mapped to another helper is replaced only with ``force`` (else refused, nothing written);
    a host that is not Google's only with ``any_registry``: a Google access token would go to it."""
    path = path or docker_config_path()
    hosts = list(dict.fromkeys(registry_host(name) for name in registries))
    strangers = [host for host in hosts if not answers_for(host)]
    if strangers and not remove and not any_registry:
        raise InvalidArgumentError(
            f"{', '.join(strangers)}: not a Google registry, so docker would send it a Google access token; "
            "pass --any-registry if you mean that"
        )
    change = DockerConfigChange(path=path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        directory = PrivateDir(folder, create=not dry_run, tighten=False, parents=False)
    except NotPrivateError as exc:
        if dry_run and not os.path.lexists(folder):
            directory = None  # nothing there yet: the plan is made from an empty config
        else:
            raise DockerConfigError(f"{exc}: nothing changed") from None
    try:
        config, mode = _read(directory, path) if directory is not None else (None, None)
        current = config or {}
        if remove and not hosts:
            hosts = [key for key, value in current.get("credHelpers", {}).items() if value == HELPER_NAME]
        elif not hosts:
            hosts = list(DEFAULT_REGISTRIES)
        updated = _plan(current, hosts, change, force=force, remove=remove)
        if change.kept and not remove:
            named = ", ".join(f"{host} (→ {helper})" for host, helper in change.kept)
            raise InvalidArgumentError(
                f"{path} maps {named} to another helper: nothing changed (pass --force to replace)"
            )
        change.created = config is None
        if dry_run or directory is None or not (change.added or change.replaced or change.removed):
            return change
        data = json.dumps(updated, indent="\t", ensure_ascii=False).encode()  # as docker writes it
        try:
            _write(directory, data, 0o600 if mode is None else mode)
        except OSError as exc:
            raise DockerConfigError(f"{path} cannot be written ({os_reason(exc)}): nothing changed") from None
        change.written = True
        return change
    finally:
        if directory is not None:
            directory.close()
