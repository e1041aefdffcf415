"""``python -m gcptoken`` runs the command line."""

import sys

from gcptoken.cli.main import main

sys.exit(main())
