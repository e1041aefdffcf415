"""Google's OAuth 2.0 (``oauth2.googleapis.com``, ``accounts.google.com``): the token endpoint and its
grants (jwt-bearer in token; authorization code, device code and refresh in user_grants), the
sign-in pages (signin, pages, signin_redirect), what sign-in keeps (signin_state) and its admin calls
(signin_admin)."""
