"""Hostile files end in one line: every path that names key material or a credential-related file
(a credential file given or found, a subject token file, the certificate config, the workload
certificate, its key and trust chain, an executable's output file, a certs file, the emulator's CA)
is opened as every credential file is: a FIFO, a directory or /dev/zero there is a CredentialsError
saying so in one line, at once, never a read that blocks (no timeout could stop it). And every JSON
such a file (or an executable) holds is read by the one parser that turns deep nesting, NaN,
1e400, lone surrogates and bytes that are not UTF-8 into that same one line."""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gcptoken import CredentialsError, GcpTokenError, Verifier, load_credentials
from gcptoken.emulator.sts.mtls import WorkloadCa
from tests.cli.test_cli import gcptoken
from tests.http.test_hostile_upstreams import HOSTILE_JSON, SECRET, assert_one_safe_line, hostile_body

AUD = "https://svc-files.a.run.app"
WIF_AUDIENCE = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x"
MTLS = "urn:ietf:params:oauth:token-type:mtls"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
# Not a Google host, so no emulator setting rewrites it: the client must present its certificate
# (and so load its key) before it learns that nothing listens there.
HTTPS_NOWHERE = "https://127.0.0.1:9/v1/token"
WITHIN = 20.0  # seconds; a read that blocks would never end

KINDS = {"fifo": "FIFO", "directory": "directory", "dev-zero": "character device"}


@pytest.fixture(scope="module")
def workload_pem() -> tuple[str, str]:
    issued = WorkloadCa().workload_certificate("hostile-files")
    return issued.cert_pem, issued.key_pem


@pytest.fixture
def special(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """``special(kind)``: the path of a FIFO (nobody writes to it), a directory or /dev/zero. At
    the end every FIFO gets a writer that closes at once, so a reader stuck in one is let go."""
    fifos: list[Path] = []

    def make(kind: str) -> str:
        if kind == "dev-zero":
            return "/dev/zero"
        path = tmp_path / f"{kind}-{len(fifos)}"
        if kind == "fifo":
            os.mkfifo(path)
            fifos.append(path)
        else:
            path.mkdir()
        return str(path)

    yield make
    for fifo in fifos:
        _reader_waits(fifo)


def _reader_waits(fifo: str | Path) -> bool:
    """Whether someone holds ``fifo`` open for reading (only then does opening it for writing,
    without blocking, succeed); such a reader is let go at once, as the writer closes."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return False
        raise
    return True


def finishes(call: Callable[[], object]) -> BaseException | None:
    """What ``call`` raised (None: nothing), failing the test if it has not finished in time."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the test
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WITHIN)
    assert outcome, f"still reading after {WITHIN} s: a read that blocks"
    return outcome[0]


def _write(path: Path, info: dict[str, Any]) -> str:
    path.write_text(json.dumps(info))
    return str(path)


def _external(tmp_path: Path, source: dict[str, Any], subject_type: str = JWT_TYPE) -> str:
    info = {
        "type": "external_account",
        "audience": WIF_AUDIENCE,
        "subject_token_type": subject_type,
        "token_url": HTTPS_NOWHERE,
        "credential_source": source,
    }
    return _write(tmp_path / "external.json", info)


def _x509(tmp_path: Path, pem: tuple[str, str], **paths: str) -> str:
    """An X.509 external account whose files are the good ones except those in ``paths``."""
    cert, key = tmp_path / "workload.pem", tmp_path / "workload.key"
    cert.write_text(pem[0])
    key.write_text(pem[1])
    key.chmod(0o600)
    workload = {"cert_path": paths.get("cert_path", str(cert)), "key_path": paths.get("key_path", str(key))}
    config = paths.get("config") or _write(
        tmp_path / "certificate_config.json", {"cert_configs": {"workload": workload}}
    )
    certificate = {"certificate_config_location": config}
    if "trust_chain_path" in paths:
        certificate["trust_chain_path"] = paths["trust_chain_path"]
    return _external(tmp_path, {"certificate": certificate}, MTLS)


def _executable(tmp_path: Path, command: str, output_file: str | None = None) -> str:
    """An executable source (GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES is set by every test here)."""
    executable = {"command": command, **({"output_file": output_file} if output_file else {})}
    return _external(tmp_path, {"executable": executable})


# Each slot: where the special file goes (a path in a file, or an environment variable), and what
# must then be asked: (the environment to set, the call).
Slot = Callable[[Path, str, tuple[str, str]], tuple[dict[str, str], Callable[[], object]]]


def _asks_token(path: str) -> Callable[[], object]:
    return load_credentials(path).access_token


SLOTS: dict[str, Slot] = {
    "credentials-file": lambda tmp, bad, pem: ({}, lambda: load_credentials(bad)),
    "GOOGLE_APPLICATION_CREDENTIALS": lambda tmp, bad, pem: (
        {"GOOGLE_APPLICATION_CREDENTIALS": bad},
        lambda: load_credentials(),
    ),
    "gcloud-adc-file": lambda tmp, bad, pem: ({"CLOUDSDK_CONFIG": str(Path(bad).parent)}, lambda: load_credentials()),
    "subject-token-file": lambda tmp, bad, pem: ({}, _asks_token(_external(tmp, {"file": bad}))),
    "certificate-config": lambda tmp, bad, pem: ({}, _asks_token(_x509(tmp, pem, config=bad))),
    "cert_path": lambda tmp, bad, pem: ({}, _asks_token(_x509(tmp, pem, cert_path=bad))),
    "key_path": lambda tmp, bad, pem: ({}, _asks_token(_x509(tmp, pem, key_path=bad))),
    "trust_chain_path": lambda tmp, bad, pem: ({}, _asks_token(_x509(tmp, pem, trust_chain_path=bad))),
    "executable-output_file": lambda tmp, bad, pem: ({}, _asks_token(_executable(tmp, "/bin/false", bad))),
    "certs-file": lambda tmp, bad, pem: ({}, lambda: Verifier(AUD, certs=bad)),
    "GCPTOKEN_EMULATOR_CA": lambda tmp, bad, pem: ({"GCPTOKEN_EMULATOR_CA": bad}, _asks_token(_x509(tmp, pem))),
}


def _adc_special(tmp_path: Path, kind: str) -> str:
    """gcloud's ADC file as a FIFO, a directory, or a symlink to /dev/zero, in a config dir of its own."""
    config = tmp_path / "gcloud"
    config.mkdir()
    adc = config / "application_default_credentials.json"
    if kind == "fifo":
        os.mkfifo(adc)
    elif kind == "directory":
        adc.mkdir()
    else:
        adc.symlink_to("/dev/zero")
    return str(adc)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("slot", list(SLOTS))
def test_a_fifo_a_directory_or_dev_zero_is_one_line_at_once(
    tmp_path: Path,
    special: Callable[[str], str],
    workload_pem: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    slot: str,
    kind: str,
) -> None:
    bad = _adc_special(tmp_path, kind) if slot == "gcloud-adc-file" else special(kind)
    monkeypatch.setenv("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1")
    environment, call = SLOTS[slot](tmp_path, bad, workload_pem)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    failure = finishes(call)
    assert isinstance(failure, CredentialsError), repr(failure)
    message = str(failure)
    assert f"{KINDS[kind]}" in message and "not a regular file" in message, message
    assert_one_safe_line(message, workload_pem[1].splitlines()[1])
    if kind == "fifo":
        assert not _reader_waits(bad), "a reader still holds the FIFO open"


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("slot", ["credentials", "key_path", "certs"])
def test_cli_says_one_line_for_a_special_file(
    tmp_path: Path, special: Callable[[str], str], workload_pem: tuple[str, str], slot: str, kind: str
) -> None:
    bad = special(kind)
    if slot == "credentials":
        argv = ["id", AUD, "--credentials", bad]
    elif slot == "key_path":
        argv = ["access", "--credentials", _x509(tmp_path, workload_pem, key_path=bad), "--timeout", "5"]
    else:
        argv = ["verify", "a.b.c", "--audience", AUD, "--certs", bad]
    result = gcptoken(*argv, timeout=WITHIN)  # a blocked read would raise TimeoutExpired
    assert (result.code, result.out) == (3, ""), result.err
    assert "Traceback" not in result.err and len(result.err.splitlines()) == 1, result.err
    assert KINDS[kind] in result.err and "not a regular file" in result.err, result.err
    assert_one_safe_line(result.err.rstrip("\n"), workload_pem[1].splitlines()[1])


# -- hostile JSON in files and in an executable's output ----------------------------------------------

FILE_JSON = [
    pytest.param(hostile_body(body), id=name)
    for name, body in HOSTILE_JSON
    if name not in ("empty", "html")  # plain refusals the parsers always made
]


def _hostile_file(tmp_path: Path, body: bytes) -> str:
    path = tmp_path / "hostile.json"
    path.write_bytes(body)
    return str(path)


JSON_FORMAT = {"type": "json", "subject_token_field_name": "access_token"}
HOLDERS: dict[str, Callable[[Path, str, tuple[str, str]], Callable[[], object]]] = {
    "credential-file": lambda tmp, path, pem: lambda: load_credentials(path),
    "certificate-config": lambda tmp, path, pem: _asks_token(_x509(tmp, pem, config=path)),
    "certs-file": lambda tmp, path, pem: lambda: Verifier(AUD, certs=path),
    "subject-token-file-json": lambda tmp, path, pem: _asks_token(
        _external(tmp, {"file": path, "format": JSON_FORMAT})
    ),
    "executable-stdout": lambda tmp, path, pem: _asks_token(_executable(tmp, f"/bin/cat {path}")),
    "executable-output_file": lambda tmp, path, pem: _asks_token(_executable(tmp, "/bin/false", path)),
}


@pytest.mark.parametrize("holder", list(HOLDERS))
@pytest.mark.parametrize("body", FILE_JSON)
def test_hostile_json_in_a_file_is_one_line(
    tmp_path: Path, workload_pem: tuple[str, str], monkeypatch: pytest.MonkeyPatch, holder: str, body: bytes
) -> None:
    monkeypatch.setenv("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1")
    call = HOLDERS[holder](tmp_path, _hostile_file(tmp_path, body), workload_pem)
    failure = finishes(call)
    assert isinstance(failure, CredentialsError), repr(failure)
    assert_one_safe_line(str(failure))


@pytest.mark.parametrize("body", FILE_JSON)
def test_cli_cached_path_and_full_path_say_one_line_for_a_hostile_credential_file(tmp_path: Path, body: bytes) -> None:
    """``gcptoken id`` reads the credential file first on its cached path, then on the full one."""
    path = _hostile_file(tmp_path, body)
    for argv in (["id", AUD, "--credentials", path], ["access", "--credentials", path]):
        result = gcptoken(*argv, timeout=WITHIN)
        assert (result.code, result.out) == (3, ""), result.err
        assert "Traceback" not in result.err and len(result.err.splitlines()) == 1, result.err
        assert_one_safe_line(result.err.rstrip("\n"))


def test_the_checks_can_pass(tmp_path: Path, workload_pem: tuple[str, str]) -> None:
    """A good credential file and an X.509 setup get past the file checks (and fail only where
    nothing listens), so the refusals above are about the files."""
    with pytest.raises(GcpTokenError) as caught:
        load_credentials(_x509(tmp_path, workload_pem)).access_token(timeout=5)
    assert not isinstance(caught.value, CredentialsError), caught.value
    assert SECRET not in str(caught.value)
