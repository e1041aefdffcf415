"""Real scope URLs for tests that ask for scopes other than the default: the emulator refuses a
scope Google would not know (``s1``), as Google does."""

from __future__ import annotations

S1 = "https://www.googleapis.com/auth/devstorage.read_only"
S2 = "https://www.googleapis.com/auth/pubsub"
