"""Moved to ``gcptoken.verify.certs``; this name is that very module for one more release."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("gcptoken.verify.certs")
