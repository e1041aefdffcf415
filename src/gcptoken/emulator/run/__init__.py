"""Cloud Run's front door, emulated: a loopback listener per service that checks the caller's ID
token and ``roles/run.invoker`` binding as Cloud Run does, answers Cloud Run's 401/403 pages, and
forwards the rest to any local HTTP app (services: the configuration and invoker policies;
front_door: the checks and the forwarding; pages: what Cloud Run answers and forwards; admin: the
policies over the admin API; server: the listeners)."""

from gcptoken.emulator.run.server import FrontDoorServer, start_front_doors
from gcptoken.emulator.run.services import RunService, run_services

__all__ = ["FrontDoorServer", "RunService", "run_services", "start_front_doors"]
