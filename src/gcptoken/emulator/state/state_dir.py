"""The emulator's ``--state-dir``: ready-made credential files of every kind, the ``env`` file that
points tools at the emulator, and the saved state, all 0600 in a directory we own."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

from gcptoken.emulator.oauth2.signin_state import OAuthClient
from gcptoken.emulator.state import persistence
from gcptoken.emulator.state.models import Provider, WorkforceGrant
from gcptoken.emulator.state.state import EmulatorState
from gcptoken.jose import jws
from gcptoken.local.metadata_platforms import runtime_environment
from gcptoken.private_files import NotPrivateError, PrivateDir

__all__ = ["aws_file", "load_state", "open_state_dir", "workforce_user_file", "write_state_dir", "x509_file"]

STATE_FILE = "state.json"
KEY_FILE = "service-account.json"
USER_FILE = "authorized-user.json"
IMPERSONATED_FILE = "impersonated-service-account.json"
EXTERNAL_FILE = "external-account.json"
SUBJECT_TOKEN_FILE = "subject-token"
DEMO_USER = "user@example.com"
POOL, PROVIDER = "emulated-pool", "emulated-oidc"
IMPERSONATION_TARGET = "impersonated"
ENV_FILE = "env"
AWS_FILE = "external-account-aws.json"
X509_FILE = "external-account-x509.json"
WORKFORCE_USER_FILE = "external-account-authorized-user.json"
AWS_PROVIDER, X509_PROVIDER = "emulated-aws", "emulated-x509"
WORKFORCE_POOL, WORKFORCE_PROVIDER = "emulated-workforce", "emulated-idp"
X509_WORKLOAD = "emulated-workload"
CA_FILE = "ca.pem"
DESKTOP_CLIENT_FILE = "desktop-client.json"
DESKTOP_CLIENT_NAME, IAP_CLIENT_NAME = "gcptoken login (emulated)", "IAP app (emulated)"
AWS_VERIFICATION_URL = "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"


def open_state_dir(path: Path) -> PrivateDir:
    """The state directory, created 0700 if missing (but not a missing folder above it); refused
    (ValueError, one line saying "state dir") when it is not ours, is writable by others, or is
    reached through a symlink."""
    try:
        return PrivateDir(str(path), parents=False)
    except NotPrivateError as exc:
        raise ValueError(f"state dir: {exc}") from None


def _write_private(directory: PrivateDir, name: str, text: str) -> None:
    """A 0600 file, atomically: a new O_EXCL|O_NOFOLLOW file renamed over the old one."""
    try:
        directory.write_atomically(name, text.encode("utf-8"))
    except (NotPrivateError, OSError) as exc:
        raise ValueError(f"state dir: {directory.path}/{name} cannot be written ({exc})") from None


def _existing(directory: PrivateDir, name: str) -> dict[str, Any] | None:
    try:
        data = directory.read(name)
        value = json.loads(data) if data else None
    except (NotPrivateError, OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _default_key_file(state: EmulatorState, directory: PrivateDir) -> dict[str, Any]:
    """The default account's key file: reused when the directory already holds a registered one."""
    account = state.default_account
    existing = _existing(directory, KEY_FILE)
    if existing and existing.get("client_email") == account.email and existing.get("private_key_id") in account.keys:
        existing["token_uri"] = f"{state.base_url}/token"
        existing["client_x509_cert_url"] = state.certs_url(account.email)  # the port may have changed
        return existing
    return state.create_key(account.email)


def _user_file(state: EmulatorState, directory: PrivateDir) -> dict[str, Any]:
    """The demo user's authorized_user file: reused while its refresh token is still known."""
    existing = _existing(directory, USER_FILE)
    if (
        existing
        and isinstance(existing.get("refresh_token"), str)
        and existing["refresh_token"] in state.refresh_tokens
    ):
        existing["token_uri"] = f"{state.base_url}/token"
        return existing
    return state.issue_refresh_token(DEMO_USER)


def _impersonated_file(state: EmulatorState, user_file: dict[str, Any]) -> dict[str, Any]:
    """An impersonated_service_account file whose source is the user, allowed to act as the target."""
    email = f"{IMPERSONATION_TARGET}@{state.project_id}.iam.gserviceaccount.com"
    if email not in state.service_accounts:
        state.create_service_account(IMPERSONATION_TARGET, "Impersonated by the demo user")
    state.grant_token_creator(email, f"user:{DEMO_USER}")
    state.grant_token_creator(email, f"serviceAccount:{state.default_account.email}")
    return {
        "delegates": [],
        "service_account_impersonation_url": (
            f"{state.base_url}/v1/projects/-/serviceAccounts/{email}:generateAccessToken"
        ),
        "source_credentials": {k: v for k, v in user_file.items() if k != "account"},
        "type": "impersonated_service_account",
    }


def _external_account_file(state: EmulatorState, directory: PrivateDir) -> dict[str, Any]:
    """external_account with a file-sourced subject token (re-minted at every start, valid a day)
    for workload ``workload-1``, allowed to act as the impersonation target."""
    provider = Provider(POOL, PROVIDER, f"{state.base_url}/oidc")
    state.providers[(POOL, PROVIDER)] = provider
    audience = provider.resource(state.project_number)
    now = int(state.clock())
    claims = {"iss": provider.issuer, "sub": "workload-1", "aud": f"https:{audience}", "iat": now, "exp": now + 86400}
    key = state.oidc_key
    _write_private(directory, SUBJECT_TOKEN_FILE, jws.encode(claims, key.key, kid=key.kid))
    target = f"{IMPERSONATION_TARGET}@{state.project_id}.iam.gserviceaccount.com"
    pool = audience.split("/providers/", 1)[0]
    state.grant_token_creator(target, f"principal:{pool}/subject/workload-1")
    return {
        "type": "external_account",
        "audience": audience,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": f"{state.base_url}/v1/token",
        "service_account_impersonation_url": (
            f"{state.base_url}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
        ),
        "credential_source": {
            "file": os.path.join(os.path.realpath(directory.path), SUBJECT_TOKEN_FILE),
            "format": {"type": "text"},
        },
    }


def _target(state: EmulatorState) -> str:
    return f"{IMPERSONATION_TARGET}@{state.project_id}.iam.gserviceaccount.com"


def _impersonation_url(base: str, target: str) -> str:
    return f"{base}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"


def aws_file(state: EmulatorState) -> dict[str, Any]:
    """external_account for the emulated EC2 instance's role: IMDSv2 at the emulator; the role's
    principal set may act as the impersonation target."""
    provider = Provider(POOL, AWS_PROVIDER, "", aws_account_id=state.aws.account_id)
    state.providers[provider.key] = provider
    pool = provider.pool(state.project_number)
    role = f"arn:aws:sts::{state.aws.account_id}:assumed-role/{state.aws.role}"
    state.grant_token_creator(_target(state), f"principalSet:{pool}/attribute.aws_role/{role}")
    base = state.base_url
    return {
        "type": "external_account",
        "audience": provider.resource(state.project_number),
        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
        "token_url": f"{base}/v1/token",
        "service_account_impersonation_url": _impersonation_url(base, _target(state)),
        "credential_source": {
            "environment_id": "aws1",
            "region_url": f"{base}/latest/meta-data/placement/availability-zone",
            "url": f"{base}/latest/meta-data/iam/security-credentials",
            "regional_cred_verification_url": AWS_VERIFICATION_URL,
            "imdsv2_session_token_url": f"{base}/latest/api/token",
        },
    }


def x509_file(state: EmulatorState, directory: PrivateDir) -> dict[str, Any]:
    """external_account for a workload certificate from the emulator's CA, over its mTLS port,
    with the certificate config, key, chain and CA written beside it."""
    ca = state.workload_ca
    provider = Provider(POOL, X509_PROVIDER, "", trust_anchors=[ca.root_pem], intermediate_cas=[ca.intermediate_pem])
    state.providers[provider.key] = provider
    state.grant_token_creator(
        _target(state), f"principal:{provider.pool(state.project_number)}/subject/{X509_WORKLOAD}"
    )
    issued = ca.workload_certificate(X509_WORKLOAD)
    here = os.path.realpath(directory.path)
    for name, text in (
        ("workload.pem", issued.cert_pem),
        ("workload.key", issued.key_pem),
        ("trust_chain.pem", ca.intermediate_pem),
        (CA_FILE, ca.root_pem),
    ):
        _write_private(directory, name, text)
    config = {"cert_configs": {"workload": {"cert_path": f"{here}/workload.pem", "key_path": f"{here}/workload.key"}}}
    _write_private(directory, "certificate_config.json", json.dumps(config, indent=2) + "\n")
    assert state.mtls_url is not None
    return {
        "type": "external_account",
        "audience": provider.resource(state.project_number),
        "subject_token_type": "urn:ietf:params:oauth:token-type:mtls",
        "token_url": f"{state.mtls_url}/v1/token",
        "service_account_impersonation_url": _impersonation_url(state.mtls_url, _target(state)),
        "credential_source": {
            "certificate": {
                "certificate_config_location": f"{here}/certificate_config.json",
                "trust_chain_path": f"{here}/trust_chain.pem",
            }
        },
    }


def workforce_user_file(state: EmulatorState) -> dict[str, Any]:
    """external_account_authorized_user for DEMO_USER signed in through a workforce pool; their
    principal may act as the impersonation target."""
    provider = Provider(WORKFORCE_POOL, WORKFORCE_PROVIDER, f"{state.base_url}/oidc", workforce=True)
    state.providers[provider.key] = provider
    principal = f"{provider.pool(state.project_number)}/subject/{DEMO_USER}"
    state.grant_token_creator(_target(state), f"principal:{principal}")
    token = state.add_workforce_refresh_token(WorkforceGrant(principal))
    return state.workforce_user_file(provider, token)


def signin_clients(state: EmulatorState) -> tuple[OAuthClient, OAuthClient]:
    """The desktop client ``gcptoken login`` uses and an IAP app's client of the same project,
    registered once and kept across restarts."""
    found = {c.name: c for c in state.signin.clients.values()}
    desktop = found.get(DESKTOP_CLIENT_NAME) or state.signin.register(
        "desktop", state.project_number, DESKTOP_CLIENT_NAME
    )
    iap = found.get(IAP_CLIENT_NAME) or state.signin.register("web", state.project_number, IAP_CLIENT_NAME)
    return desktop, iap


def load_state(directory: PrivateDir | None) -> EmulatorState:
    try:
        data = directory.read(STATE_FILE) if directory is not None else None
    except NotPrivateError as exc:
        raise ValueError(f"state dir: {exc}") from None
    if directory is None or data is None:
        return EmulatorState()
    return persistence.state_from_bytes(data, f"state dir: {directory.path}/{STATE_FILE}")


def _runtime_variables(state: EmulatorState) -> str:
    """What the platform's runtime sets (K_SERVICE on Cloud Run, …): clients that detect the
    platform by environment need it, and no metadata server can set it."""
    variables = runtime_environment(state.instance.platform, state.project_id)
    # Not GKE's KUBERNETES_SERVICE_HOST: it names an API server address tools would try to reach,
    # and Google's clients tell GKE by the cluster-name attribute, which the emulator serves.
    return "".join(
        f"export {name}={shlex.quote(value)}\n"
        for name, value in variables.items()
        if not name.startswith("KUBERNETES_")
    )


def write_state_dir(state: EmulatorState, directory: PrivateDir, host_port: str) -> None:
    """``service-account.json``, ``env`` and the state file, before the emulator answers."""
    key_file = _default_key_file(state, directory)
    _write_private(directory, KEY_FILE, json.dumps(key_file, indent=2) + "\n")
    user_file = _user_file(state, directory)
    _write_private(directory, USER_FILE, json.dumps(user_file, indent=2) + "\n")
    impersonated = _impersonated_file(state, user_file)
    _write_private(directory, IMPERSONATED_FILE, json.dumps(impersonated, indent=2) + "\n")
    external = _external_account_file(state, directory)
    _write_private(directory, EXTERNAL_FILE, json.dumps(external, indent=2) + "\n")
    _write_private(directory, AWS_FILE, json.dumps(aws_file(state), indent=2) + "\n")
    _write_private(directory, WORKFORCE_USER_FILE, json.dumps(workforce_user_file(state), indent=2) + "\n")
    desktop, iap = signin_clients(state)
    installed = desktop.installed_file(state.base_url, state.project_id)
    _write_private(directory, DESKTOP_CLIENT_FILE, json.dumps(installed, indent=2) + "\n")
    mtls = ""
    if state.mtls_url is not None:
        _write_private(directory, X509_FILE, json.dumps(x509_file(state, directory), indent=2) + "\n")
        here = os.path.realpath(directory.path)
        mtls = (
            f"export GCPTOKEN_EMULATOR_MTLS_HOST={state.mtls_url.removeprefix('https://')}\n"
            f"export GCPTOKEN_EMULATOR_CA={here}/{CA_FILE}\n"
        )
    if state.tls_url is not None:
        _write_private(directory, CA_FILE, state.workload_ca.root_pem)
        here = os.path.realpath(directory.path)
        mtls += f"export GCPTOKEN_EMULATOR_TLS_HOST={state.tls_url.removeprefix('https://')}\n"
        if "GCPTOKEN_EMULATOR_CA=" not in mtls:
            mtls += f"export GCPTOKEN_EMULATOR_CA={here}/{CA_FILE}\n"
    env = (
        f"export GCPTOKEN_EMULATOR_HOST={host_port}\n"
        f"export GOOGLE_APPLICATION_CREDENTIALS={os.path.join(os.path.realpath(directory.path), KEY_FILE)}\n"
        f"export GCE_METADATA_HOST={host_port}\n"
        f"export GCE_METADATA_IP={host_port}\n"
        f"export GCE_METADATA_ROOT={host_port}\n"  # gcloud's name for it
        f"export IAP_CLIENT_ID={iap.client_id}\n"
        f"{mtls}{_runtime_variables(state)}"
    )
    _write_private(directory, ENV_FILE, env)
    _write_private(directory, STATE_FILE, json.dumps(persistence.to_json(state), indent=1))
    state.on_change = lambda: _write_private(directory, STATE_FILE, json.dumps(persistence.to_json(state), indent=1))
