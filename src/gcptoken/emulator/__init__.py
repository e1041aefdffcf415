"""A local emulator of Google's token service: OAuth2 token endpoint, certs, tokeninfo, admin."""

from gcptoken.extras import require

require("emulator", "the emulator")  # before any import of its modules: one clear line if missing


from gcptoken.emulator.server import EmulatorServer
from gcptoken.emulator.state import EmulatorState

__all__ = ["EmulatorServer", "EmulatorState"]
