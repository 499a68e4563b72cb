"""mb_stats from Python beside the original Multi-Bootstrap library, in one process.

The paper's coreference design: 2 arms x 25 seeds x 5 runs x 720 examples, paired seeds,
accuracy, 1,000 replicates. The original (google-research/language,
language/multiberts/multibootstrap.py) is given by path or downloaded at run time, never
committed; it runs with its numpy and the scikit-learn score_fn the notebooks pass. Prints each
tool's time, the ratios, and how the replicates agree.

    python bench/multibootstrap_python.py [--original PATH] [--repeats 3]
"""

import argparse
import importlib.util
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score

import mb_stats
from mb_stats import multibootstrap as dropin

URL = "https://raw.githubusercontent.com/google-research/language/master/language/multiberts/multibootstrap.py"


def original_module(path):
    if path is None:
        path = Path(tempfile.mkdtemp()) / "multibootstrap.py"
        urllib.request.urlretrieve(URL, path)
    spec = importlib.util.spec_from_file_location("original_multibootstrap", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def coref_design(seeds=25, runs=5, examples=720, seed=0):
    """run_info, preds, labels shaped like the paper's Winogender coreference study."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, examples)
    hardness = rng.normal(0, 1.2, examples)
    rows, preds = [], []
    for intervention in (False, True):
        for s in range(seeds):
            seed_effect = rng.normal(0, 0.25)
            for r in range(runs):
                p = 1 / (1 + np.exp(-(0.9 + 0.1 * intervention + seed_effect + hardness)))
                correct = rng.random(examples) < p
                preds.append(np.where(correct, labels, 1 - labels))
                rows.append({"seed": s, "intervention": intervention, "run": r})
    return pd.DataFrame(rows), np.array(preds), labels


def timed(call, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", type=Path, help="path to the original multibootstrap.py (default: download)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the fast tools (median)")
    parser.add_argument("--nboot", type=int, default=1000)
    args = parser.parse_args()
    original = original_module(args.original)
    run_info, preds, labels = coref_design()
    nboot = args.nboot
    print(f"design: {preds.shape[0]} runs x {preds.shape[1]} examples, paired, accuracy, nboot {nboot}")

    table = pd.DataFrame({
        "group": np.repeat(np.where(run_info.intervention, "cda", "base"), preds.shape[1]),
        "seed": np.repeat(run_info.seed.to_numpy(), preds.shape[1]),
        "run": np.repeat(run_info.run.to_numpy(), preds.shape[1]),
        "example": np.tile(np.arange(preds.shape[1]), preds.shape[0]),
        "label": np.tile(labels, preds.shape[0]),
        "prediction": preds.reshape(-1),
    })
    fast = dict(base="group=base", treatment="group=cda", paired=True, nboot=nboot, interval="percentile")

    t_api, summary = timed(lambda: mb_stats.bootstrap(table, **fast), args.repeats)
    t_dropin, ours = timed(
        lambda: dropin.multibootstrap(run_info, preds, labels, accuracy_score, paired_seeds=True, nboot=nboot,
                                      rng=0, verbose=False),
        args.repeats,
    )
    start = time.perf_counter()
    theirs = original.multibootstrap(run_info, preds, labels, accuracy_score, paired_seeds=True, nboot=nboot,
                                     rng=0, verbose=False)
    t_original = time.perf_counter() - start

    print(f"original multibootstrap (numpy, sklearn accuracy_score): {t_original:9.3f} s")
    print(f"mb_stats.multibootstrap.multibootstrap (drop-in):        {t_dropin:9.3f} s  ({t_original / t_dropin:,.0f}x faster)")
    print(f"mb_stats.bootstrap on the same table (DataFrame API):    {t_api:9.3f} s  ({t_original / t_api:,.0f}x faster)")
    for name, samples in (("original", theirs), ("mb_stats", ours)):
        v = np.asarray(samples)
        d = v[:, 1] - v[:, 0]
        print(f"  {name:9s} delta: mean {d.mean():+.5f}, sd {d.std():.5f}, 95% [{np.quantile(d, 0.025):+.5f}, "
              f"{np.quantile(d, 0.975):+.5f}]  (different random numbers: equal within Monte-Carlo error)")
    delta = summary[summary.quantity == "delta"].iloc[0]
    print(f"  mb_stats.bootstrap delta: {delta.estimate:+.5f} [{delta.low:+.5f}, {delta.high:+.5f}]")


if __name__ == "__main__":
    main()
