"""Starting the official Pub/Sub emulator (``gcloud beta emulators pubsub start`` runs the same
launcher, platform/pubsub-emulator/bin/cloud-pubsub-emulator under gcloud's install) with its JVM's
HTTP proxy pointed at the push relay, and stopping both.

The emulator pushes with java.net.HttpURLConnection (its HttpEndpointPusher), which honours the
``http.proxyHost`` system property; the launcher takes JVM options from
``CLOUD_PUBSUB_EMULATOR_OPTS``. ``http.nonProxyHosts`` must be set empty: its default skips the proxy
for localhost and 127.* (https://docs.oracle.com/en/java/javase/17/docs/api/java.base/java/net/doc-files/net-properties.html)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

from gcptoken.emulator.pubsub.front import front_app, front_protocol
from gcptoken.emulator.pubsub.peers import can_tell_processes, connection_of_process
from gcptoken.emulator.pubsub.relay import PushRelay
from gcptoken.emulator.pubsub.subscriptions import PROJECT_ID
from gcptoken.servers.serving import AsgiServer, bind

__all__ = [
    "BROWSER_REFUSED_PORTS",
    "NoRefusedPortError",
    "PubsubEmulator",
    "PubsubEmulatorMissingError",
    "find_launcher",
]

_LAUNCHER = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")
_STARTED = "Server started, listening on"
START_TIMEOUT = 60.0  # a JVM on a busy machine takes seconds


def _dying_with_us() -> Callable[[], None] | None:
    """For the child before exec: on Linux, SIGTERM it when the thread that starts it ends, however
    (even SIGKILL), so no JVM is left holding the port (prctl PR_SET_PDEATHSIG). The function is
    looked up here, in the parent: the child only calls it. Elsewhere stop() is the only way."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None).prctl
    return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class PubsubEmulatorMissingError(RuntimeError):
    """The official Pub/Sub emulator (or the Java it needs) is not installed, or did not start."""


# The JVM answers any Host and echoes any Origin with credentials, so its port must be one no browser
# connects to: the Fetch standard's "bad ports" of 1024 and above (https://fetch.spec.whatwg.org/#port-blocking,
# whatwg/fetch fetch.bs; Chromium's net/base/port_util.cc kRestrictedPorts: net::ERR_UNSAFE_PORT).
BROWSER_REFUSED_PORTS: tuple[int, ...] = (1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000)
BROWSER_REFUSED_PORTS += (6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080)


class NoRefusedPortError(PubsubEmulatorMissingError):
    """Every port browsers refuse is taken: the JVM is not started on one they would reach."""


def _port_browsers_refuse() -> socket.socket:
    """A socket held on the first free port of BROWSER_REFUSED_PORTS (on loopback)."""
    for port in BROWSER_REFUSED_PORTS:
        try:
            return bind("127.0.0.1", port, "the Pub/Sub emulator's private port")
        except OSError:
            continue
    raise NoRefusedPortError(
        "every port browsers refuse to connect to (" + ", ".join(map(str, BROWSER_REFUSED_PORTS)) + ") is in use "
        "on 127.0.0.1: the Pub/Sub emulator is not started on one web pages could reach; free one of them"
    )


def find_launcher() -> Path:
    """The Pub/Sub emulator's launcher under gcloud's install ($CLOUDSDK_ROOT_DIR, else where the
    ``gcloud`` on PATH lives); PubsubEmulatorMissingError says what is missing."""
    roots = [Path(os.environ["CLOUDSDK_ROOT_DIR"])] if os.environ.get("CLOUDSDK_ROOT_DIR") else []
    gcloud = shutil.which("gcloud")
    if gcloud is not None:
        roots.append(Path(os.path.realpath(gcloud)).parent.parent)
    if not roots:
        raise PubsubEmulatorMissingError("gcloud is not installed (the Pub/Sub emulator comes with it)")
    for root in roots:
        if (root / _LAUNCHER).is_file():
            java_home = os.environ.get("JAVA_HOME")
            if shutil.which("java") is None and not (java_home and Path(java_home, "bin", "java").is_file()):
                raise PubsubEmulatorMissingError("the Pub/Sub emulator needs Java: java is not on PATH")
            return root / _LAUNCHER
    raise PubsubEmulatorMissingError(
        f"the Pub/Sub emulator is not installed under {roots[0]} (gcloud components install pubsub-emulator, "
        "or the google-cloud-cli-pubsub-emulator package)"
    )


class PubsubEmulator:
    """The official Pub/Sub emulator on ``host_port`` (PUBSUB_EMULATOR_HOST), whose pushes carry ID
    tokens minted by gcptoken's emulator at ``emulator_url``. ``port=0`` picks a free port. Clients
    reach the guarded front there (``allow_hosts``: Host names it answers besides loopback); the
    JVM listens on ``jvm_url``, a private loopback port. Start it from a thread that outlives it
    (the main thread, say): on Linux the JVM ends with that thread."""

    def __init__(
        self,
        emulator_url: str,
        *,
        port: int = 0,
        allow_remote_endpoints: bool = False,
        projects: Iterable[str] = (),
        allow_hosts: Iterable[str] = (),
        log: logging.Logger | None = None,
    ) -> None:
        self.emulator_url, self.allow_remote_endpoints = emulator_url, allow_remote_endpoints
        self.log = log or logging.getLogger("gcptoken.pubsub")
        # Where pushes that name no subscription (noWrapper without writeMetadata) are looked for:
        # these, PUBSUB_PROJECT_ID (what `gcloud beta emulators pubsub env-init` exports), every
        # project clients name through the front, and every project a push names.
        env_project = os.environ.get("PUBSUB_PROJECT_ID")
        for source, project in [*(("projects", p) for p in projects), ("PUBSUB_PROJECT_ID", env_project or "x")]:
            if not PROJECT_ID.fullmatch(project):
                raise ValueError(f"{source}: {project[:70]!r} is not a project ID")
        self.projects = {*projects, *filter(None, [env_project])}
        self.launcher = find_launcher()
        self.allow_hosts = tuple(allow_hosts)
        # Clients reach the guarded front (front.py); the JVM, which answers any page, a loopback port
        # browsers refuse (local processes can still reach it, as they can the emulator's admin API).
        self._jvm_socket = _port_browsers_refuse()  # held until it starts
        try:
            self._port_socket = bind("127.0.0.1", port)
        except OSError:
            self._jvm_socket.close()
            raise
        self.port: int = self._port_socket.getsockname()[1]
        self.host_port = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host_port}"
        self.jvm_port: int = self._jvm_socket.getsockname()[1]
        self.jvm_url = f"http://127.0.0.1:{self.jvm_port}"
        self._process: subprocess.Popen[str] | None = None
        self._relay: AsgiServer | None = None
        self._front: AsgiServer | None = None
        self.relay_url: str | None = None  # where the JVM's pushes go first, once started
        self._output: list[str] = []

    def _is_jvm(self, peer: tuple[str, int], server: tuple[str, int]) -> bool:
        return self._process is not None and connection_of_process(self._process.pid, peer, server)

    def start(self) -> PubsubEmulator:
        relay = PushRelay(
            self.jvm_url,
            self.emulator_url,
            allow_remote=self.allow_remote_endpoints,
            projects=self.projects,
            is_pubsub_peer=self._is_jvm if can_tell_processes() else None,
            log=self.log,
        )
        self._relay = AsgiServer(relay, bind("127.0.0.1", 0, "the relay's port")).start()
        self.relay_url = self._relay.url
        # http only: the emulator's REST gateway reaches its own gRPC server through the https proxy
        # (gRPC honours https.proxyHost), and a header cannot be added inside TLS anyway.
        proxy = f"-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort={self._relay.port} -Dhttp.nonProxyHosts="
        env = dict(os.environ, CLOUD_PUBSUB_EMULATOR_OPTS=f"{os.environ.get('CLOUD_PUBSUB_EMULATOR_OPTS', '')} {proxy}")
        command = [str(self.launcher), "--host=127.0.0.1", f"--port={self.jvm_port}"]
        self._jvm_socket.close()
        try:
            # Its own session: a terminal's Ctrl-C reaches only us, and we stop it (not it alone, first).
            self._process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
                preexec_fn=_dying_with_us(),
            )
            self._wait_started()
            front = front_app(self.jvm_port, self.allow_hosts, self.log, self.projects.add)
            protocol = front_protocol(self.jvm_port, self.projects.add)
            self._front = AsgiServer(front, self._port_socket, protocol=protocol).start()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_started(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        started = threading.Event()
        output = self._process.stdout

        def drain() -> None:  # the JVM logs every push: keep reading, or its pipe fills and it blocks
            for line in output:
                if len(self._output) < 200:
                    self._output.append(line.rstrip())
                if _STARTED in line:
                    started.set()
            output.close()

        threading.Thread(target=drain, name=f"pubsub-emulator-{self.port}", daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while not started.wait(0.1):
            if self._process.poll() is not None or time.monotonic() > deadline:
                said = " | ".join(self._output[-5:])
                raise PubsubEmulatorMissingError(f"the Pub/Sub emulator did not start on {self.host_port}: {said}")

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for server in (self._front, self._relay):
            if server is not None:
                server.stop()
        self._front = self._relay = None
        self._port_socket.close()
        self._jvm_socket.close()

    def __enter__(self) -> PubsubEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
