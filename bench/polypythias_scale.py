#!/usr/bin/env python3
"""Time and peak memory of the analyses on a PolyPythias-sized results table.

Writes a table of 10 seeds x 154 steps x 10 tasks x EXAMPLES examples (the default 3,250 gives
50,050,000 rows; PolyPythias-160m with 5,000-example tasks is 77 million) with pyarrow, then runs
``mb-stats bootstrap --by task,step --metric mean`` and ``mb-stats curve --by task --metric mean``
under ``/usr/bin/time`` and prints each one's wall time and peak memory (max RSS).

Usage: python3 bench/polypythias_scale.py [--examples 3250] [--bin PATH]
Needs numpy and pyarrow (the test venv has them) and about 6 GiB of free memory.
"""

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]


def write_table(path, examples, seeds=10, steps=154, tasks=10):
    n = seeds * steps * tasks * examples
    rng = np.random.default_rng(0)
    task = np.tile(np.repeat(np.arange(tasks, dtype=np.int32), examples), seeds * steps)
    table = pa.table({
        "group": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)),
                                                pa.array(["EleutherAI/pythia-160m"])),
        "seed": np.repeat(np.arange(seeds, dtype=np.int64), steps * tasks * examples),
        "step": np.tile(np.repeat(np.arange(steps, dtype=np.int64) * 1000, tasks * examples), seeds),
        "task": pa.DictionaryArray.from_arrays(pa.array(task), pa.array([f"task{i}" for i in range(tasks)])),
        "example": np.tile(np.arange(examples, dtype=np.int64), seeds * steps * tasks),
        "score": (rng.random(n) < 0.6).astype(np.float64),
    })
    pq.write_table(table, path, row_group_size=1 << 20)
    return n


def measured(command):
    done = subprocess.run(["/usr/bin/time", "-f", "%e %M", *command], check=True, capture_output=True, text=True)
    seconds, kib = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kib) / 1024 / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3250)
    default_bin = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "mb-stats"
    parser.add_argument("--bin", default=str(default_bin))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scale-") as work:
        table = os.path.join(work, "suite.parquet")
        rows = write_table(table, args.examples)
        print(f"{rows:,} rows ({os.path.getsize(table) / 1e6:.0f} MB of Parquet)")
        for name, extra in [("bootstrap", ["--by", "task,step"]), ("curve", ["--by", "task"])]:
            out = os.path.join(work, f"{name}.csv")
            seconds, gib = measured([args.bin, name, table, *extra, "--metric", "mean", "-o", out])
            print(f"mb-stats {name} {' '.join(extra)} --metric mean: {seconds:.1f} s, peak {gib:.2f} GiB")


if __name__ == "__main__":
    main()
