"""``gcptoken cache clear|path``."""

from __future__ import annotations

import argparse
import sys

from gcptoken.cache.disk import DiskTokenCache

__all__ = ["run_cache"]


def run_cache(args: argparse.Namespace) -> int:
    cache = DiskTokenCache()
    if args.action == "path":
        sys.stdout.write(f"{cache.path}\n")
        return 0
    removed = cache.clear()
    print(f"gcptoken: {'removed' if removed else 'no cache at'} {cache.path}", file=sys.stderr)
    return 0
