"""``gcptoken inspect``: a private token inspector in the browser. It says what a token is,
explains its claims and times, and verifies it with the right keys, without sending it anywhere."""
