"""``gcptoken demo``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["run_demo"]


def run_demo(args: argparse.Namespace) -> int:
    from gcptoken.demo.showcase import run

    if run(sys.stdout):
        return 0
    print("gcptoken: error: the demo did not behave as expected (see ✗ above)", file=sys.stderr)
    return 3
