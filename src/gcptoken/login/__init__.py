"""Signing a person in: the installed-app flow (a loopback redirect, PKCE, the browser or a pasted
URL), the device flow, and the ``authorized_user`` file they end in, in gcloud's ADC format."""
