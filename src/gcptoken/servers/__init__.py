"""What every local server gcptoken starts shares: serving on a socket and stopping gracefully on
Ctrl-C and SIGTERM alike (``serving``), the one line for a port it cannot listen on (``listen``),
the request guard (peer, Host, Origin, content type), one-time launch links, page headers and the
request log."""
