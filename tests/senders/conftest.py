"""The senders' tests share one receiving service (receiver.py)."""

from tests.senders.receiver import _served, receiver

__all__ = ["_served", "receiver"]
