"""Running the emulator: in a background thread (tests, the demo) or in the foreground (CLI)."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from gcptoken.emulator.app import create_app
from gcptoken.emulator.state import EmulatorState

__all__ = ["EmulatorServer", "write_state_dir"]

STATE_FILE = "state.json"
KEY_FILE = "service-account.json"
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


def load_state(directory: Path | None) -> EmulatorState:
    if directory is not None and (directory / STATE_FILE).exists():
        return EmulatorState.load(directory / STATE_FILE)
    return EmulatorState()


def write_state_dir(state: EmulatorState, directory: Path, host_port: str) -> None:
    """``service-account.json``, ``env`` and the state file, before the emulator answers."""
    directory.mkdir(parents=True, exist_ok=True)
    key_file = _default_key_file(state, directory)
    _write_private(directory / KEY_FILE, json.dumps(key_file, indent=2) + "\n")
    env = (
        f"export GCPTOKEN_EMULATOR_HOST={host_port}\n"
        f"export GOOGLE_APPLICATION_CREDENTIALS={directory.resolve() / KEY_FILE}\n"
    )
    _write_private(directory / ENV_FILE, env)
    _write_private(directory / STATE_FILE, json.dumps(state.to_json(), indent=1))
    state.on_change = lambda: _write_private(directory / STATE_FILE, json.dumps(state.to_json(), indent=1))


class EmulatorServer:
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
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port: int = self._socket.getsockname()[1]
        self.host_port = f"[{host}]:{self.port}" if family == socket.AF_INET6 else f"{host}:{self.port}"
        self.url = f"http://{self.host_port}"
        self.state.base_url = self.url
        if self.state_dir is not None:
            write_state_dir(self.state, self.state_dir, self.host_port)
        config = uvicorn.Config(
            create_app(self.state), log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def key_file(self, account_id: str | None = None) -> dict[str, str]:
        """A fresh key file for ``account_id`` (created if needed), or for the default account."""
        if account_id is None:
            return self.state.create_key(self.state.default_account.email)
        email = f"{account_id}@{self.state.project_id}.iam.gserviceaccount.com"
        if email not in self.state.service_accounts:
            self.state.create_service_account(account_id)
        return self.state.create_key(email)

    def serve_forever(self) -> None:
        """Answer in the calling thread until interrupted (Ctrl-C / SIGTERM)."""
        self._socket.listen(128)
        self._server.run(sockets=[self._socket])

    def start(self) -> EmulatorServer:
        """Answer from a daemon thread; returns once the server accepts connections."""
        self._socket.listen(128)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="gcptoken-emulator", daemon=True
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the emulator failed to start")
            self._thread.join(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)
        self._socket.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

