"""The front doors' listeners: one loopback port per service, its "service URL", behind the local
servers' request guard (loopback peers, Host checked against DNS rebinding; Cloud Run too routes
by Host and answers nothing for a name it does not serve)."""

from __future__ import annotations

from collections.abc import Sequence

from gcptoken.emulator.run.front_door import FrontDoor
from gcptoken.emulator.run.services import RunService, run_services
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.local.proxy_guard import guarded_proxy
from gcptoken.servers.guard import Network
from gcptoken.servers.serving import AsgiServer, bind

__all__ = ["FrontDoorServer", "start_front_doors"]


class FrontDoorServer(AsgiServer):
    """``service``'s front door on ``host:port`` (0: ``service.port``, else a free port), checking tokens against
    ``state``'s keys and invokers. ``service.urls`` become ``http://HOST:PORT`` and
    ``http://localhost:PORT`` (two URLs, as a Cloud Run service has two, and both are audiences)."""

    def __init__(
        self,
        state: EmulatorState,
        service: RunService,
        host: str = "127.0.0.1",
        port: int = 0,
        allow: Sequence[Network] = (),
        hosts: Sequence[str] = (),
    ) -> None:
        sock = bind(host, port or service.port, f"--run {service.name}")
        try:
            bound = sock.getsockname()[1]
            literal = f"[{host}]" if ":" in host else host
            service.urls = (f"http://{literal}:{bound}", f"http://localhost:{bound}")
            self.service = run_services(state).add(service)
            self.front_door = FrontDoor(service, run_services(state), f"{state.base_url}/oauth2/v3/certs", state=state)
            self.front_door.host_header = (
                b"host",
                f"{literal}:{bound}".encode("ascii"),
            )  # the service's, as Cloud Run's
            app = guarded_proxy(self.front_door, allow, hosts)
        except BaseException:
            sock.close()
            raise
        super().__init__(app, sock, date_header=False)

    def start(self) -> FrontDoorServer:
        super().start()
        return self

    def __enter__(self) -> FrontDoorServer:
        return self.start()

    def stop(self) -> None:
        super().stop()
        self.front_door.registry.remove(self.service.name)  # the name may front another app now

    def grant(self, *members: str) -> None:
        """Bind ``members`` to roles/run.invoker on this service (``allUsers`` makes it public)."""
        self.front_door.registry.grant(self.service.name, members)

    def set_invokers(self, *members: str) -> None:
        """Replace the service's invokers (none: every call refused, 403)."""
        self.front_door.registry.set_invokers(self.service.name, members)


def start_front_doors(
    state: EmulatorState, services: Sequence[RunService], host: str = "127.0.0.1", hosts: Sequence[str] = ()
) -> list[FrontDoorServer]:
    """A started front door per service on its ``port`` of ``host`` (0: a free one; all stopped again if one
    cannot start); ``hosts``: Host names answered besides loopback's."""
    started: list[FrontDoorServer] = []
    try:
        for service in services:
            started.append(FrontDoorServer(state, service, host, hosts=hosts).start())
    except BaseException:
        for server in started:
            server.stop()
        raise
    return started
