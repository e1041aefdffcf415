"""The JOSE core both wings share: compact serialization (``compact``, no cryptography), JWS
signing and verification with keys loaded once (``jws``), and a stdlib check of private-key PEM
(``pem``). Nothing is imported here, so the CLI's cached path pays only for what it uses."""
