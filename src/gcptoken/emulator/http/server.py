"""Running the emulator: in a background thread (tests, the demo) or in the foreground (CLI)."""

from __future__ import annotations

import os
import ssl
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


def _server_context(state: EmulatorState, client_certificates: bool) -> ssl.SSLContext:
    """TLS with a server certificate from the emulator's CA (localhost, 127.0.0.1, ::1)."""
    issued = state.workload_ca.server_certificate()
    with tempfile.TemporaryDirectory(prefix="gcptoken-tls-") as scratch:  # 0700; load_cert_chain wants files
        cert_path, key_path = os.path.join(scratch, "server.pem"), os.path.join(scratch, "server.key")
        for path, text in ((cert_path, issued.cert_pem), (key_path, issued.key_pem)):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
                file.write(text)
        if client_certificates:
            return mtls.server_context(state.workload_ca, cert_path, key_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_path, key_path)
        return context


def mtls_server(state: EmulatorState, host: str, port: int, rules: Rules | None = None) -> AsgiServer:
    """The emulator's endpoints over TLS with client certificates required (X.509 federation)."""
    context = _server_context(state, client_certificates=True)
    state.trust_hooks.append(lambda pem: context.load_verify_locations(cadata=pem))
    return AsgiServer(create_app(state, rules), bind(host, port, "--mtls-port"), context, mtls.ClientCertProtocol)


def tls_server(state: EmulatorState, host: str, port: int, rules: Rules | None = None) -> AsgiServer:
    """The emulator's endpoints over plain TLS (no client certificate): for clients that send
    credentials only over HTTPS, as kubectl, docker, pip and uv do to Google's hosts."""
    context = _server_context(state, client_certificates=False)
    return AsgiServer(create_app(state, rules), bind(host, port, "--tls-port"), context)


class EmulatorServer(AsgiServer):
    """The emulator on a real socket. ``port=0`` picks a free port; ``url`` tells which."""

    def __init__(
        self,
        state: EmulatorState | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: str | os.PathLike[str] | None = None,
        mtls_port: int | None = None,
        tls_port: int | None = None,
        allow_hosts: Sequence[str] = (),
        allow_admin: Sequence[Network] = (),
        platform: str | None = None,
    ) -> None:
        """``mtls_port``: also serve every endpoint over TLS with client certificates required
        (X.509 federation; 0 picks a free port); ``mtls.url`` says where. ``tls_port``: also serve
        every endpoint over HTTPS without client certificates (``tls.url``; the CA is
        ``state.workload_ca.root_pem``). ``allow_hosts``: Host
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
            self._set_up(state, host, port, (mtls_port, tls_port), emulator_rules(allow_hosts, allow_admin), platform)
        except BaseException:
            self._release()
            raise

    def _set_up(
        self,
        state: EmulatorState | None,
        host: str,
        port: int,
        tls_ports: tuple[int | None, int | None],
        rules: Rules,
        platform: str | None,
    ) -> None:
        self.state = state or load_state(self._private_dir)
        if platform is not None:
            set_platform(self.state, platform)
        super().__init__(create_app(self.state, rules), bind(host, port, "--port"))
        self.state.base_url = self.url
        mtls_port, tls_port = tls_ports
        self.mtls: AsgiServer | None = None
        self.tls: AsgiServer | None = None
        try:
            if mtls_port is not None:
                self.mtls = mtls_server(self.state, host, mtls_port, rules)
                self.state.mtls_url = self.mtls.url
            if tls_port is not None:
                self.tls = tls_server(self.state, host, tls_port, rules)
                self.state.tls_url = self.tls.url
        except OSError:
            self._socket.close()
            if self.mtls is not None:
                self.mtls.stop()  # never started: this frees its port
            raise
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

    def _extra_ports(self) -> list[AsgiServer]:
        return [server for server in (self.mtls, self.tls) if server is not None]

    def start(self) -> EmulatorServer:
        super().start()
        for server in self._extra_ports():
            server.start()
        return self

    def serve_forever(self, ready: Callable[[], None] | None = None) -> None:
        for server in self._extra_ports():
            server.start()
        try:
            super().serve_forever(ready)
        finally:
            for server in self._extra_ports():
                server.stop()
            self._release()

    def stop(self) -> None:
        for server in self._extra_ports():
            server.stop()
        super().stop()
        self._release()

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self
