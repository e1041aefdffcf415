"""Domain-wide delegation at the token endpoint: a service account's jwt-bearer assertion whose
``sub`` names a user of the domain gets an access token *for that user*, for the scopes a Workspace
admin granted the account's OAuth client id (its unique id), and no others.

Google's refusals, word for word as its token endpoint sends them:

- a client id without a grant, or a scope outside it: HTTP 401 ``unauthorized_client`` "Client is
  unauthorized to retrieve access tokens using this method, or client not authorized for any of the
  scopes requested." (googleapis/google-auth-library-ruby#210, googleapis/google-api-php-client#2214;
  the 401 status: hlavki/g-suite-identity-sync#7);
- a ``sub`` that is no user: ``invalid_grant`` "Invalid email or User ID"."""

from __future__ import annotations

from starlette.responses import Response

from gcptoken.emulator.http.responses import GoogleJSONResponse as JSONResponse
from gcptoken.emulator.http.responses import oauth_error
from gcptoken.emulator.oauth2.token_scopes import same_scopes
from gcptoken.emulator.state.models import ServiceAccount
from gcptoken.emulator.state.state import EmulatorState

__all__ = ["UNAUTHORIZED_CLIENT", "delegated_access_token"]

UNAUTHORIZED_CLIENT = (
    "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of "
    "the scopes requested."
)
UNKNOWN_USER = "Invalid email or User ID"


def delegated_access_token(
    state: EmulatorState, account: ServiceAccount, subject: str, scopes: tuple[str, ...]
) -> Response:
    """The user's access token, or Google's refusal; ``scopes`` are already known to be Google's."""
    granted = state.delegation_grants.get(account.unique_id)
    if granted is None or not same_scopes(scopes) <= same_scopes(granted):
        return oauth_error("unauthorized_client", UNAUTHORIZED_CLIENT, status=401)
    user = state.find_user(subject)  # Workspace addresses are case-insensitive
    if user is None:
        return oauth_error("invalid_grant", UNKNOWN_USER)
    # Issued to the service account's OAuth client: tokeninfo shows its unique id as azp and aud.
    grant = state.issue_user_access_token(user, scopes, client_id=account.unique_id)
    expires_in = int(grant.expires_at - state.clock())
    return JSONResponse({"access_token": grant.token, "expires_in": expires_in, "token_type": "Bearer"})
