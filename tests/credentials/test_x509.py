"""X.509 workload identity federation over mutual TLS: certificate configs (explicit and default),
trust chains, the emulator's mTLS port checking chain and proof of key, google-auth agreeing."""

from __future__ import annotations

import base64
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from gcptoken import CredentialsError, TokenRequestError, Verifier, load_credentials
from gcptoken.credentials import x509_source
from gcptoken.emulator import EmulatorServer
from gcptoken.emulator.state.models import Provider
from gcptoken.emulator.sts.mtls import WorkloadCa
from tests.cli.test_cli import gcptoken

AUD = "https://svc-x509.a.run.app"
MTLS = x509_source.MTLS_SUBJECT_TOKEN_TYPE


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(mtls_port=0) as emulator:
        state = emulator.state
        state.providers[("x509-pool", "x509-prov")] = Provider(
            "x509-pool",
            "x509-prov",
            "",
            trust_anchors=[state.workload_ca.root_pem],
            intermediate_cas=[state.workload_ca.intermediate_pem],
        )
        other = WorkloadCa()  # a provider trusting some other CA only
        state.providers[("x509-pool", "elsewhere")] = Provider(
            "x509-pool", "elsewhere", "", trust_anchors=[other.root_pem]
        )
        state.create_service_account("x509-target")
        pool = f"//iam.googleapis.com/projects/{state.project_number}/locations/global/workloadIdentityPools/x509-pool"
        state.grant_token_creator(f"x509-target@{state.project_id}.iam.gserviceaccount.com", f"principalSet:{pool}/*")
        yield emulator


@pytest.fixture(autouse=True)
def _trust_the_emulator(server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = tmp_path / "emulator-ca.pem"
    ca.write_text(server.state.workload_ca.root_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))


class Workload:
    def __init__(self, server: EmulatorServer, tmp_path: Path, name: str = "payments-worker") -> None:
        issued = server.state.workload_ca.workload_certificate(name)
        self.cert, self.key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
        self.cert.write_text(issued.cert_pem)
        self.key.write_text(issued.key_pem)
        self.key.chmod(0o600)
        self.chain = tmp_path / "chain.pem"
        self.chain.write_text(server.state.workload_ca.intermediate_pem)
        self.config = tmp_path / "certificate_config.json"
        self.config.write_text(
            json.dumps({"cert_configs": {"workload": {"cert_path": str(self.cert), "key_path": str(self.key)}}})
        )
        self.server = server
        self.name = name

    def info(self, provider: str = "x509-prov", impersonate: bool = True, **certificate: Any) -> dict[str, Any]:
        state = self.server.state
        assert self.server.mtls is not None
        base = self.server.mtls.url
        source = certificate or {"certificate_config_location": str(self.config), "trust_chain_path": str(self.chain)}
        info: dict[str, Any] = {
            "type": "external_account",
            "audience": (
                f"//iam.googleapis.com/projects/{state.project_number}/locations/global/"
                f"workloadIdentityPools/x509-pool/providers/{provider}"
            ),
            "subject_token_type": MTLS,
            "token_url": f"{base}/v1/token",
            "credential_source": {"certificate": source},
        }
        if impersonate:
            target = f"x509-target@{state.project_id}.iam.gserviceaccount.com"
            info["service_account_impersonation_url"] = (
                f"{base}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
            )
        return info


def write(tmp_path: Path, info: dict[str, Any], name: str = "x509.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(info))
    return path


def test_subject_token_is_leaf_then_chain(server: EmulatorServer, tmp_path: Path) -> None:
    workload = Workload(server, tmp_path)
    token = json.loads(x509_source.subject_token(workload.info()["credential_source"], "test"))
    certificates = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in token]
    assert [c.subject.rfc4514_string() for c in certificates] == [
        "CN=payments-worker,O=gcptoken emulator",
        "CN=gcptoken emulator workload CA,O=gcptoken emulator",
    ]


def test_id_token_over_mutual_tls_end_to_end(server: EmulatorServer, tmp_path: Path) -> None:
    server.state.clear_requests()
    workload = Workload(server, tmp_path)
    credentials = load_credentials(write(tmp_path, workload.info()))
    token = credentials.id_token(AUD)
    claims = Verifier(AUD, certs=f"{server.url}/oauth2/v3/certs").verify(token.value)
    assert (
        claims["sub"]
        == server.state.service_accounts[f"x509-target@{server.state.project_id}.iam.gserviceaccount.com"].unique_id
    )
    log = server.state.request_log()
    sts = [e for e in log if e["path"] == "/v1/token"]
    iam = [e for e in log if e["path"].endswith(":generateIdToken")]
    assert sts and iam and all(e.get("mtls") for e in sts + iam)  # STS and IAM both over mutual TLS
    assert sts[0]["detail"]["principal"].endswith("/subject/payments-worker")


def test_default_certificate_config_from_the_environment(
    server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workload = Workload(server, tmp_path, "batch-job")
    monkeypatch.setenv("GOOGLE_API_CERTIFICATE_CONFIG", str(workload.config))
    info = workload.info(impersonate=False, use_default_certificate_config=True)
    token = load_credentials(write(tmp_path, info)).access_token()
    assert server.state.access_tokens[token.value].email.endswith("/subject/batch-job")


def test_gclouds_certificate_config_is_the_last_default(
    server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workload = Workload(server, tmp_path, "from-gcloud")
    gcloud = tmp_path / "gcloud"
    gcloud.mkdir()
    (gcloud / "certificate_config.json").write_text(workload.config.read_text())
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(gcloud))
    monkeypatch.delenv("GOOGLE_API_CERTIFICATE_CONFIG", raising=False)
    info = workload.info(impersonate=False, use_default_certificate_config=True)
    token = load_credentials(write(tmp_path, info)).access_token()
    assert server.state.access_tokens[token.value].email.endswith("/subject/from-gcloud")


def test_an_untrusted_chain_is_refused(server: EmulatorServer, tmp_path: Path) -> None:
    workload = Workload(server, tmp_path)
    with pytest.raises(TokenRequestError, match="does not verify against the provider's trust store"):
        load_credentials(write(tmp_path, workload.info("elsewhere", impersonate=False))).access_token()


def test_a_token_for_another_certificate_is_refused(server: EmulatorServer, tmp_path: Path) -> None:
    """Presenting one workload's certificate with another's subject token proves nothing."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mine, theirs = Workload(server, tmp_path / "a", "mine"), Workload(server, tmp_path / "b", "theirs")
    token = x509_source.subject_token(theirs.info()["credential_source"], "test")
    assert server.mtls is not None
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "audience": mine.info()["audience"],
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "subject_token": token,
        "subject_token_type": MTLS,
    }
    import ssl

    context = ssl.create_default_context(cafile=str(tmp_path / "emulator-ca.pem"))
    context.load_cert_chain(mine.cert, mine.key)
    with httpx.Client(verify=context) as client:
        answer = client.post(f"{server.mtls.url}/v1/token", data=form)
    assert answer.status_code == 400
    assert "not the subject token's leaf" in answer.json()["error_description"]
    plain = httpx.post(f"{server.url}/v1/token", data=form)  # no TLS at all
    assert "must be exchanged over mutual TLS" in plain.json()["error_description"]


def test_a_certificate_from_an_unknown_ca_fails_the_handshake(server: EmulatorServer, tmp_path: Path) -> None:
    stranger = WorkloadCa().workload_certificate("stranger")
    workload = Workload(server, tmp_path)
    workload.cert.write_text(stranger.cert_pem)
    workload.key.write_text(stranger.key_pem)
    from gcptoken import TransportError

    with pytest.raises(TransportError, match=r"cannot reach .*: TLS handshake failed|broke off"):
        load_credentials(write(tmp_path, workload.info(impersonate=False))).access_token()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no-config", "certificate config .* does not exist"),
        ("bad-config", "has no cert_configs.workload"),
        ("proxy-config", "enterprise certificate proxy's form .cert_configs.pkcs11."),
        ("no-key", "cannot be used"),
        ("leaf-not-first", "leaf certificate must be at the top"),
    ],
)
def test_broken_certificate_setups_are_one_clear_error(
    server: EmulatorServer, tmp_path: Path, damage: str, message: str
) -> None:
    workload = Workload(server, tmp_path)
    if damage == "no-config":
        workload.config.unlink()
    elif damage == "bad-config":
        workload.config.write_text('{"cert_configs": {}}')
    elif damage == "proxy-config":  # what gcloud writes for a key in a PKCS#11 token
        workload.config.write_text('{"cert_configs": {"pkcs11": {"module": "/x.so", "slot": 0, "label": "k"}}}')
    elif damage == "no-key":
        workload.key.write_text("not a key")
    else:
        workload.chain.write_text(server.state.workload_ca.intermediate_pem + workload.cert.read_text())
    with pytest.raises((CredentialsError, TokenRequestError), match=message) as caught:
        load_credentials(write(tmp_path, workload.info(impersonate=False))).access_token(use_cache=False)
    assert "PRIVATE KEY" not in str(caught.value)


def test_cli_id_over_mutual_tls(server: EmulatorServer, tmp_path: Path) -> None:
    workload = Workload(server, tmp_path)
    path = write(tmp_path, workload.info())
    env = {"GCPTOKEN_EMULATOR_HOST": server.host_port, "SSL_CERT_FILE": str(tmp_path / "emulator-ca.pem")}
    result = gcptoken("id", AUD, "--credentials", str(path), env=env)
    assert result.code == 0, result.err
    assert Verifier(AUD, certs=f"{server.url}/oauth2/v3/certs").verify(result.out.strip())
    whoami = gcptoken("whoami", "--credentials", str(path), env=env)
    assert "X.509" in whoami.out, whoami.err


def test_google_auth_identity_pool_with_a_certificate_source(server: EmulatorServer, tmp_path: Path) -> None:
    from google.auth.transport.requests import Request

    identity_pool: Any = importlib.import_module("google.auth.identity_pool")
    workload = Workload(server, tmp_path, "google-auth-peer")
    credentials = identity_pool.Credentials.from_info(
        workload.info(impersonate=False), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    credentials.refresh(Request())
    assert server.state.access_tokens[credentials.token].email.endswith("/subject/google-auth-peer")


@pytest.mark.parametrize("damage", ["untrusted", "stranger", "no-config"])
def test_cli_refusals_are_one_line_without_secrets(server: EmulatorServer, tmp_path: Path, damage: str) -> None:
    workload = Workload(server, tmp_path)
    provider = "elsewhere" if damage == "untrusted" else "x509-prov"
    if damage == "stranger":
        stranger = WorkloadCa().workload_certificate("stranger")
        workload.cert.write_text(stranger.cert_pem)
        workload.key.write_text(stranger.key_pem)
    if damage == "no-config":
        workload.config.unlink()
    key_material = workload.key.read_text().splitlines()[1]  # a line of the private key's base64
    path = write(tmp_path, workload.info(provider, impersonate=False))
    env = {"GCPTOKEN_EMULATOR_HOST": server.host_port, "SSL_CERT_FILE": str(tmp_path / "emulator-ca.pem")}
    for verbose in ((), ("-v",)):
        result = gcptoken("access", "--credentials", str(path), *verbose, env=env)
        assert result.code != 0
        errors = [line for line in result.err.splitlines() if line.startswith("gcptoken: error")]
        assert len(errors) == 1, result.err
        assert "Traceback" not in result.err
        assert key_material not in result.err


def test_async_over_mutual_tls(server: EmulatorServer, tmp_path: Path) -> None:
    import asyncio

    workload = Workload(server, tmp_path, "async-worker")
    credentials = load_credentials(write(tmp_path, workload.info()))
    token = asyncio.run(credentials.id_token_async(AUD))
    assert Verifier(AUD, certs=f"{server.url}/oauth2/v3/certs").verify(token.value)


def test_an_attribute_condition_on_the_certificate(server: EmulatorServer, tmp_path: Path) -> None:
    state = server.state
    ca = state.workload_ca
    state.providers[("x509-pool", "only-allowed")] = Provider(
        "x509-pool",
        "only-allowed",
        "",
        attribute_condition="assertion.subject.dn.cn == 'allowed-worker'",
        trust_anchors=[ca.root_pem],
        intermediate_cas=[ca.intermediate_pem],
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    allowed, other = Workload(server, tmp_path / "a", "allowed-worker"), Workload(server, tmp_path / "b", "other")
    info = allowed.info("only-allowed", impersonate=False)
    assert load_credentials(write(tmp_path, info)).access_token().value
    with pytest.raises(TokenRequestError, match="rejected by the attribute condition"):
        load_credentials(write(tmp_path, other.info("only-allowed", impersonate=False), "other.json")).access_token()


def test_another_workload_key_gets_no_cached_token(server: EmulatorServer, tmp_path: Path) -> None:
    """The cache is bound to the workload's key and certificate: a config naming other files (the
    same provider and endpoints) never receives the first one's tokens."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = Workload(server, tmp_path / "a", "cache-one"), Workload(server, tmp_path / "b", "cache-two")
    one = load_credentials(write(tmp_path, first.info(impersonate=False), "one.json"))
    two = load_credentials(write(tmp_path, second.info(impersonate=False), "two.json"))
    assert one.shared_identity() is not None and one.identity() != two.identity()
    token = one.access_token()
    assert two.access_token().value != token.value
    assert server.state.access_tokens[two.access_token().value].email.endswith("/subject/cache-two")
    second.key.unlink()  # a key that cannot be read: no shared identity at all
    assert two.shared_identity() is None
