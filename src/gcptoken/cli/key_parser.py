"""The ``gcptoken key`` commands' options (argparse only: built on every run)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["add_key_command"]

EPILOG = """\
a key made in a PKCS#11 token or a TPM never leaves it; the credential file names it:
  export GCPTOKEN_KEY_PIN=…        # the token's user PIN, or the TPM key's auth value (else you are asked)
  gcptoken key generate 'pkcs11:token=TOKEN;object=sa-key?module-path=/usr/lib/softhsm/libsofthsm2.so' \\
      --out sa-key.ref --cert sa-key.pem --common-name SA_EMAIL
  gcptoken key upload sa-key.pem --account SA_EMAIL  # prints the key id (or: gcloud iam service-accounts keys upload)
  gcptoken key credentials @sa-key.ref --account SA_EMAIL --key-id KEY_ID --out sa.json
  gcptoken id https://SERVICE.a.run.app --credentials sa.json
WHERE (generate): a pkcs11: URI naming the token and the new key's label; tpm (a TSS2 key file,
usable only in this TPM); tpm2:handle=0x81000000… (persisted in the TPM at that handle).
REFERENCE: the pkcs11: URI, tpm2:handle=…, @FILE (a TSS2 key file, a reference, or a credential
file), or - for stdin. The TPM: GCPTOKEN_TPM_TCTI (else TPM2TOOLS_TCTI, else /dev/tpmrm0).
PINs come from GCPTOKEN_KEY_PIN (--pin-env names another variable) or a prompt: never argv."""


def add_key_command(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    key = command(
        "key",
        "gcptoken.cli.key_command:run_key",
        "keys that never leave a PKCS#11 token or a TPM: make one, its certificate, its credential file",
    )
    key.epilog = EPILOG
    actions = key.add_subparsers(dest="key_action", metavar="ACTION", required=True)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help, description=help, formatter_class=key.formatter_class)
        sub.add_argument("--pin-env", metavar="VAR", help="the variable holding the PIN (default GCPTOKEN_KEY_PIN)")
        return sub

    generate = action("generate", "make an RSA-2048 key inside the token or TPM; print its reference")
    generate.add_argument("where", metavar="WHERE", help="pkcs11:token=…;object=LABEL, tpm, or tpm2:handle=0x81…")
    generate.add_argument("--no-pin", action="store_true", help="TPM only: a key without an auth value")
    generate.add_argument("--out", metavar="FILE", help="write the reference to a new 0600 FILE (else stdout)")
    generate.add_argument("--cert", metavar="FILE", help="also write its self-signed certificate to a new FILE")
    _certificate_options(generate)

    cert = action("cert", "print the key's self-signed certificate (signed in the device), for upload")
    cert.add_argument("reference", metavar="REFERENCE", help="pkcs11:…, tpm2:handle=…, @FILE or -")
    cert.add_argument("--out", metavar="FILE", help="write it to a new 0600 FILE (else stdout)")
    _certificate_options(cert)

    credentials = action("credentials", "print a service-account credential file that names the key")
    credentials.add_argument("reference", metavar="REFERENCE", help="pkcs11:…, tpm2:handle=…, @FILE or -")
    credentials.add_argument("--account", required=True, metavar="EMAIL", help="the service account's email")
    credentials.add_argument("--key-id", required=True, metavar="ID", help="the uploaded key's id (from IAM)")
    credentials.add_argument("--project-id", metavar="PROJECT", help="default: from the account's email")
    credentials.add_argument("--token-uri", metavar="URL", help="default: https://oauth2.googleapis.com/token")
    credentials.add_argument("--out", metavar="FILE", help="write it to a new 0600 FILE (else stdout)")
    _upload_action(actions, key.formatter_class)


def _upload_action(actions: Any, formatter_class: Any) -> None:
    from gcptoken.cli.parser_kit import credential_options

    what = "upload the certificate to the service account (IAM keys.upload); print the key id"
    upload = actions.add_parser("upload", help=what, description=what, formatter_class=formatter_class)
    upload.add_argument("certificate", metavar="CERT", help="the PEM certificate (gcptoken key generate --cert)")
    upload.add_argument("--account", required=True, metavar="EMAIL", help="the service account's email")
    credential_options(upload, no_cache=False)  # whose access token authorizes the upload


def _certificate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--common-name", metavar="CN", help="the certificate's subject (default: the key's name)")
    parser.add_argument("--days", type=int, default=3650, metavar="N", help="validity in days")
