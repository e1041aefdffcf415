"""Google's Security Token Service (``sts.googleapis.com``) and the federation behind it: the token
exchange (exchange); pools, providers, workforce users and the OIDC issuer that stands in for an
outside IdP (federation); AWS, the emulated account and its instance metadata service (aws,
aws_world); mutual TLS for X.509 federation, its CA and port (mtls)."""
