"""``gcptoken login`` (the installed-app flow in a browser, pasted back, or the device flow) and
``gcptoken logout`` (revoke, remove the file, forget its cached tokens)."""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
from typing import Any

from gcptoken import endpoints, locations
from gcptoken.credentials.base import run_flow_sync
from gcptoken.errors import CredentialsError, InvalidArgumentError, RefusedError, TokenRequestError, then
from gcptoken.http.flows import Flow
from gcptoken.login import browser_flow, device_flow
from gcptoken.login.client_file import HOW_TO_CREATE, DesktopClient
from gcptoken.login.output import Output, check_output, write_credentials
from gcptoken.login.receiver import SOMEONE_ELSE, Abort, Answer, Event, LoopbackReceiver, Notice
from gcptoken.login.scopes import (
    BROWSER_SCOPES,
    CLOUD_PLATFORM,
    DEVICE_SCOPES,
    granted_scopes,
    known_to_google,
    not_granted,
    shown,
)
from gcptoken.login.tokens import authorized_user, signed_in_email
from gcptoken.untrusted import one_line

__all__ = ["run_login", "run_logout"]

BROWSER_WAIT = 300.0  # seconds for the browser's answer unless --wait says otherwise
NO_CLOUD_PLATFORM = (
    "Google's device flow cannot grant cloud-platform, so this sign-in gives ID tokens (gcptoken id) but no "
    "access tokens for Google Cloud APIs; for those, sign in in a browser (leave out --device; add --no-browser "
    "where no browser runs)"
)
PROGRESS_EVERY = 15.0
OPEN_WAIT = 5.0
SETTLE = 10.0  # seconds after the browser is opened before an answer is acted on (see _wait)


def _say(text: str) -> None:
    print(f"gcptoken: {text}", file=sys.stderr, flush=True)


def _scopes(args: argparse.Namespace, default: tuple[str, ...]) -> tuple[str, ...]:
    if not args.scopes:
        return default
    scopes = tuple(s for s in args.scopes.replace(",", " ").split() if s)
    if not scopes:
        raise InvalidArgumentError("--scopes names no scope")
    return known_to_google(scopes)


def _read_pasted(events: queue.Queue[Event]) -> None:
    """Lines typed or pasted on stdin: the browser's final address, when it ran elsewhere."""
    for line in sys.stdin:
        query = browser_flow.parse_pasted(line)
        if query is not None:
            events.put(Answer(query, pasted=True))
            return
        if line.strip():
            _say("that is not the address the browser ended on (http://127.0.0.1:PORT/?state=…&code=…)")


def _wait(events: queue.Queue[Event], seconds: float, url: str, settle_until: float) -> Answer:
    """The browser's answer, as the receiver took it (or as pasted: checked by code_from). Notices
    are said and the wait goes on; an Abort ends the sign-in.

    An answer that arrives within SETTLE seconds of the browser being given the link is held until
    then: someone who read the launcher from the browser's command line and used it first could
    have signed in as themselves by now, but the browser, loading the link in those seconds, spends
    it a second time and the sign-in aborts. A person takes longer than that to choose an account
    and click Allow, so nobody waits in practice. (A browser slower than SETTLE to load the link
    leaves that race open; the person still sees the account in "signed in as".)"""
    deadline = time.monotonic() + seconds
    next_progress = time.monotonic() + PROGRESS_EVERY
    held: Answer | None = None
    while True:
        now = time.monotonic()
        if held is not None and now >= settle_until:
            return held
        left = deadline - now
        if left <= 0:
            raise RefusedError(f"no answer from the browser within {seconds:.0f} s; run gcptoken login again")
        try:
            event = events.get(timeout=min(left, 0.25))
        except queue.Empty:
            event = None
        if isinstance(event, Notice):
            _say(event.text)
        elif isinstance(event, Abort):
            raise RefusedError(event.reason)
        elif isinstance(event, Answer):
            if event.pasted or time.monotonic() >= settle_until:
                return event
            held = event
        if held is None and time.monotonic() >= next_progress:
            _say(f"waiting for the sign-in at {url.split('?', 1)[0]}… {left:.0f} s left (Ctrl-C cancels)")
            next_progress += PROGRESS_EVERY


def _open(url: str) -> bool:
    """Python's webbrowser, in a thread: a browser command given in $BROWSER is waited for until it
    exits, and one that stays in the foreground must not hold the sign-in (still running after
    OPEN_WAIT seconds: it is the browser, and it has the URL)."""
    import webbrowser

    result: queue.Queue[bool] = queue.Queue()

    def run() -> None:
        try:
            result.put(webbrowser.open(url))
        except (webbrowser.Error, OSError):
            result.put(False)

    threading.Thread(target=run, daemon=True).start()
    try:
        return result.get(timeout=OPEN_WAIT)
    except queue.Empty:
        return True


def _show_url(events: queue.Queue[Event], authorization: browser_flow.Authorization, redirect_uri: str) -> None:
    print(f"  {authorization.url}", file=sys.stderr, flush=True)
    _say(f"if that browser is elsewhere, paste here the address it ends on ({redirect_uri}?…)")
    threading.Thread(target=_read_pasted, args=(events,), daemon=True).start()


def _browser(
    client: DesktopClient, scopes: tuple[str, ...], args: argparse.Namespace, login_hint: str
) -> dict[str, Any]:
    events: queue.Queue[Event] = queue.Queue()
    with LoopbackReceiver(events, args.port or 0, launcher=not args.no_browser) as receiver:
        authorization = browser_flow.start(client, receiver.redirect_uri, scopes, login_hint or None)
        receiver.expect(authorization.url, authorization.state)
        settle_until = 0.0
        if args.no_browser:
            # Google's URL itself, to open anywhere: the person's terminal is not a command line
            # other users can read, and a browser on another machine could not reach a launcher here.
            _say("open this URL in a browser, on this machine or any other:")
            _show_url(events, authorization, receiver.redirect_uri)
        else:
            # The browser gets the one-time launcher, never the authorization URL: every local user
            # can read a browser's command line (/proc/PID/cmdline).
            if _open(receiver.launch_url):
                settle_until = time.monotonic() + SETTLE  # from when the browser has the link
                _say("your browser has been opened to sign in")
            else:
                # No browser here (SSH, a container) is the usual reason: a loopback launcher would
                # be of no use on the machine where the person opens the URL, so print Google's URL,
                # as --no-browser does, on the person's own terminal (stderr is nobody's argv). The
                # launcher is retired: a failed browser command may have shown it to others.
                if not receiver.retire_link():
                    raise RefusedError(SOMEONE_ELSE)
                _say("no browser could be opened; open this URL in a browser, on this machine or any other:")
                _show_url(events, authorization, receiver.redirect_uri)
        answer = _wait(events, args.wait or BROWSER_WAIT, authorization.url, settle_until).query
    code = browser_flow.code_from(answer, authorization)
    try:
        return run_flow_sync(browser_flow.exchange_flow(client, code, authorization), args.timeout)
    except TokenRequestError as exc:
        if exc.error == "invalid_grant":
            again = "The code was already used or has expired; run gcptoken login again"
            raise RefusedError(then(exc, again)) from None
        raise


def _device(client: DesktopClient, scopes: tuple[str, ...], args: argparse.Namespace) -> dict[str, Any]:
    scopes = device_flow.checked_scopes(scopes)
    code = run_flow_sync(device_flow.start_flow(client, scopes), args.timeout)
    _say(f"on any device, open {code.verification_url} and enter the code {code.user_code}")
    shown = [time.monotonic()]

    def progress(left: float) -> None:
        if time.monotonic() - shown[0] >= PROGRESS_EVERY:
            _say(f"waiting for approval of {code.user_code} at {code.verification_url}… {left:.0f} s left")
            shown[0] = time.monotonic()

    def run(flow: Flow[dict[str, Any]]) -> dict[str, Any]:
        return run_flow_sync(flow, args.timeout)

    return device_flow.poll(client, code, run, progress, wait=args.wait)


def _say_scopes(wanted: tuple[str, ...], answer: dict[str, Any]) -> None:
    """Which scopes the sign-in got, as the token response says, and which it did not."""
    granted = granted_scopes(answer)
    if granted is None:
        _say(f"asked for the scopes {shown(wanted)} (the token endpoint did not say which it granted)")
        return
    missing = not_granted(wanted, granted)
    line = f"scopes granted: {shown(granted)}"
    if missing:
        line += f"; not granted: {shown(missing)}"
        if CLOUD_PLATFORM in missing:
            line += " (gcptoken access needs it: access tokens for Google Cloud APIs will be refused)"
    _say(line)


def run_login(args: argparse.Namespace) -> int:
    if not args.client_id_file:
        raise InvalidArgumentError(f"--client-id-file is required. {HOW_TO_CREATE}")
    client = DesktopClient.from_file(args.client_id_file)
    if args.device and (args.no_browser or args.port):
        raise InvalidArgumentError("--device takes neither --no-browser nor --port")
    if args.port is not None and not 0 <= args.port <= 65535:
        raise InvalidArgumentError(f"--port must be 0-65535, not {args.port}")
    output = _checked_output(args)
    if args.device:
        scopes = _scopes(args, DEVICE_SCOPES)
        wanted = scopes if args.scopes else (*scopes, CLOUD_PLATFORM)
        if not args.scopes:
            _say(f"--device asks for {shown(scopes)} only: {NO_CLOUD_PLATFORM}")
        answer = _device(client, scopes, args)
    else:
        wanted = _scopes(args, BROWSER_SCOPES)
        answer = _browser(client, wanted, args, output.account if output.account.isprintable() else "")
    write_credentials(output, authorized_user(client, answer), args.force)
    _say_scopes(wanted, answer)
    email = signed_in_email(answer) or "the account you chose"
    _say(f"signed in as {email}; credentials written to {output.path} (0600)")
    print(output.path)
    return 0


def _checked_output(args: argparse.Namespace) -> Output:
    """The file to write, checked before anyone is asked to sign in (a mistake found after the
    sign-in would cost the person a second one)."""
    adc = locations.adc_file()
    path = args.output or adc
    output = check_output(path, args.force, default=os.path.abspath(path) == os.path.abspath(adc))
    if output.account:
        _say(f"{path} holds the sign-in of {one_line(output.account)}: signing in as anyone else needs --force")
    return output


def run_logout(args: argparse.Namespace) -> int:
    from gcptoken.cache.disk import DiskTokenCache, owner_of
    from gcptoken.credentials import UserCredentials, load_credentials
    from gcptoken.credentials.oauth2 import post_form
    from gcptoken.private_files import NotPrivateError, PrivateDir

    path = args.credentials or locations.adc_file()
    if not os.path.lexists(path):
        _say(f"nobody is signed in: {path} does not exist; nothing to do")
        return 0  # nothing to do is not a failure
    credentials = load_credentials(path)
    if not isinstance(credentials, UserCredentials):
        raise CredentialsError(f"{path} is not an authorized_user file; logout signs out people only")
    key = credentials.key
    revoke = endpoints.resolve(key.token_uri.rsplit("/", 1)[0] + "/revoke")
    try:
        run_flow_sync(post_form(revoke, {"token": key.refresh_token}, {"revoke": "refresh_token"}), args.timeout)
    except TokenRequestError as exc:
        if exc.error != "invalid_token":  # already revoked or expired: signing out goes on
            raise
    identity = credentials.shared_identity()
    forgotten = DiskTokenCache().forget_owner(owner_of(identity)) if identity else 0
    directory, name = os.path.split(os.path.abspath(path))
    try:
        with PrivateDir(directory, create=False, tighten=False) as folder:
            folder.remove(name)
    except NotPrivateError as exc:
        raise CredentialsError(f"revoked, but {path} cannot be removed: {exc}") from None
    who = key.account or "the user"
    _say(f"signed out {who}: refresh token revoked, {path} removed, {forgotten} cached token(s) forgotten")
    return 0
