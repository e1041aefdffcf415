"""Each emulated token service's answer to a scope Google does not know (the rule is
``gcptoken.checks.unknown_scopes``: the OpenID names and https URLs on Google's hosts; IAM refuses a URL
elsewhere too: see below)."""

from __future__ import annotations

from starlette.responses import Response

from gcptoken.emulator.http.responses import GoogleJSONResponse, api_error, oauth_error
from gcptoken.untrusted import one_line

__all__ = ["iam_refusal", "same_scopes", "sts_refusal", "token_refusal", "user_refusal"]

_AUTH = "https://www.googleapis.com/auth/"
# Google treats the OpenID Connect scopes email and profile as its userinfo.email and userinfo.profile:
# asked for "email profile" it answers with the userinfo URLs (googleapis/google-api-python-client#1088,
# "Scope has changed from "email profile" to "…/auth/userinfo.email openid …/auth/userinfo.profile"");
# https://developers.google.com/identity/protocols/oauth2/scopes#oauth2 lists both names.
_SAME = {"email": f"{_AUTH}userinfo.email", "profile": f"{_AUTH}userinfo.profile"}


def same_scopes(scopes: tuple[str, ...] | list[str]) -> frozenset[str]:
    """``scopes`` with each OpenID name as its userinfo URL, to compare a request with a grant."""
    return frozenset(_SAME.get(scope, scope) for scope in scopes)


def token_refusal() -> Response:
    """oauth2.googleapis.com/token, jwt-bearer grant: the one answer for a scope it does not know
    and for no scope at all. Google's body, as google-auth surfaces it: "invalid_scope: Invalid
    OAuth scope or ID token audience provided." (googleapis/python-genai#944, dask/dask-cloudprovider#448)."""
    return oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")


def user_refusal(invalid: list[str]) -> Response:
    """oauth2.googleapis.com/token, refresh grant: Google names the invalid scopes and links its
    docs: {"error": "invalid_scope", "error_description": "Some requested scopes were invalid.
    {invalid=[…]}", "error_uri": "https://developers.google.com/identity/protocols/oauth2"}
    (googleapis/google-auth-library-python#999)."""
    named = one_line(", ".join(invalid), 200)
    return GoogleJSONResponse(
        {
            "error": "invalid_scope",
            "error_description": f"Some requested scopes were invalid. {{invalid=[{named}]}}",
            "error_uri": "https://developers.google.com/identity/protocols/oauth2",
        },
        status_code=400,
    )


def iam_refusal() -> Response:
    """IAM Credentials generateAccessToken with a scope that is not Google's (a Cloud Run URL):
    400 INVALID_ARGUMENT "Request contains an invalid argument." (google-github-actions/auth#144)."""
    return api_error(400, "Request contains an invalid argument.")


def sts_refusal(invalid: list[str]) -> Response:
    """sts.googleapis.com/v1/token: no published sample of Google's words, so RFC 8693's (section
    2.2.2: errors as RFC 6749 section 5.2, whose code for an unknown scope is invalid_scope)."""
    return oauth_error("invalid_scope", f"The requested scope is invalid: {one_line(', '.join(invalid), 200)}.")
