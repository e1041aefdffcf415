"""``gcptoken login`` in-process against the emulator: its output checked before anyone is asked to
sign in, no folder created for a path the person named (``emulator --state-dir`` creates the
directory itself only), the scopes each flow gets said at sign-in and explained when ``access``
meets them (CLI and library), ``--device --wait``, and ``logout`` with nobody signed in."""

# ruff: noqa: F811 - the fixtures imported from test_login are parameters here

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gcptoken import TokenRequestError, load_credentials
from gcptoken.cli.main import main
from gcptoken.emulator import EmulatorServer
from gcptoken.private_files import NotPrivateError, PrivateDir
from tests.cli.test_cli import COMMAND, gcptoken
from tests.cli.test_login import client_file, clock, emu, env  # noqa: F401 - the module's emulator

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


@pytest.fixture
def here(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("gcptoken: error")]


# -- the output, checked before the browser opens or a device code is asked for ----------------------


def _directory(tmp: Path) -> Path:
    return tmp


def _missing_folder(tmp: Path) -> Path:
    return tmp / "nope" / "dir" / "x.json"


def _symlink(tmp: Path) -> Path:
    (tmp / "victim.txt").write_text("someone else's file\n")
    (tmp / "planted.json").symlink_to(tmp / "victim.txt")
    return tmp / "planted.json"


def _another_kind(tmp: Path) -> Path:
    (tmp / "sa.json").write_text(json.dumps({"type": "service_account", "client_email": "x@p.iam.gserviceaccount.com"}))
    return tmp / "sa.json"


def _unnamed_account(tmp: Path) -> Path:
    (tmp / "gcloud.json").write_text(json.dumps({"type": "authorized_user", "account": "", "refresh_token": "x"}))
    return tmp / "gcloud.json"


def _shared_folder(tmp: Path) -> Path:
    (tmp / "shared").mkdir()
    (tmp / "shared").chmod(0o777)
    return tmp / "shared" / "adc.json"


def _read_only_folder(tmp: Path) -> Path:
    if os.geteuid() == 0:
        pytest.skip("root writes into any folder: test_a_read_only_file_system_is_refused_before_the_sign_in")
    (tmp / "ro").mkdir()
    (tmp / "ro").chmod(0o500)
    return tmp / "ro" / "adc.json"


OUTPUTS = {
    "directory": (_directory, "is a directory"),
    "missing-folder": (_missing_folder, "does not exist (gcptoken creates no folder"),
    "symlink": (_symlink, "symbolic link; it is not followed"),
    "another-kind": (_another_kind, "credentials of another kind; pass --force"),
    "unnamed-account": (_unnamed_account, "an account it does not name; pass --force"),
    "shared-folder": (_shared_folder, "writable by others"),
    "read-only-folder": (_read_only_folder, "is not writable"),
}


@pytest.mark.parametrize("flow", ["--no-browser", "--device"])
@pytest.mark.parametrize("case", list(OUTPUTS))
def test_an_output_that_cannot_be_written_is_refused_before_the_sign_in(
    capsys: pytest.CaptureFixture[str],
    emu: EmulatorServer,
    here: dict[str, str],
    tmp_path: Path,
    flow: str,
    case: str,
) -> None:
    make, message = OUTPUTS[case]
    output = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    emu.state.clear_requests()
    code, out, err = run(
        capsys, "login", flow, "--wait", "1", "--client-id-file", client_file(emu), "--output", str(output)
    )
    assert code == 3 and out == "", err
    assert errors(err) == err.splitlines() and len(errors(err)) == 1 and message in err, err
    assert "/o/oauth2/auth" not in err and "enter the code" not in err  # nobody was asked to sign in
    assert emu.state.request_log() == []  # no device code either
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no folder made, nothing replaced
    if case == "symlink":
        assert (tmp_path / "victim.txt").read_text() == "someone else's file\n"


def test_a_read_only_file_system_is_refused_before_the_sign_in(emu: EmulatorServer, tmp_path: Path) -> None:
    """What no permission bit stops root from writing: a folder on a read-only mount (made in a
    mount namespace of the login's own, which nothing else sees)."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rm", "true"], capture_output=True, check=False).returncode:
        pytest.skip("no mount namespace to make a read-only folder in")
    folder = tmp_path / "ro"
    folder.mkdir()
    mount = 'mount -t tmpfs -o ro,mode=0700 none "$1" && shift && exec "$@"'
    login = [*COMMAND, "login", "--device", "--client-id-file", client_file(emu), "--output", str(folder / "adc.json")]
    emu.state.clear_requests()
    result = subprocess.run(
        [unshare, "-rm", "sh", "-c", mount, "sh", str(folder), *login],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "GCPTOKEN_EMULATOR_HOST": emu.host_port},
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr == f"gcptoken: error: cannot write {folder}/adc.json: the folder {folder} is not writable\n"
    assert emu.state.request_log() == []


@pytest.mark.parametrize("flow", ["--no-browser", "--device"])
@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("afile/gcloud", "afile is not a directory"),
        ("afile/deeper/gcloud", "afile is not a directory"),
        ("/proc/gcptoken-nope/gcloud", "cannot be created"),
    ],
)
def test_gclouds_config_folder_that_cannot_be_made_is_refused_before_the_sign_in(
    capsys: pytest.CaptureFixture[str],
    emu: EmulatorServer,
    here: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    flow: str,
    config: str,
    message: str,
) -> None:
    """The default output's folder (CLOUDSDK_CONFIG) may be made, as gcloud makes it, but a chain
    of folders that cannot hold it is found before anyone is asked to sign in."""
    (tmp_path / "afile").write_text("a file, not a folder\n")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / config))
    emu.state.clear_requests()
    code, out, err = run(capsys, "login", flow, "--wait", "1", "--client-id-file", client_file(emu))
    assert code == 3 and out == "", err
    assert errors(err) == err.splitlines() and len(errors(err)) == 1, err
    assert "cannot write" in err and "application_default_credentials.json" in err and message in err, err
    assert emu.state.request_log() == []  # nobody was asked to sign in, no device code asked for


def test_gclouds_missing_config_folder_is_made_before_the_sign_in(
    capsys: pytest.CaptureFixture[str],
    emu: EmulatorServer,
    here: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    config = tmp_path / "home" / ".config" / "gcloud"
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(config))
    code, _, err = run(capsys, "login", "--device", "--wait", "0.2", "--client-id-file", client_file(emu))
    assert code == 1 and "not approved" in err  # nobody approved; the folder was made first, as gcloud makes it
    assert config.is_dir() and (config.stat().st_mode & 0o777) == 0o700


def test_a_file_naming_an_account_is_said_before_the_sign_in(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path
) -> None:
    """Only after the sign-in is it known whether the same account signed in (then it is replaced
    without --force); the person is told first, and Google's page offers that account."""
    output = tmp_path / "carol.json"
    output.write_text(json.dumps({"type": "authorized_user", "account": "carol@example.com", "refresh_token": "x"}))
    args = ("--no-browser", "--wait", "0.5", "--client-id-file", client_file(emu), "--output", str(output))
    result = gcptoken("login", *args, env=env)  # a process of its own: it reads pasted answers on stdin
    lines = result.err.splitlines()
    assert result.code == 1 and "no answer from the browser" in lines[-1]  # nobody signed in here
    assert lines[0] == (
        f"gcptoken: {output} holds the sign-in of carol@example.com: signing in as anyone else needs --force"
    )
    url = next(line for line in lines if "/o/oauth2/auth?" in line)
    assert httpx.URL(url.strip()).params["login_hint"] == "carol@example.com"


def test_a_named_folder_is_never_created_but_gclouds_own_is(tmp_path: Path) -> None:
    with pytest.raises(NotPrivateError, match="does not exist"):
        PrivateDir(str(tmp_path / "typo" / "state"), parents=False)
    assert not (tmp_path / "typo").exists()
    with PrivateDir(str(tmp_path / "made"), parents=False):  # the directory itself is created
        assert (tmp_path / "made").is_dir()


def test_the_emulator_creates_its_state_dir_but_no_folder_above_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "emulator", "--port", "0", "--state-dir", str(tmp_path / "nope" / "state"))
    assert code == 3 and err.count("\n") == 1 and "the folder" in err and "does not exist" in err
    assert not (tmp_path / "nope").exists()


# -- scopes: what each flow asks for, what it got, and what access says ------------------------------


@pytest.fixture
def approver(emu: EmulatorServer) -> Iterator[list[str]]:
    """Approves (as dev@example.com) the next device code asked for, as a person at /device would."""
    known = set(emu.state.signin.devices)
    approved: list[str] = []
    stop = threading.Event()

    def approve() -> None:
        while not stop.wait(0.02):
            fresh = [g for code, g in list(emu.state.signin.devices.items()) if code not in known]
            if fresh:
                decide = {"userCode": fresh[0].user_code, "email": "dev@example.com"}
                httpx.post(f"{emu.url}/emulator/v1/deviceCodes:decide", json=decide).raise_for_status()
                approved.append(fresh[0].user_code)
                return

    thread = threading.Thread(target=approve, daemon=True)
    thread.start()
    yield approved
    stop.set()
    thread.join()


def test_the_device_flow_says_it_cannot_grant_cloud_platform_and_access_explains_it(
    capsys: pytest.CaptureFixture[str],
    emu: EmulatorServer,
    here: dict[str, str],
    tmp_path: Path,
    approver: list[str],
) -> None:
    output = tmp_path / "device.json"
    code, out, err = run(capsys, "login", "--device", "--client-id-file", client_file(emu), "--output", str(output))
    assert code == 0 and out.strip() == str(output), err
    lines = err.splitlines()
    assert lines[0].startswith("gcptoken: --device asks for openid, email, profile only: Google's device flow cannot")
    assert "enter the code" in lines[1]  # said before the code is shown
    granted = next(line for line in lines if "scopes granted" in line)
    assert "openid, email, profile; not granted: cloud-platform" in granted

    code, out, err = run(capsys, "access", "--credentials", str(output), "--no-cache")
    assert code != 0 and out == "" and len(errors(err)) == 1 == len(err.splitlines()), err
    assert "invalid_scope" in err and "grants openid, email, profile, not cloud-platform" in err
    assert "device flow" in err and "gcptoken id" in err and "..." not in err and ".." not in err
    info = json.loads(output.read_text())
    assert info["refresh_token"] not in err and info["client_secret"] not in err
    with pytest.raises(
        TokenRequestError, match="Google's device flow grants no Google Cloud scope"
    ) as raised:  # the library says it too
        load_credentials(output).access_token()
    assert raised.value.error == "invalid_scope"
    code, out, _ = run(capsys, "id", "--credentials", str(output), "--no-cache")
    assert code == 0 and out.count(".") == 2  # ID tokens it does give


def test_access_names_the_scopes_a_browser_sign_in_lacks(emu: EmulatorServer, tmp_path: Path) -> None:
    path = tmp_path / "narrow.json"
    storage = "https://www.googleapis.com/auth/devstorage.read_only"
    path.write_text(json.dumps(emu.state.issue_refresh_token("narrow@example.com", ("openid", storage))))
    with pytest.raises(TokenRequestError) as raised:
        load_credentials(path).access_token(scopes=[CLOUD_PLATFORM])
    message = str(raised.value)
    assert "grants openid, devstorage.read_only, not cloud-platform; sign in again asking for them" in message
    assert f"--scopes {CLOUD_PLATFORM}" in message and "device flow" not in message


@pytest.mark.parametrize(
    ("granted", "asked"),
    [
        (("openid", "email", "profile"), ("https://www.googleapis.com/auth/userinfo.email",)),
        (("openid", "email", "profile"), ("https://www.googleapis.com/auth/userinfo.profile", "email")),
        (("openid", "https://www.googleapis.com/auth/userinfo.email"), ("email",)),
    ],
)
def test_email_and_profile_are_their_userinfo_urls_on_a_refresh(
    emu: EmulatorServer, tmp_path: Path, granted: tuple[str, ...], asked: tuple[str, ...]
) -> None:
    """Google treats email and profile as userinfo.email and userinfo.profile (the emulator's
    source: emulator/oauth2/token_scopes.py), so a device sign-in's file gives either name."""
    path = tmp_path / "device.json"
    path.write_text(json.dumps(emu.state.issue_refresh_token("dev@example.com", granted)))
    assert load_credentials(path).access_token(scopes=list(asked)).value


def test_access_with_a_scope_google_does_not_know_says_so_not_to_sign_in_again(
    capsys: pytest.CaptureFixture[str], emu: EmulatorServer, here: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "device.json"
    path.write_text(json.dumps(emu.state.issue_refresh_token("dev@example.com", ("openid", "email", "profile"))))
    code, out, err = run(
        capsys, "access", "--credentials", str(path), "--no-cache", "--scopes", f"foo,{CLOUD_PLATFORM}"
    )
    assert code != 0 and out == "" and len(errors(err)) == 1 == len(err.splitlines()), err
    assert "invalid_scope" in err and "}. Not a scope Google knows: foo (use openid, email, profile" in err, err
    assert "sign in again" not in err and "gcptoken login" not in err, err


@pytest.mark.parametrize("flow", ["--no-browser", "--device"])
@pytest.mark.parametrize(
    ("scopes", "named"), [("not-a-scope", "not-a-scope"), (f"openid,not a,{CLOUD_PLATFORM}", "not, a")]
)
def test_a_scope_google_does_not_know_is_refused_before_the_sign_in(
    capsys: pytest.CaptureFixture[str], emu: EmulatorServer, here: dict[str, str], flow: str, scopes: str, named: str
) -> None:
    """Google refuses it on its own error page, which never reaches the loopback redirect (the
    emulator's answers: tests/emulator/test_scope_refusals.py), so login refuses it first."""
    emu.state.clear_requests()
    code, out, err = run(capsys, "login", flow, "--scopes", scopes, "--client-id-file", client_file(emu))
    assert code == 2 and out == "" and "Traceback" not in err
    assert (
        errors(err)
        == err.splitlines()
        == [
            f"gcptoken: error: --scopes: not a scope Google knows: {named} (use openid, email, profile or a URL like "
            f"{CLOUD_PLATFORM}; several are separated by commas or spaces)"
        ]
    )
    assert emu.state.request_log() == []  # no browser was sent anywhere, no device code asked for


@pytest.mark.parametrize(
    ("scopes", "said"),
    [
        ("openid,bogus", "--scopes: not a scope Google knows: bogus (use openid"),
        (
            f"openid,{CLOUD_PLATFORM}",
            "no Google Cloud scope), not cloud-platform: for it, sign in in a browser",
        ),
        (
            "openid,https://www.googleapis.com/auth/devstorage.read_only,https://www.googleapis.com/auth/drive",
            "no Google Cloud scope), not devstorage.read_only, drive: for them, sign in in a browser",
        ),
    ],
)
def test_device_refusal_names_the_scopes_it_cannot_grant(
    capsys: pytest.CaptureFixture[str], emu: EmulatorServer, here: dict[str, str], scopes: str, said: str
) -> None:
    emu.state.clear_requests()
    code, out, err = run(capsys, "login", "--device", "--scopes", scopes, "--client-id-file", client_file(emu))
    assert code == 2 and out == "" and errors(err) == err.splitlines() and len(errors(err)) == 1, err
    assert said in err, err
    assert ("cloud-platform" in err) == ("cloud-platform" in scopes or "URL like" in err), err
    assert emu.state.request_log() == []


def test_login_help_shows_each_flows_default_scopes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # no line wrapped inside a scope's name
    with pytest.raises(SystemExit) as exited:
        main(["login", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert exited.value.code == 0
    assert "openid, email, cloud-platform in a browser; openid, email, profile with --device" in help_text


def test_device_wait_stops_polling_with_one_line(
    capsys: pytest.CaptureFixture[str],
    emu: EmulatorServer,
    here: dict[str, str],
    tmp_path: Path,
) -> None:
    output = tmp_path / "waited.json"
    started = time.monotonic()
    code, out, err = run(
        capsys, "login", "--device", "--wait", "1.5", "--client-id-file", client_file(emu), "--output", str(output)
    )
    assert time.monotonic() - started < 10  # not the code's 30 minutes
    assert code == 1 and out == "" and not output.exists()
    assert errors(err) == [
        "gcptoken: error: the code was not approved within 1.5 s (--wait); run gcptoken login --device again"
    ]


# -- logout ------------------------------------------------------------------------------------------


def test_logout_with_nobody_signed_in_says_so_and_succeeds(
    capsys: pytest.CaptureFixture[str], here: dict[str, str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "logout")
    adc = Path(here["CLOUDSDK_CONFIG"]) / "application_default_credentials.json"
    assert code == 0 and out == "" and err == f"gcptoken: nobody is signed in: {adc} does not exist; nothing to do\n"
    code, _, err = run(capsys, "logout", "--credentials", str(tmp_path / "gone.json"))
    assert code == 0 and "nobody is signed in" in err
