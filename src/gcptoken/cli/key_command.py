"""``gcptoken key``: make a key inside a PKCS#11 token or a TPM, print its self-signed certificate
(for ``gcloud iam service-accounts keys upload``), and the credential file that names it.

Everything given is checked before a device is touched; files are written new (0600, never over
an existing file or through a symlink); on any error stdout stays empty."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from gcptoken.errors import HardwareKeyError, InvalidArgumentError
from gcptoken.keys.reference import HardwareReference, hardware_reference, is_hardware_reference
from gcptoken.private_files import UnreadableFile, file_error, read_small_file
from gcptoken.untrusted import UnreadableJson, json_object

__all__ = ["run_key"]

MAX_REFERENCE = 64 * 1024  # a TSS2 key file is ~1 KiB; a pkcs11: URI far less
# NAME@PROJECT.iam.gserviceaccount.com (group 1: the project), or another of Google's account domains.
_ACCOUNT = re.compile(
    r"[a-z0-9][a-z0-9._+-]{0,99}@(?:([a-z0-9-]+)\.iam\.|(?:[a-z0-9-]+\.)*)gserviceaccount\.com", re.ASCII
)
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def run_key(args: argparse.Namespace) -> int:
    action = {"generate": _generate, "cert": _cert, "credentials": _credentials, "upload": _upload}[args.key_action]
    return action(args)


def _generate(args: argparse.Namespace) -> int:
    from gcptoken.keys.generate import TPM_NEW, generate_key
    from gcptoken.keys.pin import key_pin, new_pin
    from gcptoken.keys.reference import pin_env_name

    where, variable = args.where.strip(), pin_env_name(args.pin_env)
    outputs = [path for path in (args.out, args.cert) if path]
    for path in outputs:
        _check_new(path)
    if len(set(outputs)) < len(outputs):
        raise InvalidArgumentError("--out and --cert must be different files")
    _certificate_checks(args)
    if where.startswith("pkcs11:"):
        if args.no_pin:
            raise InvalidArgumentError("--no-pin is for TPM keys: a PKCS#11 token always has a user PIN")
        pin = key_pin(HardwareReference("pkcs11", where, variable))
    elif where == TPM_NEW or where.startswith("tpm2:"):
        pin = None if args.no_pin else new_pin(HardwareReference("tpm", where, variable))
        if pin is None and not args.no_pin:
            raise HardwareKeyError(
                f"the new key's PIN: set {variable}, run in a terminal to be asked, or give --no-pin"
            )
    else:
        raise InvalidArgumentError("WHERE must be a pkcs11: URI (token and object label), tpm, or tpm2:handle=0x81…")
    # The files are made before the key, so that a key is never made with nowhere to say where it is.
    opened: dict[str, int] = {}
    try:
        for path in outputs:
            opened[path] = _open_new(path)
        made = generate_key(where, pin, pin_env=args.pin_env)
        if args.out:
            _fill(opened.pop(args.out), made.text + "\n")
        else:
            _emit(made.text + "\n", None)
        if args.cert:
            name = args.common_name or _default_name(made)
            _fill(opened.pop(args.cert), _certificate(made, pin, name, args.days))
    finally:
        for path, fd in opened.items():  # not written: left as they were, absent
            os.close(fd)
            os.unlink(path)
    return 0


def _cert(args: argparse.Namespace) -> int:
    from gcptoken.keys.pin import key_pin

    if args.out:
        _check_new(args.out)
    _certificate_checks(args)
    reference, info = _reference(args.reference, args.pin_env)
    name = args.common_name or (info or {}).get("client_email") or _default_name(reference)
    _emit(_certificate(reference, key_pin(reference), str(name), args.days), args.out)
    return 0


def _credentials(args: argparse.Namespace) -> int:
    if args.out:
        _check_new(args.out)
    account = args.account.strip().lower()
    matched = _ACCOUNT.fullmatch(account)
    if matched is None:
        raise InvalidArgumentError("--account must be a service account's email (NAME@PROJECT.iam.gserviceaccount.com)")
    if not _KEY_ID.fullmatch(args.key_id.strip()):
        raise InvalidArgumentError("--key-id must be the key's id as IAM gives it (letters, digits, - and _)")
    reference, _ = _reference(args.reference, args.pin_env)
    info: dict[str, Any] = {"type": "service_account"}
    project = args.project_id or matched.group(1)
    if project:
        info["project_id"] = project.strip()
    info.update(private_key_id=args.key_id.strip(), private_key=reference.text, client_email=account)
    if args.token_uri:
        from gcptoken import checks

        info["token_uri"] = checks.http_url(args.token_uri.strip(), "--token-uri", allow_http=False, user_info=False)
    else:
        info["token_uri"] = "https://oauth2.googleapis.com/token"
    if args.pin_env:
        info["pin_env"] = reference.pin_env
    info["universe_domain"] = "googleapis.com"
    _emit(json.dumps(info, indent=2) + "\n", args.out)
    return 0


def _upload(args: argparse.Namespace) -> int:
    from gcptoken.cli.tokens import credentials_for
    from gcptoken.credentials.base import run_flow_sync
    from gcptoken.keys.upload import upload_flow

    account = args.account.strip().lower()
    if _ACCOUNT.fullmatch(account) is None:
        raise InvalidArgumentError("--account must be a service account's email (NAME@PROJECT.iam.gserviceaccount.com)")
    try:
        pem = read_small_file(args.certificate, MAX_REFERENCE).decode("ascii")
    except (OSError, UnreadableFile) as exc:
        raise file_error(args.certificate, "CERT", exc, InvalidArgumentError) from None
    except UnicodeDecodeError:
        raise InvalidArgumentError(f"CERT {args.certificate} is not a PEM certificate") from None
    if not pem.lstrip().startswith("-----BEGIN CERTIFICATE-----"):
        raise InvalidArgumentError(f"CERT {args.certificate} is not a PEM certificate (gcptoken key generate --cert)")
    token = credentials_for(args).access_token(["https://www.googleapis.com/auth/cloud-platform"], timeout=args.timeout)
    key_id = run_flow_sync(upload_flow(token.value, account, pem), args.timeout)
    sys.stdout.write(key_id + "\n")
    return 0


def _certificate_checks(args: argparse.Namespace) -> None:
    from gcptoken.keys.certificate import MAX_DAYS

    if not 1 <= args.days <= MAX_DAYS:
        raise InvalidArgumentError(f"--days must be 1 to {MAX_DAYS}")
    name = args.common_name
    if name is not None and (not name.strip() or len(name) > 64 or not name.isprintable()):
        raise InvalidArgumentError("--common-name must be 1 to 64 printable characters")


def _certificate(reference: HardwareReference, pin: str | None, name: str, days: int) -> str:
    from gcptoken.keys.certificate import self_signed_certificate
    from gcptoken.keys.opened import opened_key

    return self_signed_certificate(opened_key(reference, pin), name[:64], days)


def _default_name(reference: HardwareReference) -> str:
    if reference.kind == "pkcs11":
        from gcptoken.keys.pkcs11_uri import parse_uri

        label = parse_uri(reference.text).object
        if label:
            return label
    return "gcptoken hardware key"


def _reference(argument: str, pin_env: str | None) -> tuple[HardwareReference, dict[str, Any] | None]:
    """The reference given literally, in @FILE (a reference or a credential file), or on stdin."""
    if argument != "-" and not argument.startswith("@"):
        text, where = argument, "REFERENCE"
    else:
        where = "REFERENCE on stdin" if argument == "-" else f"REFERENCE file {argument[1:]}"
        text = _read(argument).decode("utf-8", "replace")
    info: dict[str, Any] | None = None
    if text.lstrip().startswith("{"):
        try:
            info = json_object(text)
        except UnreadableJson as exc:
            raise InvalidArgumentError(f"{where} {exc}") from None
        key, named_env = info.get("private_key"), info.get("pin_env")
        if not isinstance(key, str):
            raise InvalidArgumentError(f"{where} is a JSON file without a 'private_key' reference")
        text = key
        pin_env = pin_env or (named_env if isinstance(named_env, str) else None)
    if not is_hardware_reference(text):
        raise InvalidArgumentError(f"{where} is not a pkcs11: URI, a TSS2 key file or a tpm2: handle")
    return hardware_reference(text, pin_env), info


def _read(argument: str) -> bytes:
    if argument == "-":
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:
            raise InvalidArgumentError("REFERENCE is to be read from stdin, which is closed")
        data: bytes = stdin.read(MAX_REFERENCE + 1)
        if len(data) > MAX_REFERENCE:
            raise InvalidArgumentError(f"REFERENCE on stdin is larger than {MAX_REFERENCE} bytes")
        return data
    try:
        return read_small_file(argument[1:], MAX_REFERENCE)
    except (OSError, UnreadableFile) as exc:
        raise file_error(argument[1:], "REFERENCE file", exc, InvalidArgumentError) from None


def _check_new(path: str) -> None:
    if os.path.lexists(path):
        raise InvalidArgumentError(f"{path} exists: gcptoken key writes only new files (remove it first)")
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise InvalidArgumentError(f"{path}: its directory does not exist")


def _emit(text: str, path: str | None) -> None:
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        _write_new(path, text)


def _write_new(path: str, text: str) -> None:
    """A new 0600 file: never over an existing one, never through a symlink planted there."""
    _fill(_open_new(path), text)


def _open_new(path: str) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags, 0o600)
    except OSError as exc:
        raise file_error(path, "output file", exc, InvalidArgumentError) from None


def _fill(fd: int, text: str) -> None:
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)
