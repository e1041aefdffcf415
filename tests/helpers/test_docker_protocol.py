"""``docker-credential-gcptoken`` speaks docker's credential-helper protocol byte for byte, as
docker/docker-credential-helpers' ``credentials`` package writes it: ``get`` answers Google's
registries (and the hosts mapped to it) with an access token, from the disk cache after the first
call; every other host gets the exact "not found" text docker takes as no credentials; errors are
one line on stdout (what docker shows) and one on stderr, never a traceback, never a token."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from gcptoken import __version__
from gcptoken.testing import EmulatorClient, write_key_file
from tests.helpers.docker_env import HELPER, closed_env, helper, write_docker_config

NOT_FOUND = "credentials not found in native keychain\n"


@pytest.fixture
def sa(emulator: EmulatorClient) -> dict[str, str]:
    return emulator.new_key("docker")


@pytest.fixture
def env(emulator: EmulatorClient, sa: dict[str, str], tmp_path: Path) -> dict[str, str]:
    key = write_key_file(tmp_path, sa)
    return closed_env(tmp_path, emulator.host_port, GOOGLE_APPLICATION_CREDENTIALS=str(key))


def _fetches(emulator: EmulatorClient, email: str) -> int:
    return len(emulator.token_requests_by(email))


def _issued(emulator: EmulatorClient, token: str) -> str:
    grant = emulator.state.access_tokens.get(token)
    assert grant is not None, "not a token the emulator issued"
    return grant.email


@pytest.mark.parametrize(
    ("stdin", "server_url"),
    [
        ("us-docker.pkg.dev", "us-docker.pkg.dev"),
        ("https://gcr.io\n", "https://gcr.io"),  # the lines joined, then trimmed, as Get does
        ("  europe-west1-docker.pkg.dev/project/repo  ", "europe-west1-docker.pkg.dev/project/repo"),
        ("https://eu.gcr.io/v2/a<b>&c", "https://eu.gcr.io/v2/a\\u003cb\\u003e\\u0026c"),  # Go's HTML escaping
    ],
)
def test_get_prints_the_credentials_exactly_as_the_protocol_does(
    emulator: EmulatorClient, sa: dict[str, str], env: dict[str, str], stdin: str, server_url: str
) -> None:
    result = helper(["get"], stdin, env)
    assert (result.returncode, result.stderr) == (0, "")
    secret = json.loads(result.stdout)["Secret"]
    expected = f'{{"ServerURL":"{server_url}","Username":"oauth2accesstoken","Secret":"{secret}"}}\n'
    assert result.stdout == expected
    assert _issued(emulator, secret) == sa["client_email"]


def test_the_second_get_is_answered_from_the_disk_cache(
    emulator: EmulatorClient, sa: dict[str, str], env: dict[str, str]
) -> None:
    first = helper(["get"], "us-docker.pkg.dev", env)
    second = helper(["get"], "asia.gcr.io", env)
    assert json.loads(first.stdout)["Secret"] == json.loads(second.stdout)["Secret"]
    assert _fetches(emulator, sa["client_email"]) == 1


@pytest.mark.parametrize(
    "server",
    [
        "docker.io",
        "https://index.docker.io/v1/",
        "ghcr.io",
        "127.0.0.1:5000",
        "evilpkg.dev",
        "pkg.dev",
        "us-docker.pkg.dev.evil.example",
        "us-docker.pkg.dev:8443",
        "http://us-docker.pkg.dev",  # never over plain HTTP
        "gcr.io@evil.example",
    ],
)
def test_any_other_registry_gets_the_protocols_not_found_and_no_token(
    emulator: EmulatorClient, sa: dict[str, str], env: dict[str, str], server: str
) -> None:
    result = helper(["get"], server, env)
    assert (result.returncode, result.stdout, result.stderr) == (1, NOT_FOUND, "")
    assert _fetches(emulator, sa["client_email"]) == 0  # not even fetched


def test_only_the_hosts_the_user_named_in_the_environment_are_answered(
    emulator: EmulatorClient, sa: dict[str, str], env: dict[str, str]
) -> None:
    # A credHelpers entry alone (a repository-shipped DOCKER_CONFIG, an installer) is not enough: docker
    # passes the bare host and follows whatever realm that registry names, plain HTTP too.
    path = write_docker_config(env, {"credHelpers": {"registry.example.com:5000": "gcptoken", "ghcr.io": "gcloud"}})
    path.chmod(0o600)
    mapped = helper(["get"], "registry.example.com:5000", env)
    assert (mapped.returncode, mapped.stdout) == (1, NOT_FOUND)
    # What the user can fix is said once on stderr (docker shows it); credsStore's other hosts stay quiet.
    assert mapped.stderr.startswith("docker-credential-gcptoken: warning: registry.example.com:5000 is mapped")
    assert "GCPTOKEN_HELPER_HOSTS=registry.example.com:5000" in mapped.stderr and mapped.stderr.count("\n") == 1
    assert helper(["get"], "ghcr.io", env).stderr == ""  # another helper's: not ours to speak of
    assert _fetches(emulator, sa["client_email"]) == 0
    named = {**env, "GCPTOKEN_HELPER_HOSTS": "registry.example.com:5000"}
    assert helper(["get"], "registry.example.com:5000", named).returncode == 0
    assert helper(["get"], "https://registry.example.com:5000", named).returncode == 0
    assert helper(["get"], "registry.example.com", named).stdout == NOT_FOUND  # that port only
    assert helper(["get"], "http://registry.example.com:5000", named).stdout == NOT_FOUND  # never plain HTTP


def test_list_names_googles_registries_only(env: dict[str, str]) -> None:
    write_docker_config(env, {"credHelpers": {"registry.example.com": "gcptoken"}})
    result = helper(["list"], "unused", env)  # docker writes "unused" to list's stdin
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.endswith("}\n") and "\n" not in result.stdout[:-1]
    listed = json.loads(result.stdout)
    assert listed["https://gcr.io"] == "oauth2accesstoken"
    assert "registry.example.com" not in listed


def test_version_and_help(env: dict[str, str]) -> None:
    version = helper(["version"], "", env)
    assert (version.returncode, version.stdout) == (0, f"docker-credential-gcptoken (gcptoken) {__version__}\n")
    shown = helper(["--help"], "", env)
    assert shown.returncode == 0
    assert "gcptoken docker-config us-docker.pkg.dev" in shown.stdout  # the one-line install
    assert "GCPTOKEN_DOCKER_CREDENTIALS" in shown.stdout


def _one_error(result: subprocess.CompletedProcess[str], stdout: str) -> None:
    assert result.returncode == 1
    assert result.stdout == stdout
    stderr = result.stderr
    assert stderr.startswith("docker-credential-gcptoken: error: ") and stderr.count("\n") == 1
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("args", "stdin", "stdout"),
    [
        (["get"], "", "no credentials server URL\n"),
        (["get"], " \n \n", "no credentials server URL\n"),
        ([], "", "Usage: docker-credential-gcptoken <store|get|erase|list|version>\n"),
        (["get", "extra"], "", "Usage: docker-credential-gcptoken <store|get|erase|list|version>\n"),
        (["fetch"], "", "Unknown credential action `fetch`\n"),
        (["get"], "x" * 70_000, "bufio.Scanner: token too long\n"),
    ],
)
def test_bad_calls_get_the_protocols_error_form(env: dict[str, str], args: list[str], stdin: str, stdout: str) -> None:
    _one_error(helper(args, stdin, env), stdout)


def test_store_and_erase_are_refused_politely(env: dict[str, str]) -> None:
    write_docker_config(env, {"credHelpers": {"us-docker.pkg.dev": "gcptoken"}})
    stored = helper(["store"], '{"ServerURL":"us-docker.pkg.dev","Username":"u","Secret":"s3cret"}\n', env)
    _one_error(stored, stored.stdout)
    assert "stores no credentials" in stored.stdout and stored.stdout.count("\n") == 1
    assert "remove it from credHelpers" in stored.stdout
    assert "s3cret" not in stored.stdout + stored.stderr
    erased = helper(["erase"], "us-docker.pkg.dev\n", env)
    _one_error(erased, erased.stdout)
    assert "gcptoken docker-config --remove" in erased.stdout


def test_as_credsstore_the_store_refusal_says_what_to_change(env: dict[str, str]) -> None:
    write_docker_config(env, {"credsStore": "gcptoken"})  # docker asks it to store every login
    stored = helper(["store"], '{"ServerURL":"ghcr.io","Username":"u","Secret":"s3cret"}\n', env)
    _one_error(stored, stored.stdout)
    assert '"credsStore": "gcptoken"' in stored.stdout and "credHelpers entries" in stored.stdout
    assert "remove it from credHelpers" not in stored.stdout


@pytest.mark.parametrize("action", ["get", "list", "version", "store", "erase", "fetch"])
@pytest.mark.parametrize("stdout", ["closed", "full"])
def test_a_closed_or_full_stdout_is_one_line_and_exit_1(env: dict[str, str], action: str, stdout: str) -> None:
    target = None if stdout == "closed" else open("/dev/full", "wb")  # noqa: SIM115 - closed below
    try:
        result = subprocess.run(
            [str(HELPER), action],
            input=b"gcr.io",
            stdout=target if target is not None else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=(),
            preexec_fn=(lambda: os.close(1)) if target is None else None,  # fd 1 closed, as >&-
            timeout=60,
            check=False,
        )
    finally:
        if target is not None:
            target.close()
    stderr = result.stderr.decode()
    assert result.returncode == 1
    assert "cannot write the answer to stdout" in stderr.splitlines()[-1]
    assert "Traceback" not in stderr and "Exception ignored" not in stderr


def test_no_credential_is_one_line_on_each_stream(emulator: EmulatorClient, tmp_path: Path) -> None:
    env = closed_env(tmp_path, emulator.host_port)
    result = helper(["get"], "us-docker.pkg.dev", env)
    assert result.stdout.startswith("docker-credential-gcptoken: no Google access token: no credentials found")
    _one_error(result, result.stdout)


def test_a_refused_credential_names_no_secret(emulator: EmulatorClient, tmp_path: Path) -> None:
    user = emulator.state.issue_refresh_token("docker-revoked@example.com")
    user["refresh_token"] = "1//0-not-a-grant-" + "x" * 40
    env = closed_env(tmp_path, emulator.host_port, GOOGLE_APPLICATION_CREDENTIALS=str(write_key_file(tmp_path, user)))
    result = helper(["get"], "us-docker.pkg.dev", env)
    _one_error(result, result.stdout)
    for secret in (user["refresh_token"], user["client_secret"]):
        assert secret not in result.stdout + result.stderr


def test_a_credential_file_and_impersonation_from_the_environment(
    emulator: EmulatorClient, sa: dict[str, str], tmp_path: Path
) -> None:
    key = write_key_file(tmp_path, sa, "docker-key.json")
    env = closed_env(tmp_path, emulator.host_port, GCPTOKEN_DOCKER_CREDENTIALS=str(key))
    named = helper(["get"], "gcr.io", env)
    assert _issued(emulator, json.loads(named.stdout)["Secret"]) == sa["client_email"]
    target = emulator.new_key("docker-target")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{sa['client_email']}")
    acting = helper(["get"], "gcr.io", {**env, "GCPTOKEN_DOCKER_IMPERSONATE": target})
    assert (acting.returncode, acting.stderr) == (0, "")
    assert _issued(emulator, json.loads(acting.stdout)["Secret"]) == target


def test_bytes_that_are_not_utf8_are_no_host_of_ours(env: dict[str, str]) -> None:
    result = subprocess.run([str(HELPER), "get"], input=b"\xff\xfegcr.io", capture_output=True, env=env, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (1, NOT_FOUND.encode(), b"")
