"""A local emulator of Google's token services, one sub-package per service it stands for: oauth2
(token endpoint, sign-in), iam (IAM Credentials), sts (STS and federation), metadata (the metadata
server), keys (published keys and certificates), resourcemanager; and the emulator's own state, admin
(API and console) and http (the app, running it). scenarios makes ready-made credentials against it."""

from gcptoken.extras import require

require("emulator", "gcptoken.emulator")  # before any import of its modules: one clear line if missing


from gcptoken.emulator.http.server import EmulatorServer
from gcptoken.emulator.state.lock import StateDirInUseError
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.senders.refused import SenderRefusedError

__all__ = ["EmulatorServer", "EmulatorState", "SenderRefusedError", "StateDirInUseError"]
