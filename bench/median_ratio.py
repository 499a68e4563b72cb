#!/usr/bin/env python3
"""Run a side-by-side benchmark several times and report the median of its ratios.

    python3 bench/median_ratio.py [--times 5] -- COMMAND [ARGS...]

COMMAND is one of the project's side-by-side benchmarks that prints lines of the form
`ratio ...: X` (e.g. `mb-stats bench-bert ... --compare-torch PYTHON`, `mb-stats bench-mlm ...
--compare-torch PYTHON`): each run times our side then the other tool's, so running it --times
times alternates the two tools. This machine's speed swings by ±20% between minutes, so a single
ratio says little; the median of several same-run ratios is what the docs report. Prints every
run's ratio lines and, per ratio, the median and the range. Other lines that compare (agreement)
are shown from the last run.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys

RATIO = re.compile(r"^(ratio[^:]*):\s*([0-9.]+)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--times", type=int, default=5, help="runs of COMMAND (default 5)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.times < 1:
        parser.error("give --times ≥ 1 and a COMMAND after --")
    ratios: dict[str, list[float]] = {}
    last = ""
    for run in range(1, args.times + 1):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            return done.returncode
        last = done.stdout
        for line in done.stdout.splitlines():
            match = RATIO.match(line)
            if match:
                ratios.setdefault(match.group(1), []).append(float(match.group(2)))
                print(f"run {run}: {line}", flush=True)
    if not ratios:
        sys.stderr.write("no `ratio ...: X` line in the command's output\n" + last)
        return 1
    print("last run:")
    print("\n".join("  " + line for line in last.splitlines()))
    for name, values in ratios.items():
        print(f"median {name}: {statistics.median(values):.2f} over {len(values)} runs "
              f"(range {min(values):.2f}–{max(values):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
