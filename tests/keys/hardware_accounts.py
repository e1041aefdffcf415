"""A service account whose key was made in a device (SoftHSM2 or swtpm) as a new user makes one:
``gcptoken key generate``, its certificate uploaded to the emulator, ``gcptoken key credentials``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gcptoken.testing import EmulatorClient
from tests.cli.test_cli import gcptoken

__all__ = ["HardwareAccount", "hardware_account"]


@dataclass(frozen=True)
class HardwareAccount:
    email: str
    key_id: str
    credential_file: Path
    reference: str
    env: dict[str, str]  # what the CLI needs: the device's variables and the PIN

    @property
    def info(self) -> dict[str, str]:
        loaded: dict[str, str] = json.loads(self.credential_file.read_text())
        return loaded


def hardware_account(
    emulator: EmulatorClient, where: str, env: dict[str, str], directory: Path, *extra: str
) -> HardwareAccount:
    """A key made at ``where`` (``env``: the device and PIN variables) for a new emulator account."""
    email = emulator.new_key("hw")["client_email"]
    directory.mkdir(parents=True, exist_ok=True)
    reference, certificate, credential_file = directory / "key.ref", directory / "cert.pem", directory / "sa.json"
    made = gcptoken(
        "key",
        "generate",
        where,
        "--out",
        str(reference),
        "--cert",
        str(certificate),
        "--common-name",
        email,
        *extra,
        env=env,
    )
    assert made.code == 0 and made.out == "", made.err
    key_id = emulator.upload_certificate(email, certificate.read_text())
    written = gcptoken(
        "key",
        "credentials",
        f"@{reference}",
        "--account",
        email,
        "--key-id",
        key_id,
        "--out",
        str(credential_file),
        env=env,
    )
    assert written.code == 0, written.err
    return HardwareAccount(email, key_id, credential_file, reference.read_text().strip(), env)
