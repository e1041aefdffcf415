"""Impersonation through IAM Credentials, from the library and the CLI, against the emulator."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gcptoken import (
    ImpersonatedCredentials,
    InvalidArgumentError,
    MetadataCredentials,
    Token,
    TokenRequestError,
    Verifier,
    load_credentials,
)
from gcptoken.jose import compact
from gcptoken.testing import EmulatorClient
from tests.cli.test_cli import gcptoken
from tests.scopes import S1

AUD = "https://svc-imp.a.run.app"
IAM_PREFIX = "/v1/projects/-/serviceAccounts/"


def new_account(emulator: EmulatorClient, prefix: str) -> str:
    return emulator.new_key(prefix)["client_email"]


@pytest.fixture(autouse=True)
def _iam_at_the_emulator(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)


@pytest.fixture
def target(emulator: EmulatorClient, key_info: dict[str, str]) -> str:
    email = new_account(emulator, "target")
    emulator.state.grant_token_creator(email, f"serviceAccount:{key_info['client_email']}")
    return email


def iam_calls(emulator: EmulatorClient, email: str) -> int:
    return sum(1 for entry in emulator.requests() if entry["path"].startswith(f"{IAM_PREFIX}{email}:"))


def test_id_and_access_tokens_for_the_target(
    emulator: EmulatorClient, key_path: Path, key_info: dict[str, str], target: str, certs_url: str
) -> None:
    credentials = ImpersonatedCredentials(load_credentials(key_path), target, include_email=True)
    id_token = credentials.id_token(AUD)
    claims = Verifier(AUD, certs=certs_url).verify(id_token.value)
    assert claims["email"] == target and claims["sub"] == emulator.state.service_accounts[target].unique_id
    access = credentials.access_token([S1])
    assert access.value.startswith("ya29.") and 3590 < access.expires_in() <= 3600
    assert credentials.id_token(AUD) == id_token  # from the cache
    credentials.id_token(AUD, use_cache=False)
    # The source's access token was fetched once and reused for all three IAM calls.
    source_fetches = emulator.token_requests_by(key_info["client_email"])
    assert len(source_fetches) == 1
    assert (
        source_fetches[0]["detail"]["assertion"]["claims"]["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    )
    assert iam_calls(emulator, target) == 3


def test_a_revoked_source_token_is_refetched_once(
    emulator: EmulatorClient, key_path: Path, key_info: dict[str, str], target: str
) -> None:
    credentials = ImpersonatedCredentials(load_credentials(key_path), target)
    credentials.id_token(AUD, use_cache=False)
    with emulator.state.lock:  # revoke every token the source holds
        for token, grant in list(emulator.state.access_tokens.items()):
            if grant.email == key_info["client_email"]:
                del emulator.state.access_tokens[token]
    assert credentials.id_token(AUD, use_cache=False).claims["aud"] == AUD
    assert len(emulator.token_requests_by(key_info["client_email"])) == 2


def test_delegation_chain_from_gcloud_syntax(
    emulator: EmulatorClient, key_path: Path, key_info: dict[str, str]
) -> None:
    hop, final = new_account(emulator, "hop"), new_account(emulator, "final")
    emulator.state.grant_token_creator(hop, f"serviceAccount:{key_info['client_email']}")
    emulator.state.grant_token_creator(final, f"serviceAccount:{hop}")
    credentials = ImpersonatedCredentials.from_chain(load_credentials(key_path), f"{hop}, {final}")
    assert (credentials.target, credentials.delegates) == (final, (hop,))
    assert credentials.id_token(AUD).claims["sub"] == emulator.state.service_accounts[final].unique_id
    (call,) = [e for e in emulator.requests() if e["path"] == f"{IAM_PREFIX}{final}:generateIdToken"]
    assert call["detail"]["delegates"] == [f"projects/-/serviceAccounts/{hop}"]


def test_the_metadata_server_as_source(emulator: EmulatorClient, certs_url: str) -> None:
    target = new_account(emulator, "target")
    emulator.state.grant_token_creator(target, f"serviceAccount:{emulator.state.default_account.email}")
    credentials = ImpersonatedCredentials(MetadataCredentials(host=emulator.host_port), target, include_email=True)
    assert Verifier(AUD, certs=certs_url).verify(credentials.id_token(AUD).value)["email"] == target


def test_async(key_path: Path, target: str, certs_url: str) -> None:
    credentials = ImpersonatedCredentials(load_credentials(key_path), target)
    token = asyncio.run(credentials.id_token_async(AUD))
    assert Verifier(AUD, certs=certs_url).verify(token.value)["aud"] == AUD


def test_sign_jwt_and_blob(emulator: EmulatorClient, key_path: Path, target: str) -> None:
    credentials = ImpersonatedCredentials(load_credentials(key_path), target)
    signed = credentials.sign_jwt({"iss": target, "x": 1})
    claims = compact.parse(signed.value).claims
    assert claims == {"iss": target, "x": 1, "iat": claims["iat"], "exp": claims["exp"]}  # iat: every signer adds it
    # The same kind of value as self_signed_jwt: a Token; without exp, IAM adds one an hour ahead,
    # and the Token expires at that exp exactly (whole seconds, as the README says).
    assert isinstance(signed, Token) and signed.kind == "jwt" and 3590 < signed.expires_in() <= 3600
    assert signed.expires_at.timestamp() == claims["exp"] and signed.expires_at.microsecond == 0
    expiring = credentials.sign_jwt({"iss": target, "exp": int(time.time()) + 600})
    assert 590 < expiring.expires_in() <= 600
    assert expiring.expires_at.timestamp() == compact.parse(expiring.value).claims["exp"]
    with pytest.raises(InvalidArgumentError, match="integer"):  # IAM: "must be an integer timestamp"
        credentials.sign_jwt({"iss": target, "exp": time.time() + 600.5})
    signature = credentials.sign_blob(b"blob")
    public = emulator.state.system_key(target)[1].key.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature.signature, b"blob", padding.PKCS1v15(), hashes.SHA256())
    assert signature.key_id == emulator.state.system_key(target)[0]
    assert base64.b64decode(signature.base64) == signature.signature


def test_refusals_carry_googles_words(emulator: EmulatorClient, key_path: Path, target: str) -> None:
    source = load_credentials(key_path)
    stranger = new_account(emulator, "stranger")
    with pytest.raises(TokenRequestError) as denied:
        ImpersonatedCredentials(source, stranger).id_token(AUD)
    assert denied.value.status == 403 and denied.value.error == "PERMISSION_DENIED"
    assert denied.value.description == (
        "Permission 'iam.serviceAccounts.getOpenIdToken' denied on resource (or it may not exist)."
    )
    with pytest.raises(TokenRequestError, match="getAccessToken"):
        ImpersonatedCredentials(source, "ghost@emulated-project.iam.gserviceaccount.com").access_token()
    with pytest.raises(TokenRequestError, match="allowServiceAccountCredentialLifetimeExtension") as long:
        ImpersonatedCredentials(source, target, lifetime=7200).access_token()
    assert long.value.status == 400
    emulator.state.lifetime_extension.add(target)
    token = ImpersonatedCredentials(source, target, lifetime=7200).access_token()
    assert 7190 < token.expires_in() <= 7200


def test_missing_delegate_binding(emulator: EmulatorClient, key_path: Path, key_info: dict[str, str]) -> None:
    hop, final = new_account(emulator, "hop"), new_account(emulator, "final")
    emulator.state.grant_token_creator(hop, f"serviceAccount:{key_info['client_email']}")  # hop → final missing
    with pytest.raises(TokenRequestError, match="PERMISSION_DENIED"):
        ImpersonatedCredentials(load_credentials(key_path), final, [hop]).id_token(AUD)


@pytest.mark.parametrize(
    ("target", "options"),
    [("not-an-email", {}), ("a@b", {"lifetime": 0}), ("a@b", {"lifetime": 43201})],
)
def test_bad_options(key_path: Path, target: str, options: dict[str, int]) -> None:
    with pytest.raises(InvalidArgumentError):
        ImpersonatedCredentials(load_credentials(key_path), target, **options)  # type: ignore[arg-type]


def test_cli(emulator: EmulatorClient, key_path: Path, target: str, certs_url: str) -> None:
    env = {"GCPTOKEN_EMULATOR_HOST": emulator.host_port, "GOOGLE_APPLICATION_CREDENTIALS": str(key_path)}
    result = gcptoken("id", AUD, "--impersonate-service-account", target, "--include-email", env=env)
    assert result.code == 0, result.err
    assert Verifier(AUD, certs=certs_url).verify(result.out.strip())["email"] == target
    access = gcptoken("access", "--impersonate-service-account", target, "--lifetime", "600", env=env)
    assert access.code == 0 and access.out.startswith("ya29.")
    who = gcptoken("whoami", "--impersonate-service-account", target, env=env)
    assert who.code == 0 and f"service account {target}, impersonated" in who.out


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (
            ["id", AUD, "--impersonate-service-account", "stranger@emulated-project.iam.gserviceaccount.com"],
            1,
            "Permission 'iam.serviceAccounts.getOpenIdToken' denied",
        ),
        (["access", "--impersonate-service-account", "{target}", "--lifetime", "7200"], 1, "exceeds 3600s"),
        (["access", "--impersonate-service-account", "{target}", "--lifetime", "0"], 2, "lifetime must be"),
        (["id", AUD, "--include-email"], 2, "only when impersonating"),
        (["access", "--lifetime", "60"], 2, "only when impersonating"),
        (["id", AUD, "--impersonate-service-account", " , "], 2, "--impersonate-service-account is empty"),
        (["id", AUD, "--impersonate-service-account", "{target}", "--token-format", "full"], 2, "do not apply"),
    ],
)
def test_cli_refusals(
    emulator: EmulatorClient, key_path: Path, target: str, args: list[str], code: int, fragment: str
) -> None:
    env = {"GCPTOKEN_EMULATOR_HOST": emulator.host_port, "GOOGLE_APPLICATION_CREDENTIALS": str(key_path)}
    result = gcptoken(*(arg.format(target=target) for arg in args), env=env)
    assert (result.code, result.out) == (code, "")
    assert len(result.err.splitlines()) == 1 and fragment in result.err
