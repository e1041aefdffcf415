"""The emulator's own state: the data it keeps (models), ``EmulatorState`` that holds and guards it
(state), saving and restoring it (persistence), the ``--state-dir`` with ready-made credential
files (state_dir), and its lock against a second emulator (lock)."""
