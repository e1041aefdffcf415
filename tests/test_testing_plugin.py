"""The pytest plugin as a user's test suite uses it."""

from __future__ import annotations

import os

from gcptoken import MetadataCredentials, ServiceAccountCredentials, Verifier, load_credentials
from gcptoken.testing import EmulatorClient

AUD = "https://svc-plugin.a.run.app"


def test_gcptoken_env_points_every_source_at_the_emulator(
    gcptoken_env: dict[str, str], gcptoken_emulator: EmulatorClient
) -> None:
    certs = f"{gcptoken_emulator.url}/oauth2/v3/certs"
    credentials = load_credentials()
    assert isinstance(credentials, ServiceAccountCredentials)
    assert Verifier(AUD, certs=certs).verify(credentials.id_token(AUD).value)["aud"] == AUD
    before = len(gcptoken_emulator.requests("/computeMetadata/v1/instance/service-accounts/default/identity"))
    assert Verifier(AUD, certs=certs).verify(MetadataCredentials().id_token(AUD).value)["aud"] == AUD
    after = len(gcptoken_emulator.requests("/computeMetadata/v1/instance/service-accounts/default/identity"))
    assert after == before + 1
    assert gcptoken_env["GCE_METADATA_HOST"] == gcptoken_emulator.host_port
    assert os.environ["GCE_METADATA_ROOT"] == gcptoken_env["GCE_METADATA_ROOT"] == gcptoken_emulator.host_port
