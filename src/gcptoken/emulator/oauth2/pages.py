"""The sign-in pages' HTML: server-rendered, no script, every field labelled, readable on a phone.
Every value is escaped; the pages may not be framed and may post only to the emulator and a
loopback redirect."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from starlette.responses import HTMLResponse

__all__ = ["consent_page", "device_code_page", "done_page", "error_page"]

# What Google's consent screen says for the common scopes.
SCOPE_WORDS = {
    "openid": "Associate you with your personal info on Google",
    "email": "See your primary Google Account email address",
    "https://www.googleapis.com/auth/userinfo.email": "See your primary Google Account email address",
    "profile": "See your personal info, including any personal info you've made publicly available",
    "https://www.googleapis.com/auth/userinfo.profile": (
        "See your personal info, including any personal info you've made publicly available"
    ),
    "https://www.googleapis.com/auth/cloud-platform": (
        "See, edit, configure, and delete your Google Cloud data and see the email address for your Google Account"
    ),
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; "
        # The consent form posts here and is redirected to the client's loopback redirect_uri
        # (checked to be loopback server-side; CSP has no syntax for [::1], hence http:).
        "form-action 'self' http:"
    ),
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; background: #f1f3f4; color: #202124; }
main { max-width: 28rem; margin: 2rem auto; background: #fff; padding: 1.5rem 2rem; border-radius: 8px; }
h1 { font-size: 1.4rem; font-weight: 400; } .app { font-weight: 600; }
fieldset { border: 0; padding: 0; margin: 1rem 0; } legend { font-weight: 600; margin-bottom: .5rem; }
label { display: block; padding: .4rem 0; } input[type=text] { width: 100%; padding: .5rem; font-size: 1rem; }
ul { padding-left: 1.2rem; } .buttons { display: flex; gap: 1rem; justify-content: flex-end; margin-top: 1.5rem; }
button { font-size: 1rem; padding: .6rem 1.4rem; border-radius: 4px; border: 1px solid #dadce0; background: #fff; }
button.primary { background: #1a73e8; color: #fff; border-color: #1a73e8; }
.problem { color: #d93025; } .note { color: #5f6368; font-size: .9rem; }
@media (max-width: 32rem) { main { margin: 0; border-radius: 0; } }
"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def consent_page(
    action: str,
    consent: str,
    client_name: str,
    scopes: Sequence[str],
    users: Sequence[str],
    login_hint: str | None,
    problem: str = "",
) -> HTMLResponse:
    chosen = login_hint if login_hint in users else (users[0] if users else None)
    accounts = "".join(
        f'<label><input type="radio" name="account" value="{escape(u)}"{" checked" if u == chosen else ""}> '
        f"{escape(u)}</label>"
        for u in users
    )
    other = escape(login_hint or "") if login_hint not in users else ""
    words = "".join(f"<li>{escape(SCOPE_WORDS.get(s, s))}</li>" for s in scopes)
    body = (
        f'<h1>Sign in to continue to <span class="app">{escape(client_name)}</span></h1>'
        + (f'<p class="problem" role="alert">{escape(problem)}</p>' if problem else "")
        + f'<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="consent" value="{escape(consent)}">'
        f"<fieldset><legend>Choose an account</legend>{accounts}"
        f'<label for="other_account">Use another account</label>'
        f'<input type="text" id="other_account" name="other_account" value="{other}" autocomplete="email" '
        'placeholder="name@example.com"></fieldset>'
        f"<p>{escape(client_name)} wants to:</p><ul>{words}</ul>"
        '<p class="note">This is the gcptoken emulator: no Google account is involved.</p>'
        '<div class="buttons"><button type="submit" name="decision" value="deny">Deny</button>'
        '<button type="submit" name="decision" value="allow" class="primary">Allow</button></div></form>'
    )
    return _page("Sign in - Google Accounts (emulated)", body)


def error_page(status: int, error: str, detail: str) -> HTMLResponse:
    body = (
        "<h1>Access blocked: This app's request is invalid</h1>"
        f'<p role="alert"><strong>Error {status}: {escape(error)}</strong></p>'
        f"<p>{escape(detail)}</p>"
        '<p class="note">Request details were checked as Google checks them (gcptoken emulator).</p>'
    )
    return _page(f"Error {status}: {error}", body, status)


def device_code_page(user_code: str, problem: str = "") -> HTMLResponse:
    body = (
        "<h1>Connect a device</h1>"
        + (f'<p class="problem" role="alert">{escape(problem)}</p>' if problem else "")
        + '<form method="post" action="/device"><label for="user_code">Enter the code displayed on your device'
        f'</label><input type="text" id="user_code" name="user_code" value="{escape(user_code)}" '
        'autocomplete="off" autocapitalize="characters" required>'
        '<div class="buttons"><button type="submit" class="primary">Next</button></div></form>'
    )
    return _page("Connect a device - Google Accounts (emulated)", body)


def done_page(approved: bool) -> HTMLResponse:
    text = (
        "Success! You may close this window and return to your device."
        if approved
        else "You denied access. You may close this window."
    )
    return _page("Device connected" if approved else "Access denied", f'<h1 role="status">{escape(text)}</h1>')
