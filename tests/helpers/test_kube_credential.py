"""``gcptoken kube-credential`` driven by the real kubectl: a kubeconfig whose user runs the plugin,
against a loopback HTTPS stand-in for an API server that verifies every bearer token (tests/helpers/
kube_apiserver.py). Every credential kind, impersonation, ID tokens, the disk cache, failures."""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gcptoken.cli.kube import SET_UP_LINE
from gcptoken.testing import CLOSED_LOOPBACK, EmulatorClient, write_key_file
from tests.helpers.kube_apiserver import NAMESPACES, KubeApiServer

pytestmark = pytest.mark.slow

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (it comes with gcloud)")
GCPTOKEN = str(Path(sys.executable).parent / "gcptoken")
AUDIENCE = "https://kube.example"
V1, V1BETA1 = "client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"


@pytest.fixture
def api(emulator: EmulatorClient) -> Iterator[KubeApiServer]:
    with KubeApiServer(emulator.url, AUDIENCE) as server:
        yield server


@pytest.fixture
def env(emulator: EmulatorClient, key_path: Path, tmp_path: Path) -> dict[str, str]:
    """What kubectl (and so the plugin) runs with: a fresh home and cache, the emulator, no metadata."""
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "gcloud").mkdir()
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "GCPTOKEN_EMULATOR_HOST": emulator.host_port,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_path),
        "GCE_METADATA_HOST": CLOSED_LOOPBACK,
        "GCE_METADATA_IP": CLOSED_LOOPBACK,
        "NO_GCE_CHECK": "true",
    }


def kubeconfig(tmp_path: Path, api: KubeApiServer, user: str) -> Path:
    """A kubeconfig for the stand-in whose ``users:`` is ``user`` (a stanza, as pasted)."""
    path = tmp_path / "kubeconfig"
    clusters = (
        "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n"
        f"    server: {api.url}\n    certificate-authority-data: {api.ca_data}\n"
        "contexts:\n- name: stand-in\n  context:\n    cluster: stand-in\n    user: gcptoken\n"
        "current-context: stand-in\n"
    )
    path.write_text(clusters + user)
    return path


def exec_user(args: list[str], api_version: str = V1) -> str:
    quoted = "".join(f"      - {json.dumps(arg)}\n" for arg in ["kube-credential", *args])
    return (
        f"users:\n- name: gcptoken\n  user:\n    exec:\n      apiVersion: {api_version}\n"
        f"      command: {json.dumps(GCPTOKEN)}\n      args:\n{quoted}"
        "      interactiveMode: Never\n      provideClusterInfo: false\n"
    )


def kubectl(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    command = [KUBECTL, "--kubeconfig", str(config), *(args or ("get", "namespaces", "-o", "name"))]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def plugin(env: dict[str, str], *args: str, exec_info: str | None = None) -> subprocess.CompletedProcess[str]:
    extra = {} if exec_info is None else {"KUBERNETES_EXEC_INFO": exec_info}
    return subprocess.run(
        [GCPTOKEN, "kube-credential", *args],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def listed(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


ALL = [f"namespace/{name}" for name in NAMESPACES]


def token_traffic(emulator: EmulatorClient) -> list[dict[str, object]]:
    """Requests at the emulator other than the stand-in API server's tokeninfo checks."""
    return [entry for entry in emulator.requests() if entry["path"] != "/oauth2/v3/tokeninfo"]


@needs_kubectl
@pytest.mark.parametrize("api_version", [V1, V1BETA1])
def test_kubectl_lists_namespaces_with_an_access_token_then_from_the_cache(
    emulator: EmulatorClient,
    api: KubeApiServer,
    env: dict[str, str],
    key_info: dict[str, str],
    tmp_path: Path,
    api_version: str,
) -> None:
    config = kubeconfig(tmp_path, api, exec_user([], api_version))
    assert listed(kubectl(config, env)) == ALL
    email = key_info["client_email"]
    assert set(api.seen) == {email} and api.rejected == 0
    fetched = len(emulator.token_requests_by(email))
    assert fetched == 1
    assert listed(kubectl(config, env)) == ALL  # a second kubectl process: the token from the disk cache
    assert len(emulator.token_requests_by(email)) == fetched


@needs_kubectl
def test_an_id_token_for_an_oidc_cluster(
    emulator: EmulatorClient, api: KubeApiServer, env: dict[str, str], key_info: dict[str, str], tmp_path: Path
) -> None:
    assert listed(kubectl(kubeconfig(tmp_path, api, exec_user(["--audience", AUDIENCE])), env)) == ALL
    assert set(api.seen) == {key_info["client_email"]}
    wrong = kubeconfig(tmp_path, api, exec_user(["--audience", "https://another.example"]))
    refused = kubectl(wrong, env)  # the API server's Verifier wants its own audience
    assert refused.returncode != 0 and "must be logged in" in refused.stderr


@needs_kubectl
def test_impersonation_and_a_signed_in_user(
    emulator: EmulatorClient, api: KubeApiServer, env: dict[str, str], key_info: dict[str, str], tmp_path: Path
) -> None:
    target = emulator.new_key("kube-target")["client_email"]
    emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")
    config = kubeconfig(tmp_path, api, exec_user(["--impersonate-service-account", target]))
    assert listed(kubectl(config, env)) == ALL
    assert set(api.seen) == {target}
    asked = len(token_traffic(emulator))
    assert listed(kubectl(config, env)) == ALL  # the impersonated token from the disk cache
    assert len(token_traffic(emulator)) == asked
    api.seen.clear()
    user_file = write_key_file(tmp_path, emulator.state.issue_refresh_token("kube-user@example.com"), "user.json")
    config = kubeconfig(tmp_path, api, exec_user(["--credentials", str(user_file)]))
    assert listed(kubectl(config, env)) == ALL
    assert set(api.seen) == {"kube-user@example.com"}


@needs_kubectl
def test_the_printed_user_stanza_works_as_pasted_whatever_the_path(
    emulator: EmulatorClient, api: KubeApiServer, env: dict[str, str], key_info: dict[str, str], tmp_path: Path
) -> None:
    awkward = tmp_path / "my keys: 'prod' #1 \"team\""
    awkward.mkdir()
    key_file = write_key_file(awkward, key_info, "key: #1.json")
    printed = plugin(env, "--print-kubeconfig-user", "--credentials", str(key_file), "--audience", AUDIENCE)
    assert printed.returncode == 0 and printed.stderr == ""
    config = kubeconfig(tmp_path, api, printed.stdout)
    # kubectl's own YAML reading gives back exactly the arguments given.
    shown = kubectl(config, env, "config", "view", "-o", "jsonpath={.users[0].user.exec}")
    stanza = json.loads(shown.stdout)
    assert stanza["args"] == ["kube-credential", "--credentials", str(key_file), "--audience", AUDIENCE]
    assert stanza["command"] == GCPTOKEN and stanza["interactiveMode"] == "Never"
    env = {**env, "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "absent.json")}  # the file named is used
    assert listed(kubectl(config, env)) == ALL
    assert set(api.seen) == {key_info["client_email"]}
    # gcptoken gone: kubectl names the path (client-go shows installHint only for a bare name it
    # did not find on PATH: that is the case for an entry edited to say just "gcptoken").
    gone = str(tmp_path / "gone" / "gcptoken")
    config.write_text(config.read_text().replace(json.dumps(GCPTOKEN), json.dumps(gone)))
    missing = kubectl(config, env)
    assert missing.returncode != 0 and gone in missing.stderr
    config.write_text(config.read_text().replace(json.dumps(gone), json.dumps("gcptoken")))
    missing = kubectl(config, {**env, "PATH": str(tmp_path / "gone")})
    assert missing.returncode != 0 and "pip install gcptoken" in missing.stderr


@needs_kubectl
def test_a_bad_credential_file_fails_kubectl_with_gcptokens_one_line(
    api: KubeApiServer, env: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nc2VjcmV0\\n"}')
    failed = kubectl(kubeconfig(tmp_path, api, exec_user(["--credentials", str(broken)])), env)
    assert failed.returncode != 0
    lines = [line for line in failed.stderr.splitlines() if "gcptoken:" in line]
    assert lines and all("gcptoken: error: " in line for line in lines)
    assert "Traceback" not in failed.stderr and "c2VjcmV0" not in failed.stderr + failed.stdout
    assert api.seen == []  # nothing was sent without a token either


@needs_kubectl
def test_a_token_the_cluster_refuses_is_replaced_after_cache_clear(
    api: KubeApiServer, env: dict[str, str], key_info: dict[str, str], tmp_path: Path
) -> None:
    config = kubeconfig(tmp_path, api, exec_user([]))
    token = json.loads(plugin(env).stdout)["status"]["token"]
    api.refused.add(token)  # still valid for Google, no longer for this cluster (a deleted key, say)
    refused = kubectl(config, env)
    assert refused.returncode != 0 and "must be logged in" in refused.stderr
    assert token not in refused.stderr + refused.stdout
    cleared = subprocess.run([GCPTOKEN, "cache", "clear"], env=env, capture_output=True, text=True, check=False)
    assert cleared.returncode == 0, cleared.stderr
    assert listed(kubectl(config, env)) == ALL  # a new token, fetched once the cache was cleared
    assert json.loads(plugin(env).stdout)["status"]["token"] != token


def test_exec_info_picks_the_version_and_unknown_ones_fail_in_one_line(env: dict[str, str]) -> None:
    answer = json.loads(
        plugin(env, exec_info=json.dumps({"apiVersion": V1BETA1, "spec": {"interactive": True}})).stdout
    )
    assert answer["apiVersion"] == V1BETA1 and answer["kind"] == "ExecCredential"
    assert answer["status"]["expirationTimestamp"].endswith("Z")
    assert json.loads(plugin(env).stdout)["apiVersion"] == V1  # none given (run by hand): v1
    for bad in ['{"apiVersion": "client.authentication.k8s.io/v2"}', "{not json", '["v1"]']:
        for args in ((), ("--no-cache",)):  # the cached answer and the full command line say the same
            result = plugin(env, *args, exec_info=bad)
            assert (result.returncode, result.stdout) == (2, ""), bad
            assert result.stderr.count("\n") == 1 and "KUBERNETES_EXEC_INFO" in result.stderr


@pytest.mark.parametrize("form", ["access", "id", "impersonated"])
def test_the_cached_answer_loads_no_network_code(
    emulator: EmulatorClient, env: dict[str, str], key_info: dict[str, str], form: str
) -> None:
    args = {"access": [], "id": ["--audience", AUDIENCE], "impersonated": ["--impersonate-service-account"]}[form]
    if form == "impersonated":
        target = emulator.new_key("kube-fast")["client_email"]
        emulator.state.grant_token_creator(target, f"serviceAccount:{key_info['client_email']}")
        args.append(target)
    assert plugin(env, *args).returncode == 0  # fills the cache
    before = len(emulator.requests())
    heavy = ("argparse", "httpx", "cryptography", "gcptoken.cli.main", "gcptoken.credentials.base", "logging")
    code = (
        "import sys\n"
        f"sys.argv = ['gcptoken', 'kube-credential', *{args!r}]\n"
        "from gcptoken.cli.fast import main\n"
        "assert main() == 0\n"
        f"print(sorted(name for name in {heavy!r} if name in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"]["token"]
    assert result.stderr.strip().splitlines()[-1] == "[]"
    assert len(emulator.requests()) == before  # nothing asked: no ping, no exchange


def test_usage_mistakes_print_nothing_on_stdout(env: dict[str, str]) -> None:
    for args in (("--audience", AUDIENCE, "--scopes", "openid"), ("--audience", " "), ("--timeout", "soon")):
        result = plugin(env, *args)
        assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    newline = plugin(env, "--print-kubeconfig-user", "--user-name", "a\nb")
    assert (newline.returncode, newline.stdout) == (2, "") and newline.stderr.count("\n") == 1


@needs_kubectl
def test_the_one_line_set_up_from_the_help_and_readme(
    api: KubeApiServer, env: dict[str, str], key_info: dict[str, str], tmp_path: Path
) -> None:
    """A kubeconfig with a cluster and a context, as a new user has it; the set-up line, as printed."""
    config = kubeconfig(tmp_path, api, "users:\n- name: gcptoken\n  user: {}\n")
    env = {**env, "KUBECONFIG": str(config), "PATH": f"{Path(GCPTOKEN).parent}{os.pathsep}{env['PATH']}"}
    assert SET_UP_LINE in (Path(__file__).parents[2] / "README.md").read_text()
    set_up = subprocess.run(["bash", "-c", SET_UP_LINE], env=env, capture_output=True, text=True, check=False)
    assert set_up.returncode == 0, set_up.stderr
    assert listed(kubectl(config, env)) == ALL
    assert set(api.seen) == {key_info["client_email"]}


@needs_kubectl
@pytest.mark.parametrize("ca_form", ["pem", "base64"])
def test_a_whole_kubeconfig_for_a_cluster_endpoint_and_ca(
    api: KubeApiServer, env: dict[str, str], key_info: dict[str, str], tmp_path: Path, ca_form: str
) -> None:
    ca = tmp_path / "ca.txt"
    ca.write_bytes(api.ca_pem if ca_form == "pem" else base64.b64encode(api.ca_pem))  # GKE's clusterCaCertificate
    printed = plugin(env, "--print-kubeconfig", "--server", api.url, "--certificate-authority", str(ca))
    assert printed.returncode == 0, printed.stderr
    config = tmp_path / "whole-kubeconfig"
    config.write_text(printed.stdout)
    assert listed(kubectl(config, env)) == ALL
    assert set(api.seen) == {key_info["client_email"]}


def test_a_whole_kubeconfig_refuses_plain_http_and_a_bad_ca(env: dict[str, str], tmp_path: Path) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate")
    for args in (
        ("--server", "http://10.0.0.1", "--certificate-authority", str(garbage)),
        ("--server", "https://10.0.0.1", "--certificate-authority", str(garbage)),
        ("--server", "https://10.0.0.1", "--certificate-authority", str(tmp_path / "absent.pem")),
        ("--server", "https://10.0.0.1"),
    ):
        result = plugin(env, "--print-kubeconfig", *args)
        assert (result.returncode, result.stdout) == (2, ""), args
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("gcptoken: error: "), args
    assert plugin(env, "--server", "https://10.0.0.1").returncode == 2  # only with --print-kubeconfig


def test_verbose_logs_never_show_the_token(env: dict[str, str]) -> None:
    for args in (("-v", "--no-cache"), ("-v",), ("-v", "--audience", AUDIENCE)):
        result = plugin(env, *args)
        assert result.returncode == 0, result.stderr
        token = json.loads(result.stdout)["status"]["token"]
        assert token not in result.stderr and token[-12:] not in result.stderr, args
    assert "gcptoken:" in plugin(env, "-v", "--no-cache").stderr  # -v did log the exchange


def _age_cache(env: dict[str, str], seconds_left: float) -> None:
    """Every cached token now fetched an hour ago and due to expire in ``seconds_left``."""
    path = Path(env["XDG_CACHE_HOME"]) / "gcptoken" / "tokens.json"
    document = json.loads(path.read_text())
    now = time.time()
    for entry in document["tokens"].values():
        expires = now + seconds_left
        iso = datetime.datetime.fromtimestamp(expires, datetime.timezone.utc).isoformat()
        entry.update(fetched_at=expires - 3600, expires_at=expires, expires_at_iso=iso)
    path.write_text(json.dumps(document))


def test_kubectl_is_never_handed_a_token_about_to_expire(env: dict[str, str]) -> None:
    """Inside the cache's refresh margin (5 minutes for an hour's token) a new token is fetched."""
    first = json.loads(plugin(env).stdout)["status"]
    _age_cache(env, 400)  # outside the margin: still handed out, with its own expiry
    kept = json.loads(plugin(env).stdout)["status"]
    assert kept["token"] == first["token"]
    shown = datetime.datetime.strptime(kept["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    left = shown.replace(tzinfo=datetime.timezone.utc).timestamp() - time.time()
    assert 300 < left <= 400
    _age_cache(env, 200)  # inside it: a new one
    renewed = json.loads(plugin(env).stdout)["status"]
    assert renewed["token"] != first["token"]
    assert renewed["expirationTimestamp"] > kept["expirationTimestamp"]


@needs_kubectl
@pytest.mark.skipif(shutil.which("gke-gcloud-auth-plugin") is None, reason="gke-gcloud-auth-plugin is not installed")
def test_the_stand_in_takes_the_peers_tokens_alike(
    api: KubeApiServer, env: dict[str, str], key_info: dict[str, str], tmp_path: Path
) -> None:
    """gke-gcloud-auth-plugin (ADC: the same emulator-issued key file) through the same kubeconfig
    shape: the stand-in is no imitation tuned to gcptoken, and the bench compares like with like."""
    peer = str(shutil.which("gke-gcloud-auth-plugin"))
    user = (
        "users:\n- name: gcptoken\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n"
        f"      command: {json.dumps(peer)}\n      args:\n      - --use_application_default_credentials\n"
        "      interactiveMode: Never\n      provideClusterInfo: true\n"
    )
    assert listed(kubectl(kubeconfig(tmp_path, api, user), env)) == ALL
    assert set(api.seen) == {key_info["client_email"]}


@needs_kubectl
@pytest.mark.parametrize("kind", ["impersonated-file", "external-account", "metadata-server"])
def test_every_other_credential_kind(
    emulator: EmulatorClient,
    api: KubeApiServer,
    env: dict[str, str],
    key_info: dict[str, str],
    tmp_path: Path,
    kind: str,
) -> None:
    from tests.cli.test_cli_fast import _external_file, _impersonated_file

    if kind == "impersonated-file":
        env["GOOGLE_APPLICATION_CREDENTIALS"] = str(_impersonated_file(emulator, tmp_path, key_info))
    elif kind == "external-account":  # workload identity federation, then impersonation
        env["GOOGLE_APPLICATION_CREDENTIALS"] = str(_external_file(emulator, tmp_path, impersonate=True))
    else:  # no credential file: ADC asks the metadata server (here the emulator's)
        del env["GOOGLE_APPLICATION_CREDENTIALS"], env["NO_GCE_CHECK"]
        env |= {"GCE_METADATA_HOST": emulator.host_port, "GCE_METADATA_IP": emulator.host_port}
    config = kubeconfig(tmp_path, api, exec_user([]))
    assert listed(kubectl(config, env)) == ALL
    assert len(set(api.seen)) == 1 and api.rejected == 0
    (who,) = set(api.seen)
    if kind == "metadata-server":
        assert who == emulator.state.default_account.email
    else:
        assert who.startswith(("fast-imp-", "fast-ext-")) and who != key_info["client_email"]
    asked = len(token_traffic(emulator))
    assert listed(kubectl(config, env)) == ALL  # from the disk cache: nothing asked
    assert len(token_traffic(emulator)) == asked
