"""``gcptoken sign-jwt`` and ``gcptoken sign-blob`` as a user runs them, against the emulator: what
they print verifies with the account's published keys; bad input is one line, exit 2, no stdout."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gcptoken.credentials.signing import Signature
from gcptoken.testing import EmulatorClient
from tests.cli.test_cli import gcptoken
from tests.credentials.test_signing import AUD, BLOB, assert_jwt_of, assert_signed_by, claims_for


@pytest.fixture(autouse=True)
def _grants_restored(emulator: EmulatorClient) -> Iterator[None]:
    """The session's emulator is shared: the Token Creator grants made here end with the test."""
    saved = {email: set(members) for email, members in emulator.state.token_creators.items()}
    yield
    with emulator.state.lock:
        emulator.state.token_creators = saved


@pytest.fixture
def env(emulator: EmulatorClient, key_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("GCPTOKEN_EMULATOR_HOST", emulator.host_port)  # this process's verifier
    return {
        "GCPTOKEN_EMULATOR_HOST": emulator.host_port,
        "GCE_METADATA_HOST": emulator.host_port,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_path),
    }


def test_sign_jwt_with_a_key_file_from_json_a_file_and_stdin(
    env: dict[str, str], key_info: dict[str, str], tmp_path: Path
) -> None:
    email = key_info["client_email"]
    claims = json.dumps(claims_for(email))
    (tmp_path / "claims.json").write_text(claims)
    for args, stdin in (((claims,), None), ((f"@{tmp_path / 'claims.json'}",), None), (("-",), claims)):
        printed = gcptoken("sign-jwt", "--claims", *args, env=env, stdin=stdin)
        assert printed.code == 0, printed.err
        assert_jwt_of(email, printed.out.strip())
    as_json = json.loads(gcptoken("sign-jwt", "--claims", claims, "--format", "json", env=env).out)
    assert as_json["keyId"] == key_info["private_key_id"]
    assert_jwt_of(email, as_json["signedJwt"])


def test_sign_blob_from_the_metadata_server(emulator: EmulatorClient, env: dict[str, str], tmp_path: Path) -> None:
    email = emulator.state.default_account.email
    emulator.state.grant_token_creator(email, f"serviceAccount:{email}")
    (tmp_path / "blob").write_bytes(BLOB)
    printed = gcptoken("sign-blob", str(tmp_path / "blob"), "--source", "metadata", "--format", "json", env=env)
    assert printed.code == 0, printed.err
    answer = json.loads(printed.out)
    assert_signed_by(emulator.url, email, Signature(answer["keyId"], base64.b64decode(answer["signedBlob"])))
    now = int(time.time())
    jwt = gcptoken(
        "sign-jwt",
        "--claims",
        json.dumps({"iss": email, "sub": email, "aud": AUD, "iat": now}),
        "--source",
        "metadata",
        env=env,
    )
    assert jwt.code == 0, jwt.err
    assert_jwt_of(email, jwt.out.strip())


def test_sign_blob_impersonating_from_stdin(
    emulator: EmulatorClient, env: dict[str, str], key_info: dict[str, str]
) -> None:
    target = emulator.new_key("cli-signs-as")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")
    args = ("sign-blob", "-", "--impersonate-service-account", target)
    printed = gcptoken(*args, env=env, stdin="to sign")
    assert printed.code == 0, printed.err
    answer = json.loads(gcptoken(*args, "--format", "json", env=env, stdin="to sign").out)
    assert answer["signedBlob"] == printed.out.strip()  # PKCS#1 v1.5 is deterministic: the same key signed
    assert_signed_by(emulator.url, target, Signature(answer["keyId"], base64.b64decode(printed.out)), b"to sign")


def test_a_user_is_told_to_impersonate(emulator: EmulatorClient, tmp_path: Path) -> None:
    user = tmp_path / "user.json"
    user.write_text(json.dumps(emulator.state.issue_refresh_token("user@example.com")))
    env = {"GCPTOKEN_EMULATOR_HOST": emulator.host_port, "GOOGLE_APPLICATION_CREDENTIALS": str(user)}
    printed = gcptoken("sign-jwt", "--claims", "{}", env=env)
    assert (printed.code, printed.out) == (1, "")
    assert printed.err.count("\n") == 1 and "--impersonate-service-account" in printed.err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("sign-jwt", "--claims", "not json"), "the claims must be one JSON object"),
        (("sign-jwt", "--claims", "[1, 2]"), "the claims must be one JSON object"),
        (("sign-jwt", "--claims", '{"exp": 1}'), "exp is in the past"),
        (("sign-jwt", "--claims", '{"exp": 9999999999}'), "more than 12 hours"),
        (("sign-jwt", "--claims", "@/nonexistent/claims.json"), "does not exist"),
        (("sign-blob", "/nonexistent/blob"), "does not exist"),
        (("sign-blob", "/dev/zero"), "not a regular file"),
    ],
)
def test_bad_input(env: dict[str, str], args: tuple[str, ...], fragment: str) -> None:
    printed = gcptoken(*args, env=env)
    assert (printed.code, printed.out) == (2, "")
    assert printed.err.count("\n") == 1 and fragment in printed.err and "Traceback" not in printed.err


def test_a_huge_file_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    huge = tmp_path / "huge"
    huge.write_bytes(b"x" * (1024 * 1024 + 1))
    for args in (("sign-blob", str(huge)), ("sign-jwt", "--claims", f"@{huge}")):
        printed = gcptoken(*args, env=env)
        assert (printed.code, printed.out) == (2, "")
        assert "larger than" in printed.err


def test_what_sign_jwt_prints_verifies_with_the_service_account_preset(
    env: dict[str, str], key_info: dict[str, str]
) -> None:
    email = key_info["client_email"]
    signed = gcptoken("sign-jwt", "--claims", json.dumps(claims_for(email)), env=env)
    checked = gcptoken("verify", "-", "--service-account", email, "--audience", AUD, env=env, stdin=signed.out)
    assert checked.code == 0, checked.err
    assert json.loads(checked.out)["sub"] == email


@pytest.mark.parametrize("args", [("sign-blob", "-"), ("sign-jwt", "--claims", "-")])
def test_a_closed_stdin_is_one_line(env: dict[str, str], args: tuple[str, ...]) -> None:
    import os
    import subprocess

    from tests.cli.test_cli import COMMAND

    def close_stdin() -> None:  # as the shell's <&- does
        os.close(0)

    environment = {**os.environ, **env}
    completed = subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, env=environment, preexec_fn=close_stdin, check=False
    )
    assert (completed.returncode, completed.stdout) == (2, "")
    assert completed.stderr.count("\n") == 1 and "stdin, which is closed" in completed.stderr


def test_oversized_stdin_is_called_stdin(env: dict[str, str]) -> None:
    for args in (("sign-blob", "-"), ("sign-jwt", "--claims", "-")):
        printed = gcptoken(*args, env=env, stdin="x" * (1024 * 1024 + 1))
        assert (printed.code, printed.out) == (2, "")
        assert "on stdin is larger than" in printed.err and "file" not in printed.err


@pytest.mark.parametrize(
    ("claims", "fragment"),
    [('{"exp": null}', "exp must be an integer"), ('{"nbf": 1.5}', "nbf must be an integer")],
)
def test_claims_every_signer_refuses(env: dict[str, str], claims: str, fragment: str) -> None:
    for source in ((), ("--source", "metadata")):
        printed = gcptoken("sign-jwt", "--claims", claims, *source, env=env)
        assert (printed.code, printed.out) == (2, ""), printed.err
        assert fragment in printed.err and printed.err.count("\n") == 1


def readme_sign_jwt_line() -> str:
    """The README's sign_jwt example, as written ("Signing without a key file")."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Signing without a key file", 1)[1]
    (line,) = [line for line in section.splitlines() if line.startswith("jwt = credentials.sign_jwt(")]
    return line


@pytest.mark.parametrize("source", ["key file", "metadata"])
def test_the_readmes_sign_then_verify_example(
    emulator: EmulatorClient, env: dict[str, str], key_info: dict[str, str], source: str
) -> None:
    from gcptoken import Credentials, MetadataCredentials, load_credentials

    credentials: Credentials
    if source == "metadata":
        sa = emulator.state.default_account.email
        emulator.state.grant_token_creator(sa, f"serviceAccount:{sa}")
        credentials = MetadataCredentials(host=emulator.host_port)
    else:
        sa, credentials = key_info["client_email"], load_credentials(env["GOOGLE_APPLICATION_CREDENTIALS"])
    scope: dict[str, object] = {"credentials": credentials, "SA": sa}
    exec(readme_sign_jwt_line(), scope)  # the README's own line, run as written
    jwt = scope["jwt"].value  # type: ignore[attr-defined]
    audience = "https://api.example.com"
    checked = gcptoken("verify", "-", "--service-account", sa, "--audience", audience, env=env, stdin=jwt)
    assert checked.code == 0, checked.err
