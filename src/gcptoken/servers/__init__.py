"""What every local server gcptoken starts shares: serving on a socket and stopping gracefully
(``serving``), the request guard (peer, Host, Origin, content type), one-time launch links, page
headers and the request log."""
