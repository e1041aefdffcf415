"""The metadata server (``metadata.google.internal``) of the emulated instance, on the emulator's
port: its values, its default service account's tokens, the platform it poses as (server)."""
