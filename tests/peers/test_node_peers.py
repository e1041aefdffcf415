"""Google's Node client, ``google-auth-library`` from npm, unchanged but for endpoint options,
against the emulator over real HTTP: key files, an emulated VM, verifyIdToken across a rotation,
getTokenInfo, impersonation, user refresh tokens, external accounts, and a bare jwt-bearer script.
The Node side is tests/peers/node/peer.js; its transporter sends Google's hosts to the emulator
and refuses any other non-loopback address."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gcptoken import Verifier
from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.testing import CLOSED_LOOPBACK, EmulatorClient

NODE_SOURCES = Path(__file__).parent / "node"
AUD = "https://svc-node-peer.a.run.app"

pytestmark = pytest.mark.slow


def run_node(peer: Path, command: str, inputs: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    (peer / f"{command}.json").write_text(json.dumps(inputs))
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(peer),
        # Nothing may reach a real metadata server: the VM flow sets these to the emulator.
        "GCE_METADATA_HOST": CLOSED_LOOPBACK,
        "GCE_METADATA_IP": CLOSED_LOOPBACK,
        # GoogleAuth.getProjectId runs `gcloud config config-helper` (googleauth.js
        # getDefaultServiceProjectId) with this environment: gcloud then looks metadata.google.internal
        # up, and asks it when that resolves, unless told not to and where a metadata server is.
        "CLOUDSDK_CONFIG": str(peer / "gcloud-config"),
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
        "GCE_METADATA_ROOT": CLOSED_LOOPBACK,
        **(env or {}),
    }
    completed = subprocess.run(
        ["node", "peer.js", command, f"{command}.json"],
        cwd=peer,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout)


def verifier(emulator: EmulatorClient | EmulatorServer, audience: str = AUD) -> Verifier:
    return Verifier(audience, certs=f"{emulator.url}/oauth2/v3/certs")


def test_a_key_file_gives_access_and_id_tokens(node_peer: Path, emulator: EmulatorClient) -> None:
    key = emulator.new_key("node-key")
    result = run_node(node_peer, "key", {"emulator": emulator.url, "key": key, "audience": AUD})
    assert result["access"].startswith("ya29.")
    assert result["idClaims"]["aud"] == AUD and result["idClaims"]["email"] == key["client_email"]
    assert len(emulator.token_requests_by(key["client_email"])) == 2


def test_adc_on_an_emulated_vm(node_peer: Path, emulator: EmulatorClient) -> None:
    env = {"GCE_METADATA_HOST": emulator.host_port, "GCE_METADATA_IP": emulator.host_port}
    result = run_node(node_peer, "vm", {"audience": AUD}, env)
    claims = result["idClaims"]
    assert claims["aud"] == AUD and claims["sub"] == emulator.state.default_account.unique_id
    assert claims["email"] == emulator.state.default_account.email  # Node asks for format=full
    assert result["access"].startswith("ya29.") and result["projectId"] == emulator.state.project_id
    assert emulator.requests("/computeMetadata/v1/instance")[-1]["status"] == 301  # its GCE detection


@pytest.fixture
def quick_rotation() -> Iterator[EmulatorServer]:
    """An emulator whose certs may be cached 2 s, so a whole rotation fits in a test."""
    with EmulatorServer(EmulatorState(certs_max_age=2)) as server:
        yield server


def test_verify_id_token_across_a_rotation(node_peer: Path, quick_rotation: EmulatorServer) -> None:
    emulator = quick_rotation
    identity = f"{emulator.url}/computeMetadata/v1/instance/service-accounts/default/identity?audience={AUD}"
    import httpx

    token = httpx.get(identity, headers={"Metadata-Flavor": "Google"}).text
    inputs = {
        "emulator": emulator.url,
        "token": token,
        "audience": AUD,
        "rotateUrl": f"{emulator.url}/emulator/v1/signingKeys:rotate",
        "mintUrl": identity,
    }
    result = run_node(node_peer, "verify", inputs)
    subject = emulator.state.default_account.unique_id
    assert result["first"] == result["second"] == result["firstAgain"] == subject
    assert result["secondKid"] != result["firstKid"]  # the new key signed, and Node had it by then
    assert result["wrongAudience"] == "refused"


def test_get_token_info(node_peer: Path, emulator: EmulatorClient) -> None:
    from gcptoken import MetadataCredentials

    access = MetadataCredentials(host=emulator.host_port).access_token(use_cache=False).value
    info = run_node(node_peer, "tokeninfo", {"emulator": emulator.url, "accessToken": access})
    assert info["email"] == emulator.state.default_account.email
    assert info["scopes"] == ["https://www.googleapis.com/auth/cloud-platform"]


@pytest.mark.parametrize("chain", [0, 1], ids=["direct", "through-a-delegate"])
def test_impersonated(node_peer: Path, emulator: EmulatorClient, chain: int) -> None:
    key = emulator.new_key("node-source")
    target = emulator.new_key("node-target")["client_email"]
    delegates = [emulator.new_key("node-delegate")["client_email"] for _ in range(chain)]
    caller = f"serviceAccount:{key['client_email']}"
    for account in [*delegates, target]:
        emulator.state.grant_token_creator(account, caller)
        caller = f"serviceAccount:{account}"
    # IAM takes delegates as resource names (a bare email is refused, by Google as by the emulator).
    names = [f"projects/-/serviceAccounts/{email}" for email in delegates]
    inputs = {"emulator": emulator.url, "key": key, "target": target, "delegates": names, "audience": AUD}
    result = run_node(node_peer, "impersonated", inputs)
    assert result["access"].startswith("ya29.")
    claims = verifier(emulator).verify(result["idToken"])
    assert claims["email"] == target and claims["azp"] == target  # useEmailAzp, as Node sends it
    assert result["signed"]["keyId"] and result["signed"]["signedBlob"]


def test_user_refresh_token(node_peer: Path, emulator: EmulatorClient) -> None:
    user = emulator.state.issue_refresh_token("node-user@example.com")
    result = run_node(node_peer, "user", {"emulator": emulator.url, "user": user})
    assert result["access"].startswith("ya29.")
    assert result["idClaims"]["aud"] == user["client_id"] and result["idClaims"]["email"] == "node-user@example.com"


def test_external_account_from_the_state_dir(node_peer: Path, tmp_path: Path) -> None:
    with EmulatorServer(state_dir=tmp_path / "state") as emulator:
        inputs = {"emulator": emulator.url, "file": str(tmp_path / "state" / "external-account.json")}
        result = run_node(node_peer, "external", inputs)
        assert result["access"].startswith("ya29.")
        assert result["projectId"] == emulator.state.project_id  # through Resource Manager
        assert emulator.state.request_log()[-1]["path"].startswith("/v1/projects/")


@pytest.mark.parametrize(
    ("name", "principal"),
    [
        ("external-account-aws.json", "serviceAccount:impersonated@"),
        ("external-account-authorized-user.json", "principal://iam.googleapis.com/locations/global/workforcePools/"),
    ],
)
def test_aws_and_workforce_files_from_the_state_dir(node_peer: Path, tmp_path: Path, name: str, principal: str) -> None:
    """Node's AwsClient (IMDSv2 and SigV4 against the emulated EC2 metadata and STS) and its
    ExternalAccountAuthorizedUserClient, unchanged, read the state dir's files."""
    with EmulatorServer(state_dir=tmp_path / "state") as emulator:
        result = run_node(node_peer, "anyFile", {"file": str(tmp_path / "state" / name)})
        grant = emulator.state.access_tokens[result["access"]]
        assert grant.principal.startswith(principal)
        if name == "external-account-aws.json":
            paths = [entry["path"] for entry in emulator.state.request_log()]
            assert "/latest/api/token" in paths and "/v1/token" in paths


def test_a_bare_jwt_bearer_script(node_peer: Path, emulator: EmulatorClient) -> None:
    key = emulator.new_key("node-seed")
    result = run_node(node_peer, "seed", {"emulator": emulator.url, "key": key, "audience": AUD})
    assert result["status"] == 200
    assert result["idClaims"]["aud"] == AUD and result["idClaims"]["email"] == key["client_email"]
