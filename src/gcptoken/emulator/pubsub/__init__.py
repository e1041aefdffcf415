"""Pub/Sub push with ID tokens, locally: the official Pub/Sub emulator (installed with gcloud) stores a
push subscription's ``pushConfig.oidcToken`` but pushes with no ``Authorization`` header. gcptoken
starts it with its JVM's HTTP proxy pointed at a relay (``relay``) that adds the ID token Pub/Sub would
send, minted by gcptoken's emulator. ``launcher`` starts both, the JVM on a port browsers refuse behind
``front``, which refuses what web pages send; ``which`` tells the subscription a push is for, reading
``subscriptions`` from the Pub/Sub emulator's own API; ``peers`` tells its JVM's connections from
anyone else's."""

from gcptoken.emulator.pubsub.launcher import PubsubEmulator, PubsubEmulatorMissingError, find_launcher
from gcptoken.emulator.pubsub.relay import PushRelay

__all__ = ["PubsubEmulator", "PubsubEmulatorMissingError", "PushRelay", "find_launcher"]
