"""The ``gcptoken`` command line. Library errors become exit codes only here."""
