"""Round trips each flow costs, counted at the emulator: the first call, and a repeated one."""

from __future__ import annotations

from pathlib import Path

import pytest

from gcptoken import Credentials, ImpersonatedCredentials, MetadataCredentials, load_credentials
from gcptoken.testing import EmulatorClient, write_key_file

AUD = "https://svc-trips.a.run.app"


def trips(emulator: EmulatorClient, credentials: Credentials, audience: str, use_cache: bool = True) -> int:
    before = len(emulator.state.request_log())
    credentials.id_token(audience, use_cache=use_cache)
    return len(emulator.state.request_log()) - before


@pytest.fixture(autouse=True)
def _iam_at_the_emulator(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)


def test_direct_sources_cost_one_round_trip(emulator: EmulatorClient, key_path: Path, tmp_path: Path) -> None:
    user_info = emulator.state.issue_refresh_token("trips@example.com")
    user = load_credentials(write_key_file(tmp_path, user_info, "user.json"))
    for credentials, audience in (
        (load_credentials(key_path), AUD),
        (MetadataCredentials(host=emulator.host_port), AUD),
        (user, user_info["client_id"]),
    ):
        assert trips(emulator, credentials, audience) == 1
        assert trips(emulator, credentials, audience) == 0  # cached
        assert trips(emulator, credentials, audience, use_cache=False) == 1


def test_impersonation_costs_two_then_one(emulator: EmulatorClient, key_path: Path, key_info: dict[str, str]) -> None:
    target = emulator.new_key("trips-target")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")
    credentials = ImpersonatedCredentials(load_credentials(key_path), target)
    assert trips(emulator, credentials, AUD) == 2  # the source's access token, then generateIdToken
    assert trips(emulator, credentials, AUD) == 0  # the ID token is cached
    assert trips(emulator, credentials, AUD, use_cache=False) == 1  # the source's token is reused
