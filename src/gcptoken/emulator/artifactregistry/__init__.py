"""Artifact Registry stand-ins (``https://LOCATION-FORMAT.pkg.dev/PROJECT/REPOSITORY/…``): the
repositories a credential helper's token opens, refusing callers without a valid access token
from the emulator's own token service, as Artifact Registry does."""
