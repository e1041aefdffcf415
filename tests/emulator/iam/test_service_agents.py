"""Google's products mint the ID tokens they send through their service agent, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from google.auth.transport.requests import Request
from google.oauth2 import id_token

from gcptoken.emulator.iam.service_agents import PRODUCTS
from gcptoken.testing import EmulatorClient

AUDIENCE = "https://push.example.com/pubsub"


def mint(emulator: EmulatorClient, product: str, email: str, audience: str = AUDIENCE) -> httpx.Response:
    url = f"{emulator.url}/emulator/v1/serviceAgents/{product}:generateIdToken"
    return httpx.post(url, json={"serviceAccount": email, "audience": audience})


@pytest.fixture
def without_project_role(emulator: EmulatorClient) -> Iterator[str]:
    """Pub/Sub's service agent with its project-level role taken away; restored afterwards."""
    url = f"{emulator.url}/emulator/v1/serviceAgents/pubsub"
    answer = httpx.put(url, json={"projectRole": False}).json()
    try:
        assert answer["projectRole"] is False
        yield answer["serviceAgent"]
    finally:
        assert httpx.put(url, json={"projectRole": True}).json()["projectRole"] is True


@pytest.mark.parametrize("product", sorted(PRODUCTS))
def test_each_product_mints_what_google_sends(emulator: EmulatorClient, product: str) -> None:
    email = emulator.new_key(f"push-{product}")["client_email"]
    answer = mint(emulator, product, email.upper())  # Google takes an account's email in any case
    assert answer.status_code == 200, answer.text
    # google-auth's verifier, pointed at the emulator's certs, accepts it as the product's own.
    certs = f"{emulator.url}/oauth2/v1/certs"
    verified = id_token.verify_token(answer.json()["token"], Request(), AUDIENCE, certs_url=certs)
    account = emulator.state.service_accounts[email]
    assert verified["email"] == email and verified["email_verified"] is True
    assert verified["sub"] == verified["azp"] == account.unique_id
    assert verified["iss"] == "https://accounts.google.com"


def test_unknown_account_and_product_are_refused(emulator: EmulatorClient) -> None:
    missing = mint(emulator, "pubsub", "nobody@example-project.iam.gserviceaccount.com")
    assert missing.status_code == 404
    assert "does not exist" in missing.json()["error"]["message"]
    email = emulator.new_key("push")["client_email"]
    assert mint(emulator, "cloudbuild", email).status_code == 400
    assert mint(emulator, "pubsub", email, audience="").status_code == 400
    assert httpx.get(f"{emulator.url}/emulator/v1/serviceAgents/cloudbuild").status_code == 404


def test_agent_without_its_role_needs_the_token_creator_binding(
    emulator: EmulatorClient, without_project_role: str
) -> None:
    email = emulator.new_key("push")["client_email"]
    assert without_project_role == f"service-{emulator.state.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    refused = mint(emulator, "pubsub", email)
    assert refused.status_code == 403
    assert "roles/iam.serviceAccountTokenCreator" in refused.json()["error"]["message"]
    assert mint(emulator, "eventarc", email).status_code == 403  # Eventarc pushes through Pub/Sub
    assert mint(emulator, "tasks", email).status_code == 200  # another product's agent is unaffected
    binding = f"{emulator.url}/emulator/v1/serviceAccounts/{email}/tokenCreators"
    assert httpx.post(binding, json={"member": f"serviceAccount:{without_project_role}"}).status_code == 200
    assert mint(emulator, "pubsub", email).status_code == 200
