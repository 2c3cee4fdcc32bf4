"""``make bench``: every benchmark in turn, each printing its own table.

python -m benchmarks [--json] [--only append,commands,...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

BENCHMARKS = (
    "append",
    "telegram",
    "actors",
    "commands",
    "leases",
    "projections",
    "scrape",
    "cluster",
    "backup",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(BENCHMARKS)
    failed = 0
    for name in chosen:
        print(f"\n### benchmarks.{name}", flush=True)
        command = [sys.executable, "-m", f"benchmarks.{name}"] + (["--json"] if args.json else [])
        failed += subprocess.call(command) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
