"""Running the emulator: in a background thread (tests, the demo) or in the foreground (CLI)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from gcptoken.emulator.http.app import create_app
from gcptoken.emulator.http.guard_rules import emulator_rules
from gcptoken.emulator.metadata.server import set_platform
from gcptoken.emulator.state.lock import StateDirLock
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.emulator.state.state_dir import load_state, open_state_dir, write_state_dir
from gcptoken.emulator.sts import mtls
from gcptoken.servers.asgi_guard import Rules
from gcptoken.servers.guard import Network
from gcptoken.servers.serving import AsgiServer, bind

__all__ = ["EmulatorServer"]


def mtls_server(state: EmulatorState, host: str, port: int, rules: Rules | None = None) -> AsgiServer:
    """The emulator's endpoints over TLS with client certificates required (X.509 federation)."""
    issued = state.workload_ca.server_certificate()
    with tempfile.TemporaryDirectory(prefix="gcptoken-mtls-") as scratch:  # 0700; load_cert_chain wants files
        cert_path, key_path = os.path.join(scratch, "server.pem"), os.path.join(scratch, "server.key")
        for path, text in ((cert_path, issued.cert_pem), (key_path, issued.key_pem)):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
                file.write(text)
        context = mtls.server_context(state.workload_ca, cert_path, key_path)
    state.trust_hooks.append(lambda pem: context.load_verify_locations(cadata=pem))
    return AsgiServer(create_app(state, rules), bind(host, port, "--mtls-port"), context, mtls.ClientCertProtocol)


class EmulatorServer(AsgiServer):
    """The emulator on a real socket. ``port=0`` picks a free port; ``url`` tells which."""

    def __init__(
        self,
        state: EmulatorState | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: str | os.PathLike[str] | None = None,
        mtls_port: int | None = None,
        allow_hosts: Sequence[str] = (),
        allow_admin: Sequence[Network] = (),
        platform: str | None = None,
    ) -> None:
        """``mtls_port``: also serve every endpoint over TLS with client certificates required
        (X.509 federation; 0 picks a free port); ``mtls.url`` says where. ``allow_hosts``: Host
        names answered besides loopback and the bound address; ``allow_admin``: peers besides
        loopback let into the admin API and console; ``platform``: whose metadata server to
        answer as (``gce`` unless the state says otherwise; the env file then names the variables
        that platform's runtime sets)."""
        self.state_dir = Path(state_dir) if state_dir is not None else None
        # The directory is checked, and locked against a second emulator, before anything is read
        # or written and before the port is bound, so its problems are named as such.
        self._private_dir = open_state_dir(self.state_dir) if self.state_dir is not None else None
        self._lock = StateDirLock(self._private_dir) if self._private_dir is not None else None
        try:
            self._set_up(state, host, port, mtls_port, emulator_rules(allow_hosts, allow_admin), platform)
        except BaseException:
            self._release()
            raise

    def _set_up(
        self,
        state: EmulatorState | None,
        host: str,
        port: int,
        mtls_port: int | None,
        rules: Rules,
        platform: str | None,
    ) -> None:
        self.state = state or load_state(self._private_dir)
        if platform is not None:
            set_platform(self.state, platform)
        super().__init__(create_app(self.state, rules), bind(host, port, "--port"))
        self.state.base_url = self.url
        self.mtls: AsgiServer | None = None
        if mtls_port is not None:
            try:
                self.mtls = mtls_server(self.state, host, mtls_port, rules)
            except OSError:
                self._socket.close()
                raise
            self.state.mtls_url = self.mtls.url
        if self._private_dir is not None and self._lock is not None:
            self._lock.record(self.url)
            write_state_dir(self.state, self._private_dir, self.host_port)

    def _release(self) -> None:
        """Let another emulator use the state dir."""
        if self._lock is not None:
            self._lock.release()

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

    def serve_forever(self, ready: Callable[[], None] | None = None) -> None:
        if self.mtls is not None:
            self.mtls.start()
        try:
            super().serve_forever(ready)
        finally:
            if self.mtls is not None:
                self.mtls.stop()
            self._release()

    def stop(self) -> None:
        if self.mtls is not None:
            self.mtls.stop()
        super().stop()
        self._release()

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self
