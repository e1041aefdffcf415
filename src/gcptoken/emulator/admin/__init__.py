"""The emulator's own admin API under ``/emulator/v1/`` (api; not a Google API) and the console page
over it at ``/emulator/ui`` (console, with its files in static/)."""
