"""Token caches: in process (``memory``: single flight, refresh ahead), on disk for the CLI
(``disk``), and the rules both share (``rules``: secret-bound identities, refresh margins).
Nothing is imported here: the CLI's cached path loads only ``rules`` and ``disk``."""
