"""The command line, run as a user runs it: a real process, stdout for the result, stderr for words."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gcptoken import Verifier
from gcptoken.cli.main import build_parser
from gcptoken.testing import EmulatorClient
from tests.scopes import S1, S2

AUD = "https://svc-cli.a.run.app"
SCRIPT = Path(sys.executable).parent / "gcptoken"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "gcptoken"]


@dataclass
class Result:
    code: int
    out: str
    err: str


def gcptoken(*args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 60) -> Result:
    completed = subprocess.run(
        [*COMMAND, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)


@dataclass
class Running:
    """``gcptoken emulator`` in a subprocess: the URL it printed, and its stderr once it has stopped."""

    url: str
    err: str = ""


@contextmanager
def emulator_command(*args: str) -> Iterator[Running]:
    """``gcptoken emulator --port 0 ARGS`` running for the block, then stopped as Ctrl-C stops it,
    which must exit 0."""
    command = [*COMMAND, "emulator", "--port", "0", *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None and process.stderr is not None
        running = Running(process.stdout.readline().strip())
        try:
            yield running
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=10)
        assert process.returncode == 0
        running.err = process.stderr.read()


@pytest.fixture
def env(emulator: EmulatorClient, key_path: Path) -> dict[str, str]:
    return {"GCPTOKEN_EMULATOR_HOST": emulator.host_port, "GOOGLE_APPLICATION_CREDENTIALS": str(key_path)}


@pytest.fixture
def id_token(key_path: Path) -> str:
    from gcptoken import load_credentials

    return load_credentials(key_path).id_token(AUD).value


def test_id_prints_only_the_token(env: dict[str, str], certs_url: str, key_info: dict[str, str]) -> None:
    result = gcptoken("id", AUD, env=env)
    assert result.code == 0, result.err
    assert result.err == ""
    token = result.out.strip()
    assert result.out == token + "\n"
    assert Verifier(AUD, certs=certs_url).verify(token)["email"] == key_info["client_email"]


def test_id_formats(env: dict[str, str], key_path: Path) -> None:
    as_json = json.loads(gcptoken("id", "--audience", AUD, "--format", "json", env=env).out)
    assert set(as_json) == {"id_token", "expires_at"}
    assert as_json["expires_at"].endswith("+00:00")
    header = gcptoken("id", AUD, "--format", "header", "--credentials", str(key_path), env=env).out
    assert header.startswith("Authorization: Bearer ey")
    claims = json.loads(gcptoken("id", AUD, "--format", "claims", env=env).out)
    assert claims["aud"] == AUD and claims["iss"] == "https://accounts.google.com"


def test_access_token_and_formats(env: dict[str, str], emulator: EmulatorClient, key_info: dict[str, str]) -> None:
    plain = gcptoken("access", "--scopes", f"{S1},{S2}", env=env)
    assert plain.code == 0 and plain.out.startswith("ya29.")
    (entry,) = emulator.token_requests_by(key_info["client_email"])
    assert entry["detail"]["assertion"]["claims"]["scope"] == f"{S1} {S2}"
    assert set(json.loads(gcptoken("access", "--format", "json", env=env).out)) == {
        "access_token",
        "expires_at",
    }
    assert gcptoken("access", "--format", "header", env=env).out.startswith("Authorization: Bearer ya29.")


def test_decode_from_argument_and_stdin(id_token: str) -> None:
    for result in (
        gcptoken("decode", id_token),
        gcptoken("decode", stdin=f"Bearer {id_token}\n"),
        gcptoken("decode", "-", stdin=id_token),
    ):
        assert result.code == 0, result.err
        shown = json.loads(result.out)
        assert set(shown) == {"header", "claims", "expires_in"}
        assert shown["claims"]["aud"] == AUD
        assert 3500 < shown["expires_in"] <= 3600
        assert "NOT verified" in result.err


def test_verify_valid_and_invalid(env: dict[str, str], id_token: str, emulator: EmulatorClient, tmp_path: Path) -> None:
    valid = gcptoken("verify", id_token, "--audience", AUD, env=env)
    assert valid.code == 0 and json.loads(valid.out)["aud"] == AUD
    piped = gcptoken("verify", "--audience", "other", "--audience", AUD, env=env, stdin=id_token)
    assert piped.code == 0
    wrong = gcptoken("verify", id_token, "--audience", "https://other.example", env=env)
    assert (wrong.code, wrong.out) == (1, "")
    assert wrong.err.count("\n") == 1 and "audience" in wrong.err
    later = gcptoken("verify", id_token, "--audience", AUD, "--now", str(time.time() + 7200), env=env)
    assert later.code == 1 and "expired" in later.err
    earlier = gcptoken("verify", id_token, "--audience", AUD, "--now", str(time.time() - 7200), env=env)
    assert earlier.code == 1 and "future" in earlier.err
    google_certs = "https://www.googleapis.com/oauth2/v3/certs"  # reaches the emulator through env
    issuer = gcptoken(
        "verify", id_token, "--audience", AUD, "--issuer", "https://elsewhere", "--certs", google_certs, env=env
    )
    assert issuer.code == 1 and "issuer" in issuer.err
    certs_file = tmp_path / "certs.json"
    certs_file.write_text(httpx.get(f"{emulator.url}/oauth2/v1/certs").text)
    offline = gcptoken("verify", id_token, "--audience", AUD, "--certs", str(certs_file))  # no emulator env
    assert offline.code == 0, offline.err


def test_verify_presets_discovery_and_policy(env: dict[str, str], emulator: EmulatorClient, id_token: str) -> None:
    audience = "/projects/123456789012/apps/emulated-project"
    assertion = emulator.iap_assertion("dana@example.com", audience, hd="example.com")
    iap = gcptoken("verify", assertion, "--preset", "iap", "--audience", audience, env=env)
    assert iap.code == 0, iap.err
    assert json.loads(iap.out)["email"] == "dana@example.com"
    as_google = gcptoken("verify", assertion, "--audience", audience, env=env)
    assert as_google.code == 1 and "algorithm" in as_google.err
    allowed = gcptoken("verify", assertion, "--preset", "iap", "--audience", audience, "--hd", "example.com", env=env)
    assert allowed.code == 0
    denied = gcptoken(
        "verify", assertion, "--preset", "iap", "--audience", audience, "--email", "eve@example.com", env=env
    )
    assert (denied.code, denied.out) == (1, "") and "email" in denied.err and denied.err.count("\n") == 1

    firebase_token = emulator.firebase_token("uid-7", email="erin@example.com", emailVerified=False)
    firebase = gcptoken("verify", firebase_token, "--preset", "firebase", "--audience", "emulated-project", env=env)
    assert firebase.code == 0 and json.loads(firebase.out)["user_id"] == "uid-7"
    unverified = gcptoken(
        "verify",
        firebase_token,
        "--preset",
        "firebase",
        "--audience",
        "emulated-project",
        "--require-email-verified",
        env=env,
    )
    assert unverified.code == 1 and "email_verified" in unverified.err
    other_project = gcptoken("verify", firebase_token, "--preset", "firebase", "--audience", "other-project", env=env)
    assert other_project.code == 1 and "(audience)" in other_project.err  # another project: an audience failure

    discovered = gcptoken("verify", id_token, "--audience", AUD, "--issuer", "https://accounts.google.com", env=env)
    assert discovered.code == 0, discovered.err
    issuer = f"{emulator.url}/oidc"  # the emulator's own OIDC issuer, discovered over plain http on loopback
    oidc_token = emulator.oidc_token({"aud": "my-app", "sub": "ci"})
    oidc = gcptoken("verify", oidc_token, "--audience", "my-app", "--issuer", issuer, "--subject", "ci", env=env)
    assert oidc.code == 0 and json.loads(oidc.out)["iss"] == issuer
    too_old = gcptoken(
        "verify",
        oidc_token,
        "--audience",
        "my-app",
        "--issuer",
        issuer,
        "--max-age",
        "1",
        "--now",
        str(time.time() + 120),
        env=env,
    )
    assert too_old.code == 1 and "issued" in too_old.err


def test_info_asks_tokeninfo(env: dict[str, str], id_token: str) -> None:
    about_id = gcptoken("info", id_token, env=env)
    assert about_id.code == 0 and json.loads(about_id.out)["aud"] == AUD
    access = gcptoken("access", env=env).out.strip()
    about_access = json.loads(gcptoken("info", access, env=env).out)
    assert about_access["scope"] == "https://www.googleapis.com/auth/cloud-platform"


def test_verbose_logs_exchanges_without_secrets(env: dict[str, str], key_info: dict[str, str]) -> None:
    result = gcptoken("-v", "id", AUD, env=env)
    assert result.code == 0
    token = result.out.strip()
    assert "POST http://" in result.err and "/token -> 200" in result.err
    assert f'"target_audience": "{AUD}"' in result.err and key_info["client_email"] in result.err
    for secret in (token, token.split(".")[2][:20], key_info["private_key"][30:70], "eyJ"):
        assert secret not in result.err


# -- bad input: one line on stderr, the right exit code, nothing on stdout, no traceback ------


def _bad_files(tmp_path: Path, key_info: dict[str, str], emulator: EmulatorClient) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for name, content in {
        "not-json": "{oops",
        "unknown-type": json.dumps({"type": "weird"}),
        "no-key": json.dumps({k: v for k, v in key_info.items() if k != "private_key"}),
        "broken-key": json.dumps(
            {
                **key_info,
                "private_key": "-----BEGIN PRIVATE KEY-----\nSECRETSTUFF\n-----END PRIVATE KEY-----\n",
            }
        ),
        "unknown-key": json.dumps({**key_info, "private_key_id": "f" * 40}),
        "unreachable": json.dumps({**key_info, "token_uri": "http://127.0.0.1:9/token"}),
    }.items():
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(content)
    return files


BAD_INPUT = [
    ("missing-file", ["id", AUD, "--credentials", "{tmp}/absent.json"], 3, "does not exist"),
    ("not-json", ["id", AUD, "--credentials", "{not-json}"], 3, "not JSON"),
    (
        "unknown-type",
        ["id", AUD, "--credentials", "{unknown-type}"],
        3,
        "unsupported credential type 'weird'",
    ),
    ("no-key", ["id", AUD, "--credentials", "{no-key}"], 3, "no 'private_key'"),
    ("broken-key", ["id", AUD, "--credentials", "{broken-key}"], 3, "'private_key' is not"),
    ("unknown-key", ["id", AUD, "--credentials", "{unknown-key}"], 1, "Invalid JWT Signature."),
    (
        "unreachable",
        ["id", AUD, "--credentials", "{unreachable}", "--timeout", "2"],
        3,
        "cannot reach 127.0.0.1:9: connection refused",
    ),
    ("empty-audience", ["id", ""], 2, "audience is empty"),
    ("no-audience", ["id"], 2, "audience is required"),
    ("two-audiences", ["id", AUD, "--audience", "https://b"], 2, "give the audience once"),
    ("blank-credentials", ["id", AUD, "--credentials", ""], 2, "argument --credentials: is empty"),
    ("empty-scopes", ["access", "--scopes", ","], 2, "--scopes: the list names no scope"),
    ("decode-garbage", ["decode", "garbage"], 1, "1 part"),
    ("decode-empty", ["decode", "-"], 2, "empty"),
    ("decode-two-parts", ["decode", "a.b"], 1, "2 parts"),
    ("decode-four-parts", ["decode", "a.b.c.d"], 1, "4 parts"),
    ("decode-bad-base64", ["decode", "e30.!!.AA"], 1, "base64url"),
    ("verify-garbage", ["verify", "garbage", "--audience", AUD], 1, "1 part"),
    ("verify-empty", ["verify", "", "--audience", AUD], 2, "empty"),
    ("verify-four-parts", ["verify", "a.b.c.d", "--audience", AUD], 1, "4 parts"),
    ("verify-no-audience", ["verify", "a.b.c"], 2, "--audience"),
    ("verify-bad-now", ["verify", "a.b.c", "--audience", AUD, "--now", "yesterday"], 2, "--now"),
    (
        "verify-certs-missing",
        ["verify", "e30.e30.AA", "--audience", AUD, "--certs", "{tmp}/none.json"],
        3,
        "does not exist",
    ),
    (
        "verify-iap-audience",
        ["verify", "a.b.c", "--preset", "iap", "--audience", "123.apps.googleusercontent.com"],
        2,
        "IAP audience",
    ),
    ("verify-bad-preset", ["verify", "a.b.c", "--preset", "aws", "--audience", AUD], 2, "invalid choice"),
    ("verify-http-issuer", ["verify", "a.b.c", "--audience", AUD, "--issuer", "http://issuer.example"], 2, "https"),
    (
        "verify-two-discovered",
        ["verify", "a.b.c", "--audience", AUD, "--issuer", "https://a.example", "--issuer", "https://b.example"],
        2,
        "--certs",
    ),
    (
        "verify-firebase-two",
        ["verify", "a.b.c", "--preset", "firebase", "--audience", "p1", "--audience", "p2"],
        2,
        "project ID",
    ),
    ("verify-bad-max-age", ["verify", "a.b.c", "--audience", AUD, "--max-age", "0"], 2, "--max-age"),
    ("verify-garbage-iap", ["verify", "garbage", "--preset", "iap", "--audience", "/projects/1/apps/p"], 1, "1 part"),
    ("info-garbage", ["info", "garbage"], 1, "Invalid Value"),
    ("unknown-command", ["frobnicate"], 2, "invalid choice"),
    ("bad-format", ["id", AUD, "--format", "xml"], 2, "invalid choice"),
    ("emulator-bad-port", ["emulator", "--port", "70000"], 2, "--port"),
]


@pytest.mark.parametrize(
    ("args", "code", "fragment"), [row[1:] for row in BAD_INPUT], ids=[row[0] for row in BAD_INPUT]
)
def test_bad_input(
    env: dict[str, str],
    tmp_path: Path,
    key_info: dict[str, str],
    emulator: EmulatorClient,
    args: list[str],
    code: int,
    fragment: str,
) -> None:
    files = {name: str(path) for name, path in _bad_files(tmp_path, key_info, emulator).items()}
    argv = [arg.format(tmp=tmp_path, **files) for arg in args]
    environment = {**env, "GOOGLE_APPLICATION_CREDENTIALS": ""} if "--credentials" in argv else env
    result = gcptoken(*argv, env=environment)
    assert result.code == code, result.err
    assert result.out == ""
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert fragment in lines[0]
    for secret in ("SECRETSTUFF", key_info["private_key"][30:70]):
        assert secret not in result.err


def test_every_command_has_help() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert commands is not None
    expected = {
        "id",
        "access",
        "jwt",
        "sign-jwt",
        "sign-blob",
        "call",
        "curl",
        "send",
        "pubsub-emulator",
        "whoami",
        "decode",
        "verify",
        "info",
        "emulator",
        "login",
        "logout",
        "metadata-server",
        "proxy",
        "inspect",
        "docker-config",
        "cache",
        "demo",
        "completion",
        "kube-credential",
        "keyring",
        "key",
    }
    assert set(commands) == expected
    for name in commands:
        result = gcptoken(name, "--help")
        assert result.code == 0 and result.out.startswith("usage: gcptoken " + name), name


def test_emulator_command_serves_and_writes_its_state_dir(tmp_path: Path, key_info: dict[str, str]) -> None:
    state_dir = tmp_path / "emu"
    with emulator_command("--state-dir", str(state_dir)) as running:
        url = running.url
        assert url.startswith("http://127.0.0.1:")
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in (state_dir / "env").read_text().splitlines()
        )
        assert exports["GCPTOKEN_EMULATOR_HOST"] == url.removeprefix("http://")
        token = gcptoken("id", AUD, env=exports)
        assert token.code == 0, token.err
        claims = Verifier(AUD, certs=f"{url}/oauth2/v3/certs").verify(token.out.strip())
        assert claims["email"].startswith("default@")
        target = json.loads((state_dir / "impersonated-service-account.json").read_text())
        target_email = target["service_account_impersonation_url"].rsplit("/", 1)[1].split(":")[0]
        # Every kind of credential the state dir holds works at once with its env.
        for name, extra in (
            ("external-account-aws.json", ()),
            ("external-account-x509.json", ()),
            ("external-account-authorized-user.json", ("--impersonate-service-account", target_email)),
        ):
            path = state_dir / name
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
            result = gcptoken("id", AUD, "--credentials", str(path), *extra, env=exports)
            assert result.code == 0, (name, result.err)
            claims = Verifier(AUD, certs=f"{url}/oauth2/v3/certs").verify(result.out.strip())
            assert claims["sub"], name
        for name in ("workload.key", "certificate_config.json", "ca.pem"):
            assert stat.S_IMODE((state_dir / name).stat().st_mode) == 0o600, name
    assert "Traceback" not in running.err


def test_demo_runs_and_every_step_passes() -> None:
    result = gcptoken("demo")
    assert result.code == 0, result.err
    assert "\n  ✗ " not in result.out  # no row misbehaved (refused tokens show "✗ reason" as verified)
    gcloud_rows = 1 if shutil.which("gcloud") else 0
    table = result.out.split("The same against real Google")[0]
    assert table.count("\n  ✓ ") == 18  # every row behaved
    assert table.count("200 Hello") == 10 + gcloud_rows and table.count(" 401\n") == 1  # IAP's
    # Cloud Run's front door: its own pages, 401 for a bad token, 403 for none or for no binding
    assert table.count("401 Error: Unauthorized") == 2 and table.count("403 Error: Forbidden") == 2
    assert table.count("✗ audience") == 2 and table.count("✗ expired") == 1
    assert "IAP: a person's token for it" in table
    assert "plain HTTP client via proxy" in table
    assert "google-auth via metadata-server" in table
    for source in (
        "service-account key",
        "metadata server",
        "impersonating demo-runner",
        "federation: OIDC",
        "federation: AWS",
        "federation: X.509",
        "workforce person",
        "gcloud",
        "IAP",
    ):
        assert source in table
    header = next(line for line in table.splitlines() if "ID token from" in line)
    assert header.index("trips") <= 40  # short labels (they were up to 49 characters): the table stays narrow
    assert result.out.count("https://SERVICE-HASH.a.run.app") >= 7  # commands for real Google, row by row
    assert "Hello, demo-runner@…" in result.out  # the service account's name: its project is on every row
    assert "refused before any request: use" in result.out and "--impersonate-service-account" in result.out
    wide = [line for line in result.out.splitlines() if len(line) > 100]
    assert wide == [], wide  # fits a 100-column terminal, table and commands alike


@pytest.mark.parametrize("args", [["--help"], ["decode", "e30.eyJhIjoxfQ.AA"], ["id", "--help"]])
def test_light_commands_import_no_heavy_modules(args: list[str]) -> None:
    """Keeps the CLI's fast paths fast: checked by what gets imported, never by timing."""
    code = (
        "import sys\n"
        "from gcptoken.cli.main import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('httpx', 'cryptography', 'starlette', 'uvicorn')\n"
        "print(sorted(name for name in heavy if name in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.stderr.strip().splitlines()[-1] == "[]", result.stderr
