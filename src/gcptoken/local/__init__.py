"""Local bridges to real credentials: a GCE metadata server for any client, and a reverse proxy
that adds ID tokens (``gcptoken metadata-server``, ``gcptoken proxy``); and the metadata API they
and the emulator serve."""
