"""An uploaded key through Google's own programs: google-auth's service_account.Credentials signs
with the private half the user kept (a key file naming the uploaded key's id), and the real gcloud
uploads a certificate and lists, fetches, disables and deletes keys against the emulator's IAM API
(``CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM``; skipped where gcloud is not installed)."""

from __future__ import annotations

import json
from pathlib import Path

import google.auth.transport.requests
import pytest
from google.oauth2 import id_token as google_id_token
from google.oauth2 import service_account as google_service_account

from gcptoken import Verifier
from gcptoken.testing import EmulatorClient
from tests.emulator.iam.uploads import CLOUD_PLATFORM, key_admin, key_pair, uploaded_key_file

from .test_gcloud import GCLOUD, gcloud_env, run_gcloud

AUD = "https://uploaded-peer.example.com"


def test_google_auth_signs_with_an_uploaded_key(emulator: EmulatorClient) -> None:
    email, kid, _, info = uploaded_key_file(emulator, "google-auth-upload")
    request = google.auth.transport.requests.Request()
    access = google_service_account.Credentials.from_service_account_info(info, scopes=[CLOUD_PLATFORM])
    access.refresh(request)
    assert access.token.startswith("ya29.")
    identity = google_service_account.IDTokenCredentials.from_service_account_info(info, target_audience=AUD)
    identity.refresh(request)
    assert Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs").verify(identity.token)["email"] == email
    assert {entry["detail"]["assertion"]["header"]["kid"] for entry in emulator.token_requests_by(email)} == {kid}
    # google-auth's self-signed JWT (its jwt.Credentials), verified against the account's published certificates.
    from google.auth import jwt as google_jwt

    signed = google_jwt.Credentials.from_service_account_info(info, audience=AUD)
    signed.refresh(request)
    certs = f"{emulator.url}/robot/v1/metadata/x509/{email}"
    assert google_id_token.verify_token(signed.token, request, audience=AUD, certs_url=certs)["sub"] == email


@pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed on this machine")
def test_gcloud_uploads_lists_disables_and_deletes(emulator: EmulatorClient, tmp_path: Path) -> None:
    admin = emulator.new_key("gcloud-key-admin")
    target = emulator.state.create_service_account("gcloud-upload-target").email
    emulator.state.key_admins.setdefault(target, set()).add(f"serviceAccount:{admin['client_email']}")
    env = gcloud_env(emulator, tmp_path / "gcloud-config")
    env["CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM"] = f"{emulator.url}/"
    env["CLOUDSDK_CORE_PROJECT"] = emulator.state.project_id  # keys upload names the account in a project
    key_path = tmp_path / "admin.json"
    key_path.write_text(json.dumps(admin))
    activated = run_gcloud(["auth", "activate-service-account", "--key-file", str(key_path)], env)
    assert activated.returncode == 0, activated.stderr

    pair = key_pair()
    cert_path = tmp_path / "public.pem"
    cert_path.write_text(pair.certificate_pem)
    account = f"--iam-account={target}"
    uploaded = run_gcloud(["iam", "service-accounts", "keys", "upload", str(cert_path), account, "--format=json"], env)
    assert uploaded.returncode == 0, uploaded.stderr
    resource = json.loads(uploaded.stdout)
    kid = resource["name"].rsplit("/", 1)[1]
    assert resource["keyOrigin"] == "USER_PROVIDED" and kid in emulator.state.service_accounts[target].uploaded

    listed = run_gcloud(["iam", "service-accounts", "keys", "list", account, "--managed-by=user", "--format=json"], env)
    assert listed.returncode == 0, listed.stderr
    assert [key["name"].rsplit("/", 1)[1] for key in json.loads(listed.stdout)] == [kid]
    table = run_gcloud(["iam", "service-accounts", "keys", "list", account], env)
    assert kid in table.stdout and "KEY_ID" in table.stdout

    public_path = tmp_path / "fetched.pem"
    fetched = run_gcloud(
        ["beta", "iam", "service-accounts", "keys", "get-public-key", kid, account, f"--output-file={public_path}"], env
    )
    assert fetched.returncode == 0, fetched.stderr
    assert public_path.read_text() == pair.certificate_pem  # the certificate as uploaded

    refused = run_gcloud(["iam", "service-accounts", "keys", "upload", str(cert_path), account], env)
    assert refused.returncode != 0 and "already uploaded" in refused.stderr

    disabled = run_gcloud(["iam", "service-accounts", "keys", "disable", kid, account], env)
    assert disabled.returncode == 0, disabled.stderr
    assert kid in emulator.state.service_accounts[target].disabled_keys
    enabled = run_gcloud(["iam", "service-accounts", "keys", "enable", kid, account], env)
    assert enabled.returncode == 0, enabled.stderr
    deleted = run_gcloud(["iam", "service-accounts", "keys", "delete", kid, account, "--quiet"], env)
    assert deleted.returncode == 0, deleted.stderr
    assert kid not in emulator.state.service_accounts[target].keys


@pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed on this machine")
def test_gcloud_without_key_admin_is_denied(emulator: EmulatorClient, tmp_path: Path) -> None:
    outsider = emulator.new_key("gcloud-outsider")
    target = emulator.state.create_service_account("gcloud-denied-target").email
    key_admin(emulator, target)  # someone else holds the role
    env = gcloud_env(emulator, tmp_path / "gcloud-config")
    env["CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM"] = f"{emulator.url}/"
    env["CLOUDSDK_CORE_PROJECT"] = emulator.state.project_id  # keys upload names the account in a project
    key_path = tmp_path / "outsider.json"
    key_path.write_text(json.dumps(outsider))
    assert run_gcloud(["auth", "activate-service-account", "--key-file", str(key_path)], env).returncode == 0
    cert_path = tmp_path / "public.pem"
    cert_path.write_text(key_pair().certificate_pem)
    refused = run_gcloud(["iam", "service-accounts", "keys", "upload", str(cert_path), f"--iam-account={target}"], env)
    assert refused.returncode != 0
    assert "PERMISSION_DENIED" in refused.stderr and "iam.serviceAccountKeys.create" in refused.stderr
