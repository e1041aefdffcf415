"""``gcptoken login`` among hostile neighbours: every local user can read the browser's command line
and reach the loopback port, and every web page can aim the browser at it.

The browser is given a one-time launcher, never the authorization URL; a second use of the launcher
aborts the sign-in; an answer without the launcher's cookie is refused and reported; an idle
connection blocks nobody; a rebound Host is refused. The other user is a real one (``setpriv``) who
finds the link in ``/proc/PID/cmdline``, and the browser is the real headless Chromium."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gcptoken.emulator import EmulatorServer
from tests.browser import click, type_into, wait_for_text
from tests.cache.test_shared_host import OTHER_UID, needs_a_second_user
from tests.cli.test_cli import gcptoken
from tests.cli.test_login import BrowserStandIn, Login, client_file, consent, through_the_launcher

pytestmark = pytest.mark.slow

SOMEONE_ELSE = "someone else used the sign-in link"
NO_COOKIE = "did not come from the browser gcptoken opened"


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    with EmulatorServer(state_dir=tmp_path_factory.mktemp("hostile-login-state"), mtls_port=None) as server:
        yield server


@pytest.fixture
def env(emu: EmulatorServer, tmp_path: Path) -> dict[str, str]:
    return {"GCPTOKEN_EMULATOR_HOST": emu.host_port, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud")}


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[BrowserStandIn]:
    browser = BrowserStandIn(tmp_path)
    yield browser
    browser.close()


def opened(env: dict[str, str], emu: EmulatorServer, stand_in: BrowserStandIn, output: Path) -> tuple[Login, str]:
    """``gcptoken login`` with the stand-in for the browser; the launcher URL it was given."""
    login = Login({**env, **stand_in.env}, "--client-id-file", client_file(emu), "--output", str(output))
    login.read_until("your browser has been opened")
    return login, stand_in.url()


def one_error(err: str, fragment: str) -> None:
    errors = [line for line in err.splitlines() if line.startswith("gcptoken: error")]
    assert len(errors) == 1 and fragment in errors[0], err
    assert "Traceback" not in err


def port_of(url: str) -> int:
    port = httpx.URL(url).port
    assert port is not None
    return port


# -- the launcher and the redirect, from other processes ----------------------------------------------


def test_the_launcher_leads_once_and_every_answer_sends_no_referrer(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path, stand_in: BrowserStandIn
) -> None:
    output = tmp_path / "adc.json"
    login, url = opened(env, emu, stand_in, output)
    port = port_of(url)
    with httpx.Client() as browser:
        launched = browser.get(url)
        assert launched.status_code == 302
        location = launched.headers["location"]
        assert "code_challenge=" in location and "state=" in location and location.startswith(emu.url)
        cookie = launched.headers["set-cookie"]
        assert cookie.startswith(f"gcptoken-signin-{port}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        done = browser.get(consent(emu, location))
    assert done.status_code == 200 and "You may close this window" in done.text
    for answer in (launched, done):
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["referrer-policy"] == "no-referrer"  # the code in the address goes nowhere
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    code, out, err = login.finish()
    assert code == 0, err
    assert json.loads(output.read_text())["account"] == "alice@example.com" and out.strip() == str(output)


def test_a_second_use_of_the_launcher_aborts_with_one_line(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path, stand_in: BrowserStandIn
) -> None:
    output = tmp_path / "adc.json"
    login, url = opened(env, emu, stand_in, output)
    assert httpx.get(url).status_code == 302  # the browser
    again = httpx.get(url)
    assert again.status_code == 410 and "already used" in again.text
    assert "location" not in again.headers and "set-cookie" not in again.headers
    code, out, err = login.finish()
    assert code == 1 and out == ""
    one_error(err, SOMEONE_ELSE)
    assert "nothing was written" in err and not output.exists()


def test_whoever_uses_the_launcher_first_cannot_sign_in_as_themselves(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path, stand_in: BrowserStandIn
) -> None:
    """Another process reads the link before the browser loads it and completes a sign-in of its own
    with the cookie it got: its answer is held until the browser, loading the link, spends it again."""
    output = tmp_path / "adc.json"
    login, url = opened(env, emu, stand_in, output)
    assert through_the_launcher(emu, url, "mallory@example.com").status_code == 200
    assert httpx.get(url).status_code == 410  # the real browser, a moment later
    code, out, err = login.finish()
    assert code == 1 and out == ""
    one_error(err, SOMEONE_ELSE)
    assert not output.exists()


def test_an_answer_without_the_cookie_is_refused_reported_and_the_wait_goes_on(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path, stand_in: BrowserStandIn
) -> None:
    output = tmp_path / "adc.json"
    login, url = opened(env, emu, stand_in, output)
    client_id = json.loads(Path(client_file(emu)).read_text())["installed"]["client_id"]
    own = httpx.URL(f"{emu.url}/o/oauth2/auth").copy_merge_params(
        {
            "client_id": client_id,
            "redirect_uri": f"http://127.0.0.1:{port_of(url)}/",
            "response_type": "code",
            "scope": "openid email",
            "state": "guessed",
        }
    )
    forged = httpx.get(consent(emu, str(own), "mallory@example.com"))  # another process, no cookie
    assert forged.status_code == 403 and "did not come from the browser" in forged.text
    login.read_until(NO_COOKIE)
    with httpx.Client() as browser:
        location = browser.get(url).headers["location"]
        answer = consent(emu, location, "alice@example.com")
        assert httpx.get(answer).status_code == 403  # even the real answer, from elsewhere
        login.read_until(NO_COOKIE)
        assert browser.get(answer).status_code == 200
    code, _, err = login.finish()
    assert code == 0, err
    assert json.loads(output.read_text())["account"] == "alice@example.com"
    assert "mallory" not in output.read_text()


def test_idle_and_trickling_connections_do_not_block_the_redirect(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path, stand_in: BrowserStandIn
) -> None:
    output = tmp_path / "adc.json"
    login, url = opened(env, emu, stand_in, output)
    port = port_of(url)
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    trickle = socket.create_connection(("127.0.0.1", port))
    try:
        trickle.sendall(b"GET / HTTP/1.1\r\nHo")
        with httpx.Client(timeout=5) as browser:  # well inside the receiver's 10 s read timeout
            location = browser.get(url).headers["location"]
            trickle.sendall(b"s")
            assert browser.get(consent(emu, location)).status_code == 200
        code, _, err = login.finish()
        assert code == 0, err
    finally:
        for connection in [*idle, trickle]:
            connection.close()


def test_a_trickling_connection_is_cut_off_while_the_sign_in_waits(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path
) -> None:
    """A client that sends its request a byte at a time, never finishing the headers, is closed
    after the receiver's 10 s, however steadily it trickles."""
    login = Login(env, "--no-browser", "--client-id-file", client_file(emu))
    port = port_of(login.url())
    with socket.create_connection(("127.0.0.1", port)) as trickle:
        trickle.settimeout(1)
        closed = False
        for byte in b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 60:
            try:
                trickle.sendall(bytes([byte]))
                closed = trickle.recv(1) == b""
            except TimeoutError:
                continue
            except OSError:
                closed = True
            if closed:
                break
        assert closed and login.process.poll() is None  # cut off by the receiver, which still waits
    login.process.terminate()
    login.finish()


def test_a_rebound_host_is_refused_before_the_link_is_looked_at(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path, stand_in: BrowserStandIn
) -> None:
    """A page of attacker.example, its name rebound to 127.0.0.1, cannot use the launcher (nor
    spend it) or deliver an answer."""
    output = tmp_path / "adc.json"
    login, url = opened(env, emu, stand_in, output)
    port = port_of(url)
    for path in (httpx.URL(url).path, "/?code=4/0x&state=y"):
        for method in ("GET", "POST"):
            refused = httpx.request(
                method, f"http://127.0.0.1:{port}{path}", headers={"Host": f"attacker.example:{port}"}
            )
            assert refused.status_code == 403 and refused.text.count("\n") == 1 and "Host" in refused.text
            assert "location" not in refused.headers
    assert httpx.post(url).status_code == 405  # only a browser's GET, and only once
    assert through_the_launcher(emu, url).status_code == 200
    code, _, err = login.finish()
    assert code == 0, err
    assert err.count("refused a request to the redirect port: Host 'attacker.example:") == 4  # one line each


def test_when_no_browser_opens_googles_url_is_printed_and_the_launcher_retired(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path
) -> None:
    stand_in = BrowserStandIn(tmp_path, fail=True)
    output = tmp_path / "adc.json"
    try:
        login = Login({**env, **stand_in.env}, "--client-id-file", client_file(emu), "--output", str(output))
        login.read_until("no browser could be opened")
        authorization_url = login.url()
        assert "code_challenge=" in authorization_url
        launcher = httpx.get(stand_in.url())  # read from the failed browser command's argv
        assert launcher.status_code == 410 and "location" not in launcher.headers
        login.read_until("after the browser failed to open")
        login.paste(consent(emu, authorization_url, "bob@example.com"))
        code, _, err = login.finish()
        assert code == 0, err
        assert json.loads(output.read_text())["account"] == "bob@example.com"
    finally:
        stand_in.close()


def test_odd_answers_at_the_port_and_pasted_are_refused_without_a_traceback(
    emu: EmulatorServer, env: dict[str, str], tmp_path: Path
) -> None:
    output = tmp_path / "adc.json"
    login = Login(env, "--no-browser", "--client-id-file", client_file(emu), "--output", str(output))
    location = httpx.URL(consent(emu, login.url()))
    port = port_of(str(location))
    for path in ("/?code=x&state=%C3%A9", "/?code=x&state=%00", "/?error=" + "e" * 5000, "/%ff?code=1", "/x?code=1"):
        assert httpx.get(f"http://127.0.0.1:{port}{path}").status_code in (400, 404), path
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(b"GET /\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.")
    login.paste(str(location.copy_set_param("state", "\u00e9t\u00e9")))
    code, _, err = login.finish()
    assert code == 1 and "Traceback" not in err
    one_error(err, "state does not match")
    assert not output.exists()


def test_no_browser_prints_googles_url_and_help_says_why(emu: EmulatorServer, env: dict[str, str]) -> None:
    helped = gcptoken("login", "--help", env=env)
    assert helped.code == 0 and "--no-browser" in helped.out and "one-time" in helped.out
    login = Login(env, "--no-browser", "--client-id-file", client_file(emu))
    url = login.url()
    assert "/launch/" not in url and "state=" in url
    login.process.terminate()
    login.finish()


# -- another user on this machine, reading the real browser's command line -----------------------------

ATTACKER = r"""
import http.client, json, os, re, sys
from urllib.parse import urlsplit

mode, pid, emulator, client_id = sys.argv[1:5]

def link():
    # The browser's command line, as any local user reads it. (A real attacker scans every process;
    # the test names the browser's, so that other sign-ins running on this machine are left alone.)
    for arg in open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0"):
        if re.fullmatch(rb"http://127\.0\.0\.1:[0-9]+/launch/[A-Za-z0-9_-]+", arg):
            return arg.decode()


def get(url, cookie=None):
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    target = parts.path + ("?" + parts.query if parts.query else "")
    connection.request("GET", target, headers={"Cookie": cookie} if cookie else {})
    answer = connection.getresponse()
    return answer.status, answer.getheader("Location"), answer.getheader("Set-Cookie")

def consent(url):
    host = urlsplit(emulator)
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
    body = json.dumps({"url": url, "email": "mallory@example.com"})
    connection.request("POST", "/emulator/v1/consents", body, {"Content-Type": "application/json"})
    return json.loads(connection.getresponse().read())["location"]

url = link()
report = {"uid": os.getuid(), "found": url is not None}
if mode == "forge":
    port = urlsplit(url).port
    own = (f"{emulator}/o/oauth2/auth?client_id={client_id}&redirect_uri=http://127.0.0.1:{port}/"
           "&response_type=code&scope=openid+email&state=guessed")
    report["callback"] = get(consent(own))[0]
else:
    status, location, cookie = get(url)
    report.update(launch=status, location=location is not None, cookie=cookie is not None)
    if location:
        report["callback"] = get(consent(location), cookie.split(";")[0])[0]
print(json.dumps(report))
"""


AS_OTHER_USER = ("setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups")


def attack(mode: str, emu: EmulatorServer, browser_pid: int) -> dict[str, Any]:
    client_id = json.loads(Path(client_file(emu)).read_text())["installed"]["client_id"]
    done = subprocess.run(
        [*AS_OTHER_USER, "/usr/bin/python3", "-c", ATTACKER, mode, str(browser_pid), emu.url, client_id],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["uid"] == OTHER_UID and report["found"], report
    return report


@needs_a_second_user
def test_another_user_who_uses_the_link_before_the_browser_aborts_the_sign_in(
    browser: Any, emu: EmulatorServer, env: dict[str, str], tmp_path: Path, stand_in: BrowserStandIn
) -> None:
    output = tmp_path / "adc.json"
    login, url = opened(env, emu, stand_in, output)
    report = attack("first", emu, stand_in.pid())
    assert report["launch"] == 302 and report["callback"] == 200  # they got this far, with the cookie
    browser.get(url)  # the browser, a moment later
    wait_for_text(browser, "already used")
    code, out, err = login.finish()
    assert code == 1 and out == ""
    one_error(err, SOMEONE_ELSE)
    assert not output.exists()


@needs_a_second_user
def test_another_user_who_uses_the_link_after_the_browser_is_refused(
    browser: Any, emu: EmulatorServer, env: dict[str, str], tmp_path: Path, stand_in: BrowserStandIn
) -> None:
    output = tmp_path / "adc.json"
    login, url = opened(env, emu, stand_in, output)
    browser.get(url)
    wait_for_text(browser, "Choose an account")
    report = attack("late", emu, stand_in.pid())
    assert report["launch"] == 410 and not report["location"] and not report["cookie"]
    code, out, err = login.finish()
    assert code == 1 and out == ""
    one_error(err, SOMEONE_ELSE)
    assert not output.exists()


@needs_a_second_user
def test_another_users_own_code_without_the_cookie_is_ignored(
    browser: Any, emu: EmulatorServer, env: dict[str, str], tmp_path: Path, stand_in: BrowserStandIn
) -> None:
    output = tmp_path / "adc.json"
    login, url = opened(env, emu, stand_in, output)
    assert attack("forge", emu, stand_in.pid())["callback"] == 403
    login.read_until(NO_COOKIE)
    browser.get(url)
    type_into(browser, "#other_account", "right@example.com")
    click(browser, "button[value=allow]")
    wait_for_text(browser, "You may close this window")  # the cookie came back through the redirects
    code, _, err = login.finish()
    assert code == 0, err
    assert json.loads(output.read_text())["account"] == "right@example.com"


# -- the emulator's redirect_uri, read as a browser reads it -------------------------------------------

# What Python's urlsplit calls loopback and a browser does not (or that a browser rewrites first):
# each is refused on every path that redirects.
HOSTILE_REDIRECTS = {
    "backslash before @": "http://evil.example\\@127.0.0.1:{port}/",
    "backslash after the port": "http://127.0.0.1:80\\@evil.example/",
    "user info, host after": "http://127.0.0.1@evil.example/",
    "user info on loopback": "http://user:pw@127.0.0.1:{port}/",
    "v6 user info": "http://[::1]@evil.example/",
    "loopback as a label": "http://127.0.0.1.evil.example/",
    "localhost as a label": "http://localhost.evil/",
    "a tab": "http://127.0.0.1\t.evil.example/",
    "a newline": "http://127.0.0.1:{port}\n@evil.example/",
    "leading space": " http://127.0.0.1:{port}/",
    "hex IPv4": "http://0x7f.1:{port}/",
    "short IPv4": "http://127.1:{port}/",
    "percent-encoded dot": "http://127%2E0.0.1:{port}/",
    "full-width dots": "http://127\u30020\u30020\u30021:{port}/",
    "three slashes": "http:///evil.example/",
    "no slashes": "http:evil.example/",
    "trailing dot": "http://localhost.:{port}/",
    "zone id": "http://[::1%25lo]:{port}/",
    "https": "https://127.0.0.1:{port}/",
    "a fragment": "http://127.0.0.1:{port}/#x",
    "an empty port": "http://127.0.0.1:/",
}
ACCEPTED_REDIRECTS = [
    "HTTP://127.0.0.1:{port}/",
    "http://LOCALHOST:{port}/callback",
    "http://[::1]:{port}/",
    "http://127.0.0.1:{port}/?app=x",
]
BROWSER_VIEW = (
    "try { const u = new URL(arguments[0]); return [u.protocol, u.hostname, u.username, u.password]; }"
    " catch (e) { return null; }"
)


def authorization(emu: EmulatorServer, redirect_uri: str) -> str:
    query = {"client_id": emu.state.oauth_client[0], "redirect_uri": redirect_uri, "response_type": "code"}
    return str(httpx.URL(f"{emu.url}/o/oauth2/v2/auth").copy_merge_params({**query, "scope": "openid", "state": "s"}))


def consent_page_decision(emu: EmulatorServer, redirect_uri: str, decision: str) -> httpx.Response:
    with httpx.Client() as client:
        page = client.get(authorization(emu, redirect_uri))
        assert page.status_code == 200, page.text
        consent_id = page.text.split('name="consent" value="')[1].split('"')[0]
        form = {"consent": consent_id, "other_account": "alice@example.com", "decision": decision}
        return client.post(f"{emu.url}/o/oauth2/v2/auth/consent", data=form)


@pytest.mark.parametrize("uri", list(HOSTILE_REDIRECTS.values()), ids=list(HOSTILE_REDIRECTS))
def test_a_redirect_uri_a_browser_reads_otherwise_is_refused_on_every_path(emu: EmulatorServer, uri: str) -> None:
    uri = uri.format(port=8123)
    page = httpx.get(authorization(emu, uri))
    assert page.status_code == 400 and "redirect_uri_mismatch" in page.text and "location" not in page.headers
    assert 'name="consent"' not in page.text  # no consent to answer: neither Allow nor Deny
    for decision in ("allow", "deny"):
        admin = httpx.post(
            f"{emu.url}/emulator/v1/consents", json={"url": authorization(emu, uri), "decision": decision}
        )
        assert admin.status_code == 400 and "redirect_uri_mismatch" in admin.text and "location" not in admin.json()


@pytest.mark.parametrize("uri", ACCEPTED_REDIRECTS)
def test_loopback_redirects_are_answered_on_every_path(emu: EmulatorServer, uri: str) -> None:
    uri = uri.format(port=8123)
    separator = "&" if "?" in uri else "?"
    allowed = consent_page_decision(emu, uri, "allow")
    assert allowed.status_code == 302 and allowed.headers["location"].startswith(f"{uri}{separator}code=")
    denied = consent_page_decision(emu, uri, "deny")
    assert denied.headers["location"] == f"{uri}{separator}error=access_denied&state=s"
    admin = httpx.post(f"{emu.url}/emulator/v1/consents", json={"url": authorization(emu, uri)})
    assert admin.json()["location"].startswith(f"{uri}{separator}code=")


def test_what_the_emulator_accepts_chromium_takes_to_loopback(browser: Any, emu: EmulatorServer) -> None:
    """Chromium's own URL parser judges: every redirect_uri the emulator accepts is plain http to a
    loopback host with no user info; and the classes refused are ones Python and the browser read
    differently (or the browser reads as another host)."""
    from urllib.parse import urlsplit

    browser.get("about:blank")
    loopback = {"127.0.0.1", "localhost", "[::1]"}
    for uri in [*ACCEPTED_REDIRECTS, *HOSTILE_REDIRECTS.values()]:
        uri = uri.format(port=8123)
        accepted = httpx.get(authorization(emu, uri)).status_code == 200
        view = browser.execute_script(BROWSER_VIEW, uri)
        if accepted:
            assert view is not None and view[0] == "http:" and view[1] in loopback and view[2:] == ["", ""], uri
    python_says = urlsplit(HOSTILE_REDIRECTS["backslash before @"].format(port=8123)).hostname
    chromium_says = browser.execute_script(BROWSER_VIEW, HOSTILE_REDIRECTS["backslash before @"])[1]
    assert python_says == "127.0.0.1" and chromium_says == "evil.example"  # what a urlsplit check let through


class Listener:
    """A loopback server on 127.0.0.1 and [::1] (one port) that notes the paths browsers bring it."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.hits: list[str] = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/favicon.ico":
                    hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"landed on loopback")

            def log_message(self, format: str, *args: Any) -> None:
                return

        class V6(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6

        for _ in range(20):
            v4 = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            try:
                v6 = V6(("::1", v4.server_address[1]), Handler)
                break
            except OSError:
                v4.server_close()
        self.servers = [v4, v6]
        self.port = v4.server_address[1]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def test_chromium_lands_on_loopback_for_each_accepted_form(browser: Any, emu: EmulatorServer) -> None:
    listener = Listener()
    try:
        for uri in ACCEPTED_REDIRECTS:
            uri = uri.format(port=listener.port)
            before = len(listener.hits)
            browser.get(authorization(emu, uri))
            type_into(browser, "#other_account", "alice@example.com")
            click(browser, "button[value=allow]")
            wait_for_text(browser, "landed on loopback")
            assert len(listener.hits) == before + 1 and "code=" in listener.hits[-1] and "state=s" in listener.hits[-1]
    finally:
        listener.close()
