"""The senders' tests share one receiving service (receiver.py), and Cloud Tasks' service agent
without its project-level role."""

from collections.abc import Iterator

import httpx
import pytest

from gcptoken.testing import EmulatorClient
from tests.senders.receiver import _served, receiver

__all__ = ["_served", "receiver", "tasks_agent_without_its_role"]


@pytest.fixture
def tasks_agent_without_its_role(emulator: EmulatorClient) -> Iterator[None]:
    url = f"{emulator.url}/emulator/v1/serviceAgents/tasks"
    assert httpx.put(url, json={"projectRole": False}).json()["projectRole"] is False
    try:
        yield
    finally:
        assert httpx.put(url, json={"projectRole": True}).json()["projectRole"] is True
