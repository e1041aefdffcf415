"""``python -m gcptoken`` runs the command line."""

import sys

from gcptoken.cli.fast import main

sys.exit(main())
