"""``freezeout analyze <sweep or runs dir> [--out DIR]``: exit 0 when the analysis ran (even with
failed runs), 2 when the folder does not exist or holds no run."""
from __future__ import annotations

import argparse
import sys

from .collect import NoRunsError
from .pipeline import analyze


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="freezeout analyze", description="Pair FreezeOut runs with their baselines, "
        "aggregate over seeds, write tables and plots.")
    parser.add_argument("path", help="a sweep directory or any folder holding run directories")
    parser.add_argument("--out", help="output folder (default: <path>/analysis)")
    args = parser.parse_args(argv)
    try:
        result = analyze(args.path, args.out)
    except (FileNotFoundError, NoRunsError) as e:
        print(f"analysis: {e}", file=sys.stderr)
        return 2
    print(result["report"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
