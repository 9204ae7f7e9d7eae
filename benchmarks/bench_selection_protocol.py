"""Selection protocol benchmark: every method vs a measured random curve on unseen world splits.

Runs ``autoscale experiment selection`` (see :mod:`fiftyone_plugin.cli.experiment`) and writes
``benchmarks/results/selection_protocol.{json,md,png}``: per split and pooled, test EPDMS, paired
differences and BRMR with bootstrap intervals, per-seed rows, MOSAIC's fits and the exact command.

Full run (the committed results; 1 h 12 min on the 2-core machine):
    .venv/bin/python benchmarks/bench_selection_protocol.py --executor process:2
Quick (machinery only, ~2-3 min):
    .venv/bin/python benchmarks/bench_selection_protocol.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fiftyone_plugin.cli import CommandError  # noqa: E402
from fiftyone_plugin.cli.experiment import add_protocol_arguments, run_from_args  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_protocol_arguments(parser, out_default=RESULTS_DIR, name_default="selection_protocol")
    args = parser.parse_args(argv)
    try:
        record = run_from_args(args)
    except CommandError as exc:
        print(f"bench_selection_protocol: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"outputs": record["outputs"], "verdict": record["summary"].get("verdict"),
                      "seconds": record["timings_s"]["total"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
