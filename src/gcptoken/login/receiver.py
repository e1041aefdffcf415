"""The loopback receiver of ``gcptoken login``: the one-time launcher the browser is opened on, and
the redirect the authorization server sends the browser back to.

Every local user can reach the port and read the browser's command line (``/proc/PID/cmdline``),
so the browser is never given the authorization URL (its ``state`` and ``code_challenge``), only
``/launch/SECRET`` here, good for one use: it answers 302 to the authorization URL and sets a
session cookie (``SameSite=Lax``: the answer comes back by a redirect from another site). Then:

- a second use of the launcher, before or after the browser's, aborts the sign-in: someone else
  read the link (or the authorization URL it led to) and nothing they do may be written;
- the redirect is taken only with that cookie and the sign-in's ``state``; one without (another
  process delivering a code of its own) is refused, reported, and the wait goes on;
- without a launcher (``--no-browser``: the person opens the URL in any browser, perhaps on another
  machine) the redirect is taken on its ``state`` alone, which only the person's terminal showed.

Each connection has its own thread and 10 s for its request headers, so an idle or trickling
client holds only itself, and not for long; peer and Host are checked (``servers.guard``) before
anything else; every answer is ``no-store``, sends no referrer and may not be framed.
"""

from __future__ import annotations

import contextlib
import http.server
import queue
import secrets
import socket
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gcptoken.errors import GcpTokenError
from gcptoken.servers import guard
from gcptoken.servers.launch import OneTimeLink
from gcptoken.servers.listen import listen_problem
from gcptoken.servers.page_headers import PAGE_HEADERS

__all__ = ["Abort", "Answer", "Event", "LoopbackReceiver", "Notice"]

LAUNCH_PATH = "/launch/"
# The pages hold no script and load nothing; none may be framed, cached or send a referrer (the
# redirect's address carries the code).
CSP = "default-src 'none'; img-src data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
HEADERS = {**PAGE_HEADERS, "Content-Security-Policy": CSP}
CONNECTION_TIMEOUT = 10.0  # seconds for a connection's request line and headers
SOMEONE_ELSE = (
    "someone else used the sign-in link (another program on this machine read it from the browser's "
    "command line); nothing was written. Run gcptoken login again"
)
NO_SESSION = (
    "ignored an answer at the redirect port that did not come from the browser gcptoken opened (no sign-in "
    "cookie): another program on this machine may be trying to sign you in as someone else"
)
WRONG_STATE_NOTICE = "ignored a request to the redirect port that is not from this sign-in (wrong state)"


@dataclass(frozen=True)
class Answer:
    """The browser's final address (its query): at the loopback port, or pasted by the person."""

    query: dict[str, str]
    pasted: bool = False


@dataclass(frozen=True)
class Notice:
    """Something the person should know; the wait goes on."""

    text: str


@dataclass(frozen=True)
class Abort:
    """The sign-in cannot be trusted any more: stop, write nothing."""

    reason: str


Event = Answer | Notice | Abort


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    event: Event | None = None  # put on the queue once the reply is sent


def _page(title: str, text: str) -> bytes:
    return (
        f'<!doctype html><meta charset=utf-8><link rel="icon" href="data:,"><title>{title}</title><p>{text}</p>'
    ).encode()


DONE = _page("Signed in", "gcptoken received the answer. You may close this window.")
REFUSED_ANSWER = _page(
    "Not accepted", "This answer did not come from the browser gcptoken opened for this sign-in; it was not used."
)
SPENT_LINK = _page("Link already used", "This sign-in link was already used. The sign-in was stopped.")
RETIRED_LINK = _page("Link not in use", "This sign-in link is not in use: gcptoken printed the address instead.")
WRONG_STATE = _page("Not accepted", "This answer is not from the current sign-in; it was not used.")
ALREADY = _page("Already answered", "gcptoken already received the answer. You may close this window.")


_POLICY = guard.GuardPolicy(hint="nothing: gcptoken login answers 127.0.0.1 only")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a connection left hanging never holds the process at exit
    receiver: LoopbackReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that hung up or timed out: no traceback on the person's terminal


class _Handler(http.server.BaseHTTPRequestHandler):
    """Each connection in its own thread, silent ones dropped after CONNECTION_TIMEOUT, and one that
    has not sent its request line and headers by then (a trickle) cut off: no client holds another."""

    server: _Server
    timeout = CONNECTION_TIMEOUT  # per read
    server_version = "gcptoken-login"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self._deadline = threading.Timer(CONNECTION_TIMEOUT, self._cut_off)
        self._deadline.daemon = True
        self._deadline.start()

    def _cut_off(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def parse_request(self) -> bool:
        parsed = super().parse_request()  # reads the headers
        self._deadline.cancel()
        return parsed

    def finish(self) -> None:
        self._deadline.cancel()
        super().finish()

    def do_GET(self) -> None:
        self.server.receiver.handle(self)

    def _not_allowed(self) -> None:  # a browser only ever GETs here; HEAD too would spend the link
        self.server.receiver.handle(self, allowed=False)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        merged = {**HEADERS, "Content-Type": "text/html; charset=utf-8", **(headers or {})}
        for name, value in merged.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # paths carry codes and the link's secret


class LoopbackReceiver:
    """An HTTP server on 127.0.0.1 for the sign-in; what arrives is put on ``events`` (a queue
    shared with a reader of pasted addresses). Call ``expect`` with the authorization before the
    browser is opened on ``launch_url``."""

    def __init__(self, events: queue.Queue[Event], port: int = 0, launcher: bool = True) -> None:
        self.events = events
        self.link = OneTimeLink("signin", same_site="Lax") if launcher else None
        self._lock = threading.Lock()
        self._retired = False
        self._answered = False
        self._target: str | None = None
        self._state: str | None = None
        try:
            self.server = _Server(("127.0.0.1", port), _Handler)
        except OSError as exc:  # not a usage error: the port is taken (or refused), as for every server
            raise GcpTokenError(listen_problem("127.0.0.1", port, "--port", exc)) from None
        self.server.receiver = self
        self.port = self.server.server_address[1]
        self.redirect_uri = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)

    @property
    def launch_url(self) -> str:
        """The one-time URL the browser is opened on (the same host as the redirect: one cookie jar)."""
        assert self.link is not None
        return f"http://127.0.0.1:{self.port}{LAUNCH_PATH}{self.link.secret}"

    def expect(self, authorization_url: str, state: str) -> None:
        self._target, self._state = authorization_url, state

    def retire_link(self) -> bool:
        """The browser could not be opened: the launcher serves nobody from now on, and answers are
        taken on their ``state`` alone (the address went to the person's terminal). False when the
        link was already used: by someone else, since no browser opened it."""
        with self._lock:
            self._retired = True
            return self.link is None or not self.link.used

    def __enter__(self) -> LoopbackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- requests ---------------------------------------------------------------------------------

    def handle(self, request: _Handler, allowed: bool = True) -> None:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            headers.setdefault(name.lower(), value)
        seen = guard.Request(
            method=request.command,
            target=request.path.encode("latin-1", "replace"),
            http_version=request.request_version.removeprefix("HTTP/"),
            headers=[
                (k.encode("latin-1", "replace"), v.encode("latin-1", "replace")) for k, v in request.headers.items()
            ],
            peer=request.client_address[0],
            bound=("127.0.0.1", self.port),
        )
        refusal = guard.screen(seen, _POLICY, guard.Scrutiny.HOST)
        if refusal is not None:
            request.close_connection = True  # nothing after a refused request is read as another
            reason = (refusal.reason + "\n").encode()
            request.reply(refusal.status, reason, {"Content-Type": "text/plain", "Connection": "close"})
            self.events.put(Notice(f"refused a request to the redirect port: {refusal.reason}"))
            return
        if not allowed:
            request.reply(405, headers={"Allow": "GET"})
            return
        path = urlsplit(request.path)
        if path.path.startswith(LAUNCH_PATH):
            reply = self._launch(path.path[len(LAUNCH_PATH) :])
        elif path.path == "/":
            reply = self._redirected(dict(parse_qsl(path.query)), headers.get("cookie"))
        else:
            reply = _Reply(404)
        try:
            request.reply(reply.status, reply.body, reply.headers)
        finally:
            if reply.event is not None:  # after the page is out: an answer may end the process
                self.events.put(reply.event)

    def _launch(self, presented: str) -> _Reply:
        link, target = self.link, self._target
        if link is None or target is None or not link.matches(presented):
            return _Reply(404)
        with self._lock:
            if self._retired:
                notice = Notice("refused a use of the sign-in link after the browser failed to open it")
                return _Reply(410, RETIRED_LINK, event=notice)
            if not link.claim(presented):
                return _Reply(410, SPENT_LINK, event=Abort(SOMEONE_ELSE))
        return _Reply(302, headers={"Location": target, "Set-Cookie": link.set_cookie(self.port)})

    def _redirected(self, query: dict[str, str], cookie: str | None) -> _Reply:
        if "code" not in query and "error" not in query:
            return _Reply(404)
        with self._lock:
            session_needed = self.link is not None and not self._retired
        if session_needed and not (self.link is not None and self.link.holds_session(cookie, self.port)):
            return _Reply(403, REFUSED_ANSWER, event=Notice(NO_SESSION))
        presented = query.get("state", "").encode("utf-8", "replace")
        if self._state is None or not secrets.compare_digest(presented, self._state.encode()):
            return _Reply(400, WRONG_STATE, event=Notice(WRONG_STATE_NOTICE))
        with self._lock:
            first, self._answered = not self._answered, True
        return _Reply(200, DONE, event=Answer(query)) if first else _Reply(200, ALREADY)
