"""What ``kube-credential --print-kubeconfig[-user]`` writes, read back by the real kubectl (issue
28's review): any character a path or name holds (an emoji beyond the BMP, C1 controls, line
separators) survives kubectl's YAML loader; a CA bundle gives only its certificates, never a key;
--server is parsed as a URL (no user info, a valid host and port, https in any case)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gcptoken.helpers.kubeconfig import kubeconfig_user
from gcptoken.testing import CLOSED_LOOPBACK, EmulatorClient, write_key_file
from tests.helpers.kube_apiserver import KubeApiServer, throwaway_ca
from tests.helpers.test_kube_credential import ALL, GCPTOKEN, kubeconfig, kubectl, listed, needs_kubectl, plugin

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(emulator: EmulatorClient) -> Iterator[KubeApiServer]:
    with KubeApiServer(emulator.url) as server:
        yield server


@pytest.fixture
def kube_env(emulator: EmulatorClient, key_path: Path, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "home").mkdir()
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "CLOUDSDK_CONFIG": os.environ["CLOUDSDK_CONFIG"],
        "GCPTOKEN_EMULATOR_HOST": emulator.host_port,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_path),
        "GCE_METADATA_HOST": CLOSED_LOOPBACK,
        "GCE_METADATA_IP": CLOSED_LOOPBACK,
        "NO_GCE_CHECK": "true",
    }


def exec_stanza(config: Path, env: dict[str, str]) -> dict[str, object]:
    shown = kubectl(config, env, "config", "view", "-o", "jsonpath={.users[0]}")
    assert shown.returncode == 0, shown.stderr
    user: dict[str, object] = json.loads(shown.stdout)
    return user


@needs_kubectl
def test_a_path_with_an_emoji_is_written_as_utf8_and_kubectl_runs_it(
    cluster: KubeApiServer, kube_env: dict[str, str], key_info: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "keys \U0001f511 é"
    folder.mkdir()
    key_file = write_key_file(folder, key_info, "key.json")
    printed = plugin(kube_env, "--print-kubeconfig-user", "--credentials", str(key_file))
    assert printed.returncode == 0 and printed.stderr == ""
    assert "\U0001f511" in printed.stdout and "\\ud83d" not in printed.stdout  # no surrogate pair for YAML
    config = kubeconfig(tmp_path, cluster, printed.stdout)
    stanza = exec_stanza(config, kube_env)
    assert stanza["user"]["exec"]["args"] == ["kube-credential", "--credentials", str(key_file)]  # type: ignore[index]
    kube_env = {**kube_env, "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "absent.json")}
    assert listed(kubectl(config, kube_env)) == ALL


@needs_kubectl
def test_characters_yaml_cannot_hold_as_they_are_are_escaped_as_yaml_reads_them(
    cluster: KubeApiServer, kube_env: dict[str, str], tmp_path: Path
) -> None:
    name = 'a\x7f b\x85 c\u2028 d\ufeff e\U0001f511 "q" \\ \t\n'
    config = kubeconfig(tmp_path, cluster, kubeconfig_user(name, GCPTOKEN, ["kube-credential"]))
    assert exec_stanza(config, kube_env)["name"] == name


@needs_kubectl
def test_a_ca_bundle_gives_its_certificates_only_never_a_key(
    cluster: KubeApiServer, kube_env: dict[str, str], tmp_path: Path
) -> None:
    other_ca, _, key_pem = throwaway_ca()
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(cluster.ca_pem + key_pem + other_ca)
    printed = plugin(kube_env, "--print-kubeconfig", "--server", cluster.url, "--certificate-authority", str(bundle))
    assert printed.returncode == 0, printed.stderr
    assert printed.stderr == (
        "gcptoken: note: --certificate-authority: kept only its certificates, dropped PRIVATE KEY\n"
    )
    config = tmp_path / "whole-kubeconfig"
    config.write_text(printed.stdout)
    shown = kubectl(config, kube_env, "config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster}")
    data = base64.b64decode(json.loads(shown.stdout)["certificate-authority-data"])
    assert b"PRIVATE KEY" not in data and data == cluster.ca_pem + other_ca
    assert listed(kubectl(config, kube_env)) == ALL
    # Nothing but a key, or a certificate block that is no certificate: refused.
    for text in (key_pem, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"):
        bundle.write_bytes(text)
        refused = plugin(
            kube_env, "--print-kubeconfig", "--server", cluster.url, "--certificate-authority", str(bundle)
        )
        assert (refused.returncode, refused.stdout) == (2, "") and "holds no PEM certificate" in refused.stderr


@pytest.mark.parametrize(
    "server",
    [
        "https:// x",
        "https://[::1",
        "https://h:99999",
        "https://h:0",
        "https://h:",
        "https://user:s3cret-pw@h",
        "https://user@h",
        "https://",
        "https://bad_host!",
        "https://h/?q=1",
        "http://h",
    ],
)
def test_a_server_url_is_parsed_not_prefix_checked(kube_env: dict[str, str], tmp_path: Path, server: str) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(throwaway_ca()[0])
    result = plugin(kube_env, "--print-kubeconfig", "--server", server, "--certificate-authority", str(ca))
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert result.stderr.startswith("gcptoken: error: --server ") and result.stderr.count("\n") == 1
    assert "s3cret-pw" not in result.stderr


@needs_kubectl
def test_an_https_scheme_in_any_case_is_written_lower_case(
    cluster: KubeApiServer, kube_env: dict[str, str], tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cluster.ca_pem)
    shouted = "HTTPS" + cluster.url[len("https") :]
    printed = plugin(kube_env, "--print-kubeconfig", "--server", shouted, "--certificate-authority", str(ca))
    assert printed.returncode == 0, printed.stderr
    assert f'server: "{cluster.url}"' in printed.stdout
    config = tmp_path / "whole-kubeconfig"
    config.write_text(printed.stdout)
    assert listed(kubectl(config, kube_env)) == ALL
