"""``gcptoken demo``, the showcase: every credential source against an embedded emulator
(``showcase``), and the local bridges' rows (``bridges``). Nothing is imported here."""
