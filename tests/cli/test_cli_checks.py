"""The command line never does something other than what was asked: every bad value from flags,
the environment and files gets one line on stderr, the documented exit code, nothing on stdout,
and no token request reaches the (emulated) Google; messages help and never echo secrets."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gcptoken.testing import EmulatorClient, write_key_file
from tests.cli.test_cli import COMMAND, Result, gcptoken

AUD = "https://svc-checks.a.run.app"
SECRET = "1//0gSECRETREFRESHTOKENxyz"


def _token_requests(emulator: EmulatorClient) -> int:
    return sum(1 for entry in emulator.requests() if not entry["path"].startswith("/emulator/"))


@pytest.fixture
def env(emulator: EmulatorClient, key_path: Path) -> dict[str, str]:
    return {"GCPTOKEN_EMULATOR_HOST": emulator.host_port, "GOOGLE_APPLICATION_CREDENTIALS": str(key_path)}


def _files(tmp_path: Path, key_info: dict[str, str]) -> dict[str, str]:
    contents: dict[str, object] = {
        "ipv6-token-uri": {**key_info, "token_uri": "http://[::1/token"},
        "ftp-token-uri": {**key_info, "token_uri": "ftp://127.0.0.1/token"},
        "port-token-uri": {**key_info, "token_uri": "http://127.0.0.1:99999/token"},
        "numeric-key": {**key_info, "private_key": 12345},
        "list-email": {**key_info, "client_email": ["a@b"]},
        "secret-in-token-uri": {
            "type": "authorized_user",
            "client_id": "c.apps.googleusercontent.com",
            "client_secret": "s",
            "refresh_token": "r",
            "token_uri": SECRET,
        },
        "secret-as-type": {"type": SECRET, "client_id": "c"},
        "secret-as-subject-type": {
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x",
            "subject_token_type": SECRET,
            "credential_source": {"file": "/nonexistent"},
        },
        "bad-impersonation-options": {
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "credential_source": {"file": "/nonexistent"},
            "service_account_impersonation": ["not", "an", "object"],
        },
        "headers-not-object": {
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "credential_source": {"url": "http://127.0.0.1:9/t", "headers": ["x"]},
        },
    }
    paths = {"fifo": str(tmp_path / "fifo.json"), "huge": str(tmp_path / "huge.json")}
    os.mkfifo(paths["fifo"])  # a reader that opened it would wait for a writer for ever
    (tmp_path / "huge.json").write_text(json.dumps({"type": "service_account", "pad": "x" * (2 << 20)}))
    for name, content in contents.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(content))
        paths[name] = str(path)
    return paths


BAD = [
    ("impersonate-empty", ["id", AUD, "--impersonate-service-account", ""], {}, 2, "--impersonate-service-account"),
    ("impersonate-commas", ["id", AUD, "--impersonate-service-account", " , ,"], {}, 2, "is empty"),
    ("impersonate-gap", ["id", AUD, "--impersonate-service-account", "a@b.c,,d@e.f"], {}, 2, "not a service account"),
    ("impersonate-not-email", ["access", "--impersonate-service-account", "nobody"], {}, 2, "not a service account"),
    ("whoami-impersonate-empty", ["whoami", "--impersonate-service-account", ""], {}, 2, "is empty"),
    ("call-impersonate-empty", ["call", AUD, "--impersonate-service-account", ","], {}, 2, "is empty"),
    ("audience-option-like", ["id", "--", "-v"], {}, 2, "looks like an option"),
    ("audience-option-like-flag", ["id", "--audience=--x"], {}, 2, "looks like an option"),
    ("audience-no-host", ["id", "https://"], {}, 2, "has no host"),
    ("audience-broken-ipv6", ["id", "https://[::1"], {}, 2, "not a valid URL"),
    ("audience-bad-port", ["id", "https://svc.example:99999"], {}, 2, "not a valid URL"),
    ("audience-ftp", ["id", "ftp://svc.example"], {}, 2, "http"),
    ("audience-space", ["id", "https://svc.example/a b"], {}, 2, "spaces"),
    ("call-two-urls", ["call", AUD, "https://other.example"], {}, 2, "not an HTTP method"),
    ("call-not-a-url", ["call", "svc.example/path"], {}, 2, "must start with"),
    ("call-bad-port", ["call", "https://svc.example:70000/"], {}, 2, "not a valid URL"),
    ("call-broken-ipv6", ["call", "http://[::1/"], {}, 2, "not a valid URL"),
    ("call-no-host", ["call", "http:///path"], {}, 2, "no host"),
    ("call-header-name", ["call", AUD, "-H", "Náme: v"], {}, 2, "ASCII"),
    ("call-header-value", ["call", AUD, "-H", "X-Name: välue"], {}, 2, "printable ASCII"),
    ("call-header-shape", ["call", AUD, "-H", "no colon"], {}, 2, "Name: value"),
    ("curl-url-after-dashes", ["curl", "--", "-s", AUD], {}, 2, "URL"),
    ("curl-ftp", ["curl", "ftp://svc.example/"], {}, 2, "http"),
    ("timeout-nan", ["id", AUD, "--timeout", "nan"], {}, 2, "--timeout"),
    ("timeout-inf", ["access", "--timeout", "inf"], {}, 2, "--timeout"),
    ("timeout-zero", ["id", AUD, "--timeout", "0"], {}, 2, "--timeout"),
    ("timeout-negative", ["id", AUD, "--timeout=-1"], {}, 2, "--timeout"),
    ("info-timeout", ["info", "x", "--timeout", "nan"], {}, 2, "--timeout"),
    ("verify-http-certs", ["verify", "a.b.c", "--audience", AUD, "--certs", "http://keys.example/c"], {}, 2, "https"),
    ("verify-broken-issuer", ["verify", "a.b.c", "--audience", AUD, "--issuer", "https://[::1"], {}, 2, "issuer"),
    ("verify-skew-nan", ["verify", "a.b.c", "--audience", AUD, "--clock-skew", "nan"], {}, 2, "--clock-skew"),
    ("verify-now-inf", ["verify", "a.b.c", "--audience", AUD, "--now", "inf"], {}, 2, "--now"),
    ("emulator-host-port", ["id", AUD], {"GCPTOKEN_EMULATOR_HOST": "127.0.0.1:abc"}, 2, "GCPTOKEN_EMULATOR_HOST"),
    ("emulator-host-path", ["id", AUD], {"GCPTOKEN_EMULATOR_HOST": "127.0.0.1:1/x"}, 2, "GCPTOKEN_EMULATOR_HOST"),
    (
        "metadata-host",
        ["id", AUD, "--source", "metadata"],
        {"GCE_METADATA_HOST": "[::1"},
        2,
        "GCE_METADATA_HOST",
    ),
    (
        "metadata-ip",
        ["id", AUD],
        {"GOOGLE_APPLICATION_CREDENTIALS": "", "NO_GCE_CHECK": "", "GCE_METADATA_IP": "bad host"},
        2,
        "GCE_METADATA_IP",
    ),
    ("file-ipv6-token-uri", ["id", AUD, "--credentials", "{ipv6-token-uri}"], {}, 3, "'token_uri'"),
    ("file-ftp-token-uri", ["id", AUD, "--credentials", "{ftp-token-uri}"], {}, 3, "'token_uri'"),
    ("file-port-token-uri", ["id", AUD, "--credentials", "{port-token-uri}"], {}, 3, "'token_uri'"),
    ("file-numeric-key", ["id", AUD, "--credentials", "{numeric-key}"], {}, 3, "'private_key' is not a string"),
    ("file-list-email", ["id", AUD, "--credentials", "{list-email}"], {}, 3, "'client_email' is not a string"),
    ("file-secret-token-uri", ["id", "--credentials", "{secret-in-token-uri}"], {}, 3, "'token_uri'"),
    ("file-secret-type", ["id", AUD, "--credentials", "{secret-as-type}"], {}, 3, "unsupported credential type"),
    (
        "file-secret-subject-type",
        ["access", "--credentials", "{secret-as-subject-type}"],
        {},
        3,
        "unsupported subject_token_type",
    ),
    (
        "file-impersonation-options",
        ["access", "--credentials", "{bad-impersonation-options}"],
        {},
        3,
        "not an object",
    ),
    ("file-url-headers", ["access", "--credentials", "{headers-not-object}"], {}, 3, "'headers'"),
    ("credentials-dev-zero", ["id", AUD, "--credentials", "/dev/zero"], {}, 3, "not a regular file"),
    ("credentials-fifo", ["id", AUD, "--credentials", "{fifo}"], {}, 3, "not a regular file"),
    ("credentials-huge", ["id", AUD, "--credentials", "{huge}"], {}, 3, "larger than"),
    ("env-dev-zero", ["access"], {"GOOGLE_APPLICATION_CREDENTIALS": "/dev/zero"}, 3, "not a regular file"),
    ("env-file-missing", ["id", AUD], {"GOOGLE_APPLICATION_CREDENTIALS": "{tmp}/gone.json"}, 3, "GOOGLE_APPLICATION_"),
    ("decode-access-token", ["decode", "ya29.a0AfB_byC-opaque"], {}, 1, "gcptoken info"),
    ("decode-refresh-token", ["decode", SECRET], {}, 1, "revoke"),
    ("include-email-no-impersonation", ["id", AUD, "--include-email"], {}, 2, "only when impersonating"),
]


@pytest.mark.parametrize(("args", "extra_env", "code", "fragment"), [r[1:] for r in BAD], ids=[r[0] for r in BAD])
def test_bad_input_is_one_line_and_sends_nothing(
    emulator: EmulatorClient,
    env: dict[str, str],
    key_info: dict[str, str],
    tmp_path: Path,
    args: list[str],
    extra_env: dict[str, str],
    code: int,
    fragment: str,
) -> None:
    files = _files(tmp_path, key_info)
    argv = [arg.format(tmp=tmp_path, **files) for arg in args]
    environment = {**env, **{k: v.format(tmp=tmp_path) for k, v in extra_env.items()}}
    before = _token_requests(emulator)
    result = gcptoken(*argv, env=environment)
    assert (result.code, result.out) == (code, ""), result.err
    lines = result.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    assert fragment in lines[0], lines[0]
    assert SECRET not in result.err and "SECRETREFRESH" not in result.err
    assert _token_requests(emulator) == before  # nothing was sent


def test_version_and_verbose_after_the_command(env: dict[str, str]) -> None:
    version = gcptoken("--version")
    assert version.code == 0 and version.out.startswith("gcptoken ") and version.out.strip()[-1].isdigit()
    assert gcptoken("id", AUD, env=env).code == 0
    verbose = gcptoken("id", AUD, "-v", env=env)
    assert verbose.code == 0 and verbose.out.count(".") == 2
    assert "cache hit, " in verbose.err and " s left" in verbose.err
    assert verbose.out.strip() not in verbose.err


def test_help_offers_only_what_applies_and_shows_defaults() -> None:
    jwt = gcptoken("jwt", "--help").out
    assert "--credentials" in jwt and "--source" not in jwt and "--no-cache" not in jwt and "--timeout" not in jwt
    whoami = gcptoken("whoami", "--help").out
    assert "--no-cache" not in whoami and "--source" in whoami
    assert "--no-cache" not in gcptoken("call", "--help").out
    identity = " ".join(gcptoken("id", "--help").out.split())
    assert "--no-cache" in identity and "(default: 10.0)" in identity and "(default: token)" in identity


def test_refusals_exit_1_and_unavailability_exits_3(emulator: EmulatorClient, env: dict[str, str]) -> None:
    for status in (429, 503):
        httpx.post(f"{emulator.url}/emulator/v1/faults", json={"path": "/token", "count": 3, "status": status})
        result = gcptoken("id", AUD, "--no-cache", env=env)
        assert (result.code, result.out) == (3, ""), (status, result.err)
        assert str(status) in result.err and len(result.err.splitlines()) == 1
    httpx.delete(f"{emulator.url}/emulator/v1/faults")


def test_curl_missing_exits_3(env: dict[str, str], tmp_path: Path) -> None:
    result = gcptoken("curl", AUD, env={**env, "PATH": str(tmp_path)})
    assert (result.code, result.out) == (3, "") and "curl is not installed" in result.err


def test_impersonation_denied_names_the_missing_role(
    emulator: EmulatorClient, env: dict[str, str], key_info: dict[str, str]
) -> None:
    target = emulator.new_key("no-binding")["client_email"]
    result = gcptoken("id", AUD, "--impersonate-service-account", target, env=env)
    assert (result.code, result.out) == (1, "")
    assert "roles/iam.serviceAccountTokenCreator" in result.err and target in result.err
    assert key_info["client_email"] in result.err


def test_a_revoked_sign_in_says_how_to_sign_in_again(emulator: EmulatorClient, tmp_path: Path) -> None:
    info = emulator.state.issue_refresh_token("gone@example.com")
    path = write_key_file(tmp_path, {**info, "refresh_token": "1//0revoked"}, "user.json")
    result = gcptoken("id", "--credentials", str(path), env={"GCPTOKEN_EMULATOR_HOST": emulator.host_port})
    assert (result.code, result.out) == (1, "")
    assert "invalid_grant" in result.err and "sign in again" in result.err and "1//0revoked" not in result.err


def test_verify_hd_on_a_token_without_hd_says_so(env: dict[str, str], emulator: EmulatorClient) -> None:
    token = gcptoken("id", AUD, env=env).out.strip()
    certs = f"{emulator.url}/oauth2/v3/certs"
    result = gcptoken("verify", token, "--audience", AUD, "--certs", certs, "--hd", "example.com")
    assert result.code == 1 and "no 'hd' claim" in result.err and "'None'" not in result.err


def test_include_email_and_lifetime_work_for_an_impersonating_file(
    emulator: EmulatorClient, tmp_path: Path, env: dict[str, str]
) -> None:
    user = emulator.state.issue_refresh_token("impersonator@example.com")
    target = emulator.new_key("file-target")["client_email"]
    emulator.state.grant_token_creator(target, "user:impersonator@example.com")
    info = {
        "type": "impersonated_service_account",
        "service_account_impersonation_url": (
            f"{emulator.url}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
        ),
        "source_credentials": user,
        "delegates": [],
    }
    path = tmp_path / "impersonated.json"
    path.write_text(json.dumps(info))
    with_email = gcptoken("id", AUD, "--credentials", str(path), "--include-email", "--format", "claims", env=env)
    assert with_email.code == 0, with_email.err
    assert json.loads(with_email.out)["email"] == target
    short = gcptoken("access", "--credentials", str(path), "--lifetime", "900", "--format", "json", env=env)
    assert short.code == 0, short.err
    expires = json.loads(short.out)["expires_at"]
    from datetime import datetime

    assert 800 < datetime.fromisoformat(expires).timestamp() - time.time() <= 900


def test_call_errors_never_show_the_query(env: dict[str, str]) -> None:
    result = gcptoken("call", "http://127.0.0.1:9/path?api_key=hunter2", "--timeout", "2", env=env)
    assert (result.code, result.out) == (3, "") and "hunter2" not in result.err and "/path" in result.err


# -- curl: its own arguments untouched, the header file gone however it ends ---------------------------

FAKE_CURL = """#!{python}
import json, os, signal, sys, time
signal.signal(signal.SIGINT, lambda *_: sys.exit(130))  # as real curl: no traceback
with open(os.environ["FAKE_CURL_LOG"], "w") as log:
    header = sys.argv[2][1:]
    json.dump({{"argv": sys.argv[1:], "header": open(header).read()}}, log)
time.sleep(float(os.environ.get("FAKE_CURL_SLEEP", "0")))
"""


@pytest.fixture
def fake_curl(tmp_path: Path) -> dict[str, str]:
    """A stand-in ``curl`` on PATH that records its arguments (a real process, not a mock of ours)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    curl = bin_dir / "curl"
    curl.write_text(FAKE_CURL.format(python=sys.executable))
    curl.chmod(stat.S_IRWXU)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir(mode=0o700)
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_CURL_LOG": str(tmp_path / "curl.json"),
        "TMPDIR": str(private_tmp),
    }


def test_curl_takes_everything_after_the_first_double_dash(
    env: dict[str, str], fake_curl: dict[str, str], tmp_path: Path
) -> None:
    result = gcptoken("curl", AUD, "--", "-s", "--", "-not-an-option", env={**env, **fake_curl})
    assert result.code == 0, result.err
    seen = json.loads((tmp_path / "curl.json").read_text())
    assert seen["argv"][0] == "-H" and seen["argv"][2:] == ["-s", "--", "-not-an-option", AUD]
    assert seen["header"].startswith("Authorization: Bearer ey")
    assert list((tmp_path / "tmp").iterdir()) == []  # the header file is gone


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [
        (signal.SIGTERM, 143, "gcptoken: terminated"),  # as every one-shot command (README's exit codes)
        (signal.SIGHUP, 129, "gcptoken: hung up (SIGHUP)"),
        (signal.SIGINT, 130, "gcptoken: interrupted"),
    ],
)
def test_curl_removes_its_header_file_on_signals(
    env: dict[str, str], fake_curl: dict[str, str], tmp_path: Path, signum: int, code: int, said: str
) -> None:
    process = subprocess.Popen(
        [*COMMAND, "curl", AUD],
        env={**os.environ, **env, **fake_curl, "FAKE_CURL_SLEEP": "30"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not (tmp_path / "curl.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list((tmp_path / "tmp").iterdir()), "the header file should exist while curl runs"
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    result = Result(process.returncode, out, err)
    assert result.code == code, result.err
    assert list((tmp_path / "tmp").iterdir()) == []
    assert result.err == said + "\n"


def test_ctrl_c_anywhere_is_interrupted_130(emulator: EmulatorClient, env: dict[str, str]) -> None:
    httpx.delete(f"{emulator.url}/emulator/v1/faults")
    httpx.post(f"{emulator.url}/emulator/v1/faults", json={"path": "/token", "count": 1, "delay": 20})
    process = subprocess.Popen(
        [*COMMAND, "id", AUD, "--no-cache", "--timeout", "30"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while httpx.get(f"{emulator.url}/emulator/v1/faults").json()["faults"]:  # taken: the request is in flight
        assert time.monotonic() < deadline, "the token request never arrived"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    httpx.delete(f"{emulator.url}/emulator/v1/faults")
    assert (process.returncode, out, err) == (130, "", "gcptoken: interrupted\n")
