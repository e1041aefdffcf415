"""A cached token goes only to a caller that holds the same secret: forged key files (public fields
only, a garbage key, another account's key) never get one, from the library or the CLI, directly
or through impersonation; nor do a guessed refresh token or another subject token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gcptoken import CredentialsError, ImpersonatedCredentials, TokenRequestError, load_credentials
from gcptoken.jose import jws
from gcptoken.testing import EmulatorClient, write_key_file
from tests.cli.test_cli import gcptoken
from tests.emulator.sts.test_federation import JWT_TYPE, Federation

AUD = "https://svc-secret.a.run.app"


@pytest.fixture(autouse=True)
def _at_the_emulator(emulator: EmulatorClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)


def _rsa_shaped_garbage() -> str:
    """A PKCS#8 PEM that names RSA, with its key structure scrambled after the algorithm."""
    import base64
    import os

    pem = jws.generate_rsa_key().private_pem()
    der = bytearray(base64.b64decode("".join(pem.strip().splitlines()[1:-1])))
    der[30:] = os.urandom(len(der) - 30)
    body = base64.b64encode(bytes(der)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----\n"


def _forgeries(victim: dict[str, str], emulator: EmulatorClient) -> dict[str, dict[str, str]]:
    public = {k: v for k, v in victim.items() if k != "private_key"}
    other_account = emulator.new_key("other")
    return {
        "public-fields-only": public,
        "empty-key": {**public, "private_key": ""},
        "garbage-key": {**public, "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
        "ec-key": {**public, "private_key": jws.generate_ec_key().private_pem()},
        "rsa-shaped-garbage": {**public, "private_key": _rsa_shaped_garbage()},
        "fresh-rsa-key": {**public, "private_key": jws.generate_rsa_key().private_pem()},
        "another-accounts-key": {**public, "private_key": other_account["private_key"]},
    }


FORGERIES = [
    "public-fields-only",
    "empty-key",
    "garbage-key",
    "ec-key",
    "rsa-shaped-garbage",
    "fresh-rsa-key",
    "another-accounts-key",
]
UNPARSABLE = {"rsa-shaped-garbage"}  # looks like an RSA PEM; only parsing it tells
REFUSED_AT_LOAD = {"public-fields-only", "empty-key", "garbage-key", "ec-key"}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_key_file_never_gets_the_libraries_cached_tokens(
    emulator: EmulatorClient, key_info: dict[str, str], tmp_path: Path, forgery: str
) -> None:
    victim = load_credentials(write_key_file(tmp_path, key_info))
    cached_id, cached_access = victim.id_token(AUD), victim.access_token()
    forged_path = write_key_file(tmp_path, _forgeries(key_info, emulator)[forgery], "forged.json")
    if forgery in REFUSED_AT_LOAD:
        with pytest.raises(CredentialsError, match="'private_key'"):
            load_credentials(forged_path)
        return
    forged = load_credentials(forged_path)
    if forgery in UNPARSABLE:
        requests_before = len(emulator.token_requests_by(key_info["client_email"]))
        with pytest.raises(CredentialsError, match="private_key"):
            forged.id_token(AUD)  # refused before any cache lookup, and before any request
        assert len(emulator.token_requests_by(key_info["client_email"])) == requests_before
        assert victim.id_token(AUD) == cached_id
        return
    with pytest.raises(TokenRequestError, match="Invalid JWT Signature"):  # it had to ask; Google said no
        forged.id_token(AUD)
    with pytest.raises(TokenRequestError, match="Invalid JWT Signature"):
        forged.access_token()
    assert victim.id_token(AUD) == cached_id and victim.access_token() == cached_access


@pytest.mark.parametrize("forgery", ["fresh-rsa-key", "another-accounts-key"])
def test_impersonation_over_a_forged_key_gets_nothing_cached(
    emulator: EmulatorClient, key_info: dict[str, str], tmp_path: Path, forgery: str
) -> None:
    target = emulator.new_key("imp-target")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")
    victim = ImpersonatedCredentials(load_credentials(write_key_file(tmp_path, key_info)), target)
    victim_token = victim.id_token(AUD)
    forged_path = write_key_file(tmp_path, _forgeries(key_info, emulator)[forgery], "forged.json")
    forged = ImpersonatedCredentials(load_credentials(forged_path), target)
    with pytest.raises(TokenRequestError, match="Invalid JWT Signature"):
        forged.id_token(AUD)
    assert victim.id_token(AUD) == victim_token


@pytest.mark.parametrize("forgery", FORGERIES)
@pytest.mark.parametrize("impersonate", [False, True], ids=["cached-path", "full-path"])
def test_a_forged_key_file_never_gets_the_clis_cached_tokens(
    emulator: EmulatorClient, key_info: dict[str, str], tmp_path: Path, forgery: str, impersonate: bool
) -> None:
    target = emulator.new_key("cli-target")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")
    extra = ["--impersonate-service-account", target] if impersonate else []
    env = {"GCPTOKEN_EMULATOR_HOST": emulator.host_port}
    victim = gcptoken("id", AUD, "--credentials", str(write_key_file(tmp_path, key_info)), *extra, env=env)
    assert victim.code == 0 and victim.out.strip()
    forged_path = write_key_file(tmp_path, _forgeries(key_info, emulator)[forgery], "forged.json")
    for command in (["id", AUD], ["access"]):
        result = gcptoken(*command, "--credentials", str(forged_path), *extra, env=env)
        assert result.out == "", "a forged key file was given a token"
        assert result.code in (1, 3) and len(result.err.splitlines()) == 1, result.err
        assert "private_key" in result.err or "Invalid JWT Signature" in result.err
    again = gcptoken("id", AUD, "--credentials", str(write_key_file(tmp_path, key_info)), *extra, env=env)
    assert again.out == victim.out  # the owner's cache is intact


def test_a_guessed_refresh_token_gets_no_cached_user_token(emulator: EmulatorClient, tmp_path: Path) -> None:
    info = emulator.state.issue_refresh_token("cache-owner@example.com")
    owner = load_credentials(write_key_file(tmp_path, info, "user.json"))
    owner_token = owner.id_token(info["client_id"])
    forged = load_credentials(write_key_file(tmp_path, {**info, "refresh_token": "1//guess"}, "forged.json"))
    with pytest.raises(TokenRequestError) as refused:
        forged.id_token(info["client_id"])
    assert refused.value.error == "invalid_grant"
    result = gcptoken(
        "id", "--credentials", str(tmp_path / "forged.json"), env={"GCPTOKEN_EMULATOR_HOST": emulator.host_port}
    )
    assert result.out == "" and result.code == 1 and "invalid_grant" in result.err
    assert owner.id_token(info["client_id"]) == owner_token


def _external(emulator: EmulatorClient, federation: Federation, token_file: Path, target: str) -> dict[str, Any]:
    return {
        "type": "external_account",
        "audience": federation.audience,
        "subject_token_type": JWT_TYPE,
        "token_url": f"{emulator.url}/v1/token",
        "credential_source": {"file": str(token_file)},
        "service_account_impersonation_url": (
            f"{emulator.url}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
        ),
    }


def test_another_subject_token_in_the_same_file_is_a_cache_miss(emulator: EmulatorClient, tmp_path: Path) -> None:
    federation = Federation(emulator)
    target = emulator.new_key("ext-secret")["client_email"]
    emulator.state.grant_token_creator(target, f"principal:{federation.pool_resource}/subject/workload-1")
    token_file = tmp_path / "subject"
    token_file.write_text(federation.subject_token())
    path = tmp_path / "external.json"
    path.write_text(json.dumps(_external(emulator, federation, token_file, target)))
    first = load_credentials(path).id_token(AUD)
    sts_before = len(emulator.requests("/v1/token"))
    assert load_credentials(path).id_token(AUD) == first  # same content: a hit, no STS call
    assert len(emulator.requests("/v1/token")) == sts_before
    token_file.write_text("not-the-subject-token")  # the file no longer proves the identity
    with pytest.raises(TokenRequestError):
        load_credentials(path).id_token(AUD)
    assert len(emulator.requests("/v1/token")) == sts_before + 1


def test_a_federated_identity_without_its_binding_is_told_which_role(emulator: EmulatorClient, tmp_path: Path) -> None:
    federation = Federation(emulator)
    target = emulator.new_key("ext-unbound")["client_email"]  # no binding for the workload
    token_file = tmp_path / "subject"
    token_file.write_text(federation.subject_token())
    path = tmp_path / "external.json"
    path.write_text(json.dumps(_external(emulator, federation, token_file, target)))
    with pytest.raises(TokenRequestError) as denied:
        load_credentials(path).id_token(AUD)
    assert denied.value.status == 403
    assert "roles/iam.workloadIdentityUser" in str(denied.value) and target in str(denied.value)


def test_an_impersonated_file_over_a_forged_key_gets_no_cached_token(
    emulator: EmulatorClient, key_info: dict[str, str], tmp_path: Path
) -> None:
    """The cached CLI path answers impersonated files too: their source's secret still decides."""
    target = emulator.new_key("imp-file-target")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")

    def impersonated(source: dict[str, str], name: str) -> Path:
        info = {
            "type": "impersonated_service_account",
            "service_account_impersonation_url": (
                f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
            ),
            "delegates": [],
            "source_credentials": source,
        }
        return write_key_file(tmp_path, info, name)

    env = {"GCPTOKEN_EMULATOR_HOST": emulator.host_port}
    owner = gcptoken("id", AUD, "--credentials", str(impersonated(key_info, "owner.json")), env=env)
    assert owner.code == 0 and owner.out.count(".") == 2
    forged = impersonated(_forgeries(key_info, emulator)["fresh-rsa-key"], "forged.json")
    result = gcptoken("id", AUD, "--credentials", str(forged), env=env)
    assert (result.code, result.out) == (1, "") and "Invalid JWT Signature" in result.err
