"""The emulator's HTTP plumbing: the ASGI app with every service's routes (app), running it (server),
responses in Google's shapes (responses), the body limit (limits), fault injection (faults) and the
request guard's rules per path (guard_rules)."""
