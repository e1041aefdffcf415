"""Running the emulator: in a background thread (tests, the demo) or in the foreground (CLI)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gcptoken import jws
from gcptoken.emulator.app import create_app
from gcptoken.emulator.serving import AsgiServer, bind
from gcptoken.emulator.state import EmulatorState, Provider

__all__ = ["EmulatorServer", "write_state_dir"]

STATE_FILE = "state.json"
KEY_FILE = "service-account.json"
USER_FILE = "authorized-user.json"
IMPERSONATED_FILE = "impersonated-service-account.json"
EXTERNAL_FILE = "external-account.json"
SUBJECT_TOKEN_FILE = "subject-token"
DEMO_USER = "user@example.com"
POOL, PROVIDER = "emulated-pool", "emulated-oidc"
IMPERSONATION_TARGET = "impersonated"
ENV_FILE = "env"


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    temporary.replace(path)


def _default_key_file(state: EmulatorState, directory: Path) -> dict[str, Any]:
    """The default account's key file: reused when the directory already holds a registered one."""
    path = directory / KEY_FILE
    account = state.default_account
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
        if existing.get("client_email") == account.email and existing.get("private_key_id") in account.keys:
            existing["token_uri"] = f"{state.base_url}/token"
            return dict(existing)
    except (OSError, ValueError, AttributeError):
        pass
    return state.create_key(account.email)


def _user_file(state: EmulatorState, directory: Path) -> dict[str, Any]:
    """The demo user's authorized_user file: reused while its refresh token is still known."""
    try:
        existing = json.loads((directory / USER_FILE).read_text(encoding="utf-8"))
        if existing.get("refresh_token") in state.refresh_tokens:
            existing["token_uri"] = f"{state.base_url}/token"
            return dict(existing)
    except (OSError, ValueError, AttributeError):
        pass
    return state.issue_refresh_token(DEMO_USER)


def _impersonated_file(state: EmulatorState, user_file: dict[str, Any]) -> dict[str, Any]:
    """An impersonated_service_account file whose source is the user, allowed to act as the target."""
    email = f"{IMPERSONATION_TARGET}@{state.project_id}.iam.gserviceaccount.com"
    if email not in state.service_accounts:
        state.create_service_account(IMPERSONATION_TARGET, "Impersonated by the demo user")
    state.grant_token_creator(email, f"user:{DEMO_USER}")
    state.grant_token_creator(email, f"serviceAccount:{state.default_account.email}")
    return {
        "delegates": [],
        "service_account_impersonation_url": (
            f"{state.base_url}/v1/projects/-/serviceAccounts/{email}:generateAccessToken"
        ),
        "source_credentials": {k: v for k, v in user_file.items() if k != "account"},
        "type": "impersonated_service_account",
    }


def _external_account_file(state: EmulatorState, directory: Path) -> dict[str, Any]:
    """external_account with a file-sourced subject token (re-minted at every start, valid a day)
    for workload ``workload-1``, allowed to act as the impersonation target."""
    provider = Provider(POOL, PROVIDER, f"{state.base_url}/oidc")
    state.providers[(POOL, PROVIDER)] = provider
    audience = provider.resource(state.project_number)
    now = int(state.clock())
    claims = {"iss": provider.issuer, "sub": "workload-1", "aud": f"https:{audience}", "iat": now, "exp": now + 86400}
    key = state.oidc_key
    _write_private(directory / SUBJECT_TOKEN_FILE, jws.encode(claims, key.key, kid=key.kid))
    target = f"{IMPERSONATION_TARGET}@{state.project_id}.iam.gserviceaccount.com"
    pool = audience.split("/providers/", 1)[0]
    state.grant_token_creator(target, f"principal:{pool}/subject/workload-1")
    return {
        "type": "external_account",
        "audience": audience,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": f"{state.base_url}/v1/token",
        "service_account_impersonation_url": (
            f"{state.base_url}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
        ),
        "credential_source": {"file": str((directory / SUBJECT_TOKEN_FILE).resolve()), "format": {"type": "text"}},
    }


def load_state(directory: Path | None) -> EmulatorState:
    if directory is not None and (directory / STATE_FILE).exists():
        return EmulatorState.load(directory / STATE_FILE)
    return EmulatorState()


def write_state_dir(state: EmulatorState, directory: Path, host_port: str) -> None:
    """``service-account.json``, ``env`` and the state file, before the emulator answers."""
    directory.mkdir(parents=True, exist_ok=True)
    key_file = _default_key_file(state, directory)
    _write_private(directory / KEY_FILE, json.dumps(key_file, indent=2) + "\n")
    user_file = _user_file(state, directory)
    _write_private(directory / USER_FILE, json.dumps(user_file, indent=2) + "\n")
    impersonated = _impersonated_file(state, user_file)
    _write_private(directory / IMPERSONATED_FILE, json.dumps(impersonated, indent=2) + "\n")
    external = _external_account_file(state, directory)
    _write_private(directory / EXTERNAL_FILE, json.dumps(external, indent=2) + "\n")
    env = (
        f"export GCPTOKEN_EMULATOR_HOST={host_port}\n"
        f"export GOOGLE_APPLICATION_CREDENTIALS={directory.resolve() / KEY_FILE}\n"
        f"export GCE_METADATA_HOST={host_port}\n"
        f"export GCE_METADATA_IP={host_port}\n"
    )
    _write_private(directory / ENV_FILE, env)
    _write_private(directory / STATE_FILE, json.dumps(state.to_json(), indent=1))
    state.on_change = lambda: _write_private(directory / STATE_FILE, json.dumps(state.to_json(), indent=1))


class EmulatorServer(AsgiServer):
    """The emulator on a real socket. ``port=0`` picks a free port; ``url`` tells which."""

    def __init__(
        self,
        state: EmulatorState | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.state = state or load_state(self.state_dir)
        super().__init__(create_app(self.state), bind(host, port))
        self.state.base_url = self.url
        if self.state_dir is not None:
            write_state_dir(self.state, self.state_dir, self.host_port)

    def key_file(self, account_id: str | None = None) -> dict[str, str]:
        """A fresh key file for ``account_id`` (created if needed), or for the default account."""
        if account_id is None:
            return self.state.create_key(self.state.default_account.email)
        email = f"{account_id}@{self.state.project_id}.iam.gserviceaccount.com"
        if email not in self.state.service_accounts:
            self.state.create_service_account(account_id)
        return self.state.create_key(email)

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self
