"""The fixtures every gRPC test module shares: a verifying echo server and a fresh account's credentials."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gcptoken import load_credentials
from gcptoken.credentials import Credentials
from gcptoken.testing import EmulatorClient
from tests.integrations.grpc.server import EchoServer, serving


@pytest.fixture
def server(emulator: EmulatorClient) -> Iterator[EchoServer]:
    yield from serving(emulator.url)


@pytest.fixture
def credentials(key_path: Path) -> Credentials:
    return load_credentials(key_path)
