#!/usr/bin/env python3
"""Side-by-side comparison of mb-stats with the original MultiBERTs library.

The original `multibootstrap.py` (google-research/language, language/multiberts/) is not part
of this project: download it yourself and pass its path. This script

1. asks `mb-stats bench --write-design` for the synthetic coreference-like design
   (2 arms x 25 seeds x 5 runs x 720 examples),
2. runs the original `multibootstrap` + `report_ci` on it (paired, both sampling) and times it,
3. runs `mb-stats bootstrap` on the same data (cluster column dropped: the original has no
   clusters) and times the whole command (process start, Parquet read, analysis, output),
   `--repeat` times, reporting the median and the first run,
4. prints point estimates, bootstrap means and interval ends side by side, the difference in
   units of the Monte-Carlo standard error of a percentile, and the speed ratio.

Usage:
    python3 bench/compare_original.py --original /path/to/multibootstrap.py \
        --mb-stats target/release/mb-stats [--nboot 1000] [--metric accuracy|f1] [--score-fn sklearn|numpy] [--repeat 5]

Needs numpy, pandas, pyarrow and scikit-learn (e.g. in the ignored .venv).
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.metrics import accuracy_score, f1_score


def load_original(path):
    spec = importlib.util.spec_from_file_location("multibootstrap", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def score_fn(metric, implementation):
    """The score_fn handed to the original library: scikit-learn as in the MultiBERTs notebooks,
    or a plain numpy expression (faster, to give the original its best case)."""
    if implementation == "sklearn":
        return {"accuracy": accuracy_score, "f1": lambda y, p: f1_score(y, p, zero_division=0)}[metric]
    return {"accuracy": lambda y, p: float(np.mean(y == p)),
            "f1": lambda y, p: float(2 * np.sum((y == 1) & (p == 1)) / max(np.sum(y == 1) + np.sum(p == 1), 1))}[metric]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--original", required=True, help="path to a downloaded multibootstrap.py")
    ap.add_argument("--mb-stats", default="target/release/mb-stats")
    ap.add_argument("--nboot", type=int, default=1000)
    ap.add_argument("--metric", choices=["accuracy", "f1"], default="accuracy")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of mb-stats (the median is reported)")
    ap.add_argument("--score-fn", choices=["sklearn", "numpy"], default="sklearn",
                    help="how the original computes the metric (the notebooks use scikit-learn)")
    args = ap.parse_args()
    original = load_original(args.original)

    work = tempfile.mkdtemp(prefix="mb-stats-compare-")
    design = os.path.join(work, "design.parquet")
    subprocess.run([args.mb_stats, "bench", "--write-design", design, "--repeats", "1", "--nboot", "10"],
                   check=True, stdout=subprocess.DEVNULL)
    table = pq.read_table(design).drop(["cluster"])
    plain = os.path.join(work, "design-no-clusters.parquet")
    pq.write_table(table, plain)
    df = table.to_pandas()

    # The original's input: one row of run_info and preds per run, labels per example.
    runs = df.groupby(["group", "seed", "run"], sort=True)
    run_info = pd.DataFrame([{"seed": s, "intervention": g == "cda"} for (g, s, _r) in runs.groups])
    preds = np.stack([r.sort_values("example")["prediction"].to_numpy() for _, r in runs])
    labels = df[(df.group == "base") & (df.seed == 0) & (df.run == 0)].sort_values("example")["label"].to_numpy()
    score = score_fn(args.metric, args.score_fn)

    quiet = open(os.devnull, "w")
    stdout, sys.stdout = sys.stdout, quiet
    full = original.multibootstrap(run_info, preds, labels, score, paired_seeds=True, sample_seeds=False,
                                   sample_examples=False, nboot=1, rng=0, verbose=False)[0]
    start = time.perf_counter()
    samples = original.multibootstrap(run_info, preds, labels, score, paired_seeds=True, nboot=args.nboot,
                                      rng=0, verbose=False)
    original_s = time.perf_counter() - start
    stats = original.report_ci(samples, c=0.95)
    sys.stdout = stdout

    out_json = os.path.join(work, "mb.json")
    # A whole command of ~50 ms swings with process start-up and the page cache: time it several
    # times and take the median (the first run, after the original's minutes, is reported too).
    ours_times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        subprocess.run([args.mb_stats, "bootstrap", plain, "--metric", args.metric, "--base", "group=base",
                        "--treatment", "group=cda", "--paired", "--nboot", str(args.nboot), "-o", out_json],
                       check=True, stdout=subprocess.DEVNULL)
        ours_times.append(time.perf_counter() - start)
    ours_s = float(np.median(ours_times))
    rows = {r["quantity"]: r for r in json.load(open(out_json))["rows"]}

    deltas = np.array([e - b for b, e in samples])
    sides = {"base": np.array([b for b, _ in samples]), "treatment": np.array([e for _, e in samples]), "delta": deltas}
    points = {"base": full[0], "treatment": full[1], "delta": full[1] - full[0]}
    names = {"base": "base", "treatment": "expt", "delta": "delta"}
    print(f"design: 2 arms x 25 seeds x 5 runs x 720 examples, paired, metric {args.metric} "
          f"(original's score_fn: {args.score_fn}), nboot {args.nboot}")
    print(f"{'quantity':<10} {'what':<10} {'original':>12} {'mb-stats':>12} {'diff':>10} {'diff/MC se':>11}")
    for q in ["base", "treatment", "delta"]:
        reps = sides[q]
        sd = reps.std()
        # Monte-Carlo standard error of a 2.5% quantile of nboot draws (normal approximation).
        q_se = sd * np.sqrt(0.025 * 0.975 / len(reps)) / 0.0584
        mean_se = sd / np.sqrt(len(reps))
        o = stats[names[q]]
        for what, ours, theirs, se in [("point", rows[q]["estimate"], points[q], None),
                                       ("boot mean", rows[q]["boot_mean"], o["mean"], mean_se * np.sqrt(2)),
                                       ("low", rows[q]["low"], o["low"], q_se * np.sqrt(2)),
                                       ("high", rows[q]["high"], o["high"], q_se * np.sqrt(2))]:
            ratio = "" if se is None else f"{abs(ours - theirs) / se:11.2f}"
            print(f"{q:<10} {what:<10} {theirs:12.6f} {ours:12.6f} {ours - theirs:10.2e} {ratio}")
    print(f"p-value (H0 delta <= 0): original {stats['delta']['p']:.4g}, mb-stats {rows['delta']['p_value']:.4g}")
    print(f"time: original {original_s:.2f} s, mb-stats {ours_s * 1e3:.1f} ms (whole command, median of "
          f"{len(ours_times)}; first {ours_times[0] * 1e3:.1f} ms, all {', '.join(f'{t * 1e3:.1f}' for t in ours_times)}), "
          f"ratio {original_s / ours_s:.0f}x (first run: {original_s / ours_times[0]:.0f}x)")


if __name__ == "__main__":
    main()
