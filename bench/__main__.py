"""``python -m bench [--quick]``: every benchmark in one run; a table on stdout, JSON and a PNG
chart in bench/results/. ``--quick`` shrinks every measurement (for tests, not for numbers), so its
results go to a new temporary directory (it says which), never over the tracked bench/results/."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench.needs import missing_line

RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the suite runs, numbers mean little")
    parser.add_argument(
        "--out",
        type=Path,
        help="where latest.json and latest.png go (default: bench/results; --quick: a temporary dir)",
    )
    args = parser.parse_args(argv)
    missing = missing_line()
    if missing is not None:
        print(missing, file=sys.stderr)
        return 1
    quick = args.quick
    if quick and args.out is not None and args.out.resolve() == RESULTS.resolve():
        parser.error("--quick numbers mean little: they are not written over bench/results (leave --out out)")
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="gcptoken-bench-quick-")) if quick else RESULTS
    if quick:
        print(f"--quick: results go to {args.out}, not to bench/results", flush=True)
    from bench.suite import run_suite  # after the arguments: a refusal costs no import

    return run_suite(quick, args.out)


if __name__ == "__main__":
    sys.exit(main())
