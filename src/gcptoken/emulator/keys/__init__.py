"""Google's published keys and certificates: its ID-token signing keys and their rotation (signing),
``/oauth2/v1|v3/certs`` and ``tokeninfo`` (certs), every service account's public keys (account_keys),
IAP's and Firebase's keys and tokens (iap, firebase), and the X.509 certificates the keys are wrapped
in (key_certificates)."""
