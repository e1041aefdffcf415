"""A service account whose key never leaves a PKCS#11 token (SoftHSM2), end to end as a new user
sets it up: ``gcptoken key generate``, the certificate uploaded, ``gcptoken key credentials``, then
ID and access tokens, signatures and self-signed JWTs, all verified against the emulator's published
keys. And the cache rule for such a key: a cached token needs the PIN, never the device."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gcptoken.credentials.files import credentials_from_info, load_file
from gcptoken.credentials.service_account import ServiceAccountCredentials
from gcptoken.errors import CredentialsError, HardwareKeyError
from gcptoken.keys.opened import close_all
from gcptoken.testing import EmulatorClient
from gcptoken.verify import Verifier
from tests.cli.test_cli import gcptoken
from tests.credentials.test_signing import both_ways
from tests.keys.hardware_accounts import HardwareAccount, hardware_account
from tests.keys.softhsm import Token

AUD = "https://hardware-key.a.run.app"


@pytest.fixture(autouse=True)
def _keys_closed() -> Iterator[None]:
    yield
    close_all()  # SoftHSM2 is re-initialised for each new token: no key outlives its test


@pytest.fixture
def account(
    emulator: EmulatorClient, softhsm_token: Token, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> HardwareAccount:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    env = {**softhsm_token.env(), "GCPTOKEN_KEY_PIN": softhsm_token.pin, "GCPTOKEN_EMULATOR_HOST": emulator.host_port}
    where = softhsm_token.uri(object="sa-key").text
    return hardware_account(emulator, where, env, tmp_path / "account")


def _cli(account: HardwareAccount, *args: str, **env: str) -> tuple[int, str, str]:
    result = gcptoken(*args, "--credentials", str(account.credential_file), env={**account.env, **env})
    return result.code, result.out, result.err


def test_the_cli_gets_tokens_and_signs_with_a_key_in_the_token(
    emulator: EmulatorClient, account: HardwareAccount
) -> None:
    assert account.reference.startswith("pkcs11:") and "pin" not in account.reference
    assert "PRIVATE KEY" not in account.credential_file.read_text()
    code, out, err = _cli(account, "id", AUD)
    assert code == 0, err
    claims = Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs").verify(out.strip())
    assert claims["email"] == account.email
    code, out, err = _cli(account, "access", "--format", "json")
    assert code == 0 and '"access_token"' in out, err
    code, out, err = _cli(
        account, "sign-jwt", "--claims", f'{{"iss": "{account.email}", "sub": "{account.email}", "aud": "{AUD}"}}'
    )
    assert code == 0, err
    Verifier.service_account(account.email, AUD).verify(out.strip())


def test_the_library_signs_in_the_token_sync_and_async(
    emulator: EmulatorClient, account: HardwareAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in account.env.items():
        monkeypatch.setenv(name, value)
    credentials = load_file(account.credential_file)
    assert isinstance(credentials, ServiceAccountCredentials) and credentials.key.hardware is not None
    assert credentials.runs_programs()  # every async call off the event loop: the device may take its time
    both_ways(credentials, emulator.url, account.email)
    token = credentials.id_token(AUD)
    assert Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs").verify(token.value)["email"] == account.email
    assert asyncio.run(credentials.access_token_async(["https://www.googleapis.com/auth/cloud-platform"])).value
    jwt = credentials.self_signed_jwt("https://pubsub.googleapis.com/")
    Verifier.service_account(account.email, "https://pubsub.googleapis.com/").verify(jwt.value)


def test_a_cached_token_needs_the_pin_and_never_the_token(account: HardwareAccount, tmp_path: Path) -> None:
    code, first, err = _cli(account, "id", AUD)
    assert code == 0, err
    # The token is gone (SoftHSM2 finds no tokens in an empty directory): only the cache can answer.
    empty = tmp_path / "no-tokens"
    (empty / "tokens").mkdir(parents=True)
    (empty / "softhsm2.conf").write_text(f"directories.tokendir = {empty / 'tokens'}\n")
    gone = {"SOFTHSM2_CONF": str(empty / "softhsm2.conf")}
    code, again, err = _cli(account, "id", AUD, **gone)
    assert (code, again) == (0, first), err
    # A wrong PIN proves nothing: a miss, and the device (absent) is what answers.
    code, out, err = _cli(account, "id", AUD, GCPTOKEN_KEY_PIN="not-the-pin", **gone)
    assert code != 0 and out == "" and "not-the-pin" not in err and len(err.strip().splitlines()) == 1
    code, out, err = _cli(account, "id", AUD, GCPTOKEN_KEY_PIN="")  # no PIN, no terminal: asks for it
    assert code != 0 and out == "" and "GCPTOKEN_KEY_PIN" in err
    # With the token back, a wrong PIN is the token's refusal, never a cached token.
    code, out, err = _cli(account, "id", AUD, GCPTOKEN_KEY_PIN="not-the-pin")
    assert code != 0 and out == "" and "wrong PIN" in err and "not-the-pin" not in err


def test_a_wrong_pin_is_refused_by_the_token_in_the_library(
    account: HardwareAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOFTHSM2_CONF", account.env["SOFTHSM2_CONF"])
    monkeypatch.setenv("GCPTOKEN_KEY_PIN", "wrong-pin-771")
    credentials = load_file(account.credential_file)
    with pytest.raises(HardwareKeyError) as caught:
        credentials.id_token(AUD)
    assert "wrong-pin-771" not in str(caught.value) and str(account.credential_file) in str(caught.value)


def test_the_pin_comes_from_the_variable_the_file_names(account: HardwareAccount, tmp_path: Path) -> None:
    info = {**account.info, "pin_env": "MY_TOKEN_PIN"}
    named = tmp_path / "named.json"
    named.write_text(json.dumps(info))
    env = {**account.env, "GCPTOKEN_KEY_PIN": "", "MY_TOKEN_PIN": account.env["GCPTOKEN_KEY_PIN"]}
    result = gcptoken("id", AUD, "--credentials", str(named), env=env)
    assert result.code == 0, result.err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**info, "pin_env": "NOT A NAME"}))
    result = gcptoken("id", AUD, "--credentials", str(bad), env=env)
    assert result.code != 0 and result.out == "" and "pin_env" in result.err


@pytest.mark.parametrize(
    "private_key",
    [
        "pkcs11:token=t;object=k?pin-value=1234",
        "pkcs11:token=t;object=k?pin-source=file:/etc/pin",
        "pkcs11:token=t;object=k;bogus=1",
        "-----BEGIN TSS2 PRIVATE KEY-----\nAAAA\n-----END TSS2 PRIVATE KEY-----\n",
        "tpm2:handle=0x01",
    ],
)
def test_a_bad_reference_is_refused_before_anything_is_opened(private_key: str, key_info: dict[str, str]) -> None:
    with pytest.raises(CredentialsError) as caught:
        credentials_from_info({**key_info, "private_key": private_key}, "test")
    assert isinstance(caught.value, HardwareKeyError)
    assert "1234" not in str(caught.value) and "\n" not in str(caught.value)


def test_the_cli_reports_a_bad_reference_in_one_line(key_info: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "pinned.json"
    path.write_text(json.dumps({**key_info, "private_key": "pkcs11:token=t;object=k?pin-value=4321"}))
    result = gcptoken("id", AUD, "--credentials", str(path))
    assert result.code != 0 and result.out == "" and len(result.err.strip().splitlines()) == 1
    assert "4321" not in result.err and "PIN" in result.err


def test_key_files_are_written_new_and_private(account: HardwareAccount, tmp_path: Path) -> None:
    mode = os.stat(account.credential_file).st_mode & 0o777
    assert mode == 0o600

    def credentials_to(path: Path) -> tuple[int, str, str]:
        args = ("--account", account.email, "--key-id", account.key_id, "--out", str(path))
        result = gcptoken("key", "credentials", account.reference, *args, env=account.env)
        return result.code, result.out, result.err

    code, out, err = credentials_to(account.credential_file)
    assert code != 0 and "exists" in err and out == ""
    planted = tmp_path / "planted"
    os.symlink(tmp_path / "elsewhere", planted)
    code, _, _ = credentials_to(planted)
    assert code != 0 and not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("credentials", "pkcs11:token=t;object=k", "--account", "not-an-email", "--key-id", "k"), "--account"),
        (
            ("credentials", "pkcs11:token=t;object=k", "--account", "a@p.iam.gserviceaccount.com", "--key-id", "a b"),
            "--key-id",
        ),
        (("credentials", "/etc/passwd", "--account", "a@p.iam.gserviceaccount.com", "--key-id", "k"), "REFERENCE"),
        (
            ("credentials", "@/nonexistent/ref", "--account", "a@p.iam.gserviceaccount.com", "--key-id", "k"),
            "REFERENCE",
        ),
        (("generate", "pkcs11:token=t;object=k", "--no-pin"), "--no-pin"),
        (("generate", "somewhere"), "WHERE"),
        (("generate", "tpm", "--days", "0", "--cert", "c.pem"), "--days"),
        (("cert", "pkcs11:token=t;object=k", "--common-name", ""), "--common-name"),
    ],
)
def test_key_command_refusals_are_one_line_and_touch_nothing(args: tuple[str, ...], words: str, tmp_path: Path) -> None:
    result = gcptoken("key", *args, env={"GCPTOKEN_KEY_PIN": "5555"})
    assert result.code != 0 and result.out == "" and words in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err and "5555" not in result.err


def test_softhsm_is_installed_where_ci_runs() -> None:
    if os.environ.get("CI") == "true":  # .ci/run installs it: the hardware tests must not skip there
        assert shutil.which("softhsm2-util"), "softhsm2 is missing in CI"


@pytest.fixture
def tpm_account(
    emulator: EmulatorClient, tpm_tcti: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> HardwareAccount:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    env = {
        "GCPTOKEN_TPM_TCTI": tpm_tcti,
        "GCPTOKEN_KEY_PIN": "tpm-pin-6620",
        "GCPTOKEN_EMULATOR_HOST": emulator.host_port,
    }
    return hardware_account(emulator, "tpm", env, tmp_path / "tpm-account")


def test_a_tpm_key_gets_tokens_and_the_cache_needs_its_pin_not_the_tpm(
    emulator: EmulatorClient, tpm_account: HardwareAccount, tmp_path: Path
) -> None:
    assert tpm_account.reference.startswith("-----BEGIN TSS2 PRIVATE KEY-----")
    code, first, err = _cli(tpm_account, "id", AUD)
    assert code == 0, err
    assert Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs").verify(first.strip())["email"] == tpm_account.email
    code, out, err = _cli(tpm_account, "sign-blob", "-", "--format", "json")
    assert code == 0 and tpm_account.key_id in out, err
    no_tpm = {"GCPTOKEN_TPM_TCTI": f"swtpm:path={tmp_path / 'no-such-socket'}"}
    code, again, err = _cli(tpm_account, "id", AUD, **no_tpm)
    assert (code, again) == (0, first), err
    code, out, err = _cli(tpm_account, "id", AUD, GCPTOKEN_KEY_PIN="not-the-pin", **no_tpm)
    assert code != 0 and out == "" and "not-the-pin" not in err and len(err.strip().splitlines()) == 1
    code, out, err = _cli(tpm_account, "id", AUD, GCPTOKEN_KEY_PIN="not-the-pin")
    assert code != 0 and out == "" and "not-the-pin" not in err and "PIN" in err


def test_a_tpm_key_without_a_pin_proves_itself_by_signing(
    emulator: EmulatorClient, tpm_tcti: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    env = {"GCPTOKEN_TPM_TCTI": tpm_tcti, "GCPTOKEN_EMULATOR_HOST": emulator.host_port}
    account = hardware_account(emulator, "tpm", env, tmp_path / "no-pin", "--no-pin")
    code, first, err = _cli(account, "id", AUD)
    assert code == 0, err
    code, again, err = _cli(account, "id", AUD, GCPTOKEN_KEY_PIN="anything")  # no PIN to check: ignored
    assert (code, again) == (0, first), err
    # Its proof is a signature made in the TPM: without the TPM there is no proof, and no token.
    code, out, err = _cli(account, "id", AUD, GCPTOKEN_TPM_TCTI=f"swtpm:path={tmp_path / 'gone'}")
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1, err


def test_a_persistent_tpm_key_by_its_handle(
    emulator: EmulatorClient, tpm_tcti: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)
    env = {
        "GCPTOKEN_TPM_TCTI": tpm_tcti,
        "GCPTOKEN_KEY_PIN": "handle-pin-1",
        "GCPTOKEN_EMULATOR_HOST": emulator.host_port,
    }
    account = hardware_account(emulator, "tpm2:handle=0x81000123", env, tmp_path / "handle")
    assert account.reference == "tpm2:handle=0x81000123"
    code, out, err = _cli(account, "id", AUD)
    assert code == 0, err
    assert Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs").verify(out.strip())["email"] == account.email


def test_gcptoken_key_upload_gives_the_key_id_the_credential_file_names(
    emulator: EmulatorClient, softhsm_token: Token, tmp_path: Path
) -> None:
    env = {**softhsm_token.env(), "GCPTOKEN_KEY_PIN": softhsm_token.pin, "GCPTOKEN_EMULATOR_HOST": emulator.host_port}
    email = emulator.new_key("hw-upload")["client_email"]
    certificate, reference = tmp_path / "cert.pem", tmp_path / "key.ref"
    where = softhsm_token.uri(object="uploaded").text
    made = gcptoken("key", "generate", where, "--out", str(reference), "--cert", str(certificate), env=env)
    assert made.code == 0, made.err
    uploader = tmp_path / "uploader.json"
    uploader.write_text(json.dumps(emulator.new_key("uploader")))
    upload = ("key", "upload", str(certificate), "--account", email, "--credentials", str(uploader))
    refused = gcptoken(*upload, env=env)  # the uploader is no key admin of the account yet
    assert refused.code != 0 and refused.out == "" and "roles/iam.serviceAccountKeyAdmin" in refused.err
    uploader_email = json.loads(uploader.read_text())["client_email"]
    with emulator.state.lock:
        emulator.state.key_admins.setdefault(email, set()).add(f"serviceAccount:{uploader_email}")
    uploaded = gcptoken(*upload, env=env)
    assert uploaded.code == 0, uploaded.err
    key_id = uploaded.out.strip()
    credential_file = tmp_path / "sa.json"
    written = gcptoken(
        "key", "credentials", f"@{reference}", "--account", email, "--key-id", key_id, "--out", str(credential_file),
        env=env,
    )  # fmt: skip
    assert written.code == 0, written.err
    token = gcptoken("id", AUD, "--credentials", str(credential_file), env=env)
    assert token.code == 0, token.err
    assert Verifier(AUD, certs=f"{emulator.url}/oauth2/v3/certs").verify(token.out.strip())["email"] == email
    again = gcptoken(*upload, env=env)
    assert again.code != 0 and "ALREADY_EXISTS" in again.err
    not_pem = gcptoken("key", "upload", str(reference), "--account", email, env=env)
    assert not_pem.code == 2 and "not a PEM certificate" in not_pem.err


def test_the_cached_path_opens_no_device_and_loads_almost_nothing(account: HardwareAccount) -> None:
    """A cached call with a key in a token costs what a key file's does: checked by what gets
    imported (no PKCS#11 binding, no credential code), never by timing."""
    from tests.cli.test_cli_fast import heavy_modules_loaded

    code, _, err = _cli(account, "id", AUD)
    assert code == 0, err
    heavy = (
        *("pkcs11", "tpm2_pytss", "gcptoken.keys.pkcs11", "gcptoken.keys.pkcs11_uri", "gcptoken.keys.tpm_reference"),
        *("gcptoken.credentials.service_account", "typing", "dataclasses", "argparse", "logging", "cryptography"),
        *("httpx", "hashlib"),
    )
    env = {**account.env, "GOOGLE_APPLICATION_CREDENTIALS": str(account.credential_file)}
    assert heavy_modules_loaded(["id", AUD], heavy, env) == []


def test_a_copy_of_the_cache_tests_no_pin_guess(emulator: EmulatorClient, account: HardwareAccount) -> None:
    """The proof is keyed with the user's pepper, kept in memory-backed storage apart from the cache
    and the home directory (XDG_RUNTIME_DIR, else /dev/shm): the credential file and the cache alone
    cannot be used to check a PIN offline. Without the pepper the entry is unreachable, and the
    token is signed anew."""
    from gcptoken import endpoints
    from gcptoken.cache.pepper import PEPPER_FILE
    from gcptoken.cache.rules import cache_key, hardware_pin_proof, service_account_identity

    code, first, err = _cli(account, "id", AUD)
    assert code == 0, err
    state = Path(os.environ["XDG_RUNTIME_DIR"]) / "gcptoken"
    pepper = state / PEPPER_FILE
    assert pepper.stat().st_mode & 0o777 == 0o600 and len(pepper.read_bytes()) == 32
    cache_dir = Path(os.environ["XDG_CACHE_HOME"]) / "gcptoken"
    cached = (cache_dir / "tokens.json").read_text()
    assert not list(cache_dir.glob(f"*{PEPPER_FILE}*"))
    url = endpoints.resolve("https://oauth2.googleapis.com/token")  # the emulator's, as the CLI keys it
    pin = account.env["GCPTOKEN_KEY_PIN"]
    # What an attacker holding the cache would compute for the right PIN: found only with the pepper.
    for proof, found in ((hardware_pin_proof(account.reference, pin, b""), False),
                         (hardware_pin_proof(account.reference, pin, pepper.read_bytes()), True)):  # fmt: skip
        identity = service_account_identity(account.email, account.key_id, url, proof)
        assert (cache_key(identity, "id_token", AUD) in cached) is found
    exchanges = len(emulator.requests("/token"))
    code, again, err = _cli(account, "id", AUD)
    assert (code, again, len(emulator.requests("/token"))) == (0, first, exchanges), err  # a hit
    pepper.unlink()  # gone (a reboot empties XDG_RUNTIME_DIR): a miss, and the device signs again
    code, again, err = _cli(account, "id", AUD)
    assert code == 0 and len(emulator.requests("/token")) == exchanges + 1, err


@pytest.mark.parametrize("pin", ["\udcff\udcfe", "x" * 300, "a\x01b"])
def test_a_pin_that_is_no_pin_is_one_line(account: HardwareAccount, pin: str) -> None:
    for args in (("id", AUD, "--credentials", str(account.credential_file)), ("key", "cert", account.reference)):
        result = gcptoken(*args, env={**account.env, "GCPTOKEN_KEY_PIN": pin})
        assert result.code != 0 and result.out == "" and "Traceback" not in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1


def test_no_key_is_made_when_its_reference_could_not_be_written(softhsm_token: Token, tmp_path: Path) -> None:
    env = {**softhsm_token.env(), "GCPTOKEN_KEY_PIN": softhsm_token.pin}
    where = softhsm_token.uri(object="not-orphaned").text
    failed = gcptoken("key", "generate", where, "--out", "/proc/no-such-file.ref", env=env)
    assert failed.code != 0 and failed.out == "" and len(failed.err.strip().splitlines()) == 1
    made = gcptoken("key", "generate", where, "--out", str(tmp_path / "key.ref"), env=env)  # the label is free
    assert made.code == 0, made.err
    refused = gcptoken("key", "generate", where, "--out", str(tmp_path / "again.ref"), env=env)
    assert refused.code != 0 and not (tmp_path / "again.ref").exists()  # nothing left behind on failure


def test_a_tcti_library_named_by_path_is_held_to_the_module_rule(tpm_tcti: str, tmp_path: Path) -> None:
    """GCPTOKEN_TPM_TCTI may name a library by path; loading it runs its code, so a file others
    can change is refused, as a PKCS#11 module is, and one of our own is loaded."""
    from gcptoken.keys import tpm

    system = Path("/usr/lib/x86_64-linux-gnu/libtss2-tcti-swtpm.so.0")
    if not system.exists():
        pytest.skip("libtss2-tcti-swtpm.so.0 is not where Debian puts it")
    ours = tmp_path / "ours"
    ours.mkdir(mode=0o700)
    library = ours / "libtcti.so"
    shutil.copyfile(system, library)
    library.chmod(0o644)
    config = tpm_tcti.partition(":")[2]
    made = tpm.generate_key(None, tcti=f"{library}:{config}")  # loaded through /proc/self/fd
    assert made.text.startswith("-----BEGIN TSS2 PRIVATE KEY-----")
    library.chmod(0o666)
    with pytest.raises(HardwareKeyError) as caught:
        tpm.generate_key(None, tcti=f"{library}:{config}")
    assert "TCTI library" in str(caught.value) and "writable" in str(caught.value)
