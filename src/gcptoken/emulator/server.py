"""Running the emulator: in a background thread (tests, the demo) or in the foreground (CLI)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from gcptoken.emulator import mtls
from gcptoken.emulator.app import create_app
from gcptoken.emulator.serving import AsgiServer, bind
from gcptoken.emulator.state import EmulatorState, Provider
from gcptoken.jose import jws
from gcptoken.private_files import NotPrivateError, PrivateDir

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


def open_state_dir(path: Path) -> PrivateDir:
    """The state directory, created 0700 if missing; refused (ValueError, one line saying "state
    dir") when it is not ours, is writable by others, or is reached through a symlink."""
    try:
        return PrivateDir(str(path))
    except NotPrivateError as exc:
        raise ValueError(f"state dir: {exc}") from None


def _write_private(directory: PrivateDir, name: str, text: str) -> None:
    """A 0600 file, atomically: a new O_EXCL|O_NOFOLLOW file renamed over the old one."""
    try:
        directory.write_atomically(name, text.encode("utf-8"))
    except (NotPrivateError, OSError) as exc:
        raise ValueError(f"state dir: {directory.path}/{name} cannot be written ({exc})") from None


def _existing(directory: PrivateDir, name: str) -> dict[str, Any] | None:
    try:
        data = directory.read(name)
        value = json.loads(data) if data else None
    except (NotPrivateError, OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _default_key_file(state: EmulatorState, directory: PrivateDir) -> dict[str, Any]:
    """The default account's key file: reused when the directory already holds a registered one."""
    account = state.default_account
    existing = _existing(directory, KEY_FILE)
    if existing and existing.get("client_email") == account.email and existing.get("private_key_id") in account.keys:
        existing["token_uri"] = f"{state.base_url}/token"
        return existing
    return state.create_key(account.email)


def _user_file(state: EmulatorState, directory: PrivateDir) -> dict[str, Any]:
    """The demo user's authorized_user file: reused while its refresh token is still known."""
    existing = _existing(directory, USER_FILE)
    if (
        existing
        and isinstance(existing.get("refresh_token"), str)
        and existing["refresh_token"] in state.refresh_tokens
    ):
        existing["token_uri"] = f"{state.base_url}/token"
        return existing
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


def _external_account_file(state: EmulatorState, directory: PrivateDir) -> dict[str, Any]:
    """external_account with a file-sourced subject token (re-minted at every start, valid a day)
    for workload ``workload-1``, allowed to act as the impersonation target."""
    provider = Provider(POOL, PROVIDER, f"{state.base_url}/oidc")
    state.providers[(POOL, PROVIDER)] = provider
    audience = provider.resource(state.project_number)
    now = int(state.clock())
    claims = {"iss": provider.issuer, "sub": "workload-1", "aud": f"https:{audience}", "iat": now, "exp": now + 86400}
    key = state.oidc_key
    _write_private(directory, SUBJECT_TOKEN_FILE, jws.encode(claims, key.key, kid=key.kid))
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
        "credential_source": {
            "file": os.path.join(os.path.realpath(directory.path), SUBJECT_TOKEN_FILE),
            "format": {"type": "text"},
        },
    }


def mtls_server(state: EmulatorState, host: str, port: int) -> AsgiServer:
    """The emulator's endpoints over TLS with client certificates required (X.509 federation)."""
    issued = state.workload_ca.server_certificate()
    with tempfile.TemporaryDirectory(prefix="gcptoken-mtls-") as scratch:  # 0700; load_cert_chain wants files
        cert_path, key_path = os.path.join(scratch, "server.pem"), os.path.join(scratch, "server.key")
        for path, text in ((cert_path, issued.cert_pem), (key_path, issued.key_pem)):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
                file.write(text)
        context = mtls.server_context(state.workload_ca, cert_path, key_path)
    state.trust_hooks.append(lambda pem: context.load_verify_locations(cadata=pem))
    return AsgiServer(create_app(state), bind(host, port), context, mtls.ClientCertProtocol)


def load_state(directory: PrivateDir | None) -> EmulatorState:
    try:
        data = directory.read(STATE_FILE) if directory is not None else None
    except NotPrivateError as exc:
        raise ValueError(f"state dir: {exc}") from None
    if directory is None or data is None:
        return EmulatorState()
    return EmulatorState.from_bytes(data, f"state dir: {directory.path}/{STATE_FILE}")


def write_state_dir(state: EmulatorState, directory: PrivateDir, host_port: str) -> None:
    """``service-account.json``, ``env`` and the state file, before the emulator answers."""
    key_file = _default_key_file(state, directory)
    _write_private(directory, KEY_FILE, json.dumps(key_file, indent=2) + "\n")
    user_file = _user_file(state, directory)
    _write_private(directory, USER_FILE, json.dumps(user_file, indent=2) + "\n")
    impersonated = _impersonated_file(state, user_file)
    _write_private(directory, IMPERSONATED_FILE, json.dumps(impersonated, indent=2) + "\n")
    external = _external_account_file(state, directory)
    _write_private(directory, EXTERNAL_FILE, json.dumps(external, indent=2) + "\n")
    env = (
        f"export GCPTOKEN_EMULATOR_HOST={host_port}\n"
        f"export GOOGLE_APPLICATION_CREDENTIALS={os.path.join(os.path.realpath(directory.path), KEY_FILE)}\n"
        f"export GCE_METADATA_HOST={host_port}\n"
        f"export GCE_METADATA_IP={host_port}\n"
    )
    _write_private(directory, ENV_FILE, env)
    _write_private(directory, STATE_FILE, json.dumps(state.to_json(), indent=1))
    state.on_change = lambda: _write_private(directory, STATE_FILE, json.dumps(state.to_json(), indent=1))


class EmulatorServer(AsgiServer):
    """The emulator on a real socket. ``port=0`` picks a free port; ``url`` tells which."""

    def __init__(
        self,
        state: EmulatorState | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: str | os.PathLike[str] | None = None,
        mtls_port: int | None = None,
    ) -> None:
        """``mtls_port``: also serve every endpoint over TLS with client certificates required
        (X.509 federation; 0 picks a free port); ``mtls.url`` says where."""
        self.state_dir = Path(state_dir) if state_dir is not None else None
        # The directory is checked before the port is bound, so its problems are named as such.
        self._private_dir = open_state_dir(self.state_dir) if self.state_dir is not None else None
        self.state = state or load_state(self._private_dir)
        super().__init__(create_app(self.state), bind(host, port))
        self.state.base_url = self.url
        self.mtls: AsgiServer | None = None
        if mtls_port is not None:
            try:
                self.mtls = mtls_server(self.state, host, mtls_port)
            except OSError:
                self._socket.close()
                raise
            self.state.mtls_url = self.mtls.url
        if self._private_dir is not None:
            write_state_dir(self.state, self._private_dir, self.host_port)

    def key_file(self, account_id: str | None = None) -> dict[str, str]:
        """A fresh key file for ``account_id`` (created if needed), or for the default account."""
        if account_id is None:
            return self.state.create_key(self.state.default_account.email)
        email = f"{account_id}@{self.state.project_id}.iam.gserviceaccount.com"
        if email not in self.state.service_accounts:
            self.state.create_service_account(account_id)
        return self.state.create_key(email)

    def start(self) -> EmulatorServer:
        super().start()
        if self.mtls is not None:
            self.mtls.start()
        return self

    def serve_forever(self) -> None:
        if self.mtls is not None:
            self.mtls.start()
        try:
            super().serve_forever()
        finally:
            if self.mtls is not None:
                self.mtls.stop()

    def stop(self) -> None:
        if self.mtls is not None:
            self.mtls.stop()
        super().stop()

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self
